//! One accept path: every rule a message answers to gives the same verdict whether the message
//! comes over REST or over SMTP. Each test states a message once, sends it both ways, and
//! compares what each protocol answered (accepted, or refused and why).

use missive::edge::smtp::Listener;
use missive_tests::{Auth, SmtpClient, SmtpReply, TestApp};
use serde_json::{Value, json};

/// One message, said once.
#[derive(Clone, Debug)]
struct Case {
    /// The sender (REST `from`, the SMTP From header); `None` leaves it to the tenant.
    from: Option<String>,
    to: Vec<String>,
    bcc: Vec<String>,
    subject: String,
    text: String,
    idempotency_key: Option<String>,
}

impl Case {
    fn new(from: &str, to: &[&str]) -> Self {
        Self {
            from: Some(from.to_owned()),
            to: to.iter().map(|&t| t.to_owned()).collect(),
            bcc: Vec::new(),
            subject: "Hello".to_owned(),
            text: "Hello from the accept rules".to_owned(),
            idempotency_key: None,
        }
    }

    /// The SMTP envelope sender: the sender's address, or one inside the tenant's domain.
    fn envelope_from(&self) -> String {
        let from = self.from.as_deref().unwrap_or("app@acme.test");
        from.rsplit_once('<')
            .map_or(from, |(_, rest)| rest.trim_end_matches('>'))
            .to_owned()
    }

    fn rest_body(&self) -> Value {
        let mut body = json!({
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
        });
        if let Some(from) = &self.from {
            body["from"] = json!(from);
        }
        if !self.bcc.is_empty() {
            body["bcc"] = json!(self.bcc);
        }
        body
    }

    fn smtp_text(&self) -> String {
        let mut text = String::new();
        if let Some(from) = &self.from {
            text.push_str(&format!("From: {from}\r\n"));
        }
        text.push_str(&format!("To: {}\r\n", self.to.join(", ")));
        if !self.bcc.is_empty() {
            text.push_str(&format!("Bcc: {}\r\n", self.bcc.join(", ")));
        }
        text.push_str(&format!("Subject: {}\r\n", self.subject));
        if let Some(key) = &self.idempotency_key {
            text.push_str(&format!("Idempotency-Key: {key}\r\n"));
        }
        text.push_str("\r\n");
        for line in self.text.as_bytes().chunks(100) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push_str("\r\n");
        }
        text
    }
}

/// Why a message was refused, in protocol-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    SenderNotAllowed,
    Invalid,
    TooLarge,
    TooManyRecipients,
    IdempotencyKey,
    IdempotencyConflict,
}

/// What a protocol answered.
#[derive(Clone, Debug)]
enum Verdict {
    Accepted(String),
    Refused(Rule, String),
}

impl Verdict {
    fn id(&self) -> &str {
        match self {
            Self::Accepted(id) => id,
            Self::Refused(rule, text) => panic!("expected acceptance, got {rule:?}: {text}"),
        }
    }

    fn rule(&self) -> Option<Rule> {
        match self {
            Self::Accepted(_) => None,
            Self::Refused(rule, _) => Some(*rule),
        }
    }
}

async fn through_rest(app: &TestApp, key: &str, case: &Case) -> Verdict {
    let mut request = app
        .client
        .post(format!("{}/v1/emails", app.base_url))
        .bearer_auth(key)
        .json(&case.rest_body());
    if let Some(idempotency) = &case.idempotency_key {
        request = request.header("Idempotency-Key", format!("rest-{idempotency}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    let rule = match (status, body["name"].as_str().unwrap_or_default()) {
        (200, _) => return Verdict::Accepted(body["id"].as_str().unwrap().to_owned()),
        (422, "invalid_from_address") => Rule::SenderNotAllowed,
        (422, "invalid_idempotency_key") => Rule::IdempotencyKey,
        (409, "invalid_idempotent_request") => Rule::IdempotencyConflict,
        (422, "validation_error") if message.contains("bytes, over the limit") => Rule::TooLarge,
        (422, "validation_error") if message.contains("recipients, over the limit") => {
            Rule::TooManyRecipients
        }
        (422, "validation_error") => Rule::Invalid,
        other => panic!("unexpected REST answer {other:?}: {body}"),
    };
    Verdict::Refused(rule, message)
}

fn smtp_refusal(reply: &SmtpReply) -> Verdict {
    let text = reply.text();
    let rule = match (reply.code, text.get(..5).unwrap_or_default()) {
        (550, "5.7.1") => Rule::SenderNotAllowed,
        (550, "5.6.0") if text.contains("Idempotency-Key") => Rule::IdempotencyKey,
        (550 | 501 | 500, _) => Rule::Invalid,
        (552, "5.3.4") => Rule::TooLarge,
        (452, "4.5.3") => Rule::TooManyRecipients,
        (554, "5.6.0") => Rule::IdempotencyConflict,
        _ => panic!("unexpected SMTP reply {reply:?}"),
    };
    Verdict::Refused(rule, text)
}

/// The case as one SMTP transaction, stopped at the first refusal.
async fn through_smtp(app: &TestApp, key: &str, case: &Case) -> Verdict {
    let mut smtp = SmtpClient::in_memory(app.smtp.clone(), "192.0.2.10", Listener::Submission)
        .authenticated(key)
        .await;
    let mut case = case.clone();
    case.idempotency_key = case.idempotency_key.map(|k| format!("smtp-{k}"));
    smtp.send(format!("MAIL FROM:<{}>\r\n", case.envelope_from()).as_bytes())
        .await;
    let reply = smtp.read_reply().await.unwrap();
    if reply.code != 250 {
        return smtp_refusal(&reply);
    }
    for rcpt in case.to.iter().chain(&case.bcc) {
        smtp.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes()).await;
        let reply = smtp.read_reply().await.unwrap();
        if reply.code != 250 {
            return smtp_refusal(&reply);
        }
    }
    smtp.cmd("DATA", 354).await;
    smtp.send(case.smtp_text().as_bytes()).await;
    smtp.send(b".\r\n").await;
    let reply = smtp.read_reply().await.unwrap();
    if reply.code != 250 {
        return smtp_refusal(&reply);
    }
    Verdict::Accepted(missive_tests::queued_id(&reply))
}

/// Sends `case` both ways and asserts the same verdict; returns both.
async fn same_verdict(app: &TestApp, key: &str, case: &Case) -> (Verdict, Verdict) {
    let rest = through_rest(app, key, case).await;
    let smtp = through_smtp(app, key, case).await;
    assert_eq!(
        rest.rule(),
        smtp.rule(),
        "REST and SMTP disagree on {case:?}:\n  REST: {rest:?}\n  SMTP: {smtp:?}"
    );
    (rest, smtp)
}

async fn email(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
        .await
        .expect(200)
        .clone()
}

async fn emails_stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM emails")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

async fn tenant_with(app: &TestApp, settings: Value) -> String {
    let created = app
        .post(
            "/v1/tenants",
            Auth::Admin,
            &json!({ "name": "Acme", "settings": settings }),
        )
        .await;
    created.expect(201)["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_sender_outside_the_allowed_domains_is_refused_and_a_subdomain_accepted() {
    let app = TestApp::spawn().await;
    let key = tenant_with(&app, json!({ "allowed_sender_domains": ["acme.test"] })).await;
    let (rest, _) = same_verdict(&app, &key, &Case::new("x@evil.test", &["a@x.test"])).await;
    assert_eq!(rest.rule(), Some(Rule::SenderNotAllowed));
    let (rest, _) = same_verdict(
        &app,
        &key,
        &Case::new("Evil <x@evilacme.test>", &["a@x.test"]),
    )
    .await;
    assert_eq!(rest.rule(), Some(Rule::SenderNotAllowed));
    assert_eq!(emails_stored(&app).await, 0);
    let (rest, smtp) =
        same_verdict(&app, &key, &Case::new("x@mail.acme.test", &["a@x.test"])).await;
    for id in [rest.id(), smtp.id()] {
        assert_eq!(email(&app, &key, id).await["from"], "x@mail.acme.test");
    }
    assert_eq!(app.worker.drain().await.unwrap(), 2);
}

#[tokio::test]
async fn a_message_without_a_sender_takes_the_tenants_default_or_is_refused() {
    let app = TestApp::spawn().await;
    let created = app.create_tenant("Acme").await;
    let mut case = Case::new("ignored@acme.test", &["a@x.test"]);
    case.from = None;
    let (rest, smtp) = same_verdict(&app, &created.key, &case).await;
    assert_eq!(rest.rule(), Some(Rule::Invalid));
    assert!(
        matches!(&smtp, Verdict::Refused(_, text) if text.contains("default_from")),
        "{smtp:?}"
    );
    app.patch(
        &format!("/v1/tenants/{}", created.id),
        Auth::Admin,
        &json!({ "settings": { "default_from": "Acme <noreply@acme.test>" } }),
    )
    .await
    .expect(200);
    let (rest, smtp) = same_verdict(&app, &created.key, &case).await;
    for id in [rest.id(), smtp.id()] {
        assert_eq!(
            email(&app, &created.key, id).await["from"],
            "Acme <noreply@acme.test>"
        );
    }
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2);
    for message in received {
        let from = header_address(&message.data, |m| m.from());
        assert_eq!(
            from,
            (Some("Acme".to_owned()), "noreply@acme.test".to_owned())
        );
    }
}

/// The first address of one header of a relayed message, with its display name.
fn header_address(
    data: &[u8],
    header: impl for<'a> Fn(&'a mail_parser::Message<'a>) -> Option<&'a mail_parser::Address<'a>>,
) -> (Option<String>, String) {
    let message = mail_parser::MessageParser::default().parse(data).unwrap();
    let address = header(&message)
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("no such header in\n{}", String::from_utf8_lossy(data)));
    (
        address.name.as_deref().map(ToOwned::to_owned),
        address.address.as_deref().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_tenants_reply_to_is_added_where_a_message_has_none() {
    let app = TestApp::spawn().await;
    let key = tenant_with(&app, json!({ "reply_to": "help@acme.test" })).await;
    let (rest, smtp) = same_verdict(&app, &key, &Case::new("me@acme.test", &["a@x.test"])).await;
    for id in [rest.id(), smtp.id()] {
        assert_eq!(
            email(&app, &key, id).await["reply_to"],
            json!(["help@acme.test"])
        );
    }
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2);
    for message in received {
        let reply_to = header_address(&message.data, |m| m.reply_to());
        assert_eq!(reply_to, (None, "help@acme.test".to_owned()));
    }
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let app = TestApp::spawn_with(|config| config.accept.max_message_bytes = 4096).await;
    let key = app.create_tenant("Acme").await.key;
    let mut case = Case::new("me@acme.test", &["a@x.test"]);
    case.text = "x".repeat(8000);
    let (rest, _) = same_verdict(&app, &key, &case).await;
    assert_eq!(rest.rule(), Some(Rule::TooLarge));
    // Under the limit as sent, over it once our headers are added: the final size counts.
    case.text = "x".repeat(3900);
    let (rest, _) = same_verdict(&app, &key, &case).await;
    assert_eq!(rest.rule(), Some(Rule::TooLarge));
    assert_eq!(emails_stored(&app).await, 0);
    case.text = "x".repeat(1000);
    same_verdict(&app, &key, &case).await.0.id();
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn recipients_are_counted_once_and_limited() {
    let app = TestApp::spawn_with(|config| config.accept.max_recipients = 2).await;
    let key = app.create_tenant("Acme").await.key;
    let (rest, _) = same_verdict(
        &app,
        &key,
        &Case::new("me@acme.test", &["a@x.test", "b@x.test", "c@x.test"]),
    )
    .await;
    assert_eq!(rest.rule(), Some(Rule::TooManyRecipients));
    let (rest, _) = same_verdict(&app, &key, &Case::new("me@acme.test", &["not an address"])).await;
    assert_eq!(rest.rule(), Some(Rule::Invalid));
    assert_eq!(emails_stored(&app).await, 0);
    // The same address twice is one recipient.
    let (rest, smtp) = same_verdict(
        &app,
        &key,
        &Case::new("me@acme.test", &["a@x.test", "A@x.test", "b@x.test"]),
    )
    .await;
    for id in [rest.id(), smtp.id()] {
        let email = email(&app, &key, id).await;
        assert_eq!(email["recipients"].as_array().unwrap().len(), 2, "{email}");
    }
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn idempotency_keys_have_one_definition_replay_and_conflict() {
    let app = TestApp::spawn().await;
    let key = app.create_tenant("Acme").await.key;
    let mut case = Case::new("me@acme.test", &["a@x.test"]);
    case.idempotency_key = Some("k".repeat(300));
    let (rest, _) = same_verdict(&app, &key, &case).await;
    assert_eq!(rest.rule(), Some(Rule::IdempotencyKey));
    assert_eq!(emails_stored(&app).await, 0);

    case.idempotency_key = Some("order-42".to_owned());
    let (first_rest, first_smtp) = same_verdict(&app, &key, &case).await;
    let (again_rest, again_smtp) = same_verdict(&app, &key, &case).await;
    assert_eq!(
        first_rest.id(),
        again_rest.id(),
        "a REST retry gets the first id"
    );
    assert_eq!(
        first_smtp.id(),
        again_smtp.id(),
        "an SMTP retry gets the first id"
    );
    case.text = "another message under the same key".to_owned();
    let (rest, _) = same_verdict(&app, &key, &case).await;
    assert_eq!(rest.rule(), Some(Rule::IdempotencyConflict));
    assert_eq!(emails_stored(&app).await, 2);
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn both_get_our_message_id_and_keep_bcc_out_of_the_headers() {
    let app = TestApp::spawn().await;
    let key = app.create_tenant("Acme").await.key;
    let mut case = Case::new("Acme <me@acme.test>", &["a@x.test"]);
    case.bcc = vec!["hidden@x.test".to_owned()];
    let (rest, smtp) = same_verdict(&app, &key, &case).await;
    let mut message_ids = Vec::new();
    for id in [rest.id(), smtp.id()] {
        let email = email(&app, &key, id).await;
        let message_id = format!("{}@acme.test", id.replace('-', ""));
        assert_eq!(email["message_id"], message_id.as_str(), "{email}");
        assert_eq!(email["bcc"], json!(["hidden@x.test"]), "{email}");
        message_ids.push(format!("Message-ID: <{message_id}>\r\n"));
    }
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2);
    for message in &received {
        assert!(message.rcpt_to.contains(&"hidden@x.test".to_owned()));
        let data = String::from_utf8_lossy(&message.data);
        assert!(!data.contains("hidden@x.test"), "{data}");
    }
    for header in message_ids {
        let carrying = received
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.data).contains(&header))
            .count();
        assert_eq!(carrying, 1, "{header:?} in exactly one relayed message");
    }
}

#[tokio::test]
async fn a_sender_without_a_display_name_gets_the_tenants_from_name() {
    let app = TestApp::spawn().await;
    let key = tenant_with(&app, json!({ "from_name": "Acme Support" })).await;
    let (rest, smtp) = same_verdict(&app, &key, &Case::new("help@acme.test", &["a@x.test"])).await;
    for id in [rest.id(), smtp.id()] {
        assert_eq!(
            email(&app, &key, id).await["from"],
            "Acme Support <help@acme.test>"
        );
    }
    // A sender with a name of its own keeps it.
    let (rest, smtp) =
        same_verdict(&app, &key, &Case::new("Bob <bob@acme.test>", &["a@x.test"])).await;
    for id in [rest.id(), smtp.id()] {
        assert_eq!(email(&app, &key, id).await["from"], "Bob <bob@acme.test>");
    }
    app.worker.drain().await.unwrap();
    let mut names: Vec<(Option<String>, String)> = app
        .sink
        .received()
        .iter()
        .map(|m| header_address(&m.data, |m| m.from()))
        .collect();
    names.sort();
    let acme = (Some("Acme Support".to_owned()), "help@acme.test".to_owned());
    let bob = (Some("Bob".to_owned()), "bob@acme.test".to_owned());
    assert_eq!(names, [acme.clone(), acme, bob.clone(), bob]);
}

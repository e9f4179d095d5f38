//! What comes back after the relay's 250: each delivery's envelope sender is a return path the
//! MX takes, relays offering DSN are asked for reports, and a delivery report, a plain bounce or
//! a complaint sent to the MX becomes the email's events, signed webhooks and suppressions. A
//! forged or foreign report changes nothing; the MX relays nothing and takes no AUTH.
//! `postfix` runs the whole loop through a stock Postfix.

use missive_core::webhook::{SigningSecret, verify};
use missive_tests::{Auth, Receiver, SinkOptions, SmtpClient, SmtpReply, TestApp};
use serde_json::{Value, json};

mod complaints;
pub mod domains;
mod postfix;

use crate::suppressions::suppressions;

/// The operator's return-path domain in these tests.
const RETURN_DOMAIN: &str = "bounces.missive.test";

/// An app whose relay offers DSN and whose return paths live on [`RETURN_DOMAIN`].
async fn spawn(adjust: impl FnOnce(&mut missive::Config)) -> TestApp {
    let options = SinkOptions {
        dsn: true,
        ..SinkOptions::default()
    };
    TestApp::spawn_with_sink(options, |config, _| {
        config.mx.return_path_domain = Some(RETURN_DOMAIN.to_owned());
        config.webhooks.allow_private = true;
        adjust(config);
    })
    .await
}

/// An endpoint for every event the tenant of `key` reports; its signing secret.
pub async fn subscribe(app: &TestApp, key: &str, receiver: &Receiver) -> SigningSecret {
    let created = app
        .post(
            "/v1/webhooks",
            Auth::Key(key),
            &json!({
                "endpoint": receiver.url("/hooks"),
                "events": ["email.delivered", "email.bounced", "email.complained",
                           "email.delivery_delayed", "email.suppressed"],
            }),
        )
        .await;
    SigningSecret::parse(created.expect(200)["signing_secret"].as_str().unwrap()).unwrap()
}

/// The webhook bodies the receiver got, each checked against `secret` first.
pub fn signed_events(receiver: &Receiver, secret: &SigningSecret) -> Vec<Value> {
    receiver
        .hits()
        .into_iter()
        .map(|hit| {
            let id = hit.header("webhook-id").unwrap();
            let timestamp: i64 = hit.header("webhook-timestamp").unwrap().parse().unwrap();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            verify(
                secret,
                id,
                timestamp,
                hit.body.as_bytes(),
                hit.header("webhook-signature").unwrap(),
                now,
            )
            .expect("a signature that verifies");
            serde_json::from_str(&hit.body).unwrap()
        })
        .collect()
}

/// One transaction with the MX: `message` from `from` (`""`: the null sender) for `to`; the
/// reply to each RCPT, and to the message when a recipient was taken.
pub async fn transaction(
    mx: std::net::SocketAddr,
    from: &str,
    to: &[&str],
    message: &str,
) -> (Vec<SmtpReply>, Option<SmtpReply>) {
    let mut client = SmtpClient::connect(mx).await;
    client.expect(220).await;
    client.cmd("EHLO relay.example", 250).await;
    client.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
    let mut rcpts = Vec::new();
    for rcpt in to {
        client
            .send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
            .await;
        rcpts.push(client.read_reply().await.expect("a reply to RCPT"));
    }
    if !rcpts.iter().any(|r| r.code == 250) {
        return (rcpts, None);
    }
    client.cmd("DATA", 354).await;
    client.send(message.as_bytes()).await;
    let end: &[u8] = if message.ends_with("\r\n") {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    };
    client.send(end).await;
    (rcpts, client.read_reply().await)
}

/// A report with the null sender for `to`; the reply to the RCPT, and to the message when the
/// RCPT was taken.
pub async fn report(
    mx: std::net::SocketAddr,
    to: &str,
    message: &str,
) -> (SmtpReply, Option<SmtpReply>) {
    let (mut rcpts, done) = transaction(mx, "", &[to], message).await;
    (rcpts.remove(0), done)
}

/// A report the MX takes: both the RCPT and the message answered 250.
pub async fn reported(app: &TestApp, to: &str, message: &str) {
    let (rcpt, done) = report(app.mx_addr, to, message).await;
    assert_eq!(rcpt.code, 250, "{}", rcpt.text());
    assert_eq!(done.expect("a reply to the message").code, 250);
}

/// Sends `to` another email from `from` and checks that it is `suppressed` at once.
async fn next_send_is_suppressed(app: &TestApp, key: &str, from: &str, to: &str) {
    let next = app
        .send_email(
            key,
            &json!({ "from": from, "to": to, "subject": "s", "text": "t" }),
        )
        .await;
    assert_eq!(
        recipient_status(&email(app, key, &next).await, to),
        "suppressed"
    );
}

/// A delivery report as Postfix writes one, for `recipient` of the message `message_id`.
fn dsn(return_path: &str, recipient: &str, action: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@relay.example (Mail Delivery System)\r\n\
         To: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; relay.example\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.x.test\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Subject: s\r\n\
         \r\n\
         --B--"
    )
}

async fn email(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
        .await
        .expect(200)
        .clone()
}

fn recipient_status(email: &Value, address: &str) -> String {
    email["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == address)
        .unwrap_or_else(|| panic!("{address} not in {email}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn event_types(email: &Value, address: &str) -> Vec<String> {
    email["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["recipient"] == address)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends one email from `from` to `to` and delivers it to the sink; its id and the return path
/// it went out with.
async fn sent(app: &TestApp, key: &str, from: &str, to: &[&str]) -> (String, String) {
    let id = app
        .send_email(
            key,
            &json!({ "from": from, "to": to, "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let received = app
        .sink
        .received()
        .into_iter()
        .rev()
        .find(|m| m.rcpt_to.iter().any(|r| r == to[0]))
        .expect("the sink got the email");
    (id, received.mail_from)
}

#[tokio::test]
async fn a_late_bounce_report_bounces_its_recipient_signs_a_webhook_and_suppresses() {
    let app = spawn(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let receiver = Receiver::start().await;
    let secret = subscribe(&app, &acme.key, &receiver).await;
    let (id, return_path) = sent(
        &app,
        &acme.key,
        "news@acme.test",
        &["gone@x.test", "ok@x.test"],
    )
    .await;

    // The envelope sender is a return path on the operator's domain, and the relay was asked
    // for reports naming the email and each recipient.
    let (local, domain) = return_path.split_once('@').unwrap();
    assert_eq!(domain, RETURN_DOMAIN);
    assert_eq!(local.len(), 64, "{return_path}");
    let message = app.sink.received().pop().unwrap();
    assert!(
        message.commands[0].ends_with(&format!("RET=HDRS ENVID={id}")),
        "{:?}",
        message.commands
    );
    assert!(
        message.commands[1].ends_with("NOTIFY=FAILURE,DELAY ORCPT=rfc822;gone@x.test"),
        "{:?}",
        message.commands
    );
    // The author's From is unchanged.
    let data = String::from_utf8_lossy(&message.data).into_owned();
    let from = data.lines().find(|l| l.starts_with("From:")).unwrap();
    assert!(from.contains("news@acme.test"), "{from}");
    assert_eq!(
        recipient_status(&email(&app, &acme.key, &id).await, "gone@x.test"),
        "delivered"
    );

    let report_text = dsn(
        &return_path,
        "gone@x.test",
        "failed",
        "5.1.1",
        "550 5.1.1 <gone@x.test>: Recipient address rejected: User unknown",
    );
    let (rcpt, done) = report(app.mx_addr, &return_path, &report_text).await;
    assert_eq!(rcpt.code, 250, "{}", rcpt.text());
    assert_eq!(done.expect("a reply").code, 250);

    let viewed = email(&app, &acme.key, &id).await;
    assert_eq!(recipient_status(&viewed, "gone@x.test"), "bounced");
    assert_eq!(recipient_status(&viewed, "ok@x.test"), "delivered");
    // The relay's acceptance and the later outcome are separate entries.
    let gone_events = event_types(&viewed, "gone@x.test");
    let delivered_at = gone_events
        .iter()
        .position(|e| e == "email.delivered")
        .unwrap();
    let bounced_at = gone_events
        .iter()
        .position(|e| e == "email.bounced")
        .unwrap();
    assert!(delivered_at < bounced_at, "{gone_events:?}");
    let bounce = viewed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.bounced")
        .unwrap();
    assert_eq!(bounce["report"]["status"], "5.1.1");
    assert_eq!(bounce["report"]["reporting_mta"], "relay.example");
    assert_eq!(bounce["smtp_code"], 550);

    let listed = suppressions(&app, &acme.key).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["email"], "gone@x.test");
    assert_eq!(listed[0]["origin"], "bounce");
    assert_eq!(listed[0]["source_id"], id.as_str());
    assert_eq!(listed[0]["status"], "5.1.1");

    app.dispatcher.drain().await.unwrap();
    let events = signed_events(&receiver, &secret);
    let bounced: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "email.bounced")
        .collect();
    assert_eq!(bounced.len(), 1, "{events:?}");
    assert_eq!(bounced[0]["data"]["email_id"], id.as_str());
    assert_eq!(bounced[0]["data"]["recipient"], "gone@x.test");
    assert_eq!(bounced[0]["data"]["bounce"]["type"], "Permanent");
    assert_eq!(bounced[0]["data"]["bounce"]["status"], "5.1.1");
    assert!(
        bounced[0]["data"]["bounce"]["message"]
            .as_str()
            .unwrap()
            .contains("User unknown"),
        "{bounced:?}"
    );

    // The same report again records nothing more.
    reported(&app, &return_path, &report_text).await;
    let again = email(&app, &acme.key, &id).await;
    assert_eq!(
        event_types(&again, "gone@x.test")
            .iter()
            .filter(|e| *e == "email.bounced")
            .count(),
        1
    );

    next_send_is_suppressed(&app, &acme.key, "news@acme.test", "gone@x.test").await;
}

#[tokio::test]
async fn delay_and_success_reports_are_recorded_and_soft_bounces_suppress_after_the_limit() {
    let app = spawn(|c| c.mx.soft_bounce_limit = 2).await;
    let acme = app.create_tenant("Acme").await;
    let receiver = Receiver::start().await;
    let secret = subscribe(&app, &acme.key, &receiver).await;

    let (id, return_path) = sent(&app, &acme.key, "a@acme.test", &["slow@x.test"]).await;
    let delayed = dsn(
        &return_path,
        "slow@x.test",
        "delayed",
        "4.4.1",
        "connect to mx.x.test: Connection timed out",
    );
    reported(&app, &return_path, &delayed).await;
    let confirmed = dsn(
        &return_path,
        "slow@x.test",
        "delivered",
        "2.0.0",
        "250 2.0.0 Ok: queued",
    );
    reported(&app, &return_path, &confirmed).await;
    let viewed = email(&app, &acme.key, &id).await;
    assert_eq!(
        event_types(&viewed, "slow@x.test"),
        [
            "email.queued",
            "email.sending",
            "email.delivered",
            "email.deferred",
            "email.confirmed"
        ]
    );
    assert_eq!(recipient_status(&viewed, "slow@x.test"), "delivered");
    app.dispatcher.drain().await.unwrap();
    let types: Vec<Value> = signed_events(&receiver, &secret)
        .into_iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(
        types.contains(&json!("email.delivery_delayed")),
        "{types:?}"
    );

    // A full mailbox once is not enough to stop sending to it; twice within the window is.
    for round in 0..2 {
        let (_, return_path) = sent(&app, &acme.key, "a@acme.test", &["full@x.test"]).await;
        let full = dsn(
            &return_path,
            "full@x.test",
            "failed",
            "5.2.2",
            "552 5.2.2 Mailbox full",
        );
        reported(&app, &return_path, &full).await;
        let listed = suppressions(&app, &acme.key).await;
        assert_eq!(listed.len(), round, "{listed:?}");
    }
    let listed = suppressions(&app, &acme.key).await;
    assert_eq!(listed[0]["email"], "full@x.test");
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Mailbox full"),
        "{listed:?}"
    );
}

#[tokio::test]
async fn immediate_soft_bounces_count_towards_the_same_limit() {
    let app = spawn(|c| c.mx.soft_bounce_limit = 2).await;
    let acme = app.create_tenant("Acme").await;
    app.sink.answer_rcpt_with(
        "full@x.test",
        &["552 5.2.2 Mailbox full", "552 5.2.2 Mailbox full"],
    );
    let send = json!({ "from": "a@acme.test", "to": "full@x.test", "subject": "s", "text": "t" });
    for round in 0..2 {
        let id = app.send_email(&acme.key, &send).await;
        app.worker.drain().await.unwrap();
        let viewed = email(&app, &acme.key, &id).await;
        assert_eq!(recipient_status(&viewed, "full@x.test"), "bounced");
        assert_eq!(
            suppressions(&app, &acme.key).await.len(),
            round,
            "round {round}"
        );
    }
    let next = app.send_email(&acme.key, &send).await;
    assert_eq!(
        recipient_status(&email(&app, &acme.key, &next).await, "full@x.test"),
        "suppressed"
    );
}

#[tokio::test]
async fn forged_and_foreign_reports_change_nothing_and_the_mx_relays_nothing() {
    let app = spawn(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let (acme_email, acme_path) = sent(
        &app,
        &acme.key,
        "a@acme.test",
        &["one@x.test", "two@x.test"],
    )
    .await;
    let (other_email, _) = sent(&app, &other.key, "b@other.test", &["victim@x.test"]).await;

    // A return path with one character changed, a random address, a relay attempt: 550 5.1.1.
    let (local, domain) = acme_path.split_once('@').unwrap();
    let flipped = if local.ends_with('a') { 'b' } else { 'a' };
    let tampered = format!("{}{flipped}@{domain}", &local[..local.len() - 1]);
    for to in [
        tampered.as_str(),
        "random@bounces.missive.test",
        "someone@gmail.example",
    ] {
        let bounce = dsn(
            to,
            "one@x.test",
            "failed",
            "5.1.1",
            "550 5.1.1 no such user",
        );
        let (rcpt, done) = report(app.mx_addr, to, &bounce).await;
        assert_eq!(rcpt.code, 550, "{to}: {}", rcpt.text());
        assert!(rcpt.text().starts_with("5.1.1"), "{}", rcpt.text());
        assert!(done.is_none());
    }
    // Acme's return path with a report about Other's recipient: nothing for Other, and
    // nothing for Acme's recipients it does not name.
    let foreign = dsn(
        &acme_path,
        "victim@x.test",
        "failed",
        "5.1.1",
        "550 5.1.1 no such user",
    );
    reported(&app, &acme_path, &foreign).await;
    let viewed = email(&app, &other.key, &other_email).await;
    assert_eq!(recipient_status(&viewed, "victim@x.test"), "delivered");
    let viewed = email(&app, &acme.key, &acme_email).await;
    assert_eq!(recipient_status(&viewed, "one@x.test"), "delivered");
    assert_eq!(recipient_status(&viewed, "two@x.test"), "delivered");
    assert!(suppressions(&app, &acme.key).await.is_empty());
    assert!(suppressions(&app, &other.key).await.is_empty());

    // No AUTH, STARTTLS offered, and nothing relayed: the sink saw only the two sends.
    let mut client = SmtpClient::connect(app.mx_addr).await;
    client.expect(220).await;
    let ehlo = client.cmd("EHLO relay.example", 250).await;
    assert!(ehlo.text().contains("STARTTLS"), "{}", ehlo.text());
    assert!(!ehlo.text().contains("AUTH"), "{}", ehlo.text());
    client.cmd("AUTH PLAIN AGFiYwBkZWY=", 502).await;
    let mut client = client.starttls().await;
    let ehlo = client.cmd("EHLO relay.example", 250).await;
    assert!(!ehlo.text().contains("AUTH"), "{}", ehlo.text());
    assert_eq!(app.sink.received().len(), 2);
}

#[tokio::test]
async fn without_a_return_path_domain_or_relay_dsn_the_author_stays_the_envelope_sender() {
    // No operator domain, no verified domain: the author's address, and no DSN parameters.
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let message = app.sink.received().pop().unwrap();
    assert_eq!(message.mail_from, "a@acme.test");
    assert!(
        !message.commands.iter().any(|c| c.contains("NOTIFY")),
        "{:?}",
        message.commands
    );
    assert!(!id.is_empty());
    // With a return path but a relay that does not offer DSN: the return path, no parameters.
    let app =
        TestApp::spawn_with(|c| c.mx.return_path_domain = Some(RETURN_DOMAIN.to_owned())).await;
    let acme = app.create_tenant("Acme").await;
    app.send_email(
        &acme.key,
        &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let message = app.sink.received().pop().unwrap();
    assert!(
        message.mail_from.ends_with(RETURN_DOMAIN),
        "{}",
        message.mail_from
    );
    assert!(
        !message.commands.iter().any(|c| c.contains("NOTIFY")),
        "{:?}",
        message.commands
    );
}

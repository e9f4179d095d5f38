//! The web console: sign-in and sessions, CSRF refusals, the security headers, escaping, tenant
//! isolation and the operator's figures over real HTTP; then the whole of it in headless
//! Chromium, driven by a Python WebDriver client, which writes the screenshots in docs/console.md.

use std::time::Duration;

use missive_tests::http::ADMIN_KEY;
use missive_tests::{
    Auth, CreatedTenant, Receiver, SinkOptions, SmtpClient, SmtpSink, TestApp, queued_id,
    run_python_script, test_python, workspace_root,
};
use serde_json::json;

mod activity;
mod projects;
mod received;

const XSS: &str = "<script>alert(1)</script>";

/// A browser without a browser: keeps the console's cookies by hand, never follows redirects.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden `_csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"_csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"_csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base_url.clone(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &reqwest::header::HeaderMap) {
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().expect("cookie text");
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("console request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.keep(&headers);
        let body = response.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("form"));
        self.send(request).await
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/console/login", &[("_csrf", &csrf), ("key", key)])
            .await
    }
}

async fn delivered(app: &TestApp, key: &str, id: &str) {
    for _ in 0..100 {
        app.worker.drain().await.expect("delivery");
        let email = app.get(&format!("/v1/emails/{id}"), Auth::Key(key)).await;
        if email.body["last_event"] == "delivered" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("email {id} was not delivered");
}

/// An email over REST with the XSS subject, and one over SMTP (real TCP, STARTTLS, AUTH).
async fn two_emails(app: &TestApp, tenant: &CreatedTenant) -> (String, String) {
    let rest = app
        .send_email(
            &tenant.key,
            &json!({"from": "billing@acme.test", "to": "you@x.test", "subject": XSS,
                    "html": "<p>Your receipt</p>", "tags": [{"name": "kind", "value": "receipt"}]}),
        )
        .await;
    let mut smtp = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&tenant.key)
        .await;
    let reply = smtp
        .send_mail(
            "legacy@acme.test",
            &["ops@x.test"],
            "From: legacy@acme.test\r\nTo: ops@x.test\r\nSubject: Nightly report over SMTP\r\n\r\nAll good.\r\n",
        )
        .await;
    let smtp_id = queued_id(&reply);
    delivered(app, &tenant.key, &rest).await;
    delivered(app, &tenant.key, &smtp_id).await;
    (rest, smtp_id)
}

#[tokio::test]
async fn sessions_csrf_headers_escaping_and_isolation() {
    let app = TestApp::spawn().await;
    // Another tenant's email stays queued: no worker runs for it.
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Globex").await;
    let (rest_id, smtp_id) = two_emails(&app, &acme).await;
    let other_id = app
        .send_email(
            &other.key,
            &json!({"from": "a@globex.test", "to": "b@x.test", "subject": "Globex only", "text": "x"}),
        )
        .await;

    let mut browser = Browser::new(&app);
    // Not signed in: to the sign-in form, which is framed by nobody and runs our script only.
    let home = browser.get("/console/emails").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), "/console/login");
    let login = browser.get("/console/login").await;
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    let login_cookie = login.headers["set-cookie"].to_str().unwrap();
    assert!(
        login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"),
        "{login_cookie}"
    );

    // Sign-in without the form's token, or with a wrong key, opens nothing.
    let forged = browser.post("/console/login", &[("key", &acme.key)]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = browser.sign_in("msv_not_a_key").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(!browser.cookies.iter().any(|(k, _)| k == "missive_session"));

    let signed_in = browser.sign_in(&acme.key).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session_cookie = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("missive_session="))
        .expect("a session cookie");
    assert!(
        session_cookie.contains("HttpOnly")
            && session_cookie.contains("SameSite=Strict")
            && session_cookie.contains("Path=/console"),
        "{session_cookie}"
    );
    assert!(
        !session_cookie.contains(&acme.key),
        "the cookie holds no key"
    );

    // The list shows both emails, the XSS subject as text.
    let emails = browser.get("/console/emails").await;
    assert_eq!(emails.status, 200, "{}", emails.body);
    assert!(emails.body.contains(&rest_id) && emails.body.contains(&smtp_id));
    assert!(
        emails
            .body
            .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
            || emails
                .body
                .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        emails.body
    );
    assert!(!emails.body.contains(XSS));
    assert!(!emails.body.contains("Globex only"));
    // Filters: by tag, and by a status nothing has.
    let tagged = browser.get("/console/emails?tag=kind%3Areceipt").await;
    assert!(tagged.body.contains(&rest_id) && !tagged.body.contains(&smtp_id));
    let bounced = browser.get("/console/emails?status=bounced").await;
    assert!(!bounced.body.contains(&rest_id) && bounced.body.contains("No emails match"));

    // The SMTP email's timeline: queued, sent, delivered with the upstream reply and route.
    let timeline = browser.get(&format!("/console/emails/{smtp_id}")).await;
    assert_eq!(timeline.status, 200);
    for text in [
        "Nightly report over SMTP",
        "email.delivered",
        "250",
        "shared",
    ] {
        assert!(
            timeline.body.contains(text),
            "{text} missing: {}",
            timeline.body
        );
    }
    // Another tenant's email is not there, whatever its id.
    let theirs = browser.get(&format!("/console/emails/{other_id}")).await;
    assert_eq!(theirs.status, 404);
    assert!(!theirs.body.contains("Globex only"));
    // The operator's pages are not a tenant's.
    assert_eq!(browser.get("/console/operator").await.status, 403);

    // A form without the session's token is refused and changes nothing.
    let page = browser.get("/console/emails").await;
    let csrf = page.csrf();
    let refused = browser.post("/console/logout", &[]).await;
    assert_eq!(refused.status, 403);
    let refused = browser
        .post("/console/logout", &[("_csrf", "forged")])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(browser.get("/console/emails").await.status, 200);
    let cross_site = browser
        .send(
            browser
                .client
                .post(format!("{}/console/logout", browser.base))
                .header("origin", "https://evil.test")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("_csrf={csrf}")),
        )
        .await;
    assert_eq!(cross_site.status, 403);
    // Signing out ends the session server-side.
    let stolen = browser.cookie_header();
    let out = browser.post("/console/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/console/login");
    let replayed = browser
        .client
        .get(format!("{}/console/emails", browser.base))
        .header("cookie", stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303, "a signed-out session is dead");

    // Revoking the key ends its sessions at once.
    assert_eq!(browser.sign_in(&acme.key).await.status, 303);
    assert_eq!(browser.get("/console/emails").await.status, 200);
    app.delete(
        &format!("/v1/tenants/{}/api-keys/{}", acme.id, acme.key_id),
        Auth::Admin,
    )
    .await
    .expect(200);
    assert_eq!(browser.get("/console/emails").await.status, 303);

    // The operator sees every tenant's day and the queue, from the rollup.
    let mut operator = Browser::new(&app);
    assert_eq!(operator.sign_in(ADMIN_KEY).await.status, 303);
    let overview = operator.get("/console/operator").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Acme") && overview.body.contains("Globex"));
    let acme_row = &overview.body[overview
        .body
        .find(&format!("data-tenant=\"{}\"", acme.id))
        .unwrap()..];
    let acme_row = &acme_row[..acme_row.find("</tr>").unwrap()];
    assert!(
        acme_row.contains("<td class=\"num sent\">2</td>"),
        "{acme_row}"
    );
    assert!(
        acme_row.contains("<td class=\"num delivered\">2</td>"),
        "{acme_row}"
    );
    // Globex's email waits in the queue (no worker ran for it since).
    assert!(
        overview.body.contains("id=\"queue-queued\">1<"),
        "{}",
        overview.body
    );
    let tenant_page = operator
        .get(&format!("/console/operator/tenants/{}", acme.id))
        .await;
    assert_eq!(tenant_page.status, 200, "{}", tenant_page.body);
    assert!(tenant_page.body.contains(&acme.key[..12]) || tenant_page.body.contains("…"));
    assert!(
        !tenant_page.body.contains(&acme.key),
        "keys show by prefix only"
    );
    // A tenant page is not the operator's.
    assert_eq!(operator.get("/console/emails").await.status, 403);
}

#[tokio::test]
async fn the_console_in_headless_chromium() {
    let Some(python) = test_python() else {
        eprintln!("skipped: `make test` prepares the Python this test drives Chromium with");
        return;
    };
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    app.expect_unsent_mail();
    let receiver = Receiver::start().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Globex").await;
    let webhook = app
        .post(
            "/v1/webhooks",
            Auth::Key(&acme.key),
            &json!({"endpoint": receiver.url("/hook"), "events": ["email.sent", "email.delivered"]}),
        )
        .await;
    let webhook_id = webhook.expect(200)["id"].as_str().unwrap().to_owned();
    let template = app
        .post(
            "/v1/templates",
            Auth::Key(&acme.key),
            &json!({"name": "Receipt", "alias": "receipt", "subject": "Receipt for {{name}}",
                    "html": "<h1>Thanks, {{name}}</h1><p>Total: {{total}}</p>",
                    "variables": [{"key": "name", "type": "string", "fallback_value": "Ada"},
                                  {"key": "total", "type": "string", "fallback_value": "9.99"}]}),
        )
        .await;
    let template_id = template.expect(200)["id"].as_str().unwrap().to_owned();
    app.post(
        "/v1/domains",
        Auth::Key(&acme.key),
        &json!({"name": "acme.test"}),
    )
    .await;
    let (rest_id, smtp_id) = two_emails(&app, &acme).await;
    app.dispatcher.drain().await.expect("webhooks");
    let events = app
        .get(
            &format!("/v1/webhooks/{webhook_id}/events"),
            Auth::Key(&acme.key),
        )
        .await;
    let event_id = events.expect(200)["data"][0]["id"]
        .as_str()
        .expect("an event")
        .to_owned();
    let other_id = app
        .send_email(
            &other.key,
            &json!({"from": "a@globex.test", "to": "b@x.test", "subject": "Globex only", "text": "x"}),
        )
        .await;

    let shots = workspace_root().join("docs/console");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let out = run_python_script(
        &python,
        "console_browser.py",
        &[
            ("BASE_URL", app.base_url.clone()),
            ("ADMIN_KEY", ADMIN_KEY.to_owned()),
            ("TENANT_KEY", acme.key.clone()),
            ("TENANT_ID", acme.id.clone()),
            ("REST_EMAIL_ID", rest_id),
            ("SMTP_EMAIL_ID", smtp_id),
            ("OTHER_EMAIL_ID", other_id),
            ("TEMPLATE_ID", template_id),
            ("WEBHOOK_ID", webhook_id.clone()),
            ("EVENT_ID", event_id.clone()),
            ("SCREENSHOTS", shots.display().to_string()),
        ],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&out).expect("the script's report");
    // The replay the browser clicked sends the same event again: one more post, nothing else.
    assert_eq!(report["replayed_event"], event_id.as_str());
    let before = receiver.hits().len();
    app.dispatcher.drain().await.expect("webhooks");
    assert_eq!(
        receiver.hits().len(),
        before + 1,
        "the replayed event was posted again"
    );
    let event = app
        .get(
            &format!("/v1/webhooks/{webhook_id}/events/{event_id}"),
            Auth::Key(&acme.key),
        )
        .await;
    assert_ne!(event.expect(200)["status"], "pending", "{}", event.text);
    for name in [
        "login",
        "operator",
        "operator_tenant",
        "emails",
        "email",
        "template",
        "webhook_event",
        "domain",
        "usage",
    ] {
        let path = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{name}.png is a PNG");
    }
}

#[tokio::test]
async fn the_operator_verifies_a_tenants_own_server_and_a_restricted_key_sees_its_scopes_only() {
    const PASSWORD: &str = "own-server-secret-7d2f";
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let acme = app.create_tenant("Acme").await;
    let server = SmtpSink::start_with(SinkOptions {
        auth: Some(("acme".to_owned(), PASSWORD.to_owned())),
        ..SinkOptions::default()
    })
    .await;
    app.patch(
        &format!("/v1/tenants/{}", acme.id),
        Auth::Admin,
        &json!({"smtp": {"host": "127.0.0.1", "port": server.addr.port(), "tls": "none",
                         "username": "acme", "password": PASSWORD}}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/suppressions",
        Auth::Key(&acme.key),
        &json!({"email": "gone@x.test"}),
    )
    .await
    .expect(200);

    let mut operator = Browser::new(&app);
    assert_eq!(operator.sign_in(ADMIN_KEY).await.status, 303);
    let path = format!("/console/operator/tenants/{}", acme.id);
    let page = operator.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let server_at = format!("127.0.0.1:{}", server.addr.port());
    for text in [
        server_at.as_str(),
        "Verify the server",
        "set (never shown)",
        "gone@x.test",
    ] {
        assert!(page.body.contains(text), "{text} missing: {}", page.body);
    }
    assert!(!page.body.contains(PASSWORD));
    let verify = format!("{path}/smtp/verify");
    assert_eq!(operator.post(&verify, &[]).await.status, 403);
    let checked = operator.post(&verify, &[("_csrf", &page.csrf())]).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(
        checked.body.contains("id=\"verification\"") && checked.body.contains("works"),
        "{}",
        checked.body
    );
    assert!(
        checked.body.contains("235"),
        "the AUTH step's reply: {}",
        checked.body
    );
    assert!(!checked.body.contains(PASSWORD));

    // A key that may only send opens a session, and each page answers for the scope it lacks.
    let (_, sender) = app.create_key(&acme.id, "sender", &["send"]).await;
    let mut tenant = Browser::new(&app);
    assert_eq!(tenant.sign_in(&sender).await.status, 303);
    let emails = tenant.get("/console/emails").await;
    assert_eq!(emails.status, 403, "{}", emails.body);
    assert!(emails.body.contains("emails:read"), "{}", emails.body);
    assert_eq!(tenant.get("/console/webhooks").await.status, 403);
}

#[tokio::test]
async fn lists_page_with_the_apis_cursors() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    for i in 0..27 {
        app.post(
            "/v1/templates",
            Auth::Key(&acme.key),
            &json!({"name": format!("Template {i:02}"), "html": "<p>{{x}}</p>"}),
        )
        .await
        .expect(200);
    }
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&acme.key).await.status, 303);
    let first = browser.get("/console/templates").await;
    assert!(first.body.contains("Template 26") && !first.body.contains("Template 01"));
    let at = first.body.find("id=\"next-page\"").expect("a next page");
    let href = &first.body[..at];
    let href = &href[href.rfind("href=\"").expect("its link") + 6..];
    let href = handlebars_unescape(&href[..href.find('"').expect("end of link")]);
    let second = browser.get(&href).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("Template 01") && second.body.contains("Template 00"));
    assert!(!second.body.contains("Template 26") && !second.body.contains("id=\"next-page\""));
    assert!(second.body.contains("First page"));
}

/// An attribute's value as the browser reads it (the page templates escape `=` too).
fn handlebars_unescape(s: &str) -> String {
    s.replace("&#x3D;", "=").replace("&amp;", "&")
}

//! Sending servers' own clients deliver to any address of a receiving domain: Python's smtplib
//! (STARTTLS, an attachment) and swaks; an address of a domain that does not receive, another
//! tenant's sending domain included, is refused at RCPT.

use missive_tests::{Auth, run_python_script, test_python};
use serde_json::json;

use super::{receiving_app, receiving_domain};

/// swaks, installed by `make test` (Debian's package); run without blocking the test's runtime,
/// which serves the MX it talks to.
async fn swaks(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("swaks")
        .args(args)
        .output()
        .await
        .expect("swaks: run the suite with `make test`, which installs it")
}

#[tokio::test]
async fn smtplib_and_swaks_deliver_to_any_address_of_a_receiving_domain() {
    let (_dns, app) = receiving_app(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    receiving_domain(&app, &acme, "acme.test").await;
    app.post(
        "/v1/domains",
        Auth::Key(&other.key),
        &json!({ "name": "other.test" }),
    )
    .await
    .expect(200);
    let port = app.mx_addr.port().to_string();

    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out = run_python_script(
        &python,
        "smtplib_receive.py",
        &[
            ("MX_PORT", port.clone()),
            ("TO", "anything.at.all@acme.test".to_owned()),
            ("REFUSED_TO", "someone@other.test".to_owned()),
        ],
    )
    .await;
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let refused = &out["refused"]["someone@other.test"];
    assert_eq!(refused[0], 550, "{out}");
    assert!(refused[1].as_str().unwrap().starts_with("5.1.1"), "{out}");

    let sent = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "--ehlo",
        "swaks.sender.test",
        "--from",
        "bob@sender.test",
        "--to",
        "Support+Tickets@ACME.test",
        "--header",
        "Subject: via swaks",
        "--body",
        "Hello from swaks",
    ])
    .await;
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "{said}");
    assert!(said.contains("250 2.0.0 Received as "), "{said}");
    let refused = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "bob@sender.test",
        "--to",
        "someone@other.test",
    ])
    .await;
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("550 5.1.1"), "{said}");

    let listed = app.get("/v1/emails/receiving", Auth::Key(&acme.key)).await;
    let listed = listed.expect(200);
    let subjects: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["via swaks", "via smtplib"]);
    assert_eq!(listed["data"][1]["attachments"][0]["filename"], "data.csv");
    let theirs = app.get("/v1/emails/receiving", Auth::Key(&other.key)).await;
    assert_eq!(theirs.expect(200)["data"], json!([]));
}

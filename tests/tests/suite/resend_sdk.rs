//! The official Resend Python SDK sends through Missive unmodified: plain, with an attachment and
//! tags, then reads the email back; errors arrive as the SDK's own exceptions.

use mail_parser::MimeHeaders as _;
use missive_tests::{TestApp, run_resend_script};

#[tokio::test]
async fn the_resend_python_sdk_sends_and_reads_back() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let result = run_resend_script(&app.base_url, &tenant.key, "resend_sdk.py", &[]).await;

    let got = &result["got"];
    assert_eq!(got["id"], result["attached"]);
    assert_eq!(got["subject"], "Attachment from the SDK");
    assert_eq!(got["tags"][0]["name"], "category");
    assert_eq!(got["tenant_id"], tenant.id.as_str());
    assert_eq!(got["last_event"], "queued");
    let error = &result["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not-an-address"),
        "{error}"
    );

    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2);
    let files = received
        .iter()
        .find(|m| m.rcpt_to == ["files@x.test"])
        .expect("the attachment email arrived");
    let parsed = mail_parser::MessageParser::default()
        .parse(&files.data)
        .unwrap();
    let attachment = parsed.attachments().next().unwrap();
    assert_eq!(attachment.attachment_name(), Some("hello.bin"));
    assert_eq!(attachment.contents(), b"hello attachment \x00\xff");
    assert!(received.iter().any(|m| m.rcpt_to == ["plain@x.test"]));
}

#[tokio::test]
async fn the_resend_python_sdk_works_unmodified_with_a_projects_key() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let created = app
        .post(
            &format!("/v1/tenants/{}/projects", tenant.id),
            missive_tests::Auth::Admin,
            &serde_json::json!({ "name": "billing" }),
        )
        .await;
    let project = created.expect(201)["id"].as_str().unwrap().to_owned();
    let key = app
        .post(
            &format!("/v1/tenants/{}/projects/{project}/api-keys", tenant.id),
            missive_tests::Auth::Admin,
            &serde_json::json!({ "name": "billing-sdk" }),
        )
        .await;
    let key = key.expect(201)["token"].as_str().unwrap().to_owned();
    let result = run_resend_script(&app.base_url, &key, "resend_sdk.py", &[]).await;
    let got = &result["got"];
    assert_eq!(got["id"], result["attached"]);
    assert_eq!(got["tenant_id"], tenant.id.as_str());
    assert_eq!(got["project_id"], project.as_str());
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 2);
}

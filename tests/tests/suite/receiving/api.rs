//! Resend's Receiving API over mail the MX took: the list and one message in Resend's shape with
//! our verdicts, the raw message, attachments with signed links that fetch the exact bytes
//! without a key and stop working when changed or expired; another tenant's key sees nothing;
//! the signed `email.received` webhook; the official Python and Node SDKs read it all.

use missive_core::download::{DownloadLinks, Target};
use missive_core::webhook::SigningSecret;
use missive_tests::{
    Auth, Receiver, TEST_SECRET_KEY, TestApp, run_python_with_input, run_resend_node_script,
    run_resend_script, test_python,
};
use serde_json::{Value, json};

use super::{INVOICE, PDF, receiving_app, receiving_domain};
use crate::reports::{signed_events, transaction};

/// Delivers [`INVOICE`] to support@acme.test; the received email's id.
async fn receive_invoice(app: &TestApp) -> String {
    let (rcpts, done) = transaction(
        app.mx_addr,
        "ann@sender.test",
        &["support@acme.test"],
        INVOICE,
    )
    .await;
    assert_eq!(rcpts[0].code, 250, "{}", rcpts[0].text());
    let done = done.expect("a reply to the message");
    assert_eq!(done.code, 250, "{}", done.text());
    let text = done.text();
    text.rsplit("Received as ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// An endpoint of `key`'s tenant for `email.received`; its secret.
async fn subscribe_received(app: &TestApp, key: &str, receiver: &Receiver) -> SigningSecret {
    let created = app
        .post(
            "/v1/webhooks",
            Auth::Key(key),
            &json!({ "endpoint": receiver.url("/inbound"), "events": ["email.received"] }),
        )
        .await;
    SigningSecret::parse(created.expect(200)["signing_secret"].as_str().unwrap()).unwrap()
}

async fn fetch(app: &TestApp, url: &str) -> (u16, Vec<u8>, String) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        response.bytes().await.unwrap().to_vec(),
        content_type,
    )
}

#[tokio::test]
async fn the_receiving_api_shows_received_mail_and_serves_its_attachments_by_signed_links() {
    let (_dns, app) = receiving_app(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    receiving_domain(&app, &acme, "acme.test").await;
    let receiver = Receiver::start().await;
    let secret = subscribe_received(&app, &acme.key, &receiver).await;
    let id = receive_invoice(&app).await;

    let listed = app.get("/v1/emails/receiving", Auth::Key(&acme.key)).await;
    let listed = listed.expect(200);
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["has_more"], false);
    let item = &listed["data"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["from"], "Ann Example <ann@sender.test>");
    assert_eq!(item["to"], json!(["support@acme.test"]));
    assert_eq!(item["cc"], json!(["carol@acme.test"]));
    assert_eq!(item["subject"], "Invoice 42");
    assert!(item.get("html").is_none(), "a listing carries no body");

    let path = format!("/v1/emails/receiving/{id}");
    let got = app.get(&path, Auth::Key(&acme.key)).await;
    let got = got.expect(200).clone();
    assert_eq!(got["object"], "received_email");
    assert_eq!(got["reply_to"], json!(["replies@sender.test"]));
    assert_eq!(got["bcc"], json!([]));
    assert_eq!(got["message_id"], "invoice-42@sender.test");
    assert_eq!(got["received_for"], json!(["support@acme.test"]));
    assert_eq!(got["mail_from"], "ann@sender.test");
    assert_eq!(
        got["text"].as_str().unwrap().trim(),
        "Please find the invoice attached."
    );
    assert_eq!(
        got["html"].as_str().unwrap().trim(),
        "<p>Please find the invoice attached.</p>"
    );
    assert_eq!(got["headers"]["Subject"], "Invoice 42");
    let cid = app
        .get(&format!("{path}?html_format=cid"), Auth::Key(&acme.key))
        .await;
    assert_eq!(
        cid.expect(200)["html"],
        got["html"],
        "no inline image to differ by"
    );
    app.get(&format!("{path}?html_format=png"), Auth::Key(&acme.key))
        .await
        .expect_error(422, "validation_error");
    assert_eq!(got["size"], INVOICE.len());
    // No records published for sender.test: nothing to pass or fail.
    assert_eq!(got["authentication"]["spf"]["result"], "none");
    assert_eq!(got["authentication"]["dmarc"]["result"], "none");
    let meta = &got["attachments"][0];
    assert_eq!(
        (
            &meta["filename"],
            &meta["content_type"],
            &meta["content_disposition"],
            &meta["size"]
        ),
        (
            &json!("invoice.pdf"),
            &json!("application/pdf"),
            &json!("attachment"),
            &json!(PDF.len())
        )
    );

    let raw = app
        .client
        .get(format!("{}{path}/raw", app.base_url))
        .bearer_auth(&acme.key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    assert_eq!(raw.bytes().await.unwrap(), INVOICE.as_bytes());

    let attachments = app
        .get(&format!("{path}/attachments"), Auth::Key(&acme.key))
        .await;
    let attachments = attachments.expect(200).clone();
    let listed_link = &attachments["data"][0];
    assert_eq!(listed_link["id"], meta["id"]);
    let one = app
        .get(
            &format!("{path}/attachments/{}", meta["id"].as_str().unwrap()),
            Auth::Key(&acme.key),
        )
        .await;
    let one = one.expect(200).clone();
    assert_eq!(one["object"], "attachment");
    let url = one["download_url"].as_str().unwrap();
    assert!(url.starts_with(&app.base_url), "{url}");
    let expires_at = time::OffsetDateTime::parse(
        one["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(expires_at > time::OffsetDateTime::now_utc());

    // The link needs no key and gives the exact bytes.
    let (status, bytes, content_type) = fetch(&app, url).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pdf"));
    assert_eq!(bytes, PDF);
    // Changed, it is a 404; so is one for another attachment id with the same signature.
    let (base, signature) = url.rsplit_once("signature=").unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{base}signature={flipped}{}", &signature[1..]);
    assert_eq!(fetch(&app, &tampered).await.0, 404);
    let other_attachment = url.replace(
        meta["id"].as_str().unwrap(),
        "00000000-0000-7000-8000-000000000000",
    );
    assert_eq!(fetch(&app, &other_attachment).await.0, 404);
    // A link signed with the key but past its expiry stops working; the same link with a
    // future expiry works (so it is the expiry that refuses it).
    let links = DownloadLinks::new(&[TEST_SECRET_KEY]).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let link = |expires: i64| {
        let target = Target {
            tenant: acme.id.parse().unwrap(),
            email: id.parse().unwrap(),
            attachment: meta["id"].as_str().unwrap().parse().unwrap(),
            expires,
        };
        format!(
            "{}{path}/attachments/{}/content?tenant={}&expires={expires}&signature={}",
            app.base_url,
            meta["id"].as_str().unwrap(),
            acme.id,
            links.sign(&target)
        )
    };
    assert_eq!(fetch(&app, &link(now - 1)).await.0, 404);
    assert_eq!(fetch(&app, &link(now + 60)).await.0, 200);

    // Another tenant's key learns nothing; a key without `receiving:read` is refused.
    for forbidden in [
        path.clone(),
        format!("{path}/raw"),
        format!("{path}/attachments"),
    ] {
        app.get(&forbidden, Auth::Key(&other.key))
            .await
            .expect_error(404, "not_found");
    }
    let theirs = app.get("/v1/emails/receiving", Auth::Key(&other.key)).await;
    assert_eq!(theirs.expect(200)["data"], json!([]));
    let sender = app
        .post(
            "/v1/api-keys",
            Auth::Key(&acme.key),
            &json!({ "name": "sender", "scopes": ["send"] }),
        )
        .await;
    let sender = sender.expect(201)["token"].as_str().unwrap().to_owned();
    app.get("/v1/emails/receiving", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");

    // One signed `email.received`, in Resend's shape: metadata, not the body.
    app.dispatcher.drain().await.unwrap();
    let events = signed_events(&receiver, &secret);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["type"], "email.received");
    let data = &event["data"];
    assert_eq!(data["email_id"], id.as_str());
    assert_eq!(data["from"], "Ann Example <ann@sender.test>");
    assert_eq!(data["to"], json!(["support@acme.test"]));
    assert_eq!(data["cc"], json!(["carol@acme.test"]));
    assert_eq!(data["received_for"], json!(["support@acme.test"]));
    assert_eq!(data["message_id"], "invoice-42@sender.test");
    assert_eq!(data["subject"], "Invoice 42");
    assert_eq!(data["attachments"][0]["filename"], "invoice.pdf");
    assert!(data.get("html").is_none() && data.get("text").is_none());
    verified_by_both_sdks(&receiver, &secret).await;
}

/// Every delivery `receiver` got verifies with the Resend Python SDK's `Webhooks.verify` and
/// with `standardwebhooks`.
async fn verified_by_both_sdks(receiver: &Receiver, secret: &SigningSecret) {
    let deliveries: Vec<Value> = receiver
        .hits()
        .iter()
        .map(|hit| {
            let headers: serde_json::Map<String, Value> = hit
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({ "body": hit.body, "headers": headers })
        })
        .collect();
    let input = json!({ "secrets": [secret.expose()], "deliveries": deliveries });
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out =
        run_python_with_input(&python, "verify_webhooks.py", input.to_string().as_bytes()).await;
    let verdicts: Value = serde_json::from_slice(&out).unwrap();
    for verdict in verdicts.as_array().unwrap() {
        assert_eq!(verdict[0]["resend"], true, "{verdict}");
        assert_eq!(verdict[0]["standardwebhooks"], true, "{verdict}");
    }
}

#[tokio::test]
async fn the_resend_sdks_read_received_mail_unmodified() {
    let (_dns, app) = receiving_app(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    receiving_domain(&app, &acme, "acme.test").await;
    let id = receive_invoice(&app).await;

    let python = run_resend_script(&app.base_url, &acme.key, "resend_receiving.py", &[]).await;
    assert_eq!(python["list"]["data"][0]["id"], id.as_str());
    assert_eq!(python["first_page"]["data"].as_array().unwrap().len(), 1);
    assert_eq!(python["get"]["subject"], "Invoice 42");
    assert_eq!(python["get"]["to"], json!(["support@acme.test"]));
    assert_eq!(python["attachments"]["data"][0]["filename"], "invoice.pdf");
    assert_eq!(python["attachment"]["content_type"], "application/pdf");
    assert_eq!(python["download"]["status"], 200);
    use base64::Engine as _;
    let content = base64::engine::general_purpose::STANDARD
        .decode(python["download"]["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(content, PDF);
    assert_eq!(python["tampered_status"], 404);

    let node = run_resend_node_script(&app.base_url, &acme.key, "resend_receiving.cjs").await;
    assert_eq!(node["list"]["error"], Value::Null, "{node}");
    assert_eq!(node["list"]["data"]["data"][0]["id"], id.as_str());
    assert_eq!(node["got"]["data"]["from"], "Ann Example <ann@sender.test>");
    assert_eq!(node["got"]["data"]["message_id"], "invoice-42@sender.test");
    assert_eq!(
        node["attachments"]["data"]["data"][0]["size"],
        json!(PDF.len())
    );
    assert!(
        node["attachment"]["data"]["download_url"]
            .as_str()
            .unwrap()
            .contains("/content?")
    );
    assert_eq!(node["missing"]["data"], Value::Null);
    assert_eq!(node["missing"]["error"]["statusCode"], 404, "{node}");
}

//! The console's received mail: the tenant's list and one message with its envelope, verdicts,
//! text and attachments, whose links fetch the exact bytes; escaped, and another tenant's
//! session cannot open it.

use missive_tests::TestApp;

use super::{Browser, XSS};
use crate::receiving::{INVOICE, PDF, receiving_app, receiving_domain};
use crate::reports::transaction;

async fn receive(app: &TestApp, message: &str) -> String {
    let (_, done) = transaction(
        app.mx_addr,
        "ann@sender.test",
        &["support@acme.test"],
        message,
    )
    .await;
    let done = done.expect("a reply to the message");
    assert_eq!(done.code, 250, "{}", done.text());
    done.text()
        .rsplit("Received as ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_console_lists_and_shows_received_mail_with_verdicts_and_attachments() {
    let (_dns, app) = receiving_app(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    receiving_domain(&app, &acme, "acme.test").await;
    let id = receive(&app, INVOICE).await;
    let hostile =
        format!("From: x@sender.test\r\nTo: support@acme.test\r\nSubject: {XSS}\r\n\r\n{XSS}\r\n");
    receive(&app, &hostile).await;

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&acme.key).await.status, 303);
    let list = browser.get("/console/received").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("/console/received/{id}")),
        "{}",
        list.body
    );
    assert!(list.body.contains("Invoice 42"));
    assert!(!list.body.contains(XSS), "escaped");
    assert!(list.body.contains("&lt;script&gt;"));

    let page = browser.get(&format!("/console/received/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"verdicts\""));
    assert!(page.body.contains("Please find the invoice attached."));
    assert!(page.body.contains("invoice.pdf"));
    let at = page.body.find("/content?").expect("a download link");
    let start = page.body[..at].rfind("href=\"").unwrap() + "href=\"".len();
    let end = start + page.body[start..].find('"').unwrap();
    let url = page.body[start..end]
        .replace("&amp;", "&")
        .replace("&#x3D;", "=");
    let fetched = app.client.get(&url).send().await.unwrap();
    assert_eq!(fetched.status(), 200, "{url}");
    assert_eq!(fetched.bytes().await.unwrap(), PDF);

    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.sign_in(&other.key).await.status, 303);
    assert_eq!(
        stranger
            .get(&format!("/console/received/{id}"))
            .await
            .status,
        404
    );
    let theirs = stranger.get("/console/received").await;
    assert!(!theirs.body.contains("Invoice 42"));
}

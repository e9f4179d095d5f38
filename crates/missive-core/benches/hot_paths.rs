//! The pure functions every send runs: address parsing, the API key check, MIME building, and a
//! templated send's render (and, on a cache miss, its compile).
//! `cargo bench -p missive-core --bench hot_paths` (make bench runs it in quick mode).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use missive_core::mime::{Envelope, build_mime, message_id};
use missive_core::submission::{Draft, DraftAttachment, DraftContent, Submission};
use missive_core::template::{Compiled, Unit};
use missive_core::{EmailAddress, Mailbox, NewApiKey, parse_api_key};
use time::OffsetDateTime;

fn addresses(c: &mut Criterion) {
    c.bench_function("address: ascii mailbox with display name", |b| {
        b.iter(|| Mailbox::parse(black_box("Acme Billing <billing@mail.acme.test>")).unwrap());
    });
    c.bench_function("address: UTF-8 local part and IDN domain", |b| {
        b.iter(|| EmailAddress::parse(black_box("josé.müller@bücher.example")).unwrap());
    });
}

fn api_key(c: &mut Criterion) {
    let key = NewApiKey::generate();
    let token = key.expose().to_owned();
    let stored = key.hash();
    c.bench_function("api key: checksum, hash and constant-time compare", |b| {
        b.iter(|| {
            let hash = parse_api_key(black_box(&token)).unwrap();
            assert!(hash.ct_eq(&stored));
        });
    });
}

fn submission(attachment: bool) -> Submission {
    let draft = Draft {
        from: Some("Acme <news@acme.test>".to_owned()),
        to: vec![
            "you@example.test".to_owned(),
            "Zoë <zoe@example.test>".to_owned(),
        ],
        cc: vec!["cc@example.test".to_owned()],
        bcc: vec!["audit@acme.test".to_owned()],
        reply_to: vec!["support@acme.test".to_owned()],
        subject: Some("Your receipt for order #1234 — thank you".to_owned()),
        html: Some(format!(
            "<p>{}</p>",
            "Hello, here is your receipt. ".repeat(40)
        )),
        text: Some("Hello, here is your receipt. ".repeat(40)),
        headers: vec![("X-Campaign".to_owned(), "receipts".to_owned())],
        attachments: if attachment {
            vec![DraftAttachment {
                filename: Some("receipt.pdf".to_owned()),
                content: Some(DraftContent::Bytes(
                    (0..20_000u32).map(|i| (i % 251) as u8).collect(),
                )),
                content_type: Some("application/pdf".to_owned()),
                ..DraftAttachment::default()
            }]
        } else {
            Vec::new()
        },
        ..Draft::default()
    };
    Submission::parse(draft, OffsetDateTime::now_utc()).unwrap()
}

fn mime(c: &mut Criterion) {
    let id = missive_core::EmailId::new();
    let date = OffsetDateTime::now_utc();
    for (name, attachment) in [
        ("mime: html + text", false),
        ("mime: html + text + 20 KB attachment", true),
    ] {
        let submission = submission(attachment);
        let from = submission.from().unwrap().clone();
        let mid = message_id(&id, &from.email);
        let envelope = Envelope {
            from: &from,
            reply_to: submission.reply_to(),
            message_id: &mid,
            date,
        };
        c.bench_function(name, |b| {
            b.iter(|| build_mime(black_box(&submission), envelope))
        });
    }
}

/// The shipped receipt inside the shipped base layout, with three line items.
fn receipt() -> (Unit, std::collections::HashMap<String, Unit>) {
    let unit = |html: &str, text: &str, layout: Option<&str>| Unit {
        subject: Some("Receipt {{RECEIPT_NUMBER}}".to_owned()),
        html: html.to_owned(),
        text: Some(text.to_owned()),
        variables: Vec::new(),
        layout: layout.map(ToOwned::to_owned),
    };
    let layout = unit(
        include_str!("../../../templates/layout.html"),
        include_str!("../../../templates/layout.txt"),
        None,
    );
    let root = unit(
        include_str!("../../../templates/receipt.html"),
        include_str!("../../../templates/receipt.txt"),
        Some("layout"),
    );
    (root, [("layout".to_owned(), layout)].into_iter().collect())
}

fn template(c: &mut Criterion) {
    let (root, available) = receipt();
    c.bench_function("template: compile a receipt and its layout", |b| {
        b.iter(|| Compiled::build(black_box(&root), &available).unwrap());
    });
    let compiled = Compiled::build(&root, &available).unwrap();
    let serde_json::Value::Object(variables) = serde_json::json!({
        "NAME": "Ann <ann@example.test>", "RECEIPT_NUMBER": "R-1234", "DATE": "29 November 2026",
        "TOTAL": 42.5, "CURRENCY": "EUR", "RECEIPT_URL": "https://acme.test/r/1234",
        "PRODUCT_NAME": "Acme", "FOOTER": "Acme Inc.",
        "ITEMS": [
            { "description": "Widget", "quantity": 2, "amount": 20 },
            { "description": "Gadget & co", "quantity": 1, "amount": 12.5 },
            { "description": "Shipping", "amount": 10 }
        ]
    }) else {
        unreachable!("an object")
    };
    c.bench_function(
        "template: render a receipt in its layout (subject, html, text)",
        |b| {
            b.iter(|| compiled.render(black_box(&variables), true).unwrap());
        },
    );
}

criterion_group!(benches, addresses, api_key, mime, template);
criterion_main!(benches);

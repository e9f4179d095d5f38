//! The pure functions every send runs: address parsing, the API key check and MIME building.
//! `cargo bench -p missive-core --bench hot_paths` (make bench runs it in quick mode).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use missive_core::mime::{Envelope, build_mime, message_id};
use missive_core::submission::{Draft, DraftAttachment, DraftContent, Submission};
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
    let id = uuid::Uuid::now_v7();
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

criterion_group!(benches, addresses, api_key, mime);
criterion_main!(benches);

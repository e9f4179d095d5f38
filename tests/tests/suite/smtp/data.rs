//! Transactions and their data: pipelining, smuggling, BDAT, SMTPUTF8, clients that leave mid-data, NUL octets.

use super::*;

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await;
    smtp.expect(220).await;
    smtp.cmd("EHLO client.test", 250).await;
    // A man in the middle could append commands to STARTTLS in clear text.
    smtp.send(b"STARTTLS\r\nMAIL FROM:<me@acme.test>\r\n").await;
    smtp.expect(220).await;
    let mut smtp = smtp.finish_starttls().await;
    // The first reply after the handshake answers our EHLO, not the injected MAIL.
    smtp.cmd("EHLO client.test", 250).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 530).await;
    smtp.cmd(&format!("AUTH PLAIN {}", plain(&tenant.key)), 235)
        .await;
}

#[tokio::test]
async fn pipelined_transactions_each_get_their_reply() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    // PIPELINING: DATA is the last command of a group; its text follows the 354.
    smtp.send(b"MAIL FROM:<me@acme.test>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
        .await;
    smtp.expect(250).await;
    smtp.expect(250).await;
    smtp.expect(250).await;
    smtp.expect(354).await;
    smtp.send(
        format!("{MESSAGE}.\r\nMAIL FROM:<me@acme.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
            .as_bytes(),
    )
    .await;
    let first = queued_id(&smtp.expect(250).await);
    smtp.expect(250).await;
    smtp.expect(250).await;
    smtp.expect(354).await;
    smtp.send(format!("{MESSAGE}.\r\nQUIT\r\n").as_bytes())
        .await;
    let second = queued_id(&smtp.expect(250).await);
    smtp.expect(221).await;
    assert_ne!(first, second);
    assert_eq!(stored_emails(&app).await, 2);
}

#[tokio::test]
async fn smuggling_sequences_never_end_the_message_early() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let payloads: [&[u8]; 4] = [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\n"];
    for payload in payloads {
        let mut smtp = client(&app).await.authenticated(&tenant.key).await;
        smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
        smtp.cmd("RCPT TO:<you@x.test>", 250).await;
        smtp.cmd("DATA", 354).await;
        let mut text = b"From: me@acme.test\r\nSubject: outer\r\n\r\nbefore".to_vec();
        text.extend_from_slice(payload);
        text.extend_from_slice(b"MAIL FROM:<evil@acme.test>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\nFrom: evil@acme.test\r\n\r\nsmuggled\r\n.\r\n");
        smtp.send(&text).await;
        // Exactly one reply for the whole text: one message.
        assert!(!queued_id(&smtp.expect(250).await).is_empty());
        smtp.cmd("QUIT", 221).await;
    }
    assert_eq!(stored_emails(&app).await, 4);
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 4);
    for message in received {
        assert_eq!(message.rcpt_to, ["you@x.test"]);
        let data = &message.data;
        // Line ends are normalised: no bare LF or CR reaches the relay.
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(
                    data[i - 1],
                    b'\r',
                    "bare LF in {}",
                    String::from_utf8_lossy(data)
                );
            }
            if b == b'\r' {
                assert_eq!(data.get(i + 1), Some(&b'\n'), "bare CR");
            }
        }
    }
}

#[tokio::test]
async fn bdat_chunks_make_one_message_whatever_they_contain() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("RCPT TO:<you@x.test>", 250).await;
    // Chunks are counted, never scanned: an end-of-data line, commands and bare line ends
    // inside them are message text.
    let first = "From: Sender <me@acme.test>\r\nTo: you@x.test\r\nSubject: Chunked\r\n\r\nfirst part\r\n.\r\nMAIL FROM:<evil@acme.test>\r\nQUIT\r\n";
    let second = "second part\nstill the same message\r\n";
    // Pipelined: both chunks and their commands in one write.
    smtp.send(
        format!(
            "BDAT {}\r\n{first}BDAT {} LAST\r\n{second}",
            first.len(),
            second.len()
        )
        .as_bytes(),
    )
    .await;
    let got = smtp.expect(250).await;
    assert_eq!(got.text(), format!("2.0.0 {} octets received", first.len()));
    let id = queued_id(&smtp.expect(250).await);
    // Still in the session, which the chunk's QUIT did not end.
    smtp.cmd("NOOP", 250).await;
    // An empty last chunk ends a message too.
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("RCPT TO:<you@x.test>", 250).await;
    let third = "From: me@acme.test\r\nSubject: Two chunks\r\n\r\nbody\r\n";
    smtp.send(format!("BDAT {}\r\n{third}", third.len()).as_bytes())
        .await;
    smtp.expect(250).await;
    let other = queued_id(&smtp.cmd("BDAT 0 LAST", 250).await);
    assert_ne!(id, other);
    smtp.cmd("QUIT", 221).await;

    assert_eq!(stored_emails(&app).await, 2);
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2);
    let data = received
        .iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .find(|d| d.contains("Subject: Chunked"))
        .expect("the chunked message");
    assert!(data.contains("\r\nfirst part\r\n"), "{data}");
    assert!(
        data.contains("\r\nMAIL FROM:<evil@acme.test>\r\n"),
        "{data}"
    );
    // The bare LF was normalised, as after DATA.
    assert!(
        data.contains("second part\r\nstill the same message\r\n"),
        "{data}"
    );
    for message in &received {
        assert_eq!(message.rcpt_to, ["you@x.test"]);
    }
}

#[tokio::test]
async fn a_refused_bdat_still_reads_its_chunk_and_an_oversized_one_ends_the_transaction() {
    let app = TestApp::spawn_with(|config| config.accept.max_message_bytes = 4096).await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    // No transaction: refused, and the chunk (which reads like commands) is dropped unread.
    smtp.send(b"BDAT 12\r\nNOOP\r\nQUIT\r\n").await;
    let refused = smtp.expect(503).await;
    assert!(refused.text().starts_with("5.5.1"), "{refused:?}");
    smtp.cmd("NOOP", 250).await;
    // MAIL but no RCPT.
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.send(b"BDAT 6 LAST\r\nRSET\r\n").await;
    smtp.expect(503).await;
    smtp.cmd("RCPT TO:<you@x.test>", 250).await;
    // DATA cannot take over a message begun with BDAT.
    let begun = "From: me@acme.test\r\n\r\n";
    smtp.send(format!("BDAT {}\r\n{begun}", begun.len()).as_bytes())
        .await;
    smtp.expect(250).await;
    let mixed = smtp.cmd("DATA", 503).await;
    assert!(mixed.text().contains("BDAT LAST"), "{mixed:?}");
    // A chunk that would take the message over the limit: read to its end, refused with 552,
    // and the transaction is over.
    let big = "x".repeat(5000);
    smtp.send(format!("BDAT {} LAST\r\n{big}", big.len()).as_bytes())
        .await;
    let too_big = smtp.expect(552).await;
    assert!(too_big.text().starts_with("5.3.4"), "{too_big:?}");
    smtp.cmd("RCPT TO:<you@x.test>", 503).await;
    smtp.cmd("NOOP", 250).await;
    // RSET drops chunks received so far; a fresh transaction then goes through.
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("RCPT TO:<you@x.test>", 250).await;
    smtp.send(format!("BDAT {}\r\n{begun}", begun.len()).as_bytes())
        .await;
    smtp.expect(250).await;
    smtp.cmd("RSET", 250).await;
    let reply = smtp
        .send_mail("me@acme.test", &["you@x.test"], MESSAGE)
        .await;
    assert!(!queued_id(&reply).is_empty());
    assert_eq!(stored_emails(&app).await, 1);
}

#[tokio::test]
async fn utf8_addresses_need_smtputf8() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    let refused = smtp.cmd("MAIL FROM:<josé@acme.test>", 553).await;
    assert!(refused.text().starts_with("5.6.7"), "{refused:?}");
    smtp.cmd("MAIL FROM:<josé@acme.test> SMTPUTF8", 250).await;
    smtp.cmd("RCPT TO:<müller@bücher.test>", 250).await;
    smtp.cmd("DATA", 354).await;
    smtp.send("From: José <josé@acme.test>\r\nTo: müller@bücher.test\r\nSubject: Grüße\r\n\r\nHallo\r\n.\r\n".as_bytes())
        .await;
    let id = queued_id(&smtp.expect(250).await);
    let response = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = response.expect(200);
    assert_eq!(email["subject"], "Grüße");
}

#[tokio::test]
async fn a_client_that_leaves_mid_data_leaves_nothing_queued() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("RCPT TO:<you@x.test>", 250).await;
    smtp.cmd("DATA", 354).await;
    smtp.send(b"From: me@acme.test\r\n\r\nhalf a message").await;
    drop(smtp);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(stored_emails(&app).await, 0);
}

#[tokio::test]
async fn a_message_holding_a_nul_octet_is_refused_not_retried() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    let reply = smtp
        .send_mail(
            "me@acme.test",
            &["you@x.test"],
            "From: me@acme.test\r\n\r\nbefore\0after\r\n",
        )
        .await;
    // Permanent: a 4xx would have the client send it again and again.
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().starts_with("5.6.0"), "{reply:?}");
    assert_eq!(stored_emails(&app).await, 0);
}

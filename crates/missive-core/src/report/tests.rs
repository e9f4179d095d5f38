//! Report shapes written from RFC 3464's format and the wording of common MTAs.

use super::*;

/// A report as Postfix writes it (RFC 3464, with the returned headers).
const POSTFIX: &str = "From: MAILER-DAEMON@relay.example (Mail Delivery System)\r
To: b-token@send.acme.test\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status;\r
\tboundary=\"8A2B51C0F5.1700000000/relay.example\"\r
\r
This is a MIME-encapsulated message.\r
\r
--8A2B51C0F5.1700000000/relay.example\r
Content-Description: Notification\r
Content-Type: text/plain; charset=us-ascii\r
\r
This is the mail system at host relay.example.\r
\r
I'm sorry to have to inform you that your message could not\r
be delivered to one or more recipients.\r
\r
--8A2B51C0F5.1700000000/relay.example\r
Content-Description: Delivery report\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; relay.example\r
X-Postfix-Queue-ID: 8A2B51C0F5\r
X-Postfix-Sender: rfc822; b-token@send.acme.test\r
Original-Envelope-Id: 01936d2e-0000-7000-8000-000000000001\r
Arrival-Date: Mon,  7 Dec 2026 12:00:00 +0000 (UTC)\r
\r
Final-Recipient: rfc822; gone@example.net\r
Original-Recipient: rfc822;gone@example.net\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; mx.example.net\r
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected:\r
    User unknown in virtual mailbox table\r
\r
--8A2B51C0F5.1700000000/relay.example\r
Content-Description: Undelivered Message Headers\r
Content-Type: text/rfc822-headers\r
\r
From: News <news@acme.test>\r
To: gone@example.net\r
Subject: Hi\r
Message-ID: <01936d2e-0000-7000-8000-000000000001@acme.test>\r
\r
--8A2B51C0F5.1700000000/relay.example--\r
";

#[test]
fn a_postfix_report_names_the_recipient_status_diagnostic_and_the_message() {
    let report = parse_delivery_report(POSTFIX.as_bytes()).expect("a delivery report");
    assert_eq!(report.reporting_mta.as_deref(), Some("relay.example"));
    assert_eq!(
        report.envelope_id.as_deref(),
        Some("01936d2e-0000-7000-8000-000000000001")
    );
    assert_eq!(
        report.original_message_id.as_deref(),
        Some("01936d2e-0000-7000-8000-000000000001@acme.test")
    );
    assert_eq!(report.recipients.len(), 1);
    let gone = &report.recipients[0];
    assert_eq!(gone.final_recipient.as_deref(), Some("gone@example.net"));
    assert_eq!(gone.original_recipient.as_deref(), Some("gone@example.net"));
    assert_eq!(gone.action, Action::Failed);
    assert_eq!(gone.status.map(|s| s.to_string()).as_deref(), Some("5.1.1"));
    assert_eq!(gone.remote_mta.as_deref(), Some("mx.example.net"));
    assert_eq!(
        gone.diagnostic.as_deref(),
        Some(
            "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
        )
    );
    assert_eq!(gone.bounce_class(), Some(BounceClass::Hard));
}

/// A report's delivery-status body alone, in the shapes other MTAs write.
fn status_body(recipient_fields: &str) -> String {
    format!("Reporting-MTA: dns; mta.example\n\n{recipient_fields}\n")
}

#[test]
fn exchange_gmail_and_ses_wordings_of_a_missing_mailbox_are_hard() {
    // Exchange / Outlook: a status with a detail of two digits and its own words.
    let exchange = status_body(
        "Final-Recipient: rfc822;gone@contoso.example\nAction: failed\nStatus: 5.1.10\n\
         Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    );
    // Gmail: a multi-line reply folded into the field.
    let gmail = status_body(
        "Final-Recipient: rfc822; gone@gmail.example\nAction: failed\nStatus: 5.1.1\n\
         Remote-MTA: dns; gmail-smtp-in.l.google.com\n\
         Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does\n \
         not exist. Please try double-checking the recipient's email address",
    );
    // SES: the same, from its reporting MTA.
    let ses = status_body(
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\n\
         Remote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 550 5.1.1 user unknown",
    );
    for body in [exchange, gmail, ses] {
        let report = parse_delivery_status(body.as_bytes()).expect("a report");
        assert_eq!(report.recipients.len(), 1, "{body}");
        assert_eq!(
            report.recipients[0].bounce_class(),
            Some(BounceClass::Hard),
            "{body}"
        );
    }
    let gmail = parse_delivery_status(
        status_body(
            "Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n\
             Diagnostic-Code: smtp; 550-5.1.1 first\n second",
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        gmail.recipients[0].diagnostic.as_deref(),
        Some("550-5.1.1 first second")
    );
}

#[test]
fn delays_successes_and_full_mailboxes_are_not_hard() {
    let body = status_body(
        "Final-Recipient: rfc822; slow@example.net\nAction: delayed\nStatus: 4.4.7\n\
         Diagnostic-Code: smtp; 451 4.4.7 try again later\n\n\
         Final-Recipient: rfc822; ok@example.net\nAction: delivered (to mailbox)\nStatus: 2.0.0\n\n\
         Final-Recipient: rfc822; full@example.net\nAction: failed\nStatus: 5.2.2\n\
         Diagnostic-Code: smtp; 552 5.2.2 Mailbox full",
    );
    let report = parse_delivery_status(body.as_bytes()).unwrap();
    let actions: Vec<Action> = report.recipients.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [Action::Delayed, Action::Delivered, Action::Failed]
    );
    assert_eq!(report.recipients[0].bounce_class(), None);
    assert_eq!(report.recipients[1].bounce_class(), None);
    assert_eq!(report.recipients[2].bounce_class(), Some(BounceClass::Soft));
}

#[test]
fn a_failure_without_a_status_is_classified_by_its_diagnostic() {
    let body = status_body(
        "Final-Recipient: rfc822; x@example.net\nAction: failed\n\
         Diagnostic-Code: X-Unix; no such user here",
    );
    let report = parse_delivery_status(body.as_bytes()).unwrap();
    assert_eq!(
        report.recipients[0].diagnostic.as_deref(),
        Some("no such user here")
    );
    assert_eq!(report.recipients[0].bounce_class(), Some(BounceClass::Hard));
}

#[test]
fn what_is_not_a_delivery_report_is_none() {
    assert!(parse_delivery_report(b"Subject: hello\r\n\r\nJust a reply.\r\n").is_none());
    assert!(parse_delivery_report(b"").is_none());
    // A report part without any recipient group.
    assert!(parse_delivery_status(b"Reporting-MTA: dns; x\n").is_none());
    // A recipient group without an action, or with one no RFC names.
    assert!(
        parse_delivery_status(b"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\n").is_none()
    );
    assert!(
        parse_delivery_status(
            b"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: exploded\n"
        )
        .is_none()
    );
}

#[test]
fn bounces_without_a_report_are_classified_by_written_rules() {
    // Exim's default bounce: text only.
    let exim = "This message was created automatically by mail delivery software.\n\n\
                A message that you sent could not be delivered to one or more of its\n\
                recipients. This is a permanent error. The following address(es) failed:\n\n\
                  gone@example.net\n    host mx.example.net [192.0.2.1]\n\
                    SMTP error from remote mail server after RCPT TO:<gone@example.net>:\n\
                    550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown";
    assert_eq!(classify_text(exim), Some(BounceClass::Hard));
    assert_eq!(
        classify_text("The recipient's mailbox is full and can't accept messages now."),
        Some(BounceClass::Soft)
    );
    assert_eq!(
        classify_text("451 4.7.1 Greylisted, please try again in 5 minutes"),
        Some(BounceClass::Soft)
    );
    assert_eq!(
        classify_text("Host or domain name not found. Name service error for name=nx.example"),
        Some(BounceClass::Hard)
    );
    // A policy refusal says nothing about the address; an unknown wording stays unknown.
    assert_eq!(
        classify_text("554 5.7.1 Message rejected as spam"),
        Some(BounceClass::Soft)
    );
    assert_eq!(
        classify_text("Your message was blocked by our filters"),
        None
    );
    // Addresses and version numbers are not status codes.
    assert_eq!(
        classify_text("relay 192.0.2.1 running Postfix 3.5.2 said: whatever"),
        None
    );
}

proptest::proptest! {
    /// Any bytes: the parsers answer, never panic.
    #[test]
    fn the_parsers_never_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let _ = parse_delivery_report(&raw);
        let _ = parse_delivery_status(&raw);
        let _ = parse_feedback_report(&raw);
        let _ = classify_text(&String::from_utf8_lossy(&raw));
    }
}

/// A feedback report in RFC 5965's shape, as a mailbox provider's feedback loop sends it.
const ARF: &str = "From: fbl@isp.example\r
To: fbl@mx.missive.example\r
Subject: FW: Hi\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report;\r
     boundary=\"part1_13d.2e68ed54_boundary\"\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: text/plain; charset=\"US-ASCII\"\r
\r
This is an email abuse report for an email message received from IP\r
192.0.2.1 on Thu, 8 Mar 2026 14:00:00 EDT.\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: SomeGenerator/1.0\r
Version: 1\r
Original-Mail-From: <b-token@send.acme.test>\r
Original-Rcpt-To: <reader@isp.example>\r
Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT\r
Reporting-MTA: dns; mail.isp.example\r
Source-IP: 192.0.2.1\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: message/rfc822\r
Content-Disposition: inline\r
\r
Return-Path: <b-token@send.acme.test>\r
From: News <news@acme.test>\r
To: reader@isp.example\r
Subject: Hi\r
Message-ID: <01936d2e-0000-7000-8000-000000000002@acme.test>\r
\r
Hello. Message-ID: <not-this-one@body.example>\r
\r
--part1_13d.2e68ed54_boundary--\r
";

#[test]
fn a_feedback_report_names_the_complaint_the_return_path_and_the_message() {
    let report = parse_feedback_report(ARF.as_bytes()).expect("a feedback report");
    assert_eq!(report.feedback_type, FeedbackType::Abuse);
    assert!(report.feedback_type.is_complaint());
    assert_eq!(report.user_agent.as_deref(), Some("SomeGenerator/1.0"));
    assert_eq!(
        report.original_mail_from.as_deref(),
        Some("b-token@send.acme.test")
    );
    assert_eq!(report.original_rcpt_to, ["reader@isp.example"]);
    assert_eq!(report.reporting_mta.as_deref(), Some("mail.isp.example"));
    assert_eq!(
        report.original_message_id.as_deref(),
        Some("01936d2e-0000-7000-8000-000000000002@acme.test")
    );
    assert_eq!(
        report.original_return_path.as_deref(),
        Some("b-token@send.acme.test")
    );
    assert_eq!(report.original_to.as_deref(), Some("reader@isp.example"));
    // A feedback report is no delivery report, and the other way round.
    assert!(parse_delivery_report(ARF.as_bytes()).is_none());
    assert!(parse_feedback_report(POSTFIX.as_bytes()).is_none());
}

#[test]
fn feedback_types_say_whether_the_recipient_complained() {
    let with_type =
        |kind: &str| ARF.replace("Feedback-Type: abuse", &format!("Feedback-Type: {kind}"));
    for (kind, expected, complaint) in [
        ("fraud", FeedbackType::Fraud, true),
        ("Virus", FeedbackType::Virus, true),
        ("not-spam", FeedbackType::NotSpam, false),
        ("auth-failure", FeedbackType::Other, false),
    ] {
        let report = parse_feedback_report(with_type(kind).as_bytes()).unwrap();
        assert_eq!(report.feedback_type, expected, "{kind}");
        assert_eq!(report.feedback_type.is_complaint(), complaint, "{kind}");
    }
    // Without a Feedback-Type it is not a feedback report.
    let untyped = ARF.replace("Feedback-Type: abuse\r\n", "");
    assert!(parse_feedback_report(untyped.as_bytes()).is_none());
}

#[test]
fn reading_a_delivery_report_gives_a_finding_per_recipient() {
    let reading = read(POSTFIX.as_bytes(), true);
    assert_eq!(reading.findings.len(), 1);
    let finding = &reading.findings[0];
    assert_eq!(finding.recipient.as_deref(), Some("gone@example.net"));
    assert_eq!(finding.kind, FindingKind::Bounced(Some(BounceClass::Hard)));
    assert_eq!(finding.status.as_deref(), Some("5.1.1"));
    assert_eq!(finding.code, Some(550));
    assert!(
        finding.detail.contains("User unknown"),
        "{}",
        finding.detail
    );
    assert_eq!(finding.reporting_mta.as_deref(), Some("relay.example"));
    let delayed = read(
        POSTFIX
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.4.1")
            .as_bytes(),
        true,
    );
    assert_eq!(delayed.findings[0].kind, FindingKind::Delayed);
    let relayed = read(
        POSTFIX
            .replace("Action: failed", "Action: relayed")
            .replace("Status: 5.1.1", "Status: 2.0.0")
            .as_bytes(),
        true,
    );
    assert_eq!(relayed.findings[0].kind, FindingKind::Delivered);
}

#[test]
fn reading_a_complaint_names_its_recipient_and_return_path() {
    let reading = read(ARF.as_bytes(), false);
    assert_eq!(reading.findings.len(), 1);
    assert_eq!(reading.findings[0].kind, FindingKind::Complained);
    assert_eq!(
        reading.findings[0].recipient.as_deref(),
        Some("reader@isp.example")
    );
    assert_eq!(
        reading.original_return_path.as_deref(),
        Some("b-token@send.acme.test")
    );
    // Marked as not spam: nothing to record.
    let not_spam = ARF.replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
    assert!(read(not_spam.as_bytes(), false).is_empty());
}

#[test]
fn plain_bounces_are_read_only_from_daemons_and_never_from_auto_replies() {
    let bounce = "From: MAILER-DAEMON@mx.example.net\r\nTo: b-token@send.acme.test\r\n\
                  Subject: failure notice\r\n\r\n\
                  Sorry, we were unable to deliver your message to the following address.\r\n\r\n\
                  <gone@example.net>:\r\n550 5.1.1 The email account that you tried to reach does not exist\r\n";
    let reading = read(bounce.as_bytes(), true);
    assert_eq!(reading.findings.len(), 1);
    assert_eq!(reading.findings[0].recipient, None);
    assert_eq!(
        reading.findings[0].kind,
        FindingKind::Bounced(Some(BounceClass::Hard))
    );
    assert_eq!(reading.findings[0].code, Some(550));
    assert!(reading.candidates.contains(&"gone@example.net".to_owned()));
    // The same words from a person, or an out-of-office reply, are no bounce.
    let person = bounce.replace("MAILER-DAEMON@", "someone@");
    assert!(read(person.as_bytes(), false).is_empty());
    let auto = format!("Auto-Submitted: auto-replied\r\n{bounce}");
    assert!(read(auto.as_bytes(), true).is_empty());
}

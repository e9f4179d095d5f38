//! Fuzzes the report parsers (RFC 3464 delivery reports, bounces classified from their text, and
//! RFC 5965 feedback reports) with arbitrary bytes as the inbound MX would hand them over.
//!
//! Checks: no panic; every recipient a report yields has a known action and a diagnostic
//! without line breaks (continuation lines are joined); and the MX's reading of a message (what
//! it records) names only lower-case addresses and keeps details within their cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_core::report::{
    MAX_DETAIL, classify_text, parse_delivery_report, parse_delivery_status, parse_feedback_report,
    read,
};

fuzz_target!(|data: &[u8]| {
    for report in [parse_delivery_report(data), parse_delivery_status(data)]
        .into_iter()
        .flatten()
    {
        assert!(!report.recipients.is_empty());
        for recipient in &report.recipients {
            assert!(
                recipient
                    .diagnostic
                    .as_deref()
                    .is_none_or(|d| !d.contains('\n'))
            );
            let _ = recipient.bounce_class();
        }
    }
    if let Some(feedback) = parse_feedback_report(data) {
        let _ = feedback.feedback_type.is_complaint();
    }
    let _ = classify_text(&String::from_utf8_lossy(data));
    for null_sender in [true, false] {
        let reading = read(data, null_sender);
        for finding in &reading.findings {
            assert!(finding.detail.chars().count() <= MAX_DETAIL);
            assert!(
                finding
                    .recipient
                    .as_deref()
                    .is_none_or(|r| r == r.to_ascii_lowercase())
            );
        }
    }
});

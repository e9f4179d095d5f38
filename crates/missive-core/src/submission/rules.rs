//! The rules each field of a submission answers to: text without control characters, header
//! names and values, tags, attachments, schedules. Each rule a JSON Schema can state has its
//! pattern in [`patterns`], which the OpenAPI document publishes.

use base64::Engine as _;
use time::OffsetDateTime;

use super::{
    Attachment, DraftAttachment, DraftContent, MAX_FILENAME_CHARS, MAX_HEADER_VALUE_BYTES,
    MAX_RECIPIENTS_PER_FIELD, SubmissionError, Tag,
};
use crate::address::Mailbox;

/// The rules below that a JSON Schema can state, as the OpenAPI document states them: each pattern
/// accepts exactly what its rule accepts (the tests check each pair), in the regex dialect that
/// ECMA-262 and Python share.
pub mod patterns {
    /// Text without control characters other than tab: subjects and header values.
    pub const TEXT_LINE: &str = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*$";
    /// A header field name: 1 to 76 printable ASCII characters, no colon.
    pub const HEADER_NAME: &str = r"^[!-9;-~]{1,76}$";
    /// A tag name or value.
    pub const TAG: &str = r"^[A-Za-z0-9_-]{1,256}$";
    /// An attachment's MIME type.
    pub const MIME_TYPE: &str = r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$";
    /// An inline part's content id: printable ASCII without angle brackets.
    pub const CONTENT_ID: &str = r"^[!-;=?-~]{1,255}$";
    /// The characters base64 attachment content may hold (ASCII white space is skipped).
    pub const BASE64_TEXT: &str = r"^[A-Za-z0-9+/=\t\n\x0C\r ]*$";
    /// A body: any text but NUL.
    pub const BODY: &str = r"^[^\x00]*$";
    /// The `tag` filter of a listing: `name:value`, each as [`TAG`].
    pub const TAG_FILTER: &str = r"^[A-Za-z0-9_-]{1,256}:[A-Za-z0-9_-]{1,256}$";
    /// `in N minutes|hours|days`, as the schedule's natural-language form is usually written.
    pub const RELATIVE_SCHEDULE: &str =
        r"^in [0-9]{1,6} (min|mins|minute|minutes|hour|hours|day|days)$";
}

/// Whether `text` has no control character but tab ([`patterns::TEXT_LINE`]).
pub(super) fn is_text_line(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() && c != '\t')
}

/// [`patterns::HEADER_NAME`].
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// [`patterns::TAG`].
pub(super) fn is_tag_part(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// [`patterns::MIME_TYPE`].
pub(super) fn is_mime_type(text: &str) -> bool {
    text.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        token(t) && token(s)
    })
}

/// [`patterns::CONTENT_ID`].
pub(super) fn is_content_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

pub(super) fn mailboxes(field: &str, raw: &[String]) -> Result<Vec<Mailbox>, SubmissionError> {
    if raw.len() > MAX_RECIPIENTS_PER_FIELD {
        return Err(SubmissionError::field(
            field,
            format!("at most {MAX_RECIPIENTS_PER_FIELD} addresses"),
        ));
    }
    raw.iter()
        .map(|a| Mailbox::parse(a).map_err(|e| SubmissionError::field(field, e.to_string())))
        .collect()
}

/// Parses an RFC 3339 time, naming the field when it is not one.
///
/// # Errors
/// [`SubmissionError`] naming `field`.
pub fn parse_rfc3339(field: &str, raw: &str) -> Result<OffsetDateTime, SubmissionError> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| SubmissionError::field(field, format!("`{raw}` is not an RFC 3339 time")))
}

/// When to send a scheduled message, in the forms Resend accepts: an ISO 8601 time with a zone
/// (`2024-08-05T11:52:01.858Z`, `2024-08-05T13:52:01+02:00`, or RFC 3339 with a space for the
/// `T`), or natural language relative to `now`: `in N minutes`, `in N hours` or `in N days`
/// (singular or plural; `min`, `mins` for minutes; any case). A time without a zone is refused
/// (it would be read in some zone the client did not mean), and so is any other phrase
/// (`tomorrow`, `next monday at 9`): a guess would send mail at the wrong time.
///
/// # Errors
/// [`SubmissionError`] naming `scheduled_at` and the accepted forms.
pub fn parse_schedule(raw: &str, now: OffsetDateTime) -> Result<OffsetDateTime, SubmissionError> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let text = raw.trim();
    if let Some(at) = relative(text, now) {
        return Ok(at);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&text.replacen(' ', "T", 1), &Rfc3339))
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .map_err(|_| {
            SubmissionError::field(
                "scheduled_at",
                format!(
                    "`{}` is neither an ISO 8601 time with a zone (2024-08-05T11:52:01Z) nor \
                     `in N minutes|hours|days`",
                    text.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// `in N unit`, as Resend's natural-language schedule.
pub(super) fn relative(text: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let lower = text.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    let (Some("in"), Some(count), Some(unit), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    let count: i64 = count
        .parse()
        .ok()
        .filter(|n: &i64| (0..=527_040).contains(n))?;
    let unit = match unit {
        "min" | "mins" | "minute" | "minutes" => time::Duration::MINUTE,
        "hour" | "hours" => time::Duration::HOUR,
        "day" | "days" => time::Duration::DAY,
        _ => return None,
    };
    now.checked_add(unit.checked_mul(i32::try_from(count).ok()?)?)
}

/// Headers Missive writes itself; a client may not set them through `headers`.
pub(super) const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "sender",
    "return-path",
    "received",
];

/// Whether Missive writes this header itself (any case), so a client's is not carried.
#[must_use]
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// Checks one custom header: a valid field name, not one Missive writes, no line breaks.
///
/// # Errors
/// [`SubmissionError`] naming the header.
pub fn check_custom_header(name: &str, value: &str) -> Result<(), SubmissionError> {
    let field = format!("headers.{name}");
    if !is_header_name(name) {
        return Err(SubmissionError::field(field, "is not a valid header name"));
    }
    if is_reserved_header(name) {
        return Err(SubmissionError::field(
            field,
            "is set by Missive; use the dedicated field",
        ));
    }
    if !is_text_line(value) {
        return Err(SubmissionError::field(
            field,
            "must not contain line breaks or control characters",
        ));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(SubmissionError::field(field, "is longer than 16 KiB"));
    }
    Ok(())
}

/// Parses a listing's `tag` filter, `name:value` ([`patterns::TAG_FILTER`]).
///
/// # Errors
/// [`SubmissionError`] naming `tag`.
pub fn parse_tag_filter(raw: &str) -> Result<Tag, SubmissionError> {
    raw.split_once(':')
        .map(|(name, value)| Tag {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .filter(|tag| is_tag_part(&tag.name) && is_tag_part(&tag.value))
        .ok_or_else(|| {
            SubmissionError::field(
                "tag",
                "must be name:value, each 1 to 256 of A-Z a-z 0-9 _ -",
            )
        })
}

/// Checks a tag as Resend defines it.
///
/// # Errors
/// [`SubmissionError`] naming the tag.
pub fn check_tag(tag: &Tag) -> Result<(), SubmissionError> {
    if !is_tag_part(&tag.name) {
        return Err(SubmissionError::field(
            "tags.name",
            format!("`{}` must be 1 to 256 of A-Z a-z 0-9 _ -", tag.name),
        ));
    }
    if !is_tag_part(&tag.value) {
        return Err(SubmissionError::field(
            "tags.value",
            format!("`{}` must be 1 to 256 of A-Z a-z 0-9 _ -", tag.value),
        ));
    }
    Ok(())
}

pub(super) fn guess_content_type(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "ics" => "text/calendar",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

pub(super) fn attachment(
    index: usize,
    draft: DraftAttachment,
) -> Result<Attachment, SubmissionError> {
    let field = |name: &str| format!("attachments[{index}].{name}");
    if draft.path.is_some() {
        return Err(SubmissionError::field(
            field("path"),
            "remote attachments are not fetched; send `content` (base64)",
        ));
    }
    let content = match draft.content {
        Some(DraftContent::Base64(text)) => {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            engine
                .decode(compact)
                .map_err(|_| SubmissionError::field(field("content"), "not valid base64"))?
        }
        Some(DraftContent::Bytes(bytes)) => bytes,
        None => return Err(SubmissionError::field(field("content"), "required")),
    };
    let filename = draft
        .filename
        .ok_or_else(|| SubmissionError::field(field("filename"), "required"))?;
    if filename.is_empty()
        || filename.chars().count() > MAX_FILENAME_CHARS
        || filename.chars().any(char::is_control)
    {
        return Err(SubmissionError::field(
            field("filename"),
            "1 to 255 characters without control characters",
        ));
    }
    let content_type = match draft.content_type {
        Some(ct) => {
            if !is_mime_type(&ct) {
                return Err(SubmissionError::field(
                    field("content_type"),
                    format!("`{ct}` is not a MIME type such as application/pdf"),
                ));
            }
            ct
        }
        None => guess_content_type(&filename).to_owned(),
    };
    if let Some(cid) = &draft.content_id
        && !is_content_id(cid)
    {
        return Err(SubmissionError::field(
            field("content_id"),
            "printable ASCII without < or >",
        ));
    }
    Ok(Attachment {
        filename,
        content,
        content_type,
        content_id: draft.content_id,
    })
}

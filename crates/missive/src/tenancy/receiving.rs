//! Mail received for a tenant's domains, as Resend's Receiving API shows it: the list (cursor
//! paging like the email list), one message (bodies, headers, attachments' metadata, and our
//! authentication verdicts), its attachments with signed, expiring `download_url`s, and the raw
//! message. Scope `receiving:read`; every project of the tenant reads its received mail.
//!
//! A download link needs no API key: its signature names the tenant, the message, the attachment
//! and the expiry ([`missive_core::download`]), and a link that does not check is a 404.

use std::collections::BTreeMap;
use std::time::Duration;

use missive_core::TenantId;
use missive_core::download::{DownloadLinks, Target};
use missive_core::received::{self, AttachmentMeta, InlineImages, Summary};
use missive_core::{Scope, received::Content};
use missive_store::{ReceivedRecord, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page;

/// How download links are made: signed with the secret keys, on the public URL, for how long.
#[derive(Clone, Debug)]
pub struct Receiving {
    pub links: DownloadLinks,
    /// `MISSIVE_PUBLIC_URL`, without a trailing slash; else the request's own origin.
    pub public_url: Option<String>,
    pub link_ttl: Duration,
}

/// An attachment's metadata (Resend's shape; `size` always known here).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    pub filename: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    pub content_disposition: Option<String>,
    pub size: u64,
}

/// An attachment with its signed link.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentLinkView {
    /// `attachment`.
    #[schema(example = "attachment")]
    pub object: &'static str,
    pub id: Uuid,
    pub filename: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    /// `inline` or `attachment`.
    pub content_disposition: String,
    pub size: u64,
    /// Fetches the attachment's bytes without an API key until `expires_at`.
    pub download_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A received message in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedListItem {
    pub id: Uuid,
    /// The From header as written.
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub attachments: Vec<AttachmentView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One received message (Resend's `received_email`, with the envelope and our verdicts).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedEmailView {
    /// `received_email`.
    #[schema(example = "received_email")]
    pub object: &'static str,
    #[serde(flatten)]
    pub item: ReceivedListItem,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// The envelope recipients it was received for.
    pub received_for: Vec<String>,
    /// The envelope sender; empty for the null reverse path.
    pub mail_from: String,
    /// SPF (`result`, `domain`), DKIM (one verdict per signature: `result`, `domain`,
    /// `selector`) and DMARC (`result`, the author's `domain`, its `policy`), as checked on
    /// arrival.
    #[schema(value_type = Object)]
    pub authentication: serde_json::Value,
    /// Size of the raw message, in bytes.
    pub size: i32,
}

/// A page of received mail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<ReceivedListItem>,
    pub has_more: bool,
}

/// A message's attachments with their links.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<AttachmentLinkView>,
    pub has_more: bool,
}

/// Paging for `GET /v1/emails/receiving` and a message's attachments.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListReceivedQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Entries older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Entries newer than this id.
    pub before: Option<Uuid>,
}

/// `GET /v1/emails/receiving/{id}`'s options (Resend's).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetReceivedQuery {
    /// `data_uri` (the default) puts inline images into `html` as base64 `data:` URIs; `cid`
    /// keeps their `cid:` references, each matching an attachment's `content_id`.
    #[param(inline)]
    pub html_format: Option<HtmlFormat>,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HtmlFormat {
    DataUri,
    Cid,
}

/// A download link's query: the tenant, the expiry (Unix seconds) and the signature.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    pub tenant: Uuid,
    pub expires: i64,
    pub signature: String,
}

fn summary_of(record: &ReceivedRecord) -> Summary {
    serde_json::from_value(record.summary.clone()).unwrap_or_default()
}

fn attachment_view(a: &AttachmentMeta) -> AttachmentView {
    AttachmentView {
        id: a.id,
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        content_id: a.content_id.clone(),
        content_disposition: a.content_disposition.clone(),
        size: a.size,
    }
}

fn list_item(record: &ReceivedRecord, summary: Summary) -> ReceivedListItem {
    ReceivedListItem {
        id: record.id,
        from: summary.from,
        to: summary.to,
        cc: summary.cc,
        bcc: summary.bcc,
        reply_to: summary.reply_to,
        subject: record.subject.clone().unwrap_or_default(),
        message_id: record.message_id.clone().unwrap_or_default(),
        attachments: summary.attachments.iter().map(attachment_view).collect(),
        created_at: record.created_at,
    }
}

/// A page of the tenant's received mail, newest first.
///
/// # Errors
/// [`ServiceError::Invalid`] for a bad limit.
pub async fn list(
    store: &Store,
    caller: Caller<'_>,
    query: &ListReceivedQuery,
) -> Result<ReceivedList, ServiceError> {
    let tenant_id = caller.require(Scope::ReceivingRead)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = store.list_received_emails(tenant_id, cursor, limit).await?;
    Ok(ReceivedList {
        object: "list",
        data: page
            .items
            .iter()
            .map(|r| list_item(r, summary_of(r)))
            .collect(),
        has_more: page.has_more,
    })
}

/// One received message with its bodies and headers (read from the stored message on the
/// blocking pool).
///
/// # Errors
/// [`ServiceError::NotFound`] when the tenant has no such message.
pub async fn get(
    store: &Store,
    caller: Caller<'_>,
    id: Uuid,
    format: Option<HtmlFormat>,
) -> Result<ReceivedEmailView, ServiceError> {
    let tenant_id = caller.require(Scope::ReceivingRead)?;
    let (record, raw) = store.received_email(tenant_id, id).await?;
    let images = match format {
        Some(HtmlFormat::Cid) => InlineImages::Cid,
        Some(HtmlFormat::DataUri) | None => InlineImages::DataUri,
    };
    let content: Content = tokio::task::spawn_blocking(move || received::content(&raw, images))
        .await
        .map_err(|e| ServiceError::Internal(format!("reading a received message: {e}")))?;
    let summary = summary_of(&record);
    Ok(ReceivedEmailView {
        object: "received_email",
        item: list_item(&record, summary),
        html: content.html,
        text: content.text,
        headers: content.headers,
        received_for: record.rcpt_to,
        mail_from: record.mail_from,
        authentication: record.authentication,
        size: record.size,
    })
}

/// The raw message as received.
///
/// # Errors
/// [`ServiceError::NotFound`] when the tenant has no such message.
pub async fn raw(store: &Store, caller: Caller<'_>, id: Uuid) -> Result<Vec<u8>, ServiceError> {
    let tenant_id = caller.require(Scope::ReceivingRead)?;
    Ok(store.received_email(tenant_id, id).await?.1)
}

impl Receiving {
    fn link(
        &self,
        origin: &str,
        tenant: TenantId,
        email: Uuid,
        a: &AttachmentMeta,
    ) -> AttachmentLinkView {
        let expires_at = OffsetDateTime::now_utc() + self.link_ttl;
        let target = Target {
            tenant,
            email,
            attachment: a.id,
            expires: expires_at.unix_timestamp(),
        };
        let base = self.public_url.as_deref().unwrap_or(origin);
        AttachmentLinkView {
            object: "attachment",
            id: a.id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            content_id: a.content_id.clone(),
            content_disposition: match a.content_disposition.as_deref() {
                Some("inline") => "inline".to_owned(),
                _ => "attachment".to_owned(),
            },
            size: a.size,
            download_url: format!(
                "{base}/v1/emails/receiving/{email}/attachments/{}/content?tenant={}&expires={}&signature={}",
                a.id,
                tenant,
                target.expires,
                self.links.sign(&target),
            ),
            expires_at: OffsetDateTime::from_unix_timestamp(target.expires).unwrap_or(expires_at),
        }
    }

    /// A message's attachments with fresh links on `origin` (the request's, unless
    /// `MISSIVE_PUBLIC_URL` is set).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the tenant has no such message.
    pub async fn attachments(
        &self,
        store: &Store,
        caller: Caller<'_>,
        origin: &str,
        id: Uuid,
        query: &ListReceivedQuery,
    ) -> Result<AttachmentList, ServiceError> {
        let tenant_id = caller.require(Scope::ReceivingRead)?;
        let (_, limit) = page(query.limit, query.after, query.before)?;
        let (record, _) = store.received_email(tenant_id, id).await?;
        let all = summary_of(&record).attachments;
        // Attachment ids are time-ordered too: the same cursors as any listing.
        let mut window: Vec<&AttachmentMeta> = all
            .iter()
            .filter(|a| query.after.is_none_or(|after| a.id > after))
            .filter(|a| query.before.is_none_or(|before| a.id < before))
            .collect();
        let has_more = window.len() as i64 > limit;
        window.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(AttachmentList {
            object: "list",
            data: window
                .into_iter()
                .map(|a| self.link(origin, tenant_id, id, a))
                .collect(),
            has_more,
        })
    }

    /// One attachment with a fresh link.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the tenant has no such message or attachment.
    pub async fn attachment(
        &self,
        store: &Store,
        caller: Caller<'_>,
        origin: &str,
        id: Uuid,
        attachment_id: Uuid,
    ) -> Result<AttachmentLinkView, ServiceError> {
        let tenant_id = caller.require(Scope::ReceivingRead)?;
        let (record, _) = store.received_email(tenant_id, id).await?;
        let summary = summary_of(&record);
        let found = summary
            .attachments
            .iter()
            .find(|a| a.id == attachment_id)
            .ok_or(ServiceError::NotFound)?;
        Ok(self.link(origin, tenant_id, id, found))
    }

    /// The bytes a download link names, with the attachment's metadata, when its signature
    /// checks and it has not expired.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for a link that does not check, has expired, or names
    /// nothing.
    pub async fn download(
        &self,
        store: &Store,
        id: Uuid,
        attachment_id: Uuid,
        query: &DownloadQuery,
    ) -> Result<(AttachmentMeta, Vec<u8>), ServiceError> {
        let tenant = TenantId::from_uuid(query.tenant);
        let target = Target {
            tenant,
            email: id,
            attachment: attachment_id,
            expires: query.expires,
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if !self.links.check(&target, &query.signature, now) {
            metrics::counter!("missive_attachment_links_refused_total").increment(1);
            return Err(ServiceError::NotFound);
        }
        let (record, raw) = store.received_email(tenant, id).await?;
        let meta = summary_of(&record)
            .attachments
            .into_iter()
            .find(|a| a.id == attachment_id)
            .ok_or(ServiceError::NotFound)?;
        let part = meta.part;
        let bytes = tokio::task::spawn_blocking(move || received::attachment(&raw, part))
            .await
            .map_err(|e| ServiceError::Internal(format!("reading an attachment: {e}")))?
            .ok_or(ServiceError::NotFound)?;
        Ok((meta, bytes))
    }
}

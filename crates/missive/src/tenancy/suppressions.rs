//! Each tenant's suppression list as both front ends show and change it: Resend's
//! Suppressions API shapes (add, list, get and remove by id or address, and the batch forms),
//! scope `suppressions:manage`.
//!
//! A suppressed address still gets accepted mail: its recipient is `suppressed` at once, with its
//! `email.suppressed` event, and never sent; the email's other recipients are delivered.

use missive_core::{EmailAddress, EmailId, Scope, SuppressionOrigin, TenantId};
use missive_store::{Store, SuppressionKey, SuppressionRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page;

/// Addresses one batch call adds or removes at most (Resend's limit).
const MAX_BATCH: usize = 100;

/// `POST /v1/suppressions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionRequest {
    /// The address to suppress.
    #[schema(max_length = 320)]
    pub email: String,
}

/// `POST /v1/suppressions/batch/add`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionsRequest {
    /// 1 to 100 addresses.
    #[schema(min_items = 1, max_items = 100)]
    pub emails: Vec<String>,
}

/// `POST /v1/suppressions/batch/remove`: addresses or ids, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveSuppressionsRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub emails: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Option<Vec<Uuid>>,
}

/// A suppressed address (Resend's shape, with our `tenant_id` and the refusal that put it
/// there).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// Always `suppression`.
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// Lower-cased.
    pub email: String,
    pub origin: SuppressionOrigin,
    /// The email that bounced; null for manual entries.
    pub source_id: Option<EmailId>,
    /// The upstream server's reply, or the report's diagnostic, for a bounce.
    pub reason: Option<String>,
    /// The enhanced status a bounce report gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn view(record: SuppressionRecord) -> SuppressionView {
    SuppressionView {
        object: "suppression",
        id: record.id,
        tenant_id: record.tenant_id,
        email: record.email,
        origin: record.origin,
        source_id: record.source_id,
        reason: record.reason,
        status: record.status,
        created_at: record.created_at,
    }
}

/// The answer to an add: the entry's id (an address already listed keeps its entry).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionRefView {
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
}

/// The answer to a removal.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedSuppression {
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
    pub deleted: bool,
}

/// The answer to a batch add.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedSuppressions {
    pub data: Vec<SuppressionRefView>,
}

/// The answer to a batch removal: the entries that were on the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedSuppressions {
    pub data: Vec<RemovedSuppression>,
}

/// A page of the list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<SuppressionView>,
    pub has_more: bool,
}

/// Filter and paging for `GET /v1/suppressions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSuppressionsQuery {
    /// Only entries of this origin.
    pub origin: Option<SuppressionOrigin>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Entries older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Entries newer than this id. With `after` too, the entries between the two.
    pub before: Option<Uuid>,
}

/// Checks each address; the whole request is refused for one bad address.
fn addresses(emails: &[String]) -> Result<Vec<&str>, ServiceError> {
    if emails.is_empty() || emails.len() > MAX_BATCH {
        return Err(ServiceError::Invalid(format!(
            "emails: from 1 to {MAX_BATCH} addresses"
        )));
    }
    emails
        .iter()
        .map(|email| {
            EmailAddress::parse(email.trim())
                .map(|_| email.trim())
                .map_err(|e| ServiceError::Invalid(format!("email `{email}`: {e}")))
        })
        .collect()
}

fn ref_view(record: &SuppressionRecord) -> SuppressionRefView {
    SuppressionRefView {
        object: "suppression",
        id: record.id,
    }
}

/// An id or an address, as the routes take them.
fn key(id_or_email: &str) -> SuppressionKey<'_> {
    id_or_email
        .parse::<Uuid>()
        .map_or(SuppressionKey::Email(id_or_email), SuppressionKey::Id)
}

/// Suppresses an address; adding one already listed answers its entry.
///
/// # Errors
/// [`ServiceError::Invalid`] for an address that is not one.
pub async fn add(
    store: &Store,
    caller: Caller<'_>,
    request: AddSuppressionRequest,
) -> Result<SuppressionRefView, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    let emails = [request.email];
    let added = store
        .add_suppressions(tenant_id, &addresses(&emails)?)
        .await?;
    let first = added.first().ok_or_else(|| {
        ServiceError::Internal("an added suppression was not found after its insert".to_owned())
    })?;
    Ok(ref_view(first))
}

/// Suppresses up to 100 addresses at once.
///
/// # Errors
/// [`ServiceError::Invalid`] for no address, more than 100, or one that is not an address.
pub async fn add_many(
    store: &Store,
    caller: Caller<'_>,
    request: &AddSuppressionsRequest,
) -> Result<AddedSuppressions, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    let added = store
        .add_suppressions(tenant_id, &addresses(&request.emails)?)
        .await?;
    Ok(AddedSuppressions {
        data: added.iter().map(ref_view).collect(),
    })
}

/// A page of the tenant's suppressed addresses, newest first.
///
/// # Errors
/// [`ServiceError::Invalid`] for a bad limit.
pub async fn list(
    store: &Store,
    caller: Caller<'_>,
    query: &ListSuppressionsQuery,
) -> Result<SuppressionList, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = store
        .list_suppressions(tenant_id, query.origin, cursor, limit)
        .await?;
    Ok(SuppressionList {
        object: "list",
        data: page.suppressions.into_iter().map(view).collect(),
        has_more: page.has_more,
    })
}

/// One entry, by id or by address.
///
/// # Errors
/// [`ServiceError::NotFound`] when it is not on the tenant's list.
pub async fn get(
    store: &Store,
    caller: Caller<'_>,
    id_or_email: &str,
) -> Result<SuppressionView, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    Ok(view(store.suppression(tenant_id, key(id_or_email)).await?))
}

/// Takes an entry off the list, by id or by address: mail accepted from now on reaches it.
///
/// # Errors
/// [`ServiceError::NotFound`] when it is not on the tenant's list.
pub async fn remove(
    store: &Store,
    caller: Caller<'_>,
    id_or_email: &str,
) -> Result<RemovedSuppression, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    let removed = store
        .remove_suppressions(tenant_id, &[key(id_or_email)])
        .await?;
    let id = removed.first().copied().ok_or(ServiceError::NotFound)?;
    Ok(RemovedSuppression {
        object: "suppression",
        id,
        deleted: true,
    })
}

/// Takes up to 100 entries off the list, by addresses or by ids.
///
/// # Errors
/// [`ServiceError::Invalid`] for neither or both of `emails` and `ids`, or more than 100.
pub async fn remove_many(
    store: &Store,
    caller: Caller<'_>,
    request: &RemoveSuppressionsRequest,
) -> Result<RemovedSuppressions, ServiceError> {
    let tenant_id = caller.require(Scope::SuppressionsManage)?;
    let keys: Vec<SuppressionKey<'_>> = match (&request.emails, &request.ids) {
        (Some(emails), None) if (1..=MAX_BATCH).contains(&emails.len()) => {
            emails.iter().map(|e| SuppressionKey::Email(e)).collect()
        }
        (None, Some(ids)) if (1..=MAX_BATCH).contains(&ids.len()) => {
            ids.iter().copied().map(SuppressionKey::Id).collect()
        }
        _ => {
            return Err(ServiceError::Invalid(format!(
                "give either `emails` or `ids`, from 1 to {MAX_BATCH}"
            )));
        }
    };
    let removed = store.remove_suppressions(tenant_id, &keys).await?;
    Ok(RemovedSuppressions {
        data: removed
            .into_iter()
            .map(|id| RemovedSuppression {
                object: "suppression",
                id,
                deleted: true,
            })
            .collect(),
    })
}

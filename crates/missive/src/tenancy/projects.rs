//! A tenant's projects as a service: the operator manages them all (`/v1/tenants/{id}/projects`,
//! the console), and a key of the tenant with `projects:manage` lists, creates and renames them
//! and issues and revokes their keys (`/v1/projects`). Limits, trusted networks and deletion
//! stay the operator's.

use missive_core::{
    IpNetwork, MonthPeriod, ProjectId, ProjectName, ProjectRef, Scope, TenantId,
    TenantSettingsError,
};
use missive_store::{ProjectPatch, ProjectRecord, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::tenancy::accounts::{self, check_requests_per_minute, double_option};
use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::usage::{self, TenantUsageView};

/// A project as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    /// Always `project`.
    #[schema(example = "project")]
    pub object: &'static str,
    pub id: ProjectId,
    pub tenant_id: TenantId,
    /// Same as `id`, for clients that read `project_id` from every response.
    pub project_id: ProjectId,
    pub name: String,
    /// Whether this is the tenant's first project, which cannot be deleted.
    pub default: bool,
    /// The project's own request rate per minute; null: the tenant's.
    pub requests_per_minute: Option<i32>,
    /// Source networks whose SMTP clients send as this project without AUTH.
    pub trusted_networks: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ProjectRecord> for ProjectView {
    fn from(p: ProjectRecord) -> Self {
        Self {
            object: "project",
            id: p.id,
            tenant_id: p.tenant_id,
            project_id: p.id,
            default: p.id.is_default_of(p.tenant_id),
            name: p.name,
            requests_per_minute: p.requests_per_minute,
            trusted_networks: p.trusted_networks,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A tenant's projects, the default first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<ProjectView>,
}

/// `POST .../projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// 1 to 200 characters, unique (ignoring case) among the tenant's projects.
    #[schema(example = "billing")]
    pub name: String,
    /// The project's own request rate per minute (operator only); absent: the tenant's.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Source networks (CIDR) whose SMTP clients send as this project without AUTH (operator
    /// only).
    #[serde(default)]
    pub trusted_networks: Vec<String>,
}

/// `PATCH .../projects/{project_id}`: absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    pub name: Option<String>,
    /// The project's own request rate per minute; null: the tenant's again (operator only).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub requests_per_minute: Option<Option<u32>>,
    /// Replaces the project's trusted networks (operator only).
    pub trusted_networks: Option<Vec<String>>,
}

fn name(raw: &str) -> Result<ProjectName, ServiceError> {
    ProjectName::parse(raw).map_err(|e: TenantSettingsError| ServiceError::Invalid(e.to_string()))
}

fn networks(raw: &[String]) -> Result<Vec<IpNetwork>, ServiceError> {
    IpNetwork::parse_list(raw).map_err(|e| ServiceError::Invalid(format!("trusted_networks: {e}")))
}

fn rate(n: u32) -> Result<u32, ServiceError> {
    check_requests_per_minute("requests_per_minute", n).map_err(ServiceError::from)
}

/// The tenant whose projects the caller manages: any for the operator, its own for a key with
/// `projects:manage`.
fn managed(caller: Caller<'_>) -> Result<TenantId, ServiceError> {
    Ok(caller.require(Scope::ProjectsManage)?)
}

/// Only the operator sets a project's limits and networks and deletes projects.
fn operator_only(caller: Caller<'_>, what: &str) -> Result<(), ServiceError> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{what} can be set by the operator only"
        )))
    }
}

/// The tenant's live projects (scope `projects:manage`).
///
/// # Errors
/// `NotFound` for an unknown tenant.
pub async fn list(store: &Store, caller: Caller<'_>) -> Result<ProjectList, ServiceError> {
    let tenant = managed(caller)?;
    // An unknown tenant is a 404, not an empty list.
    store.get_tenant(tenant).await?;
    Ok(ProjectList {
        object: "list",
        data: store
            .list_projects(tenant)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

/// One live project of the tenant (scope `projects:manage`).
///
/// # Errors
/// `NotFound` for another tenant's or an unknown project.
pub async fn get(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
) -> Result<ProjectView, ServiceError> {
    let tenant_id = managed(caller)?;
    Ok(store
        .get_project(ProjectRef {
            tenant_id,
            project_id,
        })
        .await?
        .into())
}

/// Creates a project (scope `projects:manage`; limits and networks: the operator only).
///
/// # Errors
/// `Invalid` for a bad field, `Conflict` for a taken name or an overlapping network.
pub async fn create(
    store: &Store,
    caller: Caller<'_>,
    request: &CreateProjectRequest,
) -> Result<ProjectView, ServiceError> {
    let tenant = managed(caller)?;
    let name = name(&request.name)?;
    if request.requests_per_minute.is_some() || !request.trusted_networks.is_empty() {
        operator_only(caller, "a project's limits and trusted networks")?;
    }
    let rpm = request.requests_per_minute.map(rate).transpose()?;
    let networks = networks(&request.trusted_networks)?;
    let mut record = store.create_project(tenant, &name, rpm).await?;
    if !networks.is_empty() {
        record = store
            .update_project(
                record.project(),
                &ProjectPatch {
                    trusted_networks: Some(networks),
                    ..ProjectPatch::default()
                },
            )
            .await?;
    }
    tracing::info!(tenant_id = %tenant, project_id = %record.id, "project created");
    Ok(record.into())
}

/// Renames a project, and for the operator changes its limits and networks (scope
/// `projects:manage`).
///
/// # Errors
/// `NotFound`, `Invalid` for a bad field, `Conflict` for a taken name or overlapping network.
pub async fn update(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
    request: &UpdateProjectRequest,
) -> Result<ProjectView, ServiceError> {
    let tenant_id = managed(caller)?;
    if request.requests_per_minute.is_some() || request.trusted_networks.is_some() {
        operator_only(caller, "a project's limits and trusted networks")?;
    }
    let patch = ProjectPatch {
        name: request.name.as_deref().map(name).transpose()?,
        requests_per_minute: request
            .requests_per_minute
            .map(|n| n.map(rate).transpose())
            .transpose()?,
        trusted_networks: request
            .trusted_networks
            .as_deref()
            .map(networks)
            .transpose()?,
    };
    let project = ProjectRef {
        tenant_id,
        project_id,
    };
    let record = store.update_project(project, &patch).await?;
    tracing::info!(%tenant_id, %project_id, "project updated");
    Ok(record.into())
}

/// Deletes a project other than the default (the operator only): its keys are revoked, its
/// history kept.
///
/// # Errors
/// `NotFound`; `Conflict` for the default project.
pub async fn delete(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
) -> Result<ProjectView, ServiceError> {
    let tenant_id = managed(caller)?;
    operator_only(caller, "deleting a project")?;
    let record = store
        .delete_project(ProjectRef {
            tenant_id,
            project_id,
        })
        .await?;
    tracing::info!(%tenant_id, %project_id, "project deleted");
    Ok(record.into())
}

/// A live project of the caller's tenant, for its keys.
async fn live(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
) -> Result<ProjectRef, ServiceError> {
    let tenant_id = managed(caller)?;
    let project = ProjectRef {
        tenant_id,
        project_id,
    };
    store.get_project(project).await?;
    Ok(project)
}

/// Issues a key for a project (scope `projects:manage`).
///
/// # Errors
/// As [`accounts::create_api_key`].
pub async fn create_key(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
    request: &accounts::CreateApiKeyRequest,
) -> Result<accounts::CreatedApiKeyView, ServiceError> {
    let project = live(store, caller, project_id).await?;
    let grantor = match caller {
        Caller::Key(auth) => Some(&auth.scopes),
        Caller::Operator(_) => None,
    };
    Ok(accounts::create_api_key(store, project, grantor, request).await?)
}

/// A project's keys (scope `projects:manage`).
///
/// # Errors
/// `NotFound` for an unknown project.
pub async fn list_keys(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
) -> Result<accounts::ApiKeyList, ServiceError> {
    let project = live(store, caller, project_id).await?;
    Ok(accounts::list_api_keys(store, project.into()).await?)
}

/// Revokes one of a project's keys (scope `projects:manage`).
///
/// # Errors
/// `NotFound` when the project has no such key; `Conflict` when it is already revoked.
pub async fn revoke_key(
    store: &Store,
    caller: Caller<'_>,
    project_id: ProjectId,
    key_id: missive_core::ApiKeyId,
) -> Result<accounts::ApiKeyView, ServiceError> {
    let project = live(store, caller, project_id).await?;
    Ok(accounts::revoke_api_key(store, project.into(), key_id).await?)
}

/// The tenant's figures for a month with each project's (scope `projects:manage`).
///
/// # Errors
/// `NotFound` for an unknown tenant.
pub async fn usage(
    store: &Store,
    caller: Caller<'_>,
    period: MonthPeriod,
) -> Result<TenantUsageView, ServiceError> {
    let tenant = managed(caller)?;
    usage::tenant_month(store, tenant, period).await
}

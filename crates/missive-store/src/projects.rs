//! Projects: a tenant's applications. Created, renamed and deleted by the operator or by a key
//! of the tenant with `projects:manage`; read confined to their tenant.
//!
//! A tenant's `default` project (id = the tenant's id) is made with the tenant and cannot be
//! deleted. Deleting another project revokes its keys and frees its trusted networks; its
//! history stays for the operator's records, as a deleted tenant's does.

use missive_core::{IpNetwork, ProjectId, ProjectName, ProjectRef, TenantId, TenantStatus};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};

use crate::checked::records;
use crate::error::map_unique;
use crate::tenants::replace_trusted_networks;
use crate::usage::{UsageTotals, sums, totals_of};
use crate::{Store, StoreError};

const PROJECT_CONFLICTS: &[(&str, &str)] = &[(
    "projects_live_name_key",
    "this tenant already has a project with this name",
)];

/// A checked statement reading [`ProjectRecord`]s from `projects`: `$head`, the record's
/// columns, `$tail`.
macro_rules! query_projects {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ProjectRecord,
            $head
                + r#"tenant_id AS "tenant_id: TenantId", id AS "id: ProjectId", name,
                     requests_per_minute,
                     ARRAY(SELECT n.network::text FROM trusted_networks n
                           WHERE n.tenant_id = projects.tenant_id AND n.project_id = projects.id
                           ORDER BY n.network) AS "trusted_networks!",
                     created_at, updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}

/// A live project.
#[derive(Clone, Debug)]
pub struct ProjectRecord {
    pub tenant_id: TenantId,
    pub id: ProjectId,
    pub name: String,
    /// The project's request rate limit (null: the tenant's).
    pub requests_per_minute: Option<i32>,
    /// The source networks whose SMTP clients send as this project without AUTH.
    pub trusted_networks: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl ProjectRecord {
    #[must_use]
    pub const fn project(&self) -> ProjectRef {
        ProjectRef {
            tenant_id: self.tenant_id,
            project_id: self.id,
        }
    }
}

/// A partial update of a project; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProjectPatch {
    pub name: Option<ProjectName>,
    /// `Some(None)` clears the project's own rate (the tenant's applies again).
    pub requests_per_minute: Option<Option<u32>>,
    pub trusted_networks: Option<Vec<IpNetwork>>,
}

/// One project's counts over a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectUsage {
    pub project_id: ProjectId,
    /// Empty for a project deleted since.
    pub name: String,
    pub totals: UsageTotals,
}

/// [`ProjectUsage`] as read.
struct ProjectUsageRow {
    project_id: ProjectId,
    name: String,
    used: i64,
    sent: i64,
    smtp_messages: i64,
    delivered: i64,
    bounced: i64,
    failed: i64,
    suppressed: i64,
    api_requests: i64,
    received: i64,
    received_bytes: i64,
}

/// Locks a live, active tenant's row against a concurrent delete.
async fn lock_active_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<(), StoreError> {
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: TenantStatus" FROM tenants
           WHERE id = $1 AND deleted_at IS NULL FOR SHARE"#,
        tenant.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    match status {
        None => Err(StoreError::NotFound),
        Some(TenantStatus::Active) => Ok(()),
        Some(TenantStatus::Disabled) => Err(StoreError::Conflict("the tenant is disabled")),
    }
}

async fn select_project(
    conn: &mut PgConnection,
    project: ProjectRef,
) -> Result<ProjectRecord, StoreError> {
    query_projects!(
        "SELECT ",
        " FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        project.tenant_id.as_uuid(),
        project.project_id.as_uuid(),
    )
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)
}

impl Store {
    /// Adds a project to an active tenant.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant; `Conflict` for a disabled tenant or a taken name.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn create_project(
        &self,
        tenant_id: TenantId,
        name: &ProjectName,
        requests_per_minute: Option<u32>,
    ) -> Result<ProjectRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_active_tenant(&mut tx, tenant_id).await?;
        let record = query_projects!(
            "INSERT INTO projects (tenant_id, id, name, requests_per_minute)
             VALUES ($1, $2, $3, $4)
             RETURNING ",
            "",
            tenant_id.as_uuid(),
            ProjectId::new().as_uuid(),
            name.as_str(),
            requests_per_minute.and_then(|n| i32::try_from(n).ok()),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_unique(e, PROJECT_CONFLICTS))?;
        tx.commit().await?;
        Ok(record)
    }

    /// A tenant's live projects, the default first, then in creation order.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_projects(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<ProjectRecord>, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            Ok(query_projects!(
                "SELECT ",
                " FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL
                 ORDER BY id <> tenant_id, created_at, id",
                tenant_id.as_uuid(),
            )
            .fetch_all(conn)
            .await?)
        })
        .await
    }

    /// One live project.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such live project.
    pub async fn get_project(&self, project: ProjectRef) -> Result<ProjectRecord, StoreError> {
        self.confined_read(project.tenant_id, async |conn| {
            select_project(conn, project).await
        })
        .await
    }

    /// Applies a partial update to a live project.
    ///
    /// # Errors
    /// `NotFound` for an unknown project; `Conflict` for a taken name or an overlapping network.
    #[tracing::instrument(skip_all, fields(tenant_id = %project.tenant_id, project_id = %project.project_id))]
    pub async fn update_project(
        &self,
        project: ProjectRef,
        patch: &ProjectPatch,
    ) -> Result<ProjectRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_active_tenant(&mut tx, project.tenant_id).await?;
        let changed = sqlx::query_scalar!(
            r#"UPDATE projects
               SET name = COALESCE($3, name),
                   requests_per_minute = CASE WHEN $4 THEN $5 ELSE requests_per_minute END,
                   updated_at = now()
               WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
               RETURNING true AS "changed!""#,
            project.tenant_id.as_uuid(),
            project.project_id.as_uuid(),
            patch.name.as_ref().map(ProjectName::as_str),
            patch.requests_per_minute.is_some(),
            patch
                .requests_per_minute
                .flatten()
                .and_then(|n| i32::try_from(n).ok()),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_unique(e, PROJECT_CONFLICTS))?;
        if changed.is_none() {
            return Err(StoreError::NotFound);
        }
        if let Some(networks) = &patch.trusted_networks {
            replace_trusted_networks(&mut tx, project, networks).await?;
        }
        let record = select_project(&mut tx, project).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Deletes a project other than the default: it answers 404 from now on, its live keys are
    /// revoked and its trusted networks freed. Returns it as it was.
    ///
    /// # Errors
    /// `NotFound` for an unknown project; `Conflict` for the default project.
    #[tracing::instrument(skip_all, fields(tenant_id = %project.tenant_id, project_id = %project.project_id))]
    pub async fn delete_project(&self, project: ProjectRef) -> Result<ProjectRecord, StoreError> {
        if project.project_id.is_default_of(project.tenant_id) {
            return Err(StoreError::Conflict(
                "the default project cannot be deleted",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let record = select_project(&mut tx, project).await?;
        sqlx::query!(
            "UPDATE projects SET deleted_at = now(), updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
            project.tenant_id.as_uuid(),
            project.project_id.as_uuid(),
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE api_keys SET revoked_at = now()
             WHERE tenant_id = $1 AND project_id = $2 AND revoked_at IS NULL",
            project.tenant_id.as_uuid(),
            project.project_id.as_uuid(),
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM trusted_networks WHERE tenant_id = $1 AND project_id = $2",
            project.tenant_id.as_uuid(),
            project.project_id.as_uuid(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Each project's counts over the days `from..=to`, the default first: every live project
    /// (with zeros when it has none) and any deleted one with counts, so they sum to the
    /// tenant's.
    ///
    /// # Errors
    /// Database failures.
    pub async fn usage_by_project(
        &self,
        tenant_id: TenantId,
        from: Date,
        to: Date,
    ) -> Result<Vec<ProjectUsage>, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            let rows = sums!(
                records!(
                    ProjectUsageRow,
                    r#"SELECT p.id AS "project_id: ProjectId",
                              CASE WHEN p.deleted_at IS NULL THEN p.name ELSE '' END AS "name!", "#,
                ),
                r#" FROM projects p
                   LEFT JOIN usage_daily u ON u.tenant_id = p.tenant_id AND u.project_id = p.id
                                          AND u.day BETWEEN $2 AND $3
                   WHERE p.tenant_id = $1 AND (p.deleted_at IS NULL OR u.project_id IS NOT NULL)
                   GROUP BY p.id, p.tenant_id, p.created_at, p.name, p.deleted_at
                   ORDER BY p.id <> p.tenant_id, p.created_at, p.id"#,
                tenant_id.as_uuid(),
                from,
                to,
            )
            .fetch_all(conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| ProjectUsage {
                    project_id: row.project_id,
                    totals: totals_of!(row),
                    name: row.name,
                })
                .collect())
        })
        .await
    }
}

//! Projects: the applications a tenant runs, and how far into a tenant's data a call reaches.
//!
//! What an application produces and consumes (keys, emails, templates, webhooks, usage) belongs to
//! a project; what is about the customer's identity and reputation (domains, suppressions,
//! quotas, its SMTP server) belongs to the tenant and is shared by its projects. Every tenant
//! has a `default` project whose id is the tenant's own, so data from before projects existed,
//! and every request that names no project, lands there.

use crate::ids::{ProjectId, TenantId};
use crate::tenant::TenantName;

/// The name of the project every tenant starts with.
pub const DEFAULT_PROJECT_NAME: &str = "default";

impl ProjectId {
    /// The id of `tenant`'s default project: the tenant's own.
    #[must_use]
    pub const fn default_of(tenant: TenantId) -> Self {
        Self::from_uuid(tenant.as_uuid())
    }

    /// Whether this is `tenant`'s default project.
    #[must_use]
    pub fn is_default_of(self, tenant: TenantId) -> bool {
        self.as_uuid() == tenant.as_uuid()
    }
}

/// One project of one tenant: where a write lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectRef {
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
}

impl ProjectRef {
    /// `tenant`'s default project.
    #[must_use]
    pub const fn default_of(tenant: TenantId) -> Self {
        Self {
            tenant_id: tenant,
            project_id: ProjectId::default_of(tenant),
        }
    }
}

/// How far a read or change reaches: one tenant's rows, narrowed to one of its projects or
/// across all of them (the operator, the tenant's totals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reach {
    pub tenant_id: TenantId,
    pub project_id: Option<ProjectId>,
}

impl Reach {
    /// Every project of `tenant`.
    #[must_use]
    pub const fn tenant(tenant: TenantId) -> Self {
        Self {
            tenant_id: tenant,
            project_id: None,
        }
    }

    /// The project this reach names, if it names one.
    #[must_use]
    pub const fn project(&self) -> Option<ProjectRef> {
        match self.project_id {
            Some(project_id) => Some(ProjectRef {
                tenant_id: self.tenant_id,
                project_id,
            }),
            None => None,
        }
    }

    /// The project a write within this reach lands in: the one named, else the default.
    #[must_use]
    pub const fn home(&self) -> ProjectRef {
        match self.project() {
            Some(project) => project,
            None => ProjectRef::default_of(self.tenant_id),
        }
    }
}

/// A tenant alone names its default project, where everything from before projects lives.
impl From<TenantId> for ProjectRef {
    fn from(tenant: TenantId) -> Self {
        Self::default_of(tenant)
    }
}

impl From<TenantId> for Reach {
    fn from(tenant: TenantId) -> Self {
        Self::tenant(tenant)
    }
}

impl From<ProjectRef> for Reach {
    fn from(project: ProjectRef) -> Self {
        Self {
            tenant_id: project.tenant_id,
            project_id: Some(project.project_id),
        }
    }
}

/// A project's display name, held to a tenant name's rules (1 to 200 characters, no control
/// characters); unique (ignoring case) among the tenant's live projects.
pub type ProjectName = TenantName;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_project_is_the_tenants_own_id_and_home_of_a_tenant_wide_reach() {
        let tenant = TenantId::new();
        let default = ProjectRef::default_of(tenant);
        assert_eq!(default.project_id.as_uuid(), tenant.as_uuid());
        assert!(default.project_id.is_default_of(tenant));
        assert!(!ProjectId::new().is_default_of(tenant));
        assert_eq!(Reach::from(tenant).home(), default);
        let other = ProjectRef {
            tenant_id: tenant,
            project_id: ProjectId::new(),
        };
        assert_eq!(Reach::from(other).home(), other);
        assert_eq!(Reach::from(other).project_id, Some(other.project_id));
    }

    #[test]
    fn project_names_are_labels() {
        assert_eq!(ProjectName::parse(" Billing ").unwrap().as_str(), "Billing");
        assert!(ProjectName::parse("").is_err());
        assert!(ProjectName::parse("a\nb").is_err());
        assert!(ProjectName::parse(&"x".repeat(201)).is_err());
    }
}

//! What an API key may do. `full_access` implies every other scope.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One permission an API key can carry.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "full_access")]
    FullAccess,
    #[serde(rename = "send")]
    Send,
    #[serde(rename = "emails:read")]
    EmailsRead,
    #[serde(rename = "templates:read")]
    TemplatesRead,
    #[serde(rename = "templates:write")]
    TemplatesWrite,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    #[serde(rename = "suppressions:manage")]
    SuppressionsManage,
    #[serde(rename = "usage:read")]
    UsageRead,
    #[serde(rename = "domains:manage")]
    DomainsManage,
    /// Reads mail received for the tenant's domains.
    #[serde(rename = "receiving:read")]
    ReceivingRead,
    /// Lists, creates and renames the tenant's projects and issues their keys. Not implied by
    /// `full_access`, which is everything within the key's own project.
    #[serde(rename = "projects:manage")]
    ProjectsManage,
}

impl Scope {
    pub const ALL: [Self; 11] = [
        Self::FullAccess,
        Self::Send,
        Self::EmailsRead,
        Self::TemplatesRead,
        Self::TemplatesWrite,
        Self::WebhooksManage,
        Self::SuppressionsManage,
        Self::UsageRead,
        Self::DomainsManage,
        Self::ReceivingRead,
        Self::ProjectsManage,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FullAccess => "full_access",
            Self::Send => "send",
            Self::EmailsRead => "emails:read",
            Self::TemplatesRead => "templates:read",
            Self::TemplatesWrite => "templates:write",
            Self::WebhooksManage => "webhooks:manage",
            Self::SuppressionsManage => "suppressions:manage",
            Self::UsageRead => "usage:read",
            Self::DomainsManage => "domains:manage",
            Self::ReceivingRead => "receiving:read",
            Self::ProjectsManage => "projects:manage",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown scope `{0}`; expected one of: full_access, send, emails:read, templates:read, templates:write, webhooks:manage, suppressions:manage, usage:read, domains:manage, projects:manage"
)]
pub struct ScopeError(pub String);

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(s.to_owned()))
    }
}

/// The set of scopes on one key. Never empty: a key without scopes would be useless, so an empty
/// request means the default, `full_access`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    #[must_use]
    pub fn full_access() -> Self {
        Self(BTreeSet::from([Scope::FullAccess]))
    }

    /// Builds a set; an empty input means `full_access`.
    #[must_use]
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            Self::full_access()
        } else {
            Self(set)
        }
    }

    /// Parses scope names as stored or typed on the command line.
    ///
    /// # Errors
    /// The first name that is not a scope.
    pub fn parse<I, S>(names: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|name| name.as_ref().parse())
            .collect::<Result<Vec<Scope>, _>>()
            .map(Self::new)
    }

    /// Whether a key with these scopes may do what `needed` guards. `full_access` covers the
    /// key's own project, not the administration of its siblings.
    #[must_use]
    pub fn allows(&self, needed: Scope) -> bool {
        self.0.contains(&needed)
            || (needed != Scope::ProjectsManage && self.0.contains(&Scope::FullAccess))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

/// A key's scopes in their `text[]` column, read through [`Scopes::parse`].
#[cfg(feature = "sqlx")]
impl ::sqlx_core::types::Type<::sqlx_postgres::Postgres> for Scopes {
    fn type_info() -> ::sqlx_postgres::PgTypeInfo {
        <Vec<String> as ::sqlx_core::types::Type<::sqlx_postgres::Postgres>>::type_info()
    }

    fn compatible(ty: &::sqlx_postgres::PgTypeInfo) -> bool {
        <Vec<String> as ::sqlx_core::types::Type<::sqlx_postgres::Postgres>>::compatible(ty)
    }
}

#[cfg(feature = "sqlx")]
impl<'r> ::sqlx_core::decode::Decode<'r, ::sqlx_postgres::Postgres> for Scopes {
    fn decode(
        value: ::sqlx_postgres::PgValueRef<'r>,
    ) -> Result<Self, ::sqlx_core::error::BoxDynError> {
        let names =
            <Vec<String> as ::sqlx_core::decode::Decode<::sqlx_postgres::Postgres>>::decode(value)?;
        Ok(Self::parse(names)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
    }

    #[test]
    fn full_access_implies_everything_else_does_not() {
        let full = Scopes::full_access();
        let send = Scopes::new([Scope::Send]);
        for scope in Scope::ALL {
            assert_eq!(full.allows(scope), scope != Scope::ProjectsManage);
            assert_eq!(send.allows(scope), scope == Scope::Send);
        }
        assert!(Scopes::new([Scope::ProjectsManage]).allows(Scope::ProjectsManage));
    }

    #[test]
    fn empty_means_full_access_and_unknown_names_are_refused() {
        assert_eq!(
            Scopes::parse(Vec::<String>::new()),
            Ok(Scopes::full_access())
        );
        let err = Scopes::parse(["send", "emails:write"]).unwrap_err();
        assert_eq!(err, ScopeError("emails:write".into()));
        assert!(err.to_string().contains("emails:write"));
    }
}

//! Accounts as both front ends and the command line show them: tenants with their settings,
//! limits and SMTP server (never its password), and API keys (never the key but once).

use missive_core::{ApiKeyId, ProjectId, Scope, TenantId, TenantStatus};

use crate::net::smtp::Step;
use missive_store::{ApiKeyRecord, TenantRecord};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A tenant's sending settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    pub default_from: Option<String>,
    pub reply_to: Option<String>,
    pub from_name: Option<String>,
    pub allowed_sender_domains: Vec<String>,
    /// Whether senders must use a verified domain (or an allowed one).
    pub require_verified_domains: bool,
    pub trusted_networks: Vec<String>,
}

/// A tenant's own upstream SMTP server, as shown: never the password.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpView {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// `none`, `starttls` or `tls`.
    #[schema(example = "starttls")]
    pub tls: String,
    pub enabled: bool,
    pub has_password: bool,
}

/// A tenant's limits as set; `null` is the configured default.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitView {
    pub requests_per_minute: Option<u32>,
    pub emails_per_day: Option<u64>,
    pub emails_per_month: Option<u64>,
}

/// A tenant's inbound caps as set; `null` is the operator's default.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivingCapsView {
    pub per_day: Option<u64>,
    pub stored_bytes: Option<u64>,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Always `tenant`.
    #[schema(example = "tenant")]
    pub object: &'static str,
    pub id: TenantId,
    /// The same as `id`: every response about a tenant's data names its tenant.
    pub tenant_id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    /// The primary sending domain.
    pub domain: Option<String>,
    pub settings: SettingsView,
    /// The tenant's own upstream server; null when its mail takes the shared relay.
    pub smtp: Option<SmtpView>,
    pub rate_limit: RateLimitView,
    /// Caps on mail its receiving domains take.
    pub receiving: ReceivingCapsView,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

impl From<TenantRecord> for TenantView {
    fn from(t: TenantRecord) -> Self {
        let smtp = t.relay().map(|relay| SmtpView {
            host: relay.host,
            port: relay.port,
            username: relay.username,
            tls: relay.tls.as_str().to_owned(),
            enabled: relay.enabled,
            has_password: t.smtp_has_password,
        });
        let limits = t.limits();
        Self {
            smtp,
            rate_limit: RateLimitView {
                requests_per_minute: limits.requests_per_minute,
                emails_per_day: limits.emails_per_day,
                emails_per_month: limits.emails_per_month,
            },
            receiving: ReceivingCapsView {
                per_day: t.received_per_day.and_then(|n| u64::try_from(n).ok()),
                stored_bytes: t.received_stored_bytes.and_then(|n| u64::try_from(n).ok()),
            },
            object: "tenant",
            id: t.id,
            tenant_id: t.id,
            name: t.name,
            status: t.status,
            domain: t.domain,
            settings: SettingsView {
                default_from: t.default_from,
                reply_to: t.reply_to,
                from_name: t.from_name,
                allowed_sender_domains: t.allowed_sender_domains,
                require_verified_domains: t.require_verified_domains,
                trusted_networks: t.trusted_networks,
            },
            created_at: t.created_at,
            updated_at: t.updated_at,
            disabled_at: t.disabled_at,
        }
    }
}

/// An API key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Always `api_key`.
    #[schema(example = "api_key")]
    pub object: &'static str,
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    /// The project the key acts for.
    pub project_id: ProjectId,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The key's own request rate limit; the tenant's applies as well, and the stricter wins.
    pub requests_per_minute: Option<u32>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            object: "api_key",
            id: k.id,
            tenant_id: k.tenant_id,
            project_id: k.project_id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.iter().collect(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            requests_per_minute: crate::tenancy::credentials::per_minute(k.requests_per_minute),
        }
    }
}

/// A key just created: the only response that carries `token`, the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The API key. Shown once; only its SHA-256 is stored.
    pub token: String,
}

/// A tenant just created, with its first key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenantView {
    pub tenant: TenantView,
    pub api_key: CreatedApiKeyView,
}

/// One page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<TenantView>,
    /// Whether another page follows; pass the last id as `after` to get it.
    pub has_more: bool,
}

/// A tenant's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<ApiKeyView>,
}

/// The answer of `POST /v1/tenants/{id}/smtp/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpVerification {
    #[schema(example = "smtp_verification")]
    pub object: &'static str,
    pub tenant_id: TenantId,
    /// `host:port`.
    pub host: String,
    /// Whether every step passed: mail through this server would be accepted for relaying.
    pub ok: bool,
    /// Each step taken, in order, with the server's reply or what went wrong.
    pub steps: Vec<Step>,
}

//! What the admin API and the command line send to change accounts: tenants, their settings,
//! SMTP servers and limits, and API keys. Plain data as it arrives (JSON or flags); the
//! operations validate it into core types.

use missive_core::{Scope, TenantStatus};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Distinguishes an absent field (leave alone) from `null` (clear it) in PATCH bodies.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Sending settings as given when a tenant is created.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// Sender used when a message names none, e.g. `Acme <noreply@acme.test>`.
    pub default_from: Option<String>,
    /// Reply-To added when a message sets none.
    pub reply_to: Option<String>,
    /// Display name given to a sender that has none (SelfMX's name for it).
    pub from_name: Option<String>,
    /// When not empty, the only domains senders may use.
    #[serde(default)]
    pub allowed_sender_domains: Vec<String>,
    /// Source networks (CIDR) whose SMTP clients submit for this tenant without AUTH. A network
    /// belongs to one tenant: overlapping networks are refused.
    #[serde(default)]
    pub trusted_networks: Vec<String>,
}

/// `POST /v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Unique (case-insensitively) among tenants.
    pub name: String,
    /// The primary sending domain (SelfMX's field): always among `allowed_sender_domains`, so a
    /// tenant created with only a `domain` sends from that domain and its subdomains.
    pub domain: Option<String>,
    #[serde(default)]
    pub settings: SettingsInput,
}

/// Changes to sending settings; `null` clears a field, an absent field is left alone.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatchInput {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub default_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub reply_to: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub from_name: Option<Option<String>>,
    pub allowed_sender_domains: Option<Vec<String>>,
    /// Senders must use one of the tenant's verified domains (`/v1/domains`) or an allowed
    /// sender domain; others are refused (REST 403, SMTP 550 5.7.1).
    pub require_verified_domains: Option<bool>,
    /// Replaces the whole list when given; `[]` clears it.
    pub trusted_networks: Option<Vec<String>>,
}

/// A tenant's own upstream SMTP server in a `PATCH`: what it names is replaced, what it leaves
/// out stays as set (`null` clears `username` or `password`). The field names SelfMX documents,
/// `user` and `pass`, work too.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpInput {
    /// Host name or IP address; it must pass the address policy webhook endpoints pass.
    #[schema(max_length = 253)]
    pub host: Option<String>,
    /// Default: 465 with `tls`, otherwise 587.
    pub port: Option<u16>,
    #[serde(default, alias = "user", deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub username: Option<Option<String>>,
    /// Sealed at rest; never returned (only `has_password`).
    #[serde(default, alias = "pass", deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    pub password: Option<Option<String>>,
    /// `none`, `starttls` (the default) or `tls`.
    #[schema(value_type = Option<String>, example = "starttls")]
    pub tls: Option<String>,
    /// Off: the tenant's mail takes the shared relay and the settings are kept. Default on.
    pub enabled: Option<bool>,
}

/// A tenant's limits in a `PATCH`: what it names is replaced, `null` returns that limit to
/// the configured default, an absent field stays as set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitInput {
    /// REST requests per minute, per process (also counts SMTP transactions).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub requests_per_minute: Option<Option<u32>>,
    /// Recipients per UTC day, across processes; 0 stops sending.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub emails_per_day: Option<Option<u64>>,
    /// Recipients per UTC calendar month, across processes; 0 stops sending.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub emails_per_month: Option<Option<u64>>,
}

/// A tenant's inbound caps in a `PATCH`: `null` returns one to the operator's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceivingCapsInput {
    /// Messages its domains may receive per UTC day; 0 refuses all (452 4.2.2).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub per_day: Option<Option<u64>>,
    /// Bytes of received mail it may keep (552 5.2.2 past it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub stored_bytes: Option<Option<u64>>,
}

/// `PATCH /v1/tenants/{id}` (or `PUT`, which means the same: what it names is replaced).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    pub name: Option<String>,
    /// The primary sending domain; a new one joins `allowed_sender_domains`. `null` clears it
    /// (it stays an allowed domain until the list is changed).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub domain: Option<Option<String>>,
    /// `disabled` refuses the tenant's keys without revoking them; `active` restores them.
    pub status: Option<TenantStatus>,
    #[serde(default)]
    pub settings: SettingsPatchInput,
    /// The tenant's own upstream SMTP server; `null` removes it (its mail takes the shared
    /// relay).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<SmtpInput>)]
    pub smtp: Option<Option<SmtpInput>>,
    /// The tenant's request rate and sending quotas; `null` returns all three to the defaults.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimitInput>)]
    pub rate_limit: Option<Option<RateLimitInput>>,
    /// Inbound caps for mail its receiving domains take.
    pub receiving: Option<ReceivingCapsInput>,
}

/// Resend's key permissions, accepted as a shorthand for scopes.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    FullAccess,
    SendingAccess,
}

/// `POST /v1/tenants/{id}/api-keys` and `POST /v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Unique among the tenant's live keys.
    pub name: String,
    /// Scopes; empty or absent means `full_access`. `permissions` (SelfMX's name) is the same.
    #[serde(default, alias = "permissions")]
    pub scopes: Vec<Scope>,
    /// Resend's shorthand: `full_access` or `sending_access` (= `send`). Not with `scopes`.
    pub permission: Option<Permission>,
    /// After this instant the key is refused.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// A request rate limit of the key's own, per minute; the tenant's applies as well.
    #[schema(minimum = 1)]
    pub requests_per_minute: Option<u32>,
}

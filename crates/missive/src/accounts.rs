//! Tenants and API keys as operations: the one code path behind both the admin API and the CLI.
//!
//! Requests arrive here as plain data (from JSON or flags), are validated into core types, and
//! leave as views: the JSON shapes both front ends print.

use missive_core::routing::{RelayTls, TenantRelay};
use missive_core::{
    ApiKeyId, Domain, IpNetwork, MAX_NAME_CHARS, NewApiKey, Scope, ScopeError, Scopes, TenantId,
    TenantName, TenantSettings, TenantSettingsError, TenantStatus, parse_display_name, parse_label,
    parse_setting_mailbox,
};
use missive_store::{
    ApiKeyRecord, LimitsPatch, NewApiKeyRow, NewTenant, PasswordChange, RelayPatch, SealedSecret,
    Store, StoreError, TenantPatch, TenantRecord,
};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::delivery::{RouteError, TenantRelays};

/// What an account operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    /// A setting needs something this process lacks (`MISSIVE_SECRET_KEY`).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountsError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<TenantSettingsError> for AccountsError {
    fn from(err: TenantSettingsError) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<ScopeError> for AccountsError {
    fn from(err: ScopeError) -> Self {
        Self::Invalid(format!("scopes: {err}"))
    }
}

/// Distinguishes an absent field (leave alone) from `null` (clear it) in PATCH bodies.
pub(crate) fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
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
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.0.iter().collect(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            requests_per_minute: crate::credentials::per_minute(k.requests_per_minute),
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

/// The largest page of a listing (tenants, emails).
pub const MAX_PAGE: u32 = 100;

fn parse_settings(input: &SettingsInput) -> Result<TenantSettings, AccountsError> {
    Ok(TenantSettings {
        default_from: input
            .default_from
            .as_deref()
            .map(|m| parse_setting_mailbox("settings.default_from", m))
            .transpose()?,
        reply_to: input
            .reply_to
            .as_deref()
            .map(|m| parse_setting_mailbox("settings.reply_to", m))
            .transpose()?,
        from_name: input
            .from_name
            .as_deref()
            .map(|n| parse_display_name("settings.from_name", n))
            .transpose()?,
        allowed_sender_domains: TenantSettings::parse_domains(&input.allowed_sender_domains)?,
        trusted_networks: IpNetwork::parse_list(&input.trusted_networks)
            .map_err(TenantSettingsError::from)?,
    })
}

fn parse_domain(raw: &str) -> Result<Domain, AccountsError> {
    Domain::parse(raw).map_err(|e| AccountsError::Invalid(format!("domain: {e}")))
}

fn parse_key_name(name: &str) -> Result<String, AccountsError> {
    parse_label(name, MAX_NAME_CHARS).ok_or_else(|| {
        AccountsError::Invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        ))
    })
}

fn key_scopes(request: &CreateApiKeyRequest) -> Result<Scopes, AccountsError> {
    match (request.permission, request.scopes.is_empty()) {
        (Some(_), false) => Err(AccountsError::Invalid(
            "give either `permission` or `scopes`, not both".to_owned(),
        )),
        (Some(Permission::FullAccess), true) => Ok(Scopes::full_access()),
        (Some(Permission::SendingAccess), true) => Ok(Scopes::new([Scope::Send])),
        (None, _) => Ok(Scopes::new(request.scopes.iter().copied())),
    }
}

/// Creates a tenant and its first `full_access` key, atomically.
///
/// # Errors
/// `Invalid` for bad fields, `Conflict` for a taken name.
pub async fn create_tenant(
    store: &Store,
    request: &CreateTenantRequest,
) -> Result<CreatedTenantView, AccountsError> {
    let name = TenantName::parse(&request.name)?;
    let domain = request.domain.as_deref().map(parse_domain).transpose()?;
    let settings = parse_settings(&request.settings)?;
    let tenant_id = TenantId::new();
    let key = NewApiKey::generate();
    let scopes = Scopes::full_access();
    let (tenant, record) = store
        .create_tenant_with_key(
            &NewTenant {
                id: tenant_id,
                name: &name,
                domain: domain.as_ref(),
                settings: &settings,
            },
            &NewApiKeyRow {
                tenant_id,
                id: ApiKeyId::new(),
                name: "default",
                prefix: key.display_prefix(),
                hash: key.hash(),
                scopes: &scopes,
                expires_at: None,
                requests_per_minute: None,
            },
        )
        .await?;
    tracing::info!(tenant_id = %tenant.id, "tenant created");
    Ok(CreatedTenantView {
        tenant: tenant.into(),
        api_key: CreatedApiKeyView {
            key: record.into(),
            token: key.into_string(),
        },
    })
}

/// One page of tenants after `after`, at most `limit` (1 to [`MAX_PAGE`]).
///
/// # Errors
/// `Invalid` for a bad limit.
pub async fn list_tenants(
    store: &Store,
    after: Option<TenantId>,
    limit: u32,
) -> Result<TenantList, AccountsError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AccountsError::Invalid(format!(
            "limit must be from 1 to {MAX_PAGE}"
        )));
    }
    let mut rows = store.list_tenants(after, i64::from(limit) + 1).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(TenantList {
        object: "list",
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    })
}

/// # Errors
/// `NotFound` for an unknown id.
pub async fn get_tenant(store: &Store, id: TenantId) -> Result<TenantView, AccountsError> {
    Ok(store.get_tenant(id).await?.into())
}

/// Longest SMTP password accepted.
const MAX_SMTP_PASSWORD: usize = 1024;

/// The tenant's server after `input` is applied to what is set: checked, its host passing the
/// address policy, a new password sealed.
async fn relay_patch(
    relays: &TenantRelays,
    id: TenantId,
    current: Option<&TenantRecord>,
    input: &SmtpInput,
) -> Result<RelayPatch, AccountsError> {
    let invalid = |m: &str| AccountsError::Invalid(format!("smtp.{m}"));
    let stored = current.and_then(TenantRecord::relay);
    let host = input
        .host
        .clone()
        .or_else(|| stored.as_ref().map(|r| r.host.clone()))
        .ok_or_else(|| invalid("host: required"))?;
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return Err(invalid("host: from 1 to 253 characters"));
    }
    missive_core::target::parse_host(&host).map_err(|e| invalid(&format!("host: {e}")))?;
    let tls = match &input.tls {
        Some(tls) => tls
            .parse::<RelayTls>()
            .map_err(|e| invalid(&format!("tls: {e}")))?,
        None => stored.as_ref().map_or(
            if input.port == Some(465) {
                RelayTls::Tls
            } else {
                RelayTls::StartTls
            },
            |r| r.tls,
        ),
    };
    let port = input
        .port
        .or_else(|| stored.as_ref().map(|r| r.port))
        .unwrap_or(if tls == RelayTls::Tls { 465 } else { 587 });
    if port == 0 {
        return Err(invalid("port: from 1 to 65535"));
    }
    let username = match &input.username {
        None => stored.as_ref().and_then(|r| r.username.clone()),
        Some(None) => None,
        Some(Some(name)) if name.is_empty() || name.chars().count() > 256 => {
            return Err(invalid("username: from 1 to 256 characters"));
        }
        Some(Some(name)) if name.chars().any(char::is_control) => {
            return Err(invalid("username: no control characters"));
        }
        Some(Some(name)) => Some(name.clone()),
    };
    let password = match &input.password {
        None => PasswordChange::Keep,
        Some(None) => PasswordChange::Clear,
        Some(Some(p)) if p.is_empty() || p.len() > MAX_SMTP_PASSWORD => {
            return Err(invalid(&format!(
                "password: from 1 to {MAX_SMTP_PASSWORD} bytes"
            )));
        }
        Some(Some(p)) => {
            let sealed = relays.seal(id, p).map_err(|e| match e {
                RouteError::NoSecretKey => AccountsError::Unavailable(
                    "storing an SMTP password needs MISSIVE_SECRET_KEY".to_owned(),
                ),
                other => AccountsError::Invalid(other.to_string()),
            })?;
            PasswordChange::Set(SealedSecret {
                key_id: sealed.key_id,
                bytes: sealed.bytes,
            })
        }
    };
    let has_password = match &password {
        PasswordChange::Keep => current.is_some_and(|t| t.smtp_has_password),
        PasswordChange::Clear => false,
        PasswordChange::Set(_) => true,
    };
    if has_password != username.is_some() {
        return Err(invalid(
            "username and password: give both (to log in) or neither",
        ));
    }
    // Checked now, and again before every connection (its addresses may change).
    relays
        .policy()
        .connectable(&host)
        .await
        .map_err(|e| invalid(&format!("host: {e}")))?;
    Ok(RelayPatch {
        relay: TenantRelay {
            host,
            port,
            tls,
            username,
            enabled: input
                .enabled
                .or_else(|| stored.as_ref().map(|r| r.enabled))
                .unwrap_or(true),
        },
        password,
    })
}

/// Largest request rate a tenant or key may be given.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 100_000_000;

/// A requests-per-minute setting, checked.
///
/// # Errors
/// `Invalid` for 0 or more than [`MAX_REQUESTS_PER_MINUTE`].
pub fn check_requests_per_minute(field: &str, n: u32) -> Result<u32, AccountsError> {
    if (1..=MAX_REQUESTS_PER_MINUTE).contains(&n) {
        Ok(n)
    } else {
        Err(AccountsError::Invalid(format!(
            "`{field}` must be from 1 to {MAX_REQUESTS_PER_MINUTE}"
        )))
    }
}

/// The limits a `rate_limit` field changes.
fn limits_patch(input: Option<&Option<RateLimitInput>>) -> Result<LimitsPatch, AccountsError> {
    let Some(input) = input else {
        return Ok(LimitsPatch::default());
    };
    let Some(input) = input else {
        // `null`: every limit back to the default.
        return Ok(LimitsPatch {
            requests_per_minute: Some(None),
            emails_per_day: Some(None),
            emails_per_month: Some(None),
        });
    };
    let quota = |field: &str, n: Option<Option<u64>>| match n {
        Some(Some(n)) if i64::try_from(n).is_err() => Err(AccountsError::Invalid(format!(
            "`rate_limit.{field}` is too large"
        ))),
        other => Ok(other),
    };
    Ok(LimitsPatch {
        requests_per_minute: input
            .requests_per_minute
            .map(|n| {
                n.map(|n| check_requests_per_minute("rate_limit.requests_per_minute", n))
                    .transpose()
            })
            .transpose()?,
        emails_per_day: quota("emails_per_day", input.emails_per_day)?,
        emails_per_month: quota("emails_per_month", input.emails_per_month)?,
    })
}

/// Applies a partial update.
///
/// # Errors
/// `Invalid` for bad fields, `NotFound`, or `Conflict` for a taken name; `Unavailable` for an
/// SMTP password without `MISSIVE_SECRET_KEY`.
pub async fn update_tenant(
    store: &Store,
    relays: &TenantRelays,
    id: TenantId,
    request: &UpdateTenantRequest,
) -> Result<TenantView, AccountsError> {
    let smtp = match &request.smtp {
        None => None,
        Some(None) => Some(None),
        Some(Some(input)) => {
            let current = store.get_tenant(id).await?;
            Some(Some(relay_patch(relays, id, Some(&current), input).await?))
        }
    };
    let settings = &request.settings;
    let mailbox = |field: &'static str, value: &Option<Option<String>>| {
        value
            .as_ref()
            .map(|v| {
                v.as_deref()
                    .map(|m| parse_setting_mailbox(field, m))
                    .transpose()
            })
            .transpose()
    };
    let patch = TenantPatch {
        name: request.name.as_deref().map(TenantName::parse).transpose()?,
        status: request.status,
        domain: request
            .domain
            .as_ref()
            .map(|d| d.as_deref().map(parse_domain).transpose())
            .transpose()?,
        default_from: mailbox("settings.default_from", &settings.default_from)?,
        reply_to: mailbox("settings.reply_to", &settings.reply_to)?,
        from_name: settings
            .from_name
            .as_ref()
            .map(|n| {
                n.as_deref()
                    .map(|n| parse_display_name("settings.from_name", n))
                    .transpose()
            })
            .transpose()?,
        allowed_sender_domains: settings
            .allowed_sender_domains
            .as_ref()
            .map(TenantSettings::parse_domains)
            .transpose()?,
        require_verified_domains: settings.require_verified_domains,
        trusted_networks: settings
            .trusted_networks
            .as_ref()
            .map(IpNetwork::parse_list)
            .transpose()
            .map_err(TenantSettingsError::from)?,
        smtp,
        limits: limits_patch(request.rate_limit.as_ref())?,
    };
    let updated = store.update_tenant(id, &patch).await?;
    if request.rate_limit.is_some() {
        tracing::info!(tenant_id = %id, limits = ?updated.limits(), "tenant limits changed");
    }
    if request.smtp.is_some() {
        // Never the password; the host says which server.
        tracing::info!(tenant_id = %id, smtp_host = ?updated.smtp_host, "tenant SMTP server changed");
    }
    Ok(updated.into())
}

/// Deletes a tenant: from now on it answers 404 and is not listed; its keys are revoked and its
/// trusted networks freed. Its emails and events are kept for the operator's records.
///
/// # Errors
/// `NotFound` for an unknown or already deleted id.
pub async fn delete_tenant(store: &Store, id: TenantId) -> Result<TenantView, AccountsError> {
    let tenant = store.delete_tenant(id).await?;
    tracing::info!(tenant_id = %id, "tenant deleted, its keys revoked");
    Ok(tenant.into())
}

/// Issues a key for an active tenant.
///
/// # Errors
/// `Invalid` for bad fields, `NotFound` for an unknown tenant, `Conflict` for a disabled tenant
/// or a taken name.
pub async fn create_api_key(
    store: &Store,
    tenant_id: TenantId,
    request: &CreateApiKeyRequest,
) -> Result<CreatedApiKeyView, AccountsError> {
    let name = parse_key_name(&request.name)?;
    let scopes = key_scopes(request)?;
    if let Some(expires_at) = request.expires_at
        && expires_at <= OffsetDateTime::now_utc()
    {
        return Err(AccountsError::Invalid(
            "expires_at must be in the future".to_owned(),
        ));
    }
    let key = NewApiKey::generate();
    let record = store
        .create_api_key(&NewApiKeyRow {
            tenant_id,
            id: ApiKeyId::new(),
            name: &name,
            prefix: key.display_prefix(),
            hash: key.hash(),
            scopes: &scopes,
            expires_at: request.expires_at,
            requests_per_minute: request
                .requests_per_minute
                .map(|n| check_requests_per_minute("requests_per_minute", n))
                .transpose()?,
        })
        .await?;
    tracing::info!(tenant_id = %tenant_id, api_key_id = %record.id, "api key created");
    Ok(CreatedApiKeyView {
        key: record.into(),
        token: key.into_string(),
    })
}

/// A tenant's keys, newest first.
///
/// # Errors
/// `NotFound` for an unknown tenant.
pub async fn list_api_keys(
    store: &Store,
    tenant_id: TenantId,
) -> Result<ApiKeyList, AccountsError> {
    // An unknown tenant is a 404, not an empty list.
    store.get_tenant(tenant_id).await?;
    let keys = store.list_api_keys(tenant_id).await?;
    Ok(ApiKeyList {
        object: "list",
        data: keys.into_iter().map(Into::into).collect(),
    })
}

/// Revokes one of a tenant's keys.
///
/// # Errors
/// `NotFound` when the tenant has no such key, `Conflict` when it is already revoked.
pub async fn revoke_api_key(
    store: &Store,
    tenant_id: TenantId,
    key_id: ApiKeyId,
) -> Result<ApiKeyView, AccountsError> {
    let record = store.revoke_api_key(tenant_id, key_id).await?;
    tracing::info!(tenant_id = %tenant_id, api_key_id = %key_id, "api key revoked");
    Ok(record.into())
}

//! Tenants and API keys as operations: the one code path behind both the admin API and the CLI.
//!
//! Requests arrive here as plain data (from JSON or flags), are validated into core types, and
//! leave as views: the JSON shapes both front ends print.

use missive_core::routing::{RelayTls, TenantRelay};
use missive_core::{
    ApiKeyId, Domain, IpNetwork, MAX_NAME_CHARS, NewApiKey, ProjectRef, Reach, Scope, ScopeError,
    Scopes, TenantId, TenantName, TenantSettings, TenantSettingsError, parse_display_name,
    parse_label, parse_setting_mailbox,
};
use missive_store::{
    LimitsPatch, NewApiKeyRow, NewTenant, PasswordChange, RelayPatch, SealedSecret, Store,
    StoreError, TenantPatch, TenantRecord,
};
use time::OffsetDateTime;

mod requests;
mod views;

pub use self::requests::{
    CreateApiKeyRequest, CreateTenantRequest, Permission, RateLimitInput, SettingsInput,
    SettingsPatchInput, SmtpInput, UpdateTenantRequest, double_option,
};
pub use self::views::{
    ApiKeyList, ApiKeyView, CreatedApiKeyView, CreatedTenantView, RateLimitView, SettingsView,
    SmtpVerification, SmtpView, TenantList, TenantView,
};

use crate::net::relay::{RouteError, TenantRelays, Transport};
use crate::net::smtp::Step;
use crate::tenancy::page::MAX_PAGE;

/// What an account operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// A key may not hand out a scope it lacks (`projects:manage`).
    #[error("this API key lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("{0}")]
    Conflict(&'static str),
    /// A setting needs something this process lacks (`MISSIVE_SECRET_KEY`).
    #[error("{0}")]
    Unavailable(String),
    /// A server fault with a detail for the log.
    #[error("internal error: {0}")]
    Internal(String),
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
                project: ProjectRef::default_of(tenant_id),
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

/// A count or size limit as given: refused when the database cannot hold it.
fn cap(field: &str, n: Option<Option<u64>>) -> Result<Option<Option<u64>>, AccountsError> {
    match n {
        Some(Some(n)) if i64::try_from(n).is_err() => {
            Err(AccountsError::Invalid(format!("`{field}` is too large")))
        }
        other => Ok(other),
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
    let quota = |field: &str, n: Option<Option<u64>>| cap(&format!("rate_limit.{field}"), n);
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
        received_per_day: cap(
            "receiving.per_day",
            request.receiving.as_ref().and_then(|r| r.per_day),
        )?,
        received_stored_bytes: cap(
            "receiving.stored_bytes",
            request.receiving.as_ref().and_then(|r| r.stored_bytes),
        )?,
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
    project: ProjectRef,
    grantor: Option<&Scopes>,
    request: &CreateApiKeyRequest,
) -> Result<CreatedApiKeyView, AccountsError> {
    let name = parse_key_name(&request.name)?;
    let scopes = key_scopes(request)?;
    // A key hands out no power over sibling projects that it lacks itself.
    if let Some(grantor) = grantor
        && scopes.iter().any(|s| s == Scope::ProjectsManage)
        && !grantor.allows(Scope::ProjectsManage)
    {
        return Err(AccountsError::MissingScope(Scope::ProjectsManage));
    }
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
            project,
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
    tracing::info!(
        tenant_id = %project.tenant_id,
        project_id = %project.project_id,
        api_key_id = %record.id,
        "api key created"
    );
    Ok(CreatedApiKeyView {
        key: record.into(),
        token: key.into_string(),
    })
}

/// The keys within `reach` (a project's, or all of a tenant's), newest first.
///
/// # Errors
/// `NotFound` for an unknown tenant or project.
pub async fn list_api_keys(store: &Store, reach: Reach) -> Result<ApiKeyList, AccountsError> {
    // An unknown tenant or project is a 404, not an empty list.
    store.get_tenant(reach.tenant_id).await?;
    if let Some(project) = reach.project() {
        store.get_project(project).await?;
    }
    let keys = store.list_api_keys(reach).await?;
    Ok(ApiKeyList {
        object: "list",
        data: keys.into_iter().map(Into::into).collect(),
    })
}

/// Revokes one key within `reach`.
///
/// # Errors
/// `NotFound` when the reach has no such key, `Conflict` when it is already revoked.
pub async fn revoke_api_key(
    store: &Store,
    reach: Reach,
    key_id: ApiKeyId,
) -> Result<ApiKeyView, AccountsError> {
    let record = store.revoke_api_key(reach, key_id).await?;
    tracing::info!(tenant_id = %reach.tenant_id, api_key_id = %key_id, "api key revoked");
    Ok(record.into())
}

/// Checks a tenant's own SMTP server: opens its password, connects, greeting, EHLO, STARTTLS
/// (or implicit TLS) and login, as a delivery would, each step reported. Sends no mail.
///
/// # Errors
/// `NotFound` for an unknown tenant; `Invalid` when it has no server set.
pub async fn verify_smtp(
    store: &Store,
    relays: &TenantRelays,
    id: TenantId,
) -> Result<SmtpVerification, AccountsError> {
    let stored = store
        .tenant_relay(id)
        .await?
        .ok_or_else(|| AccountsError::Invalid("the tenant has no SMTP server set".to_owned()))?;
    let host = stored.relay.addr();
    let transport = match relays.transport(id, &stored) {
        Ok(transport) => transport,
        // Opening the password is the first step; a password that does not open fails it.
        Err(err @ (RouteError::NoSecretKey | RouteError::Sealed(_))) => {
            return Ok(SmtpVerification {
                object: "smtp_verification",
                tenant_id: id,
                host,
                ok: false,
                steps: vec![Step {
                    step: "password",
                    ok: false,
                    detail: err.to_string(),
                }],
            });
        }
        Err(RouteError::Transport(err)) => return Err(AccountsError::Internal(err.to_string())),
    };
    let Transport::Smtp(pool) = transport else {
        return Err(AccountsError::Internal(
            "a tenant server is always SMTP".to_owned(),
        ));
    };
    let (ok, steps) = pool.verify().await;
    tracing::info!(tenant_id = %id, ok, "tenant SMTP server verified");
    Ok(SmtpVerification {
        object: "smtp_verification",
        tenant_id: id,
        host,
        ok,
        steps,
    })
}

//! Console sign-in, sessions and CSRF protection.
//!
//! A key (the admin key or a tenant API key) is exchanged once for a session: a random token in
//! an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console` (`Secure` when the request came
//! over TLS through a proxy that says so). The database keeps the token's SHA-256 and the
//! SHA-256 of the key it was opened with, never a key; each request checks that key again, so a
//! revoked or expired key, a disabled tenant or a changed admin key ends its sessions at once.
//!
//! Every form carries the session's CSRF token, compared in constant time ([`Posted`]); the
//! sign-in form, before any session, carries a token that must match a cookie of its own. A
//! request whose `Origin` names another host is refused as well.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_core::{ApiKeyHash, Scope, parse_api_key};
use missive_store::SessionOwner;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::views;
use crate::edge::api::auth::TenantAuth;
use crate::edge::api::error::ApiError;
use crate::edge::state::AppState;
use crate::tenancy::credentials::{self, CredentialError};
use crate::tenancy::error::ServiceError;

/// The session cookie.
const SESSION_COOKIE: &str = "missive_session";
/// The sign-in form's own CSRF cookie.
const LOGIN_COOKIE: &str = "missive_login";
/// How long a session lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// Who is signed in.
#[derive(Clone, Debug)]
pub enum Viewer {
    Operator,
    Tenant(Box<TenantAuth>),
}

/// A signed-in console request.
#[derive(Clone, Debug)]
pub struct Session {
    pub viewer: Viewer,
    /// The token every form of this session must send back.
    pub csrf: String,
    token_hash: [u8; 32],
}

impl Session {
    /// The tenant's authentication, or 403 for an operator (tenant pages need a tenant key).
    ///
    /// # Errors
    /// [`ConsoleError::Forbidden`] for an operator session.
    pub fn tenant(&self) -> Result<&TenantAuth, ConsoleError> {
        match &self.viewer {
            Viewer::Tenant(auth) => Ok(auth),
            Viewer::Operator => Err(ConsoleError::Forbidden(
                "this page belongs to a tenant: sign in with one of its API keys",
            )),
        }
    }

    /// The SHA-256 of the session's token, which names its row.
    #[must_use]
    pub const fn token_hash(&self) -> &[u8; 32] {
        &self.token_hash
    }

    /// Refuses a tenant session on the operator's pages.
    ///
    /// # Errors
    /// [`ConsoleError::Forbidden`] for a tenant session.
    pub fn operator(&self) -> Result<(), ConsoleError> {
        match self.viewer {
            Viewer::Operator => Ok(()),
            Viewer::Tenant(_) => Err(ConsoleError::Forbidden(
                "this page is the operator's: sign in with the admin key",
            )),
        }
    }
}

/// Why a console request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or one that ended: to the sign-in form.
    #[error("not signed in")]
    SignIn,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the form is stale or did not come from this console; reload the page and retry")]
    Csrf,
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A page that did not render: a defect, logged once with its detail.
    #[error("the page could not be drawn")]
    Render(String),
}

impl From<missive_store::StoreError> for ConsoleError {
    fn from(err: missive_store::StoreError) -> Self {
        Self::Api(ApiError::from(err))
    }
}

impl From<ServiceError> for ConsoleError {
    fn from(err: ServiceError) -> Self {
        Self::Api(ApiError::from(err))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::SignIn => return Redirect::to("/console/login").into_response(),
            Self::Forbidden(_) | Self::Csrf => (StatusCode::FORBIDDEN, self.to_string()),
            Self::Api(err) => {
                // The API's own status and its client-safe message; a server error keeps its
                // detail for the log.
                let status = err.status();
                if status.is_server_error() {
                    tracing::error!(error = ?err, "console request failed");
                    (status, "Something went wrong on our side.".to_owned())
                } else {
                    (status, err.to_string())
                }
            }
            Self::Render(detail) => {
                tracing::error!(error = %detail, "console page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side.".to_owned(),
                )
            }
        };
        views::error_page(None, status, &message)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// `Secure` when the browser reached us over TLS (through a proxy that terminates it).
fn cookie_attributes(headers: &HeaderMap) -> &'static str {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    if tls {
        "Path=/console; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/console; HttpOnly; SameSite=Strict"
    }
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let attributes = cookie_attributes(headers);
    HeaderValue::from_str(&format!("{name}={value}; {attributes}; Max-Age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn load(parts: &Parts, state: &AppState) -> Result<Option<Session>, ConsoleError> {
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    let Some(record) = state.store.console_session(&hash).await? else {
        return Ok(None);
    };
    let viewer = match record.owner {
        SessionOwner::Operator { admin_digest } => match &state.admin_key {
            Some(admin) if admin.matches_digest(&admin_digest) => Viewer::Operator,
            _ => return Ok(None),
        },
        SessionOwner::Tenant {
            tenant_id,
            project_id,
            key_hash,
        } => {
            let key = match credentials::authenticate_hash(
                &state.keys,
                &state.store,
                &ApiKeyHash(key_hash),
            )
            .await
            {
                Ok(key) if key.tenant_id == tenant_id => key,
                Ok(_) => return Ok(None),
                Err(CredentialError::Store(err)) => return Err(err.into()),
                Err(_) => return Ok(None),
            };
            tracing::Span::current().record("tenant_id", tracing::field::display(key.tenant_id));
            let mut auth = TenantAuth::from(key);
            // A `projects:manage` key works in the project the session switched to; any other
            // key in its own, whatever the row says.
            if auth.scopes.allows(Scope::ProjectsManage) {
                auth.project_id = project_id;
            }
            Viewer::Tenant(Box::new(auth))
        }
    };
    Ok(Some(Session {
        viewer,
        csrf: record.csrf_token,
        token_hash: hash,
    }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        load(parts, state).await?.ok_or(ConsoleError::SignIn)
    }
}

impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        load(parts, state).await
    }
}

/// Refuses a request whose `Origin` names a host other than the one it was sent to.
fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ConsoleError::Csrf)
    }
}

fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// A posted form of a signed-in session, whose CSRF token (`_csrf`) matched.
#[derive(Debug)]
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session =
            <Session as FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        same_origin(&parts.headers)?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| ApiError::Validation("the form could not be read".to_owned()))?;
        let sent: CsrfField =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| ConsoleError::Csrf)?;
        if !tokens_match(&sent.csrf, &session.csrf) {
            return Err(ConsoleError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::Validation(format!("the form is not valid: {e}")))?;
        Ok(Self { session, form })
    }
}

/// The sign-in form, with a fresh CSRF token in its own cookie.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Option<Session>,
) -> Response {
    if session.is_some() {
        return Redirect::to("/console").into_response();
    }
    login_form(&state, &headers, StatusCode::OK, None)
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let token = new_token();
    let context = serde_json::json!({
        "csrf": token,
        "error": error,
        "admin_enabled": state.admin_key.is_some(),
    });
    let mut response = views::render_bare(status, "login", &context);
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(headers, LOGIN_COOKIE, &token, 3600));
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// Exchanges a key for a session.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    same_origin(&headers)?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body).map_err(|_| ConsoleError::Csrf)?;
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !tokens_match(&form.csrf, expected) {
        return Err(ConsoleError::Csrf);
    }
    let key = form.key.trim();
    let owner = if let Some(admin) = state.admin_key.as_ref().filter(|a| a.verify(key)) {
        SessionOwner::Operator {
            admin_digest: admin.digest(),
        }
    } else {
        match credentials::authenticate(&state.keys, &state.store, key).await {
            Ok(found) => SessionOwner::Tenant {
                tenant_id: found.tenant_id,
                project_id: found.project_id,
                key_hash: parse_api_key(key).map_err(|_| ConsoleError::SignIn)?.0,
            },
            Err(CredentialError::Store(err)) => return Err(err.into()),
            Err(err) => {
                return Ok(login_form(
                    &state,
                    &headers,
                    StatusCode::UNAUTHORIZED,
                    Some(err.message()),
                ));
            }
        }
    };
    let token = new_token();
    state
        .store
        .create_console_session(&token_hash(&token), &owner, &new_token(), SESSION_SECS)
        .await?;
    let mut response = Redirect::to("/console").into_response();
    let out = response.headers_mut();
    out.append(
        SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &token, SESSION_SECS),
    );
    out.append(SET_COOKIE, set_cookie(&headers, LOGIN_COOKIE, "", 0));
    Ok(response)
}

#[derive(Deserialize)]
pub struct Empty {}

/// Ends the session and clears its cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    state
        .store
        .end_console_session(&posted.session.token_hash)
        .await?;
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, "", 0));
    Ok(response)
}

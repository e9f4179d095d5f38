//! AUTH PLAIN and LOGIN (RFC 4954), only under TLS. Any username; the password is a tenant API
//! key with the `send` scope.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use missive_core::Scope;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{AuthStep, Next, Sender, Session, State};
use crate::tenancy::credentials::{self, CredentialError};

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) async fn auth(&mut self, mechanism: u64, initial_response: &str) -> Next {
        if self.client.helo.is_none() {
            return self.refuse(&reply::BAD_SEQUENCE_HELO);
        }
        if !self.tls {
            return self.refuse(&reply::ENCRYPTION_REQUIRED);
        }
        if self.client.authenticated.is_some() {
            return self.refuse(&reply::ALREADY_AUTHENTICATED);
        }
        if self.envelope.started {
            return self.refuse(&reply::AUTH_IN_TRANSACTION);
        }
        match mechanism {
            AUTH_PLAIN if initial_response.is_empty() => {
                self.state = State::Auth(AuthStep::PlainResponse);
                self.reply(&Reply::plain(334, ""));
                Next::Continue
            }
            AUTH_PLAIN => self.auth_plain(initial_response).await,
            AUTH_LOGIN if initial_response.is_empty() => {
                self.state = State::Auth(AuthStep::LoginUsername);
                // base64("Username:")
                self.reply(&Reply::plain(334, "VXNlcm5hbWU6"));
                Next::Continue
            }
            AUTH_LOGIN => self.ask_login_password(initial_response),
            _ => self.refuse(&reply::MECHANISM_UNSUPPORTED),
        }
    }

    /// One line of an AUTH exchange.
    pub(super) async fn auth_line(&mut self, step: AuthStep, line: &[u8]) -> Next {
        self.state = State::Command;
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']).trim();
        if line == "*" {
            return self.refuse(&reply::AUTH_CANCELLED);
        }
        match step {
            AuthStep::PlainResponse => self.auth_plain(line).await,
            AuthStep::LoginUsername => self.ask_login_password(line),
            AuthStep::LoginPassword => match decode(line) {
                Ok(password) => self.authenticate(&password).await,
                Err(()) => self.refuse(&reply::AUTH_MALFORMED),
            },
        }
    }

    /// LOGIN, once the username (base64) is in: asks for the password.
    fn ask_login_password(&mut self, username: &str) -> Next {
        self.login_user = decode(username).ok();
        self.state = State::Auth(AuthStep::LoginPassword);
        // base64("Password:")
        self.reply(&Reply::plain(334, "UGFzc3dvcmQ6"));
        Next::Continue
    }

    /// PLAIN: base64 of `authzid NUL authcid NUL password`.
    async fn auth_plain(&mut self, response: &str) -> Next {
        let Ok(decoded) = decode(response) else {
            return self.refuse(&reply::AUTH_MALFORMED);
        };
        let mut parts = decoded.splitn(3, '\0');
        let (Some(_authzid), Some(user), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return self.refuse(&reply::AUTH_MALFORMED);
        };
        self.login_user = Some(user.to_owned());
        let password = password.to_owned();
        self.authenticate(&password).await
    }

    async fn authenticate(&mut self, password: &str) -> Next {
        match credentials::authenticate(&self.ctx.keys, &self.ctx.store, password).await {
            Ok(key) if key.scopes.allows(Scope::Send) => {
                tracing::info!(tenant_id = %key.tenant_id, peer = %self.peer, "SMTP client authenticated");
                self.client.authenticated = Some(Sender {
                    tenant_id: key.tenant_id,
                    project_id: key.project_id,
                    sending: key.sending,
                    via: "auth".to_owned(),
                    key_id: Some(key.key_id),
                    rates: key.rates,
                    place: None,
                });
                if !self.hold_tenant_place() {
                    return Next::Close;
                }
                self.reply(&reply::AUTH_OK);
                Next::Continue
            }
            Ok(_) => self.refuse(&reply::AUTH_NEEDS_SEND_SCOPE),
            Err(CredentialError::Store(err)) => {
                tracing::error!(error = %err, "SMTP AUTH: key lookup failed");
                self.reply(&Reply::new(
                    454,
                    "4.7.0",
                    "Temporary authentication failure",
                ));
                Next::Continue
            }
            Err(err) => {
                tracing::info!(peer = %self.peer, reason = err.message(), "SMTP AUTH refused");
                self.refuse(&reply::AUTH_FAILED)
            }
        }
    }
}

fn decode(b64: &str) -> Result<String, ()> {
    let bytes = BASE64.decode(b64.trim()).map_err(|_| ())?;
    String::from_utf8(bytes).map_err(|_| ())
}

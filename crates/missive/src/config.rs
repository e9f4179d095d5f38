//! Configuration: one typed struct, filled from defaults < file < environment < flags.
//!
//! Every setting is declared once in [`SETTINGS`] with its file key, environment names and flag.
//! Values from all sources are merged as strings first and parsed once, so an error always names
//! where the bad value came from (`MISSIVE_HTTP_ADDR`, `--http-addr`, or `http_addr in FILE`).
//! Secrets live in `secrecy` types: their `Debug` prints `[REDACTED]`, so logging the config is
//! safe.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the built-in default"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(name) => f.write_str(name),
            Self::Flag(flag) => f.write_str(flag),
        }
    }
}

/// Why the configuration was refused. Each variant names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("{0} is required (set it in the environment, the config file or a flag)")]
    Missing(&'static str),
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    FileSyntax { path: PathBuf, message: String },
    #[error("config file {path}: unknown setting `{key}`")]
    UnknownKey { path: PathBuf, key: String },
}

/// One setting: its key in the file (and in [`Sources::flags`]), environment names in priority
/// order, its flag, and its default.
#[derive(Debug)]
struct Setting {
    key: &'static str,
    env: &'static [&'static str],
    flag: &'static str,
    default: Option<&'static str>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "database_url",
        env: &["MISSIVE_DATABASE_URL", "DATABASE_URL"],
        flag: "--database-url",
        default: None,
    },
    Setting {
        key: "admin_key",
        env: &["MISSIVE_ADMIN_KEY"],
        flag: "--admin-key",
        default: None,
    },
    Setting {
        key: "http_addr",
        env: &["MISSIVE_HTTP_ADDR"],
        flag: "--http-addr",
        default: Some("127.0.0.1:8025"),
    },
    Setting {
        key: "smtp_addr",
        env: &["MISSIVE_SMTP_ADDR"],
        flag: "--smtp-addr",
        default: Some("127.0.0.1:2587"),
    },
    Setting {
        key: "smtps_addr",
        env: &["MISSIVE_SMTPS_ADDR"],
        flag: "--smtps-addr",
        default: Some("127.0.0.1:2465"),
    },
    Setting {
        key: "tls_cert",
        env: &["MISSIVE_TLS_CERT"],
        flag: "--tls-cert",
        default: None,
    },
    Setting {
        key: "tls_key",
        env: &["MISSIVE_TLS_KEY"],
        flag: "--tls-key",
        default: None,
    },
    Setting {
        key: "relay_url",
        env: &["MISSIVE_RELAY_URL"],
        flag: "--relay-url",
        default: Some("capture:.missive/outbox"),
    },
    Setting {
        key: "secret_key",
        env: &["MISSIVE_SECRET_KEY"],
        flag: "--secret-key",
        default: None,
    },
    Setting {
        key: "webhook_allow_private",
        env: &["MISSIVE_WEBHOOK_ALLOW_PRIVATE"],
        flag: "--webhook-allow-private",
        default: Some("false"),
    },
    Setting {
        key: "log",
        env: &["MISSIVE_LOG"],
        flag: "--log",
        default: Some("info"),
    },
    Setting {
        key: "log_format",
        env: &["MISSIVE_LOG_FORMAT"],
        flag: "--log-format",
        default: Some("pretty"),
    },
    Setting {
        key: "db_max_connections",
        env: &["MISSIVE_DB_MAX_CONNECTIONS"],
        flag: "--db-max-connections",
        default: Some("16"),
    },
    Setting {
        key: "max_request_bytes",
        env: &["MISSIVE_MAX_REQUEST_BYTES"],
        flag: "--max-request-bytes",
        default: Some("41943040"),
    },
    Setting {
        key: "max_message_bytes",
        env: &["MISSIVE_MAX_MESSAGE_BYTES"],
        flag: "--max-message-bytes",
        default: Some("10485760"),
    },
    Setting {
        key: "helo_name",
        env: &["MISSIVE_HELO_NAME"],
        flag: "--helo-name",
        default: Some("localhost"),
    },
    Setting {
        key: "relay_ca_file",
        env: &["MISSIVE_RELAY_CA_FILE"],
        flag: "--relay-ca-file",
        default: None,
    },
    Setting {
        key: "relay_max_connections",
        env: &["MISSIVE_RELAY_MAX_CONNECTIONS"],
        flag: "--relay-max-connections",
        default: Some("8"),
    },
    Setting {
        key: "relay_timeout_secs",
        env: &["MISSIVE_RELAY_TIMEOUT_SECS"],
        flag: "--relay-timeout-secs",
        default: Some("60"),
    },
    Setting {
        key: "worker_concurrency",
        env: &["MISSIVE_WORKER_CONCURRENCY"],
        flag: "--worker-concurrency",
        default: Some("32"),
    },
    Setting {
        key: "lease_secs",
        env: &["MISSIVE_LEASE_SECS"],
        flag: "--lease-secs",
        default: Some("300"),
    },
    Setting {
        key: "poll_interval_ms",
        env: &["MISSIVE_POLL_INTERVAL_MS"],
        flag: "--poll-interval-ms",
        default: Some("1000"),
    },
    Setting {
        key: "retry_base_secs",
        env: &["MISSIVE_RETRY_BASE_SECS"],
        flag: "--retry-base-secs",
        default: Some("60"),
    },
    Setting {
        key: "retry_max_interval_secs",
        env: &["MISSIVE_RETRY_MAX_INTERVAL_SECS"],
        flag: "--retry-max-interval-secs",
        default: Some("7200"),
    },
    Setting {
        key: "retry_max_age_secs",
        env: &["MISSIVE_RETRY_MAX_AGE_SECS"],
        flag: "--retry-max-age-secs",
        default: Some("259200"),
    },
    Setting {
        key: "smtp_max_recipients",
        env: &["MISSIVE_SMTP_MAX_RECIPIENTS"],
        flag: "--smtp-max-recipients",
        default: Some("100"),
    },
    Setting {
        key: "smtp_max_connections",
        env: &["MISSIVE_SMTP_MAX_CONNECTIONS"],
        flag: "--smtp-max-connections",
        default: Some("1000"),
    },
    Setting {
        key: "smtp_max_connections_per_ip",
        env: &["MISSIVE_SMTP_MAX_CONNECTIONS_PER_IP"],
        flag: "--smtp-max-connections-per-ip",
        default: Some("50"),
    },
    Setting {
        key: "smtp_max_errors",
        env: &["MISSIVE_SMTP_MAX_ERRORS"],
        flag: "--smtp-max-errors",
        default: Some("10"),
    },
    Setting {
        key: "smtp_idle_timeout_secs",
        env: &["MISSIVE_SMTP_IDLE_TIMEOUT_SECS"],
        flag: "--smtp-idle-timeout-secs",
        default: Some("300"),
    },
    Setting {
        key: "smtp_session_timeout_secs",
        env: &["MISSIVE_SMTP_SESSION_TIMEOUT_SECS"],
        flag: "--smtp-session-timeout-secs",
        default: Some("1800"),
    },
    Setting {
        key: "shutdown_timeout_secs",
        env: &["MISSIVE_SHUTDOWN_TIMEOUT_SECS"],
        flag: "--shutdown-timeout-secs",
        default: Some("30"),
    },
];

/// The raw inputs: an optional file, an environment lookup, and flags keyed like the file.
pub struct Sources<'a> {
    pub file: Option<PathBuf>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub flags: BTreeMap<&'static str, String>,
}

impl fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Flags may carry secrets (--admin-key), so only their names are shown.
        f.debug_struct("Sources")
            .field("file", &self.file)
            .field("flags", &self.flags.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Shared relay for outbound mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayUrl {
    /// Write each message to a directory (the development default).
    Capture(PathBuf),
    /// Relay over SMTP.
    Smtp(SmtpRelay),
}

/// How to reach an SMTP relay.
#[derive(Clone, Debug)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub credentials: Option<(String, SecretString)>,
}

impl PartialEq for SmtpRelay {
    fn eq(&self, other: &Self) -> bool {
        let creds = |c: &Option<(String, SecretString)>| {
            c.as_ref()
                .map(|(u, p)| (u.clone(), p.expose_secret().to_owned()))
        };
        self.host == other.host
            && self.port == other.port
            && self.tls == other.tls
            && creds(&self.credentials) == creds(&other.credentials)
    }
}

impl Eq for SmtpRelay {}

/// Transport security towards the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTls {
    None,
    StartTls,
    Tls,
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub database_url: Option<SecretString>,
    pub admin_key: Option<SecretString>,
    pub http_addr: SocketAddr,
    pub smtp_addr: SocketAddr,
    pub smtps_addr: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub relay: RelayUrl,
    pub secret_key: Option<SecretBox<[u8; 32]>>,
    pub webhook_allow_private: bool,
    pub log: String,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    pub max_request_bytes: usize,
    pub max_message_bytes: usize,
    pub shutdown_timeout: Duration,
    /// Name we give in EHLO to relays.
    pub helo_name: String,
    /// Extra PEM certificates a relay's TLS certificate may chain to.
    pub relay_ca_file: Option<PathBuf>,
    pub relay_max_connections: usize,
    pub relay_timeout: Duration,
    pub worker_concurrency: usize,
    pub lease_duration: Duration,
    pub poll_interval: Duration,
    pub retry: missive_core::retry::RetryPolicy,
    pub smtp: SmtpLimits,
}

/// Limits of the SMTP submission listeners.
#[derive(Debug, Clone)]
pub struct SmtpLimits {
    /// Recipients in one transaction; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Open sessions across all clients.
    pub max_connections: usize,
    /// Open sessions from one address; more get 421 while the others are served.
    pub max_connections_per_ip: usize,
    /// Refused commands before the session is closed with 421.
    pub max_errors: usize,
    /// Waiting for the client's next input.
    pub idle_timeout: Duration,
    /// The whole session, however busy.
    pub session_timeout: Duration,
}

/// The shortest admin key we accept: a guessable admin key would open every tenant.
pub const MIN_ADMIN_KEY_LEN: usize = 24;

impl Config {
    /// The file used when none is named: `config/missive.toml`, if it exists.
    #[must_use]
    pub fn default_file() -> Option<PathBuf> {
        let path = PathBuf::from("config/missive.toml");
        path.exists().then_some(path)
    }

    /// Reads the process environment and the given (or default) file, then applies flags.
    ///
    /// # Errors
    /// Any [`ConfigError`]; the message names the setting.
    pub fn load(
        file: Option<PathBuf>,
        flags: BTreeMap<&'static str, String>,
    ) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_sources(&Sources {
            file: file.or_else(Self::default_file),
            env: &env,
            flags,
        })
    }

    /// Merges and parses all sources.
    ///
    /// # Errors
    /// Any [`ConfigError`]; the message names the setting.
    pub fn from_sources(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let file_values = match &sources.file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let mut values: BTreeMap<&'static str, (String, Origin)> = BTreeMap::new();
        for setting in SETTINGS {
            let flag = sources
                .flags
                .get(setting.key)
                .map(|v| (v.clone(), Origin::Flag(setting.flag)));
            let env = || {
                setting
                    .env
                    .iter()
                    .find_map(|name| (sources.env)(name).map(|v| (v, Origin::Env(name))))
            };
            let file = || {
                file_values.get(setting.key).map(|v| {
                    let path = sources.file.clone().unwrap_or_default();
                    (v.clone(), Origin::File(path))
                })
            };
            let default = || setting.default.map(|v| (v.to_owned(), Origin::Default));
            if let Some(found) = flag.or_else(env).or_else(file).or_else(default) {
                values.insert(setting.key, found);
            }
        }
        Parser { values }.parse()
    }

    /// The database URL, or an error naming the variable to set.
    ///
    /// # Errors
    /// When no URL is configured.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url
            .as_ref()
            .ok_or(ConfigError::Missing("MISSIVE_DATABASE_URL"))
    }

    /// A configuration with every default and the given database, for tests and tools.
    #[must_use]
    pub fn with_database_url(url: &str) -> Self {
        let mut flags = BTreeMap::new();
        flags.insert("database_url", url.to_owned());
        let no_env = |_: &str| None;
        Self::from_sources(&Sources {
            file: None,
            env: &no_env,
            flags,
        })
        .expect("the built-in defaults are valid")
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigError::FileSyntax {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        if !SETTINGS.iter().any(|s| s.key == key) {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(ConfigError::Invalid {
                    name: format!("{key} in {}", path.display()),
                    message: format!(
                        "expected a string, number or boolean, found {}",
                        other.type_str()
                    ),
                });
            }
        };
        out.insert(key, text);
    }
    Ok(out)
}

struct Parser {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Parser {
    fn name(key: &str, origin: &Origin) -> String {
        match origin {
            Origin::File(path) => format!("{key} in {}", path.display()),
            Origin::Default => key.to_owned(),
            Origin::Env(_) | Origin::Flag(_) => origin.to_string(),
        }
    }

    fn get<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.values.get(key) {
            None => Ok(None),
            Some((raw, origin)) => parse(raw)
                .map(Some)
                .map_err(|message| ConfigError::Invalid {
                    name: Self::name(key, origin),
                    message,
                }),
        }
    }

    fn required<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.get(key, parse)?.ok_or(ConfigError::Missing(key))
    }

    fn parse(self) -> Result<Config, ConfigError> {
        let config = Config {
            database_url: self.get("database_url", parse_database_url)?,
            admin_key: self.get("admin_key", parse_admin_key)?,
            http_addr: self.required("http_addr", parse_addr)?,
            smtp_addr: self.required("smtp_addr", parse_addr)?,
            smtps_addr: self.required("smtps_addr", parse_addr)?,
            tls_cert: self.get("tls_cert", parse_path)?,
            tls_key: self.get("tls_key", parse_path)?,
            relay: self.required("relay_url", parse_relay_url)?,
            secret_key: self.get("secret_key", parse_secret_key)?,
            webhook_allow_private: self.required("webhook_allow_private", parse_bool)?,
            log: self.required("log", |s| Ok(s.to_owned()))?,
            log_format: self.required("log_format", |s| match s {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("expected `pretty` or `json`, got `{other}`")),
            })?,
            db_max_connections: self
                .required("db_max_connections", |s| parse_bounded(s, 1, 1000))?,
            max_request_bytes: self
                .required("max_request_bytes", |s| parse_bounded(s, 1024, 1 << 30))?,
            max_message_bytes: self
                .required("max_message_bytes", |s| parse_bounded(s, 1024, 1 << 30))?,
            shutdown_timeout: self
                .required("shutdown_timeout_secs", |s| parse_bounded(s, 0, 3600))
                .map(Duration::from_secs)?,
            helo_name: self.required("helo_name", |s| {
                missive_core::Domain::parse(s)
                    .map(|d| d.as_str().to_owned())
                    .or_else(|_| {
                        if s == "localhost" {
                            Ok(s.to_owned())
                        } else {
                            Err(format!("`{s}` is not a host name"))
                        }
                    })
            })?,
            relay_ca_file: self.get("relay_ca_file", parse_path)?,
            relay_max_connections: self
                .required("relay_max_connections", |s| parse_bounded(s, 1, 10_000))?,
            relay_timeout: self
                .required("relay_timeout_secs", |s| parse_bounded(s, 1, 3600))
                .map(Duration::from_secs)?,
            worker_concurrency: self
                .required("worker_concurrency", |s| parse_bounded(s, 1, 10_000))?,
            lease_duration: self
                .required("lease_secs", |s| parse_bounded(s, 1, 86_400))
                .map(Duration::from_secs)?,
            poll_interval: self
                .required("poll_interval_ms", |s| parse_bounded(s, 10, 3_600_000))
                .map(Duration::from_millis)?,
            retry: missive_core::retry::RetryPolicy {
                base: self
                    .required("retry_base_secs", |s| parse_bounded(s, 0, 86_400))
                    .map(Duration::from_secs)?,
                max_interval: self
                    .required("retry_max_interval_secs", |s| {
                        parse_bounded(s, 0, 7 * 86_400)
                    })
                    .map(Duration::from_secs)?,
                max_age: self
                    .required("retry_max_age_secs", |s| parse_bounded(s, 0, 30 * 86_400))
                    .map(Duration::from_secs)?,
            },
            smtp: SmtpLimits {
                max_recipients: self
                    .required("smtp_max_recipients", |s| parse_bounded(s, 1, 10_000))?,
                max_connections: self
                    .required("smtp_max_connections", |s| parse_bounded(s, 1, 100_000))?,
                max_connections_per_ip: self.required("smtp_max_connections_per_ip", |s| {
                    parse_bounded(s, 1, 100_000)
                })?,
                max_errors: self.required("smtp_max_errors", |s| parse_bounded(s, 1, 1000))?,
                idle_timeout: self
                    .required("smtp_idle_timeout_secs", |s| parse_bounded(s, 1, 86_400))
                    .map(Duration::from_secs)?,
                session_timeout: self
                    .required("smtp_session_timeout_secs", |s| parse_bounded(s, 1, 86_400))
                    .map(Duration::from_secs)?,
            },
        };
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            let present = if config.tls_cert.is_some() {
                "MISSIVE_TLS_CERT"
            } else {
                "MISSIVE_TLS_KEY"
            };
            return Err(ConfigError::Invalid {
                name: present.to_owned(),
                message: "MISSIVE_TLS_CERT and MISSIVE_TLS_KEY must be set together".to_owned(),
            });
        }
        Ok(config)
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a socket address such as 127.0.0.1:8025"))
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (true or false)")),
    }
}

fn parse_bounded<T>(s: &str, min: u64, max: u64) -> Result<T, String>
where
    T: TryFrom<u64>,
{
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("`{s}` is not a whole number from {min} to {max}"))
}

fn parse_database_url(s: &str) -> Result<SecretString, String> {
    // Never echo the value: it may hold a password.
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(SecretString::from(s.to_owned()))
    } else {
        Err("must be a postgres:// or postgresql:// URL".to_owned())
    }
}

fn parse_admin_key(s: &str) -> Result<SecretString, String> {
    if s.len() < MIN_ADMIN_KEY_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "must be at least {MIN_ADMIN_KEY_LEN} characters without spaces (try `openssl rand -hex 32`)"
        ))
    } else {
        Ok(SecretString::from(s.to_owned()))
    }
}

fn parse_secret_key(s: &str) -> Result<SecretBox<[u8; 32]>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| "must be base64 (try `openssl rand -base64 32`)".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must decode to 32 bytes, got {}", b.len()))?;
    Ok(SecretBox::new(Box::new(key)))
}

/// Parses `capture:DIR` or `smtp://[user:pass@]host[:port][?tls=none|starttls|tls]`.
///
/// # Errors
/// A message saying what is wrong, never echoing the password.
pub fn parse_relay_url(s: &str) -> Result<RelayUrl, String> {
    if let Some(dir) = s.strip_prefix("capture:") {
        if dir.is_empty() {
            return Err("capture: needs a directory, e.g. capture:.missive/outbox".to_owned());
        }
        return Ok(RelayUrl::Capture(PathBuf::from(dir)));
    }
    let rest = s
        .strip_prefix("smtp://")
        .ok_or("must be smtp://[user:pass@]host:port?tls=none|starttls|tls or capture:DIR")?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, pass) = userinfo
                .split_once(':')
                .ok_or("credentials must be user:password")?;
            let user = percent_decode(user).ok_or("user name is not valid percent-encoding")?;
            let pass = percent_decode(pass).ok_or("password is not valid percent-encoding")?;
            (Some((user, SecretString::from(pass))), host_port)
        }
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port)?;
    let mut tls = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", "none")) => tls = Some(RelayTls::None),
            Some(("tls", "starttls")) => tls = Some(RelayTls::StartTls),
            Some(("tls", "tls")) => tls = Some(RelayTls::Tls),
            Some(("tls", other)) => {
                return Err(format!("tls must be none, starttls or tls, not `{other}`"));
            }
            _ => return Err(format!("unknown relay option `{pair}`")),
        }
    }
    let tls = tls.unwrap_or(if port == Some(465) {
        RelayTls::Tls
    } else {
        RelayTls::StartTls
    });
    let port = port.unwrap_or(match tls {
        RelayTls::Tls => 465,
        RelayTls::None | RelayTls::StartTls => 587,
    });
    Ok(RelayUrl::Smtp(SmtpRelay {
        host,
        port,
        tls,
        credentials,
    }))
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [ in IPv6 host")?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err("the relay URL needs a host".to_owned());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(format!("`{p}` is not a port"))
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: Option<PathBuf>,
        env: &[(&str, &str)],
        flags: &[(&'static str, &str)],
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| env.get(name).cloned();
        Config::from_sources(&Sources {
            file,
            env: &lookup,
            flags: flags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        })
    }

    fn temp_file(contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("missive-config-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = load(None, &[], &[]).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8025");
        assert_eq!(config.smtp_addr.to_string(), "127.0.0.1:2587");
        assert_eq!(config.smtps_addr.to_string(), "127.0.0.1:2465");
        assert_eq!(config.relay, RelayUrl::Capture(".missive/outbox".into()));
        assert!(!config.webhook_allow_private);
        assert_eq!(config.log, "info");
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert!(config.admin_key.is_none());
        assert_eq!(config.max_message_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn file_then_env_then_flag_each_win_over_the_last() {
        let file = temp_file(
            "http_addr = \"127.0.0.1:1001\"\nsmtp_addr = \"127.0.0.1:1002\"\nsmtps_addr = \"127.0.0.1:1003\"\n",
        );
        let config = load(
            Some(file.clone()),
            &[
                ("MISSIVE_SMTP_ADDR", "127.0.0.1:2002"),
                ("MISSIVE_SMTPS_ADDR", "127.0.0.1:2003"),
            ],
            &[("smtps_addr", "127.0.0.1:3003")],
        )
        .unwrap();
        assert_eq!(config.http_addr.port(), 1001);
        assert_eq!(config.smtp_addr.port(), 2002);
        assert_eq!(config.smtps_addr.port(), 3003);
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn database_url_falls_back_to_the_conventional_name() {
        let config = load(None, &[("DATABASE_URL", "postgres://a@localhost/b")], &[]).unwrap();
        assert_eq!(
            config.database_url.unwrap().expose_secret(),
            "postgres://a@localhost/b"
        );
        let config = load(
            None,
            &[
                ("DATABASE_URL", "postgres://a@localhost/b"),
                ("MISSIVE_DATABASE_URL", "postgres://c@localhost/d"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            config.database_url.unwrap().expose_secret(),
            "postgres://c@localhost/d"
        );
    }

    #[test]
    fn errors_name_the_variable_flag_or_file_key() {
        let err = load(None, &[("MISSIVE_HTTP_ADDR", "nonsense")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MISSIVE_HTTP_ADDR:"), "{err}");
        let err = load(None, &[], &[("http_addr", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--http-addr:"), "{err}");
        let file = temp_file("log_format = \"xml\"\n");
        let err = load(Some(file.clone()), &[], &[]).unwrap_err().to_string();
        assert!(err.starts_with("log_format in "), "{err}");
        std::fs::remove_file(file).unwrap();
        let file = temp_file("htp_addr = \"127.0.0.1:1\"\n");
        let err = load(Some(file.clone()), &[], &[]).unwrap_err().to_string();
        assert!(err.contains("unknown setting `htp_addr`"), "{err}");
        std::fs::remove_file(file).unwrap();
        for (name, value) in [
            ("MISSIVE_WEBHOOK_ALLOW_PRIVATE", "maybe"),
            ("MISSIVE_RELAY_URL", "http://x"),
            ("MISSIVE_SECRET_KEY", "c2hvcnQ="),
            ("MISSIVE_ADMIN_KEY", "short"),
            ("MISSIVE_DATABASE_URL", "mysql://x"),
            ("MISSIVE_LOG_FORMAT", "xml"),
            ("MISSIVE_DB_MAX_CONNECTIONS", "0"),
            ("MISSIVE_TLS_CERT", "cert.pem"),
        ] {
            let err = load(None, &[(name, value)], &[]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}:")), "{name}: {err}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_errors() {
        let key = "k".repeat(40);
        let config = load(
            None,
            &[
                ("MISSIVE_ADMIN_KEY", key.as_str()),
                ("MISSIVE_DATABASE_URL", "postgres://u:hunter2hunter2@h/d"),
                (
                    "MISSIVE_RELAY_URL",
                    "smtp://u:relaypass1@relay.test:2525?tls=none",
                ),
            ],
            &[],
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains(&key));
        assert!(!debug.contains("hunter2hunter2"));
        assert!(!debug.contains("relaypass1"));
        let err = load(
            None,
            &[("MISSIVE_DATABASE_URL", "mysql://u:hunter2@h/d")],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn relay_urls_parse() {
        let relay = parse_relay_url("smtp://user%40x:p%3Ass@relay.test:2525?tls=none").unwrap();
        let RelayUrl::Smtp(smtp) = relay else {
            panic!("expected smtp")
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("relay.test", 2525, RelayTls::None)
        );
        let (user, pass) = smtp.credentials.unwrap();
        assert_eq!((user.as_str(), pass.expose_secret()), ("user@x", "p:ss"));
        let RelayUrl::Smtp(smtp) = parse_relay_url("smtp://relay.test").unwrap() else {
            panic!()
        };
        assert_eq!((smtp.port, smtp.tls), (587, RelayTls::StartTls));
        let RelayUrl::Smtp(smtp) = parse_relay_url("smtp://[::1]:465").unwrap() else {
            panic!()
        };
        assert_eq!((smtp.host.as_str(), smtp.tls), ("::1", RelayTls::Tls));
        for bad in [
            "smtp://",
            "smtp://h:0",
            "smtp://h:x",
            "smtp://h?tls=ssl",
            "smtp://u@h",
            "capture:",
            "ftp://h",
        ] {
            assert!(parse_relay_url(bad).is_err(), "{bad} accepted");
        }
    }
}

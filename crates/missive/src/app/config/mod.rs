//! Configuration: one typed struct in sections, filled from defaults < file < environment < flags.
//!
//! Every setting is declared once, in the one `settings!` invocation in this module: its
//! section, name, type, default, environment variables, parser and doc. From that one line come
//! the field of its section struct, its entry in [`SETTINGS`], its keys in the file (`[http]
//! addr`, or the flat `http_addr` the file has always accepted, which is the environment name
//! without `MISSIVE_`, lower-cased), its flag name (`--http-addr`), the shipped
//! `config/missive.toml` ([`example_file`]), the reference docs/configuration.md
//! ([`configuration_reference`]) (both checked by tests) and the flags ([`SettingFlags`]).
//!
//! Values from all sources are merged as strings first and parsed once, so an error always names
//! where the bad value came from (`MISSIVE_HTTP_ADDR`, `--http-addr`, or `http.addr in FILE`).
//! Secrets live in `secrecy` types: their `Debug` prints `[REDACTED]`, so logging the config is
//! safe. Configuration only produces what the parts need ([`Config::accept_limits`],
//! [`Config::worker_settings`], ...): no other module reads it.

mod declare;
mod flags;
mod parse;
mod render;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use missive_core::download::DownloadLinks;
use missive_core::retry::RetryPolicy;
use missive_core::return_path::ReturnPaths;
use missive_core::sending_domain::DkimAlgorithm;
use missive_core::{Limits, RelaySpec};
use missive_store::{ReceivingCaps, SoftBounceRule};
use secrecy::{SecretBox, SecretString};

pub use self::declare::Setting;
use self::declare::settings;
pub use self::flags::SettingFlags;
#[allow(clippy::wildcard_imports)] // the declarations below name a parser each
use self::parse::*;
pub use self::render::{configuration_reference, example_file};
pub use self::sources::Sources;
use self::sources::{Values, optional, required};
use crate::edge::api::serve::HttpLimits;
use crate::edge::smtp::SmtpLimits;
use crate::ingest::AcceptLimits;
use crate::net::relay::TransportSettings;
use crate::queue::delivery::{ReturnPathSettings, WorkerSettings};
use crate::queue::webhooks::DispatcherSettings;
use crate::tenancy::domains::DomainSettings;

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

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The shortest admin key we accept: a guessable admin key would open every tenant.
pub const MIN_ADMIN_KEY_LEN: usize = 24;

settings! {
    /// The database.
    database: DatabaseConfig {
        /// Postgres URL. Every command needs one (`make run` sets it).
        url: Option<SecretString> = None,
            env ["MISSIVE_DATABASE_URL", "DATABASE_URL"], optional(parse_database_url);
        /// Postgres connections one process opens, in all: the connections that LISTEN or
        /// hold a worker's registration, and the pools of the roles it runs (how they are
        /// split: Connections to Postgres, in docs/configuration.md). Too few for those roles
        /// stops the start.
        max_connections: u32 = Some("64"),
            env ["MISSIVE_DB_MAX_CONNECTIONS"], required(bounded(1, 1000));
        /// Start even when the database does not make commits durable (fsync=off, or
        /// synchronous_commit=off for Missive's sessions). Only for throwaway databases such as
        /// the test suite's: a crash of the database then loses mail Missive acknowledged.
        allow_unsafe_commits: bool = Some("false"),
            env ["MISSIVE_ALLOW_UNSAFE_COMMITS"], required(parse_bool);
    }
    /// The REST API.
    http: HttpConfig {
        /// REST listener.
        addr: SocketAddr = Some("127.0.0.1:8025"), env ["MISSIVE_HTTP_ADDR"], required(parse_addr);
        /// Largest HTTP request body, in bytes. Unset: what the largest message needs as JSON
        /// (max_message_bytes in base64, which grows it by a third, plus 1 MiB).
        max_request_bytes: Option<usize> = None,
            env ["MISSIVE_MAX_REQUEST_BYTES"], optional(bounded(1024, 1 << 30));
        /// Seconds a client has to send a request's headers, from connecting or from its
        /// previous response: slow headers and idle keep-alive connections are closed then.
        header_timeout_secs: Duration = Some("10"),
            env ["MISSIVE_HTTP_HEADER_TIMEOUT_SECS"], required(seconds(1, 3600));
        /// Open HTTP connections in all.
        max_connections: usize = Some("4096"),
            env ["MISSIVE_HTTP_MAX_CONNECTIONS"], required(bounded(1, 1_000_000));
        /// Open HTTP connections from one client address.
        max_connections_per_ip: usize = Some("512"),
            env ["MISSIVE_HTTP_MAX_CONNECTIONS_PER_IP"], required(bounded(1, 1_000_000));
        /// Request body bytes held in memory at once, over all requests; past it requests wait
        /// up to 5 s for room, then get 503.
        max_body_memory_bytes: usize = Some("67108864"),
            env ["MISSIVE_HTTP_MAX_BODY_MEMORY_BYTES"], required(bounded(1 << 20, 1 << 34));
        /// The REST API's address as clients reach it (https://mail.example.com), for the
        /// links it hands out (received attachments' download_url). Unset: the request's Host.
        public_url: Option<String> = None,
            env ["MISSIVE_PUBLIC_URL"], optional(parse_public_url);
    }
    /// SMTP submission.
    smtp: SmtpConfig {
        /// SMTP submission listener (STARTTLS offered).
        addr: SocketAddr = Some("127.0.0.1:2587"), env ["MISSIVE_SMTP_ADDR"], required(parse_addr);
        /// SMTP submission listener, implicit TLS.
        smtps_addr: SocketAddr = Some("127.0.0.1:2465"),
            env ["MISSIVE_SMTPS_ADDR"], required(parse_addr);
        /// PEM certificate chain for SMTP TLS; with tls_key, or neither (then a self-signed
        /// certificate is made at start).
        tls_cert: Option<PathBuf> = None, env ["MISSIVE_TLS_CERT"], optional(parse_path);
        /// PEM private key for SMTP TLS; with tls_cert, or neither.
        tls_key: Option<PathBuf> = None, env ["MISSIVE_TLS_KEY"], optional(parse_path);
        /// Open SMTP sessions across all clients.
        max_connections: usize = Some("1000"),
            env ["MISSIVE_SMTP_MAX_CONNECTIONS"], required(bounded(1, 100_000));
        /// Open SMTP sessions from one client address.
        max_connections_per_ip: usize = Some("50"),
            env ["MISSIVE_SMTP_MAX_CONNECTIONS_PER_IP"], required(bounded(1, 100_000));
        /// Open SMTP sessions of one tenant (authenticated, or from its trusted networks);
        /// more are closed with 421.
        max_sessions_per_tenant: usize = Some("100"),
            env ["MISSIVE_SMTP_MAX_SESSIONS_PER_TENANT"], required(bounded(1, 100_000));
        /// Refused commands before a session is closed with 421.
        max_errors: usize = Some("10"),
            env ["MISSIVE_SMTP_MAX_ERRORS"], required(bounded(1, 1000));
        /// Seconds a session may wait for the client's next input.
        idle_timeout_secs: Duration = Some("300"),
            env ["MISSIVE_SMTP_IDLE_TIMEOUT_SECS"], required(seconds(1, 86_400));
        /// Seconds a whole session may last.
        session_timeout_secs: Duration = Some("1800"),
            env ["MISSIVE_SMTP_SESSION_TIMEOUT_SECS"], required(seconds(1, 86_400));
    }
    /// The inbound MX: reports (bounces, delivery reports, complaints) that come back to
    /// return paths.
    mx: MxConfig {
        /// The MX listener (port 25 in production; STARTTLS offered with the SMTP
        /// certificate).
        addr: SocketAddr = Some("127.0.0.1:2525"), env ["MISSIVE_MX_ADDR"], required(parse_addr);
        /// The host name MX records of return paths point to (the Domains API lists it).
        host: String = Some("localhost"), env ["MISSIVE_MX_HOST"], required(parse_host);
        /// The operator's return-path domain, for mail whose sender's domain is not a
        /// verified domain of its tenant; its MX must point to this listener. Unset: such mail
        /// keeps its author's address as envelope sender, and its bounces go to the author.
        return_path_domain: Option<String> = None,
            env ["MISSIVE_RETURN_PATH_DOMAIN"], optional(parse_host);
        /// An address on the MX that takes feedback-loop complaints (ARF), for providers
        /// that send them to a fixed address. Unset: complaints are taken at return paths only.
        feedback_address: Option<String> = None,
            env ["MISSIVE_FEEDBACK_ADDRESS"], optional(parse_feedback_address);
        /// Ask relays that offer DSN for success reports too (NOTIFY=SUCCESS), recorded as
        /// `email.confirmed`; failures and delays are always asked for.
        notify_success: bool = Some("false"), env ["MISSIVE_DSN_NOTIFY_SUCCESS"], required(parse_bool);
        /// Soft bounces of one address, within soft_bounce_window_secs, that suppress it.
        soft_bounce_limit: u32 = Some("3"),
            env ["MISSIVE_SOFT_BOUNCE_LIMIT"], required(bounded(1, 1000));
        /// The window soft bounces are counted in, in seconds (7 days).
        soft_bounce_window_secs: Duration = Some("604800"),
            env ["MISSIVE_SOFT_BOUNCE_WINDOW_SECS"], required(seconds(60, 366 * 86_400));
        /// Take mail for receiving domains whose MX record was not found yet (tests, and
        /// domains reached through another MX that forwards here).
        receiving_allow_unverified: bool = Some("false"),
            env ["MISSIVE_RECEIVING_ALLOW_UNVERIFIED"], required(parse_bool);
        /// Seconds a report may take to parse before it is refused with 451.
        parse_timeout_secs: Duration = Some("5"),
            env ["MISSIVE_MX_PARSE_TIMEOUT_SECS"], required(seconds(1, 300));
        /// Seconds the SPF, DKIM and DMARC checks of a received message may take; past it
        /// the unfinished ones are kept as temperror and the message is taken.
        auth_timeout_secs: Duration = Some("10"),
            env ["MISSIVE_RECEIVING_AUTH_TIMEOUT_SECS"], required(seconds(1, 120));
        /// Messages one tenant may receive per day (UTC), unless the admin set its own; past
        /// it the MX answers 452 4.2.2.
        received_per_day: u64 = Some("10000"),
            env ["MISSIVE_RECEIVED_PER_DAY"], required(bounded(0, 1 << 50));
        /// Bytes of received mail one tenant may keep, unless the admin set its own; past it
        /// the MX answers 552 5.2.2.
        received_stored_bytes: u64 = Some("1073741824"),
            env ["MISSIVE_RECEIVED_STORED_BYTES"], required(bounded(0, 1 << 50));
        /// Seconds a received attachment's download_url works.
        attachment_link_secs: Duration = Some("3600"),
            env ["MISSIVE_ATTACHMENT_LINK_SECS"], required(seconds(60, 7 * 86_400));
    }
    /// What every accepted message answers to, over REST and SMTP alike.
    accept: AcceptConfig {
        /// Largest final MIME message, in bytes.
        max_message_bytes: usize = Some("10485760"),
            env ["MISSIVE_MAX_MESSAGE_BYTES"], required(bounded(1024, 1 << 30));
        /// Envelope recipients of one message (SMTP answers 452 past it, so the client sends
        /// the rest in another transaction). The default, 150, is three of Resend's 50-address
        /// fields.
        max_recipients: usize = Some("150"),
            env ["MISSIVE_MAX_RECIPIENTS", "MISSIVE_SMTP_MAX_RECIPIENTS"],
            required(bounded(1, 10_000));
    }
    /// Every tenant's limits unless it has its own (set by the admin). Unset: no limit.
    limits: LimitsConfig {
        /// REST requests per minute of one tenant, in each process (a key may have a lower
        /// limit of its own); the same limit counts SMTP transactions (MAIL FROM).
        requests_per_minute: Option<u32> = None,
            env ["MISSIVE_REQUESTS_PER_MINUTE"], optional(bounded(1, 100_000_000));
        /// Recipients one tenant may send to per day (UTC), across all processes.
        emails_per_day: Option<u64> = None,
            env ["MISSIVE_EMAILS_PER_DAY"], optional(bounded(0, 1 << 50));
        /// Recipients one tenant may send to per calendar month (UTC), across all processes.
        emails_per_month: Option<u64> = None,
            env ["MISSIVE_EMAILS_PER_MONTH"], optional(bounded(0, 1 << 50));
    }
    /// The shared relay outbound mail goes through.
    relay: RelayConfig {
        /// smtp://[user:pass@]host:port?tls=none|starttls|tls, or capture:DIR to write each
        /// message to DIR.
        url: RelaySpec = Some("capture:.missive/outbox"),
            env ["MISSIVE_RELAY_URL"], required(|s| s.parse().map_err(|e| format!("{e}")));
        /// Extra PEM CA certificates a relay's TLS certificate may chain to, besides the
        /// Mozilla roots.
        ca_file: Option<PathBuf> = None, env ["MISSIVE_RELAY_CA_FILE"], optional(parse_path);
        /// Open connections to a relay at most.
        max_connections: usize = Some("8"),
            env ["MISSIVE_RELAY_MAX_CONNECTIONS"], required(bounded(1, 10_000));
        /// Open connections to one tenant's own SMTP server at most, per worker: a tenant's
        /// slow server holds at most this many of the worker's sends.
        tenant_max_connections: usize = Some("4"),
            env ["MISSIVE_TENANT_RELAY_MAX_CONNECTIONS"], required(bounded(1, 1_000));
        /// Seconds each step of a relay conversation may take.
        timeout_secs: Duration = Some("60"),
            env ["MISSIVE_RELAY_TIMEOUT_SECS"], required(seconds(1, 3600));
        /// Our name in EHLO to relays, and in the SMTP greeting and Received headers.
        helo_name: String = Some("localhost"), env ["MISSIVE_HELO_NAME"], required(parse_host);
    }
    /// The delivery worker.
    delivery: DeliveryConfig {
        /// Emails one worker sends at once.
        concurrency: usize = Some("32"),
            env ["MISSIVE_WORKER_CONCURRENCY"], required(bounded(1, 10_000));
        /// Seconds a worker holds deliveries before others may take them.
        lease_secs: Duration = Some("300"),
            env ["MISSIVE_LEASE_SECS"], required(seconds(1, 86_400));
        /// Longest idle sleep of a worker, in milliseconds (NOTIFY wakes it sooner).
        poll_interval_ms: Duration = Some("1000"),
            env ["MISSIVE_POLL_INTERVAL_MS"], required(millis(10, 3_600_000));
    }
    /// Backoff for temporary delivery failures.
    retry: RetryConfig {
        /// Seconds before the second attempt; each later wait doubles, with jitter.
        base_secs: Duration = Some("60"),
            env ["MISSIVE_RETRY_BASE_SECS"], required(seconds(0, 86_400));
        /// Longest wait between two attempts, in seconds.
        max_interval_secs: Duration = Some("7200"),
            env ["MISSIVE_RETRY_MAX_INTERVAL_SECS"], required(seconds(0, 7 * 86_400));
        /// Seconds after acceptance when a temporary failure becomes final.
        max_age_secs: Duration = Some("259200"),
            env ["MISSIVE_RETRY_MAX_AGE_SECS"], required(seconds(0, 30 * 86_400));
    }
    /// Keys; better set in the environment than in a file.
    secrets: SecretsConfig {
        /// Bearer key for the admin API (/v1/tenants...), 24 characters or more. Unset: the
        /// admin API answers 403.
        admin_key: Option<SecretString> = None,
            env ["MISSIVE_ADMIN_KEY"], optional(parse_admin_key);
        /// 32-byte key, base64, that encrypts stored secrets (webhook signing secrets, DKIM
        /// keys, tenants' SMTP passwords). Unset: the routes that store one answer 503 (`make
        /// run` generates a key into .missive/).
        secret_key: Option<SecretBox<[u8; 32]>> = None,
            env ["MISSIVE_SECRET_KEY"], optional(parse_secret_key);
        /// Earlier secret keys, base64, comma separated: what they encrypted still opens. To
        /// rotate, set the new key and list the old one here; each stored secret names the key
        /// that sealed it.
        previous_secret_keys: Option<Vec<SecretBox<[u8; 32]>>> = None,
            env ["MISSIVE_PREVIOUS_SECRET_KEYS"], optional(parse_secret_keys);
    }
    /// Outbound webhooks and tenant-chosen targets.
    webhooks: WebhooksConfig {
        /// Allow webhook and SMTP-override targets on loopback and private ranges.
        allow_private: bool = Some("false"),
            env ["MISSIVE_WEBHOOK_ALLOW_PRIVATE"], required(parse_bool);
        /// After a signing secret's rotation, how long deliveries still carry the old secret's
        /// signature beside the new one, in seconds.
        secret_overlap_secs: Duration = Some("86400"),
            env ["MISSIVE_WEBHOOK_SECRET_OVERLAP_SECS"], required(seconds(0, 30 * 86400));
        /// Seconds before each attempt of one event, the first counted from the event (Svix's
        /// schedule); after the last, the event is failed.
        retry_schedule: Vec<Duration> = Some("0,5,300,1800,7200,18000,36000,36000"),
            env ["MISSIVE_WEBHOOK_RETRY_SCHEDULE"], required(parse_schedule);
        /// Webhook posts one dispatcher makes at once.
        concurrency: usize = Some("32"),
            env ["MISSIVE_WEBHOOK_CONCURRENCY"], required(bounded(1, 1000));
        /// Webhook posts in flight to one endpoint at once, per dispatcher (the events of one
        /// endpoint that dispatchers hold leased, together, are at most 16 times this).
        endpoint_concurrency: usize = Some("4"),
            env ["MISSIVE_WEBHOOK_ENDPOINT_CONCURRENCY"], required(bounded(1, 100));
        /// An endpoint that keeps failing with no success for this many seconds is disabled.
        disable_after_secs: Duration = Some("432000"),
            env ["MISSIVE_WEBHOOK_DISABLE_AFTER_SECS"], required(seconds(60, 365 * 86400));
    }
    /// DNS lookups (tenant targets' address checks, domain verification).
    dns: DnsConfig {
        /// Nameserver (host:port) to ask instead of the system's resolvers.
        server: Option<SocketAddr> = None, env ["MISSIVE_DNS_SERVER"], optional(parse_addr);
    }
    /// Tenants' sending domains.
    domains: DomainsConfig {
        /// The domain every tenant's SPF record includes (`include:<this>`), usually a name
        /// whose own SPF record lists the relay's addresses; unset: no SPF record is asked for.
        spf_include: Option<missive_core::Domain> = None,
            env ["MISSIVE_SPF_INCLUDE"], optional(parse_domain);
        /// The DKIM key type of new domains that name none: rsa (2048 bits) or ed25519.
        dkim_algorithm: DkimAlgorithm = Some("rsa"),
            env ["MISSIVE_DKIM_ALGORITHM"], required(|s| s.parse::<DkimAlgorithm>());
        /// How often each domain's records are looked up again, in seconds; one that
        /// disappeared stops the domain's signing.
        recheck_secs: Duration = Some("3600"),
            env ["MISSIVE_DOMAIN_RECHECK_SECS"], required(seconds(1, 7 * 86400));
        /// Sending domains one tenant may have.
        max_per_tenant: u32 = Some("1000"),
            env ["MISSIVE_MAX_DOMAINS_PER_TENANT"], required(bounded(1, 100_000));
    }
    /// Logging.
    log: LogConfig {
        /// Tracing filter, e.g. info or missive=debug.
        filter: String = Some("info"), env ["MISSIVE_LOG"], required(|s| Ok(s.to_owned()));
        /// Log format: pretty or json.
        format: LogFormat = Some("pretty"), env ["MISSIVE_LOG_FORMAT"], required(parse_log_format);
    }
    /// Stopping.
    shutdown: ShutdownConfig {
        /// Seconds in-flight work may take to finish after SIGTERM.
        timeout_secs: Duration = Some("30"),
            env ["MISSIVE_SHUTDOWN_TIMEOUT_SECS"], required(seconds(0, 3600));
    }
}

impl Config {
    /// The database URL, or an error naming the variable to set.
    ///
    /// # Errors
    /// When no URL is configured.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database
            .url
            .as_ref()
            .ok_or(ConfigError::Missing("MISSIVE_DATABASE_URL"))
    }

    /// What every message answers to.
    #[must_use]
    pub fn accept_limits(&self) -> AcceptLimits {
        AcceptLimits {
            max_message_bytes: self.accept.max_message_bytes,
            max_recipients: self.accept.max_recipients,
        }
    }

    /// The SMTP listeners' session limits.
    #[must_use]
    pub fn smtp_limits(&self) -> SmtpLimits {
        SmtpLimits {
            max_connections: self.smtp.max_connections,
            max_connections_per_ip: self.smtp.max_connections_per_ip,
            max_sessions_per_tenant: self.smtp.max_sessions_per_tenant,
            max_errors: self.smtp.max_errors,
            idle_timeout: self.smtp.idle_timeout_secs,
            session_timeout: self.smtp.session_timeout_secs,
        }
    }

    /// The largest HTTP request body: as set, or what the largest message needs as JSON.
    #[must_use]
    pub fn max_request_bytes(&self) -> usize {
        self.http.max_request_bytes.unwrap_or_else(|| {
            self.accept
                .max_message_bytes
                .saturating_mul(4)
                .div_ceil(3)
                .saturating_add(1 << 20)
        })
    }

    /// The HTTP listener's limits.
    #[must_use]
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: self.http.header_timeout_secs,
            max_connections: self.http.max_connections,
            max_connections_per_ip: self.http.max_connections_per_ip,
        }
    }

    /// The limits of tenants that have none of their own.
    #[must_use]
    pub fn default_limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.limits.requests_per_minute,
            emails_per_day: self.limits.emails_per_day,
            emails_per_month: self.limits.emails_per_month,
        }
    }

    /// The delivery worker's tuning and retry schedule.
    #[must_use]
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: self.delivery.concurrency,
            lease: self.delivery.lease_secs,
            poll_interval: self.delivery.poll_interval_ms,
            retry: RetryPolicy {
                base: self.retry.base_secs,
                max_interval: self.retry.max_interval_secs,
                max_age: self.retry.max_age_secs,
            },
            returns: ReturnPathSettings {
                paths: self.return_paths(),
                domain: self.mx.return_path_domain.clone(),
                notify_success: self.mx.notify_success,
            },
            soft_bounces: self.soft_bounce_rule(),
        }
    }

    /// When soft bounces suppress an address.
    #[must_use]
    pub const fn soft_bounce_rule(&self) -> SoftBounceRule {
        SoftBounceRule {
            limit: self.mx.soft_bounce_limit,
            window: self.mx.soft_bounce_window_secs,
        }
    }

    /// Return paths under the secret keys (the current one mints, earlier ones still check);
    /// none without `MISSIVE_SECRET_KEY`.
    #[must_use]
    pub fn return_paths(&self) -> Option<ReturnPaths> {
        ReturnPaths::new(&self.secret_keys())
    }

    /// The secret keys, the current one first; empty without `MISSIVE_SECRET_KEY`.
    fn secret_keys(&self) -> Vec<[u8; 32]> {
        use secrecy::ExposeSecret as _;
        self.secrets
            .secret_key
            .iter()
            .chain(self.secrets.previous_secret_keys.iter().flatten())
            .map(|key| *key.expose_secret())
            .collect()
    }

    /// Signed links to received attachments, under the secret keys; without
    /// `MISSIVE_SECRET_KEY`, under a key of this process (its links work on it alone).
    #[must_use]
    pub fn download_links(&self) -> DownloadLinks {
        let keys = self.secret_keys();
        DownloadLinks::new(&keys).unwrap_or_else(|| {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            DownloadLinks::new(&[key]).unwrap_or_else(|| unreachable!("one key given"))
        })
    }

    /// How the Receiving API makes download links.
    #[must_use]
    pub fn receiving(&self) -> crate::tenancy::receiving::Receiving {
        crate::tenancy::receiving::Receiving {
            links: self.download_links(),
            public_url: self.http.public_url.clone(),
            link_ttl: self.mx.attachment_link_secs,
        }
    }

    /// The operator's inbound caps.
    #[must_use]
    pub const fn receiving_caps(&self) -> ReceivingCaps {
        ReceivingCaps {
            per_day: Some(self.mx.received_per_day),
            stored_bytes: Some(self.mx.received_stored_bytes),
        }
    }

    /// How sending domains are checked and signed.
    #[must_use]
    pub fn domain_settings(&self) -> DomainSettings {
        DomainSettings {
            spf_include: self.domains.spf_include.clone(),
            default_algorithm: self.domains.dkim_algorithm,
            recheck_interval: self.domains.recheck_secs,
            max_per_tenant: self.domains.max_per_tenant,
            mx_host: self.mx.host.clone(),
        }
    }

    /// How the webhook dispatcher works.
    #[must_use]
    pub fn dispatcher_settings(&self) -> DispatcherSettings {
        DispatcherSettings {
            concurrency: self.webhooks.concurrency,
            per_endpoint: self.webhooks.endpoint_concurrency,
            lease: self.delivery.lease_secs,
            poll_interval: self.delivery.poll_interval_ms,
            schedule: self.webhooks.retry_schedule.clone(),
            disable_after: self.webhooks.disable_after_secs,
        }
    }

    /// How transports to relays behave.
    #[must_use]
    pub fn transport_settings(&self) -> TransportSettings {
        TransportSettings {
            ca_file: self.relay.ca_file.clone(),
            helo_name: self.relay.helo_name.clone(),
            max_connections: self.relay.max_connections,
            timeout: self.relay.timeout_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use secrecy::ExposeSecret;

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
            flags: flags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    fn temp_file(contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("missive-config-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn workspace_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = load(None, &[], &[]).unwrap();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8025");
        assert_eq!(config.smtp.addr.to_string(), "127.0.0.1:2587");
        assert_eq!(config.smtp.smtps_addr.to_string(), "127.0.0.1:2465");
        assert_eq!(
            config.relay.url,
            RelaySpec::Capture(".missive/outbox".into())
        );
        assert!(!config.webhooks.allow_private);
        assert_eq!(config.log.filter, "info");
        assert_eq!(config.log.format, LogFormat::Pretty);
        assert!(config.secrets.admin_key.is_none());
        assert_eq!(config.accept.max_message_bytes, 10 * 1024 * 1024);
        assert_eq!(config.accept.max_recipients, 150);
        assert_eq!(config.worker_settings().retry, RetryPolicy::default());
    }

    #[test]
    fn every_setting_has_a_unique_name_env_flag_and_a_doc() {
        let mut seen = std::collections::BTreeSet::new();
        for setting in SETTINGS {
            assert!(seen.insert(setting.file_key()), "{}", setting.file_key());
            assert!(seen.insert(setting.flag()), "{}", setting.flag());
            for env in setting.env {
                assert!(seen.insert((*env).to_owned()), "{env} declared twice");
            }
            assert!(
                !setting.doc.trim().is_empty(),
                "{} has no doc",
                setting.file_key()
            );
        }
    }

    #[test]
    fn file_then_env_then_flag_each_win_over_the_last() {
        let file = temp_file(
            "[http]\naddr = \"127.0.0.1:1001\"\n[smtp]\naddr = \"127.0.0.1:1002\"\nsmtps_addr = \"127.0.0.1:1003\"\n",
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
        assert_eq!(config.http.addr.port(), 1001);
        assert_eq!(config.smtp.addr.port(), 2002);
        assert_eq!(config.smtp.smtps_addr.port(), 3003);
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn the_files_flat_keys_still_work_but_not_beside_their_section_key() {
        let file = temp_file("http_addr = \"127.0.0.1:1001\"\nsmtp_max_recipients = 7\n");
        let config = load(Some(file.clone()), &[], &[]).unwrap();
        assert_eq!(config.http.addr.port(), 1001);
        assert_eq!(config.accept.max_recipients, 7);
        std::fs::remove_file(file).unwrap();
        let file = temp_file("http_addr = \"127.0.0.1:1001\"\n[http]\naddr = \"127.0.0.1:1002\"\n");
        let err = load(Some(file.clone()), &[], &[]).unwrap_err().to_string();
        assert!(err.contains("set twice"), "{err}");
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn older_names_are_aliases() {
        let config = load(None, &[("MISSIVE_SMTP_MAX_RECIPIENTS", "12")], &[]).unwrap();
        assert_eq!(config.accept.max_recipients, 12);
        let config = load(
            None,
            &[
                ("MISSIVE_SMTP_MAX_RECIPIENTS", "12"),
                ("MISSIVE_MAX_RECIPIENTS", "13"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.accept.max_recipients, 13);
    }

    #[test]
    fn database_url_falls_back_to_the_conventional_name() {
        let config = load(None, &[("DATABASE_URL", "postgres://a@localhost/b")], &[]).unwrap();
        assert_eq!(
            config.database.url.unwrap().expose_secret(),
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
            config.database.url.unwrap().expose_secret(),
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
        let file = temp_file("[log]\nformat = \"xml\"\n");
        let err = load(Some(file.clone()), &[], &[]).unwrap_err().to_string();
        assert!(err.starts_with("log.format in "), "{err}");
        std::fs::remove_file(file).unwrap();
        for bad in [
            "htp_addr = \"127.0.0.1:1\"\n",
            "[http]\nadr = \"127.0.0.1:1\"\n",
        ] {
            let file = temp_file(bad);
            let err = load(Some(file.clone()), &[], &[]).unwrap_err().to_string();
            assert!(err.contains("unknown setting"), "{err}");
            std::fs::remove_file(file).unwrap();
        }
        for (name, value) in [
            ("MISSIVE_WEBHOOK_ALLOW_PRIVATE", "maybe"),
            ("MISSIVE_RELAY_URL", "http://x"),
            ("MISSIVE_SECRET_KEY", "c2hvcnQ="),
            ("MISSIVE_ADMIN_KEY", "short"),
            ("MISSIVE_DATABASE_URL", "mysql://x"),
            ("MISSIVE_LOG_FORMAT", "xml"),
            ("MISSIVE_DB_MAX_CONNECTIONS", "0"),
            ("MISSIVE_TLS_CERT", "cert.pem"),
            ("MISSIVE_MAX_RECIPIENTS", "0"),
            ("MISSIVE_POLL_INTERVAL_MS", "1"),
        ] {
            let err = load(None, &[(name, value)], &[]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}:")), "{name}: {err}");
        }
    }

    #[test]
    fn earlier_secret_keys_are_a_comma_separated_list() {
        let a = "Xl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl4=";
        let b = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let list = format!("{a}, {b}");
        let config = load(None, &[("MISSIVE_PREVIOUS_SECRET_KEYS", &list)], &[]).unwrap();
        assert!(!format!("{config:?}").contains(a));
        let keys = config.secrets.previous_secret_keys.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(*keys[1].expose_secret(), [1u8; 32]);
        let err = load(None, &[("MISSIVE_PREVIOUS_SECRET_KEYS", "c2hvcnQ=")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MISSIVE_PREVIOUS_SECRET_KEYS:"), "{err}");
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
    fn the_shipped_config_file_is_generated_from_the_declarations() {
        let path = workspace_file("config/missive.toml");
        let generated = example_file();
        if std::env::var_os("MISSIVE_WRITE_CONFIG_EXAMPLE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        assert!(
            shipped == generated,
            "config/missive.toml differs from the declared settings; rewrite it with \
             MISSIVE_WRITE_CONFIG_EXAMPLE=1 cargo test -p missive --lib config"
        );
        // And it loads: every key in it is commented out, so it holds the defaults.
        let config = load(Some(path), &[], &[]).unwrap();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8025");
    }

    #[test]
    fn the_settings_reference_is_generated_from_the_declarations() {
        let path = workspace_file("docs/configuration.md");
        let generated = configuration_reference();
        if std::env::var_os("MISSIVE_WRITE_CONFIG_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "docs/configuration.md differs from the declared settings; rewrite it with \
             MISSIVE_WRITE_CONFIG_DOCS=1 cargo test -p missive --lib config"
        );
        for setting in SETTINGS {
            for env in setting.env {
                assert!(
                    shipped.contains(&format!("`{env}`")),
                    "docs/configuration.md does not list {env}"
                );
            }
        }
        // The README sends operators there.
        let readme = std::fs::read_to_string(workspace_file("README.md")).unwrap();
        assert!(readme.contains("(docs/configuration.md)"));
    }
}

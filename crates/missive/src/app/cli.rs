//! The command line: `missive serve | migrate | tenant ... | key ...`.
//!
//! Tenant and key commands call [`crate::tenancy::accounts`], the same functions as the admin API, and
//! print the same JSON. Logs go to stderr, results to stdout.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use missive_core::{ApiKeyId, MonthPeriod, ProjectId, ProjectRef, Scope, TenantId};
use missive_store::Store;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::app::config::{Config, SettingFlags};
use crate::app::startup::{self, Application, Roles};
use crate::app::telemetry;
use crate::tenancy::accounts::{
    self, CreateApiKeyRequest, CreateTenantRequest, RateLimitInput, SettingsInput,
    SettingsPatchInput, SmtpInput, UpdateTenantRequest,
};

/// Missive: a multi-tenant transactional email relay.
///
/// Configuration comes from built-in defaults, then the config file, then MISSIVE_* environment
/// variables, then flags; later sources win. docs/configuration.md lists every setting.
#[derive(Debug, Parser)]
#[command(name = "missive", version, propagate_version = true)]
pub struct Cli {
    /// TOML config file [env: MISSIVE_CONFIG] [default: config/missive.toml when it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The database and logging settings, which every command takes.
    #[command(flatten)]
    pub settings: SettingFlags<true>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, SMTP listeners and workers in one process (migrates first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create and list tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke a tenant's API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// Which parts of Missive a `serve` process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The REST API.
    Api,
    /// The SMTP submission listeners.
    Smtp,
    /// The inbound MX (reports to return paths).
    Mx,
    /// The delivery worker.
    Worker,
    /// The webhook dispatcher.
    Webhooks,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Every other setting (docs/configuration.md).
    #[command(flatten)]
    pub settings: SettingFlags<false>,
    /// Run only these parts (repeatable); all of them when absent
    #[arg(long = "role", value_enum, value_name = "ROLE")]
    pub roles: Vec<Role>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints JSON with the tenant and its first API key (shown once).
    Create {
        /// Tenant name, unique case-insensitively
        #[arg(long)]
        name: String,
        /// Allowed sender domain (repeatable); when given, senders must use one of them
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Default sender, e.g. "Acme <noreply@acme.test>"
        #[arg(long)]
        default_from: Option<String>,
        /// Default Reply-To address
        #[arg(long)]
        reply_to: Option<String>,
        /// Display name for senders that have none, e.g. "Acme"
        #[arg(long)]
        from_name: Option<String>,
        /// Source network (CIDR, repeatable) whose SMTP clients submit without AUTH
        #[arg(long = "trusted-network", value_name = "CIDR")]
        trusted_networks: Vec<String>,
    },
    /// Replace a tenant's trusted networks (none given: clear them); prints the tenant as JSON.
    SetTrustedNetworks {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// Source network (CIDR, repeatable), e.g. 10.1.0.0/16 or 192.0.2.7
        #[arg(long = "network", value_name = "CIDR")]
        networks: Vec<String>,
    },
    /// Set a tenant's own upstream SMTP server, through which its mail then goes; prints the
    /// tenant as JSON (never the password). Flags left out keep what is set.
    SetSmtp {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// Host name or IP address
        #[arg(long)]
        host: Option<String>,
        /// Port [default: 465 with --tls tls, otherwise 587]
        #[arg(long)]
        port: Option<u16>,
        /// Transport security: none, starttls or tls [default: starttls]
        #[arg(long)]
        tls: Option<String>,
        /// User name to log in with (with a password)
        #[arg(long)]
        username: Option<String>,
        /// Read the password from the first line of standard input (never a flag, which other
        /// users of the machine could read)
        #[arg(long)]
        password_stdin: bool,
        /// Keep the settings but send through the shared relay
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Send through this server again
        #[arg(long)]
        enable: bool,
    },
    /// Set a tenant's limits; prints the tenant as JSON. A value of `default` returns that
    /// limit to the configured default; limits left out stay as set.
    SetLimits {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// REST requests (and SMTP transactions) per minute, per process
        #[arg(long, value_name = "N|default")]
        requests_per_minute: Option<LimitArg>,
        /// Recipients per UTC day (0 stops sending)
        #[arg(long, value_name = "N|default")]
        emails_per_day: Option<LimitArg>,
        /// Recipients per UTC calendar month (0 stops sending)
        #[arg(long, value_name = "N|default")]
        emails_per_month: Option<LimitArg>,
    },
    /// A tenant's usage for a month (UTC) as JSON, with each day's figures.
    Usage {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// YYYY-MM [default: this month]
        #[arg(long)]
        period: Option<MonthPeriod>,
    },
    /// Remove a tenant's own SMTP server: its mail takes the shared relay. Prints the tenant.
    ClearSmtp {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
    },
    /// List tenants as JSON.
    List {
        /// Page size, 1 to 100
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this tenant id
        #[arg(long)]
        after: Option<TenantId>,
    },
}

/// A limit on the command line: a number, or `default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitArg {
    Default,
    Value(u64),
}

impl LimitArg {
    /// As a patch field: `None` is the default.
    #[must_use]
    pub fn value(self) -> Option<u64> {
        match self {
            Self::Default => None,
            Self::Value(n) => Some(n),
        }
    }
}

impl std::str::FromStr for LimitArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" {
            return Ok(Self::Default);
        }
        s.parse()
            .map(Self::Value)
            .map_err(|_| format!("`{s}` is neither a whole number nor `default`"))
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue an API key for a tenant; prints JSON with the key (shown once).
    Create {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// The project the key acts for [default: the tenant's default project]
        #[arg(long)]
        project: Option<ProjectId>,
        /// Scope (repeatable): full_access, send, emails:read, templates:read,
        /// templates:write, webhooks:manage, suppressions:manage, usage:read, domains:manage,
        /// receiving:read, projects:manage [default: full_access]
        #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Key name, unique among the tenant's live keys [default: cli-<timestamp>]
        #[arg(long)]
        name: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z)
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<OffsetDateTime>,
        /// A request rate limit of the key's own, per minute (the tenant's applies as well)
        #[arg(long)]
        requests_per_minute: Option<u32>,
    },
    /// List a tenant's keys (prefixes only) as JSON.
    List {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
    },
    /// Revoke a key.
    Revoke {
        /// Tenant id
        #[arg(long)]
        tenant: TenantId,
        /// API key id (from `key list`)
        #[arg(long)]
        key: ApiKeyId,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
        .map_err(|e: missive_core::ScopeError| e.to_string())
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

impl Cli {
    /// Flags that override configuration, keyed like the config file.
    fn config_flags(&self) -> BTreeMap<String, String> {
        let mut flags = self.settings.values().clone();
        if let Command::Serve(serve) = &self.command {
            flags.extend(serve.settings.values().clone());
        }
        flags
    }
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Runs a parsed command line. Configuration errors exit with status 2 and name the setting.
pub async fn run(cli: Cli) -> ExitCode {
    let config_file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("MISSIVE_CONFIG").map(PathBuf::from));
    let config = match Config::load(config_file, cli.config_flags()) {
        Ok(config) => config,
        Err(err) => {
            drop(writeln!(
                std::io::stderr(),
                "missive: configuration error: {err}"
            ));
            return ExitCode::from(2);
        }
    };
    if let Err(err) = telemetry::init_tracing(&config.log.filter, config.log.format) {
        drop(writeln!(
            std::io::stderr(),
            "missive: configuration error: {err}"
        ));
        return ExitCode::from(2);
    }
    match execute(cli.command, &config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "missive: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(config, &args.roles).await,
        Command::Migrate => {
            migrated_store(config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Tenant(command) => {
            tenant_command(command, &migrated_store(config).await?, config).await
        }
        Command::Key(command) => key_command(command, &migrated_store(config).await?).await,
    }
}

/// Admin commands migrate first, so they work before the first `serve`.
async fn migrated_store(config: &Config) -> anyhow::Result<Store> {
    let store = startup::connect_store(config, config.database.max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

async fn tenant_command(
    command: TenantCommand,
    store: &Store,
    config: &Config,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            name,
            domains,
            default_from,
            reply_to,
            from_name,
            trusted_networks,
        } => {
            let request = CreateTenantRequest {
                name,
                domain: None,
                settings: SettingsInput {
                    default_from,
                    reply_to,
                    from_name,
                    allowed_sender_domains: domains,
                    trusted_networks,
                },
            };
            print_json(&accounts::create_tenant(store, &request).await?)
        }
        TenantCommand::SetTrustedNetworks { tenant, networks } => {
            let request = UpdateTenantRequest {
                settings: SettingsPatchInput {
                    trusted_networks: Some(networks),
                    ..SettingsPatchInput::default()
                },
                ..UpdateTenantRequest::default()
            };
            let relays = startup::tenant_relays(config)?;
            print_json(&accounts::update_tenant(store, &relays, tenant, &request).await?)
        }
        TenantCommand::SetSmtp {
            tenant,
            host,
            port,
            tls,
            username,
            password_stdin,
            disable,
            enable,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
            } else {
                None
            };
            let smtp = SmtpInput {
                host,
                port,
                username: username.map(Some),
                password,
                tls,
                enabled: (disable || enable).then_some(enable),
            };
            let request = UpdateTenantRequest {
                smtp: Some(Some(smtp)),
                ..UpdateTenantRequest::default()
            };
            let relays = startup::tenant_relays(config)?;
            print_json(&accounts::update_tenant(store, &relays, tenant, &request).await?)
        }
        TenantCommand::SetLimits {
            tenant,
            requests_per_minute,
            emails_per_day,
            emails_per_month,
        } => {
            let request = UpdateTenantRequest {
                rate_limit: Some(Some(RateLimitInput {
                    requests_per_minute: requests_per_minute
                        .map(|l| l.value().map(u32::try_from).transpose())
                        .transpose()
                        .map_err(|_| anyhow::anyhow!("--requests-per-minute is too large"))?,
                    emails_per_day: emails_per_day.map(LimitArg::value),
                    emails_per_month: emails_per_month.map(LimitArg::value),
                })),
                ..UpdateTenantRequest::default()
            };
            let relays = startup::tenant_relays(config)?;
            print_json(&accounts::update_tenant(store, &relays, tenant, &request).await?)
        }
        TenantCommand::Usage { tenant, period } => {
            let period = period.unwrap_or_else(|| MonthPeriod::of(OffsetDateTime::now_utc()));
            print_json(&crate::tenancy::usage::tenant_month(store, tenant, period).await?)
        }
        TenantCommand::ClearSmtp { tenant } => {
            let request = UpdateTenantRequest {
                smtp: Some(None),
                ..UpdateTenantRequest::default()
            };
            let relays = startup::tenant_relays(config)?;
            print_json(&accounts::update_tenant(store, &relays, tenant, &request).await?)
        }
        TenantCommand::List { limit, after } => {
            print_json(&accounts::list_tenants(store, after, limit).await?)
        }
    }
}

async fn key_command(command: KeyCommand, store: &Store) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            tenant,
            project,
            scopes,
            name,
            expires_at,
            requests_per_minute,
        } => {
            let name = name
                .unwrap_or_else(|| format!("cli-{}", OffsetDateTime::now_utc().unix_timestamp()));
            let request = CreateApiKeyRequest {
                name,
                scopes,
                permission: None,
                expires_at,
                requests_per_minute,
            };
            let project = ProjectRef {
                tenant_id: tenant,
                project_id: project.unwrap_or(ProjectId::default_of(tenant)),
            };
            print_json(&accounts::create_api_key(store, project, None, &request).await?)
        }
        KeyCommand::List { tenant } => {
            print_json(&accounts::list_api_keys(store, tenant.into()).await?)
        }
        KeyCommand::Revoke { tenant, key } => {
            print_json(&accounts::revoke_api_key(store, tenant.into(), key).await?)
        }
    }
}

async fn serve(config: &Config, roles: &[Role]) -> anyhow::Result<()> {
    let runs = |role| roles.is_empty() || roles.contains(&role);
    let selected = Roles {
        api: runs(Role::Api),
        smtp: runs(Role::Smtp),
        mx: runs(Role::Mx),
        worker: runs(Role::Worker),
        webhooks: runs(Role::Webhooks),
    };
    let app = Application::build_with_roles(config, selected)
        .await
        .context("start-up failed")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(startup::cancel_on_signal(shutdown.clone()));
    match app.http_addr() {
        Some(addr) => tracing::info!(
            api = %format!("http://{addr}/v1"),
            docs = %format!("http://{addr}/docs"),
            admin_api = config.secrets.admin_key.is_some(),
            worker = selected.worker,
            "Missive is up"
        ),
        None => tracing::info!(worker = selected.worker, "Missive is up (no HTTP API)"),
    }
    if let Some((starttls, implicit)) = app.smtp_addrs() {
        tracing::info!(submission = %starttls, submissions = %implicit, "SMTP submission is up");
    }
    app.run_until_stopped(shutdown)
        .await
        .context("server failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::app::config::SETTINGS;

    fn flags_of(args: &[&str]) -> BTreeMap<String, String> {
        Cli::try_parse_from(args).unwrap().config_flags()
    }

    #[test]
    fn every_setting_is_a_flag_of_serve_that_sets_it() {
        for setting in SETTINGS {
            let flag = format!("{}=some-value", setting.flag());
            let flags = flags_of(&["missive", "serve", &flag]);
            assert_eq!(
                flags.get(&setting.flag_key()).map(String::as_str),
                Some("some-value"),
                "{}",
                setting.flag()
            );
            let help = Cli::try_parse_from(["missive", "serve", "--help"])
                .unwrap_err()
                .to_string();
            assert!(
                help.contains(&setting.flag()),
                "serve --help lacks {}",
                setting.flag()
            );
            assert!(
                help.contains(setting.env_name()),
                "serve --help lacks {}",
                setting.env_name()
            );
        }
    }

    #[test]
    fn database_and_log_flags_go_with_every_command_and_switches_stand_alone() {
        let flags = flags_of(&[
            "missive",
            "--database-url",
            "postgres://db/x",
            "key",
            "list",
            "--tenant",
            "00000000-0000-0000-0000-000000000001",
            "--log-format=json",
        ]);
        assert_eq!(flags["database_url"], "postgres://db/x");
        assert_eq!(flags["log_format"], "json");
        assert_eq!(
            flags_of(&["missive", "serve", "--allow-unsafe-commits"])["allow_unsafe_commits"],
            "true"
        );
        assert_eq!(
            flags_of(&["missive", "serve", "--smtp-max-recipients", "9"])["max_recipients"],
            "9"
        );
        // Serve's own settings are not flags of the admin commands.
        assert!(Cli::try_parse_from(["missive", "migrate", "--http-addr", "0.0.0.0:1"]).is_err());
    }
}

//! DNS, through hickory: one resolver per use, asking `MISSIVE_DNS_SERVER` when it is set (tests
//! answer from a local server they control) and the system's resolvers otherwise, with short
//! timeouts and hickory's own cache (answers kept for their TTL).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, Record};
use missive_core::sending_domain::{Lookup, RecordType};

/// How long one query waits for an answer, and how often it is tried.
const TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPTS: usize = 2;
/// Answers kept at most, each for its TTL.
const CACHE_SIZE: u64 = 1_024;

/// A resolver asking `nameserver`, or the system's resolvers when `None`.
///
/// # Errors
/// When the resolver cannot be built from its configuration.
pub fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match nameserver {
        Some(server) => {
            let mut ns = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut ns.connections {
                connection.port = server.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().unwrap_or_else(|e| {
            // No usable system configuration (a container without /etc/resolv.conf): start
            // anyway; names then fail to resolve with this reason until a nameserver is set.
            tracing::warn!(error = %e, "no system DNS configuration; set MISSIVE_DNS_SERVER");
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                TokioRuntimeProvider::default(),
            )
        }),
    };
    let options = builder.options_mut();
    options.timeout = TIMEOUT;
    options.attempts = ATTEMPTS;
    options.cache_size = CACHE_SIZE;
    builder.build().map_err(|e| e.to_string())
}

/// The records of type `rtype` at `name`: TXT records with each record's strings joined (as RFC
/// 7208 and RFC 6376 read them), MX records as their exchanges' host names (without the final
/// dot, lower case). `Missing` when the name or such records do not exist, `Unanswered` when DNS
/// did not say.
pub async fn lookup(resolver: &TokioResolver, name: &str, rtype: RecordType) -> Lookup {
    // Fully qualified: no search domains appended.
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let answered = match rtype {
        RecordType::Txt => resolver
            .txt_lookup(fqdn)
            .await
            .map(|found| values(found.answers())),
        RecordType::Mx => resolver
            .mx_lookup(fqdn)
            .await
            .map(|found| values(found.answers())),
    };
    match answered {
        Ok(found) if found.is_empty() => Lookup::Missing,
        Ok(found) => Lookup::Found(found),
        Err(e) if e.is_no_records_found() => Lookup::Missing,
        Err(e) => Lookup::Unanswered(e.to_string()),
    }
}

/// What each answer says, as [`lookup`] gives it.
fn values(answers: &[Record]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            RData::MX(mx) => Some(
                mx.exchange
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            ),
            _ => None,
        })
        .collect()
}

//! Tenants' sending domains as a service: adding one (a DKIM key pair made and sealed), the
//! records to publish, verification against DNS, key rotation, the background re-check, and
//! the keys the accept path signs with.
//!
//! - A domain is verified when its DKIM record carries our key and, when the operator names an
//!   SPF domain (`MISSIVE_SPF_INCLUDE`), its SPF record includes it; the DMARC record is a
//!   suggestion, checked and shown but not waited for.
//! - [`Domains::signing_keys`] serves each tenant's verified domains' keys from a cache that a
//!   change to any of its domains empties in every process (a NOTIFY carrying the tenant id).
//! - [`Domains::recheck`] looks again at every domain checked longer ago than the configured
//!   interval, so a record that disappears takes the domain out of signing.

pub mod dkim;
mod views;

pub use self::views::{
    Capabilities, CapabilitiesInput, CreateDomainRequest, DeletedDomain, DomainList, DomainRefView,
    DomainSummary, DomainView, ListDomainsQuery, RecordOut, UpdateDomainRequest,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use missive_core::sealed::{SealError, Sealed, Sealer};
use missive_core::sending_domain::{
    self, Capability, DkimAlgorithm, DomainTls, InboundDmarc, Lookup, RecordCheck, RecordKind,
    RecordSpec, RecordType, Region, VerificationStatus,
};
use missive_core::{Domain, DomainId, TenantId};
use missive_store::listen::ListenEvent;
use missive_store::{
    DomainCheck, DomainRecord, NewDkimKey, NewDomain, SealedSecret, Store, StoreError,
};
use tokio_util::sync::CancellationToken;

use crate::tenancy::cache::Cache;
use dkim::{DomainKey, KeyError};

/// The longest a tenant's keys are trusted, as a backstop to notifications.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Tenants whose keys are kept at most; a full cache starts afresh.
const MAX_ENTRIES: usize = 4_096;
/// Key pairs made at once, per process.
const KEYGEN_AT_ONCE: usize = 2;
/// Domains re-checked per round of the background re-check.
const RECHECK_BATCH: i64 = 100;

/// The operator's settings.
#[derive(Clone, Debug)]
pub struct DomainSettings {
    /// The domain every tenant's SPF record includes; `None`: no SPF record is asked for.
    pub spf_include: Option<Domain>,
    /// The key type of new domains that name none.
    pub default_algorithm: DkimAlgorithm,
    /// How often a domain's records are looked up again.
    pub recheck_interval: Duration,
    /// Domains a tenant may have: each costs a key pair and a look-up per re-check.
    pub max_per_tenant: u32,
    /// The host return paths' MX records point to (`MISSIVE_MX_HOST`).
    pub mx_host: String,
}

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainsError {
    /// No `MISSIVE_SECRET_KEY`: private keys could not be sealed.
    #[error("sending domains need MISSIVE_SECRET_KEY, which is not set")]
    Unavailable,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("a stored key does not open: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new domain as the API takes it.
#[derive(Debug, Default)]
pub struct NewDomainInput {
    pub name: String,
    pub algorithm: Option<DkimAlgorithm>,
    pub region: Option<Region>,
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    /// The return path's subdomain; `send` when unset.
    pub custom_return_path: Option<String>,
    pub capabilities: CapabilitiesInput,
    pub inbound_dmarc: Option<InboundDmarc>,
}

/// One record of a domain with its last verdict.
#[derive(Debug, Clone)]
pub struct RecordView {
    pub spec: RecordSpec,
    pub check: Option<RecordCheck>,
}

/// A tenant's verified domains' keys, by domain name.
#[derive(Debug, Default)]
pub struct TenantKeys {
    by_domain: HashMap<String, Arc<DomainKey>>,
    verified: Vec<Domain>,
}

impl TenantKeys {
    /// The key for mail from `domain`: its own when it is one of the tenant's verified
    /// domains, else the nearest verified parent's (a signature by the parent aligns with a
    /// subdomain's From under DMARC's relaxed alignment).
    #[must_use]
    pub fn for_domain(&self, domain: &str) -> Option<&Arc<DomainKey>> {
        if self.by_domain.is_empty() {
            return None;
        }
        let domain = domain.to_ascii_lowercase();
        let mut rest = domain.as_str();
        loop {
            if let Some(key) = self.by_domain.get(rest) {
                return Some(key);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The verified domains.
    #[must_use]
    pub fn domains(&self) -> &[Domain] {
        &self.verified
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct Domains {
    store: Store,
    sealer: Option<Arc<Sealer>>,
    resolver: TokioResolver,
    settings: Arc<DomainSettings>,
    cache: Arc<Cache<TenantId, Arc<TenantKeys>>>,
    /// Key pairs made at once: an RSA key is up to a second of CPU, so a burst of new domains
    /// waits here instead of filling the blocking pool that signing also uses.
    keygen: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Domains {
    /// A service whose key cache serves nothing until [`Domains::listen`] runs.
    #[must_use]
    pub fn new(
        store: Store,
        sealer: Option<Arc<Sealer>>,
        resolver: TokioResolver,
        settings: DomainSettings,
    ) -> Self {
        Self {
            store,
            sealer,
            resolver,
            settings: Arc::new(settings),
            cache: Arc::new(Cache::new(MAX_AGE, MAX_ENTRIES)),
            keygen: Arc::new(tokio::sync::Semaphore::new(KEYGEN_AT_ONCE)),
        }
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn sealer(&self) -> Result<&Sealer, DomainsError> {
        self.sealer.as_deref().ok_or(DomainsError::Unavailable)
    }

    /// Adds a domain to a tenant, with a new key pair.
    ///
    /// # Errors
    /// [`DomainsError::Invalid`] for a name that is not a domain, `Conflict` when the tenant has
    /// it already, [`DomainsError::Unavailable`] without a secret key.
    pub async fn insert(
        &self,
        tenant_id: TenantId,
        input: NewDomainInput,
    ) -> Result<DomainRecord, DomainsError> {
        let sealer = self.sealer()?;
        let name = Domain::parse(input.name.trim()).map_err(|_| {
            DomainsError::Invalid(format!("name: `{}` is not a domain", input.name))
        })?;
        let custom_return_path = return_path_label(input.custom_return_path.as_deref())?;
        let algorithm = input.algorithm.unwrap_or(self.settings.default_algorithm);
        let id = DomainId::new();
        let pair = self.generate(algorithm).await?;
        let sealed = seal(sealer, id, &pair.private_der);
        let selector = sending_domain::new_selector();
        let record = self
            .store
            .insert_domain(
                tenant_id,
                &NewDomain {
                    id,
                    name: name.as_str(),
                    region: input.region.unwrap_or_default(),
                    open_tracking: input.open_tracking.unwrap_or(false),
                    click_tracking: input.click_tracking.unwrap_or(false),
                    tls: DomainTls::default(),
                    custom_return_path: &custom_return_path,
                    sending: input.capabilities.sending.unwrap_or(Capability::Enabled),
                    receiving: input.capabilities.receiving.unwrap_or(Capability::Disabled),
                    inbound_dmarc: input.inbound_dmarc.unwrap_or_default(),
                    key: NewDkimKey {
                        algorithm,
                        selector: &selector,
                        public_key: &pair.public_base64,
                        private_key: &sealed,
                    },
                    max_per_tenant: i64::from(self.settings.max_per_tenant),
                },
            )
            .await?;
        tracing::info!(%tenant_id, domain_id = %id, domain = %name, %selector, "domain added");
        metrics::counter!("missive_domains_created_total").increment(1);
        Ok(record)
    }

    /// A key pair, made on the blocking pool, a few at a time.
    async fn generate(&self, algorithm: DkimAlgorithm) -> Result<dkim::KeyPair, DomainsError> {
        let failed = |e: String| DomainsError::Key(KeyError::Generate(e));
        let _turn = self
            .keygen
            .acquire()
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::task::spawn_blocking(move || dkim::generate(algorithm))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(DomainsError::Key)
    }

    /// The records a domain publishes, with each one's last verdict: the key in use, the next
    /// key's record during a rotation, SPF when configured, the DMARC suggestion.
    #[must_use]
    pub fn records(&self, domain: &DomainRecord) -> Vec<RecordView> {
        let checks = &domain.record_checks;
        specs(domain, &self.settings)
            .into_iter()
            .map(|(key, spec)| RecordView {
                check: checks.get(&key).and_then(parse_check),
                spec,
            })
            .collect()
    }

    /// Looks the domain's records up and records what was found: the domain becomes verified,
    /// failed (with each record's reason) or temporarily failed (DNS did not answer). During a
    /// rotation, a found record of the next key makes it the key in use.
    ///
    /// # Errors
    /// `NotFound`; database failures.
    pub async fn check(
        &self,
        tenant_id: TenantId,
        id: DomainId,
    ) -> Result<DomainRecord, DomainsError> {
        let domain = self.store.get_domain(tenant_id, id).await?;
        let specs = specs(&domain, &self.settings);
        let mut found: HashMap<(RecordType, String), Lookup> = HashMap::new();
        for (_, spec) in &specs {
            let at = (spec.rtype, spec.fqdn.clone());
            if let std::collections::hash_map::Entry::Vacant(entry) = found.entry(at) {
                entry.insert(crate::net::dns::lookup(&self.resolver, &spec.fqdn, spec.rtype).await);
            }
        }
        let mut checks: Vec<(String, RecordSpec, RecordCheck)> = specs
            .into_iter()
            .map(|(key, spec)| {
                let check = sending_domain::check(&spec, &found[&(spec.rtype, spec.fqdn.clone())]);
                (key, spec, check)
            })
            .collect();
        let next_found = checks.iter().any(|(key, _, check)| {
            key == NEXT_DKIM && check.status == VerificationStatus::Verified
        });
        if next_found {
            // The next key takes over: its record is the domain's DKIM record from now on.
            checks.retain(|(key, _, _)| key != RecordKind::Dkim.as_str());
            for (key, spec, _) in &mut checks {
                if key == NEXT_DKIM {
                    *key = RecordKind::Dkim.as_str().to_owned();
                    spec.required = true;
                }
            }
        }
        let (specs, verdicts): (Vec<RecordSpec>, Vec<RecordCheck>) = checks
            .iter()
            .map(|(_, spec, check)| (spec.clone(), check.clone()))
            .unzip();
        let status = sending_domain::domain_status(&specs, &verdicts);
        let record_checks: serde_json::Map<String, serde_json::Value> = checks
            .iter()
            .map(|(key, _, check)| {
                let verdict =
                    serde_json::json!({ "status": check.status.as_str(), "reason": check.reason });
                (key.clone(), verdict)
            })
            .collect();
        let record = self
            .store
            .record_domain_check(
                tenant_id,
                id,
                &DomainCheck {
                    status,
                    record_checks: &serde_json::Value::Object(record_checks),
                    promote_next: next_found,
                },
            )
            .await?;
        self.forget(tenant_id);
        if record.status != domain.status {
            tracing::info!(
                %tenant_id, domain_id = %id, domain = %record.name,
                from = %domain.status, to = %record.status, "domain status changed"
            );
        }
        metrics::counter!("missive_domain_checks_total", "status" => status.as_str()).increment(1);
        Ok(record)
    }

    /// Starts a key rotation: a new key under a new selector, published beside the one in use,
    /// which signs until a verification finds the new record.
    ///
    /// # Errors
    /// `NotFound`; [`DomainsError::Unavailable`] without a secret key.
    pub async fn begin_rotation(
        &self,
        tenant_id: TenantId,
        id: DomainId,
    ) -> Result<DomainRecord, DomainsError> {
        let sealer = self.sealer()?;
        let domain = self.store.get_domain(tenant_id, id).await?;
        let algorithm = domain.dkim_algorithm;
        let pair = self.generate(algorithm).await?;
        let sealed = seal(sealer, id, &pair.private_der);
        let selector = sending_domain::new_selector();
        let record = self
            .store
            .begin_domain_rotation(
                tenant_id,
                id,
                &NewDkimKey {
                    algorithm,
                    selector: &selector,
                    public_key: &pair.public_base64,
                    private_key: &sealed,
                },
            )
            .await?;
        tracing::info!(%tenant_id, domain_id = %id, %selector, "domain key rotation started");
        Ok(record)
    }

    /// The keys of a tenant's verified domains, opened and ready to sign.
    ///
    /// # Errors
    /// A key that does not open or load; database failures.
    pub async fn signing_keys(&self, tenant_id: TenantId) -> Result<Arc<TenantKeys>, DomainsError> {
        self.cache
            .get_or_load(tenant_id, self.load_keys(tenant_id), |_| true)
            .await
    }

    async fn load_keys(&self, tenant_id: TenantId) -> Result<Arc<TenantKeys>, DomainsError> {
        let rows = self.store.signing_keys(tenant_id).await?;
        let mut by_domain = HashMap::with_capacity(rows.len());
        for row in rows {
            let sealer = self.sealer()?;
            let algorithm = row.dkim_algorithm;
            let sealed = row.sealed();
            let der = sealer.open(
                row.id.as_uuid().as_bytes(),
                &Sealed {
                    key_id: sealed.key_id,
                    bytes: sealed.bytes,
                },
            )?;
            let key = DomainKey::load(&row.name, &row.selector, algorithm, &der)?;
            by_domain.insert(row.name, Arc::new(key));
        }
        let verified = by_domain
            .keys()
            .filter_map(|name| Domain::parse(name).ok())
            .collect();
        Ok(Arc::new(TenantKeys {
            by_domain,
            verified,
        }))
    }

    /// Empties this process's keys of a tenant: called after it changes one of its domains.
    pub fn forget(&self, tenant_id: TenantId) {
        self.cache.retain(|t| *t != tenant_id);
    }

    /// Takes in a domain change (the `missive_domains` channel's events).
    pub fn hear(&self, event: &ListenEvent) {
        self.cache.hear_tenants(event, |t| *t);
    }

    /// Looks again, every so often, at the domains checked longer ago than the interval, until
    /// `shutdown`: a record that disappeared takes its domain out of signing.
    pub async fn recheck(self, shutdown: CancellationToken) {
        let interval = self.settings.recheck_interval;
        // Often enough that no domain waits much past its interval, rarely enough to cost nothing.
        let pause = (interval / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            match self
                .store
                .domains_due_for_check(interval, RECHECK_BATCH)
                .await
            {
                Ok(due) => {
                    for (tenant_id, id) in due {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        match self.check(tenant_id, id).await {
                            Ok(_) | Err(DomainsError::Store(StoreError::NotFound)) => {}
                            Err(e) => {
                                tracing::warn!(%tenant_id, domain_id = %id, error = %e, "domain re-check failed");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing domains to re-check failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// A `custom_return_path` as stored: one DNS label, lower case; `send` when none is given.
fn return_path_label(given: Option<&str>) -> Result<String, DomainsError> {
    let label = given.map_or("send", str::trim).to_ascii_lowercase();
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if valid {
        Ok(label)
    } else {
        Err(DomainsError::Invalid(format!(
            "custom_return_path: `{}` is not one DNS label (letters, digits and inner hyphens, \
             63 at most)",
            given
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect::<String>()
        )))
    }
}

/// The record-check key of the next key's DKIM record during a rotation.
const NEXT_DKIM: &str = "DKIM_NEXT";

/// A domain's records, each with the key its verdict is stored under.
fn specs(domain: &DomainRecord, settings: &DomainSettings) -> Vec<(String, RecordSpec)> {
    let Ok(name) = Domain::parse(&domain.name) else {
        return Vec::new();
    };
    let spf_include = settings.spf_include.as_ref();
    let algorithm = domain.dkim_algorithm;
    let mut specs: Vec<(String, RecordSpec)> = sending_domain::records(
        &name,
        &domain.selector,
        algorithm,
        &domain.public_key,
        spf_include,
    )
    .into_iter()
    .map(|spec| (spec.kind.as_str().to_owned(), spec))
    .collect();
    if let (Some(selector), Some(public_key)) = (&domain.next_selector, &domain.next_public_key) {
        let next = sending_domain::records(&name, selector, algorithm, public_key, None)
            .into_iter()
            .find(|spec| spec.kind == RecordKind::Dkim);
        if let Some(mut next) = next {
            // Published beside the key in use; the domain's status does not wait for it.
            next.required = false;
            specs.insert(1, (NEXT_DKIM.to_owned(), next));
        }
    }
    if domain.receiving.is_enabled() {
        specs.push((
            sending_domain::RECEIVING_MX.to_owned(),
            sending_domain::receiving_record(&name, &settings.mx_host),
        ));
    }
    specs.extend(
        sending_domain::return_path_records(
            &name,
            &domain.custom_return_path,
            &settings.mx_host,
            spf_include,
        )
        .into_iter()
        .map(|(key, spec)| (key.to_owned(), spec)),
    );
    specs
}

fn parse_check(stored: &serde_json::Value) -> Option<RecordCheck> {
    Some(RecordCheck {
        status: stored.get("status")?.as_str()?.parse().ok()?,
        reason: stored
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    })
}

/// Seals a private key for its domain: the domain's id is the associated data.
fn seal(sealer: &Sealer, domain_id: DomainId, private_der: &[u8]) -> SealedSecret {
    let sealed = sealer.seal(domain_id.as_uuid().as_bytes(), private_der);
    SealedSecret {
        key_id: sealed.key_id,
        bytes: sealed.bytes,
    }
}

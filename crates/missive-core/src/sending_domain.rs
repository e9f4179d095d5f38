//! A tenant's sending domain: the DNS records it publishes for us (DKIM, SPF, a DMARC
//! suggestion), how we read what DNS answers for each, and what makes the domain verified.
//!
//! Pure: the lookups happen elsewhere and hand the TXT strings they found to the checks here, so
//! every verdict and its reason is testable without a nameserver.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::named::named;
use crate::tenant::Domain;

/// How a domain's messages are signed. RSA (2048 bits) is what every receiver verifies;
/// Ed25519 (RFC 8463) is shorter and faster, but not every receiver checks it yet.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    #[default]
    #[serde(alias = "rsa-sha256")]
    Rsa,
    #[serde(alias = "ed25519-sha256")]
    Ed25519,
}

impl DkimAlgorithm {
    pub const ALL: [Self; 2] = [Self::Rsa, Self::Ed25519];

    /// The name stored and shown (`rsa` or `ed25519`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The key record's `k=` tag.
    #[must_use]
    pub const fn key_type(self) -> &'static str {
        self.as_str()
    }
}

impl FromStr for DkimAlgorithm {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "rsa" | "rsa-sha256" => Ok(Self::Rsa),
            "ed25519" | "ed25519-sha256" => Ok(Self::Ed25519),
            other => Err(format!(
                "unknown DKIM algorithm `{other}`; expected rsa or ed25519"
            )),
        }
    }
}

named!(DkimAlgorithm, "DKIM algorithm");

/// Where a domain or one of its records stands (Resend's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Never looked up.
    #[default]
    NotStarted,
    /// Found as published.
    Verified,
    /// Missing or different from what we asked for.
    Failed,
    /// DNS did not answer (a timeout or a server failure): looked up again later.
    TemporaryFailure,
}

impl VerificationStatus {
    pub const ALL: [Self; 4] = [
        Self::NotStarted,
        Self::Verified,
        Self::Failed,
        Self::TemporaryFailure,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::TemporaryFailure => "temporary_failure",
        }
    }
}

named!(VerificationStatus, "verification status", parse);

/// How a domain's mail is sent to receivers (Resend's `tls` setting): with TLS when the
/// receiver offers it, or only with TLS.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DomainTls {
    #[default]
    Opportunistic,
    Enforced,
}

impl DomainTls {
    pub const ALL: [Self; 2] = [Self::Opportunistic, Self::Enforced];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Opportunistic => "opportunistic",
            Self::Enforced => "enforced",
        }
    }
}

named!(DomainTls, "domain TLS setting", parse);

/// Whether a domain does one of the things a domain can (Resend's `capabilities`: `sending`,
/// `receiving`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    #[default]
    Enabled,
    Disabled,
}

impl Capability {
    pub const ALL: [Self; 2] = [Self::Enabled, Self::Disabled];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }

    #[must_use]
    pub const fn is_enabled(self) -> bool {
        matches!(self, Self::Enabled)
    }
}

named!(Capability, "domain capability", parse);

pub use crate::received::InboundDmarc;

/// The regions Resend names for a domain. Missive sends from where it runs and keeps the name
/// for clients that set or show it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum Region {
    #[default]
    #[serde(rename = "us-east-1")]
    UsEast1,
    #[serde(rename = "eu-west-1")]
    EuWest1,
    #[serde(rename = "sa-east-1")]
    SaEast1,
    #[serde(rename = "ap-northeast-1")]
    ApNortheast1,
}

impl Region {
    pub const ALL: [Self; 4] = [
        Self::UsEast1,
        Self::EuWest1,
        Self::SaEast1,
        Self::ApNortheast1,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UsEast1 => "us-east-1",
            Self::EuWest1 => "eu-west-1",
            Self::SaEast1 => "sa-east-1",
            Self::ApNortheast1 => "ap-northeast-1",
        }
    }
}

named!(Region, "region", parse);

/// Which of the domain's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RecordKind {
    #[serde(rename = "DKIM")]
    Dkim,
    #[serde(rename = "SPF")]
    Spf,
    #[serde(rename = "DMARC")]
    Dmarc,
    /// The MX record of a receiving domain.
    #[serde(rename = "Receiving")]
    Receiving,
}

impl RecordKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dkim => "DKIM",
            Self::Spf => "SPF",
            Self::Dmarc => "DMARC",
            Self::Receiving => "Receiving",
        }
    }
}

/// One record to publish: where (`name` relative to the domain, `@` for the domain itself, and
/// the full name), and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpec {
    pub kind: RecordKind,
    pub name: String,
    pub fqdn: String,
    pub value: String,
    /// Whether the domain's verification waits for it (the DMARC record is a suggestion).
    pub required: bool,
    /// The DNS type: TXT, or MX for a return path's mail exchanger.
    pub rtype: RecordType,
    /// An MX record's preference.
    pub priority: Option<u16>,
}

/// The DNS type of a record to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    Txt,
    Mx,
}

impl RecordType {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Txt => "TXT",
            Self::Mx => "MX",
        }
    }
}

/// The records of a domain's return path (`<subdomain>.<domain>`, Resend's
/// `custom_return_path`), stored under their own keys: an MX to Missive's inbound MX, so reports
/// come back, and SPF for the return path's domain when the operator names what senders include
/// (receivers check SPF against the envelope sender's domain). Neither holds up the domain's
/// verification; the return path is used once its MX is found.
#[must_use]
pub fn return_path_records(
    domain: &Domain,
    subdomain: &str,
    mx_host: &str,
    spf_include: Option<&Domain>,
) -> Vec<(&'static str, RecordSpec)> {
    let fqdn = format!("{subdomain}.{domain}");
    let mut records = vec![(
        RETURN_PATH_MX,
        RecordSpec {
            kind: RecordKind::Spf,
            name: subdomain.to_owned(),
            fqdn: fqdn.clone(),
            value: mx_host.to_owned(),
            required: false,
            rtype: RecordType::Mx,
            priority: Some(10),
        },
    )];
    if let Some(include) = spf_include {
        records.push((
            RETURN_PATH_SPF,
            RecordSpec {
                kind: RecordKind::Spf,
                name: subdomain.to_owned(),
                fqdn,
                value: format!("v=spf1 include:{include} ~all"),
                required: false,
                rtype: RecordType::Txt,
                priority: None,
            },
        ));
    }
    records
}

/// The MX record a receiving domain publishes at its own name, to Missive's MX, stored under
/// its own key ([`RECEIVING_MX`]). It does not hold up the domain's verification (sending does
/// not need it); the MX takes the domain's mail once it is found.
#[must_use]
pub fn receiving_record(domain: &Domain, mx_host: &str) -> RecordSpec {
    RecordSpec {
        kind: RecordKind::Receiving,
        name: "@".to_owned(),
        fqdn: domain.as_str().to_owned(),
        value: mx_host.to_owned(),
        required: false,
        rtype: RecordType::Mx,
        priority: Some(10),
    }
}

/// The record-check key of a receiving domain's MX record.
pub const RECEIVING_MX: &str = "RECEIVING_MX";

/// The record-check key of the return path's MX record; the outgoing statement reads it.
pub const RETURN_PATH_MX: &str = "RETURN_PATH_MX";
/// The record-check key of the return path's SPF record.
pub const RETURN_PATH_SPF: &str = "RETURN_PATH_SPF";

/// What a lookup of one name found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The TXT strings at the name (each record's strings joined).
    Found(Vec<String>),
    /// The name does not exist or holds no TXT record.
    Missing,
    /// No answer: a timeout, or a server failure.
    Unanswered(String),
}

/// A record's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCheck {
    pub status: VerificationStatus,
    /// Why it is not verified; `None` when it is.
    pub reason: Option<String>,
}

impl RecordCheck {
    fn verified() -> Self {
        Self {
            status: VerificationStatus::Verified,
            reason: None,
        }
    }

    fn failed(reason: String) -> Self {
        Self {
            status: VerificationStatus::Failed,
            reason: Some(reason),
        }
    }
}

/// The records a domain publishes for a DKIM key under `selector`, and for SPF when the operator
/// names the domain senders include (`spf_include`).
#[must_use]
pub fn records(
    domain: &Domain,
    selector: &str,
    algorithm: DkimAlgorithm,
    public_key_base64: &str,
    spf_include: Option<&Domain>,
) -> Vec<RecordSpec> {
    let at = |relative: &str| {
        if relative == "@" {
            domain.as_str().to_owned()
        } else {
            format!("{relative}.{domain}")
        }
    };
    let mut records = vec![RecordSpec {
        kind: RecordKind::Dkim,
        name: format!("{selector}._domainkey"),
        fqdn: at(&format!("{selector}._domainkey")),
        value: dkim_value(algorithm, public_key_base64),
        required: true,
        rtype: RecordType::Txt,
        priority: None,
    }];
    if let Some(include) = spf_include {
        records.push(RecordSpec {
            kind: RecordKind::Spf,
            name: "@".to_owned(),
            fqdn: at("@"),
            value: format!("v=spf1 include:{include} ~all"),
            required: true,
            rtype: RecordType::Txt,
            priority: None,
        });
    }
    records.push(RecordSpec {
        kind: RecordKind::Dmarc,
        name: "_dmarc".to_owned(),
        fqdn: at("_dmarc"),
        value: "v=DMARC1; p=none;".to_owned(),
        required: false,
        rtype: RecordType::Txt,
        priority: None,
    });
    records
}

/// The TXT value of a DKIM key record (RFC 6376 section 3.6.1).
#[must_use]
pub fn dkim_value(algorithm: DkimAlgorithm, public_key_base64: &str) -> String {
    format!("v=DKIM1; k={}; p={public_key_base64}", algorithm.key_type())
}

/// Checks one record against what DNS answered for its name.
#[must_use]
pub fn check(spec: &RecordSpec, found: &Lookup) -> RecordCheck {
    let txts = match found {
        Lookup::Unanswered(reason) => {
            return RecordCheck {
                status: VerificationStatus::TemporaryFailure,
                reason: Some(format!("looking up {} failed: {reason}", spec.fqdn)),
            };
        }
        Lookup::Missing => {
            return RecordCheck::failed(format!(
                "no {} record at {}",
                spec.rtype.as_str(),
                spec.fqdn
            ));
        }
        Lookup::Found(txts) => txts,
    };
    if spec.rtype == RecordType::Mx {
        // The exchanges found, as host names.
        let wanted = spec.value.trim_end_matches('.');
        return if txts
            .iter()
            .any(|host| host.trim_end_matches('.').eq_ignore_ascii_case(wanted))
        {
            RecordCheck::verified()
        } else {
            RecordCheck::failed(format!(
                "the MX records at {} do not name {wanted}",
                spec.fqdn
            ))
        };
    }
    match spec.kind {
        RecordKind::Dkim => check_dkim(spec, txts),
        RecordKind::Spf => check_spf(spec, txts),
        RecordKind::Dmarc => check_dmarc(spec, txts),
        // Published as MX, checked above.
        RecordKind::Receiving => RecordCheck::failed(format!("no MX record at {}", spec.fqdn)),
    }
}

/// The record must carry our key (`p=`, white space ignored) and no other key type.
fn check_dkim(spec: &RecordSpec, txts: &[String]) -> RecordCheck {
    let wanted = tags(&spec.value);
    let tag = |tags: &[(&str, String)], name: &str| {
        tags.iter()
            .find(|(t, _)| *t == name)
            .map(|(_, v)| v.clone())
    };
    let (want_p, want_k) = (tag(&wanted, "p"), tag(&wanted, "k"));
    for txt in txts {
        let found = tags(txt);
        let p = tag(&found, "p");
        // No k= means rsa (RFC 6376 section 3.6.1).
        let k = tag(&found, "k").unwrap_or_else(|| "rsa".to_owned());
        if p.is_some() && p == want_p && Some(k) == want_k {
            return RecordCheck::verified();
        }
    }
    if txts
        .iter()
        .any(|t| tags(t).iter().any(|(tag, _)| *tag == "p"))
    {
        RecordCheck::failed(format!(
            "the TXT record at {} holds another key than this domain's",
            spec.fqdn
        ))
    } else {
        RecordCheck::failed(format!("no DKIM key record at {}", spec.fqdn))
    }
}

/// Exactly one SPF record (RFC 7208 section 4.5: more than one is a permanent error), which
/// includes the operator's domain.
fn check_spf(spec: &RecordSpec, txts: &[String]) -> RecordCheck {
    let spf: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let lower = t.trim_start().to_ascii_lowercase();
            lower == "v=spf1" || lower.starts_with("v=spf1 ")
        })
        .collect();
    let include = spec
        .value
        .split_whitespace()
        .find(|term| term.starts_with("include:"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    match spf.as_slice() {
        [] => RecordCheck::failed(format!("no SPF record at {}", spec.fqdn)),
        [one] => {
            if one
                .split_whitespace()
                .any(|term| term.trim_start_matches('+').to_ascii_lowercase() == include)
            {
                RecordCheck::verified()
            } else {
                RecordCheck::failed(format!(
                    "the SPF record at {} does not contain `{include}`",
                    spec.fqdn
                ))
            }
        }
        _ => RecordCheck::failed(format!(
            "{} SPF records at {}; receivers treat more than one as an error",
            spf.len(),
            spec.fqdn
        )),
    }
}

/// Any DMARC record: its policy is the domain owner's choice.
fn check_dmarc(spec: &RecordSpec, txts: &[String]) -> RecordCheck {
    if txts
        .iter()
        .any(|t| t.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
    {
        RecordCheck::verified()
    } else {
        RecordCheck::failed(format!("no DMARC record at {}", spec.fqdn))
    }
}

/// A tag list (`v=DKIM1; k=rsa; p=...`) as (tag, value) pairs, white space inside values
/// removed (a long key is often split over several strings or lines).
fn tags(record: &str) -> Vec<(&str, String)> {
    record
        .split(';')
        .filter_map(|part| {
            let (tag, value) = part.split_once('=')?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            Some((tag.trim(), value))
        })
        .collect()
}

/// The domain's status from its records' verdicts: verified when every required record is; a
/// temporary failure when one could not be looked up and none failed; failed otherwise.
#[must_use]
pub fn domain_status(records: &[RecordSpec], checks: &[RecordCheck]) -> VerificationStatus {
    let required = records
        .iter()
        .zip(checks)
        .filter(|(spec, _)| spec.required)
        .map(|(_, check)| check.status);
    let mut status = VerificationStatus::Verified;
    for record in required {
        match record {
            VerificationStatus::Verified => {}
            VerificationStatus::Failed | VerificationStatus::NotStarted => {
                return VerificationStatus::Failed;
            }
            VerificationStatus::TemporaryFailure => {
                status = VerificationStatus::TemporaryFailure;
            }
        }
    }
    status
}

/// A new selector: `mv` and eight random hex digits, so a rotated key's record never collides
/// with the one it replaces.
#[must_use]
pub fn new_selector() -> String {
    let bytes: [u8; 4] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("mv{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Domain {
        Domain::parse("acme.test").unwrap()
    }

    fn specs() -> Vec<RecordSpec> {
        let spf = Domain::parse("spf.missive.test").unwrap();
        records(&domain(), "mv01", DkimAlgorithm::Rsa, "QUJD", Some(&spf))
    }

    #[test]
    fn a_return_path_publishes_an_mx_to_missive_and_its_spf() {
        let spf = Domain::parse("spf.missive.test").unwrap();
        let specs = return_path_records(&domain(), "send", "mx.missive.test", Some(&spf));
        assert_eq!(specs.len(), 2);
        let (key, mx) = &specs[0];
        assert_eq!(*key, RETURN_PATH_MX);
        assert_eq!((mx.rtype, mx.priority), (RecordType::Mx, Some(10)));
        assert_eq!(mx.fqdn, format!("send.{}", domain()));
        let found = |hosts: &[&str]| {
            check(
                mx,
                &Lookup::Found(hosts.iter().map(|h| (*h).to_owned()).collect()),
            )
        };
        assert_eq!(
            found(&["MX.missive.test."]).status,
            VerificationStatus::Verified
        );
        assert!(
            found(&["mx.other.test"])
                .reason
                .unwrap()
                .contains("do not name mx.missive.test")
        );
        assert_eq!(specs[1].1.value, "v=spf1 include:spf.missive.test ~all");
        assert_eq!(return_path_records(&domain(), "send", "mx", None).len(), 1);
    }

    #[test]
    fn records_name_what_to_publish_where() {
        let specs = specs();
        assert_eq!(specs[0].fqdn, "mv01._domainkey.acme.test");
        assert_eq!(specs[0].name, "mv01._domainkey");
        assert_eq!(specs[0].value, "v=DKIM1; k=rsa; p=QUJD");
        assert_eq!(specs[1].fqdn, "acme.test");
        assert_eq!(specs[1].value, "v=spf1 include:spf.missive.test ~all");
        assert_eq!(specs[2].fqdn, "_dmarc.acme.test");
        assert!(!specs[2].required);
        let without_spf = records(&domain(), "mv01", DkimAlgorithm::Ed25519, "QUJD", None);
        assert_eq!(without_spf.len(), 2);
        assert_eq!(without_spf[0].value, "v=DKIM1; k=ed25519; p=QUJD");
    }

    #[test]
    fn a_dkim_record_matches_on_its_key_whatever_the_spacing() {
        let spec = &specs()[0];
        let found = |txt: &str| check(spec, &Lookup::Found(vec![txt.to_owned()]));
        assert_eq!(
            found("v=DKIM1;k=rsa;  p=QU JD").status,
            VerificationStatus::Verified
        );
        assert_eq!(
            found("v=DKIM1; p=QUJD").status,
            VerificationStatus::Verified
        );
        let other = found("v=DKIM1; k=rsa; p=WFla");
        assert_eq!(other.status, VerificationStatus::Failed);
        assert!(other.reason.unwrap().contains("another key"));
        assert_eq!(
            found("v=DKIM1; k=ed25519; p=QUJD").status,
            VerificationStatus::Failed
        );
        let missing = check(spec, &Lookup::Missing);
        assert_eq!(
            missing.reason.as_deref(),
            Some("no TXT record at mv01._domainkey.acme.test")
        );
        let timeout = check(spec, &Lookup::Unanswered("timed out".into()));
        assert_eq!(timeout.status, VerificationStatus::TemporaryFailure);
    }

    #[test]
    fn spf_needs_one_record_with_our_include() {
        let spec = &specs()[1];
        let found = |txts: &[&str]| {
            check(
                spec,
                &Lookup::Found(txts.iter().map(|t| (*t).to_owned()).collect()),
            )
        };
        assert_eq!(
            found(&[
                "google-site-verification=x",
                "v=spf1 mx include:spf.missive.test -all"
            ])
            .status,
            VerificationStatus::Verified
        );
        let without = found(&["v=spf1 mx -all"]);
        assert!(without.reason.unwrap().contains("include:spf.missive.test"));
        let two = found(&["v=spf1 include:spf.missive.test ~all", "v=spf1 mx ~all"]);
        assert!(two.reason.unwrap().starts_with("2 SPF records"));
        assert_eq!(found(&["hello"]).status, VerificationStatus::Failed);
    }

    #[test]
    fn the_domain_waits_for_required_records_only() {
        let specs = specs();
        let ok = RecordCheck::verified();
        let failed = RecordCheck::failed("x".into());
        let later = RecordCheck {
            status: VerificationStatus::TemporaryFailure,
            reason: None,
        };
        let status = |checks: [&RecordCheck; 3]| domain_status(&specs, &checks.map(Clone::clone));
        assert_eq!(status([&ok, &ok, &failed]), VerificationStatus::Verified);
        assert_eq!(status([&ok, &failed, &ok]), VerificationStatus::Failed);
        assert_eq!(
            status([&later, &ok, &ok]),
            VerificationStatus::TemporaryFailure
        );
        assert_eq!(status([&later, &failed, &ok]), VerificationStatus::Failed);
    }

    #[test]
    fn selectors_are_dns_labels_and_differ() {
        let a = new_selector();
        assert_eq!(a.len(), 10);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(a, new_selector());
    }
}

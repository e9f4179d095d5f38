//! The authentication of a received message on arrival, with mail-auth: SPF for the client's
//! address against the MAIL FROM domain (the HELO name for the null reverse path), every DKIM
//! signature, and DMARC for the author's domain from both. The verdicts are kept with the
//! message and shown by the Receiving API; they refuse nothing unless the receiving domain
//! enforces DMARC and the author's domain asks for reject.
//!
//! DNS goes through the process's resolver (`MISSIVE_DNS_SERVER` in tests), and the checks
//! together are held to a time limit: a check that has not answered by then is a `temperror`.

use std::net::IpAddr;
use std::time::Duration;

use mail_auth::dmarc::Policy;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult,
    dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};
use serde::Serialize;

/// What the client said about itself.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// The reverse path; `None` for the null one.
    pub mail_from: Option<&'a str>,
}

/// The verdicts kept with a received message (the API's `authentication`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    pub spf: SpfVerdict,
    pub dkim: Vec<DkimVerdict>,
    pub dmarc: DmarcVerdict,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpfVerdict {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror` or `permerror`.
    pub result: &'static str,
    /// The domain checked: the MAIL FROM's, or the HELO name for the null reverse path.
    pub domain: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DkimVerdict {
    /// `pass`, `fail`, `neutral`, `temperror` or `permerror`.
    pub result: &'static str,
    pub domain: Option<String>,
    pub selector: Option<String>,
    /// Why it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DmarcVerdict {
    /// `pass`, `fail`, `none`, `temperror` or `permerror`.
    pub result: &'static str,
    /// The author's (From) domain.
    pub domain: Option<String>,
    /// What its DMARC record asks for a failing message: `none`, `quarantine`, `reject`;
    /// absent without a record.
    pub policy: Option<&'static str>,
}

impl Verdicts {
    /// What is kept when nothing could be checked in time.
    fn unchecked(domain: String) -> Self {
        Self {
            spf: SpfVerdict {
                result: "temperror",
                domain,
            },
            dkim: Vec::new(),
            dmarc: DmarcVerdict {
                result: "temperror",
                domain: None,
                policy: None,
            },
        }
    }

    /// Whether a domain that enforces DMARC refuses the message: DMARC failed and the author's
    /// domain asks for reject.
    #[must_use]
    pub fn dmarc_rejects(&self) -> bool {
        self.dmarc.result == "fail" && self.dmarc.policy == Some("reject")
    }
}

const fn spf_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_verdict(result: &DkimResult) -> (&'static str, Option<String>) {
    match result {
        DkimResult::Pass => ("pass", None),
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    }
}

const fn dmarc_name(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

const fn policy_name(policy: Policy) -> Option<&'static str> {
    match policy {
        Policy::None => Some("none"),
        Policy::Quarantine => Some("quarantine"),
        Policy::Reject => Some("reject"),
        Policy::Unspecified => None,
    }
}

/// Checks `raw` from `client`, within `limit`.
pub async fn authenticate(
    authenticator: &MessageAuthenticator,
    hostname: &str,
    client: Client<'_>,
    raw: &[u8],
    limit: Duration,
) -> Verdicts {
    let spf_domain = client
        .mail_from
        .and_then(|m| m.rsplit_once('@'))
        .map_or(client.helo, |(_, d)| d)
        .to_ascii_lowercase();
    match tokio::time::timeout(limit, check(authenticator, hostname, client, raw)).await {
        Ok(verdicts) => verdicts,
        Err(_) => {
            metrics::counter!("missive_mx_auth_timeouts_total").increment(1);
            Verdicts::unchecked(spf_domain)
        }
    }
}

async fn check(
    authenticator: &MessageAuthenticator,
    hostname: &str,
    client: Client<'_>,
    raw: &[u8],
) -> Verdicts {
    let spf = match client.mail_from {
        Some(sender) => {
            authenticator
                .verify_spf(SpfParameters::verify_mail_from(
                    client.ip,
                    client.helo,
                    hostname,
                    sender,
                ))
                .await
        }
        None => {
            authenticator
                .verify_spf(SpfParameters::verify_ehlo(client.ip, client.helo, hostname))
                .await
        }
    };
    let spf_verdict = SpfVerdict {
        result: spf_name(spf.result()),
        domain: spf.domain().to_owned(),
    };
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        return Verdicts {
            spf: spf_verdict,
            dkim: Vec::new(),
            dmarc: DmarcVerdict {
                result: "permerror",
                domain: None,
                policy: None,
            },
        };
    };
    let dkim = authenticator.verify_dkim(&message).await;
    let mail_from_domain = client
        .mail_from
        .and_then(|m| m.rsplit_once('@'))
        .map_or(client.helo, |(_, d)| d);
    let dmarc = authenticator
        .verify_dmarc(DmarcParameters::new(
            &message,
            &dkim,
            mail_from_domain,
            &spf,
        ))
        .await;
    let dkim = dkim
        .iter()
        .map(|output| {
            let (result, reason) = dkim_verdict(output.result());
            DkimVerdict {
                result,
                domain: output.signature().map(|s| s.d.clone()),
                selector: output.signature().map(|s| s.s.clone()),
                reason,
            }
        })
        .collect();
    let author_domain = message
        .from
        .first()
        .and_then(|f| f.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    Verdicts {
        spf: spf_verdict,
        dkim,
        dmarc: DmarcVerdict {
            result: dmarc_name(&dmarc.result()),
            domain: author_domain,
            policy: dmarc.dmarc_record().and(policy_name(dmarc.policy())),
        },
    }
}

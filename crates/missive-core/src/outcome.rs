//! One function that decides what an SMTP reply or a transport failure means for a delivery.

/// The fate of one recipient after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the relay took responsibility.
    Delivered,
    /// 4xx, or the relay could not be reached, or TLS failed: try again later.
    Deferred,
    /// 5xx: permanent; do not retry.
    Bounced,
}

/// Classifies an SMTP reply code.
#[must_use]
pub fn classify(code: u16) -> Outcome {
    match code {
        200..=299 => Outcome::Delivered,
        500..=599 => Outcome::Bounced,
        // 4xx, and anything outside the protocol, is treated as temporary: retrying a message
        // that might have gone through is safer than dropping one that did not.
        _ => Outcome::Deferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classes_map_to_outcomes() {
        assert_eq!(classify(250), Outcome::Delivered);
        assert_eq!(classify(251), Outcome::Delivered);
        assert_eq!(classify(421), Outcome::Deferred);
        assert_eq!(classify(451), Outcome::Deferred);
        assert_eq!(classify(550), Outcome::Bounced);
        assert_eq!(classify(554), Outcome::Bounced);
        assert_eq!(classify(0), Outcome::Deferred);
        assert_eq!(classify(999), Outcome::Deferred);
    }
}

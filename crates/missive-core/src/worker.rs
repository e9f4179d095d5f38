//! The kinds of leasing worker that register (`workers.kind`): each takes over the leases of its
//! own kind's dead workers.

use crate::named::named;

/// Which queue a registered worker leases from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// Deliveries (`--role worker`).
    Delivery,
    /// The webhook outbox (`--role webhooks`).
    Webhooks,
}

impl WorkerKind {
    pub const ALL: [Self; 2] = [Self::Delivery, Self::Webhooks];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::Webhooks => "webhooks",
        }
    }
}

named!(WorkerKind, "worker kind", parse);

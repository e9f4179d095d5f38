//! One connection budget per process. `MISSIVE_DB_MAX_CONNECTIONS` counts every connection a
//! process opens to Postgres: the connections that LISTEN or hold a worker's registration, and
//! the pools of the roles it runs, so an operator sizing Postgres's `max_connections` adds up
//! one figure per process.
//!
//! The split: first the dedicated connections (one LISTEN for the caches of the API and SMTP;
//! a LISTEN and a registration for the delivery worker and for the webhook dispatcher), then, of
//! the rest, a third (at most 16) for the accept path's writers, a sixth (at most 8) each for the
//! delivery worker and the webhook dispatcher, and the remainder for the main pool (the API's
//! and SMTP's reads, usage counters, domain checks). Every pool gets at least two.

use super::startup::Roles;
use crate::app::config::ConfigError;

/// Connections the accept path's writers get at most: its group writers and sends with an
/// idempotency key (each holds one for its transaction). More did not raise the accept rate.
const WRITER_MAX: u32 = 16;
/// Connections the delivery worker's pool, and the dispatcher's, get at most: one lease, one
/// recorder and the message reads of sends in flight.
const QUEUE_MAX: u32 = 8;
/// The least any pool gets: one statement may wait on another (a lease beside a record).
const POOL_MIN: u32 = 2;

/// How a process's connections are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// The main pool.
    pub main: u32,
    /// The accept path's writers (0 without the API or SMTP).
    pub writer: u32,
    /// The delivery worker's pool (0 without the worker).
    pub worker: u32,
    /// The webhook dispatcher's pool (0 without it).
    pub dispatcher: u32,
    /// Connections outside the pools: LISTEN and worker registrations.
    pub dedicated: u32,
}

impl ConnectionBudget {
    /// Splits `total` among what `roles` open.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `MISSIVE_DB_MAX_CONNECTIONS` when `total` is too few for
    /// these roles, with the least that is enough.
    pub fn split(total: u32, roles: Roles) -> Result<Self, ConfigError> {
        let submission = roles.takes_mail();
        let dedicated =
            u32::from(submission) + 2 * u32::from(roles.worker) + 2 * u32::from(roles.webhooks);
        let pools = 1 + u32::from(submission) + u32::from(roles.worker) + u32::from(roles.webhooks);
        let least = dedicated + POOL_MIN * pools;
        if total < least {
            return Err(ConfigError::Invalid {
                name: "MISSIVE_DB_MAX_CONNECTIONS".to_owned(),
                message: format!(
                    "{total} connections are too few for the roles this process runs: they need \
                     at least {least} ({dedicated} to LISTEN and to register workers, and {POOL_MIN} \
                     for each of {pools} pools)"
                ),
            });
        }
        let pooled = total - dedicated;
        let share = |on: bool, divisor: u32, max: u32| {
            if on {
                (pooled / divisor).clamp(POOL_MIN, max)
            } else {
                0
            }
        };
        let writer = share(submission, 3, WRITER_MAX);
        let worker = share(roles.worker, 6, QUEUE_MAX);
        let dispatcher = share(roles.webhooks, 6, QUEUE_MAX);
        Ok(Self {
            main: pooled - writer - worker - dispatcher,
            writer,
            worker,
            dispatcher,
            dedicated,
        })
    }

    /// Every connection the budget opens at most.
    #[must_use]
    pub const fn total(&self) -> u32 {
        self.main + self.writer + self.worker + self.dispatcher + self.dedicated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKERS: Roles = Roles {
        api: false,
        smtp: false,
        mx: false,
        worker: true,
        webhooks: true,
    };

    #[test]
    fn the_default_gives_every_role_of_one_process_its_pool() {
        let budget = ConnectionBudget::split(64, Roles::ALL).unwrap();
        assert_eq!(
            budget,
            ConnectionBudget {
                main: 27,
                writer: 16,
                worker: 8,
                dispatcher: 8,
                dedicated: 5,
            }
        );
    }

    #[test]
    fn the_split_never_exceeds_the_total_and_every_pool_in_use_gets_two() {
        for roles in [Roles::ALL, Roles::SUBMISSION, WORKERS] {
            let least = (1..200)
                .find(|&n| ConnectionBudget::split(n, roles).is_ok())
                .unwrap();
            for total in least..500 {
                let budget = ConnectionBudget::split(total, roles).unwrap();
                assert_eq!(budget.total(), total, "{roles:?} {total}");
                assert!(budget.main >= POOL_MIN);
                assert_eq!(budget.writer >= POOL_MIN, roles.takes_mail());
                assert_eq!(budget.worker >= POOL_MIN, roles.worker);
                assert_eq!(budget.dispatcher >= POOL_MIN, roles.webhooks);
            }
        }
    }

    #[test]
    fn too_few_names_the_variable_and_the_least_that_is_enough() {
        let err = ConnectionBudget::split(12, Roles::ALL)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MISSIVE_DB_MAX_CONNECTIONS: "), "{err}");
        assert!(err.contains("at least 13"), "{err}");
        assert!(ConnectionBudget::split(13, Roles::ALL).is_ok());
        // A process of the workers alone holds no writers and no cache listener.
        assert_eq!(ConnectionBudget::split(64, WORKERS).unwrap().writer, 0);
    }
}

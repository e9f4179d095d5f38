//! The Postgres-backed queues and their workers: the delivery worker ([`delivery`]) and the
//! webhook dispatcher ([`webhooks`]), each registered so a dead process's leases are taken over
//! within about a second ([`registration`]), and paced so each statement carries a batch
//! ([`pace`]).
//!
//! Owns: leasing, attempting and recording. May call: the store, core and [`crate::net`] (the
//! SMTP client, the relay transports, the webhook address policy). Never the edges or the
//! configuration: `app::startup` hands each worker its settings.

pub mod delivery;
pub mod pace;
pub mod registration;
pub mod runner;
pub mod webhooks;

//! What reaches other machines: name lookups ([`dns`]), the policy on which addresses a
//! tenant's URL or host may lead to ([`targets`]), the SMTP client ([`smtp`]), and the transports
//! built on it for the shared relay and tenants' own servers ([`relay`]).
//!
//! Owns: sockets, TLS client configuration and the address checks made before dialling. May
//! call: core and the store's row types. Knows nothing of tenants' requests or the queues.

pub mod dns;
pub mod relay;
pub mod smtp;
pub mod targets;

//! What a tenant has and what an operator manages, as services both front ends call: the REST
//! API and the web console (and the command line for accounts) call these functions and nothing
//! below them, so a rule, a scope check or a view is written once. Each takes the
//! [`caller::Caller`] it acts for and answers with typed views, or a [`error::ServiceError`].
//!
//! Owns: accounts and API keys ([`accounts`], [`credentials`], [`keys`]), emails as read back
//! ([`emails`]), a tenant's projects ([`projects`]), templates ([`templates`]), sending domains and their DKIM keys ([`domains`]),
//! webhook endpoints and their events ([`webhooks`]), the suppression list ([`suppressions`]),
//! usage ([`usage`]), and the caches of their rows ([`cache`]). May call: the store, core and
//! [`crate::net`]. Never an edge.

pub mod accounts;
pub mod cache;
pub mod caller;
pub mod credentials;
pub mod domains;
pub mod emails;
pub mod error;
pub mod keys;
pub mod page;
pub mod projects;
pub mod receiving;
pub mod suppressions;
pub mod templates;
pub mod usage;
pub mod webhooks;

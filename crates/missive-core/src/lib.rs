//! Missive's pure domain: the types every other crate agrees on.
//!
//! Nothing here does I/O or knows about an async runtime, so the rules it encodes (what a valid API
//! key, scope, domain or tenant setting is) are cheap to test exhaustively and to fuzz.

pub mod address;
pub mod api_key;
pub mod ids;
pub mod mime;
pub mod network;
pub mod outcome;
pub mod retry;
pub mod scope;
pub mod submission;
pub mod tenant;

pub use address::{AddressError, EmailAddress, Mailbox};
pub use api_key::{ApiKeyError, ApiKeyHash, NewApiKey, parse_api_key};
pub use ids::{ApiKeyId, TenantId};
pub use network::{IpNetwork, NetworkError};
pub use scope::{Scope, ScopeError, Scopes};
pub use tenant::{
    Domain, TenantName, TenantSettings, TenantSettingsError, TenantStatus, parse_setting_mailbox,
};

//! Missive's pure domain: the types every other crate agrees on.
//!
//! Nothing here does I/O or knows about an async runtime, so the rules it encodes (what a valid API
//! key, scope, domain, tenant setting, submission, delivery status or route is) are cheap to test
//! exhaustively and to fuzz. The optional `sqlx` feature (the store's) only teaches the stored
//! enums and ids their column encodings ([`named`]).

pub mod address;
pub mod api_key;
mod base32;
pub mod download;
pub mod event;
pub mod idempotency;
pub mod ids;
pub mod limits;
pub mod mime;
pub mod named;
pub mod network;
pub mod outcome;
pub mod payload;
pub mod project;
pub mod received;
pub mod report;
pub mod retry;
pub mod return_path;
pub mod routing;
pub mod scope;
pub mod sealed;
pub mod sending_domain;
pub mod submission;
pub mod target;
pub mod template;
pub mod tenant;
pub mod webhook;
pub mod worker;

pub use address::{AddressError, EmailAddress, Mailbox};
pub use api_key::{ApiKeyError, ApiKeyHash, NewApiKey, parse_api_key};
pub use event::{DeliveryStatus, EmailState, EventKind, SuppressionOrigin, WebhookEventType};
pub use idempotency::{Fingerprint, IdempotencyKey};
pub use ids::{
    ApiKeyId, DeliveryId, DomainId, EmailId, ProjectId, TemplateId, TenantId, WebhookEventId,
    WebhookId,
};
pub use limits::{Limits, MonthPeriod, QuotaPeriod};
pub use named::{Named, UnknownName};
pub use network::{IpNetwork, NetworkError};
pub use project::{DEFAULT_PROJECT_NAME, ProjectName, ProjectRef, Reach};
pub use routing::{RelaySpec, Route, RouteKind};
pub use scope::{Scope, ScopeError, Scopes};
pub use tenant::{
    DOMAIN_PATTERN, Domain, MAX_NAME_CHARS, NO_CONTROLS_PATTERN, SenderDomain, SendingPolicy,
    TenantName, TenantSettings, TenantSettingsError, TenantStatus, parse_display_name, parse_label,
    parse_setting_mailbox,
};
pub use webhook::{WebhookEventStatus, WebhookStatus};
pub use worker::WorkerKind;

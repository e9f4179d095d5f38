//! Missive's end-to-end suite: one binary, a real Postgres, real HTTP.

mod accept_rules;
mod api_keys;
mod auth;
mod cli;
mod console;
mod crash;
mod delivery;
mod domains;
mod edge;
mod emails;
mod fuzz;
mod health;
mod isolation;
mod layout;
mod limits;
mod openapi;
mod outbox;
mod recovery;
mod resend_sdk;
mod routing;
mod smtp;
mod store;
mod suppressions;
mod templates;
mod tenants;
mod webhooks;

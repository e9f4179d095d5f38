//! Typed identifiers, so a tenant id can never be passed where a key id is meant.
//!
//! All ids are UUIDv7: time-ordered, which keeps B-tree inserts local and makes them usable as
//! pagination cursors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The id without hyphens (as it appears in Message-IDs and webhook message ids).
            #[must_use]
            pub const fn simple(&self) -> uuid::fmt::Simple {
                self.0.simple()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        #[cfg(feature = "sqlx")]
        impl ::sqlx_core::types::Type<::sqlx_postgres::Postgres> for $name {
            fn type_info() -> ::sqlx_postgres::PgTypeInfo {
                <Uuid as ::sqlx_core::types::Type<::sqlx_postgres::Postgres>>::type_info()
            }
        }

        #[cfg(feature = "sqlx")]
        impl ::sqlx_postgres::PgHasArrayType for $name {
            fn array_type_info() -> ::sqlx_postgres::PgTypeInfo {
                <Uuid as ::sqlx_postgres::PgHasArrayType>::array_type_info()
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r> ::sqlx_core::decode::Decode<'r, ::sqlx_postgres::Postgres> for $name {
            fn decode(
                value: ::sqlx_postgres::PgValueRef<'r>,
            ) -> Result<Self, ::sqlx_core::error::BoxDynError> {
                <Uuid as ::sqlx_core::decode::Decode<::sqlx_postgres::Postgres>>::decode(value)
                    .map(Self)
            }
        }

        #[cfg(feature = "sqlx")]
        impl ::sqlx_core::encode::Encode<'_, ::sqlx_postgres::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut ::sqlx_postgres::PgArgumentBuffer,
            ) -> Result<::sqlx_core::encode::IsNull, ::sqlx_core::error::BoxDynError> {
                <Uuid as ::sqlx_core::encode::Encode<::sqlx_postgres::Postgres>>::encode_by_ref(
                    &self.0, buf,
                )
            }
        }
    };
}

uuid_id!(
    /// Identifies a tenant: the unit of isolation for every piece of data.
    TenantId
);
uuid_id!(
    /// Identifies a project: one of a tenant's applications. A tenant's `default` project has
    /// the tenant's own id.
    ProjectId
);
uuid_id!(
    /// Identifies an API key; never secret, shown in listings.
    ApiKeyId
);
uuid_id!(
    /// Identifies an accepted email: the id the API answers a send with and SMTP's
    /// `250 Queued as`.
    EmailId
);
uuid_id!(
    /// Identifies one recipient's delivery of an email.
    DeliveryId
);
uuid_id!(
    /// Identifies a tenant's webhook endpoint.
    WebhookId
);
uuid_id!(
    /// Identifies one outbox row: an event for one endpoint (its `svix-id` is derived from it).
    WebhookEventId
);
uuid_id!(
    /// Identifies a tenant's sending domain.
    DomainId
);
uuid_id!(
    /// Identifies a tenant's template.
    TemplateId
);

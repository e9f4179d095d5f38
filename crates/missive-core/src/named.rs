//! Values the database stores by name: every status, kind and class a column holds.
//!
//! Each is an enum with one spelling per variant ([`Named::name`]); a `CHECK` constraint on its
//! column lists the same names (the store's tests compare them with [`stored_enums`]), and
//! nothing outside this crate compares or builds those names as strings. With the `sqlx`
//! feature (the store's), each also decodes from and encodes to a `text` column through the same
//! spelling, so a row holding another name fails to decode instead of passing for a value.

use std::fmt;

/// A name that is not one of the model's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a {what}; expected one of {expected}")]
pub struct UnknownName {
    what: &'static str,
    name: String,
    expected: String,
}

impl UnknownName {
    /// `name` is not a `what`, whose names are `expected`.
    #[must_use]
    pub fn new(
        what: &'static str,
        name: &str,
        expected: impl IntoIterator<Item = &'static str>,
    ) -> Self {
        Self {
            what,
            name: name.chars().take(64).collect(),
            expected: expected.into_iter().collect::<Vec<_>>().join(", "),
        }
    }
}

/// An enum stored by name.
pub trait Named: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// What a value is, for messages (`delivery status`).
    const WHAT: &'static str;

    /// Every value, in declaration order.
    fn all() -> &'static [Self];

    /// The value's one spelling.
    fn name(self) -> &'static str;

    /// The value spelled `name`, exactly.
    ///
    /// # Errors
    /// [`UnknownName`] listing the names there are.
    fn from_name(name: &str) -> Result<Self, UnknownName> {
        Self::all()
            .iter()
            .copied()
            .find(|v| v.name() == name)
            .ok_or_else(|| UnknownName::new(Self::WHAT, name, Self::all().iter().map(|v| v.name())))
    }
}

/// [`Named`] for an enum with an `ALL` array and an `as_str`, with `Display` and (with the `sqlx`
/// feature) the text column's encoding. `parse` also gives it `FromStr` and `TryFrom<String>` by
/// its exact names; enums whose parsing accepts more (aliases, another error type) leave it out.
macro_rules! named {
    ($name:ident, $what:literal) => {
        impl $crate::named::Named for $name {
            const WHAT: &'static str = $what;

            fn all() -> &'static [Self] {
                &Self::ALL
            }

            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "sqlx")]
        impl ::sqlx_core::types::Type<::sqlx_postgres::Postgres> for $name {
            fn type_info() -> ::sqlx_postgres::PgTypeInfo {
                <&str as ::sqlx_core::types::Type<::sqlx_postgres::Postgres>>::type_info()
            }

            fn compatible(ty: &::sqlx_postgres::PgTypeInfo) -> bool {
                <&str as ::sqlx_core::types::Type<::sqlx_postgres::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl ::sqlx_postgres::PgHasArrayType for $name {
            fn array_type_info() -> ::sqlx_postgres::PgTypeInfo {
                <&str as ::sqlx_postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &::sqlx_postgres::PgTypeInfo) -> bool {
                <&str as ::sqlx_postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r> ::sqlx_core::decode::Decode<'r, ::sqlx_postgres::Postgres> for $name {
            fn decode(
                value: ::sqlx_postgres::PgValueRef<'r>,
            ) -> Result<Self, ::sqlx_core::error::BoxDynError> {
                let name =
                    <&str as ::sqlx_core::decode::Decode<::sqlx_postgres::Postgres>>::decode(
                        value,
                    )?;
                Ok(<Self as $crate::named::Named>::from_name(name)?)
            }
        }

        #[cfg(feature = "sqlx")]
        impl ::sqlx_core::encode::Encode<'_, ::sqlx_postgres::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut ::sqlx_postgres::PgArgumentBuffer,
            ) -> Result<::sqlx_core::encode::IsNull, ::sqlx_core::error::BoxDynError> {
                <&str as ::sqlx_core::encode::Encode<::sqlx_postgres::Postgres>>::encode_by_ref(
                    &self.as_str(),
                    buf,
                )
            }
        }
    };
    ($name:ident, $what:literal, parse) => {
        $crate::named::named!($name, $what);

        impl ::std::str::FromStr for $name {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as $crate::named::Named>::from_name(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::named::UnknownName;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                <Self as $crate::named::Named>::from_name(&s)
            }
        }
    };
}
pub(crate) use named;

/// One stored enum: what it is and its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnum {
    pub what: &'static str,
    pub names: Vec<&'static str>,
}

fn stored<T: Named>() -> StoredEnum {
    StoredEnum {
        what: T::WHAT,
        names: T::all().iter().map(|v| v.name()).collect(),
    }
}

/// Every enum the database stores by name, for the tests that compare them with the schema's
/// `CHECK` lists and look for their names compared as strings outside this crate.
#[must_use]
pub fn stored_enums() -> Vec<StoredEnum> {
    use crate::event::{DeliveryStatus, EventKind, SuppressionOrigin, WebhookEventType};
    use crate::outcome::BounceClass;
    use crate::routing::{RelayTls, RouteKind};
    use crate::sending_domain::{
        Capability, DkimAlgorithm, DomainTls, InboundDmarc, Region, VerificationStatus,
    };
    use crate::submission::RecipientKind;
    use crate::tenant::TenantStatus;
    use crate::webhook::{WebhookEventStatus, WebhookStatus};
    use crate::worker::WorkerKind;
    vec![
        stored::<TenantStatus>(),
        stored::<RecipientKind>(),
        stored::<DeliveryStatus>(),
        stored::<EventKind>(),
        stored::<BounceClass>(),
        stored::<RouteKind>(),
        stored::<RelayTls>(),
        stored::<SuppressionOrigin>(),
        stored::<WebhookEventType>(),
        stored::<WebhookStatus>(),
        stored::<WebhookEventStatus>(),
        stored::<VerificationStatus>(),
        stored::<DomainTls>(),
        stored::<Capability>(),
        stored::<InboundDmarc>(),
        stored::<Region>(),
        stored::<DkimAlgorithm>(),
        stored::<WorkerKind>(),
    ]
}

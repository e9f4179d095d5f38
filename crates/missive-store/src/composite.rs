//! Rows bound by name: a statement that writes many rows of several columns takes them as one
//! array of a composite type (created by a migration) whose fields are named there and here, in
//! the same order, instead of one array per column bound by position.
//!
//! [`composite!`] declares the Rust side: a struct of borrowed fields and its binary encoding as
//! a Postgres record (each field's type OID, then its value), which Postgres checks field by
//! field against the composite type, so a field of the wrong type is refused by the server.

/// Declares a struct bound as the composite type `$pg` (and arrays of it).
macro_rules! composite {
    (
        $(#[$meta:meta])*
        $name:ident$(<$lt:lifetime>)? = $pg:literal {
            $( $(#[$field_meta:meta])* $field:ident: $ty:ty, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub(crate) struct $name$(<$lt>)? {
            $( $(#[$field_meta])* pub $field: $ty, )+
        }

        impl$(<$lt>)? sqlx::Type<sqlx::Postgres> for $name$(<$lt>)? {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                sqlx::postgres::PgTypeInfo::with_name($pg)
            }
        }

        impl$(<$lt>)? sqlx::postgres::PgHasArrayType for $name$(<$lt>)? {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                sqlx::postgres::PgTypeInfo::array_of($pg)
            }
        }

        impl$(<$lt>)? sqlx::Encode<'_, sqlx::Postgres> for $name$(<$lt>)? {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let mut record = sqlx::postgres::types::PgRecordEncoder::new(buf);
                $( record.encode(&self.$field)?; )+
                record.finish();
                Ok(sqlx::encode::IsNull::No)
            }
        }
    };
}
pub(crate) use composite;

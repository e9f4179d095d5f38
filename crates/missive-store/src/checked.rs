//! How the checked statements are assembled. A `sqlx::query!` takes its SQL as string literals
//! joined by `+` and cannot expand a macro inside it, so a statement that shares a piece with
//! others (a record's column list, a paging condition) is written by `macro_rules!` that hand
//! the pieces on as literals: a record's columns are a macro that calls the next one with them
//! ([`records!`], [`crate::cursor::fetch_page!`]).

/// `sqlx::query_as!` reading `$record`: `$head`, `$columns` (the record's, with their type
/// overrides), `$tail`, then the arguments.
macro_rules! records {
    ($record:path, $head:literal, $columns:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!($record, $head + $columns + $tail $(, $arg)*)
    };
}
pub(crate) use records;

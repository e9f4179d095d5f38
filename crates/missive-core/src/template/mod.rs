//! Tenant templates: what a template is (its name, alias, variables and sources), the checks a
//! source passes before it is saved ([`check`]), and the engine that renders it ([`engine`]).
//!
//! A template is code a tenant supplies and we run, so the engine is safe by construction rather
//! than by review of each template:
//! - handlebars in strict mode, with only the helpers listed in [`HELPERS`] (none reaches the
//!   filesystem, the environment or the logs) and no decorators or inline partials;
//! - partials and layouts are other templates, named by alias; the engine registers exactly the
//!   closure a template needs, refuses cycles, and caps its depth, so rendering can never recurse
//!   without bound (handlebars itself has no limit);
//! - every `{{#each}}` is charged against a fixed budget before it runs, and every rendered part
//!   against an output cap, so a template costs bounded time and memory whatever its variables;
//! - sources are capped in size and block nesting before the parser sees them.

pub mod check;
pub mod engine;
mod helpers;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::TemplateId;

pub use check::{Position, Uses, check_source};
pub use engine::{Compiled, Rendered, Unit};

/// Largest source of one part (subject, html or text), in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Largest rendered part, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Deepest nesting of blocks (`{{#if}}`, `{{#each}}`...) in one source.
pub const MAX_BLOCK_DEPTH: usize = 24;
/// Deepest chain of partials and layouts below a template.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most templates (the template, its layouts and partials) one render may involve.
pub const MAX_CLOSURE: usize = 64;
/// Most declared variables of one template.
pub const MAX_VARIABLES: usize = 50;
/// Largest set of variables given to one render, as JSON.
pub const MAX_VARIABLES_BYTES: usize = 64 * 1024;
/// Template elements one render may evaluate, counting each loop iteration's body again (and
/// [`ITERATION_COST`] for the iteration itself): tens of milliseconds of CPU at most.
pub const RENDER_BUDGET: u64 = 500_000;
/// What one loop iteration costs beyond its body's elements: setting up its block context is
/// worth several elements.
pub const ITERATION_COST: u64 = 16;
/// Longest template name, in characters.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 256;

/// The helpers a template may call: handlebars' built-ins but `log`, and a few formatters.
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "upper", "lower", "trim", "truncate", "default", "number", "join",
];

/// An alias: what sends, partials and layouts name a template by.
pub const ALIAS_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";
/// A variable key: a handlebars identifier.
pub const VARIABLE_KEY_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$";

/// Which part of a template a source or an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Subject,
    Html,
    Text,
}

impl Part {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Html => "html",
            Self::Text => "text",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a template could not be saved or rendered. Every message names what was wrong and, for a
/// source, where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A field of the definition does not hold up.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A source does not compile or uses what is not allowed.
    #[error("{at}: {message}")]
    Source { at: Position, message: String },
    /// A partial or layout that no template of the tenant (nor a shipped one) has as alias.
    #[error("{at}: unknown partial `{name}`: no published template has this alias")]
    UnknownPartial { at: Position, name: String },
    /// Partials or layouts that include each other; `chain` names them in order.
    #[error("templates include each other: {}", chain.join(" → "))]
    Cycle { chain: Vec<String> },
    #[error("partials and layouts nest deeper than {MAX_INCLUDE_DEPTH}: {}", chain.join(" → "))]
    TooDeep { chain: Vec<String> },
    #[error("the template and its partials and layouts are more than {MAX_CLOSURE} templates")]
    TooManyTemplates,
    /// A variable the template uses was neither given nor declared with a fallback.
    #[error(
        "variable `{name}` is used ({at}) but neither given nor declared with a fallback_value"
    )]
    MissingVariable { name: String, at: Position },
    #[error("variables.{key}: must be a {expected}, as the template declares it")]
    WrongType { key: String, expected: VariableType },
    #[error("{0}")]
    Render(String),
    #[error("the rendered {part} is over the limit of {max} bytes", max = MAX_OUTPUT_BYTES)]
    OutputTooLarge { part: Part },
    #[error(
        "rendering would evaluate more than {RENDER_BUDGET} template elements (loops over large \
         variables?)"
    )]
    TooCostly,
    #[error("the rendered subject contains a line break")]
    SubjectLineBreak,
}

impl TemplateError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How a template is named in a send or a path: its id, or its alias.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TemplateRef {
    Id(TemplateId),
    Alias(String),
}

impl TemplateRef {
    /// An id when `raw` is a UUID, an alias otherwise.
    ///
    /// # Errors
    /// Neither a UUID nor a valid alias.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(Self::Id(TemplateId::from(id)));
        }
        parse_alias("template", raw).map(Self::Alias)
    }
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Alias(alias) => f.write_str(alias),
        }
    }
}

/// An alias ([`ALIAS_PATTERN`]).
///
/// # Errors
/// [`TemplateError::Invalid`] naming `field`.
pub fn parse_alias(field: &str, raw: &str) -> Result<String, TemplateError> {
    let valid = raw.len() <= 64
        && raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(TemplateError::invalid(
            field,
            format!(
                "`{}` is not an alias: 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit",
                raw.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// The declared type of a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    String,
    Number,
}

impl std::fmt::Display for VariableType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::String => "string",
            Self::Number => "number",
        })
    }
}

impl VariableType {
    fn admits(self, value: &serde_json::Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
        }
    }
}

/// A declared variable, in Resend's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// A handlebars identifier, not the name of a helper.
    #[schema(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    pub key: String,
    #[serde(rename = "type")]
    pub kind: VariableType,
    /// Used when a send gives no value; of the declared type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fallback_value: Option<serde_json::Value>,
}

/// Checks declared variables: valid, unique keys, and fallbacks of the declared type.
///
/// # Errors
/// [`TemplateError::Invalid`] naming the variable.
pub fn check_variables(variables: &[Variable]) -> Result<(), TemplateError> {
    if variables.len() > MAX_VARIABLES {
        return Err(TemplateError::invalid(
            "variables",
            format!("at most {MAX_VARIABLES}"),
        ));
    }
    for (i, variable) in variables.iter().enumerate() {
        let field = format!("variables[{i}]");
        let key = variable.key.as_str();
        let identifier = key.len() <= 64
            && key
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !identifier {
            return Err(TemplateError::invalid(
                format!("{field}.key"),
                "1 to 64 of A-Z a-z 0-9 _, not starting with a digit",
            ));
        }
        if HELPERS.contains(&key) || key == "this" || key == "else" {
            return Err(TemplateError::invalid(
                format!("{field}.key"),
                format!("`{key}` is the name of a helper"),
            ));
        }
        if variables[..i].iter().any(|v| v.key == variable.key) {
            return Err(TemplateError::invalid(
                format!("{field}.key"),
                format!("`{key}` is declared twice"),
            ));
        }
        if let Some(fallback) = &variable.fallback_value
            && !fallback.is_null()
            && !variable.kind.admits(fallback)
        {
            return Err(TemplateError::invalid(
                format!("{field}.fallback_value"),
                format!("must be a {}", variable.kind),
            ));
        }
    }
    Ok(())
}

/// A template name: 1 to 256 characters without control characters, trimmed.
///
/// # Errors
/// [`TemplateError::Invalid`] naming `name`.
pub fn parse_template_name(raw: &str) -> Result<String, TemplateError> {
    crate::tenant::parse_label(raw, MAX_TEMPLATE_NAME_CHARS).ok_or_else(|| {
        TemplateError::invalid(
            "name",
            format!("1 to {MAX_TEMPLATE_NAME_CHARS} characters, no control characters"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_ids_or_aliases() {
        let id = TemplateId::new();
        assert_eq!(
            TemplateRef::parse(&id.to_string()).unwrap(),
            TemplateRef::Id(id)
        );
        assert_eq!(
            TemplateRef::parse("welcome-email").unwrap(),
            TemplateRef::Alias("welcome-email".into())
        );
        for bad in ["", "-x", "a b", "a.b", &"x".repeat(65), "é"] {
            assert!(TemplateRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_alias_pattern_states_the_alias_rule() {
        let pattern = regex::Regex::new(ALIAS_PATTERN).unwrap();
        for raw in [
            "a",
            "A-1_b",
            "-a",
            "",
            "a b",
            "ab.c",
            &"y".repeat(64),
            &"y".repeat(65),
        ] {
            assert_eq!(
                pattern.is_match(raw),
                parse_alias("alias", raw).is_ok(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn variables_have_unique_identifier_keys_and_fallbacks_of_their_type() {
        let var = |key: &str, kind, fallback: Option<serde_json::Value>| Variable {
            key: key.into(),
            kind,
            fallback_value: fallback,
        };
        assert!(
            check_variables(&[
                var("NAME", VariableType::String, Some(json!("there"))),
                var("COUNT", VariableType::Number, Some(json!(3))),
                var("_x1", VariableType::String, None),
            ])
            .is_ok()
        );
        let err = |vars: &[Variable]| check_variables(vars).unwrap_err().to_string();
        assert!(err(&[var("1x", VariableType::String, None)]).contains("variables[0].key"));
        assert!(err(&[var("each", VariableType::String, None)]).contains("helper"));
        assert!(
            err(&[
                var("A", VariableType::String, None),
                var("A", VariableType::Number, None)
            ])
            .contains("twice")
        );
        assert!(
            err(&[var("N", VariableType::Number, Some(json!("3")))])
                .contains("fallback_value: must be a number")
        );
    }
}

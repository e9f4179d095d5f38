//! The checks a template source passes before it is saved or compiled: its size, its block
//! nesting (counted before the parser runs, whose time grows faster than the depth), that it
//! compiles, and that it calls only allowed helpers and includes partials by a static alias. What
//! it includes is returned, so the caller can check that each partial exists and that none
//! includes the template back.

use std::collections::BTreeMap;

use handlebars::template::{Parameter, Template, TemplateElement, TemplateMapping};

use super::{HELPERS, MAX_BLOCK_DEPTH, MAX_SOURCE_BYTES, Part, TemplateError, parse_alias};

/// Where in which template something is: the template itself (`template: None`), or the partial
/// or layout with that alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub template: Option<String>,
    pub part: Part,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(template) = &self.template {
            write!(f, "template `{template}` ")?;
        }
        write!(
            f,
            "{}, line {}, column {}",
            self.part, self.line, self.column
        )
    }
}

/// What a source includes: each partial's alias and where it is first named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    pub partials: BTreeMap<String, Position>,
}

impl Uses {
    /// Adds another part's uses, keeping the first position of each name.
    pub fn merge(&mut self, other: Self) {
        for (name, at) in other.partials {
            self.partials.entry(name).or_insert(at);
        }
    }
}

/// Checks and compiles one source.
///
/// # Errors
/// [`TemplateError::Invalid`] for size, [`TemplateError::Source`] with line and column for
/// anything else.
pub fn check_source(part: Part, source: &str) -> Result<(Template, Uses), TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::invalid(
            part.as_str(),
            format!("longer than {MAX_SOURCE_BYTES} bytes"),
        ));
    }
    if source.contains('\0') {
        return Err(TemplateError::invalid(
            part.as_str(),
            "must not contain NUL characters",
        ));
    }
    if let Some((line, column)) = too_deep(source) {
        return Err(TemplateError::Source {
            at: Position {
                template: None,
                part,
                line,
                column,
            },
            message: format!("blocks nest deeper than {MAX_BLOCK_DEPTH}"),
        });
    }
    let template = Template::compile(source).map_err(|e| {
        let (line, column) = e.pos().unwrap_or((1, 1));
        TemplateError::Source {
            at: Position {
                template: None,
                part,
                line,
                column,
            },
            message: e.reason().to_string(),
        }
    })?;
    let mut uses = Uses::default();
    walk(&template, part, &mut uses)?;
    Ok((template, uses))
}

/// Where block nesting first exceeds the cap, if it does. Counts `{{#`, `{{^` and `{{{{` (raw
/// blocks) as openings and `{{/` as closings; an approximation that never undercounts what the
/// parser would nest.
fn too_deep(source: &str) -> Option<(usize, usize)> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let (mut line, mut line_start) = (1, 0);
    let mut i = 0;
    while i + 2 < bytes.len() {
        if bytes[i] == b'\n' {
            line += 1;
            line_start = i + 1;
        }
        if bytes[i] == b'{' && bytes[i + 1] == b'{' {
            let mut j = i + 2;
            if bytes.get(j) == Some(&b'~') {
                j += 1;
            }
            match bytes.get(j) {
                Some(b'#' | b'^') if !matches!(bytes.get(j + 1), Some(b'}' | b'~')) => {
                    depth += 1;
                }
                Some(b'{')
                    if bytes.get(j + 1) == Some(&b'{') && bytes.get(j + 2) != Some(&b'/') =>
                {
                    depth += 1;
                }
                Some(b'/') => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_BLOCK_DEPTH {
                return Some((line, source[line_start..i].chars().count() + 1));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    None
}

fn position(part: Part, mapping: Option<&TemplateMapping>) -> Position {
    let (line, column) = mapping.map_or((1, 1), |m| (m.0, m.1));
    Position {
        template: None,
        part,
        line,
        column,
    }
}

fn walk(template: &Template, part: Part, uses: &mut Uses) -> Result<(), TemplateError> {
    for (index, element) in template.elements.iter().enumerate() {
        let at = || position(part, template.mapping.get(index));
        let refuse = |message: String| TemplateError::Source { at: at(), message };
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(helper)
            | TemplateElement::HtmlExpression(helper)
            | TemplateElement::HelperBlock(helper) => {
                let called = helper.block || !helper.params.is_empty() || !helper.hash.is_empty();
                if called && let Parameter::Name(name) = &helper.name {
                    check_helper(name).map_err(refuse)?;
                }
                for param in helper.params.iter().chain(helper.hash.values()) {
                    check_parameter(param).map_err(refuse)?;
                }
                for inner in [&helper.template, &helper.inverse].into_iter().flatten() {
                    walk(inner, part, uses)?;
                }
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(refuse(
                    "decorators and inline partials are not supported; save the partial as a \
                     template with an alias"
                        .to_owned(),
                ));
            }
            TemplateElement::PartialBlock(_) => {
                return Err(refuse(
                    "partial blocks (`{{#> name}}`) are not supported; name a layout instead"
                        .to_owned(),
                ));
            }
            TemplateElement::PartialExpression(partial) => {
                let Parameter::Name(name) = &partial.name else {
                    return Err(refuse(
                        "a partial is named by a fixed alias, not computed".to_owned(),
                    ));
                };
                if name.starts_with('@') {
                    return Err(refuse(format!(
                        "`{name}` is not supported; name a layout instead"
                    )));
                }
                parse_alias("partial", name).map_err(|e| refuse(e.to_string()))?;
                for param in partial.params.iter().chain(partial.hash.values()) {
                    check_parameter(param).map_err(refuse)?;
                }
                uses.partials.entry(name.clone()).or_insert_with(at);
            }
            // A kind of element a later handlebars adds is refused until we know it is safe.
            _ => return Err(refuse("unsupported template element".to_owned())),
        }
    }
    Ok(())
}

fn check_helper(name: &str) -> Result<(), String> {
    if HELPERS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown helper `{name}`; the helpers are {}",
            HELPERS.join(", ")
        ))
    }
}

/// Subexpressions call helpers too.
fn check_parameter(param: &Parameter) -> Result<(), String> {
    if let Parameter::Subexpression(sub) = param
        && let TemplateElement::Expression(helper) = sub.element.as_ref()
    {
        if let Parameter::Name(name) = &helper.name {
            check_helper(name)?;
        }
        for inner in helper.params.iter().chain(helper.hash.values()) {
            check_parameter(inner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(source: &str) -> String {
        check_source(Part::Html, source).unwrap_err().to_string()
    }

    #[test]
    fn partials_are_collected_with_their_first_position() {
        let (_, uses) = check_source(
            Part::Html,
            "<p>{{> header}}</p>\n{{#if x}}\n  {{> footer-v2 title=\"x\"}}{{> header}}{{/if}}",
        )
        .unwrap();
        let names: Vec<_> = uses.partials.keys().cloned().collect();
        assert_eq!(names, ["footer-v2", "header"]);
        assert_eq!(uses.partials["footer-v2"].line, 3);
        assert_eq!(
            uses.partials["header"].to_string(),
            "html, line 1, column 4"
        );
    }

    #[test]
    fn what_is_not_allowed_is_refused_with_its_position() {
        assert_eq!(
            refused("ok\n {{#*inline \"x\"}}y{{/inline}}"),
            "html, line 2, column 2: decorators and inline partials are not supported; save the \
             partial as a template with an alias"
        );
        assert!(refused("{{#> layout}}x{{/layout}}").contains("partial blocks"));
        assert!(refused("{{> @partial-block}}").contains("not supported"));
        assert!(
            refused("{{log \"x\"}}").starts_with("html, line 1, column 1: unknown helper `log`")
        );
        assert!(refused("{{upper (env \"HOME\")}}").contains("unknown helper `env`"));
        assert!(refused("{{#unknown x}}{{/unknown}}").contains("unknown helper"));
        assert!(refused("a\nb {{#if}").starts_with("html, line 2,"));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let ok = "{{#if a}}".repeat(MAX_BLOCK_DEPTH) + &"{{/if}}".repeat(MAX_BLOCK_DEPTH);
        assert!(check_source(Part::Text, &ok).is_ok());
        let deep = "{{#if a}}".repeat(10_000) + &"{{/if}}".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(refused(&deep).contains("nest deeper"));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        // Sequential blocks are not nesting.
        let wide = "{{#if a}}x{{/if}}".repeat(1_000);
        assert!(check_source(Part::Html, &wide).is_ok());
    }

    #[test]
    fn sizes_and_nul_are_refused() {
        assert!(refused(&"x".repeat(MAX_SOURCE_BYTES + 1)).contains("longer than"));
        assert!(refused("a\0b").contains("NUL"));
    }
}

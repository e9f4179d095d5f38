//! The templates shipped in the workspace's `templates/` folder, compiled into the binary and
//! available to every tenant by alias (a tenant's own template with the same alias wins).

use std::collections::HashMap;
use std::sync::LazyLock;

use missive_core::TemplateId;
use missive_core::template::{Part, TemplateRef, Unit, Variable, check_source};
use serde::Deserialize;
use time::OffsetDateTime;

/// Each shipped template's parts, by alias; `shipped.json` holds the rest.
const PARTS: &[(&str, &str, &str)] = &[
    (
        "layout",
        include_str!("../../../../../templates/layout.html"),
        include_str!("../../../../../templates/layout.txt"),
    ),
    (
        "welcome",
        include_str!("../../../../../templates/welcome.html"),
        include_str!("../../../../../templates/welcome.txt"),
    ),
    (
        "password-reset",
        include_str!("../../../../../templates/password-reset.html"),
        include_str!("../../../../../templates/password-reset.txt"),
    ),
    (
        "magic-link",
        include_str!("../../../../../templates/magic-link.html"),
        include_str!("../../../../../templates/magic-link.txt"),
    ),
    (
        "receipt",
        include_str!("../../../../../templates/receipt.html"),
        include_str!("../../../../../templates/receipt.txt"),
    ),
];

const MANIFEST: &str = include_str!("../../../../../templates/shipped.json");

/// When the shipped set was first published, for their views.
pub const SHIPPED_AT: OffsetDateTime = time::macros::datetime!(2026-11-29 00:00 UTC);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: TemplateId,
    alias: String,
    name: String,
    subject: Option<String>,
    layout: Option<String>,
    #[serde(default)]
    variables: Vec<Variable>,
}

/// A shipped template.
#[derive(Clone, Debug)]
pub struct Shipped {
    pub id: TemplateId,
    pub alias: String,
    pub name: String,
    pub unit: Unit,
    /// The aliases it includes and its layout's.
    pub uses: Vec<String>,
}

/// All of them, by alias.
static SHIPPED: LazyLock<HashMap<String, Shipped>> = LazyLock::new(|| {
    // The manifest and the files are ours, checked by the tests below: a failure is a build bug.
    let entries: Vec<Entry> = serde_json::from_str(MANIFEST).expect("templates/shipped.json");
    entries
        .into_iter()
        .map(|entry| {
            let (_, html, text) = PARTS
                .iter()
                .find(|(alias, _, _)| *alias == entry.alias)
                .expect("every shipped template has its parts");
            let unit = Unit {
                subject: entry.subject,
                html: (*html).to_owned(),
                text: Some((*text).to_owned()),
                variables: entry.variables,
                layout: entry.layout,
            };
            let uses = uses_of(&unit).expect("shipped templates compile");
            let shipped = Shipped {
                id: entry.id,
                alias: entry.alias.clone(),
                name: entry.name,
                unit,
                uses,
            };
            (entry.alias, shipped)
        })
        .collect()
});

/// The aliases a unit includes (its partials, then its layout).
///
/// # Errors
/// A part that does not compile.
pub fn uses_of(unit: &Unit) -> Result<Vec<String>, missive_core::template::TemplateError> {
    let mut uses: Vec<String> = Vec::new();
    let parts = [
        (Part::Subject, unit.subject.as_deref()),
        (Part::Html, Some(unit.html.as_str())),
        (Part::Text, unit.text.as_deref()),
    ];
    for (part, source) in parts {
        if let Some(source) = source {
            let (_, found) = check_source(part, source)?;
            uses.extend(found.partials.into_keys());
        }
    }
    uses.extend(unit.layout.iter().cloned());
    uses.sort();
    uses.dedup();
    Ok(uses)
}

/// The shipped template a reference names, if any.
#[must_use]
pub fn find(reference: &TemplateRef) -> Option<&'static Shipped> {
    match reference {
        TemplateRef::Alias(alias) => SHIPPED.get(alias),
        TemplateRef::Id(id) => SHIPPED.values().find(|s| s.id == *id),
    }
}

/// The shipped template with this alias.
#[must_use]
pub fn by_alias(alias: &str) -> Option<&'static Shipped> {
    SHIPPED.get(alias)
}

/// Every shipped template, by alias.
pub fn all() -> impl Iterator<Item = &'static Shipped> {
    SHIPPED.values()
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::template::Compiled;
    use serde_json::json;

    #[test]
    fn every_shipped_template_is_listed_and_renders() {
        assert_eq!(SHIPPED.len(), PARTS.len());
        let available: HashMap<String, Unit> =
            all().map(|s| (s.alias.clone(), s.unit.clone())).collect();
        let variables = json!({
            "NAME": "Ann <ann@x.test>", "ACTION_URL": "https://x.test/start",
            "RESET_URL": "https://x.test/reset?t=1&u=2", "LOGIN_URL": "https://x.test/login",
            "RECEIPT_NUMBER": "R-1", "DATE": "29 Nov 2026", "TOTAL": 1234.5,
            "ITEMS": [{"description": "Tea", "quantity": 2, "amount": 1000}, {"description": "Cake", "amount": 234.5}],
            "PRODUCT_NAME": "Acme",
        });
        let variables = variables.as_object().unwrap();
        for shipped in all() {
            let compiled = Compiled::build(&shipped.unit, &available)
                .unwrap_or_else(|e| panic!("{}: {e}", shipped.alias));
            let rendered = compiled
                .render(variables, true)
                .unwrap_or_else(|e| panic!("{}: {e}", shipped.alias));
            assert!(rendered.html.contains("<html"), "{}", shipped.alias);
            assert!(rendered.text.is_some());
            if shipped.alias != "layout" {
                assert!(rendered.subject.is_some_and(|s| !s.is_empty()));
                assert!(rendered.html.contains("Acme"), "{}", shipped.alias);
            }
        }
        let receipt = Compiled::build(&SHIPPED["receipt"].unit, &available)
            .unwrap()
            .render(variables, true)
            .unwrap();
        assert!(receipt.html.contains("1,234.50 USD"), "{}", receipt.html);
        assert!(receipt.text.unwrap().contains("- Tea x 2: 1,000.00 USD"));
        let welcome = Compiled::build(&SHIPPED["welcome"].unit, &available)
            .unwrap()
            .render(variables, true)
            .unwrap();
        assert!(welcome.html.contains("Welcome, Ann &lt;ann@x.test&gt;!"));
        assert_eq!(
            welcome.subject.as_deref(),
            Some("Welcome to Acme, Ann <ann@x.test>")
        );
    }

    #[test]
    fn shipped_ids_and_aliases_are_found() {
        let welcome = find(&TemplateRef::Alias("welcome".into())).unwrap();
        assert_eq!(find(&TemplateRef::Id(welcome.id)).unwrap().alias, "welcome");
        assert_eq!(welcome.uses, ["layout"]);
        assert!(find(&TemplateRef::Alias("nope".into())).is_none());
    }
}

//! Changes to a tenant's templates: create, update, publish, duplicate, delete.
//!
//! Every save compiles the sources (so a syntax error, an unknown helper or a computed partial is
//! refused with its line and column), then, under the tenant's template lock, checks what they
//! include: every partial and the layout must be an alias of one of the tenant's templates or a
//! shipped one, and following includes from the template must never lead back to it. A template
//! another one includes cannot be deleted or lose its alias (unless a shipped template of that
//! alias takes its place). Publishing also builds the draft with the published templates it
//! includes, exactly as a send will.

use std::collections::{BTreeMap, HashMap};

use missive_core::TemplateId;
use missive_core::template::{
    Part, Position, TemplateError, TemplateRef, Variable, check_source, check_variables,
    parse_alias, parse_template_name,
};
use missive_core::{Mailbox, ProjectRef};
use missive_store::{StoreError, TemplateContent, TemplateEdit, TemplateNode, TemplateRecord};

use super::{LookupError, Templates, shipped};

/// What a template edit can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Invalid(#[from] TemplateError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EditError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(message) => Self::Conflict(message.to_owned()),
            other => Self::Store(other),
        }
    }
}

impl From<LookupError> for EditError {
    fn from(err: LookupError) -> Self {
        match err {
            LookupError::NotFound(_) => Self::NotFound,
            LookupError::Draft { name } => Self::Conflict(format!("template `{name}` is a draft")),
            LookupError::Template(e) => Self::Invalid(e),
            LookupError::Store(e) => e.into(),
        }
    }
}

/// Fields of a create or an update, as a client sent them. In an update, `None` leaves a field
/// alone and `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct Fields {
    pub name: Option<String>,
    pub alias: Option<Option<String>>,
    pub from: Option<Option<String>>,
    pub subject: Option<Option<String>>,
    pub reply_to: Option<Vec<String>>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub variables: Option<Vec<Variable>>,
    pub layout: Option<Option<String>>,
}

/// A definition that held up, with where each include is named.
#[derive(Debug)]
struct Checked {
    name: String,
    alias: Option<String>,
    content: TemplateContent,
    includes: BTreeMap<String, Option<Position>>,
}

fn invalid(field: &str, message: impl Into<String>) -> EditError {
    EditError::Invalid(TemplateError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    })
}

/// Validates a whole definition.
fn check(name: &str, alias: Option<&str>, content: TemplateContent) -> Result<Checked, EditError> {
    let name = parse_template_name(name)?;
    let alias = alias.map(|a| parse_alias("alias", a)).transpose()?;
    if let Some(from) = &content.from_address {
        Mailbox::parse(from).map_err(|e| invalid("from", e.to_string()))?;
    }
    for reply_to in &content.reply_to {
        Mailbox::parse(reply_to).map_err(|e| invalid("reply_to", e.to_string()))?;
    }
    if content.reply_to.len() > missive_core::submission::MAX_RECIPIENTS_PER_FIELD {
        return Err(invalid("reply_to", "at most 50 addresses"));
    }
    if content.html.trim().is_empty() {
        return Err(invalid("html", "required"));
    }
    if content
        .subject
        .as_deref()
        .is_some_and(|s| s.contains(['\r', '\n']))
    {
        return Err(invalid("subject", "must not contain line breaks"));
    }
    let variables: Vec<Variable> = serde_json::from_value(content.variables.clone())
        .map_err(|e| invalid("variables", e.to_string()))?;
    check_variables(&variables)?;
    let mut includes: BTreeMap<String, Option<Position>> = BTreeMap::new();
    let parts = [
        (Part::Subject, content.subject.as_deref()),
        (Part::Html, Some(content.html.as_str())),
        (Part::Text, content.text.as_deref()),
    ];
    for (part, source) in parts {
        if let Some(source) = source {
            let (_, uses) = check_source(part, source)?;
            for (alias, at) in uses.partials {
                includes.entry(alias).or_insert(Some(at));
            }
        }
    }
    if let Some(layout) = &content.layout {
        parse_alias("layout", layout)?;
        includes.entry(layout.clone()).or_insert(None);
    }
    let content = TemplateContent {
        uses: includes.keys().cloned().collect(),
        ..content
    };
    Ok(Checked {
        name,
        alias,
        content,
        includes,
    })
}

/// Checks what a template includes against the tenant's other templates (`nodes`, the edited
/// one excluded) and the shipped ones: each include exists, and none leads back to `alias`.
fn check_includes(
    nodes: &[TemplateNode],
    editing: Option<TemplateId>,
    alias: Option<&str>,
    includes: &BTreeMap<String, Option<Position>>,
) -> Result<(), TemplateError> {
    let mut edges: HashMap<&str, &[String]> = shipped::all()
        .map(|s| (s.alias.as_str(), s.uses.as_slice()))
        .collect();
    for node in nodes.iter().filter(|n| Some(n.id) != editing) {
        if let Some(a) = &node.alias {
            edges.insert(a.as_str(), node.uses.as_slice());
        }
    }
    for (name, at) in includes {
        if Some(name.as_str()) != alias && !edges.contains_key(name.as_str()) {
            return Err(match at {
                Some(at) => TemplateError::UnknownPartial {
                    at: at.clone(),
                    name: name.clone(),
                },
                None => TemplateError::Invalid {
                    field: "layout".to_owned(),
                    message: format!("unknown layout `{name}`: no template has this alias"),
                },
            });
        }
    }
    let Some(alias) = alias else {
        // Nothing can include a template without an alias, so it closes no cycle.
        return Ok(());
    };
    // Depth-first from each include, looking for the way back.
    let mut path: Vec<&str> = vec![alias];
    let mut stack: Vec<std::slice::Iter<'_, String>> = Vec::new();
    let own: Vec<String> = includes.keys().cloned().collect();
    let mut visited: Vec<&str> = Vec::new();
    stack.push(own.iter());
    while let Some(iter) = stack.last_mut() {
        let Some(next) = iter.next() else {
            stack.pop();
            path.pop();
            continue;
        };
        if next == alias {
            let mut chain: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
            chain.push(alias.to_owned());
            return Err(TemplateError::Cycle { chain });
        }
        if visited.contains(&next.as_str()) {
            continue;
        }
        visited.push(next.as_str());
        if let Some(children) = edges.get(next.as_str()) {
            path.push(next.as_str());
            stack.push(children.iter());
        }
    }
    Ok(())
}

/// Names of templates other than `except` that include `alias`.
fn included_by(nodes: &[TemplateNode], except: TemplateId, alias: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.id != except && n.uses.iter().any(|u| u == alias))
        .map(|n| format!("`{}`", n.name))
        .collect()
}

/// Refuses to take away an alias others include, unless a shipped template of that alias takes
/// its place.
fn check_not_included(
    nodes: &[TemplateNode],
    record: &TemplateRecord,
    new_alias: Option<&str>,
) -> Result<(), EditError> {
    let Some(old) = record.alias.as_deref() else {
        return Ok(());
    };
    if new_alias == Some(old) || shipped::by_alias(old).is_some() {
        return Ok(());
    }
    let users = included_by(nodes, record.id, old);
    if users.is_empty() {
        Ok(())
    } else {
        Err(EditError::Conflict(format!(
            "template `{old}` is included by {} as a partial or layout",
            users.join(", ")
        )))
    }
}

fn read_only() -> EditError {
    EditError::Conflict(
        "shipped templates cannot be changed; duplicate one to get an editable copy".to_owned(),
    )
}

/// The tenant's own template the reference names; a shipped one answers `shipped()` instead, as
/// shipped templates cannot be edited.
async fn own(
    edit: &mut TemplateEdit,
    reference: &TemplateRef,
    shipped: fn() -> EditError,
) -> Result<TemplateRecord, EditError> {
    match edit.get(reference).await {
        Err(StoreError::NotFound) if shipped::find(reference).is_some() => Err(shipped()),
        other => Ok(other?),
    }
}

/// Commits an edit, then empties this process's cache for the tenant at once (the others hear
/// the NOTIFY the commit sends).
async fn finish(
    edit: TemplateEdit,
    templates: &Templates,
    project: ProjectRef,
) -> Result<(), EditError> {
    let tenant_id = project.tenant_id;
    edit.commit().await?;
    templates.forget(tenant_id);
    Ok(())
}

fn variables_json(variables: &[Variable]) -> serde_json::Value {
    serde_json::to_value(variables).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

/// Creates a template (a draft).
///
/// # Errors
/// A field that does not hold up, an unknown include or a cycle (422), a name or alias in use
/// (409).
pub async fn create(
    templates: &Templates,
    project: ProjectRef,
    fields: Fields,
) -> Result<TemplateRecord, EditError> {
    let name = fields.name.ok_or_else(|| invalid("name", "required"))?;
    let html = fields.html.ok_or_else(|| invalid("html", "required"))?;
    let alias = fields.alias.flatten();
    let content = TemplateContent {
        from_address: fields.from.flatten(),
        subject: fields.subject.flatten(),
        reply_to: fields.reply_to.unwrap_or_default(),
        html,
        text: fields.text.flatten().filter(|t| !t.is_empty()),
        variables: variables_json(&fields.variables.unwrap_or_default()),
        layout: fields.layout.flatten(),
        uses: Vec::new(),
    };
    let checked = check(&name, alias.as_deref(), content)?;
    let mut edit = templates.store().edit_templates(project).await?;
    let nodes = edit.graph().await?;
    check_includes(&nodes, None, checked.alias.as_deref(), &checked.includes)?;
    let record = edit
        .insert(
            TemplateId::new(),
            &checked.name,
            checked.alias.as_deref(),
            &checked.content,
        )
        .await?;
    finish(edit, templates, project).await?;
    tracing::info!(tenant_id = %project.tenant_id, project_id = %project.project_id, template_id = %record.id, "template created");
    Ok(record)
}

/// Changes a template's draft (and name or alias).
///
/// # Errors
/// As [`create`]; 404 for a template the tenant does not have; 409 for a shipped one or an alias
/// others include.
pub async fn update(
    templates: &Templates,
    project: ProjectRef,
    reference: &TemplateRef,
    fields: Fields,
) -> Result<TemplateRecord, EditError> {
    let mut edit = templates.store().edit_templates(project).await?;
    let current = own(&mut edit, reference, read_only).await?;
    let draft = current.draft.clone();
    let name = fields.name.unwrap_or_else(|| current.name.clone());
    let alias = fields.alias.unwrap_or_else(|| current.alias.clone());
    let content = TemplateContent {
        from_address: fields.from.unwrap_or(draft.from_address),
        subject: fields.subject.unwrap_or(draft.subject),
        reply_to: fields.reply_to.unwrap_or(draft.reply_to),
        html: fields.html.unwrap_or(draft.html),
        text: fields.text.unwrap_or(draft.text).filter(|t| !t.is_empty()),
        variables: fields
            .variables
            .map_or(draft.variables, |v| variables_json(&v)),
        layout: fields.layout.unwrap_or(draft.layout),
        uses: Vec::new(),
    };
    let checked = check(&name, alias.as_deref(), content)?;
    let nodes = edit.graph().await?;
    check_not_included(&nodes, &current, checked.alias.as_deref())?;
    check_includes(
        &nodes,
        Some(current.id),
        checked.alias.as_deref(),
        &checked.includes,
    )?;
    let record = edit
        .update(
            current.id,
            &checked.name,
            checked.alias.as_deref(),
            &checked.content,
        )
        .await?;
    finish(edit, templates, project).await?;
    tracing::info!(tenant_id = %project.tenant_id, project_id = %project.project_id, template_id = %record.id, "template updated");
    Ok(record)
}

/// Publishes the draft as the next version, after building it as a send will.
///
/// # Errors
/// 422 when the draft does not build with the published templates it includes; 404; 409 for a
/// shipped template.
pub async fn publish(
    templates: &Templates,
    project: ProjectRef,
    reference: &TemplateRef,
) -> Result<TemplateRecord, EditError> {
    let mut edit = templates.store().edit_templates(project).await?;
    let current = own(&mut edit, reference, || {
        EditError::Conflict("shipped templates are always published".to_owned())
    })
    .await?;
    templates.compile_draft(project, &current.draft).await?;
    let record = edit.publish(current.id).await?;
    finish(edit, templates, project).await?;
    tracing::info!(
        tenant_id = %project.tenant_id,
        template_id = %record.id,
        version = record.published_version,
        "template published"
    );
    Ok(record)
}

/// Copies a template's draft (or a shipped template) into a new draft without an alias.
///
/// # Errors
/// 404.
pub async fn duplicate(
    templates: &Templates,
    project: ProjectRef,
    reference: &TemplateRef,
) -> Result<TemplateRecord, EditError> {
    let mut edit = templates.store().edit_templates(project).await?;
    let (name, content) = match edit.get(reference).await {
        Ok(record) => (record.name, record.draft),
        Err(StoreError::NotFound) => {
            let shipped = shipped::find(reference).ok_or(EditError::NotFound)?;
            let unit = &shipped.unit;
            let content = TemplateContent {
                from_address: None,
                subject: unit.subject.clone(),
                reply_to: Vec::new(),
                html: unit.html.clone(),
                text: unit.text.clone(),
                variables: variables_json(&unit.variables),
                layout: unit.layout.clone(),
                uses: shipped.uses.clone(),
            };
            (shipped.name.clone(), content)
        }
        Err(other) => return Err(other.into()),
    };
    let nodes = edit.graph().await?;
    let taken = |candidate: &str| {
        nodes
            .iter()
            .any(|n| n.name.to_lowercase() == candidate.to_lowercase())
    };
    let base: String = name.chars().take(240).collect();
    let mut copy = format!("{base} (copy)");
    let mut n = 2;
    while taken(&copy) {
        copy = format!("{base} (copy {n})");
        n += 1;
    }
    let record = edit
        .insert(TemplateId::new(), &copy, None, &content)
        .await?;
    finish(edit, templates, project).await?;
    tracing::info!(tenant_id = %project.tenant_id, project_id = %project.project_id, template_id = %record.id, "template duplicated");
    Ok(record)
}

/// Deletes a template and its versions; mail already queued keeps what it rendered.
///
/// # Errors
/// 404; 409 for a shipped template or one that others include.
pub async fn delete(
    templates: &Templates,
    project: ProjectRef,
    reference: &TemplateRef,
) -> Result<TemplateId, EditError> {
    let mut edit = templates.store().edit_templates(project).await?;
    let current = own(&mut edit, reference, read_only).await?;
    let nodes = edit.graph().await?;
    check_not_included(&nodes, &current, None)?;
    edit.delete(current.id).await?;
    finish(edit, templates, project).await?;
    tracing::info!(tenant_id = %project.tenant_id, project_id = %project.project_id, template_id = %current.id, "template deleted");
    Ok(current.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, alias: Option<&str>, uses: &[&str]) -> TemplateNode {
        TemplateNode {
            id: TemplateId::new(),
            name: name.to_owned(),
            alias: alias.map(ToOwned::to_owned),
            uses: uses.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn includes(names: &[&str]) -> BTreeMap<String, Option<Position>> {
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    Some(Position {
                        template: None,
                        part: Part::Html,
                        line: 1,
                        column: 1,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn includes_must_exist_and_never_lead_back() {
        let nodes = [
            node("A", Some("a"), &["b"]),
            node("B", Some("b"), &["layout"]),
            node("C", Some("c"), &["x"]),
        ];
        // Shipped aliases count.
        assert!(check_includes(&nodes, None, Some("new"), &includes(&["a", "welcome"])).is_ok());
        let unknown = check_includes(&nodes, None, None, &includes(&["nope"])).unwrap_err();
        assert!(unknown.to_string().contains("unknown partial `nope`"));
        // b including c would be fine; c including... whatever c includes is c's business.
        let editing_b = nodes[1].id;
        assert!(check_includes(&nodes, Some(editing_b), Some("b"), &includes(&["c"])).is_ok());
        // b including a: a → b → a.
        let cycle =
            check_includes(&nodes, Some(editing_b), Some("b"), &includes(&["a"])).unwrap_err();
        assert_eq!(
            cycle,
            TemplateError::Cycle {
                chain: vec!["b".into(), "a".into(), "b".into()]
            }
        );
        // Including itself.
        assert!(matches!(
            check_includes(&nodes, None, Some("self"), &includes(&["self"])).unwrap_err(),
            TemplateError::Cycle { .. }
        ));
        // A tenant template taking a shipped alias that includes it: layout → mine → layout.
        let mine = [node("L", Some("layout"), &["mine"])];
        assert!(matches!(
            check_includes(&mine, None, Some("mine"), &includes(&["welcome"])).unwrap_err(),
            TemplateError::Cycle { .. }
        ));
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let content = |html: &str| TemplateContent {
            html: html.to_owned(),
            variables: serde_json::json!([]),
            ..TemplateContent::default()
        };
        let ok = check(
            "Welcome",
            Some("welcome-2"),
            content("{{> footer}} {{NAME}}"),
        )
        .unwrap();
        assert_eq!(ok.content.uses, ["footer"]);
        assert!(check("", None, content("x")).is_err());
        assert!(check("x", Some("bad alias"), content("x")).is_err());
        assert!(check("x", None, content(" ")).is_err());
        let err = check("x", None, content("{{#if}}"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("html, line 1"), "{err}");
        let bad_from = TemplateContent {
            from_address: Some("not an address".into()),
            ..content("x")
        };
        assert!(
            check("x", None, bad_from)
                .unwrap_err()
                .to_string()
                .starts_with("from:")
        );
        let multi_line = TemplateContent {
            subject: Some("a\nb".into()),
            ..content("x")
        };
        assert!(check("x", None, multi_line).is_err());
    }
}

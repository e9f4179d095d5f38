//! Compiles a template with the partials and layouts it includes into two handlebars registries
//! (html, escaping; plain, for text and subject, not escaping), and renders it.
//!
//! A registry holds exactly the templates the render may reach: the caller loads them by alias
//! and [`Compiled::build`] walks the includes from the template, refusing an unknown alias, a
//! cycle, a chain deeper than [`MAX_INCLUDE_DEPTH`] or more than [`MAX_CLOSURE`] templates. So
//! whatever a template includes, handlebars' partial recursion stops within that depth.
//!
//! A partial inserts its html into the html part, and its text (or its html when it has none)
//! into the text part and the subject. A layout wraps the html part with its html, and the text
//! part with its text when it has one, at `{{{@content}}}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use handlebars::template::Template;
use handlebars::{
    BlockContext, Context, Handlebars, Output, RenderContext, RenderError, RenderErrorReason,
    Renderable, no_escape,
};
use serde_json::{Map, Value as Json};

use super::check::{Position, Uses, check_source};
use super::helpers::{self, Meter, charge, weight};
use super::{
    MAX_CLOSURE, MAX_INCLUDE_DEPTH, MAX_OUTPUT_BYTES, MAX_VARIABLES_BYTES, Part, RENDER_BUDGET,
    TemplateError, Variable, VariableType,
};

/// A template's sources as loaded for rendering (a saved draft or a published version).
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub subject: Option<String>,
    pub html: String,
    pub text: Option<String>,
    pub variables: Vec<Variable>,
    /// The alias of the layout that wraps it.
    pub layout: Option<String>,
}

/// What a render produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// `None` when the template has no subject or it was not asked for.
    pub subject: Option<String>,
    pub html: String,
    pub text: Option<String>,
}

/// The registry names of the template's own parts; aliases cannot contain `:`.
const ROOT: &str = ":template";
const SUBJECT: &str = ":subject";

/// A template ready to render, with everything it includes; shared between renders.
pub struct Compiled {
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
    has_subject: bool,
    has_text: bool,
    /// Layout aliases from the innermost out, and whether each has a text part.
    layouts: Vec<(String, bool)>,
    /// Declared variables of the template and everything it includes; the template's own first.
    variables: BTreeMap<String, Variable>,
    /// What the template's own parts cost to evaluate once.
    weight: u64,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("layouts", &self.layouts)
            .field("variables", &self.variables.keys())
            .finish_non_exhaustive()
    }
}

/// One unit's compiled parts.
struct Parts {
    subject: Option<Template>,
    html: Template,
    text: Option<Template>,
    uses: Uses,
}

fn compile(unit: &Unit, label: Option<&str>) -> Result<Parts, TemplateError> {
    let at = |e: TemplateError| match e {
        TemplateError::Source { mut at, message } => {
            at.template = label.map(ToOwned::to_owned);
            TemplateError::Source { at, message }
        }
        other => other,
    };
    let mut uses = Uses::default();
    let mut part = |part: Part, source: &str| -> Result<Template, TemplateError> {
        let (template, found) = check_source(part, source).map_err(at)?;
        uses.merge(found);
        Ok(template)
    };
    let subject = unit
        .subject
        .as_deref()
        .map(|s| part(Part::Subject, s))
        .transpose()?;
    let html = part(Part::Html, &unit.html)?;
    let text = unit
        .text
        .as_deref()
        .map(|s| part(Part::Text, s))
        .transpose()?;
    for position in uses.partials.values_mut() {
        position.template = label.map(ToOwned::to_owned);
    }
    Ok(Parts {
        subject,
        html,
        text,
        uses,
    })
}

/// A template being walked: what it includes, and how many of those were visited.
struct Frame {
    edges: Vec<(String, Option<Position>)>,
    next: usize,
}

/// What `alias` includes: its partials, then its layout.
fn includes(parts: &Parts, unit: &Unit) -> Vec<(String, Option<Position>)> {
    let mut out: Vec<(String, Option<Position>)> = parts
        .uses
        .partials
        .iter()
        .map(|(name, at)| (name.clone(), Some(at.clone())))
        .collect();
    if let Some(layout) = &unit.layout {
        out.push((layout.clone(), None));
    }
    out
}

fn named(mut template: Template, name: &str) -> Template {
    template.name = Some(name.to_owned());
    template
}

impl Compiled {
    /// Compiles `root` with the templates it may include, `available` by alias.
    ///
    /// # Errors
    /// A source that does not hold up, an unknown partial or layout, a cycle, too deep or too
    /// many includes, or a template whose evaluation alone exceeds the budget.
    pub fn build(root: &Unit, available: &HashMap<String, Unit>) -> Result<Self, TemplateError> {
        let root_parts = compile(root, None)?;
        // Depth-first from the template: each alias compiled once, in post-order so a partial's
        // weight is known before anything that includes it; `height` is the longest chain below
        // an alias, so one reached again by a longer path is still measured.
        let mut compiled: HashMap<String, Parts> = HashMap::new();
        let mut height: HashMap<String, usize> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut path: Vec<String> = vec!["(this template)".to_owned()];
        let mut stack: Vec<Frame> = vec![Frame {
            edges: includes(&root_parts, root),
            next: 0,
        }];
        let too_deep = |path: &[String], alias: &str| {
            let mut chain = path.to_vec();
            chain.push(alias.to_owned());
            TemplateError::TooDeep { chain }
        };
        while let Some(frame) = stack.last_mut() {
            let Some((alias, at)) = frame.edges.get(frame.next).cloned() else {
                let done = stack.pop().map(|f| f.edges).unwrap_or_default();
                if let Some(alias) = path.pop()
                    && !stack.is_empty()
                {
                    let below = done
                        .iter()
                        .filter_map(|(child, _)| height.get(child))
                        .max()
                        .map_or(1, |h| h + 1);
                    height.insert(alias.clone(), below);
                    order.push(alias);
                }
                continue;
            };
            frame.next += 1;
            if path.contains(&alias) {
                let mut chain = path.clone();
                chain.push(alias);
                return Err(TemplateError::Cycle { chain });
            }
            if let Some(below) = height.get(&alias) {
                if path.len() - 1 + below > MAX_INCLUDE_DEPTH {
                    return Err(too_deep(&path, &alias));
                }
                continue;
            }
            let Some(unit) = available.get(&alias) else {
                return Err(match at {
                    Some(at) => TemplateError::UnknownPartial { at, name: alias },
                    None => TemplateError::invalid(
                        "layout",
                        format!("unknown layout `{alias}`: no published template has this alias"),
                    ),
                });
            };
            if path.len() > MAX_INCLUDE_DEPTH {
                return Err(too_deep(&path, &alias));
            }
            if compiled.len() >= MAX_CLOSURE {
                return Err(TemplateError::TooManyTemplates);
            }
            let parts = compile(unit, Some(&alias))?;
            let edges = includes(&parts, unit);
            compiled.insert(alias.clone(), parts);
            path.push(alias);
            stack.push(Frame { edges, next: 0 });
        }

        let mut html_weights: HashMap<String, u64> = HashMap::new();
        let mut plain_weights: HashMap<String, u64> = HashMap::new();
        for alias in &order {
            let parts = &compiled[alias];
            html_weights.insert(alias.clone(), weight(&parts.html, &html_weights));
            let plain = parts.text.as_ref().unwrap_or(&parts.html);
            plain_weights.insert(alias.clone(), weight(plain, &plain_weights));
        }
        let mut own_weight = weight(&root_parts.html, &html_weights);
        for part in [&root_parts.subject, &root_parts.text]
            .into_iter()
            .flatten()
        {
            own_weight = own_weight.saturating_add(weight(part, &plain_weights));
        }

        // Every layout of the chain was reached above, so each is available and compiled.
        let mut layouts = Vec::new();
        let mut layout = root.layout.clone();
        while let Some(alias) = layout.take() {
            let Some(unit) = available.get(&alias) else {
                break;
            };
            layouts.push((alias, unit.text.is_some()));
            layout.clone_from(&unit.layout);
        }
        for (alias, _) in &layouts {
            own_weight = own_weight
                .saturating_add(html_weights[alias])
                .saturating_add(plain_weights[alias]);
        }
        if own_weight > RENDER_BUDGET {
            return Err(TemplateError::TooCostly);
        }

        let mut variables = BTreeMap::new();
        let units = std::iter::once(root).chain(order.iter().map(|alias| &available[alias]));
        for variable in units.flat_map(|u| u.variables.iter()) {
            variables
                .entry(variable.key.clone())
                .or_insert_with(|| variable.clone());
        }

        let mut html = registry(&Arc::new(html_weights));
        let mut plain = registry(&Arc::new(plain_weights));
        plain.register_escape_fn(no_escape);
        let has_subject = root_parts.subject.is_some();
        let has_text = root_parts.text.is_some();
        html.register_template(ROOT, named(root_parts.html, ROOT));
        if let Some(subject) = root_parts.subject {
            plain.register_template(SUBJECT, named(subject, SUBJECT));
        }
        if let Some(text) = root_parts.text {
            plain.register_template(ROOT, named(text, ROOT));
        }
        for (alias, parts) in compiled {
            let text = parts.text.unwrap_or_else(|| parts.html.clone());
            html.register_template(&alias, named(parts.html, &alias));
            plain.register_template(&alias, named(text, &alias));
        }
        Ok(Self {
            html,
            plain,
            has_subject,
            has_text,
            layouts,
            variables,
            weight: own_weight,
        })
    }

    /// The declared variables of the template and what it includes.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.variables.values()
    }

    /// Renders with `given` variables over the declared fallbacks; the subject only when
    /// `subject` is set (a send that names its own does not need it).
    ///
    /// # Errors
    /// A variable of the wrong type or missing, the budget or an output cap exceeded, a line
    /// break in the subject, or another render failure, each naming where.
    pub fn render(
        &self,
        given: &Map<String, Json>,
        subject: bool,
    ) -> Result<Rendered, TemplateError> {
        let data = self.data(given)?;
        let context = Context::wraps(&data).map_err(|e| TemplateError::Render(e.to_string()))?;
        let meter = Meter::start(RENDER_BUDGET);
        charge(self.weight).map_err(|_| TemplateError::TooCostly)?;
        let part =
            |registry: &Handlebars<'static>, name: &str, part: Part, content: Option<&str>| {
                render_part(registry, name, part, &context, content, &meter)
            };

        let mut html = part(&self.html, ROOT, Part::Html, None)?;
        for (layout, _) in &self.layouts {
            html = part(&self.html, layout, Part::Html, Some(&html))?;
        }
        let text = if self.has_text {
            let mut text = part(&self.plain, ROOT, Part::Text, None)?;
            for (layout, has_text) in &self.layouts {
                if *has_text {
                    text = part(&self.plain, layout, Part::Text, Some(&text))?;
                }
            }
            Some(text)
        } else {
            None
        };
        let subject = if subject && self.has_subject {
            let rendered = part(&self.plain, SUBJECT, Part::Subject, None)?;
            if rendered.contains(['\r', '\n']) {
                return Err(TemplateError::SubjectLineBreak);
            }
            Some(rendered)
        } else {
            None
        };
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }

    /// The render's data: fallbacks, overlaid with the given values after checking their types.
    fn data(&self, given: &Map<String, Json>) -> Result<Json, TemplateError> {
        let size = serde_json::to_vec(given).map_or(usize::MAX, |v| v.len());
        if size > MAX_VARIABLES_BYTES {
            return Err(TemplateError::invalid(
                "variables",
                format!("{size} bytes of JSON, over the limit of {MAX_VARIABLES_BYTES}"),
            ));
        }
        let mut data = Map::with_capacity(self.variables.len() + given.len());
        for variable in self.variables.values() {
            if let Some(fallback) = variable.fallback_value.as_ref().filter(|v| !v.is_null()) {
                data.insert(variable.key.clone(), fallback.clone());
            }
        }
        for (key, value) in given {
            if value.is_null() {
                continue;
            }
            if let Some(declared) = self.variables.get(key) {
                let fits = match declared.kind {
                    VariableType::String => value.is_string(),
                    VariableType::Number => value.is_number(),
                };
                if !fits {
                    return Err(TemplateError::WrongType {
                        key: key.clone(),
                        expected: declared.kind,
                    });
                }
            }
            data.insert(key.clone(), value.clone());
        }
        Ok(Json::Object(data))
    }
}

fn registry(weights: &Arc<HashMap<String, u64>>) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.set_prevent_indent(true);
    helpers::install(&mut registry, weights);
    registry
}

/// A render's output, refused once it passes the cap.
struct Capped {
    text: String,
    over: bool,
}

impl Output for Capped {
    fn write(&mut self, segment: &str) -> std::io::Result<()> {
        if self.text.len() + segment.len() > MAX_OUTPUT_BYTES {
            self.over = true;
            return Err(std::io::Error::other("output cap"));
        }
        self.text.push_str(segment);
        Ok(())
    }
}

fn render_part(
    registry: &Handlebars<'static>,
    name: &str,
    part: Part,
    context: &Context,
    content: Option<&str>,
    meter: &Meter,
) -> Result<String, TemplateError> {
    let template = registry
        .get_template(name)
        .ok_or_else(|| TemplateError::Render(format!("{name} is not compiled")))?;
    let mut rc = RenderContext::new(template.name.as_ref());
    // A layout rendered on its own (a preview of it) wraps nothing.
    let mut block = BlockContext::new();
    block.set_local_var(
        "content",
        Json::String(content.unwrap_or_default().to_owned()),
    );
    rc.push_block(block);
    let mut out = Capped {
        text: String::new(),
        over: false,
    };
    match template.render(registry, context, &mut rc, &mut out) {
        Ok(()) => Ok(out.text),
        Err(_) if out.over => Err(TemplateError::OutputTooLarge { part }),
        Err(_) if meter.exhausted() => Err(TemplateError::TooCostly),
        Err(err) => Err(explain(&err, part)),
    }
}

/// A handlebars error in our words, with where it happened.
fn explain(err: &RenderError, part: Part) -> TemplateError {
    let at = Position {
        template: err
            .template_name
            .as_ref()
            .filter(|name| !name.starts_with(':'))
            .cloned(),
        part,
        line: err.line_no.unwrap_or(1),
        column: err.column_no.unwrap_or(1),
    };
    match err.reason() {
        RenderErrorReason::MissingVariable(Some(name)) => TemplateError::MissingVariable {
            name: name.clone(),
            at,
        },
        RenderErrorReason::MissingVariable(None) => TemplateError::Render(format!(
            "{at}: a value is used but neither given nor declared with a fallback_value"
        )),
        RenderErrorReason::ParamNotFoundForIndex(helper, index) => TemplateError::Render(format!(
            "{at}: parameter {} of `{helper}` is missing (a variable neither given nor declared \
             with a fallback_value?)",
            index + 1
        )),
        reason => TemplateError::Render(format!("{at}: {reason}")),
    }
}

#[cfg(test)]
mod tests;

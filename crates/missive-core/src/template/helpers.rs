//! The helpers Missive adds to handlebars' built-ins, and its own `each`, which charges every
//! loop against the render's budget before running it (handlebars' `each` cannot be metered from
//! outside, and nested loops over a few variables would otherwise cost unbounded time).
//!
//! Formatters: `upper`, `lower`, `trim`, `truncate s n [suffix]`, `default value fallback`,
//! `number value [decimals=2] [separator=","]` and `join list [separator]`. None has side
//! effects; none reads anything but its arguments.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{
    BlockContext, BlockParams, Context, Handlebars, Helper, HelperDef, HelperResult, JsonRender,
    JsonTruthy, Output, PathAndJson, RenderContext, RenderError, RenderErrorReason, Renderable,
    ScopedJson,
};
use serde_json::Value as Json;

thread_local! {
    /// Elements the running render may still evaluate. Rendering is synchronous, so the render
    /// that set it is the one charging it.
    static BUDGET: Cell<u64> = const { Cell::new(0) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The budget of one render on this thread, from `start` until dropped.
pub(super) struct Meter;

impl Meter {
    pub(super) fn start(budget: u64) -> Self {
        BUDGET.set(budget);
        EXHAUSTED.set(false);
        Self
    }

    /// Whether a charge failed since the start.
    pub(super) fn exhausted(&self) -> bool {
        EXHAUSTED.get()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        BUDGET.set(0);
    }
}

/// Takes `units` from the budget, or fails the render.
pub(super) fn charge(units: u64) -> Result<(), RenderError> {
    let left = BUDGET.get();
    if units > left {
        EXHAUSTED.set(true);
        return Err(RenderErrorReason::Other("render budget exhausted".to_owned()).into());
    }
    BUDGET.set(left - units);
    Ok(())
}

/// Elements one evaluation of `template` may visit, counting every branch and each partial's own
/// weight (from `partials`, by alias); loops count once, as [`Each`] charges their repeats.
pub(super) fn weight(template: &Template, partials: &HashMap<String, u64>) -> u64 {
    template.elements.iter().fold(0u64, |total, element| {
        let inner = match element {
            TemplateElement::Expression(helper)
            | TemplateElement::HtmlExpression(helper)
            | TemplateElement::HelperBlock(helper) => [&helper.template, &helper.inverse]
                .into_iter()
                .flatten()
                .fold(0u64, |sum, t| sum.saturating_add(weight(t, partials))),
            TemplateElement::PartialExpression(partial)
            | TemplateElement::PartialBlock(partial) => match &partial.name {
                Parameter::Name(name) => partials.get(name).copied().unwrap_or(0),
                _ => 0,
            },
            _ => 0,
        };
        total.saturating_add(1).saturating_add(inner)
    })
}

/// `{{#each list}}`, `{{#each object}}`, with `@index`, `@first`, `@last`, `@key`, block
/// parameters (`as |item index|`) and `{{else}}`; every call charges its iterations times its
/// body's weight first.
pub(super) struct Each {
    pub(super) partials: Arc<HashMap<String, u64>>,
}

impl HelperDef for Each {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("each", 0))?;
        let Some(body) = h.template() else {
            return Ok(());
        };
        let entries: Vec<(Json, &Json)> = match value.value() {
            Json::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (Json::from(i), v))
                .collect(),
            Json::Object(map) => map
                .iter()
                .map(|(k, v)| (Json::from(k.as_str()), v))
                .collect(),
            _ => Vec::new(),
        };
        if entries.is_empty() {
            let iterable = matches!(value.value(), Json::Array(_) | Json::Object(_));
            return match h.inverse() {
                Some(inverse) => inverse.render(r, ctx, rc, out),
                None if !iterable && r.strict_mode() => {
                    Err(RenderError::strict_error(value.relative_path()))
                }
                None => Ok(()),
            };
        }
        let per_item = weight(body, &self.partials).saturating_add(super::ITERATION_COST);
        charge((entries.len() as u64).saturating_mul(per_item))?;
        let is_object = value.value().is_object();
        rc.push_block(block_for(value));
        let last = entries.len() - 1;
        for (i, (key, item)) in entries.into_iter().enumerate() {
            if let Some(block) = rc.block_mut() {
                block.set_local_var("first", Json::from(i == 0));
                block.set_local_var("last", Json::from(i == last));
                block.set_local_var("index", Json::from(i));
                if is_object {
                    block.set_local_var("key", key.clone());
                }
                let segment = match &key {
                    Json::String(k) => k.clone(),
                    other => other.to_string(),
                };
                match value.context_path() {
                    Some(path) => {
                        let mut base = path.clone();
                        base.push(segment);
                        *block.base_path_mut() = base;
                    }
                    None => block.set_base_value(item.clone()),
                }
                let by_path = value.context_path().is_some();
                let mut params = BlockParams::new();
                let mut any = false;
                if let Some(name) = h.block_param() {
                    add_item(&mut params, name, by_path, item)?;
                    any = true;
                } else if let Some((name, index_name)) = h.block_param_pair() {
                    add_item(&mut params, name, by_path, item)?;
                    params.add_value(index_name, key)?;
                    any = true;
                }
                if any {
                    block.set_block_params(params);
                }
            }
            body.render(r, ctx, rc, out)?;
        }
        rc.pop_block();
        Ok(())
    }
}

fn block_for<'rc>(value: &PathAndJson<'rc>) -> BlockContext<'rc> {
    let mut block = BlockContext::new();
    match value.context_path() {
        Some(path) => block.base_path_mut().clone_from(path),
        None => block.set_base_value(value.value().clone()),
    }
    block
}

/// The item as a block parameter: by path when it lives in the data (so `../` keeps working), by
/// value when it was computed.
fn add_item<'rc>(
    params: &mut BlockParams<'rc>,
    name: &'rc str,
    by_path: bool,
    item: &Json,
) -> Result<(), RenderError> {
    if by_path {
        params.add_path(name, Vec::new())
    } else {
        params.add_value(name, item.clone())
    }
}

/// A parameter that must be present: in strict mode a missing variable names itself.
fn arg<'a>(h: &'a Helper<'_>, index: usize) -> Result<&'a Json, RenderError> {
    match h.param(index) {
        Some(param) if !param.is_value_missing() => Ok(param.value()),
        Some(param) => Err(RenderError::strict_error(param.relative_path())),
        None => {
            Err(
                RenderErrorReason::Other(format!("`{}` needs parameter {}", h.name(), index + 1))
                    .into(),
            )
        }
    }
}

fn derived<'rc>(value: impl Into<Json>) -> Result<ScopedJson<'rc>, RenderError> {
    Ok(ScopedJson::Derived(value.into()))
}

/// A formatter's function of its helper's arguments.
type Format = fn(&Helper<'_>) -> Result<Json, RenderError>;

/// A formatter: a function of its helper's arguments.
struct Formatter(Format);

impl HelperDef for Formatter {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        derived((self.0)(h)?)
    }
}

fn upper(h: &Helper<'_>) -> Result<Json, RenderError> {
    Ok(arg(h, 0)?.render().to_uppercase().into())
}

fn lower(h: &Helper<'_>) -> Result<Json, RenderError> {
    Ok(arg(h, 0)?.render().to_lowercase().into())
}

fn trim(h: &Helper<'_>) -> Result<Json, RenderError> {
    Ok(arg(h, 0)?.render().trim().into())
}

fn truncate(h: &Helper<'_>) -> Result<Json, RenderError> {
    let text = arg(h, 0)?.render();
    let max = arg(h, 1)?
        .as_u64()
        .ok_or(RenderErrorReason::InvalidParamType("a count of characters"))?;
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if text.chars().count() <= max {
        return Ok(text.into());
    }
    let suffix = h
        .param(2)
        .map_or_else(|| "…".to_owned(), |s| s.value().render());
    let mut cut: String = text.chars().take(max).collect();
    cut.push_str(&suffix);
    Ok(cut.into())
}

fn default(h: &Helper<'_>) -> Result<Json, RenderError> {
    let value = h
        .param(0)
        .filter(|p| !p.is_value_missing())
        .map(|p| p.value().clone())
        .filter(|v| v.is_truthy(false));
    match value {
        Some(value) => Ok(value),
        None => arg(h, 1).cloned(),
    }
}

/// `1234.5` → `1,234.50`: fixed decimals (0 to 10) and a thousands separator.
fn number(h: &Helper<'_>) -> Result<Json, RenderError> {
    let value = arg(h, 0)?;
    let number = match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
    .ok_or(RenderErrorReason::InvalidParamType("a number"))?;
    let decimals = h
        .hash_get("decimals")
        .and_then(|d| d.value().as_u64())
        .or_else(|| h.param(1).and_then(|d| d.value().as_u64()))
        .unwrap_or(2)
        .min(10);
    let separator = h
        .hash_get("separator")
        .map_or_else(|| ",".to_owned(), |s| s.value().render());
    #[allow(clippy::cast_possible_truncation)] // capped at 10 above
    let fixed = format!("{:.*}", decimals as usize, number.abs());
    let (whole, fraction) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut grouped = String::with_capacity(fixed.len() + whole.len() / 3 * separator.len());
    if number < 0.0 && fixed.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        grouped.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push_str(&separator);
        }
        grouped.push(digit);
    }
    if !fraction.is_empty() {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    Ok(grouped.into())
}

fn join(h: &Helper<'_>) -> Result<Json, RenderError> {
    let list = arg(h, 0)?;
    let separator = h
        .param(1)
        .map_or_else(|| ", ".to_owned(), |s| s.value().render());
    let joined = match list {
        Json::Array(items) => items
            .iter()
            .map(JsonRender::render)
            .collect::<Vec<_>>()
            .join(&separator),
        other => other.render(),
    };
    Ok(joined.into())
}

/// Registers Missive's helpers, and removes `log` (it would reach our logs).
pub(super) fn install(registry: &mut Handlebars<'static>, partials: &Arc<HashMap<String, u64>>) {
    registry.unregister_helper("log");
    registry.register_helper(
        "each",
        Box::new(Each {
            partials: partials.clone(),
        }),
    );
    let formatters: [(&str, Format); 7] = [
        ("upper", upper),
        ("lower", lower),
        ("trim", trim),
        ("truncate", truncate),
        ("default", default),
        ("number", number),
        ("join", join),
    ];
    for (name, function) in formatters {
        registry.register_helper(name, Box::new(Formatter(function)));
    }
}

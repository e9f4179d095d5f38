//! A send that names a template: the template's latest published version, rendered once with the
//! send's variables, fills the draft before it is parsed. What the send names itself (`from`,
//! `subject`, `reply_to`) wins over the template's; the body is the template's alone, so a send
//! that also brings `html` or `text` is refused.
//!
//! Rendering happens here, at accept, so what is queued is final: a later change to the template
//! never alters mail already accepted.

use std::collections::HashMap;
use std::sync::Arc;

use missive_core::ProjectRef;
use missive_core::submission::Draft;
use serde_json::{Map, Value};

use super::IngestError;
use super::policy::Refusal;
use crate::tenancy::templates::{LookupError, Ready, Templates};

/// The header naming a template in a message received over SMTP (its id or alias).
pub const TEMPLATE_HEADER: &str = "X-Missive-Template";
/// The header carrying the variables, a JSON object.
pub const VARIABLES_HEADER: &str = "X-Missive-Template-Variables";

/// A template named by a send, with its variables.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateCall {
    /// An id or an alias, as the client wrote it.
    pub reference: String,
    pub variables: Map<String, Value>,
}

/// The templates one accept has resolved, so a batch naming one template loads it once.
pub(super) struct Resolved<'a> {
    templates: &'a Templates,
    project: ProjectRef,
    seen: HashMap<String, Arc<Ready>>,
}

impl<'a> Resolved<'a> {
    pub(super) fn new(templates: &'a Templates, project: ProjectRef) -> Self {
        Self {
            templates,
            project,
            seen: HashMap::new(),
        }
    }

    /// The template `call` names, ready to render.
    ///
    /// # Errors
    /// [`Refusal::Template`] naming it when it cannot be used; a database failure.
    pub(super) async fn get(&mut self, call: &TemplateCall) -> Result<Arc<Ready>, Failure> {
        if let Some(ready) = self.seen.get(&call.reference) {
            return Ok(ready.clone());
        }
        let ready = self
            .templates
            .for_send(self.project, &call.reference)
            .await
            .map_err(|e| match e {
                LookupError::Store(store) => Failure::Store(store.into()),
                LookupError::Template(err) => Failure::Refused(Refusal::Template(format!(
                    "template `{}`: {err}",
                    call.reference
                ))),
                other => Failure::Refused(Refusal::Template(other.to_string())),
            })?;
        self.seen.insert(call.reference.clone(), ready.clone());
        Ok(ready)
    }
}

/// Why a template could not fill a draft.
pub(super) enum Failure {
    Refused(Refusal),
    Store(IngestError),
}

/// Renders `ready` with the call's variables into `draft`.
///
/// # Errors
/// [`Refusal::Template`] for a render failure (naming the template and what failed),
/// [`Refusal::Invalid`] for a draft that brings its own body.
pub(super) fn fill(ready: &Ready, call: &TemplateCall, draft: &mut Draft) -> Result<(), Refusal> {
    if draft.html.is_some() || draft.text.is_some() {
        return Err(Refusal::Invalid(
            "html, text: not allowed with `template`, which supplies the body".to_owned(),
        ));
    }
    let rendered = ready
        .compiled
        .render(&call.variables, draft.subject.is_none())
        .map_err(|e| Refusal::Template(format!("template `{}`: {e}", call.reference)))?;
    if draft.subject.is_none() {
        draft.subject = rendered.subject;
    }
    if draft.from.is_none() {
        draft.from.clone_from(&ready.from);
    }
    if draft.reply_to.is_empty() {
        draft.reply_to.clone_from(&ready.reply_to);
    }
    draft.html = Some(rendered.html);
    draft.text = rendered.text;
    Ok(())
}

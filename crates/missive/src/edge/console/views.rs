//! The console's page templates (handlebars, compiled once, HTML-escaping every value) and the
//! frame every page is drawn in.

use std::sync::LazyLock;

use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value, json};

use missive_core::Scope;

use super::session::{ConsoleError, Session, Viewer};
use crate::edge::api::error::ApiError;

/// The compiled templates.
#[derive(Debug)]
pub struct Views {
    registry: Handlebars<'static>,
}

const TEMPLATES: [(&str, &str); 19] = [
    ("layout", include_str!("templates/layout.hbs")),
    ("login", include_str!("templates/login.hbs")),
    ("error", include_str!("templates/error.hbs")),
    ("operator", include_str!("templates/operator.hbs")),
    (
        "operator_tenant",
        include_str!("templates/operator_tenant.hbs"),
    ),
    ("emails", include_str!("templates/emails.hbs")),
    ("email", include_str!("templates/email.hbs")),
    ("templates", include_str!("templates/templates.hbs")),
    ("template", include_str!("templates/template.hbs")),
    ("preview", include_str!("templates/preview.hbs")),
    ("webhooks", include_str!("templates/webhooks.hbs")),
    ("webhook", include_str!("templates/webhook.hbs")),
    ("webhook_event", include_str!("templates/webhook_event.hbs")),
    ("domains", include_str!("templates/domains.hbs")),
    ("domain", include_str!("templates/domain.hbs")),
    ("received", include_str!("templates/received.hbs")),
    (
        "received_email",
        include_str!("templates/received_email.hbs"),
    ),
    ("usage", include_str!("templates/usage.hbs")),
    ("projects", include_str!("templates/projects.hbs")),
];

// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC, as the API gives it).
handlebars_helper!(when: |at: Value| {
    at.as_str().map_or_else(String::new, |s| {
        let s = s.replace('T', " ");
        s.get(..19).unwrap_or(&s).to_owned()
    })
});

// How many items a list holds.
handlebars_helper!(item_count: |v: Value| v.as_array().map_or(0, Vec::len));

// A value as indented JSON (escaped like any other value where it is put).
handlebars_helper!(pretty: |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default());

impl Views {
    /// Compiles every page.
    ///
    /// # Errors
    /// A template that does not compile.
    pub fn new() -> Result<Self, Box<handlebars::TemplateError>> {
        let mut registry = Handlebars::new();
        // As the tenant engine: a page naming a field its view lacks is an error, not a blank.
        registry.set_strict_mode(true);
        registry.register_helper("when", Box::new(when));
        registry.register_helper("pretty", Box::new(pretty));
        registry.register_helper("item_count", Box::new(item_count));
        for (name, source) in TEMPLATES {
            registry
                .register_template_string(name, source)
                .map_err(Box::new)?;
        }
        Ok(Self { registry })
    }
}

/// An API view as template context.
pub fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// An id from the path; anything else names nothing there is (404, as the API answers).
///
/// # Errors
/// [`ApiError::NotFound`] when it is not an id.
pub fn path_id<T: From<uuid::Uuid>>(raw: &str) -> Result<T, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(T::from)
        .map_err(|_| ApiError::not_found())
}

static VIEWS: LazyLock<Views> =
    LazyLock::new(|| Views::new().expect("the console's templates compile"));

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn draw(template: &str, context: &Value) -> Result<String, ConsoleError> {
    VIEWS
        .registry
        .render(template, context)
        .map_err(|e| ConsoleError::Render(format!("{template}: {e}")))
}

/// What the frame needs: who is signed in, the CSRF token for the sign-out form, the section.
fn frame(session: Option<&Session>, section: &str) -> Value {
    let viewer = session.map(|s| match &s.viewer {
        Viewer::Operator => json!({ "operator": true }),
        Viewer::Tenant(auth) => json!({
            "operator": false,
            "tenant_id": auth.tenant_id,
            "project_id": auth.project_id,
            "manages_projects": auth.scopes.allows(Scope::ProjectsManage),
        }),
    });
    json!({
        "viewer": viewer,
        "csrf": session.map(|s| s.csrf.as_str()),
        "section": section,
    })
}

/// A page of a signed-in session: `template` drawn with `context` inside the frame.
///
/// # Errors
/// [`ConsoleError::Render`] when the template fails (a defect).
pub fn page(
    session: &Session,
    template: &str,
    section: &str,
    mut context: Value,
) -> Result<Response, ConsoleError> {
    if let (Value::Object(map), Value::Object(frame)) =
        (&mut context, frame(Some(session), section))
    {
        map.extend(frame);
    }
    Ok(html(StatusCode::OK, draw(template, &context)?))
}

/// A page without a session (sign-in), or a fragment.
pub fn render_bare(status: StatusCode, template: &str, context: &Value) -> Response {
    match draw(template, context) {
        Ok(body) => html(status, body),
        Err(err) => err.into_response(),
    }
}

/// An error page, inside the frame when there is a session.
pub fn error_page(session: Option<&Session>, status: StatusCode, message: &str) -> Response {
    let mut context = frame(session, "");
    if let Value::Object(map) = &mut context {
        map.insert("status".to_owned(), json!(status.as_u16()));
        map.insert("message".to_owned(), json!(message));
    }
    match draw("error", &context) {
        Ok(body) => html(status, body),
        // The error page itself failed: plain text, still no detail.
        Err(_) => (status, message.to_owned()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(Views::new().is_ok());
    }

    #[test]
    fn values_are_escaped_and_times_shortened() {
        let out = draw(
            "error",
            &json!({"status": 404, "message": "<script>alert(1)</script>", "viewer": null}),
        )
        .expect("renders");
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!out.contains("<script>alert"));
        let mut registry = Handlebars::new();
        registry.register_helper("when", Box::new(when));
        let s = registry
            .render_template("{{when at}}", &json!({"at": "2026-12-07T12:34:56.789Z"}))
            .expect("renders");
        assert_eq!(s, "2026-12-07 12:34:56");
    }
}

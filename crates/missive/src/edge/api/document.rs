//! The OpenAPI document, completed with what the handlers' annotations leave implicit, so it
//! tells the truth about every answer a route can give (an OpenAPI fuzzer, schemathesis, checks
//! it in the test suite):
//!
//! - the error answers the edge gives any route of a kind: 400, 413, 415 and 422 for a body
//!   (malformed JSON, too large, not JSON, a field that does not hold up); 401 and 403 for a key
//!   (missing or refused; a scope lacking, or the admin API switched off); 404 for an id in the
//!   path; 422 for query parameters; 503 when the database cannot be reached;
//! - what a schema of a struct cannot say: a send needs `html` or `text`;
//! - the constraints the server enforces, from the same constants as the rules that enforce them
//!   (lengths, limits, and the patterns in `missive_core::submission::patterns` and
//!   `missive_core::tenant`, each tested against its rule): what the document refuses, the server
//!   refuses too. Rules a schema cannot state (an address's syntax, a sender's domain against the
//!   tenant's list, a time that must lie ahead) are refused with a documented 422.
//!
//! Every added answer carries the one error shape, `ErrorBody`.

use missive_core::submission::{
    MAX_FILENAME_CHARS, MAX_HEADER_VALUE_BYTES, MAX_RECIPIENTS_PER_FIELD, MAX_SUBJECT_CHARS,
    MAX_TAGS, patterns,
};
use missive_core::tenant::{MAX_ALLOWED_DOMAINS, MAX_DISPLAY_NAME_CHARS};
use missive_core::{DOMAIN_PATTERN, MAX_NAME_CHARS, NO_CONTROLS_PATTERN};
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use crate::tenancy::page::MAX_PAGE;

/// The shortest address (`a@b.c`).
const MIN_ADDRESS_CHARS: usize = 5;

/// Merges `constraints` into the schema at `pointer`; for a `oneOf` of a type and `null` (an
/// optional field), into the non-null member.
fn constrain(doc: &mut Value, pointer: &str, constraints: &Value) {
    let schema = doc
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("the document has {pointer}"));
    let target = match schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        Some(members) => members
            .iter_mut()
            .find(|m| m["type"] != "null")
            .unwrap_or_else(|| panic!("{pointer} has a non-null member")),
        None => schema,
    };
    if let (Some(target), Some(constraints)) = (target.as_object_mut(), constraints.as_object()) {
        for (key, value) in constraints {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Every field constraint the server enforces and a schema can state.
fn field_constraints(doc: &mut Value) {
    let name =
        json!({ "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NO_CONTROLS_PATTERN });
    let display_name = json!({
        "minLength": 1, "maxLength": MAX_DISPLAY_NAME_CHARS, "pattern": NO_CONTROLS_PATTERN
    });
    // An address's full syntax is more than a pattern should carry: its shortest form and the
    // absence of control characters are stated, `email` says what it is (a display name may come
    // with it, `Name <addr@domain>`); the rest is a documented 422.
    let address = json!({
        "format": "email", "minLength": MIN_ADDRESS_CHARS, "pattern": NO_CONTROLS_PATTERN
    });
    let domain = json!({ "maxLength": 254, "pattern": DOMAIN_PATTERN });
    let domains = json!({ "maxItems": MAX_ALLOWED_DOMAINS, "items": domain });
    let schemas = "/components/schemas";
    for (pointer, constraints) in [
        ("CreateTenantRequest/properties/name", &name),
        ("UpdateTenantRequest/properties/name", &name),
        ("CreateApiKeyRequest/properties/name", &name),
        ("CreateTenantRequest/properties/domain", &domain),
        ("UpdateTenantRequest/properties/domain", &domain),
        ("SettingsInput/properties/from_name", &display_name),
        ("SettingsPatchInput/properties/from_name", &display_name),
        ("SettingsInput/properties/default_from", &address),
        ("SettingsPatchInput/properties/default_from", &address),
        ("SettingsInput/properties/reply_to", &address),
        ("SettingsPatchInput/properties/reply_to", &address),
        ("SettingsInput/properties/allowed_sender_domains", &domains),
        (
            "SettingsPatchInput/properties/allowed_sender_domains",
            &domains,
        ),
        ("SendEmailRequest/properties/from", &address),
    ] {
        constrain(doc, &format!("{schemas}/{pointer}"), constraints);
    }
    let text_line = |max: Option<usize>| {
        let mut c = Map::new();
        c.insert("pattern".into(), json!(patterns::TEXT_LINE));
        if let Some(max) = max {
            c.insert("maxLength".into(), json!(max));
        }
        Value::Object(c)
    };
    constrain(
        doc,
        &format!("{schemas}/SendEmailRequest/properties/subject"),
        &text_line(Some(MAX_SUBJECT_CHARS)),
    );
    constrain(
        doc,
        &format!("{schemas}/SendEmailRequest/properties/tags"),
        &json!({ "maxItems": MAX_TAGS }),
    );
    for body in ["html", "text"] {
        constrain(
            doc,
            &format!("{schemas}/SendEmailRequest/properties/{body}"),
            &json!({ "pattern": patterns::BODY }),
        );
    }
    // Octets, not characters: an ASCII value may be this long, any value no longer.
    let mut value = text_line(Some(MAX_HEADER_VALUE_BYTES));
    value["type"] = json!("string");
    constrain(
        doc,
        &format!("{schemas}/SendEmailRequest/properties/headers"),
        &json!({
            "propertyNames": { "type": "string", "pattern": patterns::HEADER_NAME },
            "additionalProperties": value,
        }),
    );
    for part in ["name", "value"] {
        constrain(
            doc,
            &format!("{schemas}/Tag/properties/{part}"),
            &json!({ "pattern": patterns::TAG }),
        );
    }
    // One address or a list of them; `to` needs at least one.
    let addresses = |min_items: usize| {
        let one = json!({
            "type": "string", "format": "email", "minLength": MIN_ADDRESS_CHARS,
            "pattern": NO_CONTROLS_PATTERN
        });
        json!({ "oneOf": [one, {
            "type": "array", "minItems": min_items, "maxItems": MAX_RECIPIENTS_PER_FIELD,
            "items": one
        }] })
    };
    for (pointer, min_items) in [
        (format!("{schemas}/OneOrMany"), 0),
        (format!("{schemas}/SendEmailRequest/properties/to"), 1),
    ] {
        if let Some(schema) = doc.pointer_mut(&pointer) {
            let description = schema.get("description").cloned();
            *schema = addresses(min_items);
            if let Some(description) = description {
                schema["description"] = description;
            }
        }
    }
    for (field, constraints) in [
        (
            "filename",
            json!({ "minLength": 1, "maxLength": MAX_FILENAME_CHARS, "pattern": NO_CONTROLS_PATTERN }),
        ),
        ("content_type", json!({ "pattern": patterns::MIME_TYPE })),
        ("content_id", json!({ "pattern": patterns::CONTENT_ID })),
    ] {
        constrain(
            doc,
            &format!("{schemas}/AttachmentInput/properties/{field}"),
            &constraints,
        );
    }
    if let Some(attachment) = doc.pointer_mut(&format!("{schemas}/AttachmentInput")) {
        // Required, and then not null either (the server reads null as absent).
        attachment["required"] = json!(["filename", "content"]);
        attachment["properties"]["filename"]["type"] = json!("string");
        attachment["properties"]["content"] =
            json!({ "$ref": "#/components/schemas/AttachmentContent" });
    }
    if let Some(base64) = doc.pointer_mut(&format!("{schemas}/AttachmentContent/oneOf/0")) {
        base64["pattern"] = json!(patterns::BASE64_TEXT);
    }
    if let Some(bytes) = doc.pointer_mut(&format!("{schemas}/AttachmentContent/oneOf/1/items")) {
        bytes["maximum"] = json!(u8::MAX);
    }
    // Resend's two forms; the server also takes other ISO 8601 forms and any case and spacing of
    // the relative one, so this says what to send rather than all that is taken.
    constrain(
        doc,
        &format!("{schemas}/SendEmailRequest/properties/scheduled_at"),
        &json!({ "anyOf": [
            { "type": "string", "format": "date-time" },
            { "type": "string", "pattern": patterns::RELATIVE_SCHEDULE },
            { "type": "null" },
        ] }),
    );
    if let Some(send) = doc.pointer_mut(&format!("{schemas}/SendEmailRequest")) {
        // A body, html or text, present and not null.
        send["anyOf"] = json!([
            { "required": ["html"], "properties": { "html": { "type": "string" } } },
            { "required": ["text"], "properties": { "text": { "type": "string" } } },
        ]);
    }
}

/// What the query parameters of the listings accept.
fn query_constraints(operation: &mut Value) {
    // `get_mut`: indexing a JSON object mutably would insert a `null` where there is none.
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters.iter_mut().filter(|p| p["in"] == "query") {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let schema = &mut parameter["schema"];
        match name.as_str() {
            "limit" => {
                schema["minimum"] = json!(1);
                schema["maximum"] = json!(MAX_PAGE);
            }
            "created_after" | "created_before" => schema["format"] = json!("date-time"),
            "tag" => schema["pattern"] = json!(patterns::TAG_FILTER),
            _ => {}
        }
    }
}

/// The error answers every operation of a kind can give, with why.
fn standard_errors(path: &str, operation: &Value) -> Vec<(&'static str, &'static str)> {
    let mut errors = Vec::new();
    if operation.get("requestBody").is_some() {
        errors.extend([
            ("400", "The body is not JSON"),
            ("413", "The body is larger than MISSIVE_MAX_REQUEST_BYTES"),
            ("415", "The body is not `application/json`"),
            (
                "422",
                "A field is missing, unknown or invalid; the message names it",
            ),
        ]);
    }
    let parameters = operation["parameters"].as_array();
    let has = |place: &str| parameters.is_some_and(|p| p.iter().any(|p| p["in"] == place));
    if has("query") {
        errors.push(("422", "A query parameter is invalid; the message names it"));
    }
    if has("path") {
        errors.push(("404", "No such resource, or another tenant's"));
    }
    if operation["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
    {
        errors.push(("401", "The key is missing, unknown, revoked or expired"));
        if path.starts_with("/v1/tenants") {
            errors.push(("403", "The admin API is off (MISSIVE_ADMIN_KEY is not set)"));
        } else {
            errors.push(("403", "The key lacks the scope this route needs"));
        }
    }
    if path.starts_with("/v1/") || path == "/readyz" {
        errors.push(("503", "The database cannot be reached; nothing was changed"));
    }
    errors
}

/// Adds what [`standard_errors`] names where an operation does not document it already, and the
/// field constraints; returns the JSON to serve.
#[must_use]
pub fn complete(doc: &OpenApi) -> Value {
    let mut value = serde_json::to_value(doc).expect("the document serialises");
    // One handler may serve two methods (PATCH and PUT of a tenant); each operation still needs
    // an id of its own.
    let mut operation_ids = std::collections::BTreeSet::new();
    if let Some(paths) = value["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if let Some(id) = operation.get("operationId").and_then(Value::as_str)
                    && !operation_ids.insert(id.to_owned())
                {
                    let unique = format!("{id}_{method}");
                    operation_ids.insert(unique.clone());
                    operation["operationId"] = json!(unique);
                }
                query_constraints(operation);
                let errors = standard_errors(path, operation);
                let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for (status, description) in errors {
                    responses.entry(status).or_insert_with(|| {
                        json!({
                            "description": description,
                            "content": { "application/json": {
                                "schema": { "$ref": "#/components/schemas/ErrorBody" }
                            } }
                        })
                    });
                }
            }
        }
    }
    field_constraints(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_key_path_and_database_route_documents_its_errors() {
        let operation = json!({
            "requestBody": {},
            "parameters": [{ "in": "path", "name": "id" }],
            "security": [{ "api_key": [] }],
        });
        let statuses: Vec<&str> = standard_errors("/v1/emails/{id}/cancel", &operation)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            statuses,
            ["400", "413", "415", "422", "404", "401", "403", "503"]
        );
        assert!(standard_errors("/healthz", &json!({})).is_empty());
    }
}

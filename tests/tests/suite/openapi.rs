//! The OpenAPI document: valid OpenAPI 3, every route with its request and response schemas.

use std::collections::BTreeSet;

use missive_tests::{Auth, TestApp};
use reqwest::Method;
use serde_json::Value;

/// Every route the API serves. The test below also proves the document lists nothing else and
/// that the server answers 405 for methods the document does not list.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{id}"),
    ("patch", "/v1/tenants/{id}"),
    ("put", "/v1/tenants/{id}"),
    ("delete", "/v1/tenants/{id}"),
    ("post", "/v1/tenants/{id}/api-keys"),
    ("get", "/v1/tenants/{id}/api-keys"),
    ("delete", "/v1/tenants/{id}/api-keys/{key_id}"),
    ("get", "/v1/tenant"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{key_id}"),
    ("post", "/v1/emails"),
    ("get", "/v1/emails"),
    ("post", "/v1/emails/batch"),
    ("get", "/v1/emails/{id}"),
    ("post", "/v1/emails/{id}/cancel"),
    ("get", "/v1/emails/receiving"),
    ("get", "/v1/emails/receiving/{id}"),
    ("get", "/v1/emails/receiving/{id}/raw"),
    ("get", "/v1/emails/receiving/{id}/attachments"),
    (
        "get",
        "/v1/emails/receiving/{id}/attachments/{attachment_id}",
    ),
    (
        "get",
        "/v1/emails/receiving/{id}/attachments/{attachment_id}/content",
    ),
    ("post", "/v1/templates"),
    ("get", "/v1/templates"),
    ("get", "/v1/templates/{id}"),
    ("patch", "/v1/templates/{id}"),
    ("delete", "/v1/templates/{id}"),
    ("post", "/v1/templates/{id}/publish"),
    ("post", "/v1/templates/{id}/duplicate"),
    ("post", "/v1/templates/{id}/render"),
    ("post", "/v1/domains"),
    ("get", "/v1/domains"),
    ("get", "/v1/domains/{id}"),
    ("patch", "/v1/domains/{id}"),
    ("delete", "/v1/domains/{id}"),
    ("post", "/v1/domains/{id}/verify"),
    ("post", "/v1/domains/{id}/rotate"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/signing-secret/rotate"),
    ("get", "/v1/webhooks/{id}/events"),
    ("get", "/v1/webhooks/{id}/events/{event_id}"),
    ("get", "/v1/webhooks/{id}/events/{event_id}/attempts"),
    ("post", "/v1/webhooks/{id}/events/{event_id}/replay"),
    ("post", "/v1/webhooks/{id}/test"),
    ("post", "/v1/tenants/{id}/smtp/verify"),
    ("post", "/v1/suppressions"),
    ("get", "/v1/suppressions"),
    ("get", "/v1/suppressions/{id_or_email}"),
    ("delete", "/v1/suppressions/{id_or_email}"),
    ("post", "/v1/suppressions/batch/add"),
    ("post", "/v1/suppressions/batch/remove"),
    ("get", "/v1/usage"),
    ("get", "/v1/tenants/{id}/usage"),
    ("post", "/v1/tenants/{id}/projects"),
    ("get", "/v1/tenants/{id}/projects"),
    ("get", "/v1/tenants/{id}/projects/{project_id}"),
    ("patch", "/v1/tenants/{id}/projects/{project_id}"),
    ("delete", "/v1/tenants/{id}/projects/{project_id}"),
    ("post", "/v1/tenants/{id}/projects/{project_id}/api-keys"),
    ("get", "/v1/tenants/{id}/projects/{project_id}/api-keys"),
    (
        "delete",
        "/v1/tenants/{id}/projects/{project_id}/api-keys/{key_id}",
    ),
    ("get", "/v1/projects"),
    ("post", "/v1/projects"),
    ("get", "/v1/projects/usage"),
    ("get", "/v1/projects/{project_id}"),
    ("patch", "/v1/projects/{project_id}"),
    ("post", "/v1/projects/{project_id}/api-keys"),
    ("get", "/v1/projects/{project_id}/api-keys"),
    ("delete", "/v1/projects/{project_id}/api-keys/{key_id}"),
    ("get", "/v1/tenants/{id}/emails"),
    ("get", "/v1/tenants/{id}/emails/{email_id}"),
];

/// POST routes that take no body.
const BODYLESS: &[&str] = &[
    "/v1/tenants/{id}/smtp/verify",
    "/v1/emails/{id}/cancel",
    "/v1/templates/{id}/publish",
    "/v1/templates/{id}/duplicate",
    "/v1/webhooks/{id}/signing-secret/rotate",
    "/v1/webhooks/{id}/events/{event_id}/replay",
    "/v1/webhooks/{id}/test",
    "/v1/domains/{id}/verify",
    "/v1/domains/{id}/rotate",
];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .expect("local schema ref");
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "dangling $ref {reference}");
            target
        }
        None => schema,
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_every_route_with_request_and_response_schemas() {
    let app = TestApp::spawn().await;
    let doc = app
        .get("/openapi.json", Auth::None)
        .await
        .expect(200)
        .clone();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| METHODS.contains(&k.as_str()))
        {
            listed.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, expected);

    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        let responses = operation["responses"].as_object().expect("responses");
        let success: Vec<_> = responses
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .collect();
        assert!(!success.is_empty(), "{method} {path} has a 2xx response");
        for (code, response) in responses {
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {code} has content"));
            let schema = &content.values().next().expect("a media type")["schema"];
            assert!(
                resolve(&doc, schema).is_object(),
                "{method} {path} {code} has a schema"
            );
            if !code.starts_with('2') {
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
        if ["post", "put", "patch"].contains(method) && !BODYLESS.contains(path) {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let schema = resolve(&doc, schema);
            let described = schema["properties"].is_object()
                || resolve(&doc, &schema["items"])["properties"].is_object();
            assert!(described, "{method} {path} has a request schema: {schema}");
        }
        if path.starts_with("/v1/") {
            assert!(
                operation["security"].is_array(),
                "{method} {path} names its authentication"
            );
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        resolve(
            &doc,
            &Value::Object(
                [("$ref".to_owned(), Value::String(reference))]
                    .into_iter()
                    .collect(),
            ),
        );
    }

    // Methods the document does not list are not served either.
    for path in expected
        .iter()
        .map(|(_, p)| p.clone())
        .collect::<BTreeSet<_>>()
    {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{key_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{email_id}", &uuid::Uuid::now_v7().to_string());
        for method in METHODS {
            if !expected.contains(&((*method).to_owned(), path.clone())) {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let response = app
                    .request(method.clone(), &concrete, Auth::Admin, None)
                    .await;
                assert_eq!(response.status, 405, "{method} {path}: {}", response.text);
            }
        }
    }
}

#[tokio::test]
async fn the_document_passes_an_openapi_validator() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json", Auth::None).await.text;
    let Some(python) = missive_tests::test_python() else {
        panic!(
            "MISSIVE_TEST_PYTHON is not set: run the suite with `make test`, which provides a Python with openapi-spec-validator"
        );
    };
    let file = std::env::temp_dir().join(format!("missive-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, doc).unwrap();
    let output = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    std::fs::remove_file(&file).ok();
    assert!(
        output.status.success(),
        "openapi-spec-validator:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs schemathesis (every check) against the live app with one key; its report on failure.
async fn schemathesis(app: &TestApp, python: &str, key: &str) -> (bool, String) {
    let config = missive_tests::workspace_root().join("tests/schemathesis.toml");
    let output = tokio::process::Command::new(python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(config)
        .args(["run", &format!("{}/openapi.json", app.base_url)])
        .args(["--checks", "all", "--max-examples", "25"])
        // Reproducible: the same cases every run, so a failure here is a failure everywhere.
        .args(["--seed", "20261129", "--generation-deterministic"])
        .args(["--no-color", "-H", &format!("Authorization: Bearer {key}")])
        .output()
        .await
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[tokio::test]
async fn schemathesis_finds_no_disagreement_with_a_tenant_key_or_the_admin_key() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let Some(python) = missive_tests::test_python() else {
        panic!(
            "MISSIVE_TEST_PYTHON is not set: run the suite with `make test`, which provides schemathesis"
        );
    };
    // A sender by default, so a generated send without `from` is a valid one.
    let created = app
        .post(
            "/v1/tenants",
            Auth::Admin,
            &serde_json::json!({ "name": "fuzzed", "settings": { "default_from": "App <app@fuzz.test>" } }),
        )
        .await;
    let key = created.expect(201)["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, key) in [
        ("a tenant key", key.as_str()),
        ("the admin key", missive_tests::http::ADMIN_KEY),
    ] {
        let (passed, report) = schemathesis(&app, &python, key).await;
        assert!(passed, "schemathesis with {who}:\n{report}");
    }
}

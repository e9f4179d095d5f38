//! The HTTP edge: every failure in the JSON error shape, request ids, limits, panics.

use axum::routing::get;
use missive_tests::{Auth, TestApp};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let message = app
        .get("/v1/nope", Auth::None)
        .await
        .expect_error(404, "not_found")
        .to_owned();
    assert!(message.contains("/v1/nope"), "{message}");
    app.request(Method::PUT, "/v1/tenants", Auth::Admin, None)
        .await
        .expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_bad_fields_are_client_errors() {
    let app = TestApp::spawn().await;
    app.request_raw(
        Method::POST,
        "/v1/tenants",
        Auth::Admin,
        Some("application/json"),
        b"{\"name\":".to_vec(),
    )
    .await
    .expect_error(400, "invalid_json");
    app.request_raw(
        Method::POST,
        "/v1/tenants",
        Auth::Admin,
        Some("text/plain"),
        b"{\"name\":\"a\"}".to_vec(),
    )
    .await
    .expect_error(415, "invalid_content_type");
    app.request_raw(Method::POST, "/v1/tenants", Auth::Admin, None, Vec::new())
        .await
        .expect_error(415, "invalid_content_type");
    let message = app
        .post("/v1/tenants", Auth::Admin, &json!({ "name": 5 }))
        .await
        .expect_error(422, "validation_error")
        .to_owned();
    assert!(message.contains("name"), "{message}");
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let app = TestApp::spawn_with(|c| c.http.max_request_bytes = 2048).await;
    let big = json!({ "name": "x".repeat(4096) });
    app.post("/v1/tenants", Auth::Admin, &big)
        .await
        .expect_error(413, "payload_too_large");
    // Within the limit the same route works.
    app.post("/v1/tenants", Auth::Admin, &json!({ "name": "small" }))
        .await
        .expect(201);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_a_given_one() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz", Auth::None).await;
    let id = generated
        .headers
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let echoed = app
        .client
        .get(format!("{}/v1/nope", app.base_url))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}

async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_json_500_and_the_server_keeps_serving() {
    let router = axum::Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = missive::api::with_edge(router, 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = missive_tests::http_client();
    let response = client
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"statusCode": 500, "name": "internal_server_error", "message": "internal server error"})
    );
    let fine = client
        .get(format!("http://{addr}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.text().await.unwrap(), "fine");
}

//! Probes, metrics, docs and graceful shutdown.

use missive_tests::{Auth, TestApp};

#[tokio::test]
async fn healthz_and_readyz_answer_when_the_database_is_up() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz", Auth::None).await.expect(200)["status"],
        "ok"
    );
    assert_eq!(
        app.get("/readyz", Auth::None).await.expect(200)["status"],
        "ready"
    );
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone_but_healthz_stays_up() {
    let app = TestApp::spawn().await;
    app.store().pool().close().await;
    app.get("/readyz", Auth::None)
        .await
        .expect_error(503, "service_unavailable");
    app.get("/healthz", Auth::None).await.expect(200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    app.get("/healthz", Auth::None).await.expect(200);
    app.get("/v1/tenants", Auth::None).await.expect(401);
    let metrics = app.get("/metrics", Auth::None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.contains("missive_http_requests_total"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("route=\"/v1/tenants\""),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("status=\"401\""), "{}", metrics.text);
}

#[tokio::test]
async fn swagger_ui_is_served_with_its_assets() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(format!("{}/docs/", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let bundle = app
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.bytes().await.unwrap().len() > 100_000,
        "vendored bundle is served"
    );
}

#[tokio::test]
async fn graceful_shutdown_stops_the_listener() {
    let app = TestApp::spawn().await;
    let addr = app.addr;
    app.get("/healthz", Auth::None).await.expect(200);
    app.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

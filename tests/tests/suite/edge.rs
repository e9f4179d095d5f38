//! The HTTP edge: every failure in the JSON error shape, request ids, limits, panics.

use axum::routing::get;
use missive_tests::{ApiProcess, Auth, TestApp};
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
    let app = TestApp::spawn_with(|c| c.http.max_request_bytes = Some(2048)).await;
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
    let app = missive::edge::api::with_edge(router, 1024);
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

/// Reads until the server closes the connection (or `within` passes: `None`).
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed_while_requests_are_served() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|c| {
        c.http.header_timeout_secs = std::time::Duration::from_secs(1);
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-")
            .await
            .unwrap();
        slow.push(stream);
    }
    // One whole request, then idle on a keep-alive connection.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Normal requests are served meanwhile.
    for _ in 0..5 {
        app.get("/healthz", Auth::None).await.expect(200);
    }
    let started = std::time::Instant::now();
    for mut stream in slow {
        assert!(
            closed_within(&mut stream, std::time::Duration::from_secs(5))
                .await
                .is_some(),
            "a half-sent header kept its connection"
        );
    }
    let answered = closed_within(&mut idle, std::time::Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    app.get("/healthz", Auth::None).await.expect(200);
}

#[tokio::test]
async fn connections_past_the_per_address_cap_get_a_503_and_are_closed() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|c| c.http.max_connections_per_ip = 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // Let the server count them before the fifth arrives.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut fifth = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let answer = closed_within(&mut fifth, std::time::Duration::from_secs(5))
        .await
        .expect("the fifth connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["name"], "service_unavailable");
    assert_eq!(body["statusCode"], 503);
    // Their places come back when they close.
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.get("/healthz", Auth::None).await.expect(200);
}

/// The high-water mark of a process's resident memory, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// The scenario a new user tried: 3,000 connections that send half a request header and stop.
/// With the default caps (512 per address, so from six loopback addresses), every one is closed
/// once the header timeout passes, requests are served meanwhile, and the process stays small.
#[tokio::test]
async fn three_thousand_half_sent_headers_are_closed_and_cost_little_memory() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let api = ApiProcess::start(&app.db.url, &[("MISSIVE_HTTP_HEADER_TIMEOUT_SECS", "3")]).await;
    let mut slow = Vec::new();
    for i in 0..3_000u32 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        let from = std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(2 + i % 6).unwrap());
        socket.bind((from, 0).into()).unwrap();
        let mut stream = socket.connect(api.addr()).await.unwrap();
        stream
            .write_all(b"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-")
            .await
            .unwrap();
        slow.push(stream);
    }
    let client = missive_tests::http_client();
    let served = client.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let held = peak_rss_mib(api.pid());
    for mut stream in slow {
        assert!(
            closed_within(&mut stream, std::time::Duration::from_secs(10))
                .await
                .is_some(),
            "a half-sent header kept its connection"
        );
    }
    assert!(
        held < 100.0,
        "peak RSS {held:.0} MiB with 3,000 connections"
    );
    let served = client.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn concurrent_large_bodies_keep_the_process_within_its_memory_budget() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let api = ApiProcess::start(&app.db.url, &[]).await;
    let client = missive_tests::http_client();
    // Bodies within the request limit (10 MiB messages as JSON: about 14.3 MB) but over the
    // message limit, so each is read and parsed before its refusal; and bodies over the request
    // limit, refused by their declared length.
    let body = |text_bytes: usize| {
        axum::body::Bytes::from(
            serde_json::to_vec(&json!({
                "from": "app@acme.test", "to": "a@x.test", "subject": "big",
                "text": "x".repeat(text_bytes),
            }))
            .unwrap(),
        )
    };
    for (size, status) in [(13_000_000, 422), (27_000_000, 413)] {
        let body = body(size);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, url, key, body) = (
                client.clone(),
                api.url("/v1/emails"),
                acme.key.clone(),
                body.clone(),
            );
            tasks.spawn(async move {
                client
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            });
        }
        while let Some(done) = tasks.join_next().await {
            // A body refused before it was all sent may end in a reset instead.
            if let Ok(code) = done.unwrap() {
                assert!([status, 503].contains(&code), "{size}: {code}");
            }
        }
    }
    let peak = peak_rss_mib(api.pid());
    assert!(peak < 300.0, "peak RSS {peak:.0} MiB");
}

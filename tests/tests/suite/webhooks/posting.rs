//! The webhook client: what one post carries, and the addresses it may connect to.

use super::*;

fn client(allow_private: bool, dns: Option<std::net::SocketAddr>) -> WebhookClient {
    missive_tests::init_process();
    let targets = Targets::new(dns, allow_private).unwrap();
    WebhookClient::new(
        targets,
        ClientSettings {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            max_response_bytes: 64,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_post_carries_both_header_sets_and_follows_no_redirect() {
    let receiver = Receiver::start().await;
    let canary = Canary::start().await;
    let secret = SigningSecret::generate();
    let body = br#"{"type":"email.sent","data":{"email_id":"e1"}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = secret.sign("msg_e1", now, body);
    let url = receiver.url("/hooks/missive");
    let signed = Signed {
        url: &url,
        id: "msg_e1",
        timestamp: now,
        body,
        signature: &signature,
    };
    let client = client(true, None);
    receiver.script([
        Reply::Status(204),
        Reply::Redirect(canary.url.clone()),
        Reply::Status(410),
        Reply::Stall(Duration::from_secs(3)),
        Reply::Status(500),
    ]);
    let ok = client.post(&signed).await;
    assert!(ok.succeeded(), "{ok:?}");
    let redirected = client.post(&signed).await;
    assert_eq!(redirected.status, Some(302));
    assert!(!redirected.succeeded());
    let gone = client.post(&signed).await;
    assert!(gone.gone() && !gone.succeeded(), "{gone:?}");
    let slow = client.post(&signed).await;
    assert_eq!((slow.status, slow.response.as_str()), (None, "timed out"));
    let failed = client.post(&signed).await;
    assert_eq!(failed.status, Some(500));
    assert_eq!(failed.response, "answered 500");
    assert_eq!(canary.hits(), 0, "a redirect was followed");

    let hits = receiver.hits();
    assert_eq!(hits.len(), 5);
    let hit = &hits[0];
    assert_eq!(hit.path, "/hooks/missive");
    assert_eq!(hit.body.as_bytes(), body);
    assert_eq!(hit.header("content-type"), Some("application/json"));
    for (svix, standard) in [
        ("svix-id", "webhook-id"),
        ("svix-timestamp", "webhook-timestamp"),
        ("svix-signature", "webhook-signature"),
    ] {
        assert!(hit.header(svix).is_some(), "{svix}");
        assert_eq!(hit.header(svix), hit.header(standard));
    }
    // Both verifiers accept what arrived.
    let headers: serde_json::Map<String, Value> = hit
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    let input = json!({"secrets": [secret.expose()], "deliveries": [{"body": hit.body, "headers": headers}]});
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out =
        run_python_with_input(&python, "verify_webhooks.py", input.to_string().as_bytes()).await;
    let verdicts: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        verdicts[0][0],
        json!({"resend": true, "standardwebhooks": true})
    );
}

#[tokio::test]
async fn a_delivery_connects_only_to_addresses_the_policy_passed() {
    let canary = Canary::start().await;
    let port = canary.port();
    // The name resolves to loopback, where the canary listens: refused at connect time, with no
    // second lookup that could answer differently.
    let dns =
        DnsServer::start(&json!({"rebind.test": ["127.0.0.1"], "meta.test": ["169.254.169.254"]}))
            .await;
    let strict = client(false, Some(dns.addr()));
    let signed = |url: &'static str| Signed {
        url,
        id: "msg_1",
        timestamp: 0,
        body: b"{}",
        signature: "v1,x",
    };
    for url in [
        format!("http://rebind.test:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let url: &'static str = Box::leak(url.into_boxed_str());
        let attempt = strict.post(&signed(url)).await;
        assert_eq!(attempt.status, None, "{url}");
        assert!(
            attempt.response.contains("does not connect to"),
            "{url}: {}",
            attempt.response
        );
    }
    let open = client(true, Some(dns.addr()));
    let attempt = open
        .post(&signed("http://meta.test/latest/meta-data/"))
        .await;
    assert!(
        attempt.response.contains("link-local"),
        "{}",
        attempt.response
    );
    assert_eq!(canary.hits(), 0, "a refused address was connected to");
    // Allowed, the same name reaches the receiver it names.
    let receiver = Receiver::start().await;
    let url: &'static str =
        Box::leak(format!("http://rebind.test:{}/ok", receiver.addr.port()).into_boxed_str());
    assert!(open.post(&signed(url)).await.succeeded());
    assert_eq!(receiver.hits().len(), 1);
}

//! Random and malformed input on every route never produces a 5xx, and every error keeps our
//! JSON shape. Routes come from the OpenAPI document, so a new route is fuzzed without edits here.
//! The seed is printed on failure; set `MISSIVE_FUZZ_SEED` to replay it.

use missive_tests::{Auth, TestApp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

/// Requests per route and method.
const CASES_PER_OPERATION: usize = 60;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        prop_oneof![
            Just("full_access"),
            Just("send"),
            Just("sending_access"),
            Just("disabled"),
            Just("active"),
            Just("2030-01-01T00:00:00Z"),
            Just("a@b.test"),
            Just("x.test"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("settings".to_owned()),
                    Just("scopes".to_owned()),
                    Just("permission".to_owned()),
                    Just("expires_at".to_owned()),
                    Just("status".to_owned()),
                    Just("default_from".to_owned()),
                    Just("reply_to".to_owned()),
                    Just("allowed_sender_domains".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>, Option<&'static str>),
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        arb_json().prop_map(Body::Json),
        (
            prop::collection::vec(any::<u8>(), 0..256),
            prop_oneof![
                Just(None),
                Just(Some("application/json")),
                Just(Some("application/json; charset=utf-8")),
                Just(Some("text/plain")),
                Just(Some("multipart/form-data; boundary=x")),
            ]
        )
            .prop_map(|(bytes, ct)| Body::Bytes(bytes, ct)),
        "[\\[\\]{}\":,0-9a-z ]{0,64}"
            .prop_map(|s| Body::Bytes(s.into_bytes(), Some("application/json"))),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Admin,
    FullKey,
    SendKey,
    Garbage,
}

fn arb_who() -> impl Strategy<Value = Who> {
    prop_oneof![
        1 => Just(Who::Nobody),
        3 => Just(Who::Admin),
        3 => Just(Who::FullKey),
        1 => Just(Who::SendKey),
        1 => Just(Who::Garbage),
    ]
}

fn arb_segment(real: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(real),
        1 => Just(uuid::Uuid::now_v7().to_string()),
        1 => "[a-zA-Z0-9._~-]{0,40}",
        1 => prop_oneof![Just("%00".to_owned()), Just("%ZZ".to_owned()), Just("%C3%28".to_owned()), Just("..".to_owned())],
    ]
}

fn arb_query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "(limit|after|x)=[a-z0-9%-]{0,12}".prop_map(|q| format!("?{q}")),
        (0u32..200).prop_map(|n| format!("?limit={n}")),
    ]
}

#[tokio::test]
async fn random_input_on_every_route_never_yields_a_server_error() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("fuzz-a").await;
    let b = app.create_tenant("fuzz-b").await;
    let (_, send_key) = app.create_key(&a.id, "send-only", &["send"]).await;
    // Ids the fuzzer may revoke or disable without locking itself out: A's main key stays live.
    let mut a_victims = Vec::new();
    for i in 0..4 {
        a_victims.push(
            app.create_key(&a.id, &format!("victim-{i}"), &["send"])
                .await
                .0,
        );
    }
    let b_key_ids = vec![
        b.key_id.clone(),
        app.create_key(&b.id, "b2", &["send"]).await.0,
    ];

    let doc = app.get("/openapi.json", Auth::None).await.body;
    let seed: u64 = std::env::var("MISSIVE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );

    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let admin_route = path.starts_with("/v1/tenants");
            let ids = if admin_route {
                vec![b.id.clone()]
            } else {
                vec![a.id.clone()]
            };
            let key_ids = if admin_route {
                b_key_ids.clone()
            } else {
                a_victims.clone()
            };
            let case = (
                arb_segment(ids),
                arb_segment(key_ids),
                arb_query(),
                arb_body(),
                arb_who(),
            );
            for _ in 0..CASES_PER_OPERATION {
                let (id, key_id, query, body, who) = case.new_tree(&mut runner).unwrap().current();
                let url = format!(
                    "{}{query}",
                    path.replace("{id}", &id).replace("{key_id}", &key_id)
                );
                let auth = match who {
                    Who::Nobody => Auth::None,
                    Who::Admin => Auth::Admin,
                    Who::FullKey => Auth::Key(&a.key),
                    Who::SendKey => Auth::Key(&send_key),
                    Who::Garbage => Auth::Header("Bearer msv_\u{fc}nicode garbage"),
                };
                let response = match &body {
                    Body::None => app.request(method.clone(), &url, auth, None).await,
                    Body::Json(value) => app.request(method.clone(), &url, auth, Some(value)).await,
                    Body::Bytes(bytes, ct) => {
                        app.request_raw(method.clone(), &url, auth, *ct, bytes.clone())
                            .await
                    }
                };
                sent += 1;
                let context = json!({ "seed": seed, "method": method.as_str(), "url": url, "who": format!("{who:?}"), "body": format!("{body:?}") });
                assert!(
                    response.status < 500,
                    "server error for {context}: {}",
                    response.text
                );
                if response.status >= 400 {
                    assert_eq!(
                        response.body["statusCode"], response.status,
                        "error shape for {context}: {}",
                        response.text
                    );
                    assert!(
                        response.body["name"].is_string() && response.body["message"].is_string(),
                        "{context}"
                    );
                }
            }
        }
    }
    assert!(
        sent >= 15 * CASES_PER_OPERATION,
        "every operation was fuzzed ({sent} requests)"
    );
    // The fuzzer never got past isolation: A's main key still works and B's data is B's.
    app.get("/v1/tenant", Auth::Key(&a.key)).await.expect(200);
    let b_keys = app
        .get(&format!("/v1/tenants/{}/api-keys", b.id), Auth::Admin)
        .await;
    // The admin half of the fuzzing may have deleted B, which then answers 404 like any deleted
    // resource; otherwise every key listed under B is B's.
    if b_keys.status != 404 {
        assert!(
            b_keys.expect(200)["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["tenant_id"] == b.id.as_str())
        );
    }
}

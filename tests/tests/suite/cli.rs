//! The `missive` command line, run as a real process: help, tenant and key commands on the same
//! code paths as the API, configuration errors, and `serve` stopping cleanly on SIGTERM.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use missive_tests::{Auth, TestApp, missive_bin};
use serde_json::Value;

fn missive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(missive_bin());
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run missive")
}

fn json_stdout(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "missive failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn help_lists_every_command() {
    let top = String::from_utf8(missive(&["--help"], &[]).stdout).unwrap();
    for word in ["serve", "migrate", "tenant", "key", "MISSIVE_DATABASE_URL"] {
        assert!(top.contains(word), "--help mentions {word}:\n{top}");
    }
    let tenant = String::from_utf8(missive(&["tenant", "--help"], &[]).stdout).unwrap();
    assert!(
        tenant.contains("create") && tenant.contains("list"),
        "{tenant}"
    );
    let key = String::from_utf8(missive(&["key", "--help"], &[]).stdout).unwrap();
    assert!(key.contains("create") && key.contains("revoke"), "{key}");
    let serve = String::from_utf8(missive(&["serve", "--help"], &[]).stdout).unwrap();
    assert!(
        serve.contains("--role") && serve.contains("MISSIVE_HTTP_ADDR"),
        "{serve}"
    );
}

#[tokio::test]
async fn tenant_and_key_commands_share_the_apis_code_path() {
    let app = TestApp::spawn().await;
    let env = [
        ("MISSIVE_DATABASE_URL", app.db.url.as_str()),
        ("MISSIVE_LOG", "warn"),
    ];

    let created = json_stdout(&missive(
        &[
            "tenant", "create", "--name", "cli-co", "--domain", "cli.test",
        ],
        &env,
    ));
    let tenant_id = created["tenant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["tenant"]["settings"]["allowed_sender_domains"][0],
        "cli.test"
    );
    let first_key = created["api_key"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/tenant", Auth::Key(&first_key))
            .await
            .expect(200)["id"],
        tenant_id.as_str()
    );

    let key = json_stdout(&missive(
        &[
            "key", "create", "--tenant", &tenant_id, "--scope", "send", "--name", "ci",
        ],
        &env,
    ));
    let send_key = key["token"].as_str().unwrap().to_owned();
    assert_eq!(key["scopes"][0], "send");
    app.get("/v1/tenant", Auth::Key(&send_key))
        .await
        .expect(200);
    app.get("/v1/api-keys", Auth::Key(&send_key))
        .await
        .expect_error(403, "restricted_api_key");

    let listed = json_stdout(&missive(&["key", "list", "--tenant", &tenant_id], &env));
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        !String::from_utf8_lossy(&missive(&["key", "list", "--tenant", &tenant_id], &env).stdout)
            .contains(&send_key)
    );

    let key_id = key["id"].as_str().unwrap();
    json_stdout(&missive(
        &["key", "revoke", "--tenant", &tenant_id, "--key", key_id],
        &env,
    ));
    // Another process's revocation reaches the server's key cache by notification.
    app.wait_for_status("/v1/tenant", &send_key, 401).await;
    app.get("/v1/tenant", Auth::Key(&send_key))
        .await
        .expect_error(401, "invalid_api_key");

    let tenants = json_stdout(&missive(&["tenant", "list"], &env));
    assert!(
        tenants["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tenant_id.as_str())
    );

    // Errors come back as a non-zero exit with the reason on stderr.
    let duplicate = missive(&["tenant", "create", "--name", "CLI-co"], &env);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let unknown = missive(
        &[
            "key",
            "create",
            "--tenant",
            &uuid::Uuid::now_v7().to_string(),
        ],
        &env,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    let bad_scope = missive(
        &["key", "create", "--tenant", &tenant_id, "--scope", "root"],
        &env,
    );
    assert!(!bad_scope.status.success());
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("root"));
}

#[test]
fn a_bad_setting_stops_the_start_naming_the_variable() {
    for (name, value) in [
        ("MISSIVE_HTTP_ADDR", "not-an-address"),
        ("MISSIVE_RELAY_URL", "http://relay"),
        ("MISSIVE_ADMIN_KEY", "short"),
    ] {
        let output = missive(
            &["serve"],
            &[
                (name, value),
                ("MISSIVE_DATABASE_URL", "postgres://x@127.0.0.1:1/x"),
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(
            !stderr.contains(value) || name != "MISSIVE_ADMIN_KEY",
            "the admin key is not echoed"
        );
    }
    let output = missive(&["migrate"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("MISSIVE_DATABASE_URL"));
}

#[tokio::test]
async fn serve_refuses_a_database_whose_commits_are_not_durable() {
    let app = TestApp::spawn().await;
    // Whatever the cluster's fsync, this database's sessions do not wait for the disk.
    let statement = format!(
        "ALTER DATABASE \"{}\" SET synchronous_commit = off",
        app.db.name
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(app.store().pool())
        .await
        .unwrap();
    let output = missive(
        &["serve", "--role", "api", "--http-addr", "127.0.0.1:0"],
        &[("MISSIVE_DATABASE_URL", app.db.url.as_str())],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("synchronous_commit is off"), "{stderr}");
    assert!(stderr.contains("MISSIVE_ALLOW_UNSAFE_COMMITS"), "{stderr}");
}

/// Kills and reaps the child if the test fails before it exits on its own.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("try_wait")
    }

    fn take(&mut self) -> Child {
        self.0.take().expect("running")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let app = TestApp::spawn().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let admin_key = "cli-test-admin-key-0123456789abcdef";
    let mut child = ChildGuard(Some(
        Command::new(missive_bin())
            .args([
                "serve",
                "--role",
                "api",
                "--http-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .current_dir(std::env::temp_dir())
            .env("MISSIVE_DATABASE_URL", &app.db.url)
            .env("MISSIVE_ADMIN_KEY", admin_key)
            .env("MISSIVE_LOG_FORMAT", "json")
            // The test cluster runs with fsync=off.
            .env("MISSIVE_ALLOW_UNSAFE_COMMITS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start missive serve"),
    ));
    let client = missive_tests::http_client();
    let started = Instant::now();
    loop {
        let health = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "missive serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tenants = client
        .get(format!("http://127.0.0.1:{port}/v1/tenants"))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(tenants.status(), 200);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().is_some() {
                return child.take().wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("missive serve did not stop within 20 s of SIGTERM");
    })
    .await
    .unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("HTTP API stopped"), "{logs}");
    assert!(
        !logs.contains(admin_key),
        "the admin key never reaches the logs"
    );
}

#[tokio::test]
async fn trusted_networks_are_set_from_the_command_line() {
    let app = TestApp::spawn().await;
    let env = [
        ("MISSIVE_DATABASE_URL", app.db.url.as_str()),
        ("MISSIVE_LOG", "warn"),
    ];
    let created = json_stdout(&missive(
        &[
            "tenant",
            "create",
            "--name",
            "printers",
            "--trusted-network",
            "10.20.0.0/16",
        ],
        &env,
    ));
    let tenant_id = created["tenant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["tenant"]["settings"]["trusted_networks"],
        serde_json::json!(["10.20.0.0/16"])
    );
    let replaced = json_stdout(&missive(
        &[
            "tenant",
            "set-trusted-networks",
            "--tenant",
            &tenant_id,
            "--network",
            "192.0.2.0/24",
            "--network",
            "2001:db8::/32",
        ],
        &env,
    ));
    assert_eq!(
        replaced["settings"]["trusted_networks"],
        serde_json::json!(["192.0.2.0/24", "2001:db8::/32"])
    );
    // Another tenant cannot claim an overlapping network; the message names the problem.
    let refused = missive(
        &[
            "tenant",
            "create",
            "--name",
            "other",
            "--trusted-network",
            "192.0.2.128/25",
        ],
        &env,
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("overlaps"), "{stderr}");
    let bad = missive(
        &[
            "tenant",
            "set-trusted-networks",
            "--tenant",
            &tenant_id,
            "--network",
            "10.1.2.3/8",
        ],
        &env,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("did you mean 10.0.0.0/8"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let cleared = json_stdout(&missive(
        &["tenant", "set-trusted-networks", "--tenant", &tenant_id],
        &env,
    ));
    assert_eq!(
        cleared["settings"]["trusted_networks"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn set_smtp_reads_the_password_from_stdin_and_never_shows_it() {
    use std::io::Write as _;
    // The test's own server is on loopback, which only this setting allows.
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let server = missive_tests::SmtpSink::start_with(missive_tests::SinkOptions {
        auth: Some(("acme".to_owned(), "cli-relay-pass-9".to_owned())),
        ..missive_tests::SinkOptions::default()
    })
    .await;
    let tenant = app.create_tenant("Acme").await;
    let port = server.addr.port().to_string();
    let mut child = Command::new(missive_bin())
        .args([
            "tenant",
            "set-smtp",
            "--tenant",
            &tenant.id,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--tls",
            "none",
            "--username",
            "acme",
            "--password-stdin",
        ])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("MISSIVE_DATABASE_URL", &app.db.url)
        .env("MISSIVE_LOG", "debug")
        .env("MISSIVE_SECRET_KEY", missive_tests::TEST_SECRET_KEY_BASE64)
        .env("MISSIVE_WEBHOOK_ALLOW_PRIVATE", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run missive");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"cli-relay-pass-9\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let printed = json_stdout(&output);
    assert_eq!(printed["smtp"]["has_password"], true);
    assert_eq!(printed["smtp"]["host"], "127.0.0.1");
    for stream in [&output.stdout, &output.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains("cli-relay-pass-9"));
    }
    // Sealed with the server's key: the server's worker logs in with it.
    app.send_email(
        &tenant.key,
        &serde_json::json!({"from": "a@acme.test", "to": "x@x.test", "subject": "s", "text": "t"}),
    )
    .await;
    app.worker.drain().await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].auth_user.as_deref(), Some("acme"));

    let cleared = json_stdout(&missive(
        &["tenant", "clear-smtp", "--tenant", &tenant.id],
        &[("MISSIVE_DATABASE_URL", app.db.url.as_str())],
    ));
    assert_eq!(cleared["smtp"], Value::Null);
}

#[tokio::test]
async fn limits_are_set_and_usage_read_from_the_command_line() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let db = [("MISSIVE_DATABASE_URL", app.db.url.as_str())];
    let set = missive(
        &[
            "tenant",
            "set-limits",
            "--tenant",
            &tenant.id,
            "--requests-per-minute",
            "600",
            "--emails-per-day",
            "2",
        ],
        &db,
    );
    let printed = json_stdout(&set);
    assert_eq!(printed["rate_limit"]["requests_per_minute"], 600);
    assert_eq!(printed["rate_limit"]["emails_per_day"], 2);
    // The quota now holds for the API.
    let email = serde_json::json!({"from": "a@acme.test", "to": ["x@x.test", "y@x.test"], "subject": "s", "text": "t"});
    app.send_email(&tenant.key, &email).await;
    app.post("/v1/emails", Auth::Key(&tenant.key), &email)
        .await
        .expect_error(429, "daily_quota_exceeded");
    app.worker.drain().await.unwrap();
    let usage = json_stdout(&missive(&["tenant", "usage", "--tenant", &tenant.id], &db));
    assert_eq!(usage["tenant_id"], tenant.id.as_str());
    assert_eq!(usage["emails_sent"], 1);
    assert_eq!(usage["emails_delivered"], 2);
    // `default` returns a limit to the configured default; a bad value is refused.
    let reset = missive(
        &[
            "tenant",
            "set-limits",
            "--tenant",
            &tenant.id,
            "--emails-per-day",
            "default",
        ],
        &db,
    );
    assert_eq!(
        json_stdout(&reset)["rate_limit"]["emails_per_day"],
        Value::Null
    );
    let bad = missive(
        &[
            "tenant",
            "set-limits",
            "--tenant",
            &tenant.id,
            "--emails-per-day",
            "many",
        ],
        &db,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a whole number nor `default`"));
    // A key with its own rate.
    let key = json_stdout(&missive(
        &[
            "key",
            "create",
            "--tenant",
            &tenant.id,
            "--requests-per-minute",
            "5",
        ],
        &db,
    ));
    assert_eq!(key["requests_per_minute"], 5);
}

//! Crash recovery with real processes: `missive serve` under load is killed with SIGKILL three
//! times and restarted at once on the same ports. Every email it acknowledged (REST 200, SMTP
//! `250 ... Queued as`) must reach the relay within 15 s of the last restart, none lost, with at
//! most 1% sent twice (the sends in flight when it died). One run also cuts the worker's database
//! connections in between. Run alone: `scripts/test.sh crash -- --no-capture` prints the figures.
//! And the webhook dispatcher: killed while its posts hang, its events are posted by the
//! restarted process within seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use missive_tests::{Auth, Receiver, Reply, SmtpSink, TestApp, missive_bin};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Load generators running at once.
const CLIENTS: usize = 16;
/// Load between two kills. Each kill can send twice what the relay had taken and the worker had
/// not yet recorded (10 to 20 emails at these rates), so the share sent twice falls with the load
/// between kills: 2 s gave 0.2% to 1.2% of about 4,000 emails when the suite's other tests loaded
/// the machine.
const BETWEEN_KILLS: Duration = Duration::from_secs(3);
/// How long after the last restart every acknowledged email must have reached the relay.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `missive serve` with every role, restartable on the same ports.
struct Server {
    child: Option<Child>,
    db_url: String,
    relay: String,
    http: SocketAddr,
    smtp: SocketAddr,
    smtps: SocketAddr,
    mx: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn new(app: &TestApp) -> Self {
        let log = std::env::temp_dir().join(format!("missive-crash-{}.log", uuid::Uuid::now_v7()));
        Self {
            child: None,
            db_url: app.db.url.clone(),
            relay: app.sink.relay_url(),
            http: free_addr(),
            smtp: free_addr(),
            smtps: free_addr(),
            mx: free_addr(),
            log,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(missive_bin())
            .arg("serve")
            .current_dir(std::env::temp_dir())
            .env("MISSIVE_DATABASE_URL", &self.db_url)
            .env("MISSIVE_RELAY_URL", &self.relay)
            .env("MISSIVE_HTTP_ADDR", self.http.to_string())
            .env("MISSIVE_SMTP_ADDR", self.smtp.to_string())
            .env("MISSIVE_SMTPS_ADDR", self.smtps.to_string())
            .env("MISSIVE_MX_ADDR", self.mx.to_string())
            // The test cluster runs with fsync=off; Postgres itself is never killed here.
            .env("MISSIVE_ALLOW_UNSAFE_COMMITS", "true")
            // The suite's key, so endpoints the test app made open here too; endpoints on
            // loopback (the test's receiver).
            .env("MISSIVE_SECRET_KEY", missive_tests::TEST_SECRET_KEY_BASE64)
            .env("MISSIVE_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("MISSIVE_LOG", "warn,missive::queue=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start missive serve");
        self.child = Some(child);
    }

    /// Waits until the API answers.
    async fn ready(&self) {
        let client = missive_tests::http_client();
        let started = Instant::now();
        loop {
            let health = client
                .get(format!("http://{}/healthz", self.http))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "missive serve did not come up:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_file(&self.log).ok();
    }
}

/// The ids acknowledged by the load generators.
type Acknowledged = Arc<Mutex<Vec<String>>>;

async fn rest_client(url: String, key: String, stop: Arc<AtomicBool>, acked: Acknowledged) {
    let client = missive_tests::http_client();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let body = json!({ "from": "app@acme.test", "to": format!("r{n}@x.test"),
                           "subject": "crash test", "text": "Hello" });
        let sent = client
            .post(&url)
            .bearer_auth(&key)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let id = match sent {
            Ok(response) if response.status() == 200 => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|b| b["id"].as_str().map(ToOwned::to_owned)),
            _ => None,
        };
        match id {
            Some(id) => acked.lock().unwrap().push(id),
            // Down or dying: try again shortly.
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One SMTP conversation, line by line, that reports failures instead of panicking.
struct Conversation {
    stream: BufReader<TcpStream>,
}

impl Conversation {
    async fn reply(&mut self) -> Option<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_line(&mut line))
                    .await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return None;
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some((line.get(..3)?.parse().ok()?, text));
            }
        }
    }

    async fn send(&mut self, bytes: &[u8], expect: u16) -> Option<String> {
        self.stream.get_mut().write_all(bytes).await.ok()?;
        let (code, text) = self.reply().await?;
        (code == expect).then_some(text)
    }
}

/// Transactions on one connection after another, from a trusted address.
async fn smtp_client(addr: SocketAddr, stop: Arc<AtomicBool>, acked: Acknowledged) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok(stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut smtp = Conversation {
            stream: BufReader::new(stream),
        };
        if !matches!(smtp.reply().await, Some((220, _)))
            || smtp.send(b"EHLO load.test\r\n", 250).await.is_none()
        {
            continue;
        }
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let message = format!(
                "From: app@acme.test\r\nTo: r{n}@x.test\r\nSubject: crash test\r\n\r\nHello\r\n.\r\n"
            );
            let queued = async {
                smtp.send(b"MAIL FROM:<app@acme.test>\r\n", 250).await?;
                smtp.send(format!("RCPT TO:<r{n}@x.test>\r\n").as_bytes(), 250)
                    .await?;
                smtp.send(b"DATA\r\n", 354).await?;
                smtp.send(message.as_bytes(), 250).await
            }
            .await;
            let Some(text) = queued else { break };
            let id = text
                .trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            acked.lock().unwrap().push(id);
        }
    }
}

/// How many times the relay received each email, by the id in our Message-ID.
fn received_by_id(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in sink.received() {
        let data = String::from_utf8_lossy(&message.data);
        let id = data
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|rest| rest.split('@').next())
            .unwrap_or_default()
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Rest,
    Smtp,
}

/// Runs `load` against a server killed three times, and checks what reached the relay.
async fn survive_three_kills(load: Load) {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &json!({ "settings": { "trusted_networks": ["127.0.0.0/8"] } }),
    )
    .await
    .expect(200);
    let mut server = Server::new(&app);
    server.spawn();
    server.ready().await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acknowledged = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (stop, acked) = (stop.clone(), acked.clone());
        match load {
            Load::Rest => clients.spawn(rest_client(
                format!("http://{}/v1/emails", server.http),
                tenant.key.clone(),
                stop,
                acked,
            )),
            Load::Smtp => clients.spawn(smtp_client(server.smtp, stop, acked)),
        };
    }
    let mut last_restart = Instant::now();
    for kill in 1..=3 {
        tokio::time::sleep(BETWEEN_KILLS).await;
        if load == Load::Rest && kill == 2 {
            // The worker's connections cut under it, as a database restart or a network blip
            // would; it reconnects and finishes.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'missive worker%'",
            )
            .execute(app.store().pool())
            .await
            .unwrap();
        }
        server.kill();
        server.spawn();
        last_restart = Instant::now();
        server.ready().await;
    }
    tokio::time::sleep(BETWEEN_KILLS).await;
    stop.store(true, Ordering::SeqCst);
    while clients.join_next().await.is_some() {}

    let acked: Vec<String> = acked.lock().unwrap().clone();
    let wanted: Vec<String> = acked.iter().map(|id| id.replace('-', "")).collect();
    let counts = loop {
        let counts = received_by_id(&app.sink);
        let missing = wanted.iter().filter(|id| !counts.contains_key(*id)).count();
        if missing == 0 {
            break counts;
        }
        assert!(
            last_restart.elapsed() < DRAIN_LIMIT,
            "{missing} of {} acknowledged emails never reached the relay:\n{}",
            wanted.len(),
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drained = last_restart.elapsed();
    let duplicates: usize = wanted.iter().map(|id| counts[id] - 1).sum();
    let report = format!(
        "crash run ({}): {} acknowledged, all delivered, {duplicates} sent twice, \
         drained {:.1} s after the last restart",
        if load == Load::Rest { "REST" } else { "SMTP" },
        wanted.len(),
        drained.as_secs_f64()
    );
    eprintln!("{report}");
    assert!(
        wanted.len() >= 300,
        "too little load to mean much: {report}"
    );
    assert!(duplicates * 100 <= wanted.len(), "{report}");
    server.kill();
    // The killed processes' last leases were taken over and delivered; only the unacknowledged
    // sends of the last run may remain queued.
    app.expect_unsent_mail();
}

// Several threads: the load generators and the relay sink share this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_load_survives_three_kills_and_a_cut_worker_connection() {
    survive_three_kills(Load::Rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_load_survives_three_kills() {
    survive_three_kills(Load::Smtp).await;
}

#[tokio::test]
async fn a_killed_dispatchers_events_are_posted_soon_after_the_restart() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let receiver = Receiver::start().await;
    // The first posts hang, so the dispatcher dies holding their leases (300 s by default).
    receiver.script(std::iter::repeat_n(
        Reply::Stall(Duration::from_secs(60)),
        4,
    ));
    let mut server = Server::new(&app);
    server.spawn();
    server.ready().await;
    let client = missive_tests::http_client();
    let base = format!("http://{}", server.http);
    let created = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&tenant.key)
        .json(&json!({"endpoint": receiver.url("/hook"), "events": ["email.sent"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    for n in 0..20 {
        let sent = client
            .post(format!("{base}/v1/emails"))
            .bearer_auth(&tenant.key)
            .json(&json!({"from": "a@acme.test", "to": format!("r{n}@x.test"), "subject": "s", "text": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }
    let started = Instant::now();
    while receiver.hits().len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dispatcher never posted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    server.spawn();
    let restarted = Instant::now();
    server.ready().await;
    let pending = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM webhook_events WHERE status <> 'success'",
        )
        .fetch_one(app.store().pool())
        .await
        .unwrap()
    };
    while pending().await > 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "events still unsent 15 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posted: std::collections::HashSet<String> = receiver
        .hits()
        .iter()
        .filter_map(|h| h.header("svix-id").map(ToOwned::to_owned))
        .collect();
    assert_eq!(
        posted.len(),
        20,
        "every event posted, each under its one id"
    );
    eprintln!(
        "dispatcher killed with 4 posts in flight: every event posted {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
}

//! `missive-loadgen`: the load generator and SMTP sink behind `bench/run.sh`.
//!
//! - `accept`: N concurrent clients post a fixed number of emails as fast as they can; prints
//!   throughput and latency percentiles as JSON.
//! - `latency`: posts at a fixed rate for a fixed time (open loop, so a slow server cannot slow
//!   the arrivals down); prints latency percentiles as JSON.
//! - `read`: N concurrent clients make a fixed number of `GET`s, cycling through the paths in a
//!   file (a tenant's emails, say); prints throughput and latency percentiles as JSON.
//! - `sink`: a minimal, fast SMTP sink that counts messages into a file, for end-to-end timing.
//! - `receiver`: a webhook endpoint that checks every post's signature (both header sets) and
//!   counts the good and the bad ones into a file.
//! - `mx`: N connections send a fixed number of delivery reports to the inbound MX, each to a
//!   return path minted for an email that exists; prints throughput and latency as JSON.
//! - `template`: prints the definition of a template that renders exactly the body `accept`
//!   sends directly, so `accept --template` measures what rendering costs and nothing else.

// Reports go to stdout by design: bench/run.sh reads them.
#![allow(clippy::print_stdout)]

mod mx;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::{Parser, Subcommand};
use missive_core::webhook::{SigningSecret, verify};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed loop: `clients` workers send `total` emails in all.
    Accept {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
        /// Send through this template (id or alias, made from `template`'s output) instead.
        #[arg(long)]
        template: Option<String>,
    },
    /// Open loop: `rate` requests a second for `seconds`.
    Latency {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Closed loop: `clients` workers make `total` `GET`s of the paths in `paths` (one a line),
    /// in turn.
    Read {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        paths: PathBuf,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
    },
    /// Prints the `POST /v1/templates` body of the template `accept --template` sends with.
    Template {
        #[arg(long, default_value = "bench-message")]
        alias: String,
    },
    /// Counts messages received over SMTP into `count_file`.
    Sink {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        count_file: PathBuf,
        /// Answer the end of each message after this many milliseconds (a slow server).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    /// Closed loop: `clients` connections send `total` delay reports to the MX at `addr`, to
    /// return paths minted with `secret_key` for the emails in `targets`.
    Mx {
        #[arg(long)]
        addr: SocketAddr,
        /// `MISSIVE_SECRET_KEY` of the server (base64).
        #[arg(long)]
        secret_key: String,
        /// `tenant_id email_id recipient`, one a line.
        #[arg(long)]
        targets: PathBuf,
        /// The return paths' domain (`MISSIVE_RETURN_PATH_DOMAIN`).
        #[arg(long)]
        domain: String,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
    },
    /// Webhook endpoint: writes `<verified> <rejected>` posts into `count_file`.
    Receiver {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        count_file: PathBuf,
        /// The endpoint's signing secret (`whsec_...`).
        #[arg(long)]
        secret: String,
    },
}

/// The message body's fixed part (about 1 KB).
fn filler() -> String {
    "Lorem ipsum dolor sit amet. ".repeat(40)
}

/// The `i`th email: its content directly, or the template that renders the same content.
fn body(i: usize, template: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "from": "Bench <bench@bench.test>",
        "to": format!("user{i}@sink.test"),
        "tags": [{ "name": "bench", "value": "yes" }]
    });
    let fields = match template {
        Some(reference) => serde_json::json!({
            "template": { "id": reference, "variables": { "N": i } },
        }),
        None => serde_json::json!({
            "subject": format!("Benchmark message {i}"),
            "html": format!("<p>Hello {i}</p><p>{}</p>", filler()),
            "text": format!("Hello {i}"),
        }),
    };
    if let (Some(body), serde_json::Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    body
}

/// The template whose rendering for `N = i` is `body(i, None)`'s content.
fn template_definition(alias: &str) -> serde_json::Value {
    serde_json::json!({
        "name": alias,
        "alias": alias,
        "subject": "Benchmark message {{N}}",
        "html": format!("<p>Hello {{{{N}}}}</p><p>{}</p>", filler()),
        "text": "Hello {{N}}",
        "variables": [{ "key": "N", "type": "number" }],
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client
        .post(format!("{url}/v1/emails"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    response.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(started.elapsed())
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?)
}

async fn accept(
    url: String,
    key: String,
    clients: usize,
    total: usize,
    template: Option<String>,
) -> anyhow::Result<()> {
    closed_loop(clients, total, move |client, i| {
        let (url, key, template) = (url.clone(), key.clone(), template.clone());
        async move { post(&client, &url, &key, &body(i, template.as_deref())).await }
    })
    .await
}

/// `clients` workers make `total` requests in all, the `i`th with `request(client, i)`; prints
/// throughput and latency percentiles as JSON.
async fn closed_loop<F, R>(clients: usize, total: usize, request: F) -> anyhow::Result<()>
where
    F: Fn(reqwest::Client, usize) -> R + Clone + Send + 'static,
    R: std::future::Future<Output = anyhow::Result<Duration>> + Send,
{
    let client = client()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, request) = (client.clone(), next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= total {
                    return (latencies, errors);
                }
                match request(client.clone(), i).await {
                    Ok(latency) => latencies.push(latency),
                    Err(_) => errors += 1,
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let report = serde_json::json!({
        "requests": total, "errors": errors, "seconds": elapsed,
        "per_second": latencies.len() as f64 / elapsed,
        "p50_ms": percentile(&latencies, 0.50), "p99_ms": percentile(&latencies, 0.99),
    });
    println!("{report}");
    Ok(())
}

async fn get(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client.get(url).bearer_auth(key).send().await?;
    let status = response.status();
    response.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(started.elapsed())
}

async fn read(
    url: &str,
    key: String,
    paths: PathBuf,
    clients: usize,
    total: usize,
) -> anyhow::Result<()> {
    let urls: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(&paths)
            .with_context(|| format!("reading {}", paths.display()))?
            .lines()
            .filter(|line| !line.is_empty())
            .map(|path| format!("{url}{path}"))
            .collect(),
    );
    anyhow::ensure!(!urls.is_empty(), "no paths in {}", paths.display());
    closed_loop(clients, total, move |client, i| {
        let (urls, key) = (urls.clone(), key.clone());
        async move { get(&client, &urls[i % urls.len()], &key).await }
    })
    .await
}

async fn latency(url: String, key: String, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let client = client()?;
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            post(&client, &url, &key, &body(i, None)).await
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        match task.await? {
            Ok(latency) => latencies.push(latency),
            Err(_) => errors += 1,
        }
    }
    latencies.sort();
    let report = serde_json::json!({
        "requests": total, "errors": errors, "rate": rate,
        "p50_ms": percentile(&latencies, 0.50), "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
    });
    println!("{report}");
    Ok(())
}

/// Writes `counters` (space separated) into `file` every 50 ms, replacing it whole so a reader
/// never sees half a line.
fn publish(counters: Vec<Arc<AtomicU64>>, file: PathBuf) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let line = counters
                .iter()
                .map(|c| c.load(Ordering::Relaxed).to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let tmp = file.with_extension("tmp");
            if std::fs::File::create(&tmp)
                .and_then(|mut f| writeln!(f, "{line}"))
                .is_ok()
            {
                drop(std::fs::rename(&tmp, &file));
            }
        }
    });
}

async fn sink(port: u16, count_file: PathBuf, delay: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .context("bind the sink")?;
    let count = Arc::new(AtomicU64::new(0));
    publish(vec![count.clone()], count_file);
    loop {
        let (stream, _) = listener.accept().await?;
        let count = count.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            // Replies to pipelined commands go out together once the input is drained, as real
            // servers do; a reply per write would meet Nagle's algorithm and delayed ACKs.
            let mut out: Vec<u8> = b"220 sink ESMTP\r\n".to_vec();
            let mut line = Vec::new();
            let mut recipients = 0u64;
            let mut in_data = false;
            loop {
                if reader.buffer().is_empty() && !out.is_empty() {
                    if write.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
                line.clear();
                if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if in_data {
                    if line == b".\r\n" {
                        in_data = false;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        count.fetch_add(recipients, Ordering::Relaxed);
                        recipients = 0;
                        out.extend_from_slice(b"250 queued\r\n");
                    }
                    continue;
                }
                let upper = line.to_ascii_uppercase();
                // DSN offered, as relays do: Missive then asks for reports.
                let reply: &[u8] = if upper.starts_with(b"EHLO") {
                    b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 PIPELINING\r\n"
                } else if upper.starts_with(b"RCPT") {
                    recipients += 1;
                    b"250 ok\r\n"
                } else if upper.starts_with(b"DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else if upper.starts_with(b"QUIT") {
                    let _ = write.write_all(&out).await;
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                } else {
                    if upper.starts_with(b"RSET") || upper.starts_with(b"MAIL") {
                        recipients = 0;
                    }
                    b"250 ok\r\n"
                };
                out.extend_from_slice(reply);
            }
        });
    }
}

/// What the receiver counts.
#[derive(Debug, Clone)]
struct Received {
    secret: Arc<SigningSecret>,
    verified: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
}

/// One post: verified as a tenant's handler would, with both header sets, which must agree.
async fn receive(
    State(received): State<Received>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let verified = ["svix", "webhook"].iter().all(|set| {
        let (Some(id), Some(timestamp), Some(signature)) = (
            header(&format!("{set}-id")),
            header(&format!("{set}-timestamp")).and_then(|t| t.parse().ok()),
            header(&format!("{set}-signature")),
        ) else {
            return false;
        };
        verify(&received.secret, id, timestamp, &body, signature, now).is_ok()
    });
    if verified {
        received.verified.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    } else {
        received.rejected.fetch_add(1, Ordering::Relaxed);
        StatusCode::UNAUTHORIZED
    }
}

async fn receiver(port: u16, count_file: PathBuf, secret: &str) -> anyhow::Result<()> {
    let secret = SigningSecret::parse(secret).map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    let received = Received {
        secret: Arc::new(secret),
        verified: Arc::default(),
        rejected: Arc::default(),
    };
    publish(
        vec![received.verified.clone(), received.rejected.clone()],
        count_file,
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .context("bind the receiver")?;
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .with_state(received);
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drop(rustls::crypto::ring::default_provider().install_default());
    match Cli::parse().command {
        Command::Accept {
            url,
            key,
            clients,
            total,
            template,
        } => accept(url, key, clients, total, template).await,
        Command::Read {
            url,
            key,
            paths,
            clients,
            total,
        } => read(&url, key, paths, clients, total).await,
        Command::Template { alias } => {
            println!("{}", template_definition(&alias));
            Ok(())
        }
        Command::Latency {
            url,
            key,
            rate,
            seconds,
        } => latency(url, key, rate, seconds).await,
        Command::Sink {
            port,
            count_file,
            delay_ms,
        } => sink(port, count_file, Duration::from_millis(delay_ms)).await,
        Command::Receiver {
            port,
            count_file,
            secret,
        } => receiver(port, count_file, &secret).await,
        Command::Mx {
            addr,
            secret_key,
            targets,
            domain,
            clients,
            total,
        } => mx::run(addr, &secret_key, &targets, &domain, clients, total).await,
    }
}

//! `missive serve --role api` as a process of its own on a test's database: for what only a real
//! process shows (its memory, its log).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The process, ready to serve; killed on drop, its log file removed.
#[derive(Debug)]
pub struct ApiProcess {
    child: Child,
    base: String,
    addr: SocketAddr,
    log: PathBuf,
}

impl ApiProcess {
    /// Starts it on `database_url` with `env` added (`MISSIVE_LOG` is `warn` unless `env` says
    /// otherwise) and waits until it answers `/healthz`.
    ///
    /// # Panics
    /// When it does not start, or is not ready within 30 seconds.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log = std::env::temp_dir().join(format!("missive-api-{}.log", uuid::Uuid::now_v7()));
        let child = Command::new(crate::missive_bin())
            .arg("serve")
            .args(["--role", "api"])
            .current_dir(std::env::temp_dir())
            .env("MISSIVE_DATABASE_URL", database_url)
            .env("MISSIVE_HTTP_ADDR", addr.to_string())
            .env("MISSIVE_ALLOW_UNSAFE_COMMITS", "true")
            .env("MISSIVE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log file"))
            .spawn()
            .expect("start missive serve");
        let process = Self {
            child,
            base: format!("http://{addr}"),
            addr,
            log,
        };
        let client = crate::http_client();
        let started = Instant::now();
        while client.get(process.url("/healthz")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "never ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        process
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far (stderr).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
        drop(std::fs::remove_file(&self.log));
    }
}

//! A local DNS server the suite controls (`tests/python/dns_server.py`, dnslib), so nothing
//! here asks the internet: a fixed zone, or a zone file the test rewrites while it runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use crate::{test_python, workspace_root};

/// The server, killed when dropped; with a zone file, the file is removed then too.
#[derive(Debug)]
pub struct DnsServer {
    port: u16,
    zone_file: Option<PathBuf>,
    _child: tokio::process::Child,
}

impl DnsServer {
    /// Answers from `zone` (`{"name": ["10.0.0.5"]}` or `{"name": {"TXT": [...]}}`).
    ///
    /// # Panics
    /// When the server does not start.
    pub async fn start(zone: &Value) -> Self {
        Self::spawn(zone.to_string(), None).await
    }

    /// Answers from a file that starts as `zone` and that [`DnsServer::publish`] replaces.
    ///
    /// # Panics
    /// When the server does not start.
    pub async fn with_zone_file(zone: &Value) -> Self {
        let file = std::env::temp_dir().join(format!("missive-zone-{}.json", uuid::Uuid::now_v7()));
        std::fs::write(&file, zone.to_string()).expect("write the zone file");
        Self::spawn(format!("@{}", file.display()), Some(file)).await
    }

    async fn spawn(source: String, zone_file: Option<PathBuf>) -> Self {
        let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
        let mut child = tokio::process::Command::new(python)
            .arg(workspace_root().join("tests/python/dns_server.py"))
            .arg(source)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the DNS server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("the DNS server prints its port");
        Self {
            port: line.trim().parse().expect("a port"),
            zone_file,
            _child: child,
        }
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The zone file, for a script that publishes records itself.
    ///
    /// # Panics
    /// When the server answers from a fixed zone.
    #[must_use]
    pub fn zone_file(&self) -> &std::path::Path {
        self.zone_file.as_deref().expect("started with a zone file")
    }

    /// Replaces the records served from now on.
    ///
    /// # Panics
    /// When the server answers from a fixed zone, or the file cannot be written.
    pub fn publish(&self, zone: &Value) {
        std::fs::write(self.zone_file(), zone.to_string()).expect("write the zone file");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(file) = &self.zone_file {
            drop(std::fs::remove_file(file));
        }
    }
}

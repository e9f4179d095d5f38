//! Throwaway databases on the per-run test cluster.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use missive_store::{MIGRATOR, PoolSettings, Store};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The workspace root (the tests package's parent directory).
#[must_use]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The server URL (database `postgres`) of this run's cluster, starting one if the tooling did not.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url =
            std::env::var("MISSIVE_TEST_DATABASE_URL").unwrap_or_else(|_| start_private_cluster());
        // Connect to the maintenance database; each test makes its own.
        match url.rsplit_once('/') {
            Some((server, _db)) => format!("{server}/postgres"),
            None => panic!("MISSIVE_TEST_DATABASE_URL is not a URL: {url}"),
        }
    })
}

fn start_private_cluster() -> String {
    let root = workspace_root();
    let dir = root.join("target").join("test-pg");
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    let lock = root.join("target").join("test-pg.lock");
    // -o: the lock is not handed down to the server that pg.sh starts, which would otherwise
    // hold it for its whole life and block every later test run here.
    let output = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .arg(root.join("scripts").join("pg.sh"))
        .args(["start"])
        .arg(&dir)
        .args(["--port", "auto", "--fast"])
        .output()
        .expect("run scripts/pg.sh (needs flock and bash)");
    assert!(
        output.status.success(),
        "scripts/pg.sh could not start the test cluster:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 URL")
        .trim()
        .to_owned()
}

/// Where the PostgreSQL client tools live (for `pg_dump`).
#[must_use]
pub fn pg_bin(tool: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("MISSIVE_TEST_PG_BIN") {
        return PathBuf::from(dir).join(tool);
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|entries| {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
            dirs.sort();
            dirs.pop()
        })
        .map(|dir| dir.join(tool));
    debian
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(tool))
}

fn url_for(db: &str) -> String {
    let server = server_url();
    let (base, _) = server.rsplit_once('/').expect("server URL has a path");
    format!("{base}/{db}")
}

/// The template's name changes whenever a migration does, so an old template is never reused.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for migration in MIGRATOR.iter() {
        hasher.update(migration.version.to_le_bytes());
        hasher.update(&*migration.checksum);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("missive_tpl_{hex}")
}

async fn ensure_template(admin: &mut PgConnection) -> String {
    let template = template_name();
    // One process migrates; the others wait on the lock and then find the template.
    admin
        .execute("SELECT pg_advisory_lock(727171)")
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut *admin)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{template}_building");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{building}\""
            )))
            .await
            .expect("drop stale template");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{building}\""
            )))
            .await
            .expect("create template");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url_for(&building))
            .await
            .expect("connect to template");
        MIGRATOR.run(&pool).await.expect("migrate template");
        pool.close().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
            )))
            .await
            .expect("publish template");
    }
    admin
        .execute("SELECT pg_advisory_unlock(727171)")
        .await
        .expect("advisory unlock");
    template
}

/// A new, empty database (no migrations applied), for a test that migrates it step by step.
/// Returns its URL.
///
/// # Panics
/// When the test cluster is unreachable.
pub async fn empty_database() -> String {
    let mut admin = PgConnection::connect(server_url())
        .await
        .expect("connect to the test cluster");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create an empty database");
    admin.close().await.ok();
    url_for(&name)
}

/// A fresh, migrated database for one test.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub store: Store,
}

impl TestDb {
    /// Clones the migrated template into a new database.
    ///
    /// # Panics
    /// When the test cluster is unreachable: a test cannot run without it.
    pub async fn create() -> Self {
        let mut admin = PgConnection::connect(server_url())
            .await
            .expect("connect to the test cluster");
        let template = ensure_template(&mut admin).await;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        // Cloning fails while another session is connected to the template; retry briefly.
        let mut attempt = 0;
        loop {
            match admin.execute(sqlx::AssertSqlSafe(create.clone())).await {
                Ok(_) => break,
                Err(_) if attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(err) => panic!("create test database: {err}"),
            }
        }
        admin.close().await.ok();
        let url = url_for(&name);
        // The production pool, with its session settings.
        let settings = PoolSettings {
            max_connections: 8,
            ..PoolSettings::default()
        };
        let store = Store::connect(&url, settings)
            .await
            .expect("connect to the test database");
        Self { name, url, store }
    }
}

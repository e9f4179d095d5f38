//! Test harness for Missive's end-to-end suites.
//!
//! - One Postgres cluster per test run. `make test` starts it and exports
//!   `MISSIVE_TEST_DATABASE_URL`; a bare `cargo test` starts a private one under
//!   `target/test-pg` through `scripts/pg.sh` (serialised with a file lock).
//! - A fresh database per test, cloned from a migrated template: the template is migrated once per
//!   migration set (under an advisory lock, so parallel test processes agree), and cloning takes
//!   milliseconds.
//! - [`TestApp::spawn`] runs the real application on port 0 with typed helpers to call it.

pub mod counter;
pub mod db;
pub mod dns;
pub mod http;
pub mod postfix;
pub mod process;
pub mod python;
pub mod receiver;
pub mod sink;
pub mod smtp_client;

pub use counter::ConnectionCounter;
pub use db::{TestDb, empty_database, pg_bin, workspace_root};
pub use dns::DnsServer;
pub use http::{
    ADMIN_KEY, Auth, CreatedTenant, Response, TEST_SECRET_KEY, TEST_SECRET_KEY_BASE64, TestApp,
    http_client, init_process,
};
pub use postfix::Postfix;
pub use process::ApiProcess;
pub use python::{
    run_python_script, run_python_with_env_and_input, run_python_with_input,
    run_resend_node_script, run_resend_script, test_python,
};
pub use receiver::{Hit, Receiver, Reply};
pub use sink::{Received, SinkOptions, SmtpSink};
pub use smtp_client::{SmtpClient, SmtpReply, plain, queued_id};

/// An email ready for the store, to `to` and a Bcc, for tests that drive the writer directly.
///
/// # Panics
/// Never: every address here parses.
#[must_use]
pub fn new_email(to: &str) -> missive_store::NewEmail {
    use missive_core::submission::{Recipient, RecipientKind, Tag};
    use missive_core::{EmailAddress, Mailbox};
    let mailbox = |s: &str| Mailbox::parse(s).unwrap();
    let recipient = |kind, s: &str| Recipient {
        kind,
        address: EmailAddress::parse(s).unwrap(),
    };
    missive_store::NewEmail {
        id: missive_core::EmailId::new(),
        message_id: format!("{}@missive.test", uuid::Uuid::now_v7()),
        from: mailbox("App <app@acme.test>"),
        envelope_from: EmailAddress::parse("app@acme.test").unwrap(),
        smtputf8: false,
        reply_to: vec![mailbox("Help <help@acme.test>"), mailbox("b@acme.test")],
        subject: "Hi".into(),
        html: None,
        text: Some("Hello".into()),
        tags: vec![Tag {
            name: "kind".into(),
            value: "test".into(),
        }],
        mime: b"Subject: Hi\r\n\r\nHello\r\n".to_vec(),
        scheduled_at: None,
        recipients: vec![
            recipient(RecipientKind::To, to),
            recipient(RecipientKind::Bcc, "audit@acme.test"),
        ],
        over_smtp: false,
    }
}

/// A group writer with one writer task, and a transaction holding the emails table locked: the
/// writer's next statement waits, so the requests sent meanwhile pile up into one group when
/// the transaction ends (roll it back).
///
/// # Panics
/// When the lock cannot be taken.
pub async fn writer_held_by_a_lock(
    store: &missive_store::Store,
) -> (
    missive_store::EmailWriter,
    sqlx::Transaction<'static, sqlx::Postgres>,
) {
    writer_with_settings_held_by_a_lock(
        store,
        missive_store::WriterSettings {
            writers: 1,
            max_group_emails: 256,
        },
    )
    .await
}

/// [`writer_held_by_a_lock`] with other settings.
///
/// # Panics
/// When the lock cannot be taken.
pub async fn writer_with_settings_held_by_a_lock(
    store: &missive_store::Store,
    settings: missive_store::WriterSettings,
) -> (
    missive_store::EmailWriter,
    sqlx::Transaction<'static, sqlx::Postgres>,
) {
    let writer = missive_store::EmailWriter::start(store.clone(), settings);
    let mut blocker = store.pool().begin().await.expect("begin");
    sqlx::query("LOCK TABLE emails IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock emails");
    (writer, blocker)
}

/// The `missive` binary: `MISSIVE_BIN`, or the workspace's debug build (built on first use).
///
/// # Panics
/// When the binary cannot be built.
#[must_use]
pub fn missive_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("MISSIVE_BIN") {
            return bin.into();
        }
        // The test executable lives in <target>/debug/deps; the binary in <target>/debug.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(std::path::Path::parent)
            .expect("target/debug");
        let bin = profile_dir.join("missive");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "missive", "--bin", "missive"])
                .current_dir(workspace_root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p missive failed");
        }
        bin
    })
    .clone()
}

//! Rebuilds this crate when a migration is added: `sqlx::migrate!` embeds the files it finds at
//! build time, and cargo only tracks the ones it embedded, not the folder.
//!
//! And refuses an offline build (the default: `.cargo/config.toml` sets `SQLX_OFFLINE`) whose
//! statement data in `.sqlx/` was prepared against other migrations than these: the statements
//! are checked against that data, so a migration that renames a column must fail the build until
//! `scripts/sqlx.sh prepare` has checked every statement against the new schema.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

fn main() {
    // Read when the script runs, not when it was compiled: a target folder shared by clones at
    // other paths reuses the compiled script.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../..");
    let migrations = root.join("migrations");
    let recorded = root.join(".sqlx/migrations.sha256");
    println!("cargo:rerun-if-changed={}", migrations.display());
    println!("cargo:rerun-if-changed={}", recorded.display());
    println!("cargo:rerun-if-env-changed=SQLX_OFFLINE");
    let offline = std::env::var("SQLX_OFFLINE").is_ok_and(|v| v == "true" || v == "1");
    if !offline {
        // Online, the statements are checked against the live database itself.
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(&migrations)
        .expect("the migrations folder")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in &names {
        println!("cargo:rerun-if-changed={}", migrations.join(name).display());
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
        hasher.update(std::fs::read(migrations.join(name)).expect("a migration"));
    }
    let digest = hasher
        .finalize()
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
    let prepared = std::fs::read_to_string(&recorded).unwrap_or_default();
    assert!(
        prepared.trim() == digest,
        "the checked statements' data in .sqlx/ was prepared against other migrations than \
         those in migrations/: run `scripts/sqlx.sh prepare` (it checks every statement against \
         the migrated schema) and commit .sqlx/"
    );
}

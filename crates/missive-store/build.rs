//! Rebuilds this crate when a migration is added: `sqlx::migrate!` embeds the files it finds at
//! build time, and cargo only tracks the ones it embedded, not the folder.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}

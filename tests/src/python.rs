//! The suite's Python scripts (`tests/python/`), run as real clients of a test app.

use crate::workspace_root;

/// The Python that `make test` prepares with the suite's packages (`MISSIVE_TEST_PYTHON`), if set.
#[must_use]
pub fn test_python() -> Option<String> {
    std::env::var("MISSIVE_TEST_PYTHON").ok()
}

/// Runs `tests/python/<script>` under `python` with `envs` and returns what it printed.
///
/// # Panics
/// When the script cannot start or exits unsuccessfully (its stderr goes into the message).
pub async fn run_python_script(python: &str, script: &str, envs: &[(&str, String)]) -> Vec<u8> {
    let output = tokio::process::Command::new(python)
        .arg(workspace_root().join("tests/python").join(script))
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap_or_else(|err| panic!("run {script}: {err}"));
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

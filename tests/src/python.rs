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
    run(python, script, envs, None).await
}

/// Runs `tests/python/<script>` with `input` on its standard input; returns what it printed.
///
/// # Panics
/// As [`run_python_script`].
pub async fn run_python_with_input(python: &str, script: &str, input: &[u8]) -> Vec<u8> {
    run(python, script, &[], Some(input)).await
}

/// [`run_python_with_input`] with `envs` set too.
///
/// # Panics
/// As [`run_python_script`].
pub async fn run_python_with_env_and_input(
    python: &str,
    script: &str,
    envs: &[(&str, String)],
    input: &[u8],
) -> Vec<u8> {
    run(python, script, envs, Some(input)).await
}

async fn run(python: &str, script: &str, envs: &[(&str, String)], input: Option<&[u8]>) -> Vec<u8> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(python)
        .arg(workspace_root().join("tests/python").join(script))
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("run {script}: {err}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    if let Some(input) = input {
        stdin
            .write_all(input)
            .await
            .unwrap_or_else(|err| panic!("write to {script}: {err}"));
    }
    drop(stdin);
    succeeded(script, child.wait_with_output().await)
}

/// What a script printed, when it ran and exited successfully.
fn succeeded(script: &str, output: std::io::Result<std::process::Output>) -> Vec<u8> {
    let output = output.unwrap_or_else(|err| panic!("run {script}: {err}"));
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `tests/python/<script>`, a client of the Resend SDK, against the app at `base_url` with a
/// tenant's key, and returns the JSON it printed.
///
/// # Panics
/// When `make test` did not prepare the Python (the SDK would be missing), the script fails, or
/// it prints something other than JSON.
pub async fn run_resend_script(
    base_url: &str,
    key: &str,
    script: &str,
    extra: &[(&str, String)],
) -> serde_json::Value {
    let python = test_python().expect(
        "MISSIVE_TEST_PYTHON is not set: run the suite with `make test`, which installs the Resend SDK",
    );
    let mut envs = vec![
        ("RESEND_API_URL", format!("{base_url}/v1")),
        ("RESEND_API_KEY", key.to_owned()),
    ];
    envs.extend(extra.iter().cloned());
    let stdout = run_python_script(&python, script, &envs).await;
    serde_json::from_slice(&stdout)
        .unwrap_or_else(|err| panic!("{script} printed something other than JSON: {err}"))
}

/// Runs `tests/node/<script>`, a client of the Resend Node SDK (installed by `make test` into the
/// folder `MISSIVE_TEST_NODE` names), against the app at `base_url` with a tenant's key, and
/// returns the JSON it printed.
///
/// # Panics
/// When `make test` did not prepare the Node packages, the script fails, or it prints something
/// other than JSON.
pub async fn run_resend_node_script(base_url: &str, key: &str, script: &str) -> serde_json::Value {
    let modules = std::env::var("MISSIVE_TEST_NODE").expect(
        "MISSIVE_TEST_NODE is not set: run the suite with `make test`, which installs the Resend Node SDK",
    );
    let output = tokio::process::Command::new("node")
        .arg(workspace_root().join("tests/node").join(script))
        .env("RESEND_BASE_URL", format!("{base_url}/v1"))
        .env("RESEND_API_KEY", key)
        .env("MISSIVE_TEST_NODE", modules)
        .output()
        .await;
    serde_json::from_slice(&succeeded(script, output))
        .unwrap_or_else(|err| panic!("{script} printed something other than JSON: {err}"))
}

//! The codebase's own rules, checked on its source: files stay short enough to read, and the
//! names the database stores are compared only through core's enums.

use std::path::{Path, PathBuf};

use missive_core::named::stored_enums;

/// The longest a source file may run before its `#[cfg(test)]` module.
const MAX_LINES: usize = 600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, build output aside.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                found.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// A file's lines before its tests.
fn before_tests(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|line| !line.trim_start().starts_with("#[cfg(test)]"))
        .collect()
}

#[test]
fn no_source_file_passes_600_lines_before_its_tests() {
    let root = workspace();
    let mut long = Vec::new();
    let mut seen = 0;
    for dir in ["crates", "tests", "bench", "fuzz"] {
        for path in rust_files(&root.join(dir)) {
            seen += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = before_tests(&text).len();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines})", path.display()));
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} source files found under {}",
        root.display()
    );
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines before the tests: {long:?}"
    );
}

/// The partial indexes' predicates, as the migrations write them (`status IN ('queued',
/// 'deferred')`): a statement must spell its filter the same way for the planner to use the
/// index, so these are the only stored names SQL may write literally.
fn index_predicates() -> Vec<String> {
    let mut predicates = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(workspace().join("migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        let sql = std::fs::read_to_string(path).unwrap();
        for statement in sql.split(';') {
            let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
            if flat.contains("INDEX")
                && let Some((_, predicate)) = flat.split_once(" WHERE ")
                && predicate.contains('\'')
            {
                predicates.push(predicate.trim().to_owned());
            }
        }
    }
    predicates
}

/// Where `line` compares one of `names` as a string: in Rust (`== "sent"`, `"sent" =>`, a
/// pattern `| "sent"`) or in SQL (`= 'sent'`, `<> 'sent'`, `IN ('sent', ...)`) outside the
/// index predicates.
fn compared_names<'a>(line: &str, names: &[&'a str], predicates: &[String]) -> Vec<&'a str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    // An index predicate, with or without a table alias before the column, is allowed.
    let mut sql = code.to_owned();
    for predicate in predicates {
        sql = sql.replace(predicate.as_str(), "");
    }
    names
        .iter()
        .copied()
        .filter(|name| {
            let rust = [
                format!("== \"{name}\""),
                format!("!= \"{name}\""),
                format!("\"{name}\" =="),
                format!("\"{name}\" !="),
                format!("\"{name}\" =>"),
                format!("\"{name}\" |"),
                format!("| \"{name}\""),
            ];
            let quoted = format!("'{name}'");
            let in_sql = sql.match_indices(&quoted).any(|(at, _)| {
                let before = sql[..at].trim_end();
                let after = sql[at + quoted.len()..].trim_start();
                before.ends_with('=')
                    || before.ends_with("<>")
                    || before.ends_with("IN (")
                    || (before.ends_with(',') && after.starts_with([',', ')']))
                    || (before.ends_with('(') && after.starts_with(','))
            });
            rust.iter().any(|p| code.contains(p.as_str())) || in_sql
        })
        .collect()
}

#[test]
fn no_stored_name_is_compared_as_a_string_outside_core() {
    let enums = stored_enums();
    let mut names: Vec<&str> = enums.iter().flat_map(|e| e.names.iter().copied()).collect();
    names.sort_unstable();
    names.dedup();
    let predicates = index_predicates();
    assert!(
        predicates
            .iter()
            .any(|p| p == "status IN ('queued', 'deferred')"),
        "{predicates:?}"
    );
    // The check finds what it looks for.
    let planted = [
        "if webhook.status == \"enabled\" {",
        "\"bounced\" => 1,",
        "WHERE status = 'delivered' AND",
        "WHERE e.status IN ('pending', 'failed')",
    ];
    for line in planted {
        assert!(
            !compared_names(line, &names, &predicates).is_empty(),
            "{line}"
        );
    }
    assert!(
        compared_names(
            "WHERE d.status IN ('queued', 'deferred')",
            &names,
            &predicates
        )
        .is_empty()
    );

    let root = workspace();
    let mut found = Vec::new();
    for dir in [
        "crates/missive/src",
        "crates/missive-store/src",
        "bench",
        "fuzz",
    ] {
        for path in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in before_tests(&text).into_iter().enumerate() {
                for name in compared_names(line, &names, &predicates) {
                    found.push(format!(
                        "{}:{}: `{name}` in {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "stored names compared as strings outside core (compare core's enums instead):\n{}",
        found.join("\n")
    );
}

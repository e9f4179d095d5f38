//! What operators read, generated from the declarations: the shipped `config/missive.toml`
//! and the settings reference, docs/configuration.md (tests keep both files in step).

use std::fmt::Write as _;

use super::SETTINGS;

/// The shipped `config/missive.toml`: every setting under its section, with its doc, its
/// environment variables and its default, commented out.
#[must_use]
pub fn example_file() -> String {
    let mut out = String::from(
        "# Missive configuration file, generated from the settings Missive declares. Every key is\n\
         # optional; the values shown are the built-in defaults. Precedence: built-in defaults <\n\
         # this file < MISSIVE_* environment variables < command-line flags. The flat keys of\n\
         # earlier versions (`http_addr`, the variable's name without MISSIVE_) still work.\n\
         # Secrets (a database URL with a password, admin_key, secret_key) are better set in the\n\
         # environment.\n",
    );
    let mut section = "";
    for setting in SETTINGS {
        if setting.section != section {
            section = setting.section;
            let _ = write!(out, "\n[{section}]\n");
        } else {
            out.push('\n');
        }
        for line in setting.doc.lines() {
            let _ = writeln!(out, "#{line}");
        }
        let _ = writeln!(out, "# Environment: {}.", setting.env.join(", "));
        let value = match setting.default {
            None => "(unset)".to_owned(),
            Some(v) if v.parse::<u64>().is_ok() || v == "true" || v == "false" => v.to_owned(),
            Some(v) => format!("{v:?}"),
        };
        let _ = writeln!(out, "# {} = {value}", setting.name);
    }
    out
}

/// What docs/configuration.md says before the settings.
const REFERENCE_INTRO: &str = "\
# Configuration

<!-- Generated from the settings Missive declares (crates/missive/src/app/config/mod.rs); a test
keeps this file in step. Rewrite it with MISSIVE_WRITE_CONFIG_DOCS=1 cargo test -p missive --lib
config. -->

Every setting is declared once, and everything an operator reads about it comes from that
declaration: this page, the shipped `config/missive.toml`, and the flags of `missive --help` and
`missive serve --help`.

Where a value comes from, later winning: the built-in default, then the config file
(`config/missive.toml`, or `--config PATH`, or `MISSIVE_CONFIG`), then the environment, then
flags. In the file, settings sit in sections (`[http]` then `addr = \"0.0.0.0:8025\"`); the flat
keys of earlier versions (`http_addr`: the variable's name without `MISSIVE_`, lower-cased) still
work. The database and logging flags go with every command; the others with `serve`. A switch's
flag alone means `true` (`--allow-unsafe-commits`). A value that does not parse stops the start
with a message naming where it came from (the variable, the flag, or the key in the file).
Secrets are held in redacting types and never logged; they are better set in the environment
than in a file or a flag, which other users of the machine may read.

## Connections to Postgres

`MISSIVE_DB_MAX_CONNECTIONS` is every connection one process opens, so Postgres's
`max_connections` must exceed the sum over the processes. A process first sets aside the
connections that live outside pools: one that LISTENs for the caches of the API and SMTP, and a
LISTEN and a registration each for the delivery worker and the webhook dispatcher. Of the rest,
the accept path's writers take a third (at most 16), the delivery worker's pool and the
dispatcher's a sixth each (at most 8), and the main pool (the API's and SMTP's reads, usage
counters, domain checks) the remainder. Each pool in use gets at least 2; a budget too small for
the roles a process runs stops the start, naming the least that is enough. The default, 64, gives
a process of every role a main pool of 27, writers 16, worker 8 and dispatcher 8, and 5 dedicated
connections.
";

/// docs/configuration.md: every setting by section, with its variables, file key, flag,
/// default and doc.
#[must_use]
pub fn configuration_reference() -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from(REFERENCE_INTRO);
    let mut section = "";
    for setting in SETTINGS {
        if setting.section != section {
            section = setting.section;
            let _ = write!(
                out,
                "\n## {} (`[{section}]`)\n\n\
                 | variable | file key | flag | default | meaning |\n\
                 | --- | --- | --- | --- | --- |\n",
                setting.section_heading()
            );
        }
        let mut env = setting.env.iter().map(|e| format!("`{e}`"));
        let first = env.next().unwrap_or_default();
        let rest: Vec<String> = env.collect();
        let variables = if rest.is_empty() {
            first
        } else {
            format!("{first} (also {})", rest.join(", "))
        };
        let default = setting
            .default
            .map_or_else(|| "unset".to_owned(), |d| format!("`{}`", cell(d)));
        let _ = writeln!(
            out,
            "| {variables} | `{}` | `{}` | {default} | {} |",
            setting.file_key(),
            setting.flag(),
            cell(&setting.description())
        );
    }
    out
}

//! Where values come from and how they are merged: built-in defaults < the file < the
//! environment < flags, each value kept with its origin so an error names where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, SETTINGS, Setting};

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    Default,
    /// The file, and the key as written there.
    File(PathBuf, String),
    Env(&'static str),
    Flag(String),
}

/// The raw inputs: an optional file, an environment lookup, and flags keyed by flat key
/// (`http_addr`).
pub struct Sources<'a> {
    pub file: Option<PathBuf>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub flags: BTreeMap<String, String>,
}

impl fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Flags may carry secrets (--admin-key), so only their names are shown.
        f.debug_struct("Sources")
            .field("file", &self.file)
            .field("flags", &self.flags.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a parser says about a value.
#[derive(Debug)]
pub(super) enum Problem {
    /// A required setting with no value from any source.
    Missing,
    Invalid(String),
}

/// The merged raw values, by setting, and where each came from.
pub(super) struct Values(BTreeMap<(&'static str, &'static str), (String, Origin)>);

impl Values {
    pub(super) fn parse<T>(
        &self,
        setting: &'static Setting,
        parse: impl FnOnce(Option<&str>) -> Result<T, Problem>,
    ) -> Result<T, ConfigError> {
        let found = self.0.get(&(setting.section, setting.name));
        parse(found.map(|(raw, _)| raw.as_str())).map_err(|problem| match problem {
            Problem::Missing => ConfigError::Missing(setting.env_name()),
            Problem::Invalid(message) => ConfigError::Invalid {
                name: match found.map(|(_, origin)| origin) {
                    Some(Origin::Env(name)) => (*name).to_owned(),
                    Some(Origin::Flag(flag)) => flag.clone(),
                    Some(Origin::File(path, key)) => format!("{key} in {}", path.display()),
                    Some(Origin::Default) | None => setting.file_key(),
                },
                message,
            },
        })
    }
}

/// A value every configuration has (the setting has a default).
pub(super) fn required<T>(
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> impl FnOnce(Option<&str>) -> Result<T, Problem> {
    move |raw| {
        raw.ok_or(Problem::Missing)
            .and_then(|r| parse(r).map_err(Problem::Invalid))
    }
}

/// A value that may be absent.
pub(super) fn optional<T>(
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> impl FnOnce(Option<&str>) -> Result<Option<T>, Problem> {
    move |raw| raw.map(parse).transpose().map_err(Problem::Invalid)
}

impl Config {
    /// The file used when none is named: `config/missive.toml`, if it exists.
    #[must_use]
    pub fn default_file() -> Option<PathBuf> {
        let path = PathBuf::from("config/missive.toml");
        path.exists().then_some(path)
    }

    /// Reads the process environment and the given (or default) file, then applies flags.
    ///
    /// # Errors
    /// Any [`ConfigError`]; the message names the setting.
    pub fn load(
        file: Option<PathBuf>,
        flags: BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_sources(&Sources {
            file: file.or_else(Self::default_file),
            env: &env,
            flags,
        })
    }

    /// Merges and parses all sources.
    ///
    /// # Errors
    /// Any [`ConfigError`]; the message names the setting.
    pub fn from_sources(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let file_values = match &sources.file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let mut values = BTreeMap::new();
        for (i, setting) in SETTINGS.iter().enumerate() {
            let flag = || {
                setting.flat_keys().find_map(|key| {
                    sources
                        .flags
                        .get(key.as_str())
                        .map(|v| (v.clone(), Origin::Flag(setting.flag())))
                })
            };
            let env = || {
                setting
                    .env
                    .iter()
                    .find_map(|name| (sources.env)(name).map(|v| (v, Origin::Env(name))))
            };
            let file = || file_values.get(&i).cloned();
            let default = || setting.default.map(|v| (v.to_owned(), Origin::Default));
            if let Some(found) = flag().or_else(env).or_else(file).or_else(default) {
                values.insert((setting.section, setting.name), found);
            }
        }
        for key in sources.flags.keys() {
            if !SETTINGS.iter().any(|s| s.flat_keys().any(|k| k == *key)) {
                return Err(ConfigError::Invalid {
                    name: format!("--{}", key.replace('_', "-")),
                    message: "not a setting".to_owned(),
                });
            }
        }
        let config = Self::parse_values(&Values(values))?;
        if config.smtp.tls_cert.is_some() != config.smtp.tls_key.is_some() {
            let present = if config.smtp.tls_cert.is_some() {
                "MISSIVE_TLS_CERT"
            } else {
                "MISSIVE_TLS_KEY"
            };
            return Err(ConfigError::Invalid {
                name: present.to_owned(),
                message: "MISSIVE_TLS_CERT and MISSIVE_TLS_KEY must be set together".to_owned(),
            });
        }
        Ok(config)
    }

    /// A configuration with every default and the given database, for tests and tools.
    #[must_use]
    pub fn with_database_url(url: &str) -> Self {
        let mut flags = BTreeMap::new();
        flags.insert("database_url".to_owned(), url.to_owned());
        let no_env = |_: &str| None;
        Self::from_sources(&Sources {
            file: None,
            env: &no_env,
            flags,
        })
        .expect("the built-in defaults are valid")
    }
}

/// The file's values by index into [`SETTINGS`], with the key as written.
fn read_file(path: &Path) -> Result<BTreeMap<usize, (String, Origin)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigError::FileSyntax {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
    let unknown = |key: String| ConfigError::UnknownKey {
        path: path.to_owned(),
        key,
    };
    let mut entries = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(inner) if SETTINGS.iter().any(|s| s.section == key) => {
                for (name, value) in inner {
                    let written = format!("{key}.{name}");
                    let index = SETTINGS
                        .iter()
                        .position(|s| s.section == key && s.name == name)
                        .ok_or_else(|| unknown(written.clone()))?;
                    entries.push((index, written, value));
                }
            }
            value => {
                let index = SETTINGS
                    .iter()
                    .position(|s| s.flat_keys().any(|k| k == key))
                    .ok_or_else(|| unknown(key.clone()))?;
                entries.push((index, key, value));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (index, written, value) in entries {
        let name = format!("{written} in {}", path.display());
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(ConfigError::Invalid {
                    name,
                    message: format!(
                        "expected a string, number or boolean, found {}",
                        other.type_str()
                    ),
                });
            }
        };
        let origin = Origin::File(path.to_owned(), written);
        if let Some((_, Origin::File(_, first))) = out.insert(index, (text, origin)) {
            return Err(ConfigError::Invalid {
                name,
                message: format!("set twice in the file (also as `{first}`)"),
            });
        }
    }
    Ok(out)
}

//! The command line's setting flags, one per declared setting: its flag name, help (the
//! declaration's doc, its environment variables and its default) and value all come from
//! [`SETTINGS`], so a new setting is a flag the moment it is declared.
//!
//! Two groups: the settings every command needs (the database, logging) are global flags, the
//! rest belong to `serve`.

use std::collections::BTreeMap;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::{SETTINGS, Setting};

/// The sections whose flags every command takes.
const GLOBAL_SECTIONS: &[&str] = &["database", "log"];

/// The flags given for one group of settings, keyed by [`Setting::flag_key`]; `GLOBAL` picks the
/// group ([`GLOBAL_SECTIONS`] or every other section).
#[derive(Clone, Debug, Default)]
pub struct SettingFlags<const GLOBAL: bool> {
    values: BTreeMap<String, String>,
}

impl<const GLOBAL: bool> SettingFlags<GLOBAL> {
    fn settings() -> impl Iterator<Item = &'static Setting> {
        SETTINGS
            .iter()
            .filter(|s| GLOBAL_SECTIONS.contains(&s.section) == GLOBAL)
    }

    /// The values given, by flag key (what [`super::Sources::flags`] takes).
    #[must_use]
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

/// The flag's help: the first sentence of its doc, then its variables and default; `--help`
/// shows the whole doc.
fn help(setting: &Setting) -> (String, String) {
    let description = setting.description();
    // The first sentence: up to a period before a capital ("e.g. info" goes on).
    let end = description
        .match_indices(". ")
        .find(|(i, _)| {
            description[i + 2..]
                .chars()
                .next()
                .is_some_and(char::is_uppercase)
        })
        .map_or(description.len(), |(i, _)| i);
    let first = description[..end].trim_end_matches('.');
    let env = setting.env.join(", ");
    let default = setting
        .default
        .map(|d| format!(" [default: {d}]"))
        .unwrap_or_default();
    (
        format!("{first} [env: {env}]{default}"),
        format!("{description}\n[env: {env}]{default}"),
    )
}

impl<const GLOBAL: bool> Args for SettingFlags<GLOBAL> {
    fn augment_args(mut cmd: Command) -> Command {
        for setting in Self::settings() {
            let (short, long) = help(setting);
            let key = setting.flag_key();
            let mut arg = Arg::new(key.clone())
                .long(key.replace('_', "-"))
                .value_name(key.to_uppercase())
                .help_heading(setting.section_heading())
                .help(short)
                .long_help(long)
                .global(GLOBAL)
                .action(ArgAction::Set);
            for alias in setting.flat_keys().skip(1) {
                arg = arg.alias(alias.replace('_', "-"));
            }
            if setting.is_switch() {
                // `--allow-unsafe-commits` alone means true; a value may still be given.
                arg = arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true");
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<const GLOBAL: bool> FromArgMatches for SettingFlags<GLOBAL> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let values = Self::settings()
            .filter_map(|setting| {
                let key = setting.flag_key();
                let value = matches.get_one::<String>(&key)?.clone();
                Some((key, value))
            })
            .collect();
        Ok(Self { values })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

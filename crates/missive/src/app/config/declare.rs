//! How a setting is declared: [`Setting`], what the rest of Missive learns about one, and the
//! `settings!` macro that turns the one declaration list in `config/mod.rs` into the section
//! structs, [`super::SETTINGS`] and the parser of the merged values.

/// One declared setting.
#[derive(Debug)]
pub struct Setting {
    /// The section (`http`, `smtp`, ...): the struct it lives in and its file table.
    pub section: &'static str,
    /// Its name within the section.
    pub name: &'static str,
    /// Environment variables, in priority order; the first is its name everywhere else.
    pub env: &'static [&'static str],
    /// The built-in default, as it would be written in the environment.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
}

impl Setting {
    /// The environment variable that names the setting.
    #[must_use]
    pub fn env_name(&self) -> &'static str {
        self.env[0]
    }

    /// `section.name`, as in the file's tables.
    #[must_use]
    pub fn file_key(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// The flat file keys (`http_addr`) and flag keys: each `MISSIVE_` variable without its
    /// prefix, lower-cased.
    pub(super) fn flat_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.env
            .iter()
            .filter_map(|env| env.strip_prefix("MISSIVE_"))
            .map(str::to_ascii_lowercase)
    }

    /// What the command line knows it by (`http_addr`): its first flat key.
    #[must_use]
    pub fn flag_key(&self) -> String {
        self.flat_keys()
            .next()
            .unwrap_or_else(|| self.file_key().replace('.', "_"))
    }

    /// The flag that sets it (`--http-addr`).
    #[must_use]
    pub fn flag(&self) -> String {
        format!("--{}", self.flag_key().replace('_', "-"))
    }

    /// Its doc as one paragraph.
    #[must_use]
    pub fn description(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Its section's doc as one line, without the final period: a heading.
    #[must_use]
    pub fn section_heading(&self) -> String {
        let doc = super::SECTIONS
            .iter()
            .find(|(name, _)| *name == self.section)
            .map_or("", |(_, doc)| doc)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        doc.trim_end_matches('.').to_owned()
    }

    /// Whether it is a switch (`true` or `false`).
    #[must_use]
    pub fn is_switch(&self) -> bool {
        matches!(self.default, Some("true" | "false"))
    }
}

macro_rules! settings {
    ($(
        $(#[doc = $section_doc:literal])+
        $section:ident: $Section:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $ty:ty = $default:expr, env [$($env:literal),+], $parse:expr;
            )+
        }
    )+) => {
        $(
            $(#[doc = $section_doc])+
            #[derive(Debug)]
            pub struct $Section {
                $( $(#[doc = $doc])+ pub $field: $ty, )+
            }
        )+

        /// The validated configuration, in sections.
        #[derive(Debug)]
        pub struct Config {
            $( $(#[doc = $section_doc])+ pub $section: $Section, )+
        }

        /// Every section's name and doc, in declaration order.
        pub static SECTIONS: &[(&str, &str)] = &[
            $( (stringify!($section), concat!($($section_doc, "\n"),+)), )+
        ];

        /// Every setting, in declaration order.
        pub static SETTINGS: &[Setting] = &[
            $($(
                Setting {
                    section: stringify!($section),
                    name: stringify!($field),
                    env: &[$($env),+],
                    default: $default,
                    doc: concat!($($doc, "\n"),+),
                },
            )+)+
        ];

        impl Config {
            /// Parses every setting from the merged values, in declaration order.
            fn parse_values(values: &Values) -> Result<Self, ConfigError> {
                let mut settings = SETTINGS.iter();
                let mut next = || settings.next().expect("one entry per declared setting");
                Ok(Self {
                    $(
                        $section: $Section {
                            $( $field: values.parse(next(), $parse)?, )+
                        },
                    )+
                })
            }
        }
    };
}
pub(super) use settings;

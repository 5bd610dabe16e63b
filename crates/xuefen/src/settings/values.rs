//! The value types of the configuration: how each key's text is parsed and
//! shown ([`Value`]), the redacted [`Secret`], where a value came from
//! ([`Source`]) and the errors that name the key. Kept apart from the key
//! list in `settings.rs`, which changes whenever a setting is added.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One configuration key, as documented.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// The name in the file and after `--set`.
    pub name: &'static str,
    /// Environment variables read for it; a later one wins over an earlier.
    pub env: &'static [&'static str],
    /// The default as written in a file; empty for "unset".
    pub default: &'static str,
    /// What it means (the doc comment of the field).
    pub doc: &'static str,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(p) => write!(f, "the configuration file {}", p.display()),
            Source::Env(v) => write!(f, "the environment variable {v}"),
            Source::Flag(s) => write!(f, "the flag {s}"),
        }
    }
}

/// An invalid configuration: which key, from where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("configuration key `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
    #[error("unknown configuration key `{key}` in {origin}; known keys: {known}")]
    Unknown { key: String, origin: Source, known: String },
    #[error("cannot read the configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// A secret value: parsed like any other, never shown by `Debug` or
/// `config check`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, with the request's `trace_id` among the span fields.
    Json,
}

/// A value a key can hold: parsed from the text of a file value, an
/// environment variable or a flag, and shown back in that same form.
pub(crate) trait Value: Sized {
    fn parse_value(raw: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

macro_rules! from_str_value {
    ($($t:ty),+) => {$(
        impl Value for $t {
            fn parse_value(raw: &str) -> Result<Self, String> {
                raw.trim().parse::<$t>().map_err(|e| format!("`{raw}` is not valid: {e}"))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )+};
}

from_str_value!(u32, u64, usize, SocketAddr);

impl Value for String {
    fn parse_value(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl Value for PathBuf {
    fn parse_value(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(PathBuf::from(raw))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl Value for Secret {
    fn parse_value(raw: &str) -> Result<Self, String> {
        Ok(Secret(raw.trim().to_owned()))
    }
    fn show(&self) -> String {
        "[redacted]".into()
    }
}

impl Value for LogFormat {
    fn parse_value(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not one of `text`, `json`")),
        }
    }
    fn show(&self) -> String {
        match self {
            LogFormat::Text => "text".into(),
            LogFormat::Json => "json".into(),
        }
    }
}

/// An empty value means unset.
impl<T: Value> Value for Option<T> {
    fn parse_value(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            Ok(None)
        } else {
            T::parse_value(raw).map(Some)
        }
    }
    fn show(&self) -> String {
        self.as_ref().map(Value::show).unwrap_or_default()
    }
}

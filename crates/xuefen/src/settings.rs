//! The one typed configuration of the service.
//!
//! Every setting is a key of [`Settings`], declared once below with its
//! type, default, environment variables and meaning. Values are layered,
//! later layers winning: compiled-in defaults, then a TOML file (`--config`
//! or `XUEFEN_CONFIG`), then environment variables (`XUEFEN_<KEY>`, plus the
//! conventional `DATABASE_URL` and `RUST_LOG`), then command-line flags
//! (`--listen`, …, or `--set key=value` for any key). Every value passes
//! through the same parser, so an invalid one fails at start with a message
//! naming the key and where the value came from. The README's configuration
//! table is checked against [`KEYS`] by a test, and `xuefen config example`
//! prints a file generated from it, so the documentation cannot drift.
//!
//! This file is the key list and the layering; the value types (how a key's
//! text is parsed and shown, secrets, sources, errors) are in
//! `settings/values.rs`, and the tests in `settings/tests.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod values;

pub(crate) use values::{ConfigError, Key, LogFormat, Secret, Source, Value};

/// Declares [`Settings`], [`KEYS`] and the per-key parser from one list.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:literal, env [$($env:literal),+];
    )+) => {
        /// Every setting of the service (see the module documentation).
        #[derive(Debug, Clone)]
        pub(crate) struct Settings {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        /// Every key, in the order of the README table.
        pub(crate) const KEYS: &[Key] = &[
            $( Key {
                name: stringify!($name),
                env: &[$($env),+],
                default: $default,
                doc: concat!($($doc),+),
            }, )+
        ];

        impl Settings {
            /// Sets `key` from its text form.
            fn set_raw(&mut self, key: &str, raw: &str) -> Result<(), SetError> {
                match key {
                    $( stringify!($name) => {
                        self.$name = <$ty as Value>::parse_value(raw).map_err(SetError::Invalid)?;
                        Ok(())
                    } )+
                    _ => Err(SetError::Unknown),
                }
            }

            /// The text form of `key`'s value (secrets redacted).
            pub(crate) fn show(&self, key: &str) -> Option<String> {
                match key {
                    $( stringify!($name) => Some(Value::show(&self.$name)), )+
                    _ => None,
                }
            }

            /// The compiled-in defaults.
            pub(crate) fn defaults() -> Self {
                Self {
                    $( $name: match <$ty as Value>::parse_value($default) {
                        Ok(v) => v,
                        Err(e) => panic!("the default of {} does not parse: {e}", stringify!($name)),
                    }, )+
                }
            }
        }
    };
}

enum SetError {
    Unknown,
    Invalid(String),
}

settings! {
    /// `postgres://…` (production) or `sqlite://…` URL of the store; unset means an SQLite file `xuefen.db` in `data_dir`.
    database_url: Option<Secret> = "", env ["DATABASE_URL", "XUEFEN_DATABASE_URL"];
    /// `postgres://…` URL of a replica (or a balancer over replicas) serving transcripts, statistics and the deposit feed as of its replay point; unset reads them from `database_url`. SQLite ignores it.
    database_read_url: Option<Secret> = "", env ["XUEFEN_DATABASE_READ_URL"];
    /// Where the service keeps local files: the embedded database and the generated identity key.
    data_dir: PathBuf = ".data", env ["XUEFEN_DATA_DIR"];
    /// Most connections in the database pool (SQLite uses at most 8).
    pool_connections_max: u32 = "16", env ["XUEFEN_POOL_CONNECTIONS_MAX"];
    /// Seconds to wait for a pooled PostgreSQL connection before a request fails with 503.
    db_acquire_timeout_seconds: u64 = "10", env ["XUEFEN_DB_ACQUIRE_TIMEOUT_SECONDS"];
    /// Address the API listens on.
    listen: SocketAddr = "127.0.0.1:8080", env ["XUEFEN_LISTEN"];
    /// Address of a separate listener for `/metrics`; unset serves `/metrics` on `listen`.
    metrics_listen: Option<SocketAddr> = "", env ["XUEFEN_METRICS_LISTEN"];
    /// Hex HMAC key (at least 32 bytes) for identity document hashes; unset means one generated once into `data_dir`. Back it up.
    identity_key: Option<Secret> = "", env ["XUEFEN_IDENTITY_KEY"];
    /// Keys that seal learners' names at rest (XChaCha20-Poly1305): comma-separated `ID:HEX` (32 bytes each); the first seals, every one opens, and a bare `k0` is the key derived from `identity_key`. Unset means `k0` alone. To rotate, put the new key first, run `xuefen names reseal`, then drop the old ones.
    name_keys: Option<Secret> = "", env ["XUEFEN_NAME_KEYS"];
    /// Most events in one `POST /v1/events`.
    batch_events_max: usize = "1000", env ["XUEFEN_BATCH_EVENTS_MAX"];
    /// Largest request body in bytes.
    body_bytes_max: usize = "2097152", env ["XUEFEN_BODY_BYTES_MAX"];
    /// Milliseconds a client may take to send a request's headers, from connecting or from its previous response (so also how long an idle keep-alive connection stays open).
    header_read_timeout_ms: u64 = "30000", env ["XUEFEN_HEADER_READ_TIMEOUT_MS"];
    /// Milliseconds a request body may take to arrive in full after its headers; past it the answer is a 408 problem.
    body_read_timeout_ms: u64 = "30000", env ["XUEFEN_BODY_READ_TIMEOUT_MS"];
    /// Milliseconds from a request's headers to its answer; past it the answer is a 503 problem with `Retry-After`.
    request_timeout_ms: u64 = "60000", env ["XUEFEN_REQUEST_TIMEOUT_MS"];
    /// Most client connections open at once (also kept below the descriptor limit); past it the oldest idle connection is closed.
    connections_max: usize = "4096", env ["XUEFEN_CONNECTIONS_MAX"];
    /// Requests per second one API key may make, sustained (0: no limit); past it the answer is a 429 problem with `Retry-After`.
    rate_limit_per_second: u32 = "20000", env ["XUEFEN_RATE_LIMIT_PER_SECOND"];
    /// Requests one API key may make in a burst above its sustained rate.
    rate_limit_burst: u32 = "40000", env ["XUEFEN_RATE_LIMIT_BURST"];
    /// Most events one group-commit transaction writes.
    group_events_max: usize = "4000", env ["XUEFEN_GROUP_EVENTS_MAX"];
    /// Group-commit transactions in flight at once, per shard.
    commits_in_flight: usize = "1", env ["XUEFEN_COMMITS_IN_FLIGHT"];
    /// Chain shards with a group committer each (PostgreSQL; SQLite uses one).
    commit_shards: usize = "2", env ["XUEFEN_COMMIT_SHARDS"];
    /// Requests waiting for a group commit before new ones wait to be queued.
    queue_requests_max: usize = "16384", env ["XUEFEN_QUEUE_REQUESTS_MAX"];
    /// Seconds an authenticated API key is remembered (0: look it up on every request); a revocation through another instance takes effect within it.
    key_cache_seconds: u64 = "1", env ["XUEFEN_KEY_CACHE_SECONDS"];
    /// Hex Ed25519 secret key (32 bytes) that signs checkpoints; unset means one generated once into `data_dir`. Back it up.
    checkpoint_key: Option<Secret> = "", env ["XUEFEN_CHECKPOINT_KEY"];
    /// Milliseconds between checkpoints; one is made only when a chain head moved.
    checkpoint_interval_ms: u64 = "1000", env ["XUEFEN_CHECKPOINT_INTERVAL_MS"];
    /// Most entries of one chain one checkpoint seals; a backlog is sealed over several checkpoints.
    checkpoint_chain_entries_max: u64 = "10000", env ["XUEFEN_CHECKPOINT_CHAIN_ENTRIES_MAX"];
    /// The log's origin: the first line of every checkpoint and the name of the checkpoint key (C2SP signed note; no spaces or `+`).
    log_origin: String = "xuefen.invalid/ledger", env ["XUEFEN_LOG_ORIGIN"];
    /// Witnesses that cosign the log's checkpoints (C2SP tlog-witness): comma-separated `NAME=KEY@URL` (KEY the witness's hex Ed25519 public key or verifier key, URL its submission prefix). Set, the checkpoint served and the deposit feed are the latest one a witness cosigned.
    witnesses: String = "", env ["XUEFEN_WITNESSES"];
    /// Seconds between rounds of sending the latest checkpoint to the witnesses.
    witness_interval_seconds: u64 = "300", env ["XUEFEN_WITNESS_INTERVAL_SECONDS"];
    /// Seconds to finish in-flight requests and group commits after SIGTERM/SIGINT before exiting 1.
    shutdown_grace_seconds: u64 = "30", env ["XUEFEN_SHUTDOWN_GRACE_SECONDS"];
    /// The `iss` a learner's single sign-on token must carry.
    sso_issuer: String = "xuefen-dev-sso", env ["XUEFEN_SSO_ISSUER"];
    /// The `aud` a learner's single sign-on token must carry.
    sso_audience: String = "xuefen", env ["XUEFEN_SSO_AUDIENCE"];
    /// How learner tokens are signed: `HS256` (a shared secret, for development), `RS256` or `ES256` (the SSO's public key).
    sso_algorithm: String = "HS256", env ["XUEFEN_SSO_ALGORITHM"];
    /// HS256: the secret as hex (at least 32 bytes); RS256/ES256: the SSO's PEM public key. Unset with HS256 means a development secret generated once into `data_dir`, with which `xuefen dev-token` signs.
    sso_key: Option<Secret> = "", env ["XUEFEN_SSO_KEY"];
    /// A file holding `sso_key` instead (e.g. the SSO's PEM public key).
    sso_key_file: Option<PathBuf> = "", env ["XUEFEN_SSO_KEY_FILE"];
    /// Seconds a learner token's `exp` may lie in the past and still be accepted (clock skew between the single sign-on and this service).
    sso_leeway_seconds: u64 = "5", env ["XUEFEN_SSO_LEEWAY_SECONDS"];
    /// The claim of a learner token that names the person.
    sso_subject_claim: String = "sub", env ["XUEFEN_SSO_SUBJECT_CLAIM"];
    /// What that claim holds: `learner_id` (the unified id `lrn_…`) or `sso_id` (the SSO's own id of the person, bound to a learner on the first login that carries `sso_document_claim`).
    sso_subject_kind: String = "learner_id", env ["XUEFEN_SSO_SUBJECT_KIND"];
    /// With `sso_subject_kind = sso_id`: the claim holding the person's real-name-verified identity document (a resident ID number, or `{"kind", "number"}`), which binds the SSO's id to the learner registered with it.
    sso_document_claim: Option<String> = "", env ["XUEFEN_SSO_DOCUMENT_CLAIM"];
    /// Whole credits a learner needs in a calendar year to count towards the agreement's "each with at least 20 credits".
    stats_credits_each: u64 = "20", env ["XUEFEN_STATS_CREDITS_EACH"];
    /// Whole credits earned on one site in a calendar year that make a learning star (学习之星) of that site.
    learning_star_credits: u64 = "30", env ["XUEFEN_LEARNING_STAR_CREDITS"];
    /// New registrations/activations the agreement asks of a site each year.
    agreement_registrations_min: u64 = "1000", env ["XUEFEN_AGREEMENT_REGISTRATIONS_MIN"];
    /// Learning-star awards the agreement asks of a site each year.
    agreement_learning_stars_min: u64 = "50", env ["XUEFEN_AGREEMENT_LEARNING_STARS_MIN"];
    /// The xAPI version (`2.0.0` or `1.0.3`) the xAPI door names in `X-Experience-API-Version` on answers to requests that name none (`/xapi/about`, a missing or unsupported header, missing credentials); pin `1.0.3` for plug-ins that read it.
    xapi_default_version: String = "2.0.0", env ["XUEFEN_XAPI_DEFAULT_VERSION"];
    /// Log lines on stderr: `text` or `json` (one object a line, with `trace_id`).
    log_format: LogFormat = "text", env ["XUEFEN_LOG_FORMAT"];
    /// Log filter in `tracing` `EnvFilter` syntax.
    log_filter: String = "info,sqlx=warn,tower_http=warn", env ["RUST_LOG", "XUEFEN_LOG_FILTER"];
}

/// Limits on numeric keys: (key, least, most). Values outside are a
/// configuration error naming the key.
const RANGES: &[(&str, u64, u64)] = &[
    ("pool_connections_max", 1, 1_000),
    ("db_acquire_timeout_seconds", 1, 600),
    ("batch_events_max", 1, 100_000),
    ("body_bytes_max", 1_024, 256 * 1024 * 1024),
    ("header_read_timeout_ms", 100, 3_600_000),
    ("body_read_timeout_ms", 100, 3_600_000),
    ("request_timeout_ms", 100, 3_600_000),
    ("connections_max", 1, 1_000_000),
    ("rate_limit_per_second", 0, 100_000_000),
    ("rate_limit_burst", 1, 100_000_000),
    ("group_events_max", 1, 1_000_000),
    ("commits_in_flight", 1, 64),
    ("commit_shards", 1, 64),
    ("key_cache_seconds", 0, 3_600),
    ("queue_requests_max", 1, 1_000_000),
    ("checkpoint_interval_ms", 10, 3_600_000),
    ("checkpoint_chain_entries_max", 1, 1_000_000),
    ("witness_interval_seconds", 1, 86_400),
    ("shutdown_grace_seconds", 1, 3_600),
    ("stats_credits_each", 1, 1_000_000),
    ("learning_star_credits", 1, 1_000_000),
    ("agreement_registrations_min", 0, 100_000_000),
    ("agreement_learning_stars_min", 0, 100_000_000),
];

/// Values given on the command line, by key.
pub(crate) type Flags = Vec<(String, String, String)>;

impl Settings {
    /// Layers defaults, the file, the environment and `flags` (each
    /// `(key, value, flag as typed)`), then validates.
    pub(crate) fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(String, String, String)],
    ) -> Result<Self, ConfigError> {
        let mut s = Self::defaults();
        let mut sources = HashMap::new();
        if let Some(path) = file {
            s.apply_file(path, &mut sources)?;
        }
        for key in KEYS {
            for var in key.env {
                if let Some(raw) = env(var) {
                    s.set(key.name, &raw, Source::Env((*var).to_owned()), &mut sources)?;
                }
            }
        }
        for (key, raw, flag) in flags {
            s.set(key, raw, Source::Flag(flag.clone()), &mut sources)?;
        }
        s.validate(&sources)?;
        Ok(s)
    }

    fn set(
        &mut self,
        key: &str,
        raw: &str,
        source: Source,
        sources: &mut HashMap<String, Source>,
    ) -> Result<(), ConfigError> {
        sources.insert(key.to_owned(), source.clone());
        self.set_raw(key, raw).map_err(|e| match e {
            SetError::Unknown => ConfigError::Unknown {
                key: key.to_owned(),
                origin: source,
                known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            },
            SetError::Invalid(message) => ConfigError::Invalid {
                key: key.to_owned(),
                origin: source,
                message,
            },
        })
    }

    fn apply_file(&mut self, path: &Path, sources: &mut HashMap<String, Source>) -> Result<(), ConfigError> {
        let file_err = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_err(e.to_string()))?;
        for (key, value) in table {
            let source = Source::File(path.to_owned());
            let raw = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Invalid {
                        key,
                        origin: source,
                        message: format!("expected a string or an integer, found {}", other.type_str()),
                    });
                }
            };
            self.set(&key, &raw, source, sources)?;
        }
        Ok(())
    }

    /// Checks what a type alone cannot: ranges, URL schemes, key lengths,
    /// the log filter's syntax.
    fn validate(&self, sources: &HashMap<String, Source>) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            origin: sources.get(key).cloned().unwrap_or(Source::Default),
            message,
        };
        for (key, least, most) in RANGES {
            let value: u64 = self
                .show(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid(key, "is not a number".into()))?;
            if value < *least || value > *most {
                return Err(invalid(key, format!("{value} is outside {least}..={most}")));
            }
        }
        if let Some(url) = &self.database_url {
            let url = url.expose();
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(invalid(
                    "database_url",
                    "must start with postgres://, postgresql:// or sqlite:".into(),
                ));
            }
        }
        if !["2.0.0", "1.0.3"].contains(&self.xapi_default_version.as_str()) {
            return Err(invalid(
                "xapi_default_version",
                format!("`{}` is not one of 2.0.0, 1.0.3", self.xapi_default_version),
            ));
        }
        if let Some(url) = &self.database_read_url {
            let url = url.expose();
            if !["postgres://", "postgresql://"].iter().any(|p| url.starts_with(p)) {
                return Err(invalid(
                    "database_read_url",
                    "must start with postgres:// or postgresql://".into(),
                ));
            }
        }
        if let Some(key) = &self.identity_key {
            let bytes = hex::decode(key.expose()).map_err(|e| invalid("identity_key", format!("is not hex: {e}")))?;
            if bytes.len() < 32 {
                return Err(invalid(
                    "identity_key",
                    format!("holds {} bytes; at least 32 (64 hex digits) are needed", bytes.len()),
                ));
            }
        }
        if let Some(keys) = &self.name_keys {
            xuefen_core::names::NameKeys::parse_with_derived(keys.expose(), b"syntax only")
                .map_err(|m| invalid("name_keys", m))?;
        }
        if let Some(key) = &self.checkpoint_key {
            let bytes = hex::decode(key.expose()).map_err(|e| invalid("checkpoint_key", format!("is not hex: {e}")))?;
            if bytes.len() != 32 {
                return Err(invalid(
                    "checkpoint_key",
                    format!("holds {} bytes; exactly 32 (64 hex digits) are needed", bytes.len()),
                ));
            }
        }
        crate::witnessing::parse_targets(&self.witnesses).map_err(|m| invalid("witnesses", m))?;
        // Port 0 asks the kernel for a free port, so two of them never clash.
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(invalid("metrics_listen", "must differ from `listen`".into()));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_filter).map_err(|e| invalid("log_filter", e.to_string()))?;
        Ok(())
    }

    /// The settings as a TOML file (secrets redacted, unset keys commented out).
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        for key in KEYS {
            let value = self.show(key.name).unwrap_or_default();
            if value.is_empty() {
                out.push_str(&format!("# {} = (unset)\n", key.name));
            } else {
                out.push_str(&format!("{} = {}\n", key.name, toml_literal(key.name, &value)));
            }
        }
        out
    }
}

/// `value` as a TOML literal: numbers bare, everything else quoted.
fn toml_literal(key: &str, value: &str) -> String {
    let numeric = RANGES.iter().any(|(k, _, _)| *k == key);
    if numeric {
        value.to_owned()
    } else {
        toml::Value::String(value.to_owned()).to_string()
    }
}

/// The example configuration file: every key with its meaning, defaults
/// commented out.
pub(crate) fn example() -> String {
    let mut out = String::from(
        "# Xuefen configuration (TOML). Give it with --config FILE or XUEFEN_CONFIG=FILE.\n\
         # Environment variables override the file; flags override both.\n",
    );
    for key in KEYS {
        out.push('\n');
        for line in key.doc.trim().lines() {
            out.push_str(&format!("# {}\n", line.trim()));
        }
        out.push_str(&format!("# environment: {}\n", key.env.join(", ")));
        if key.default.is_empty() {
            out.push_str(&format!("# {} = \"\"\n", key.name));
        } else {
            out.push_str(&format!("# {} = {}\n", key.name, toml_literal(key.name, key.default)));
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! xAPI (Experience API 1.0.3 / 2.0.0) statements: validation as the
//! specification requires, the exact bytes the store keeps, and what a
//! statement means for the ledger.
//!
//! The HTTP door (`xuefen-api`) hands each received statement to
//! [`prepare`] with what the LRS sets itself (stored time, authority, an id
//! when the statement has none). Out comes a [`Prepared`] statement: the
//! JSON to store — every member exactly as received, in the order received,
//! followed by the members the LRS sets — a content fingerprint for the
//! xAPI idempotency rule (same id and same content is a re-send, same id and
//! other content a conflict), and the indexed columns of the statement
//! query. Pure: no clock, no randomness, no I/O.

use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use self::actor::agent;
use self::actor::group;
use self::check::object;
use self::check::timestamp;
use self::check::uuid;
use self::statement::authority;
use self::statement::statement;
use crate::event::Millis;
use crate::limits::{STATEMENT_BYTES_MAX, STATEMENT_DEPTH_MAX};

mod activity;
mod actor;
pub mod attachments;
mod check;
mod context;
pub mod documents;
pub mod format;
pub mod related;
mod result;
mod statement;
#[cfg(test)]
mod tests;

pub use check::{check_iri, check_uuid, is_sha1_hex};

/// The verb of a voiding statement.
pub const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
/// The verb of a completion.
pub const VERB_COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
/// The verb of a passed assessment.
pub const VERB_PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";

/// A statement that breaks a rule of the specification: which rule, where
/// (a JSON-pointer-like path), and a sentence for the LMS developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct StatementError {
    /// A stable code naming the rule, e.g. `agent_ifi_count`.
    pub rule: &'static str,
    pub field: String,
    pub detail: String,
}

impl StatementError {
    pub fn new(rule: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            rule,
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// The same error with `prefix/` put before the field.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}/{}", self.field)
        };
        self
    }
}

type R<T> = Result<T, StatementError>;

/// The xAPI version a request speaks (`X-Experience-API-Version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// 1.0.x, as the header gave it.
    V1(String),
    /// 2.0.0.
    V2,
}

impl Version {
    /// Every version the door answers to, newest first (`/xapi/about`).
    pub const SUPPORTED: [&'static str; 5] = ["2.0.0", "1.0.3", "1.0.2", "1.0.1", "1.0.0"];

    /// Parses the header: `1.0`, `1.0.<n>` or `2.0.0`.
    pub fn parse(header: &str) -> Option<Self> {
        if header == "2.0.0" {
            return Some(Self::V2);
        }
        let patch_ok = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        match header.strip_prefix("1.0") {
            Some("") => Some(Self::V1(header.to_owned())),
            Some(rest) => rest
                .strip_prefix('.')
                .filter(|p| patch_ok(p))
                .map(|_| Self::V1(header.to_owned())),
            None => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::V1(h) => h,
            Self::V2 => "2.0.0",
        }
    }

    /// The `version` the LRS writes into a statement that has none.
    pub fn statement_version(&self) -> &'static str {
        match self {
            Self::V1(_) => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }
}

/// An inverse functional identifier: what makes an Agent (or an identified
/// Group) the same one across statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ifi {
    Mbox(String),
    MboxSha1(String),
    OpenId(String),
    Account { home_page: String, name: String },
}

impl Ifi {
    /// The indexed key of the agent: the statement query's `agent` filter
    /// matches on it.
    pub fn key(&self) -> String {
        match self {
            Ifi::Mbox(m) => format!("mbox|{}", m.to_ascii_lowercase()),
            Ifi::MboxSha1(s) => format!("mbox_sha1sum|{}", s.to_ascii_lowercase()),
            Ifi::OpenId(o) => format!("openid|{o}"),
            Ifi::Account { home_page, name } => format!("account|{home_page}|{name}"),
        }
    }
}

/// What the LRS adds to a statement it stores.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    pub version: &'a Version,
    /// The `authority`: the site, as an Agent (JSON).
    pub authority: &'a str,
    pub stored: Millis,
    /// The id to give a statement that arrives without one (a fresh UUID).
    pub id_if_absent: &'a str,
}

/// A valid statement, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The statement id, lower case (the store's key and the ledger's event id).
    pub id: String,
    /// The JSON kept and returned: the received members as received, then
    /// the LRS's (`id` if absent, `timestamp` if absent, `stored`,
    /// `authority`, `version` if absent).
    pub json: String,
    /// SHA-256 (hex) of the received content in canonical form, `stored`,
    /// `authority` and `version` left out: equal for a re-send, different
    /// for another statement under the same id.
    pub fingerprint: String,
    pub verb: String,
    /// The object's id when the object is an Activity.
    pub activity: Option<String>,
    /// The actor's IFI, when the actor is an Agent or an identified Group.
    pub actor: Option<Ifi>,
    /// `context.registration`, lower case.
    pub registration: Option<String>,
    /// The statement a voiding statement voids, lower case.
    pub voids: Option<String>,
    /// `timestamp`, or the stored time when absent.
    pub timestamp: Millis,
    /// `result.score` as a percentage (0 to 100, two decimals, rounded
    /// down), from `scaled` or else `raw` within `min`..`max`.
    pub score_percent: Option<Decimal>,
    /// The object as received (JSON) when it is an Activity: what the
    /// Activities resource folds into its canonical Activity Object.
    pub activity_object: Option<String>,
    /// The agent keys the stored statement relates to ([`related::related`]).
    pub related_agents: Vec<String>,
    /// The activity ids the stored statement relates to.
    pub related_activities: Vec<String>,
}

impl Prepared {
    /// The actor's agent key (see [`Ifi::key`]).
    pub fn agent_key(&self) -> Option<String> {
        self.actor.as_ref().map(Ifi::key)
    }

    /// Whether the verb is one that can earn credits.
    pub fn is_creditable_verb(&self) -> bool {
        self.verb == VERB_COMPLETED || self.verb == VERB_PASSED
    }
}

/// The top-level members of a statement in the order received, each value
/// as its raw text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("the member `{k}` appears twice")));
                    }
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Validates one received statement and prepares what the store keeps.
pub fn prepare(raw: &str, stamp: &Stamp<'_>) -> R<Prepared> {
    let (members, value) = parse_received(raw)?;
    let m = object(&value, "")?;
    let facts = statement(m, false, stamp.version)?;
    let id = statement_id(m, stamp)?;
    if let Some(v) = m.get("version") {
        check_version(v)?;
    }
    if let Some(v) = m.get("stored") {
        timestamp(v, "stored")?;
    }
    if let Some(v) = m.get("authority") {
        authority(v, "authority")?;
    }
    let timestamp_ms = match m.get("timestamp") {
        Some(v) => timestamp(v, "timestamp")?,
        None => stamp.stored,
    };
    Ok(prepared(&members, m, id, timestamp_ms, facts, stamp))
}

/// A received statement read twice, as its members in order (each as raw text) and as a value,
/// within the size and depth allowed.
fn parse_received(raw: &str) -> R<(Members, Value)> {
    if raw.len() > STATEMENT_BYTES_MAX {
        return Err(StatementError::new(
            "statement_too_large",
            "",
            format!(
                "the statement has {} bytes; at most {STATEMENT_BYTES_MAX} are allowed",
                raw.len()
            ),
        ));
    }
    let members: Members = serde_json::from_str(raw)
        .map_err(|e| StatementError::new("statement_not_object", "", format!("a statement is a JSON object: {e}")))?;
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| StatementError::new("statement_not_object", "", format!("a statement is a JSON object: {e}")))?;
    if depth(&value) > STATEMENT_DEPTH_MAX {
        return Err(StatementError::new(
            "statement_too_deep",
            "",
            format!("the statement nests deeper than {STATEMENT_DEPTH_MAX} levels"),
        ));
    }
    Ok((members, value))
}

/// The statement's `id`, or the one the stamp gives a statement without one; in lower case.
fn statement_id(m: &Map<String, Value>, stamp: &Stamp<'_>) -> R<String> {
    match m.get("id") {
        Some(v) => uuid(v, "id"),
        None => uuid(&Value::String(stamp.id_if_absent.to_owned()), "id"),
    }
}

/// A statement's `version`: a string naming a supported xAPI version (1.0.x or 2.0.x).
fn check_version(v: &Value) -> R<()> {
    let text = v
        .as_str()
        .ok_or_else(|| StatementError::new("version_invalid", "version", "must be a string"))?;
    if Version::parse(text).is_none() && !text.starts_with("1.0.") && !text.starts_with("2.0.") {
        return Err(StatementError::new(
            "version_invalid",
            "version",
            format!("`{text}` is not a supported xAPI version (1.0.x or 2.0.x)"),
        ));
    }
    Ok(())
}

/// What the store keeps of a checked statement `m` (received as `members`): its stored JSON,
/// fingerprint and what it relates to, beside the facts its checks learnt.
fn prepared(
    members: &Members,
    m: &Map<String, Value>,
    id: String,
    timestamp_ms: Millis,
    facts: statement::Facts,
    stamp: &Stamp<'_>,
) -> Prepared {
    // A single Activity under a contextActivities key is stored (and so returned) as an array of
    // one, as the specification requires; every other member keeps its received bytes.
    let normalised = normalised_context(m);
    let m = normalised.as_ref().unwrap_or(m);
    let json = stored_json(members, m, normalised.is_some(), &id, stamp);
    let fingerprint = fingerprint(m, &id);
    // What the stored statement relates to: its members, with the
    // authority the LRS stores it under.
    let authority: Option<Value> = serde_json::from_str(stamp.authority).ok();
    let (related_agents, related_activities) = related::related_of_members(m, authority.as_ref());
    let activity_object = facts
        .activity
        .as_ref()
        .and_then(|_| members.0.iter().find(|(k, _)| k == "object"))
        .map(|(_, v)| v.get().to_owned());
    Prepared {
        id,
        json,
        fingerprint,
        verb: facts.verb,
        activity: facts.activity,
        actor: facts.actor,
        registration: facts.registration,
        voids: facts.voids,
        timestamp: timestamp_ms,
        score_percent: facts.score_percent,
        activity_object,
        related_agents,
        related_activities,
    }
}

/// The key of an agent given as JSON (the statement query's `agent`).
pub fn agent_key(json: &str) -> R<String> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| StatementError::new("agent_invalid", "agent", format!("is not JSON: {e}")))?;
    let ifi = match object(&v, "agent")?.get("objectType").and_then(Value::as_str) {
        Some("Group") => group(&v, "agent")?,
        _ => Some(agent(&v, "agent")?),
    };
    ifi.map(|i| i.key())
        .ok_or_else(|| StatementError::new("agent_invalid", "agent", "an anonymous group cannot be a filter"))
}

/// The statement with each single-object `contextActivities` value wrapped in an array (also in
/// a SubStatement's context), or `None` when nothing needs it.
fn normalised_context(m: &Map<String, Value>) -> Option<Map<String, Value>> {
    fn wrap(ctx: Option<&mut Value>) -> bool {
        let mut changed = false;
        if let Some(Value::Object(ca)) = ctx.and_then(|c| c.get_mut("contextActivities")) {
            for v in ca.values_mut() {
                if !v.is_array() {
                    *v = Value::Array(vec![v.take()]);
                    changed = true;
                }
            }
        }
        changed
    }
    let single = |ctx: Option<&Value>| {
        ctx.and_then(|c| c.get("contextActivities"))
            .and_then(Value::as_object)
            .is_some_and(|ca| ca.values().any(|v| !v.is_array()))
    };
    let sub = m.get("object").and_then(|o| o.get("context"));
    if !single(m.get("context")) && !single(sub) {
        return None;
    }
    let mut n = m.clone();
    let a = wrap(n.get_mut("context"));
    let b = wrap(n.get_mut("object").and_then(|o| o.get_mut("context")));
    (a || b).then_some(n)
}

fn stored_json(members: &Members, m: &Map<String, Value>, normalised: bool, id: &str, stamp: &Stamp<'_>) -> String {
    let lrs_set = ["stored", "authority"];
    let mut out = String::with_capacity(
        members
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + 256,
    );
    out.push('{');
    let mut first = true;
    let mut member = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(k.to_owned()).to_string());
        out.push(':');
        out.push_str(v);
    };
    for (k, v) in &members.0 {
        if lrs_set.contains(&k.as_str()) {
            continue;
        }
        match m.get(k.as_str()) {
            Some(n) if normalised && (k == "context" || k == "object") => member(&mut out, k, &n.to_string()),
            _ => member(&mut out, k, v.get()),
        }
    }
    if !m.contains_key("id") {
        member(&mut out, "id", &Value::String(id.to_owned()).to_string());
    }
    let stored = Value::String(stamp.stored.to_rfc3339()).to_string();
    if !m.contains_key("timestamp") {
        member(&mut out, "timestamp", &stored);
    }
    member(&mut out, "stored", &stored);
    member(&mut out, "authority", stamp.authority);
    if !m.contains_key("version") {
        member(
            &mut out,
            "version",
            &Value::String(stamp.version.statement_version().to_owned()).to_string(),
        );
    }
    out.push('}');
    out
}

/// SHA-256 of the statement's canonical form (keys sorted, no
/// whitespace), with the id in lower case and the LRS-set members left out.
fn fingerprint(m: &Map<String, Value>, id: &str) -> String {
    let mut text = String::new();
    text.push('{');
    let mut keys: Vec<&String> = m
        .keys()
        .filter(|k| !["stored", "authority", "version", "id"].contains(&k.as_str()))
        .collect();
    keys.sort();
    let _ = write!(text, "\"id\":{}", Value::String(id.to_owned()));
    for k in keys {
        text.push(',');
        canonical(&Value::String(k.clone()), &mut text);
        text.push(':');
        canonical(&m[k.as_str()], &mut text);
    }
    text.push('}');
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

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
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::Millis;
use crate::limits::{STATEMENT_BYTES_MAX, STATEMENT_DEPTH_MAX};

pub mod attachments;
pub mod documents;
pub mod format;
pub mod related;

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
    let m = object(&value, "")?;
    let facts = statement(m, false, stamp.version)?;
    let id = match m.get("id") {
        Some(v) => uuid(v, "id")?,
        None => uuid(&Value::String(stamp.id_if_absent.to_owned()), "id")?,
    };
    if let Some(v) = m.get("version") {
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

    // A single Activity under a contextActivities key is stored (and so returned) as an array of
    // one, as the specification requires; every other member keeps its received bytes.
    let normalised = normalised_context(m);
    let m = normalised.as_ref().unwrap_or(m);
    let json = stored_json(&members, m, normalised.is_some(), &id, stamp);
    let fingerprint = fingerprint(m, &id);
    Ok(Prepared {
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
    })
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

/// What the checks of a statement (or sub-statement) learn on the way.
struct Facts {
    verb: String,
    activity: Option<String>,
    actor: Option<Ifi>,
    registration: Option<String>,
    voids: Option<String>,
    score_percent: Option<Decimal>,
}

const STATEMENT_KEYS: [&str; 11] = [
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
];
const SUB_STATEMENT_KEYS: [&str; 8] = [
    "objectType",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "attachments",
];

fn statement(m: &Map<String, Value>, sub: bool, version: &Version) -> R<Facts> {
    known_keys(m, if sub { &SUB_STATEMENT_KEYS } else { &STATEMENT_KEYS }, "")?;
    let actor_v = m
        .get("actor")
        .ok_or_else(|| StatementError::new("actor_required", "actor", "a statement needs an actor"))?;
    let actor = actor(actor_v, "actor")?;
    let verb_v = m
        .get("verb")
        .ok_or_else(|| StatementError::new("verb_required", "verb", "a statement needs a verb"))?;
    let verb = verb(verb_v)?;
    let object_v = m
        .get("object")
        .ok_or_else(|| StatementError::new("object_required", "object", "a statement needs an object"))?;
    let (kind, activity, target) = object(object_v, "object").and_then(|o| statement_object(o, sub, version))?;
    if verb == VERB_VOIDED && kind != "StatementRef" {
        return Err(StatementError::new(
            "voiding_object_not_statement_ref",
            "object/objectType",
            "a voiding statement's object must be a StatementRef to the statement it voids",
        ));
    }
    let score_percent = match m.get("result") {
        Some(r) => result(r)?,
        None => None,
    };
    let registration = match m.get("context") {
        Some(c) => context(c, kind == "Activity", version)?,
        None => None,
    };
    if sub && let Some(t) = m.get("timestamp") {
        timestamp(t, "timestamp")?;
    }
    if let Some(a) = m.get("attachments") {
        attachments(a)?;
    }
    Ok(Facts {
        voids: (verb == VERB_VOIDED).then_some(target).flatten(),
        verb,
        activity,
        actor,
        registration,
        score_percent,
    })
}

fn object<'a>(v: &'a Value, field: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| StatementError::new("not_an_object", field, "must be a JSON object"))
}

fn string<'a>(v: &'a Value, field: &str) -> R<&'a str> {
    v.as_str()
        .ok_or_else(|| StatementError::new("not_a_string", field, "must be a string"))
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_owned()
    } else {
        format!("{field}/{key}")
    }
}

fn known_keys(m: &Map<String, Value>, allowed: &[&str], field: &str) -> R<()> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(StatementError::new(
            "unknown_property",
            join(field, k),
            format!("`{k}` is not a property here (allowed: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Checks an IRI given outside a statement (a course's activity id).
pub fn check_iri(value: &str, field: &str) -> Result<(), StatementError> {
    iri(&Value::String(value.to_owned()), field).map(|_| ())
}

/// Checks a UUID given outside a statement (a query parameter); returns it
/// in lower case.
pub fn check_uuid(value: &str, field: &str) -> Result<String, StatementError> {
    uuid(&Value::String(value.to_owned()), field)
}

/// An IRI: a scheme, a colon, and no white space.
fn iri<'a>(v: &'a Value, field: &str) -> R<&'a str> {
    let s = string(v, field)?;
    let scheme_ok = s.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if !scheme_ok || s.chars().any(char::is_whitespace) {
        return Err(StatementError::new(
            "iri_invalid",
            field,
            format!("`{s}` is not an absolute IRI (scheme:rest, no spaces)"),
        ));
    }
    Ok(s)
}

/// A UUID in its 8-4-4-4-12 hex form, returned in lower case.
fn uuid(v: &Value, field: &str) -> R<String> {
    let s = string(v, field)?;
    let groups: Vec<&str> = s.split('-').collect();
    let ok = groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(StatementError::new(
            "uuid_invalid",
            field,
            format!("`{s}` is not a UUID (8-4-4-4-12 hexadecimal digits)"),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

fn timestamp(v: &Value, field: &str) -> R<Millis> {
    let s = string(v, field)?;
    if s.ends_with("-00:00") {
        return Err(StatementError::new(
            "timestamp_invalid",
            field,
            "a timestamp must not use the offset -00:00",
        ));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(Millis::from_datetime)
        .map_err(|e| {
            StatementError::new(
                "timestamp_invalid",
                field,
                format!("`{s}` is not an ISO 8601 timestamp with a time zone: {e}"),
            )
        })
}

fn language_map(v: &Value, field: &str) -> R<()> {
    let m = object(v, field)?;
    for (tag, text) in m {
        let tag_ok = !tag.is_empty()
            && tag
                .split('-')
                .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !tag_ok {
            return Err(StatementError::new(
                "language_tag_invalid",
                join(field, tag),
                format!("`{tag}` is not an RFC 5646 language tag"),
            ));
        }
        string(text, &join(field, tag))?;
    }
    Ok(())
}

fn extensions(v: &Value, field: &str) -> R<()> {
    for k in object(v, field)?.keys() {
        iri(&Value::String(k.clone()), &join(field, k)).map_err(|mut e| {
            e.rule = "extension_key_invalid";
            e
        })?;
    }
    Ok(())
}

fn verb(v: &Value) -> R<String> {
    let m = object(v, "verb")?;
    known_keys(m, &["id", "display"], "verb")?;
    let id = m
        .get("id")
        .ok_or_else(|| StatementError::new("verb_id_required", "verb/id", "a verb needs an id"))?;
    let id = iri(id, "verb/id")?.to_owned();
    if let Some(d) = m.get("display") {
        language_map(d, "verb/display")?;
    }
    Ok(id)
}

/// Checks an Agent: exactly one inverse functional identifier.
fn agent(v: &Value, field: &str) -> R<Ifi> {
    let m = object(v, field)?;
    known_keys(
        m,
        &["objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"],
        field,
    )?;
    if let Some(t) = m.get("objectType")
        && t.as_str() != Some("Agent")
    {
        return Err(StatementError::new(
            "object_type_invalid",
            join(field, "objectType"),
            "must be `Agent` here",
        ));
    }
    if let Some(n) = m.get("name") {
        string(n, &join(field, "name"))?;
    }
    ifi(m, field)?.ok_or_else(|| {
        StatementError::new(
            "agent_ifi_count",
            field,
            "an Agent needs exactly one of mbox, mbox_sha1sum, openid and account",
        )
    })
}

/// The inverse functional identifier of an Agent or Group: none, or one.
fn ifi(m: &Map<String, Value>, field: &str) -> R<Option<Ifi>> {
    let present: Vec<&str> = ["mbox", "mbox_sha1sum", "openid", "account"]
        .into_iter()
        .filter(|k| m.contains_key(*k))
        .collect();
    if present.len() > 1 {
        return Err(StatementError::new(
            "agent_ifi_count",
            field,
            format!(
                "has {} inverse functional identifiers ({}); exactly one is allowed",
                present.len(),
                present.join(", ")
            ),
        ));
    }
    let Some(kind) = present.first() else {
        return Ok(None);
    };
    let f = join(field, kind);
    let v = &m[*kind];
    Ok(Some(match *kind {
        "mbox" => {
            let s = string(v, &f)?;
            if !s.starts_with("mailto:") || !s.contains('@') {
                return Err(StatementError::new("mbox_invalid", f, "must be a `mailto:` IRI"));
            }
            Ifi::Mbox(s.to_owned())
        }
        "mbox_sha1sum" => {
            let s = string(v, &f)?;
            if !is_sha1_hex(s) {
                return Err(StatementError::new(
                    "mbox_sha1sum_invalid",
                    f,
                    "must be the 40 hexadecimal digits of a SHA-1",
                ));
            }
            Ifi::MboxSha1(s.to_ascii_lowercase())
        }
        "openid" => Ifi::OpenId(iri(v, &f)?.to_owned()),
        _ => {
            let a = object(v, &f)?;
            known_keys(a, &["homePage", "name"], &f)?;
            let home = a.get("homePage").ok_or_else(|| {
                StatementError::new("account_invalid", join(&f, "homePage"), "an account needs a homePage")
            })?;
            let name = a
                .get("name")
                .ok_or_else(|| StatementError::new("account_invalid", join(&f, "name"), "an account needs a name"))?;
            Ifi::Account {
                home_page: iri(home, &join(&f, "homePage"))?.to_owned(),
                name: string(name, &join(&f, "name"))?.to_owned(),
            }
        }
    }))
}

/// Checks a Group; its IFI when it is an identified group.
fn group(v: &Value, field: &str) -> R<Option<Ifi>> {
    let m = object(v, field)?;
    known_keys(
        m,
        &[
            "objectType",
            "name",
            "member",
            "mbox",
            "mbox_sha1sum",
            "openid",
            "account",
        ],
        field,
    )?;
    if m.get("objectType").and_then(Value::as_str) != Some("Group") {
        return Err(StatementError::new(
            "object_type_invalid",
            join(field, "objectType"),
            "a Group needs `objectType: Group`",
        ));
    }
    if let Some(n) = m.get("name") {
        string(n, &join(field, "name"))?;
    }
    let id = ifi(m, field)?;
    match m.get("member") {
        Some(Value::Array(members)) => {
            for (i, member) in members.iter().enumerate() {
                agent(member, &format!("{}/{i}", join(field, "member")))?;
            }
        }
        Some(_) => {
            return Err(StatementError::new(
                "group_member_invalid",
                join(field, "member"),
                "must be an array of Agents",
            ));
        }
        None if id.is_none() => {
            return Err(StatementError::new(
                "group_member_required",
                join(field, "member"),
                "an anonymous Group (no identifier) needs its members",
            ));
        }
        None => {}
    }
    Ok(id)
}

/// An actor: an Agent, or a Group.
fn actor(v: &Value, field: &str) -> R<Option<Ifi>> {
    match object(v, field)?.get("objectType").and_then(Value::as_str) {
        Some("Group") => group(v, field),
        _ => agent(v, field).map(Some),
    }
}

/// An authority: an Agent, or (OAuth 3-legged) an anonymous Group of exactly two Agents.
fn authority(v: &Value, field: &str) -> R<()> {
    let id = actor(v, field)?;
    let m = object(v, field)?;
    if m.get("objectType").and_then(Value::as_str) == Some("Group") {
        if id.is_some() {
            return Err(StatementError::new(
                "authority_group_invalid",
                field,
                "an authority Group is anonymous (no mbox, mbox_sha1sum, openid or account)",
            ));
        }
        if m.get("member").and_then(Value::as_array).map(Vec::len) != Some(2) {
            return Err(StatementError::new(
                "authority_group_invalid",
                join(field, "member"),
                "an authority Group has exactly two members",
            ));
        }
    }
    Ok(())
}

/// The object: its type, the activity id, and a StatementRef's target.
fn statement_object(
    m: &Map<String, Value>,
    sub: bool,
    version: &Version,
) -> R<(&'static str, Option<String>, Option<String>)> {
    let v = Value::Object(m.clone());
    match m
        .get("objectType")
        .map(|t| string(t, "object/objectType"))
        .transpose()?
    {
        None | Some("Activity") => Ok(("Activity", Some(activity(m, "object")?), None)),
        Some("Agent") => agent(&v, "object").map(|_| ("Agent", None, None)),
        Some("Group") => group(&v, "object").map(|_| ("Group", None, None)),
        Some("StatementRef") => {
            known_keys(m, &["objectType", "id"], "object")?;
            let id = m.get("id").ok_or_else(|| {
                StatementError::new("statement_ref_invalid", "object/id", "a StatementRef needs an id")
            })?;
            Ok(("StatementRef", None, Some(uuid(id, "object/id")?)))
        }
        Some("SubStatement") if !sub => {
            if let Some(Value::Object(inner)) = m.get("object")
                && inner.get("objectType").and_then(Value::as_str) == Some("SubStatement")
            {
                return Err(StatementError::new(
                    "sub_statement_nested",
                    "object/object",
                    "a SubStatement must not contain another SubStatement",
                ));
            }
            statement(m, true, version)
                .map_err(|e| e.within("object"))
                .map(|_| ("SubStatement", None, None))
        }
        Some(other) => Err(StatementError::new(
            "object_type_invalid",
            "object/objectType",
            format!("`{other}` is not an object type here"),
        )),
    }
}

fn activity(m: &Map<String, Value>, field: &str) -> R<String> {
    known_keys(m, &["objectType", "id", "definition"], field)?;
    let id = m
        .get("id")
        .ok_or_else(|| StatementError::new("activity_id_required", join(field, "id"), "an Activity needs an id"))?;
    let id = iri(id, &join(field, "id"))?.to_owned();
    if let Some(d) = m.get("definition") {
        let f = join(field, "definition");
        let def = object(d, &f)?;
        known_keys(
            def,
            &[
                "name",
                "description",
                "type",
                "moreInfo",
                "extensions",
                "interactionType",
                "correctResponsesPattern",
                "choices",
                "scale",
                "source",
                "target",
                "steps",
            ],
            &f,
        )?;
        for k in ["name", "description"] {
            if let Some(x) = def.get(k) {
                language_map(x, &join(&f, k))?;
            }
        }
        for k in ["type", "moreInfo"] {
            if let Some(x) = def.get(k) {
                iri(x, &join(&f, k))?;
            }
        }
        if let Some(x) = def.get("extensions") {
            extensions(x, &join(&f, "extensions"))?;
        }
        interaction(def, &f)?;
    }
    Ok(id)
}

/// The interaction members of an activity definition: `interactionType` is one of the
/// specification's values (case matters), `correctResponsesPattern` is an array of strings, and
/// each component list (`choices`, `scale`, `source`, `target`, `steps`) is an array of
/// `{id, description}` with distinct ids, present only with an `interactionType` that uses it.
fn interaction(def: &Map<String, Value>, f: &str) -> R<()> {
    const TYPES: [&str; 10] = [
        "true-false",
        "choice",
        "fill-in",
        "long-fill-in",
        "matching",
        "performance",
        "sequencing",
        "likert",
        "numeric",
        "other",
    ];
    let kind = match def.get("interactionType") {
        None => None,
        Some(v) => {
            let field = join(f, "interactionType");
            let k = string(v, &field)?;
            if !TYPES.contains(&k) {
                return Err(StatementError::new(
                    "interaction_type_invalid",
                    field,
                    format!("interactionType must be one of {}", TYPES.join(", ")),
                ));
            }
            Some(k)
        }
    };
    if let Some(p) = def.get("correctResponsesPattern") {
        let field = join(f, "correctResponsesPattern");
        let items = p.as_array().ok_or_else(|| {
            StatementError::new(
                "interaction_pattern_invalid",
                field.clone(),
                "correctResponsesPattern must be an array of strings",
            )
        })?;
        if kind.is_none() {
            return Err(StatementError::new(
                "interaction_type_required",
                field,
                "correctResponsesPattern needs an interactionType",
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if !item.is_string() {
                return Err(StatementError::new(
                    "interaction_pattern_invalid",
                    format!("{field}/{i}"),
                    "correctResponsesPattern must be an array of strings",
                ));
            }
        }
    }
    for k in ["choices", "scale", "source", "target", "steps"] {
        let Some(list) = def.get(k) else { continue };
        let field = join(f, k);
        let allowed = match k {
            "choices" => matches!(kind, Some("choice" | "sequencing")),
            "scale" => kind == Some("likert"),
            "source" | "target" => kind == Some("matching"),
            _ => kind == Some("performance"),
        };
        if kind.is_none() {
            return Err(StatementError::new(
                "interaction_type_required",
                field,
                format!("{k} needs an interactionType"),
            ));
        }
        if !allowed {
            return Err(StatementError::new(
                "interaction_component_not_allowed",
                field,
                format!("{k} is not a component of interactionType {}", kind.unwrap_or_default()),
            ));
        }
        let items = list.as_array().ok_or_else(|| {
            StatementError::new(
                "interaction_component_invalid",
                field.clone(),
                "interaction components are an array",
            )
        })?;
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}/{i}");
            let c = object(item, &at)?;
            known_keys(c, &["id", "description"], &at)?;
            let cid = match c.get("id") {
                Some(Value::String(s)) if !s.is_empty() => s.as_str(),
                _ => {
                    return Err(StatementError::new(
                        "interaction_component_invalid",
                        join(&at, "id"),
                        "an interaction component needs a string id",
                    ));
                }
            };
            if !seen.insert(cid) {
                return Err(StatementError::new(
                    "interaction_component_invalid",
                    join(&at, "id"),
                    "interaction component ids are distinct within a list",
                ));
            }
            if let Some(d) = c.get("description") {
                language_map(d, &join(&at, "description"))?;
            }
        }
    }
    Ok(())
}

fn result(v: &Value) -> R<Option<Decimal>> {
    let m = object(v, "result")?;
    known_keys(
        m,
        &["score", "success", "completion", "response", "duration", "extensions"],
        "result",
    )?;
    for k in ["success", "completion"] {
        if let Some(x) = m.get(k)
            && !x.is_boolean()
        {
            return Err(StatementError::new(
                "not_a_boolean",
                join("result", k),
                "must be true or false",
            ));
        }
    }
    if let Some(x) = m.get("response") {
        string(x, "result/response")?;
    }
    if let Some(x) = m.get("duration") {
        let s = string(x, "result/duration")?;
        if !is_duration(s) {
            return Err(StatementError::new(
                "duration_invalid",
                "result/duration",
                format!("`{s}` is not an ISO 8601 duration such as PT1H30M"),
            ));
        }
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, "result/extensions")?;
    }
    match m.get("score") {
        Some(s) => score(s),
        None => Ok(None),
    }
}

fn number(m: &Map<String, Value>, k: &str) -> R<Option<Decimal>> {
    let Some(v) = m.get(k) else { return Ok(None) };
    let f = join("result/score", k);
    let n = v
        .as_number()
        .ok_or_else(|| StatementError::new("not_a_number", f.clone(), "must be a number"))?;
    let text = n.to_string();
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map(Some)
        .map_err(|_| StatementError::new("not_a_number", f, format!("{text} is out of range")))
}

fn score(v: &Value) -> R<Option<Decimal>> {
    let m = object(v, "result/score")?;
    known_keys(m, &["scaled", "raw", "min", "max"], "result/score")?;
    let (scaled, raw, min, max) = (
        number(m, "scaled")?,
        number(m, "raw")?,
        number(m, "min")?,
        number(m, "max")?,
    );
    let bad = |k: &str, d: &str| {
        Err(StatementError::new(
            "score_invalid",
            join("result/score", k),
            d.to_owned(),
        ))
    };
    if let Some(s) = scaled
        && !(-Decimal::ONE..=Decimal::ONE).contains(&s)
    {
        return bad("scaled", "must lie between -1 and 1");
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo >= hi
    {
        return bad("max", "must be greater than min");
    }
    if let Some(r) = raw {
        if min.is_some_and(|lo| r < lo) {
            return bad("raw", "must not be less than min");
        }
        if max.is_some_and(|hi| r > hi) {
            return bad("raw", "must not be greater than max");
        }
    }
    let percent = match (scaled, raw, min, max) {
        (Some(s), ..) => Some(s.max(Decimal::ZERO) * Decimal::ONE_HUNDRED),
        (None, Some(r), Some(lo), Some(hi)) => (r - lo)
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|x| x.checked_div(hi - lo)),
        _ => None,
    };
    Ok(percent.map(|p| p.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)))
}

/// ISO 8601 durations as xAPI uses them: `P[nY][nM][nD][T[nH][nM][n[.n]S]]` or `PnW`.
fn is_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else { return false };
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    fn parts(text: &str, units: &[u8], fraction_last: bool) -> Option<usize> {
        let mut count = 0;
        let mut number = String::new();
        let mut next_unit = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || (c == '.' && fraction_last) {
                number.push(c);
                continue;
            }
            let at = units[next_unit..].iter().position(|u| *u as char == c)? + next_unit;
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return None;
            }
            if number.contains('.') && (at != units.len() - 1 || number.matches('.').count() > 1) {
                return None;
            }
            number.clear();
            next_unit = at + 1;
            count += 1;
        }
        number.is_empty().then_some(count)
    }
    // The week form stands alone (`PnW`): ISO 8601 has no `P4W1D` nor `P1WT1H`.
    if date.contains('W')
        && (time.is_some() || !date.ends_with('W') || !date[..date.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let Some(d) = parts(date, b"YMWD", false) else {
        return false;
    };
    match time {
        None => d > 0,
        Some(t) => parts(t, b"HMS", true).is_some_and(|n| n > 0),
    }
}

fn context(v: &Value, object_is_activity: bool, version: &Version) -> R<Option<String>> {
    let m = object(v, "context")?;
    let mut keys = vec![
        "registration",
        "instructor",
        "team",
        "contextActivities",
        "revision",
        "platform",
        "language",
        "statement",
        "extensions",
    ];
    if *version == Version::V2 {
        keys.extend(["contextAgents", "contextGroups"]);
    }
    known_keys(m, &keys, "context")?;
    let registration = m
        .get("registration")
        .map(|r| uuid(r, "context/registration"))
        .transpose()?;
    if let Some(x) = m.get("instructor") {
        actor(x, "context/instructor")?;
    }
    if let Some(x) = m.get("team") {
        group(x, "context/team")?;
    }
    for k in ["revision", "platform"] {
        if let Some(x) = m.get(k) {
            string(x, &join("context", k))?;
            if !object_is_activity {
                return Err(StatementError::new(
                    "context_requires_activity",
                    join("context", k),
                    format!("`{k}` is allowed only when the object is an Activity"),
                ));
            }
        }
    }
    if let Some(x) = m.get("language") {
        language_map(
            &serde_json::json!({ string(x, "context/language")?: "" }),
            "context/language",
        )?;
    }
    if let Some(x) = m.get("statement") {
        let s = object(x, "context/statement")?;
        if s.get("objectType").and_then(Value::as_str) != Some("StatementRef") {
            return Err(StatementError::new(
                "statement_ref_invalid",
                "context/statement/objectType",
                "must be `StatementRef`",
            ));
        }
        statement_object(s, true, version).map_err(|e| e.within("context/statement"))?;
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, "context/extensions")?;
    }
    for (k, kind, member) in [
        ("contextAgents", "contextAgent", "agent"),
        ("contextGroups", "contextGroup", "group"),
    ] {
        if let Some(x) = m.get(k) {
            context_actors(x, &join("context", k), kind, member)?;
        }
    }
    if let Some(x) = m.get("contextActivities") {
        let ca = object(x, "context/contextActivities")?;
        known_keys(
            ca,
            &["parent", "grouping", "category", "other"],
            "context/contextActivities",
        )?;
        for (k, list) in ca {
            let f = join("context/contextActivities", k);
            let items: Vec<&Value> = match list {
                Value::Array(a) => a.iter().collect(),
                single => vec![single],
            };
            for (i, item) in items.into_iter().enumerate() {
                activity(object(item, &f)?, &format!("{f}/{i}"))?;
            }
        }
    }
    Ok(registration)
}

/// `contextAgents` / `contextGroups` (2.0.0): an array of `{objectType, agent|group,
/// relevantTypes?}` where `objectType` is `contextAgent` / `contextGroup` and `relevantTypes`, when
/// present, is a non-empty array of IRIs.
fn context_actors(v: &Value, field: &str, kind: &str, member: &str) -> R<()> {
    let bad = |f: String, d: String| StatementError::new("context_actor_invalid", f, d);
    let list = v
        .as_array()
        .ok_or_else(|| bad(field.to_owned(), format!("must be an array of {kind} objects")))?;
    for (i, item) in list.iter().enumerate() {
        let f = format!("{field}/{i}");
        let o = object(item, &f)?;
        known_keys(o, &["objectType", member, "relevantTypes"], &f)?;
        if o.get("objectType").and_then(Value::as_str) != Some(kind) {
            return Err(bad(join(&f, "objectType"), format!("must be `{kind}`")));
        }
        let who = o
            .get(member)
            .ok_or_else(|| bad(join(&f, member), format!("a {kind} needs `{member}`")))?;
        if member == "agent" {
            agent(who, &join(&f, member))?;
        } else {
            group(who, &join(&f, member))?;
        }
        if let Some(types) = o.get("relevantTypes") {
            let t = types
                .as_array()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(join(&f, "relevantTypes"), "must be a non-empty array of IRIs".into()))?;
            for (j, x) in t.iter().enumerate() {
                iri(x, &format!("{f}/relevantTypes/{j}"))?;
            }
        }
    }
    Ok(())
}

fn attachments(v: &Value) -> R<()> {
    let list = v
        .as_array()
        .ok_or_else(|| StatementError::new("attachments_invalid", "attachments", "must be an array"))?;
    for (i, a) in list.iter().enumerate() {
        let f = format!("attachments/{i}");
        let m = object(a, &f)?;
        known_keys(
            m,
            &[
                "usageType",
                "display",
                "description",
                "contentType",
                "length",
                "sha2",
                "fileUrl",
            ],
            &f,
        )?;
        attachment_metadata(m, &f)?;
        // An attachment without `fileUrl` has its bytes in a multipart
        // part: checked with the parts (`attachments::check`).
        for k in ["usageType", "fileUrl"] {
            if let Some(x) = m.get(k) {
                iri(x, &join(&f, k))?;
            }
        }
    }
    Ok(())
}

/// The metadata every attachment carries: `usageType` (IRI), `display` (language map),
/// optional `description` (language map), `contentType` (string), `length` (a non-negative
/// integer) and `sha2` (hexadecimal SHA-2).
fn attachment_metadata(m: &Map<String, Value>, f: &str) -> R<()> {
    let missing = |k: &str| {
        StatementError::new(
            "attachment_metadata_invalid",
            join(f, k),
            format!("an attachment needs `{k}`"),
        )
    };
    iri(
        m.get("usageType").ok_or_else(|| missing("usageType"))?,
        &join(f, "usageType"),
    )?;
    language_map(m.get("display").ok_or_else(|| missing("display"))?, &join(f, "display"))?;
    if let Some(d) = m.get("description") {
        language_map(d, &join(f, "description"))?;
    }
    if !m.get("contentType").ok_or_else(|| missing("contentType"))?.is_string() {
        return Err(StatementError::new(
            "attachment_metadata_invalid",
            join(f, "contentType"),
            "contentType is an Internet media type as a string",
        ));
    }
    if m.get("length").ok_or_else(|| missing("length"))?.as_u64().is_none() {
        return Err(StatementError::new(
            "attachment_metadata_invalid",
            join(f, "length"),
            "length is the content's size in octets, a non-negative integer",
        ));
    }
    let sha2 = m.get("sha2").ok_or_else(|| missing("sha2"))?;
    if !sha2
        .as_str()
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(StatementError::new(
            "attachment_metadata_invalid",
            join(f, "sha2"),
            "sha2 is the content's SHA-2 hash in hexadecimal",
        ));
    }
    Ok(())
}

/// Whether `s` is a SHA-1 in hexadecimal (40 digits, either case), as an
/// `mbox_sha1sum` must be.
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AUTHORITY: &str =
        r#"{"objectType":"Agent","account":{"homePage":"https://xuefen.invalid/sites/s1","name":"s1"}}"#;
    const ID: &str = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee";

    fn stamp(version: &Version) -> Stamp<'_> {
        Stamp {
            version,
            authority: AUTHORITY,
            stored: Millis(1_700_000_000_000),
            id_if_absent: ID,
        }
    }

    fn prep(json: &str) -> R<Prepared> {
        prepare(json, &stamp(&Version::V1("1.0.3".into())))
    }

    fn completion() -> Value {
        serde_json::json!({
            "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "u42"}},
            "verb": {"id": VERB_COMPLETED, "display": {"en-US": "completed"}},
            "object": {"id": "https://lms.example/course/7", "objectType": "Activity"},
            "result": {"score": {"scaled": 0.875}, "completion": true, "duration": "PT2H30M"},
            "timestamp": "2024-05-01T10:00:00+08:00"
        })
    }

    fn rule_of(mut v: Value, edit: impl FnOnce(&mut Value)) -> &'static str {
        edit(&mut v);
        prep(&v.to_string()).expect_err("invalid").rule
    }

    #[test]
    fn a_moodle_style_completion_is_prepared_with_the_lrs_members() {
        let p = prep(&completion().to_string()).expect("valid");
        assert_eq!(p.id, ID);
        assert_eq!(p.verb, VERB_COMPLETED);
        assert_eq!(p.activity.as_deref(), Some("https://lms.example/course/7"));
        assert_eq!(p.agent_key().as_deref(), Some("account|https://lms.example|u42"));
        assert_eq!(p.score_percent, Some(Decimal::new(8750, 2)));
        let stored: Value = serde_json::from_str(&p.json).expect("json");
        assert_eq!(stored["stored"], "2023-11-14T22:13:20.000Z");
        assert_eq!(stored["version"], "1.0.0");
        assert_eq!(stored["id"], ID);
        assert_eq!(stored["authority"]["account"]["name"], "s1");
        assert!(p.is_creditable_verb());
    }

    #[test]
    fn received_members_are_kept_byte_for_byte_and_in_order() {
        let raw = r#"{"verb":{"id":"http://adlnet.gov/expapi/verbs/experienced"},  "actor":{"mbox":"mailto:a@b.example"},"object":{"id":"urn:x:1", "definition":{"name":{"zh-CN":"课程"}}},"stored":"2020-01-01T00:00:00Z"}"#;
        let p = prep(raw).expect("valid");
        assert!(p.json.starts_with(
            r#"{"verb":{"id":"http://adlnet.gov/expapi/verbs/experienced"},"actor":{"mbox":"mailto:a@b.example"},"object":{"id":"urn:x:1", "definition":{"name":{"zh-CN":"课程"}}},"id":"#
        ));
        assert!(!p.json.contains("2020-01-01"), "the LRS sets `stored`");
    }

    #[test]
    fn each_rule_is_named() {
        let c = completion();
        assert_eq!(
            rule_of(c.clone(), |v| drop(v.as_object_mut().map(|m| m.remove("actor")))),
            "actor_required"
        );
        assert_eq!(
            rule_of(c.clone(), |v| drop(v.as_object_mut().map(|m| m.remove("verb")))),
            "verb_required"
        );
        assert_eq!(
            rule_of(c.clone(), |v| drop(v.as_object_mut().map(|m| m.remove("object")))),
            "object_required"
        );
        assert_eq!(rule_of(c.clone(), |v| v["id"] = "not-a-uuid".into()), "uuid_invalid");
        assert_eq!(
            rule_of(c.clone(), |v| v["verb"]["id"] = "completed".into()),
            "iri_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["actor"]["mbox"] = "mailto:x@y.example".into()),
            "agent_ifi_count"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["timestamp"] = "2024-05-01 10:00".into()),
            "timestamp_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["timestamp"] = "2024-05-01T10:00:00-00:00".into()),
            "timestamp_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["verb"]["id"] = VERB_VOIDED.into()),
            "voiding_object_not_statement_ref"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["authority"] = serde_json::json!({"name": "x"})),
            "agent_ifi_count"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["result"]["score"]["scaled"] = 1.5.into()),
            "score_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["result"]["duration"] = "2 hours".into()),
            "duration_invalid"
        );
        assert_eq!(rule_of(c.clone(), |v| v["colour"] = "red".into()), "unknown_property");
        assert_eq!(rule_of(c.clone(), |v| v["version"] = "0.95".into()), "version_invalid");
        let mut inline = c.clone();
        inline["attachments"] = serde_json::json!([{"usageType": "http://x.example/a", "display": {}, "contentType": "text/plain", "length": 1, "sha2": "ab"}]);
        assert!(
            prep(&inline.to_string()).is_ok(),
            "valid metadata; the part is checked with the parts"
        );
        assert_eq!(
            attachments::check(&[inline], &[]).map_err(|e| e.rule),
            Err("attachment_part_missing")
        );
        let mut r = c.clone();
        r["object"] = serde_json::json!({"objectType": "StatementRef", "id": ID});
        assert!(
            prep(&r.to_string()).is_ok(),
            "a StatementRef object is fine for other verbs"
        );
    }

    #[test]
    fn interaction_type_is_validated_case_sensitively_and_needed_by_components() {
        let mut c = completion();
        c["object"] = serde_json::json!({"id": "urn:x:q1", "definition": {"interactionType": "choice",
            "correctResponsesPattern": ["a"], "choices": [{"id": "a", "description": {"en-US": "A"}}]}});
        assert!(prep(&c.to_string()).is_ok(), "a well-formed choice interaction is fine");
        let edit = |e: fn(&mut Value)| rule_of(c.clone(), e);
        assert_eq!(
            edit(|v| v["object"]["definition"]["interactionType"] = "choiCe".into()),
            "interaction_type_invalid"
        );
        assert_eq!(
            edit(|v| v["object"]["definition"]["interactionType"] = serde_json::json!({})),
            "not_a_string"
        );
        assert_eq!(
            edit(|v| drop(
                v["object"]["definition"]
                    .as_object_mut()
                    .map(|m| m.remove("interactionType"))
            )),
            "interaction_type_required"
        );
        assert_eq!(
            edit(|v| v["object"]["definition"]["interactionType"] = "likert".into()),
            "interaction_component_not_allowed"
        );
        assert_eq!(
            edit(|v| v["object"]["definition"]["choices"] = serde_json::json!([{"id": "a"}, {"id": "a"}])),
            "interaction_component_invalid"
        );
        assert_eq!(
            edit(|v| v["object"]["definition"]["correctResponsesPattern"] = serde_json::json!([1])),
            "interaction_pattern_invalid"
        );
    }

    #[test]
    fn an_authority_group_is_anonymous_with_two_members() {
        let two = serde_json::json!([{"mbox": "mailto:app@x.example"}, {"mbox": "mailto:u@x.example"}]);
        let mut c = completion();
        c["authority"] = serde_json::json!({"objectType": "Group", "member": two.clone()});
        assert!(prep(&c.to_string()).is_ok(), "an anonymous pair is fine");
        let mut one = c.clone();
        one["authority"]["member"] = serde_json::json!([two[0].clone()]);
        assert_eq!(rule_of(one, |_| {}), "authority_group_invalid");
        let mut three = c.clone();
        three["authority"]["member"] =
            serde_json::json!([two[0].clone(), two[1].clone(), {"mbox": "mailto:w@x.example"}]);
        assert_eq!(rule_of(three, |_| {}), "authority_group_invalid");
        assert_eq!(
            rule_of(c, |v| v["authority"]["mbox"] = "mailto:g@x.example".into()),
            "authority_group_invalid"
        );
    }

    #[test]
    fn attachment_metadata_is_validated() {
        let mut c = completion();
        c["attachments"] = serde_json::json!([{"usageType": "http://x.example/a", "display": {"en-US": "A"},
            "contentType": "text/plain", "length": 10, "sha2": "ab12", "fileUrl": "https://x.example/a.txt"}]);
        assert!(prep(&c.to_string()).is_ok(), "complete metadata with a fileUrl is fine");
        assert_eq!(
            rule_of(c.clone(), |v| v["attachments"][0]["length"] = "ten".into()),
            "attachment_metadata_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["attachments"][0]["contentType"] = 7.into()),
            "attachment_metadata_invalid"
        );
        assert_eq!(
            rule_of(c.clone(), |v| v["attachments"][0]["display"] =
                serde_json::json!({"not a tag": "A"})),
            "language_tag_invalid"
        );
        assert_eq!(
            rule_of(c, |v| drop(
                v["attachments"][0].as_object_mut().map(|m| m.remove("sha2"))
            )),
            "attachment_metadata_invalid"
        );
    }

    #[test]
    fn context_agents_and_groups_are_validated_at_2_0() {
        let mut c = completion();
        c["context"] = serde_json::json!({"contextAgents": [{"objectType": "contextAgent",
            "agent": {"mbox": "mailto:t@x.example"}, "relevantTypes": ["https://x.example/tutor"]}]});
        let ok = prepare(&c.to_string(), &stamp(&Version::V2));
        assert!(ok.is_ok(), "{ok:?}");
        let at2 = |v: Value| prepare(&v.to_string(), &stamp(&Version::V2)).err().map(|e| e.rule);
        let mut e = c.clone();
        e["context"]["contextAgents"][0]["objectType"] = "Agent".into();
        assert_eq!(at2(e), Some("context_actor_invalid"));
        let mut e = c.clone();
        e["context"]["contextAgents"][0]["relevantTypes"] = serde_json::json!([]);
        assert_eq!(at2(e), Some("context_actor_invalid"));
        let mut e = c.clone();
        e["context"]["contextAgents"] = serde_json::json!({"objectType": "contextAgent"});
        assert_eq!(at2(e), Some("context_actor_invalid"));
        let mut e = c;
        e["context"] = serde_json::json!({"contextGroups": [{"objectType": "contextGroup",
            "group": {"objectType": "Group"}}]});
        assert_eq!(at2(e), Some("group_member_required"));
    }

    #[test]
    fn a_single_context_activity_is_stored_as_an_array_of_one() {
        let mut c = completion();
        c["context"] =
            serde_json::json!({"contextActivities": {"parent": {"id": "urn:x:p"}, "other": [{"id": "urn:x:o"}]}});
        let single = prep(&c.to_string()).expect("a single parent is accepted");
        let stored: Value = serde_json::from_str(&single.json).expect("stored JSON");
        assert_eq!(
            stored["context"]["contextActivities"]["parent"],
            serde_json::json!([{"id": "urn:x:p"}])
        );
        assert_eq!(
            stored["context"]["contextActivities"]["other"],
            serde_json::json!([{"id": "urn:x:o"}])
        );
        c["context"]["contextActivities"]["parent"] = serde_json::json!([{"id": "urn:x:p"}]);
        let array = prep(&c.to_string()).expect("an array of one is accepted");
        assert_eq!(
            single.fingerprint, array.fingerprint,
            "both forms are the same statement"
        );
    }

    #[test]
    fn a_voiding_statement_names_its_target() {
        let v = serde_json::json!({
            "actor": {"mbox": "mailto:admin@lms.example"},
            "verb": {"id": VERB_VOIDED},
            "object": {"objectType": "StatementRef", "id": ID.to_uppercase()}
        });
        let p = prep(&v.to_string()).expect("valid");
        assert_eq!(p.voids.as_deref(), Some(ID));
    }

    #[test]
    fn a_statement_too_large_is_refused() {
        let mut v = completion();
        v["result"]["response"] = "x".repeat(STATEMENT_BYTES_MAX).into();
        assert_eq!(prep(&v.to_string()).expect_err("too large").rule, "statement_too_large");
    }

    #[test]
    fn versions_are_parsed() {
        assert_eq!(Version::parse("1.0.3"), Some(Version::V1("1.0.3".into())));
        assert_eq!(Version::parse("1.0"), Some(Version::V1("1.0".into())));
        assert_eq!(Version::parse("2.0.0"), Some(Version::V2));
        assert_eq!(Version::parse("0.95"), None);
        assert_eq!(Version::parse("1.1.0"), None);
        assert_eq!(Version::parse("1.0."), None);
        let v = completion();
        let p = prepare(&v.to_string(), &stamp(&Version::V2)).expect("valid");
        assert!(p.json.ends_with(r#""version":"2.0.0"}"#));
    }

    #[test]
    fn context_agents_are_a_2_0_property() {
        let mut v = completion();
        v["context"] = serde_json::json!({"contextAgents": []});
        assert!(prepare(&v.to_string(), &stamp(&Version::V2)).is_ok());
        assert_eq!(prep(&v.to_string()).expect_err("1.0.3").rule, "unknown_property");
    }

    #[test]
    fn durations_follow_iso_8601() {
        for ok in ["PT1H30M", "P1D", "PT0.5S", "P1Y2M3DT4H5M6.7S", "P2W"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "P", "PT", "1H", "PT1.5H", "P1H", "PTM", "PT1M1H", "P4W1D", "P1Y2W", "P1WT1H",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn a_raw_score_is_read_against_its_range() {
        let mut v = completion();
        v["result"]["score"] = serde_json::json!({"raw": 7, "min": 0, "max": 8});
        assert_eq!(
            prep(&v.to_string()).expect("valid").score_percent,
            Some(Decimal::new(8750, 2))
        );
        v["result"]["score"] = serde_json::json!({"raw": 9, "min": 0, "max": 8});
        assert_eq!(prep(&v.to_string()).expect_err("raw").rule, "score_invalid");
    }

    #[test]
    fn the_agent_filter_uses_the_same_key() {
        assert_eq!(
            agent_key(r#"{"account":{"homePage":"https://lms.example","name":"u42"}}"#),
            Ok("account|https://lms.example|u42".to_owned())
        );
        assert_eq!(
            agent_key(r#"{"name":"nobody"}"#).expect_err("no ifi").rule,
            "agent_ifi_count"
        );
    }

    /// Arbitrary JSON built from the words statements use, so that the
    /// checks are reached deep inside.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "id",
            "actor",
            "verb",
            "object",
            "objectType",
            "mbox",
            "mbox_sha1sum",
            "account",
            "homePage",
            "name",
            "member",
            "result",
            "score",
            "scaled",
            "raw",
            "min",
            "max",
            "context",
            "registration",
            "timestamp",
            "definition",
            "display",
            "statement",
            "contextActivities",
            "attachments",
            "fileUrl",
            "authority",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1_000i64..1_000).prop_map(Value::from),
            (-2.0f64..2.0).prop_map(Value::from),
            prop::sample::select(vec![
                "Agent",
                "Group",
                "Activity",
                "StatementRef",
                "SubStatement",
                "mailto:a@b.example",
                "http://adlnet.gov/expapi/verbs/voided",
                ID,
                "2024-01-01T00:00:00Z",
                "PT1H",
                "x",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        /// Validation is total: any JSON gives a prepared statement or a
        /// named rule, never a panic; and what it accepts, it stores as
        /// JSON that parses again.
        #[test]
        fn any_json_is_prepared_or_refused_with_a_rule(v in json_value()) {
            match prep(&v.to_string()) {
                Ok(p) => {
                    prop_assert!(serde_json::from_str::<Value>(&p.json).is_ok());
                    prop_assert_eq!(p.fingerprint.len(), 64);
                }
                Err(e) => prop_assert!(!e.rule.is_empty()),
            }
        }

        /// A re-send is recognised whatever the member order and white
        /// space: the fingerprint depends on the content only.
        #[test]
        fn the_fingerprint_ignores_member_order_and_white_space(seed in any::<u64>(), pad in 0usize..3) {
            let v = completion();
            let m = v.as_object().expect("object");
            let mut keys: Vec<&String> = m.keys().collect();
            let n = keys.len();
            keys.rotate_left((seed % n as u64) as usize);
            let sep = " ".repeat(pad);
            let body: Vec<String> = keys.iter().map(|k| format!("{}:{sep}{}", Value::String((*k).clone()), m[k.as_str()])).collect();
            let shuffled = format!("{{{sep}{}}}", body.join(&format!(",{sep}")));
            let a = prep(&v.to_string()).expect("valid");
            let b = prep(&shuffled).expect("valid");
            prop_assert_eq!(a.fingerprint, b.fingerprint);
        }

        /// Different content under the same id has a different fingerprint.
        #[test]
        fn other_content_has_another_fingerprint(name in "[a-z]{1,12}") {
            let a = completion();
            let mut b = completion();
            b["actor"]["account"]["name"] = Value::String(format!("{name}-other"));
            prop_assert_ne!(prep(&a.to_string()).expect("valid").fingerprint, prep(&b.to_string()).expect("valid").fingerprint);
        }

        /// The stored JSON is valid JSON that keeps every received member.
        #[test]
        fn the_stored_json_keeps_every_received_member(response in "[ -~]{0,40}") {
            let mut v = completion();
            v["result"]["response"] = Value::String(response);
            let p = prep(&v.to_string()).expect("valid");
            let stored: Value = serde_json::from_str(&p.json).expect("json");
            for (k, x) in v.as_object().expect("object") {
                prop_assert_eq!(&stored[k.as_str()], x);
            }
        }
    }
}

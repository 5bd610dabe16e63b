//! The shape of a statement and of a sub-statement: its members, verb,
//! authority and object.

use super::Ifi;
use super::R;
use super::StatementError;
use super::VERB_VOIDED;
use super::Version;
use super::activity::activity;
use super::actor::actor;
use super::actor::agent;
use super::actor::group;
use super::check::iri;
use super::check::join;
use super::check::known_keys;
use super::check::language_map;
use super::check::object;
use super::check::string;
use super::check::timestamp;
use super::check::uuid;
use super::context::attachments;
use super::context::context;
use super::result::result;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// What the checks of a statement (or sub-statement) learn on the way.
pub(super) struct Facts {
    pub(super) verb: String,
    pub(super) activity: Option<String>,
    pub(super) actor: Option<Ifi>,
    pub(super) registration: Option<String>,
    pub(super) voids: Option<String>,
    pub(super) score_percent: Option<Decimal>,
}

pub(super) const STATEMENT_KEYS: [&str; 11] = [
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
pub(super) const SUB_STATEMENT_KEYS: [&str; 8] = [
    "objectType",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "attachments",
];

pub(super) fn statement(m: &Map<String, Value>, sub: bool, version: &Version) -> R<Facts> {
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

pub(super) fn verb(v: &Value) -> R<String> {
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

/// An authority: an Agent, or (OAuth 3-legged) an anonymous Group of exactly two Agents.
pub(super) fn authority(v: &Value, field: &str) -> R<()> {
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
pub(super) fn statement_object(
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

//! The context of a statement and its attachments' metadata.

use super::R;
use super::StatementError;
use super::Version;
use super::activity::activity;
use super::actor::actor;
use super::actor::agent;
use super::actor::group;
use super::check::extensions;
use super::check::iri;
use super::check::join;
use super::check::known_keys;
use super::check::language_map;
use super::check::object;
use super::check::string;
use super::check::uuid;
use super::statement::statement_object;
use serde_json::{Map, Value};

/// A statement's `context`, each member checked in turn; gives its registration, if any.
pub(super) fn context(v: &Value, object_is_activity: bool, version: &Version) -> R<Option<String>> {
    let m = object(v, "context")?;
    known_keys(m, &context_keys(version), "context")?;
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
    activity_only_members(m, object_is_activity)?;
    if let Some(x) = m.get("language") {
        context_language(x)?;
    }
    if let Some(x) = m.get("statement") {
        context_statement(x, version)?;
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
        context_activities(x)?;
    }
    Ok(registration)
}

/// The members a context may have under `version` (2.0.0 adds `contextAgents` and `contextGroups`).
fn context_keys(version: &Version) -> Vec<&'static str> {
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
    keys
}

/// `revision` and `platform`: strings, given only when the statement's object is an Activity.
fn activity_only_members(m: &Map<String, Value>, object_is_activity: bool) -> R<()> {
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
    Ok(())
}

/// `language`: a string that is a language tag (checked as the one key of a language map).
fn context_language(x: &Value) -> R<()> {
    language_map(
        &serde_json::json!({ string(x, "context/language")?: "" }),
        "context/language",
    )
}

/// `statement`: a `StatementRef` to another statement.
fn context_statement(x: &Value, version: &Version) -> R<()> {
    let s = object(x, "context/statement")?;
    if s.get("objectType").and_then(Value::as_str) != Some("StatementRef") {
        return Err(StatementError::new(
            "statement_ref_invalid",
            "context/statement/objectType",
            "must be `StatementRef`",
        ));
    }
    statement_object(s, true, version).map_err(|e| e.within("context/statement"))?;
    Ok(())
}

/// `contextActivities`: `parent`, `grouping`, `category` and `other`, each an Activity or an
/// array of them.
fn context_activities(x: &Value) -> R<()> {
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
    Ok(())
}

/// `contextAgents` / `contextGroups` (2.0.0): an array of `{objectType, agent|group,
/// relevantTypes?}` where `objectType` is `contextAgent` / `contextGroup` and `relevantTypes`, when
/// present, is a non-empty array of IRIs.
pub(super) fn context_actors(v: &Value, field: &str, kind: &str, member: &str) -> R<()> {
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

pub(super) fn attachments(v: &Value) -> R<()> {
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
pub(super) fn attachment_metadata(m: &Map<String, Value>, f: &str) -> R<()> {
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

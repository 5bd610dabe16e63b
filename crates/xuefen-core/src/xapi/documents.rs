//! The document resources of xAPI (State, Activity Profile, Agent
//! Profile) and the two read-only resources built from statements
//! (Activities, Agents): the rules that do not depend on a database.
//!
//! Documents are opaque bytes with a media type, identified per site by
//! `(resource, activityId, agent, registration, document id)`. They are not
//! credits: nothing of them enters the ledger. Pure: no clock, no I/O.

use serde_json::{Map, Value};
use sha1::{Digest as _, Sha1};

use super::StatementError;

/// The largest document a site may store, in bytes.
pub const DOCUMENT_BYTES_MAX: usize = 1024 * 1024;
/// The most document bytes one site may hold in all (every resource).
pub const SITE_DOCUMENT_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The entity tag of a document: the hexadecimal SHA-1 of its bytes, as
/// xAPI 1.0.3 (Communication 3.1) asks; sent in quotes.
pub fn etag(body: &[u8]) -> String {
    hex::encode(Sha1::digest(body))
}

/// Whether a media type is `application/json` (parameters and case ignored).
pub fn is_json_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Why a JSON merge (POST of a document) cannot be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeError {
    /// The stored document is not a JSON object.
    StoredNotJsonObject,
    /// The posted document is not a JSON object.
    PostedNotJsonObject,
}

/// A JSON object's members, or `None` when the bytes are no JSON object.
pub fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The Document Merge of xAPI (Communication 2.2): the stored object's
/// members, each one the posted object has replaced whole by the posted
/// value (one level deep), then the posted members the stored one lacks.
pub fn merge(stored: &[u8], posted: &[u8]) -> Result<Vec<u8>, MergeError> {
    let mut base = json_object(stored).ok_or(MergeError::StoredNotJsonObject)?;
    let new = json_object(posted).ok_or(MergeError::PostedNotJsonObject)?;
    for (k, v) in new {
        base.insert(k, v);
    }
    Ok(Value::Object(base).to_string().into_bytes())
}

/// The canonical Activity Object of the Activities resource after one more
/// statement about it: the members of the newer object replace the stored
/// ones, except in `definition`, where the language maps (`name`,
/// `description`) and `extensions` are united key by key (the newer value
/// winning), so that two statements with one language each give both.
pub fn merge_activity(stored: &Value, newer: &Value) -> Value {
    let (Some(old), Some(new)) = (stored.as_object(), newer.as_object()) else {
        return newer.clone();
    };
    let mut out = old.clone();
    for (k, v) in new {
        if k == "definition" {
            let merged = match (old.get("definition").and_then(Value::as_object), v.as_object()) {
                (Some(od), Some(nd)) => {
                    let mut d = od.clone();
                    for (dk, dv) in nd {
                        let united = match (d.get(dk).and_then(Value::as_object), dv.as_object()) {
                            (Some(a), Some(b)) if ["name", "description", "extensions"].contains(&dk.as_str()) => {
                                let mut m = a.clone();
                                m.extend(b.iter().map(|(x, y)| (x.clone(), y.clone())));
                                Value::Object(m)
                            }
                            _ => dv.clone(),
                        };
                        d.insert(dk.clone(), united);
                    }
                    Value::Object(d)
                }
                _ => v.clone(),
            };
            out.insert(k.clone(), merged);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The Person Object of the Agents resource for an Agent given as JSON:
/// what the LRS knows of the person, each property an array. This LRS does
/// not join agents into persons, so the person is the agent itself.
pub fn person(agent_json: &str) -> Result<Value, StatementError> {
    // Validates the agent (exactly one inverse functional identifier).
    super::agent_key(agent_json)?;
    let v: Value = serde_json::from_str(agent_json)
        .map_err(|e| StatementError::new("agent_invalid", "agent", format!("is not JSON: {e}")))?;
    if v.get("objectType").and_then(Value::as_str) == Some("Group") {
        return Err(StatementError::new(
            "agent_invalid",
            "agent",
            "the Agents resource takes an Agent, not a Group",
        ));
    }
    let mut p = Map::new();
    p.insert("objectType".into(), Value::String("Person".into()));
    for name in ["name", "mbox", "mbox_sha1sum", "openid", "account"] {
        if let Some(x) = v.get(name) {
            p.insert(name.into(), Value::Array(vec![x.clone()]));
        }
    }
    Ok(Value::Object(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_the_sha1_of_the_bytes() {
        assert_eq!(etag(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn a_merge_overwrites_one_level_deep() {
        let stored = br#"{"car":"Honda","driver":"Mike","series":{"nascar":{"series":"sprint"}}}"#;
        let posted = br#"{"series":{"indycar":{"series":"irl"}},"type":"open"}"#;
        let merged: Value = serde_json::from_slice(&merge(stored, posted).expect("merges")).expect("json");
        assert_eq!(
            merged,
            serde_json::json!({"car":"Honda","driver":"Mike","series":{"indycar":{"series":"irl"}},"type":"open"})
        );
        assert_eq!(merge(b"abc", b"{}"), Err(MergeError::StoredNotJsonObject));
        assert_eq!(merge(b"{}", b"[1]"), Err(MergeError::PostedNotJsonObject));
    }

    #[test]
    fn activity_definitions_unite_their_language_maps() {
        let a = serde_json::json!({"id":"http://x.example/a","definition":{"name":{"en-US":"meeting"},"type":"http://t/1"}});
        let b = serde_json::json!({"id":"http://x.example/a","definition":{"name":{"fr-FR":"réunion"}}});
        let m = merge_activity(&a, &b);
        assert_eq!(m["definition"]["name"]["en-US"], "meeting");
        assert_eq!(m["definition"]["name"]["fr-FR"], "réunion");
        assert_eq!(m["definition"]["type"], "http://t/1");
    }

    #[test]
    fn a_person_lists_each_identifier_in_an_array() {
        let p = person(r#"{"objectType":"Agent","name":"Rick","mbox":"mailto:rick@example.com"}"#).expect("agent");
        assert_eq!(
            p,
            serde_json::json!({"objectType":"Person","name":["Rick"],"mbox":["mailto:rick@example.com"]})
        );
        assert!(person(r#"{"mbox":"rick@example.com"}"#).is_err());
    }
}

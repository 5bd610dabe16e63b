//! The primitive values of a statement: objects with known members, IRIs,
//! UUIDs, timestamps, language maps, extensions, SHA-1 sums.

use super::R;
use super::StatementError;
use crate::event::Millis;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(super) fn object<'a>(v: &'a Value, field: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| StatementError::new("not_an_object", field, "must be a JSON object"))
}

pub(super) fn string<'a>(v: &'a Value, field: &str) -> R<&'a str> {
    v.as_str()
        .ok_or_else(|| StatementError::new("not_a_string", field, "must be a string"))
}

pub(super) fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_owned()
    } else {
        format!("{field}/{key}")
    }
}

pub(super) fn known_keys(m: &Map<String, Value>, allowed: &[&str], field: &str) -> R<()> {
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
pub(super) fn iri<'a>(v: &'a Value, field: &str) -> R<&'a str> {
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
pub(super) fn uuid(v: &Value, field: &str) -> R<String> {
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

pub(super) fn timestamp(v: &Value, field: &str) -> R<Millis> {
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

pub(super) fn language_map(v: &Value, field: &str) -> R<()> {
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

pub(super) fn extensions(v: &Value, field: &str) -> R<()> {
    for k in object(v, field)?.keys() {
        iri(&Value::String(k.clone()), &join(field, k)).map_err(|mut e| {
            e.rule = "extension_key_invalid";
            e
        })?;
    }
    Ok(())
}

/// Whether `s` is a SHA-1 in hexadecimal (40 digits, either case), as an
/// `mbox_sha1sum` must be.
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

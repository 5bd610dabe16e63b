//! Actors: agents and groups, each named by exactly one inverse functional
//! identifier.

use super::Ifi;
use super::R;
use super::StatementError;
use super::check::iri;
use super::check::is_sha1_hex;
use super::check::join;
use super::check::known_keys;
use super::check::object;
use super::check::string;
use serde_json::{Map, Value};

/// Checks an Agent: exactly one inverse functional identifier.
pub(super) fn agent(v: &Value, field: &str) -> R<Ifi> {
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
pub(super) fn ifi(m: &Map<String, Value>, field: &str) -> R<Option<Ifi>> {
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
pub(super) fn group(v: &Value, field: &str) -> R<Option<Ifi>> {
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
pub(super) fn actor(v: &Value, field: &str) -> R<Option<Ifi>> {
    match object(v, field)?.get("objectType").and_then(Value::as_str) {
        Some("Group") => group(v, field),
        _ => agent(v, field).map(Some),
    }
}

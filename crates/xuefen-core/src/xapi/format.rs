//! The `format` of statement answers (xAPI 1.0.3 Communication 2.1.3):
//! `exact` returns a statement as stored; `ids` keeps only what identifies
//! each Agent, Group, Activity and Verb; `canonical` keeps, of every
//! language map, the one language the request's `Accept-Language` prefers
//! (or the first the map lists when none of them is asked for).

use serde_json::{Map, Value};

/// The formats of the statement query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Exact,
    Ids,
    Canonical,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(Self::Exact),
            "ids" => Some(Self::Ids),
            "canonical" => Some(Self::Canonical),
            _ => None,
        }
    }
}

/// The language tags of an `Accept-Language` header, most preferred first
/// (`q=0` left out, `*` kept as a wildcard).
pub fn accepted_languages(header: &str) -> Vec<String> {
    let mut tags: Vec<(String, f32, usize)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            if tag.is_empty() {
                return None;
            }
            let q = it
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                .unwrap_or(1.0);
            (q > 0.0).then(|| (tag.to_owned(), q, i))
        })
        .collect();
    tags.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    tags.into_iter().map(|(t, _, _)| t).collect()
}

/// A stored statement in the requested format.
pub fn apply(statement: &mut Value, format: Format, languages: &[String]) {
    match format {
        Format::Exact => {}
        Format::Ids => ids(statement),
        Format::Canonical => canonical(statement, languages),
    }
}

fn ifi_only(agent: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for k in ["objectType", "mbox", "mbox_sha1sum", "openid", "account"] {
        if let Some(v) = agent.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    let identified = ["mbox", "mbox_sha1sum", "openid", "account"]
        .iter()
        .any(|k| agent.contains_key(*k));
    if !identified && let Some(Value::Array(members)) = agent.get("member") {
        let members = members
            .iter()
            .filter_map(Value::as_object)
            .map(|m| Value::Object(ifi_only(m)))
            .collect();
        out.insert("member".into(), Value::Array(members));
    }
    out
}

fn actor_ids(v: Option<&mut Value>) {
    if let Some(Value::Object(a)) = v {
        *a = ifi_only(a);
    }
}

fn id_only(v: Option<&mut Value>) {
    if let Some(Value::Object(o)) = v
        && let Some(id) = o.get("id").cloned()
    {
        o.clear();
        o.insert("id".into(), id);
    }
}

fn ids(s: &mut Value) {
    actor_ids(s.get_mut("actor"));
    actor_ids(s.get_mut("authority"));
    id_only(s.get_mut("verb"));
    if let Some(object) = s.get_mut("object") {
        match object.get("objectType").and_then(Value::as_str) {
            None | Some("Activity") => id_only(Some(object)),
            Some("Agent" | "Group") => actor_ids(Some(object)),
            Some("SubStatement") => ids(object),
            Some(_) => {}
        }
    }
    if let Some(context) = s.get_mut("context") {
        actor_ids(context.get_mut("instructor"));
        actor_ids(context.get_mut("team"));
        if let Some(Value::Object(lists)) = context.get_mut("contextActivities") {
            for list in lists.values_mut() {
                if let Value::Array(items) = list {
                    for a in items {
                        id_only(Some(a));
                    }
                }
            }
        }
    }
}

/// Whether a value is a language map: an object of strings only.
fn is_language_map(m: &Map<String, Value>) -> bool {
    !m.is_empty() && m.values().all(Value::is_string)
}

fn pick(map: &Map<String, Value>, languages: &[String]) -> Map<String, Value> {
    let chosen = languages
        .iter()
        .find_map(|want| {
            if want == "*" {
                return map.iter().next();
            }
            map.iter().find(|(k, _)| k.eq_ignore_ascii_case(want)).or_else(|| {
                map.iter().find(|(k, _)| {
                    k.split('-')
                        .next()
                        .is_some_and(|p| p.eq_ignore_ascii_case(want.split('-').next().unwrap_or(want)))
                })
            })
        })
        .or_else(|| map.iter().next());
    chosen.map(|(k, v)| (k.clone(), v.clone())).into_iter().collect()
}

fn canonical(v: &mut Value, languages: &[String]) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match child {
                    Value::Object(lm)
                        if ["display", "name", "description"].contains(&k.as_str()) && is_language_map(lm) =>
                    {
                        *lm = pick(lm, languages);
                    }
                    // Extensions are the client's own data, never a language map.
                    _ if k == "extensions" => {}
                    _ => canonical(child, languages),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| canonical(i, languages)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ids_keeps_what_identifies() {
        let mut s = serde_json::json!({
            "actor": {"objectType": "Agent", "name": "A", "mbox": "mailto:a@example.com"},
            "verb": {"id": "http://v.example/1", "display": {"en-US": "did"}},
            "object": {"objectType": "SubStatement",
                "actor": {"objectType": "Group", "name": "G", "mbox": "mailto:g@example.com"},
                "verb": {"id": "http://v.example/2"},
                "object": {"objectType": "Activity", "id": "http://x.example/a", "definition": {"name": {"en-US": "x"}}}}
        });
        apply(&mut s, Format::Ids, &[]);
        assert_eq!(
            s["actor"],
            serde_json::json!({"objectType": "Agent", "mbox": "mailto:a@example.com"})
        );
        assert_eq!(s["verb"], serde_json::json!({"id": "http://v.example/1"}));
        assert_eq!(s["object"]["object"], serde_json::json!({"id": "http://x.example/a"}));
        assert_eq!(
            s["object"]["actor"],
            serde_json::json!({"objectType": "Group", "mbox": "mailto:g@example.com"})
        );
    }

    #[test]
    fn format_canonical_picks_the_accepted_language() {
        let mut s = serde_json::json!({
            "actor": {"name": "A", "mbox": "mailto:a@example.com"},
            "verb": {"id": "http://v.example/1", "display": {"en-US": "did", "en-GB": "did (GB)"}},
            "object": {"id": "http://x.example/a", "definition": {"name": {"fr-FR": "réunion", "en-US": "meeting"},
                "extensions": {"http://e.example/x": {"name": {"en-US": "kept"}}}}}
        });
        apply(&mut s, Format::Canonical, &accepted_languages("en-GB;q=0.9, fr;q=1"));
        assert_eq!(s["verb"]["display"], serde_json::json!({"en-GB": "did (GB)"}));
        assert_eq!(
            s["object"]["definition"]["name"],
            serde_json::json!({"fr-FR": "réunion"})
        );
        assert_eq!(s["actor"]["name"], "A");
        assert_eq!(
            s["object"]["definition"]["extensions"]["http://e.example/x"]["name"],
            serde_json::json!({"en-US": "kept"})
        );
        let mut t = serde_json::json!({"verb": {"display": {"de-DE": "x", "en-US": "y"}}});
        apply(&mut t, Format::Canonical, &[]);
        assert_eq!(t["verb"]["display"], serde_json::json!({"de-DE": "x"}));
    }
}

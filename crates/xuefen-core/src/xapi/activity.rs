//! Activities and their definitions, interaction members included.

use super::R;
use super::StatementError;
use super::check::extensions;
use super::check::iri;
use super::check::join;
use super::check::known_keys;
use super::check::language_map;
use super::check::object;
use super::check::string;
use serde_json::{Map, Value};
use std::collections::HashSet;

pub(super) fn activity(m: &Map<String, Value>, field: &str) -> R<String> {
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
pub(super) fn interaction(def: &Map<String, Value>, f: &str) -> R<()> {
    let kind = interaction_type(def, f)?;
    if let Some(p) = def.get("correctResponsesPattern") {
        responses_pattern(p, kind, &join(f, "correctResponsesPattern"))?;
    }
    for k in COMPONENT_LISTS {
        let Some(list) = def.get(k) else { continue };
        let field = join(f, k);
        component_allowed(k, kind, &field)?;
        components(list, &field)?;
    }
    Ok(())
}

/// The specification's values of `interactionType`.
const INTERACTION_TYPES: [&str; 10] = [
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

/// The members of a definition that list an interaction's components, in the order they are checked.
const COMPONENT_LISTS: [&str; 5] = ["choices", "scale", "source", "target", "steps"];

/// The definition's `interactionType`, if given, checked against the specification's values.
fn interaction_type<'a>(def: &'a Map<String, Value>, f: &str) -> R<Option<&'a str>> {
    let Some(v) = def.get("interactionType") else {
        return Ok(None);
    };
    let field = join(f, "interactionType");
    let k = string(v, &field)?;
    if !INTERACTION_TYPES.contains(&k) {
        return Err(StatementError::new(
            "interaction_type_invalid",
            field,
            format!("interactionType must be one of {}", INTERACTION_TYPES.join(", ")),
        ));
    }
    Ok(Some(k))
}

/// `correctResponsesPattern`: an array of strings, given only with an `interactionType`.
fn responses_pattern(p: &Value, kind: Option<&str>, field: &str) -> R<()> {
    let items = p.as_array().ok_or_else(|| {
        StatementError::new(
            "interaction_pattern_invalid",
            field,
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
    match items.iter().position(|item| !item.is_string()) {
        Some(i) => Err(StatementError::new(
            "interaction_pattern_invalid",
            format!("{field}/{i}"),
            "correctResponsesPattern must be an array of strings",
        )),
        None => Ok(()),
    }
}

/// Whether the component list `k` may be given with this `interactionType` (none at all without one).
fn component_allowed(k: &str, kind: Option<&str>, field: &str) -> R<()> {
    let Some(kind) = kind else {
        return Err(StatementError::new(
            "interaction_type_required",
            field,
            format!("{k} needs an interactionType"),
        ));
    };
    let allowed = match k {
        "choices" => matches!(kind, "choice" | "sequencing"),
        "scale" => kind == "likert",
        "source" | "target" => kind == "matching",
        _ => kind == "performance",
    };
    if !allowed {
        return Err(StatementError::new(
            "interaction_component_not_allowed",
            field,
            format!("{k} is not a component of interactionType {kind}"),
        ));
    }
    Ok(())
}

/// A component list: an array of `{id, description}` whose ids are non-empty strings, distinct
/// within the list.
fn components(list: &Value, field: &str) -> R<()> {
    let items = list.as_array().ok_or_else(|| {
        StatementError::new(
            "interaction_component_invalid",
            field,
            "interaction components are an array",
        )
    })?;
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        component(item, &format!("{field}/{i}"), &mut seen)?;
    }
    Ok(())
}

/// One component `{id, description}` at `at`, its id not among the list's `seen` ones (then added).
fn component<'a>(item: &'a Value, at: &str, seen: &mut HashSet<&'a str>) -> R<()> {
    let c = object(item, at)?;
    known_keys(c, &["id", "description"], at)?;
    let cid = match c.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => {
            return Err(StatementError::new(
                "interaction_component_invalid",
                join(at, "id"),
                "an interaction component needs a string id",
            ));
        }
    };
    if !seen.insert(cid) {
        return Err(StatementError::new(
            "interaction_component_invalid",
            join(at, "id"),
            "interaction component ids are distinct within a list",
        ));
    }
    if let Some(d) = c.get("description") {
        language_map(d, &join(at, "description"))?;
    }
    Ok(())
}

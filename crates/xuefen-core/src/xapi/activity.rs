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

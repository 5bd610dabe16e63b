//! What a statement is about, for the statement query's
//! `related_agents=true` and `related_activities=true` (xAPI 1.0.3
//! Communication 2.1.3): the agents of its actor, object, authority,
//! `context.instructor` and `context.team` (an identified Group and each of
//! a Group's members), of every 2.0.0 `context.contextAgents[].agent` and
//! `context.contextGroups[].group` (IEEE 9274.1.1 §9.6.2.5/6), and the
//! activities of its object and of every `context.contextActivities` list —
//! in the statement and in a SubStatement object. Run on a validated
//! statement.

use serde_json::{Map, Value};

use super::Ifi;

/// The agent keys ([`Ifi::key`]) and the activity ids a statement relates
/// to, each once, in the order first met.
pub fn related(statement: &Value) -> (Vec<String>, Vec<String>) {
    let mut agents = Vec::new();
    let mut activities = Vec::new();
    walk(
        &|k| statement.get(k),
        statement.get("authority"),
        &mut agents,
        &mut activities,
        true,
    );
    (agents, activities)
}

/// [`related`] of a statement given by its members, with `authority` in
/// place of any it has (the LRS sets the authority of what it stores).
pub fn related_of_members(statement: &Map<String, Value>, authority: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let mut agents = Vec::new();
    let mut activities = Vec::new();
    walk(&|k| statement.get(k), authority, &mut agents, &mut activities, true);
    (agents, activities)
}

fn push(list: &mut Vec<String>, v: String) {
    if !list.contains(&v) {
        list.push(v);
    }
}

fn walk<'a>(
    get: &dyn Fn(&str) -> Option<&'a Value>,
    authority: Option<&Value>,
    agents: &mut Vec<String>,
    activities: &mut Vec<String>,
    top: bool,
) {
    actor(get("actor"), agents);
    if top {
        actor(authority, agents);
    }
    if let Some(object) = get("object") {
        match object.get("objectType").and_then(Value::as_str) {
            None | Some("Activity") => {
                if let Some(id) = object.get("id").and_then(Value::as_str) {
                    push(activities, id.to_owned());
                }
            }
            Some("Agent" | "Group") => actor(Some(object), agents),
            Some("SubStatement") if top => walk(&|k| object.get(k), None, agents, activities, false),
            Some(_) => {}
        }
    }
    if let Some(context) = get("context") {
        actor(context.get("instructor"), agents);
        actor(context.get("team"), agents);
        for (list, member) in [("contextAgents", "agent"), ("contextGroups", "group")] {
            if let Some(Value::Array(items)) = context.get(list) {
                for item in items {
                    actor(item.get(member), agents);
                }
            }
        }
        if let Some(Value::Object(lists)) = context.get("contextActivities") {
            for list in lists.values() {
                let items = match list {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    one => vec![one],
                };
                for a in items {
                    if let Some(id) = a.get("id").and_then(Value::as_str) {
                        push(activities, id.to_owned());
                    }
                }
            }
        }
    }
}

/// An Agent's key, or an identified Group's and its members'.
fn actor(v: Option<&Value>, agents: &mut Vec<String>) {
    let Some(v) = v else { return };
    if let Some(key) = ifi(v) {
        push(agents, key);
    }
    if let Some(Value::Array(members)) = v.get("member") {
        for m in members {
            if let Some(key) = ifi(m) {
                push(agents, key);
            }
        }
    }
}

fn ifi(v: &Value) -> Option<String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let i = if let Some(m) = s("mbox") {
        Ifi::Mbox(m)
    } else if let Some(m) = s("mbox_sha1sum") {
        Ifi::MboxSha1(m)
    } else if let Some(o) = s("openid") {
        Ifi::OpenId(o)
    } else {
        let a = v.get("account")?;
        Ifi::Account {
            home_page: a.get("homePage")?.as_str()?.to_owned(),
            name: a.get("name")?.as_str()?.to_owned(),
        }
    };
    Some(i.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_agents_and_activities_reach_into_context_groups_and_substatements() {
        let s = serde_json::json!({
            "actor": {"objectType": "Group", "mbox": "mailto:team@example.com",
                      "member": [{"mbox": "mailto:A@example.com"}]},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "object": {"objectType": "SubStatement",
                "actor": {"openid": "http://openid.example/u"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
                "object": {"id": "http://x.example/inner"},
                "context": {"contextActivities": {"parent": {"id": "http://x.example/inner-parent"}}}},
            "context": {"instructor": {"account": {"homePage": "http://h.example", "name": "t"}},
                        "contextActivities": {"grouping": [{"id": "http://x.example/g"}]}},
            "authority": {"mbox": "mailto:lrs@example.com"}
        });
        let (agents, activities) = related(&s);
        assert_eq!(
            agents,
            vec![
                "mbox|mailto:team@example.com",
                "mbox|mailto:a@example.com",
                "mbox|mailto:lrs@example.com",
                "openid|http://openid.example/u",
                "account|http://h.example|t"
            ]
        );
        assert_eq!(
            activities,
            vec![
                "http://x.example/inner",
                "http://x.example/inner-parent",
                "http://x.example/g"
            ]
        );
    }

    #[test]
    fn related_agents_reach_into_2_0_0_context_agents_and_context_groups() {
        let s = serde_json::json!({
            "actor": {"mbox": "mailto:learner@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "object": {"id": "http://x.example/a"},
            "context": {
                "contextAgents": [{"objectType": "contextAgent",
                                   "agent": {"mbox": "mailto:Coach@example.com"},
                                   "relevantTypes": ["http://x.example/coach"]}],
                "contextGroups": [{"objectType": "contextGroup",
                                   "group": {"objectType": "Group",
                                             "account": {"homePage": "http://h.example", "name": "cohort-1"},
                                             "member": [{"openid": "http://openid.example/peer"}]}}]
            }
        });
        let (agents, _) = related(&s);
        assert_eq!(
            agents,
            vec![
                "mbox|mailto:learner@example.com",
                "mbox|mailto:coach@example.com",
                "account|http://h.example|cohort-1",
                "openid|http://openid.example/peer"
            ]
        );
    }
}

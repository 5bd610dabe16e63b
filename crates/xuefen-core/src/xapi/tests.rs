//! Tests of statement validation and of the stored bytes.

use super::result::*;
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
    three["authority"]["member"] = serde_json::json!([two[0].clone(), two[1].clone(), {"mbox": "mailto:w@x.example"}]);
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

//! The request parsers over arbitrary bytes: the native event body, the
//! batch body (JSON array and NDJSON) and xAPI statement validation, each
//! through `xuefen_api::fuzz`, the same code a request takes. None may
//! panic. Inputs are random bytes, random JSON-ish text, and random edits
//! of valid bodies (so that the parsers' deeper paths are reached; the run
//! asserts that some inputs do parse). `XUEFEN_FUZZ_CASES` sets the number
//! of cases per target (default 3000, the short run of the test suite).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

const EVENT: &str = r#"{"event_id":"e-1","kind":"completion","course":"C1","learner":{"local_account":"u1"},"completed_at":"2026-03-01T10:00:00Z","hours":"5","score":"87.5"}"#;
const VOID: &str = r#"{"event_id":"v-1","kind":"revocation","target_event_id":"e-1","reason":"wrong learner"}"#;
const STATEMENT: &str = r#"{"id":"6690e6c9-3ef0-4ed3-8b37-7f3964730bee","actor":{"objectType":"Agent","account":{"homePage":"https://site.example","name":"u1"}},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed","display":{"en-US":"completed"}},"object":{"objectType":"Activity","id":"https://site.example/courses/C1","definition":{"name":{"zh-CN":"课程"}}},"result":{"completion":true,"success":true,"score":{"scaled":0.9},"duration":"PT5H"},"timestamp":"2026-03-01T10:00:00Z"}"#;

fn cases() -> u32 {
    std::env::var("XUEFEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Replace, insert, delete, truncate, or splice in a JSON token.
fn mutate(seed: &str, edits: &[(u8, u16, u8)]) -> Vec<u8> {
    const TOKENS: &[&str] = &[
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "true",
        "-1",
        "1e999",
        "\"\"",
        "\\u0000",
        "\\ud800",
        "0.00000000000000000000000000001",
        "99999999999999999999999999999",
        "\"kind\":\"revocation\"",
        "\"hours\":\"-0\"",
        "\n",
        "\u{feff}",
        "学",
    ];
    let mut b = seed.as_bytes().to_vec();
    for &(kind, pos, byte) in edits {
        let at = if b.is_empty() { 0 } else { pos as usize % b.len() };
        match kind % 5 {
            0 if !b.is_empty() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if !b.is_empty() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            _ => {
                let t = TOKENS[byte as usize % TOKENS.len()].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
        }
    }
    b
}

fn input(seeds: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..400),
        1 => "[\\[\\]{}\":,0-9a-z.\\-\\\\ ]{0,200}".prop_map(String::into_bytes),
        4 => (0..n, proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..6))
            .prop_map(move |(i, edits)| mutate(&seeds[i], &edits)),
    ]
}

static EVENTS_PARSED: AtomicUsize = AtomicUsize::new(0);
static STATEMENTS_ACCEPTED: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_event_body_parser_never_panics(bytes in input(vec![EVENT.into(), VOID.into()])) {
        xuefen_api::fuzz::event_body(&bytes);
    }

    #[test]
    fn the_batch_parsers_never_panic(
        bytes in input(vec![format!("[{EVENT},{VOID}]"), format!("{EVENT}\n{VOID}\n"), format!("[{EVENT}]")]),
        ndjson in any::<bool>(),
    ) {
        let parsed = xuefen_api::fuzz::batch_body(&bytes, ndjson);
        EVENTS_PARSED.fetch_add(parsed, Ordering::Relaxed);
    }

    #[test]
    fn xapi_statement_validation_never_panics(bytes in input(vec![STATEMENT.into()])) {
        if xuefen_api::fuzz::xapi_statement(&bytes) {
            STATEMENTS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The seeds are valid, so the runs above reach past the first parse.
#[test]
fn the_seeds_parse() {
    assert_eq!(
        xuefen_api::fuzz::batch_body(format!("[{EVENT},{VOID}]").as_bytes(), false),
        2
    );
    assert_eq!(
        xuefen_api::fuzz::batch_body(format!("{EVENT}\n{VOID}\n").as_bytes(), true),
        2
    );
    assert!(xuefen_api::fuzz::xapi_statement(STATEMENT.as_bytes()));
}

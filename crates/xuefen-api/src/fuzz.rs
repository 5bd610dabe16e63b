//! Entry points for fuzzing the request parsers: each takes arbitrary
//! bytes, runs them through exactly the code a request body goes through,
//! and must return (never panic) whatever the bytes are. Used by the
//! arbitrary-bytes runs in `tests/fuzz.rs`; not part of the HTTP API.

use xuefen_core::ids::SiteId;

/// `PUT /v1/events/{id}`: one JSON event body, parsed and validated.
pub fn event_body(bytes: &[u8]) {
    if crate::body::check_no_nul(bytes).is_err() {
        return;
    }
    if let Ok(input) = crate::body::parse_json::<crate::ledger::EventIn>(bytes) {
        let _ = input.parse_body();
    }
}

/// `POST /v1/events`: a JSON array or NDJSON batch, split into items and
/// each item parsed as the handler does. Returns how many items parsed
/// into events (for the caller's statistics).
pub fn batch_body(bytes: &[u8], ndjson: bool) -> usize {
    let Ok(site) = SiteId::parse("fuzz") else {
        return 0;
    };
    match crate::ledger::split_batch(bytes, ndjson) {
        Ok(items) => items
            .into_iter()
            .filter(|item| crate::ledger::parse_item(&site, item).is_ok())
            .count(),
        Err(_) => 0,
    }
}

/// `PUT`/`POST /xapi/statements`: one statement validated and prepared as
/// the xAPI door does. Returns whether it was accepted.
pub fn xapi_statement(bytes: &[u8]) -> bool {
    let Ok(raw) = std::str::from_utf8(bytes) else {
        return false;
    };
    let version = xuefen_core::xapi::Version::V2;
    let stamp = xuefen_core::xapi::Stamp {
        version: &version,
        authority: r#"{"objectType":"Agent","account":{"homePage":"https://fuzz.example","name":"fuzz"}}"#,
        stored: xuefen_core::event::Millis(1_767_225_600_000),
        id_if_absent: "2c9f1a4e-3b7d-4c8e-9a1f-0d2e3f4a5b6c",
    };
    xuefen_core::xapi::prepare(raw, &stamp).is_ok()
}

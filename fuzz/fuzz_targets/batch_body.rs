//! `POST /v1/events`: the first byte picks the framing (even: JSON array,
//! odd: NDJSON), the rest is the body, split and parsed item by item as the
//! handler does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some((&mode, body)) = bytes.split_first() {
        xuefen_api::fuzz::batch_body(body, mode % 2 == 1);
    }
});

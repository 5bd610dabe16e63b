//! `PUT /v1/events/{id}`: one JSON event body through the code a request
//! takes. Must return, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    xuefen_api::fuzz::event_body(bytes);
});

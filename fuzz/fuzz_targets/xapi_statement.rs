//! `PUT`/`POST /xapi/statements`: one statement validated and prepared as
//! the xAPI door does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    xuefen_api::fuzz::xapi_statement(bytes);
});

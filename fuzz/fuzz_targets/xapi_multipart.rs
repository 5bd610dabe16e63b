//! A `multipart/mixed` statement request (attachments): the boundary is
//! fixed, the body is the input; parsing must return, and every part it
//! returns must carry the SHA-256 it was matched by.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xuefen_core::xapi::attachments;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((_json, parts)) = attachments::parse(bytes, "xuefen-fuzz-boundary") {
        for part in parts {
            assert_eq!(part.sha2.len(), 64, "a part is matched by a hex SHA-256");
        }
    }
});

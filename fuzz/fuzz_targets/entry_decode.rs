//! Canonical entry decoding: never panics, and whatever it accepts
//! re-encodes to exactly the bytes it was given (the decoder refuses
//! anything the encoder would not have written).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xuefen_core::entry::EntryBody;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(body) = EntryBody::decode(bytes) {
        assert_eq!(body.encode(), bytes, "an accepted entry must be canonical");
    }
});

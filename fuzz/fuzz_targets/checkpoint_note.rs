//! Checkpoints read from outside (`xuefen verify --checkpoint`, `xuefen
//! bank pull`): a signed note opened under a fixed log key, and the note
//! body and tile paths parsed on their own. Whatever parses must write
//! back to the same text.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use xuefen_core::tlog::{self, LogCheckpoint};

const ORIGIN: &str = "fuzz.example/xuefen";

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = LogCheckpoint::open(text, ORIGIN, &key);
    if let Some(cp) = LogCheckpoint::parse_body(text) {
        assert_eq!(cp.body(), text, "a parsed checkpoint body is canonical");
    }
    if let Some((id, width)) = tlog::parse_tile_path(text) {
        assert_eq!(tlog::tile_path(id, width), format!("tile/{text}"));
    }
});

//! Canonical entry decoding over arbitrary bytes: `EntryBody::decode` never
//! panics, and whatever it accepts re-encodes to exactly the same bytes (it
//! refuses anything `encode` would not have produced). Inputs are random
//! bytes and random edits of the canonical examples in
//! docs/ledger-format.md. `XUEFEN_FUZZ_CASES` sets the number of cases
//! (default 3000, the short run of the test suite).

use proptest::prelude::*;
use xuefen_core::entry::EntryBody;

fn seeds() -> Vec<Vec<u8>> {
    let doc = include_str!("../../../docs/ledger-format.md");
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for line in doc.lines() {
        match (open.as_mut(), line.trim_start().strip_prefix("```")) {
            (Some(body), Some(_)) => {
                let digits: String = body.split_whitespace().collect();
                if let Ok(bytes) = hex::decode(digits) {
                    out.push(bytes);
                }
                open = None;
            }
            (Some(body), None) => body.push_str(line),
            (None, Some(info)) if info.trim().starts_with("hex canonical seq=") => open = Some(String::new()),
            (None, Some(_)) => open = None,
            (None, None) => {}
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("XUEFEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// Applies `edits` (kind, position, byte) to `seed`: replace, insert,
/// delete, or truncate.
fn mutate(seed: &[u8], edits: &[(u8, u16, u8)]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(kind, pos, byte) in edits {
        let at = if b.is_empty() { 0 } else { pos as usize % b.len() };
        match kind % 4 {
            0 if !b.is_empty() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if !b.is_empty() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            _ => {}
        }
    }
    b
}

#[test]
fn the_seeds_are_canonical_entries() {
    let seeds = seeds();
    assert!(seeds.len() >= 2, "docs/ledger-format.md has the canonical examples");
    for s in &seeds {
        let body = EntryBody::decode(s).expect("a documented example decodes");
        assert_eq!(&body.encode(), s);
    }
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    let n = seeds.len().max(1);
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..600),
        3 => (0..n, proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..8))
            .prop_map(move |(i, edits)| mutate(seeds.get(i).map_or(&[][..], |s| s), &edits)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_accepts_only_canonical_bytes(bytes in input()) {
        if let Ok(body) = EntryBody::decode(&bytes) {
            prop_assert_eq!(body.encode(), bytes);
        }
    }
}

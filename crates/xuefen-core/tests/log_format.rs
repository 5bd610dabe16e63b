//! Checks the worked example of the log (`docs/ledger-format.md`, section
//! 7) against the code: the leaves, the tile, the root, the signed
//! checkpoint and the verifier key, byte for byte.

use ed25519_dalek::SigningKey;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint, TileId, Tiles};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ledger-format.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The body of the one fenced block whose info string is `info`.
fn block(doc: &str, info: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in doc.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (open.as_mut(), fence) {
            (Some(_), Some(_)) => {
                if let Some((i, b)) = open.take()
                    && i == info
                {
                    out.push(b);
                }
            }
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, Some(i)) => open = Some((i.trim().to_owned(), String::new())),
            (None, None) => {}
        }
    }
    assert_eq!(out.len(), 1, "docs/ledger-format.md needs exactly one block ```{info}");
    out.remove(0)
}

fn line_value(doc: &str, label: &str) -> String {
    let found: Vec<&str> = doc.lines().filter_map(|l| l.trim().strip_prefix(label)).collect();
    assert_eq!(found.len(), 1, "docs/ledger-format.md needs one line `{label} …`");
    found[0].trim().to_owned()
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s.trim()).expect("hex").try_into().expect("32 bytes")
}

struct Example {
    entry_hashes: Vec<[u8; 32]>,
    leaves: Vec<[u8; 32]>,
    tile: Vec<u8>,
    root: [u8; 32],
    note: String,
    verifier: String,
}

fn compute(doc: &str) -> Example {
    let entry_hashes: Vec<[u8; 32]> = block(doc, "text log-entry-hashes")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| hex32(l.split('#').next().unwrap_or_default()))
        .collect();
    let leaves: Vec<[u8; 32]> = entry_hashes.iter().map(tlog::leaf).collect();
    let changed = tlog::append(0, &Tiles::new(), &leaves).expect("append");
    let tiles: Tiles = changed.into_iter().collect();
    let tile = tlog::tile_bytes(&tiles[&TileId { level: 0, index: 0 }]);
    let size = leaves.len() as u64;
    let root = tlog::root(size, &tiles).expect("root");
    let key = SigningKey::from_bytes(&hex32(&line_value(doc, "log-key-seed:")));
    let origin = line_value(doc, "log-origin:");
    let cp = LogCheckpoint {
        origin: origin.clone(),
        size,
        root,
    };
    let note = cp.sign(&key).expect("sign");
    Example {
        entry_hashes,
        leaves,
        tile,
        root,
        note,
        verifier: tlog::verifier_key(&origin, &key.verifying_key()),
    }
}

#[test]
fn the_worked_example_of_the_log_is_what_the_code_makes() {
    let doc = doc();
    let ex = compute(&doc);
    assert_eq!(ex.entry_hashes.len(), 3);
    let leaves: Vec<String> = ex.leaves.iter().map(hex::encode).collect();
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(&line_value(&doc, &format!("log-leaf {i}:")), leaf, "leaf {i}");
    }
    let tile: String = block(&doc, "hex log-tile/0/000.p/3").split_whitespace().collect();
    assert_eq!(tile, hex::encode(&ex.tile));
    assert_eq!(line_value(&doc, "log-root:"), hex::encode(ex.root));
    assert_eq!(
        block(&doc, "text log-checkpoint"),
        ex.note,
        "the signed checkpoint, byte for byte"
    );
    assert_eq!(line_value(&doc, "log-verifier-key:"), ex.verifier);
    // The root is RFC 9162's over the three leaves.
    let left = merkle::node_hash(&ex.leaves[0], &ex.leaves[1]);
    assert_eq!(ex.root, merkle::node_hash(&left, &ex.leaves[2]));
    // And the note opens with the key, and fails with the root changed.
    let key = SigningKey::from_bytes(&hex32(&line_value(&doc, "log-key-seed:")));
    let origin = line_value(&doc, "log-origin:");
    assert!(LogCheckpoint::open(&ex.note, &origin, &key.verifying_key()).is_ok());
    let forged = ex.note.replacen("\n3\n", "\n2\n", 1);
    assert!(LogCheckpoint::open(&forged, &origin, &key.verifying_key()).is_err());
}

/// Prints the fragments to paste into the document after a deliberate change:
/// `cargo test -p xuefen-core --test log_format -- --nocapture log_fragments`
#[test]
fn log_fragments() {
    let ex = compute(&doc());
    for (i, l) in ex.leaves.iter().enumerate() {
        println!("log-leaf {i}: {}", hex::encode(l));
    }
    for chunk in ex.tile.chunks(32) {
        println!("{}", hex::encode(chunk));
    }
    println!("log-root: {}", hex::encode(ex.root));
    print!("{}", ex.note);
    println!("log-verifier-key: {}", ex.verifier);
}

use super::*;
use proptest::prelude::*;

fn hx(s: &str) -> Hash {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}

/// RFC 6962 test vectors (the eight leaves of the Certificate Transparency
/// reference tests and the root of each prefix of them).
const RFC6962_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const RFC6962_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn grow(leaves: &[Hash], steps: &[usize]) -> Tiles {
    let mut tiles = Tiles::new();
    let mut size = 0usize;
    for &step in steps.iter().chain(std::iter::once(&usize::MAX)) {
        let end = size.saturating_add(step).min(leaves.len());
        for (id, hashes) in append(size as u64, &tiles, &leaves[size..end]).expect("append") {
            tiles.insert(id, hashes);
        }
        size = end;
        if size == leaves.len() {
            break;
        }
    }
    tiles
}

#[test]
fn the_rfc6962_vectors_give_their_roots_from_tiles() {
    let leaves: Vec<Hash> = RFC6962_LEAVES
        .iter()
        .map(|l| merkle::leaf_hash(&hex::decode(l).expect("hex")))
        .collect();
    for n in 1..=8usize {
        let tiles = grow(&leaves[..n], &[1, 2, 1]);
        assert_eq!(root(n as u64, &tiles), Ok(hx(RFC6962_ROOTS[n - 1])), "size {n}");
    }
    assert_eq!(
        root(0, &Tiles::new()),
        Ok(hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
    );
}

#[test]
fn tile_paths_are_written_and_read_as_c2sp_names_them() {
    let id = TileId {
        level: 0,
        index: 1_234_067,
    };
    assert_eq!(tile_path(id, 256), "tile/0/x001/x234/067");
    assert_eq!(tile_path(id, 8), "tile/0/x001/x234/067.p/8");
    assert_eq!(tile_path(TileId { level: 2, index: 5 }, 256), "tile/2/005");
    assert_eq!(parse_tile_path("0/x001/x234/067.p/8"), Some((id, 8)));
    assert_eq!(parse_tile_path("1/000"), Some((TileId { level: 1, index: 0 }, 256)));
    for bad in [
        "0/x001/x234/067.p/256",
        "0/x001/x234/067.p/0",
        "0/1",
        "0/x000/001",
        "0/001/x001",
        "8/000",
        "entries/000",
        "0/000.p/",
        "0/000/",
    ] {
        assert_eq!(parse_tile_path(bad), None, "{bad}");
    }
    // The same grouping as the tlog_tiles crate's (whose paths add a height element).
    for n in [0u64, 7, 999, 1000, 1_234_067, u64::MAX / 256] {
        let theirs = tlog_tiles::Tile::new(8, 1, n, 3, false).path();
        assert_eq!(
            theirs.replacen("tile/8/", "tile/", 1),
            tile_path(TileId { level: 1, index: n }, 3)
        );
    }
}

struct Oracle(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for Oracle {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(*i as usize)
                    .copied()
                    .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// Builds the same log with the tlog_tiles crate (a port of the Go
/// reference), whose stored hashes are indexed its own way.
fn oracle(entry_hashes: &[Hash]) -> Oracle {
    let mut stored: Vec<tlog_tiles::Hash> = Vec::new();
    for (n, h) in entry_hashes.iter().enumerate() {
        let r = Oracle(stored.clone());
        let new = tlog_tiles::stored_hashes(n as u64, h, &r).expect("stored hashes");
        stored.extend(new);
    }
    Oracle(stored)
}

proptest! {
    /// Grown in any steps, the tiles give the root, inclusion and
    /// consistency proofs of the reference: the same root as the tlog_tiles
    /// crate, proofs that verify by RFC 9162 and only with the right root;
    /// full tiles never change once full.
    #[test]
    fn tiles_agree_with_the_reference(n in 1usize..1300, steps in proptest::collection::vec(1usize..700, 1..5),
                                      at in any::<prop::sample::Index>(), from in any::<prop::sample::Index>()) {
        let entries: Vec<Hash> = (0..n as u64).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let leaves: Vec<Hash> = entries.iter().map(leaf).collect();
        let tiles = grow(&leaves, &steps);
        let once = grow(&leaves, &[n]);
        prop_assert_eq!(&tiles, &once);
        let size = n as u64;
        let r = root(size, &tiles).expect("root");
        let theirs = tlog_tiles::tree_hash(size, &oracle(&entries)).expect("their root");
        prop_assert_eq!(r, theirs.0);
        for (id, hashes) in &tiles {
            prop_assert_eq!(hashes.len() as u64, tile_width(*id, size));
        }
        let i = at.index(n) as u64;
        let path = inclusion_proof(i, size, &tiles).expect("path");
        prop_assert!(merkle::verify_inclusion(i, size, &leaves[i as usize], &path, &r));
        let mut other = r;
        other[0] ^= 1;
        prop_assert!(!merkle::verify_inclusion(i, size, &leaves[i as usize], &path, &other));
        let m = from.index(n) as u64 + 1;
        let old_root = root(m, &grow(&leaves[..m as usize], &[n])).expect("old root");
        let proof = consistency_proof(m, size, &tiles).expect("consistency");
        prop_assert!(merkle::verify_consistency(m, size, &old_root, &r, &proof));
        if m < size {
            prop_assert!(!merkle::verify_consistency(m, size, &other, &r, &proof));
        }
    }
}

#[test]
fn a_missing_or_short_tile_is_named() {
    let leaves: Vec<Hash> = (0..300u64)
        .map(|i| leaf(&merkle::leaf_hash(&i.to_be_bytes())))
        .collect();
    let mut tiles = grow(&leaves, &[300]);
    let edge = TileId { level: 0, index: 1 };
    assert_eq!(edge_tiles(300), vec![edge, TileId { level: 1, index: 0 }]);
    tiles.get_mut(&edge).expect("edge").truncate(10);
    assert_eq!(
        append(300, &tiles, &leaves[..1]),
        Err(TileError::Missing { id: edge, width: 44 })
    );
    assert!(root(300, &tiles).is_err());
}

/// The signed-note example of the C2SP specification: the same key gives
/// the same signature line.
#[test]
fn the_signed_note_example_of_the_specification_is_reproduced() {
    let secret = STANDARD
        .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .expect("base64");
    let key = SigningKey::from_bytes(&secret[1..].try_into().expect("32 bytes"));
    assert_eq!(key_id("PeterNeumann", &key.verifying_key()), 0xc74f20a3);
    let signer = LogSigner::new("PeterNeumann", key);
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let mut note = Note::new(text.as_bytes(), &[]).expect("note");
    note.add_sigs(&[&signer]).expect("sign");
    assert_eq!(
        String::from_utf8(note.to_bytes()).expect("utf-8"),
        format!(
            "{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        )
    );
}

#[test]
fn checkpoints_open_only_with_the_log_key_and_origin() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let cp = LogCheckpoint {
        origin: "ledger.example/xuefen".into(),
        size: 3,
        root: [9; 32],
    };
    let note = cp.sign(&key).expect("sign");
    assert!(note.starts_with(
        "ledger.example/xuefen\n3\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n— ledger.example/xuefen "
    ));
    assert_eq!(
        LogCheckpoint::open(&note, &cp.origin, &key.verifying_key()),
        Ok(cp.clone())
    );
    let other = SigningKey::from_bytes(&[8; 32]);
    assert!(matches!(
        LogCheckpoint::open(&note, &cp.origin, &other.verifying_key()),
        Err(NoteFailure::Unsigned(_))
    ));
    assert!(LogCheckpoint::open(&note, "elsewhere.example/log", &key.verifying_key()).is_err());
    let forged = note.replacen("\n3\n", "\n4\n", 1);
    assert!(LogCheckpoint::open(&forged, &cp.origin, &key.verifying_key()).is_err());
    for bad in [
        "o\n03\nAAAA\n",
        "o\n3\n",
        "\n3\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
    ] {
        assert_eq!(LogCheckpoint::parse_body(bad), None, "{bad:?}");
    }
}

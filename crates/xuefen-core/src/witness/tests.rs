use super::*;
use crate::tlog::{self, Tiles};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The spec's example cosignature line (tlog-cosignature, "Format"): its
/// 4-byte key ID, then the timestamp of the example's signed message.
#[test]
fn the_spec_example_line_has_the_layout_of_a_cosignature() {
    let line = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
    let (name, id, ts, _) = parse_line(line).expect("a cosignature line");
    assert_eq!(name, "witness.example.com/w1");
    assert_eq!(id, 0x8d66_cf3f);
    assert_eq!(ts, 1_679_315_147, "the spec's example message says `time 1679315147`");
}

#[test]
fn a_cosignature_verifies_over_the_message_the_spec_names() {
    let k = key(7);
    let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let line = cosign("witness.example/w1", &k, text, 1_679_315_147);
    let c = Cosigner {
        name: "witness.example/w1".into(),
        key: k.verifying_key(),
    };
    assert_eq!(verify_line(&line, &c, text), Some(1_679_315_147));
    // The signature is Ed25519 over exactly the spec's message.
    let (_, id, _, sig) = parse_line(&line).expect("line");
    assert_eq!(id, c.key_id());
    let msg = b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert!(k.verifying_key().verify(msg, &sig).is_ok());
    // Another text, name or key does not verify.
    assert_eq!(verify_line(&line, &c, "example.com/behind-the-sofa\n1\nAA==\n"), None);
    let other = Cosigner {
        name: "witness.example/w2".into(),
        key: k.verifying_key(),
    };
    assert_eq!(verify_line(&line, &other, text), None);
    // The key ID is SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[..4].
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"witness.example/w1\n\x04");
    h.update(k.verifying_key().as_bytes());
    let d = h.finalize();
    assert_eq!(c.key_id(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
}

#[test]
fn a_cosigner_parses_from_hex_or_its_verifier_key() {
    let c = Cosigner {
        name: "bank.example/w".into(),
        key: key(3).verifying_key(),
    };
    let hex_spec = format!("bank.example/w={}", hex::encode(c.key.as_bytes()));
    assert_eq!(Cosigner::parse(&hex_spec), Ok(c.clone()));
    assert_eq!(Cosigner::parse(&format!("bank.example/w={}", c.vkey())), Ok(c.clone()));
    assert!(Cosigner::parse("bank.example/w").is_err());
    assert!(Cosigner::parse("bank example=00").is_err());
    assert!(Cosigner::parse(&format!("other={}", c.vkey())).is_err());
}

#[test]
fn the_request_body_round_trips_and_bad_ones_are_refused() {
    let req = AddCheckpoint {
        old_size: 20,
        proof: vec![[1; 32], [2; 32]],
        note: "o\n21\nAA==\n\n— o AAAA\n".into(),
    };
    assert_eq!(AddCheckpoint::parse(&req.body()), Ok(req));
    for bad in [
        "old 01\n\nx",
        "old -1\n\nx",
        "new 1\n\nx",
        "old 1\nnot-base64\n\nx",
        "old 1\n",
    ] {
        assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
    }
    let many = format!(
        "old 1\n{}\nx",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64)
    );
    assert!(AddCheckpoint::parse(&many).unwrap_err().contains("63"));
}

fn log_of(n: u64) -> (Tiles, Vec<Hash>) {
    let leaves: Vec<Hash> = (0..n).map(|i| tlog::leaf(&[i as u8; 32])).collect();
    let tiles: Tiles = tlog::append(0, &Tiles::new(), &leaves)
        .expect("append")
        .into_iter()
        .collect();
    (tiles, leaves)
}

fn checkpoint(size: u64, tiles: &Tiles) -> LogCheckpoint {
    LogCheckpoint {
        origin: "xuefen.test/log".into(),
        size,
        root: tlog::root(size, tiles).expect("root"),
    }
}

#[test]
fn the_witness_checks_follow_the_spec() {
    let log = key(1);
    let pk = log.verifying_key();
    let (tiles, _) = log_of(40);
    let c10 = checkpoint(10, &tiles);
    let c40 = checkpoint(40, &tiles);
    let note10 = c10.sign(&log).expect("sign");
    let note40 = c40.sign(&log).expect("sign");
    let first = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        note: note10.clone(),
    };
    assert_eq!(decide(&first, Some(&pk), None), Ok(c10.clone()));
    assert!(matches!(decide(&first, None, None), Err(Refusal::UnknownLog(_))));
    // Signed by another key: 403.
    let forged = checkpoint(10, &tiles).sign(&key(2)).expect("sign");
    let r = decide(
        &AddCheckpoint {
            note: forged,
            ..first.clone()
        },
        Some(&pk),
        None,
    );
    assert_eq!(r.map_err(|e| e.status()), Err(403));
    // Old size not the witness's: 409 with its size.
    assert_eq!(
        decide(&first, Some(&pk), Some(&c10)),
        Err(Refusal::Conflict { size: 10 })
    );
    // Old size above the checkpoint (a rolled-back log): 400.
    let back = AddCheckpoint {
        old_size: 40,
        proof: vec![],
        note: note10.clone(),
    };
    assert_eq!(decide(&back, Some(&pk), Some(&c40)).map_err(|e| e.status()), Err(400));
    // A good proof from 10 to 40 is cosigned; a proof of another tree is 422.
    let proof = tlog::consistency_proof(10, 40, &tiles).expect("proof");
    let grow = AddCheckpoint {
        old_size: 10,
        proof: proof.clone(),
        note: note40.clone(),
    };
    assert_eq!(decide(&grow, Some(&pk), Some(&c10)), Ok(c40.clone()));
    let fork = LogCheckpoint {
        origin: "xuefen.test/log".into(),
        size: 40,
        root: tlog::root(40, &{
            let leaves: Vec<Hash> = (0..40u64).map(|i| tlog::leaf(&[i as u8 ^ 0x55; 32])).collect();
            tlog::append(0, &Tiles::new(), &leaves)
                .expect("append")
                .into_iter()
                .collect()
        })
        .expect("root"),
    };
    let fork_note = fork.sign(&log).expect("sign");
    let forked = AddCheckpoint {
        old_size: 10,
        proof,
        note: fork_note.clone(),
    };
    assert_eq!(decide(&forked, Some(&pk), Some(&c10)).map_err(|e| e.status()), Err(422));
    // Same size, another root: 422.
    let same = AddCheckpoint {
        old_size: 40,
        proof: vec![],
        note: fork_note,
    };
    assert_eq!(decide(&same, Some(&pk), Some(&c40)).map_err(|e| e.status()), Err(422));
    // A proof from 0 must be empty.
    let junk = AddCheckpoint {
        old_size: 0,
        proof: vec![[9; 32]],
        note: note10,
    };
    assert_eq!(decide(&junk, Some(&pk), None).map_err(|e| e.status()), Err(422));
}

#[test]
fn cosignatures_keep_one_valid_line_per_named_witness() {
    let w1 = key(11);
    let w2 = key(12);
    let text = "o\n1\nAA==\n";
    let cosigners = vec![
        Cosigner {
            name: "w1".into(),
            key: w1.verifying_key(),
        },
        Cosigner {
            name: "w2".into(),
            key: w2.verifying_key(),
        },
    ];
    let a = cosign("w1", &w1, text, 100);
    let b = cosign("w1", &w1, text, 200);
    let bad = cosign("w2", &w1, text, 100);
    let unknown = cosign("w3", &w2, text, 100);
    let got = cosignatures(
        [a.as_str(), b.as_str(), bad.as_str(), unknown.as_str()],
        &cosigners,
        text,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].witness, "w1");
    assert_eq!(got[0].timestamp, 200);
}

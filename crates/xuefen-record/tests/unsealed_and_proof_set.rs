//! A record whose line is not sealed yet (no checkpoint), and the proof set:
//! both proofs verify, and changing either proof's value fails the record.
//! The entry is the version-2 worked example of docs/ledger-format.md
//! (section 6b), decoded from its canonical bytes.

use ed25519_dalek::SigningKey;
use serde_json::Value;
use xuefen_core::entry::{Entry, EntryBody, entry_hash};
use xuefen_core::ids::Position;
use xuefen_record::record::{Issuer, Line, LineOutcome, Subject, issue, verify};

const V2_EXAMPLE: &str = "02010000000d68616e677a686f752d7869687500000010687a78682d32303235\
2d303030313233ffe0eb691971040e8bbe7c8f59e1ffe868b45c526720969b73\
6d517d5b4cac550000000650592d3130310000000a766f636174696f6e616c00\
000000000000fa00000197be90090000000197bfe7d1ca0100000000000021ca\
0100000000000004b00000000300000000000001000000087a6a2d7079313031\
00";

fn record() -> (Value, SigningKey) {
    let bytes = hex::decode(V2_EXAMPLE).expect("hex");
    let body = EntryBody::decode(&bytes).expect("the worked example decodes");
    let position = Position { chain: 7, seq: 1 };
    let prev = [0u8; 32];
    let entry = Entry {
        position,
        prev_hash: prev,
        hash: entry_hash(position, &prev, &bytes),
        body,
    };
    let log_key = SigningKey::from_bytes(&[7; 32]);
    let key = xuefen_record::record::issuer_key(&log_key);
    let issuer = Issuer {
        key: &key,
        name: "test issuer",
        log_origin: "xuefen.example/ledger",
        log_key: log_key.verifying_key(),
    };
    let subject = Subject {
        id: "urn:uuid:00000000-0000-4000-8000-000000000001",
        learner: "lrn_00000000000000000000000000000001",
        issued_at: "2026-12-02T08:00:00Z",
        identifier: &[],
    };
    let line = Line {
        entry,
        status: "awarded".into(),
        course_title: Some("示例课程".into()),
        site_name: None,
        sealed: None,
    };
    (issue(&issuer, &subject, &[line], None).expect("issue"), key)
}

#[test]
fn an_unsealed_line_is_reported_not_sealed_and_the_record_still_holds() {
    let (rec, key) = record();
    assert_eq!(
        rec["credentialSubject"]["achievement"][0]["ledgerEvidence"]["sealed"],
        false
    );
    assert!(rec.get("ledgerCheckpoint").is_none());
    let report = verify(&rec, Some(&key.verifying_key()), None);
    assert!(report.proof.is_ok(), "{:?}", report.proof);
    assert_eq!(report.lines.len(), 1);
    assert_eq!(report.lines[0].outcome, LineOutcome::NotSealed);
    assert!(report.ok());
    // An unsealed line that claims other credits still fails.
    let mut changed = rec.clone();
    changed["credentialSubject"]["achievement"][0]["awardedCredits"] = "9.00".into();
    let report = verify(&changed, None, None);
    assert!(report.proof.is_err());
    assert!(matches!(report.lines[0].outcome, LineOutcome::Failed(_)));
}

#[test]
fn the_proof_set_holds_both_suites_and_each_one_counts() {
    let (rec, key) = record();
    let suites: Vec<&str> = rec["proof"]
        .as_array()
        .expect("a proof set")
        .iter()
        .map(|p| p["cryptosuite"].as_str().expect("suite"))
        .collect();
    assert_eq!(suites, ["eddsa-rdfc-2022", "eddsa-jcs-2022"]);
    assert!(xuefen_record::proof::verify(&rec, Some(&key.verifying_key())).is_ok());
    for i in 0..2 {
        let mut changed = rec.clone();
        let value = changed["proof"][i]["proofValue"].as_str().expect("value").to_owned();
        // Another valid base58 signature: the other proof's.
        let other = rec["proof"][1 - i]["proofValue"].clone();
        assert_ne!(Value::from(value), other);
        changed["proof"][i]["proofValue"] = other;
        let err = xuefen_record::proof::verify(&changed, None).expect_err("a changed proof fails");
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
    // A set without the rdfc proof is refused.
    let mut only_jcs = rec.clone();
    only_jcs["proof"] = rec["proof"][1].clone();
    assert!(xuefen_record::proof::verify(&only_jcs, None).is_err());
}

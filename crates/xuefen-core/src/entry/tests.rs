//! Round trips of the canonical bytes of both format versions, the worked
//! example of `docs/ledger-format.md`, and the generators other modules' tests use.

use super::*;
use proptest::prelude::*;

/// Entries of either format version, as a decoder gives them back.
pub(crate) fn arb_body() -> impl Strategy<Value = EntryBody> {
    prop_oneof![arb_body_v1(), arb_body_v2()]
}

/// Version-2 entries: a commitment, a reason code, no note.
pub(crate) fn arb_body_v2() -> impl Strategy<Value = EntryBody> {
    (
        arb_body_v1(),
        proptest::sample::select(EntryKind::ALL.to_vec()),
        any::<[u8; 32]>(),
        "[a-z0-9_]{0,32}",
    )
        .prop_map(|(mut b, kind, commitment, code)| {
            b.kind = kind;
            b.learner = LearnerId::nobody();
            b.commitment = Some(commitment);
            b.reason = Reason::parse(code, "reason").expect("strategy code");
            b
        })
}

/// Version-1 entries: the learner id and free text.
pub(crate) fn arb_body_v1() -> impl Strategy<Value = EntryBody> {
    let id = "[a-z0-9][a-z0-9-]{0,20}";
    let token = "[A-Za-z0-9._:-]{1,40}";
    (
        (
            proptest::sample::select(EntryKind::ALL[..8].to_vec()),
            id,
            token,
            any::<[u8; 16]>(),
            token,
            "[a-z0-9_-]{1,20}",
        ),
        (
            -10_000i64..=10_000,
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(0i64..=10_000),
            proptest::option::of(0i64..=1_000_000),
            any::<u32>(),
        ),
        (
            proptest::option::of((any::<u32>(), any::<u64>())),
            proptest::option::of(token),
            "\\PC{0,50}",
            proptest::option::of(token),
            proptest::option::of(0i64..=10_000),
        ),
    )
        .prop_map(
            |(
                (kind, site, ev, learner, course, cat),
                (cr, occ, rec, score, hours, rv),
                (refers, target, reason, group, withheld),
            )| EntryBody {
                kind,
                site: SiteId::parse(site).expect("strategy id"),
                event_id: EventId::parse(ev).expect("strategy id"),
                learner: LearnerId::from_random(learner),
                commitment: None,
                course: CourseCode::parse(course).expect("strategy id"),
                category: Category::parse(cat).expect("strategy id"),
                credits: Credits::from_cents(cr),
                occurred_at: Millis(occ),
                recorded_at: Millis(rec),
                score: score.map(Score::from_cents),
                hours: hours.map(Hours::from_cents),
                rule_version: rv,
                refers_to: refers.map(|(chain, seq)| Position { chain, seq }),
                target_event: target.map(|t| EventId::parse(t).expect("strategy id")),
                reason: Reason::parse(reason, "reason").expect("strategy reason"),
                note: None,
                recognition_group: group.map(|g| GroupId::parse(g).expect("strategy id")),
                withheld: withheld.map(Credits::from_cents),
            },
        )
}

proptest! {
    /// Canonical encoding round-trips: decode(encode(e)) == e for every entry.
    #[test]
    fn canonical_encoding_round_trips(body in arb_body()) {
        let bytes = body.encode();
        prop_assert_eq!(EntryBody::decode(&bytes), Ok(body));
    }

    /// Canonical encoding is injective on the bytes it decodes: any
    /// single-byte change either fails to decode or decodes to a
    /// different entry, and always changes the hash.
    #[test]
    fn a_changed_byte_changes_the_entry_and_the_hash(body in arb_body(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = body.encode();
        let mut altered = bytes.clone();
        let i = at.index(altered.len());
        altered[i] ^= flip;
        if let Ok(other) = EntryBody::decode(&altered) {
            prop_assert_ne!(other, body);
        }
        let pos = Position { chain: 0, seq: 1 };
        prop_assert_ne!(entry_hash(pos, &GENESIS, &bytes), entry_hash(pos, &GENESIS, &altered));
    }

    /// The two versions never hash alike: a version-1 entry re-encoded
    /// with a commitment is another entry under another domain tag.
    #[test]
    fn a_version_one_entry_and_its_version_two_form_hash_differently(body in arb_body_v1(), c in any::<[u8; 32]>()) {
        let pos = Position { chain: 3, seq: 9 };
        let v2 = EntryBody { commitment: Some(c), reason: Reason::default(), ..body.clone() };
        prop_assert_eq!(body.encode()[0], FORMAT_V1);
        prop_assert_eq!(v2.encode()[0], FORMAT_VERSION);
        prop_assert_ne!(entry_hash(pos, &GENESIS, &body.encode()), entry_hash(pos, &GENESIS, &v2.encode()));
    }

    /// A learner's commitments differ at every position and under every secret.
    #[test]
    fn commitments_differ_by_position_and_secret(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), seq in 1u64..1_000_000) {
        let p = Position { chain: 1, seq };
        let q = Position { chain: 1, seq: seq + 1 };
        prop_assert_ne!(learner_commitment(&a, p), learner_commitment(&a, q));
        if a != b {
            prop_assert_ne!(learner_commitment(&a, p), learner_commitment(&b, p));
        }
    }

    /// Truncated encodings never decode.
    #[test]
    fn truncated_bytes_never_decode(body in arb_body(), cut in any::<prop::sample::Index>()) {
        let bytes = body.encode();
        let n = cut.index(bytes.len());
        prop_assert!(EntryBody::decode(&bytes[..n]).is_err());
    }
}

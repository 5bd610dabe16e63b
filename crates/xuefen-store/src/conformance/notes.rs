//! Conformance scenarios of entry notes ([`xuefen_core::note`]): the words a
//! site gives with a revocation and the bank with a rejection are stored
//! sealed under the learner's note key, bound to the entry, on every
//! backend alike; a repeat is still told from a change of words; erasure
//! leaves nothing that opens.

use xuefen_core::bank::{BANK_SITE, Decision, ack_event_id};
use xuefen_core::event::{EventBody, Reason};
use xuefen_core::ids::SiteId;
use xuefen_core::note::{NOTE_SEALED_PREFIX, Note};
use xuefen_core::plan::Outcome;

use super::{Backend, NOW, World, completion, event_id, person, revocation, site_id};
use crate::bank::{AckOutcome, AckRequest, CheckpointLimits, make_checkpoint};

/// Words about the person, as a site might write them.
const WORDS: &str = "学员本人来电说明私事";

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[5; 32])
}

async fn raw_note<B: Backend>(db: &B, site: &str, event: &str) -> String {
    db.query_text(&format!(
        "select reason_note from ledger_entries where site_id = '{site}' and event_id = '{event}'"
    ))
    .await
    .expect("the entry has a note")
}

pub async fn notes_are_sealed_under_the_learners_key_and_still_compared<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 1).await;
    let s = &w.site;
    let secret = person(1).secret;
    let mut revoke = revocation(s, "r1", "e1");
    if let EventBody::Revocation(r) = &mut revoke.body {
        r.reason = Reason::parse(WORDS, "reason").expect("words");
    }
    let out = store
        .ingest(&[completion(s, "e1", w.by_id(0), 10_00), revoke.clone()], NOW)
        .await
        .expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{out:?}");

    // In the database: sealed, not the words; read back: opens under the
    // learner's secret at the entry's own position only.
    let raw = raw_note(db, s.as_str(), "r1").await;
    assert!(raw.starts_with(NOTE_SEALED_PREFIX), "{raw}");
    assert!(!raw.contains(WORDS));
    let stored = store
        .entry_by_event(s, &event_id("r1"))
        .await
        .expect("read")
        .expect("the reversal");
    let note = stored.body.note.clone().expect("a note");
    assert_eq!(note.open(Some(&secret), stored.position).as_deref(), Some(WORDS));
    assert_eq!(note.open(Some(&person(2).secret), stored.position), None);
    // Sealing is deterministic: what the planner seals is what is stored.
    assert_eq!(note, Note::seal(&secret, stored.position, WORDS));

    // The same revocation again is a repeat; other words are a conflict.
    let again = store.ingest(std::slice::from_ref(&revoke), NOW).await.expect("ingest");
    assert!(
        matches!(again[0], Outcome::Duplicate { position, .. } if position == stored.position),
        "{again:?}"
    );
    let mut reworded = revoke.clone();
    if let EventBody::Revocation(r) = &mut reworded.body {
        r.reason = Reason::parse("另一说明", "reason").expect("words");
    }
    let out = store.ingest(&[reworded], NOW).await.expect("ingest");
    assert_eq!(
        out[0],
        Outcome::Conflict {
            field: "reason",
            position: stored.position
        }
    );

    // The bank's words on a deposit: sealed the same way, compared the same way.
    let limits = CheckpointLimits { chain_entries_max: 64 };
    while make_checkpoint(store.as_ref(), &key(), "example.org/notes", NOW, limits)
        .await
        .expect("seal")
        .is_some()
    {}
    let award = store
        .entry_by_event(s, &event_id("e1"))
        .await
        .expect("read")
        .expect("the award");
    let reject = |text: &str| AckRequest {
        deposit: award.position,
        decision: Decision::rejected("duplicate_record", text).expect("decision"),
    };
    let out = store.ack_deposits(&[reject(WORDS)], NOW).await.expect("ack");
    let AckOutcome::Recorded { position: ack_at } = out[0] else {
        panic!("{out:?}")
    };
    let ack_id = ack_event_id(award.position);
    let raw = raw_note(db, BANK_SITE, ack_id.as_str()).await;
    assert!(raw.starts_with(NOTE_SEALED_PREFIX) && !raw.contains(WORDS), "{raw}");
    let bank = SiteId::parse(BANK_SITE).expect("bank site");
    let ack = store
        .entry_by_event(&bank, &ack_id)
        .await
        .expect("read")
        .expect("the ack");
    assert_eq!(ack.position, ack_at);
    let note = ack.body.note.clone().expect("the bank's words");
    assert_eq!(note.open(Some(&secret), ack_at).as_deref(), Some(WORDS));
    let out = store.ack_deposits(&[reject(WORDS)], NOW).await.expect("ack");
    assert_eq!(out, vec![AckOutcome::Duplicate { position: ack_at }]);
    let out = store.ack_deposits(&[reject("其他")], NOW).await.expect("ack");
    assert_eq!(
        out,
        vec![AckOutcome::Conflict {
            field: "reason",
            position: ack_at
        }]
    );

    // Erasure removes the notes and the secret: nothing left that opens.
    let code = Reason::code("pipl_art47", "reason_code").expect("code");
    store.erase_learner(&w.learners[0], &code, NOW).await.expect("erase");
    for (site, event) in [(s.as_str(), "r1"), (BANK_SITE, ack_id.as_str())] {
        let left = db
            .query_i64(&format!(
                "select count(*) from ledger_entries where site_id = '{site}' and event_id = '{event}' and reason_note is not null"
            ))
            .await
            .expect("count");
        assert_eq!(left, 0, "{site}/{event} keeps a note after erasure");
    }
    let secrets = db
        .query_i64("select count(*) from learner_secrets")
        .await
        .expect("count");
    assert_eq!(secrets, 0, "the note key's secret is gone");
}

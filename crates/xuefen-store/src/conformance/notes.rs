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

use super::{Backend, Dialect, NOW, World, completion, event_id, person, revocation, site_id};
use crate::bank::{AckOutcome, AckRequest, CheckpointLimits, make_checkpoint};
use crate::names::seal_clear_notes;

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

/// Migration 0018: notes written in clear before it are sealed by the
/// service at start ([`seal_clear_notes`]), each under its learner's key
/// and bound to its entry; the chains still verify; an erased learner's
/// entries have no note left to seal; and no update other than sealing a
/// clear note is let through.
pub async fn notes_written_in_clear_before_0018_are_sealed_at_start<B: Backend>(_fresh: &B) {
    let db = B::fresh_at_version(17).await;
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    let worded = |id: &str, target: &str| {
        let mut e = revocation(s, id, target);
        if let EventBody::Revocation(r) = &mut e.body {
            r.reason = Reason::parse(WORDS, "reason").expect("words");
        }
        e
    };
    let batch = [
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e2", w.by_id(1), 10_00),
        worded("r1", "e1"),
        worded("r2", "e2"),
    ];
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{out:?}");
    // What the code before 0018 wrote: the words in clear (put back here
    // past the schema's guard, as only an operator could).
    let put_back = format!("update ledger_entries set reason_note = '{WORDS}' where event_id in ('r1', 'r2')");
    let (off, on) = match db.dialect() {
        Dialect::Postgres => (
            "alter table ledger_entries disable trigger user",
            "alter table ledger_entries enable trigger user",
        ),
        // Migration 0018 creates the trigger anew.
        Dialect::Sqlite => ("drop trigger ledger_entries_append_only_update", "select 1"),
    };
    db.execute(off).await.expect("guard off");
    assert_eq!(db.execute(&put_back).await.expect("put the clear notes back"), 2);
    db.execute(on).await.expect("guard on");
    db.migrate().await;
    // The second learner is erased first: nothing of theirs to seal.
    let code = Reason::code("pipl_art47", "reason_code").expect("code");
    store.erase_learner(&w.learners[1], &code, NOW).await.expect("erase");

    assert_eq!(seal_clear_notes(store.as_ref(), 1).await.expect("seal"), 1);
    assert_eq!(
        seal_clear_notes(store.as_ref(), 1).await.expect("again"),
        0,
        "nothing left in clear"
    );
    let raw = raw_note(&db, s.as_str(), "r1").await;
    assert!(raw.starts_with(NOTE_SEALED_PREFIX) && !raw.contains(WORDS), "{raw}");
    let r1 = store
        .entry_by_event(s, &event_id("r1"))
        .await
        .expect("read")
        .expect("r1");
    assert_eq!(
        r1.body
            .note
            .as_ref()
            .and_then(|n| n.open(Some(&person(1).secret), r1.position))
            .as_deref(),
        Some(WORDS)
    );
    let clear = db
        .query_i64(
            "select count(*) from ledger_entries where reason_note is not null and reason_note not like 'xfr1:%'",
        )
        .await
        .expect("count");
    assert_eq!(clear, 0);
    crate::verify::verify_all(store.as_ref(), None, None)
        .await
        .expect("the chains still verify");

    // The guard lets only that through: a sealed note is not replaced, a
    // hashed column not changed, under the sealing's own setting too.
    let tries = match db.dialect() {
        Dialect::Postgres => vec![
            "do $$ begin perform set_config('xuefen.note_seal', 'on', true);
               update ledger_entries set reason_note = 'xfr1:AAAA' where event_id = 'r1'; end $$",
            "do $$ begin perform set_config('xuefen.note_seal', 'on', true);
               update ledger_entries set credits_cents = 1 where event_id = 'e1'; end $$",
            "update ledger_entries set reason_note = 'xfr1:AAAA' where event_id = 'r1'",
        ],
        Dialect::Sqlite => vec![
            "update ledger_entries set reason_note = 'xfr1:AAAA' where event_id = 'r1'",
            "update ledger_entries set credits_cents = 1 where event_id = 'e1'",
        ],
    };
    for sql in tries {
        let refused = db.execute(sql).await;
        assert!(refused.is_err(), "{sql} was let through");
    }
}

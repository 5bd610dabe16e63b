//! Scenarios of the log's witnessing (`docs/ledger-format.md`, section 12):
//! cosignatures kept per checkpoint and witness, and the checkpoint served
//! with them, on every backend alike.

use ed25519_dalek::SigningKey;
use xuefen_core::event::Event;
use xuefen_core::witness::{self, Cosigner};

use super::{Backend, NOW, World, completion, site_id};
use crate::bank::{CheckpointLimits, deposit_page_at, make_checkpoint};
use crate::witness::served_head;

const ORIGIN: &str = "conformance.example/log";

fn cosignature(name: &str, seed: u8, text: &str, time: u64) -> witness::Cosignature {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let line = witness::cosign(name, &key, text, time);
    let c = Cosigner {
        name: name.to_owned(),
        key: key.verifying_key(),
    };
    witness::cosignatures([line.as_str()], &[c], text)
        .pop()
        .expect("a valid cosignature")
}

pub async fn cosignatures_are_kept_per_checkpoint_and_witness_and_served_with_the_note<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 3).await;
    let course = crate::Course {
        repeat: xuefen_core::rule::Repeat::EveryCompletion,
        ..super::hours_course(site_id())
    };
    store.put_course(&course).await.expect("course repeats");
    let key = SigningKey::from_bytes(&[3; 32]);
    let limits = CheckpointLimits::default();
    let batch: Vec<Event> = (0..3)
        .map(|i| completion(&site_id(), &format!("w{i}"), world.by_id(i), 10_00))
        .collect();
    store.ingest(&batch, NOW).await.expect("ingest");
    let size = make_checkpoint(store.as_ref(), &key, ORIGIN, NOW, limits)
        .await
        .expect("seal")
        .expect("sealed");
    let head = store.log_head().await.expect("head").expect("a checkpoint");
    assert_eq!(store.checkpoint_at(size).await.expect("at"), Some(head.clone()));
    assert_eq!(store.checkpoint_at(size + 100).await.expect("at"), None);

    // Nothing cosigned yet: witnessed, nothing is served; otherwise the note.
    assert_eq!(store.latest_cosigned().await.expect("latest"), None);
    assert_eq!(store.cosigned_by("w1.example").await.expect("by"), None);
    assert!(served_head(store.as_ref(), true).await.expect("served").is_none());
    assert_eq!(
        served_head(store.as_ref(), false)
            .await
            .expect("served")
            .map(|h| h.note),
        Some(head.note.clone())
    );

    let (text, _) = witness::split_note(&head.note).expect("note");
    let w2 = cosignature("w2.example", 12, &text, 200);
    let w1 = cosignature("w1.example", 11, &text, 100);
    store.put_cosignature(size, &w2).await.expect("put");
    store.put_cosignature(size, &w1).await.expect("put");
    // An older line of the same witness does not replace a newer one.
    let w1_old = cosignature("w1.example", 11, &text, 50);
    store.put_cosignature(size, &w1_old).await.expect("put");
    assert_eq!(
        store.cosignatures_at(size).await.expect("at"),
        vec![w1.clone(), w2.clone()]
    );
    // A newer one does.
    let w1_new = cosignature("w1.example", 11, &text, 300);
    store.put_cosignature(size, &w1_new).await.expect("put");
    assert_eq!(
        store.cosignatures_at(size).await.expect("at"),
        vec![w1_new.clone(), w2.clone()]
    );
    assert_eq!(store.cosigned_by("w1.example").await.expect("by"), Some(size));
    assert_eq!(store.latest_cosigned().await.expect("latest"), Some(size));
    let served = served_head(store.as_ref(), true)
        .await
        .expect("served")
        .expect("cosigned");
    assert_eq!(served.note, format!("{}{}{}", head.note, w1_new.line, w2.line));

    // The log grows; witnessed, the served checkpoint and the feed stay at
    // the cosigned size until a witness cosigns the new one.
    let more: Vec<Event> = (3..6)
        .map(|i| completion(&site_id(), &format!("w{i}"), world.by_id(i % 3), 10_00))
        .collect();
    store.ingest(&more, NOW).await.expect("ingest");
    let grown = make_checkpoint(store.as_ref(), &key, ORIGIN, NOW, limits)
        .await
        .expect("seal")
        .expect("sealed");
    assert!(grown > size);
    let served = served_head(store.as_ref(), true)
        .await
        .expect("served")
        .expect("cosigned");
    assert_eq!(served.size, size);
    let page = deposit_page_at(store.as_ref(), Some(served), 0, 100)
        .await
        .expect("page");
    assert_eq!(page.deposits.len(), 3, "only the awards under the cosigned checkpoint");
    assert!(page.deposits.iter().all(|(r, _)| r.index < size));
    assert_eq!(
        served_head(store.as_ref(), false)
            .await
            .expect("served")
            .map(|h| h.size),
        Some(grown)
    );
}

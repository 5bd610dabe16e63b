//! Scenarios of sealed names ([`crate::names`]): the start-up check finds
//! a missing or wrong key by name, older names (sealed under a service key,
//! or in clear) are moved under learner keys of their own, a rotation
//! re-wraps every learner key under the first key, after which the old key
//! can go; erasure deletes the learner's key, so a saved copy of the sealed
//! name no longer opens (crypto-shredding).

use xuefen_core::event::{Millis, Reason};
use xuefen_core::names::{LEARNER_SEALED_PREFIX, NONCE_BYTES, NameKeys, OpenError, SEALED_PREFIX, key_id_of};

use super::{Backend, NOW, person};
use crate::names::{NameKeyError, check_name_keys, key_learner_name, reseal_names};

fn ring(spec: &str) -> NameKeys {
    match NameKeys::parse(spec) {
        Ok(keys) => keys,
        Err(e) => panic!("key ring {spec}: {e}"),
    }
}

const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const K1_WRONG: &str = "k1:1111111111111111111111111111111111111111111111111111111111111112";
const K2: &str = "k2:2222222222222222222222222222222222222222222222222222222222222222";

/// Distinct bytes for a test (the service draws random ones): every call
/// fills with a fresh counter.
fn counter() -> impl FnMut(&mut [u8]) + Send {
    let mut n = 0u64;
    move |bytes: &mut [u8]| {
        n += 1;
        bytes.fill(0);
        let len = bytes.len().min(8);
        bytes[..len].copy_from_slice(&n.to_be_bytes()[..len]);
        if let Some(last) = bytes.last_mut() {
            *last = 0xa5;
        }
    }
}

fn nonce(random: &mut impl FnMut(&mut [u8])) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    random(&mut nonce);
    nonce
}

/// Each use as (key, keyed, rows).
fn counts(uses: &[crate::names::KeyUse]) -> Vec<(Option<&str>, bool, u64)> {
    uses.iter().map(|u| (u.key.as_deref(), u.keyed, u.rows)).collect()
}

/// Three names sealed under `k1` and one written in clear, as before
/// learner keys: the check reports both, refuses a ring without `k1` or
/// with other bytes under its id; at start every name moves under a key of
/// its own, wrapped by `k1`; a rotation to `k2` re-wraps all four (page by
/// page) and leaves the sealed names as they are, and `k2` alone then opens
/// every name; the database holds no name in clear.
pub async fn sealed_names_are_checked_resealed_and_old_keys_dropped<B: Backend>(db: &B) {
    let store = db.store();
    let k1 = ring(K1);
    let mut random = counter();
    let mut people = Vec::new();
    for n in 1..=4u8 {
        let mut p = person(n);
        let clear = std::mem::take(&mut p.name);
        p.name = if n == 4 {
            clear.clone()
        } else {
            k1.seal(&p.document_hash, &clear, nonce(&mut random))
        };
        let (id, _) = store.register_learner(&p).await.expect("register");
        people.push((id, p.document_hash, clear));
    }
    let uses = check_name_keys(store.as_ref(), &k1).await.expect("k1 opens them");
    assert_eq!(counts(&uses), [(None, false, 1), (Some("k1"), false, 3)]);

    match check_name_keys(store.as_ref(), &ring(K2)).await {
        Err(NameKeyError::Missing { key, rows, configured }) => {
            assert_eq!((key.as_str(), rows, configured.as_str()), ("k1", 3, "k2"));
        }
        other => panic!("a ring without k1 must be refused naming it, got {other:?}"),
    }
    match check_name_keys(store.as_ref(), &ring(K1_WRONG)).await {
        Err(NameKeyError::Wrong { key }) => assert_eq!(key, "k1"),
        other => panic!("other bytes under k1 must be refused, got {other:?}"),
    }

    // At start the service moves every name under a learner key.
    let report = reseal_names(store.as_ref(), &k1, true, 2, &mut random)
        .await
        .expect("key them");
    assert_eq!(
        (report.names, report.sealed, report.keyed, report.resealed),
        (4, 1, 3, 0)
    );
    let uses = check_name_keys(store.as_ref(), &k1).await.expect("check");
    assert_eq!(counts(&uses), [(Some("k1"), true, 4)]);
    let again = reseal_names(store.as_ref(), &k1, true, 2, &mut random)
        .await
        .expect("key them again");
    assert_eq!((again.sealed, again.keyed, again.resealed), (0, 0, 0));
    // Other bytes under k1 no longer open the wrapped keys either.
    match check_name_keys(store.as_ref(), &ring(K1_WRONG)).await {
        Err(NameKeyError::Wrong { key }) => assert_eq!(key, "k1"),
        other => panic!("other bytes under k1 must be refused, got {other:?}"),
    }
    let before: Vec<String> = store
        .stored_names(None, 10)
        .await
        .expect("names")
        .into_iter()
        .map(|n| n.name)
        .collect();

    // Rotation: k2 first, k1 still opens; pages of one row.
    let rotated = ring(K2).then(&k1);
    let report = reseal_names(store.as_ref(), &rotated, false, 1, &mut random)
        .await
        .expect("reseal");
    assert_eq!(
        (report.names, report.sealed, report.keyed, report.resealed),
        (4, 0, 0, 4)
    );
    let again = reseal_names(store.as_ref(), &rotated, false, 3, &mut random)
        .await
        .expect("reseal again");
    assert_eq!(
        (again.sealed, again.keyed, again.resealed),
        (0, 0, 0),
        "a second run has nothing to do"
    );
    let after: Vec<String> = store
        .stored_names(None, 10)
        .await
        .expect("names")
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(
        before, after,
        "a rotation re-wraps keys and leaves the sealed names alone"
    );

    // k1 can go: k2 alone passes the check and opens every name.
    let k2 = ring(K2);
    let uses = check_name_keys(store.as_ref(), &k2).await.expect("k2 alone");
    assert_eq!(counts(&uses), [(Some("k2"), true, 4)]);
    for (id, hash, clear) in &people {
        let (found, stored) = store
            .learner_by_document(hash)
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(&found, id);
        assert!(stored.starts_with(LEARNER_SEALED_PREFIX), "{stored}");
        let wrapped = store.learner_key(id).await.expect("key").expect("a learner key");
        assert_eq!(key_id_of(&wrapped), Some("k2"));
        assert_eq!(
            k2.open_name(id.as_str(), hash, &stored, Some(&wrapped)).as_deref(),
            Ok(clear.as_str())
        );
        assert!(
            k1.open_name(id.as_str(), hash, &stored, Some(&wrapped)).is_err(),
            "k1 no longer opens it"
        );
        assert_eq!(k2.open(hash, &stored), Err(OpenError::NoLearnerKey));
    }
    let clear_rows = db
        .query_i64(&format!(
            "select count(*) from learners where name like 'Learner%' or substr(name, 1, 5) <> '{LEARNER_SEALED_PREFIX}'"
        ))
        .await
        .expect("count");
    assert_eq!(clear_rows, 0, "no name is stored in clear or under a service key");
    let wrapped_rows = db
        .query_i64(&format!(
            "select count(*) from learner_keys where substr(wrapped, 1, 8) = '{SEALED_PREFIX}k2:'"
        ))
        .await
        .expect("count");
    assert_eq!(wrapped_rows, 4);
}

/// A replacement applies only over the value it was computed from: a row
/// re-sealed, keyed or re-wrapped (or erased) meanwhile is left alone.
pub async fn a_name_is_replaced_only_over_the_value_read<B: Backend>(db: &B) {
    let store = db.store();
    let k1 = ring(K1);
    let mut random = counter();
    let mut p = person(7);
    let clear = std::mem::take(&mut p.name);
    p.name = k1.seal(&p.document_hash, &clear, nonce(&mut random));
    let (id, _) = store.register_learner(&p).await.expect("register");
    let newer = k1.seal(&p.document_hash, &clear, nonce(&mut random));
    assert!(
        !store
            .replace_name(&id, "not what is stored", &newer)
            .await
            .expect("replace")
    );
    assert!(store.replace_name(&id, &p.name, &newer).await.expect("replace"));
    let rows = store.stored_names(None, 10).await.expect("names");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&rows[0].learner, rows[0].name.as_str(), rows[0].key.as_deref()),
        (&id, newer.as_str(), None)
    );
    assert!(store.stored_names(Some(&id), 10).await.expect("after").is_empty());
    let stranger = xuefen_core::ids::LearnerId::from_random([0x77; 16]);
    assert!(!store.replace_name(&stranger, &newer, &p.name).await.expect("replace"));

    // Keying: only over the name read, and the key is written only with it.
    assert!(
        !key_learner_name(store.as_ref(), &k1, &id, &p.document_hash, &p.name, &clear, &mut random)
            .await
            .expect("key over a stale value")
    );
    assert_eq!(store.learner_key(&id).await.expect("key"), None);
    assert!(
        !key_learner_name(
            store.as_ref(),
            &k1,
            &stranger,
            &p.document_hash,
            &newer,
            &clear,
            &mut random
        )
        .await
        .expect("key a stranger")
    );
    assert!(
        key_learner_name(store.as_ref(), &k1, &id, &p.document_hash, &newer, &clear, &mut random)
            .await
            .expect("key")
    );
    let row = store.stored_names(None, 10).await.expect("names").remove(0);
    let wrapped = row.key.clone().expect("a learner key");
    assert_eq!(
        store.learner_key(&id).await.expect("key").as_deref(),
        Some(wrapped.as_str())
    );
    assert_eq!(
        k1.open_name(id.as_str(), &p.document_hash, &row.name, Some(&wrapped))
            .as_deref(),
        Ok(clear.as_str())
    );
    // Re-wrapping: only over the wrapped key read.
    let key = k1.unwrap(id.as_str(), &wrapped).expect("unwrap");
    let rewrapped = k1.wrap(id.as_str(), &key, nonce(&mut random));
    assert!(
        !store
            .replace_learner_key(&id, "xfn1:k1:stale", &rewrapped)
            .await
            .expect("re-wrap")
    );
    assert!(
        !store
            .replace_learner_key(&stranger, &wrapped, &rewrapped)
            .await
            .expect("re-wrap")
    );
    assert!(
        store
            .replace_learner_key(&id, &wrapped, &rewrapped)
            .await
            .expect("re-wrap")
    );
    assert_eq!(
        store.learner_key(&id).await.expect("key").as_deref(),
        Some(rewrapped.as_str())
    );
}

/// Crypto-shredding: erasure deletes the learner's wrapped key, so a copy
/// of their sealed name saved before (as a dump or a WAL holds it) opens
/// with the service's keys neither directly nor through any key left in
/// the database; the other learner's name still opens.
pub async fn erasure_deletes_the_learner_key_so_a_saved_sealed_name_stays_shut<B: Backend>(db: &B) {
    let store = db.store();
    let k1 = ring(K1);
    let mut random = counter();
    let mut people = Vec::new();
    for n in [11u8, 12] {
        let mut p = person(n);
        let clear = std::mem::take(&mut p.name);
        p.name = k1.seal(&p.document_hash, &clear, nonce(&mut random));
        let (id, _) = store.register_learner(&p).await.expect("register");
        assert!(
            key_learner_name(store.as_ref(), &k1, &id, &p.document_hash, &p.name, &clear, &mut random)
                .await
                .expect("key")
        );
        let (_, sealed) = store
            .learner_by_document(&p.document_hash)
            .await
            .expect("read")
            .expect("registered");
        let wrapped = store.learner_key(&id).await.expect("key").expect("a learner key");
        assert_eq!(
            k1.open_name(id.as_str(), &p.document_hash, &sealed, Some(&wrapped))
                .as_deref(),
            Ok(clear.as_str())
        );
        people.push((id, p.document_hash, clear, sealed, wrapped));
    }
    let (gone, hash, _, saved_name, saved_key) = &people[0];
    let reason = match Reason::code("pipl_art47", "reason_code") {
        Ok(r) => r,
        Err(e) => panic!("reason code: {e:?}"),
    };
    store
        .erase_learner(gone, &reason, Millis(NOW.0 + 1_000))
        .await
        .expect("erase");

    // The key row is gone, and no key left in the database is it.
    assert_eq!(store.learner_key(gone).await.expect("key"), None);
    assert_eq!(
        db.query_i64(&format!(
            "select count(*) from learner_keys where learner_id = '{gone}' or wrapped = '{saved_key}'"
        ))
        .await
        .expect("count"),
        0
    );
    assert_eq!(
        db.query_i64("select count(*) from learner_keys").await.expect("count"),
        1
    );
    // The saved sealed name: the service's keys do not open it, nor does
    // any wrapped key still stored (each is bound to its own learner).
    assert_eq!(k1.open(hash, saved_name), Err(OpenError::NoLearnerKey));
    assert_eq!(
        k1.open_name(gone.as_str(), hash, saved_name, None),
        Err(OpenError::NoLearnerKey)
    );
    let (kept, kept_hash, kept_clear, kept_name, _) = &people[1];
    let left = store.stored_names(None, 10).await.expect("names");
    assert_eq!(left.len(), 1);
    for row in &left {
        let wrapped = row.key.as_deref().expect("the other learner's key");
        assert!(k1.open_name(gone.as_str(), hash, saved_name, Some(wrapped)).is_err());
        if let Ok(other) = k1.unwrap(row.learner.as_str(), wrapped) {
            assert_eq!(other.open(hash, saved_name), Err(OpenError::Corrupt));
        }
    }
    // What a backup means: a copy of the wrapped key itself, taken before
    // the erasure, would still open it (the runbook says to keep
    // `learner_keys` out of long-lived backups or erase again after a
    // restore).
    assert!(k1.open_name(gone.as_str(), hash, saved_name, Some(saved_key)).is_ok());
    // The other learner's name still opens.
    let wrapped = store.learner_key(kept).await.expect("key").expect("kept key");
    assert_eq!(
        k1.open_name(kept.as_str(), kept_hash, kept_name, Some(&wrapped))
            .as_deref(),
        Ok(kept_clear.as_str())
    );
}

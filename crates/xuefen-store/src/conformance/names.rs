//! Scenarios of sealed names ([`crate::names`]): the start-up check finds
//! a missing or wrong key by name, names in clear are sealed, a rotation
//! moves every name to the first key, after which the old key can go.

use xuefen_core::names::{NONCE_BYTES, NameKeys, SEALED_PREFIX, key_id_of};

use super::{Backend, person};
use crate::names::{NameKeyError, check_name_keys, reseal_names};

fn ring(spec: &str) -> NameKeys {
    match NameKeys::parse(spec) {
        Ok(keys) => keys,
        Err(e) => panic!("key ring {spec}: {e}"),
    }
}

const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const K1_WRONG: &str = "k1:1111111111111111111111111111111111111111111111111111111111111112";
const K2: &str = "k2:2222222222222222222222222222222222222222222222222222222222222222";

/// Distinct nonces for a test (the service draws random ones).
fn counter() -> impl FnMut() -> [u8; NONCE_BYTES] + Send {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        nonce
    }
}

/// Three names sealed under `k1` and one written in clear (as before
/// sealing existed): the check reports both, refuses a ring without `k1`
/// or with other bytes under its id, the clear name is sealed, a rotation
/// to `k2` re-seals all four (page by page), and `k2` alone then opens
/// every name; the database holds no name in clear.
pub async fn sealed_names_are_checked_resealed_and_old_keys_dropped<B: Backend>(db: &B) {
    let store = db.store();
    let k1 = ring(K1);
    let mut nonce = counter();
    let mut people = Vec::new();
    for n in 1..=4u8 {
        let mut p = person(n);
        let clear = std::mem::take(&mut p.name);
        p.name = if n == 4 {
            clear.clone()
        } else {
            k1.seal(&p.document_hash, &clear, nonce())
        };
        let (id, _) = store.register_learner(&p).await.expect("register");
        people.push((id, p.document_hash, clear));
    }
    let uses = check_name_keys(store.as_ref(), &k1).await.expect("k1 opens them");
    let counts: Vec<(Option<&str>, u64)> = uses.iter().map(|u| (u.key.as_deref(), u.rows)).collect();
    assert_eq!(counts, [(None, 1), (Some("k1"), 3)]);

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

    // At start the service seals only the names in clear.
    let report = reseal_names(store.as_ref(), &k1, true, 2, &mut nonce)
        .await
        .expect("seal");
    assert_eq!((report.names, report.sealed, report.resealed), (4, 1, 0));
    let counts: Vec<(Option<String>, u64)> = check_name_keys(store.as_ref(), &k1)
        .await
        .expect("check")
        .into_iter()
        .map(|u| (u.key, u.rows))
        .collect();
    assert_eq!(counts, [(Some("k1".to_owned()), 4)]);

    // Rotation: k2 first, k1 still opens; pages of one row.
    let rotated = ring(K2).then(&k1);
    let report = reseal_names(store.as_ref(), &rotated, false, 1, &mut nonce)
        .await
        .expect("reseal");
    assert_eq!((report.names, report.sealed, report.resealed), (4, 0, 4));
    let again = reseal_names(store.as_ref(), &rotated, false, 3, &mut nonce)
        .await
        .expect("reseal again");
    assert_eq!((again.sealed, again.resealed), (0, 0), "a second run has nothing to do");

    // k1 can go: k2 alone passes the check and opens every name.
    let k2 = ring(K2);
    let uses = check_name_keys(store.as_ref(), &k2).await.expect("k2 alone");
    assert_eq!(uses.len(), 1);
    assert_eq!((uses[0].key.as_deref(), uses[0].rows), (Some("k2"), 4));
    for (id, hash, clear) in &people {
        let (found, stored) = store
            .learner_by_document(hash)
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(&found, id);
        assert_eq!(key_id_of(&stored), Some("k2"));
        assert_eq!(k2.open(hash, &stored).as_deref(), Ok(clear.as_str()));
        assert!(k1.open(hash, &stored).is_err(), "k1 no longer opens it");
    }
    let clear_rows = db
        .query_i64(&format!(
            "select count(*) from learners where name like 'Learner%' or substr(name, 1, 5) <> '{SEALED_PREFIX}'"
        ))
        .await
        .expect("count");
    assert_eq!(clear_rows, 0, "no name is stored in clear");
}

/// A replacement applies only over the value it was computed from: a row
/// re-sealed (or erased) meanwhile is left alone.
pub async fn a_name_is_replaced_only_over_the_value_read<B: Backend>(db: &B) {
    let store = db.store();
    let k1 = ring(K1);
    let mut nonce = counter();
    let mut p = person(7);
    let clear = std::mem::take(&mut p.name);
    p.name = k1.seal(&p.document_hash, &clear, nonce());
    let (id, _) = store.register_learner(&p).await.expect("register");
    let newer = k1.seal(&p.document_hash, &clear, nonce());
    assert!(
        !store
            .replace_name(&id, "not what is stored", &newer)
            .await
            .expect("replace")
    );
    assert!(store.replace_name(&id, &p.name, &newer).await.expect("replace"));
    let rows = store.stored_names(None, 10).await.expect("names");
    assert_eq!(rows.len(), 1);
    assert_eq!((&rows[0].learner, rows[0].name.as_str()), (&id, newer.as_str()));
    assert!(store.stored_names(Some(&id), 10).await.expect("after").is_empty());
    let stranger = xuefen_core::ids::LearnerId::from_random([0x77; 16]);
    assert!(!store.replace_name(&stranger, &newer, &p.name).await.expect("replace"));
}

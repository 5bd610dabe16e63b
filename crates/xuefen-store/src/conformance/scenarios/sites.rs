//! Scenarios of the migrated schema, sites and their API keys.

use super::*;

/// A migrated database has 64 empty chains, a current schema and an empty
/// ledger that verifies.
pub async fn migrations_give_empty_chains_and_a_ready_schema<B: Backend>(db: &B) {
    let store = db.store();
    store.ready().await.expect("schema is current");
    let heads = store.heads().await.expect("heads");
    assert_eq!(heads.len(), CHAINS as usize);
    for (i, (chain, head)) in heads.iter().enumerate() {
        assert_eq!((*chain, *head), (i as u32, Head::EMPTY), "chain {i} starts empty");
    }
    let report = verify_ledger(store.as_ref(), |_| {})
        .await
        .expect("empty ledger verifies");
    assert_eq!((report.chains, report.entries), (u64::from(CHAINS), 0));
    assert_eq!(entry_count(db).await, 0);
}

pub async fn sites_and_keys_round_trip<B: Backend>(db: &B) {
    let store = db.store();
    let xihu = site(site_id());
    store.create_site(&xihu, &act("joined")).await.expect("site");
    assert!(
        matches!(
            store.create_site(&xihu, &act("joined")).await,
            Err(StoreError::Conflict(_))
        ),
        "a site id is unique"
    );
    // A site joins under an agreement of three years from the act by default.
    let with_agreement = |s: crate::Site| crate::Site {
        agreement_starts_at: Some(NOW),
        agreement_ends_at: Some(Millis(NOW.0 + xuefen_core::site_log::AGREEMENT_DEFAULT_MS)),
        ..s
    };
    let xihu = with_agreement(xihu);
    assert_eq!(store.site(&site_id()).await.expect("site"), Some(xihu.clone()));
    assert_eq!(store.site(&other_site_id()).await.expect("site"), None);
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
    let other = with_agreement(site(other_site_id()));
    assert_eq!(
        store.sites().await.expect("sites"),
        vec![other, xihu],
        "sites in id order"
    );
    let suspended = store
        .set_site_status(&site_id(), SiteStatus::Suspended, None, &act("stale"))
        .await
        .expect("status");
    assert_eq!(suspended.0.status, SiteStatus::Suspended);
    let nowhere = xuefen_core::ids::SiteId::parse("nowhere").expect("id");
    assert!(matches!(
        store
            .set_site_status(&nowhere, SiteStatus::Active, None, &act("revived"))
            .await,
        Err(StoreError::NotFound)
    ));

    assert!(!store.admin_key_exists().await.expect("admin?"));
    let admin = NewKey {
        id: "k_admin".into(),
        principal: Principal::Admin,
        secret_hash: [1; 32],
    };
    let site_key = NewKey {
        id: "k_site".into(),
        principal: Principal::Site(site_id()),
        secret_hash: [2; 32],
    };
    store.create_key(&admin).await.expect("admin key");
    store.create_key(&site_key).await.expect("site key");
    assert!(
        matches!(store.create_key(&site_key).await, Err(StoreError::Conflict(_))),
        "a key id and a secret are unique"
    );
    assert!(store.admin_key_exists().await.expect("admin?"));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup").expect("found");
    assert_eq!(found.principal, Principal::Site(site_id()));
    assert_eq!(found.site_status, Some(SiteStatus::Suspended));
    assert!(!found.revoked);
    store.revoke_key("k_site").await.expect("revoke");
    store
        .revoke_key("k_site")
        .await
        .expect("revoking again is not an error");
    assert!(matches!(store.revoke_key("k_none").await, Err(StoreError::NotFound)));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup");
    assert!(found.is_some_and(|k| k.revoked));
    let admin_found = store.key_by_hash(&[1; 32]).await.expect("lookup");
    assert!(admin_found.is_some_and(|k| k.principal == Principal::Admin && k.site_status.is_none()));
    assert!(store.key_by_hash(&[3; 32]).await.expect("lookup").is_none());
}

//! Agreement renewal as its own ledgered change, and `xuefen sites list`
//! with agreement dates and standing. Both backends.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(an_agreement_is_renewed_active_to_active_and_sites_list_shows_dates_and_standing,);

async fn an_agreement_is_renewed_active_to_active_and_sites_list_shows_dates_and_standing(app: TestApp) {
    let key = app.site("xihu").await;
    // A site whose agreement ran out in 2021: still `active`, but expired.
    let old = json!({"id": "old-site", "name": "旧站", "level": "county", "region_code": "330106",
                     "agreement_starts_at": "2020-01-01T00:00:00+08:00", "agreement_ends_at": "2021-01-01T00:00:00+08:00"});
    let (status, body) = app.post("/v1/sites", &app.admin, old).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let renew = json!({"status": "active", "reason": "协议续签", "agreement_ends_at": "2031-01-01T00:00:00+08:00"});
    let (status, site) = app.put("/v1/sites/xihu/status", &app.admin, renew).await;
    assert_eq!(status, StatusCode::OK, "{site}");
    assert_eq!(site["status"], "active");
    assert_eq!(site["agreement_ends_at"], "2030-12-31T16:00:00.000Z", "{site}");
    let (_, changes) = app.get("/v1/sites/xihu/changes", &app.admin).await;
    let changes = changes.as_array().expect("changes");
    assert_eq!(changes.len(), 2, "{changes:?}");
    let last = &changes[1];
    assert_eq!(
        (last["from"].clone(), last["to"].clone()),
        (json!("active"), json!("active"))
    );
    assert_eq!(last["reason"], "协议续签");
    assert_eq!(last["agreement_ends_at"], "2030-12-31T16:00:00.000Z");
    // The site posts as before.
    app.course(&key, "C1", "community").await;

    // active → active without new dates is still not a move; a past end is refused.
    let (status, problem) = app
        .put(
            "/v1/sites/xihu/status",
            &app.admin,
            json!({"status": "active", "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (StatusCode::CONFLICT, json!("status")),
        "{problem}"
    );
    let past = json!({"status": "active", "reason": "x", "agreement_ends_at": "2020-01-01T00:00:00Z"});
    let (status, problem) = app.put("/v1/sites/xihu/status", &app.admin, past).await;
    assert_eq!(
        (status, problem["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("agreement_ends_at")),
        "{problem}"
    );
    let (code, report) = app.verify_cli().await;
    assert_eq!(code, 0, "{report}");

    // Renewing the expired site makes it active again in `sites list`.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"))
        .args(["sites", "list"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .await
        .expect("run xuefen sites list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let row = |id: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id}\t")))
            .unwrap_or_else(|| panic!("no {id} in {stdout}"))
            .split('\t')
            .map(str::to_owned)
            .collect()
    };
    assert!(
        stdout.starts_with("id\tlevel\tregion\tstatus\tstanding\tagreement_from\tagreement_to\tname"),
        "{stdout}"
    );
    let old = row("old-site");
    assert_eq!(
        &old[3..7],
        ["active", "expired", "2020-01-01", "2021-01-01"],
        "{stdout}"
    );
    let xihu = row("xihu");
    assert_eq!(&xihu[3..5], ["active", "active"]);
    assert_eq!(xihu[6], "2031-01-01");
}

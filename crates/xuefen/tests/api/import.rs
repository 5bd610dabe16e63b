//! `xuefen import` against the real service: a back-fill killed midway
//! and resumed writes every line once, reports the rejected lines, and
//! counts back-dated registrations in the year they happened. Both backends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{TestApp, resident_id};

backend_tests!(an_import_killed_midway_resumes_without_double_entries_and_dates_registrations,);

const LEARNERS: usize = 200;
const EVENTS_EACH: usize = 10;
/// The test service takes at most 50 events per batch.
const BATCH: &str = "50";

fn import_cmd(app: &TestApp, key: &str, file: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"));
    cmd.arg("import")
        .arg(file)
        .args(["--batch", BATCH, "--jobs", "2", "--url"])
        .arg(&app.base)
        .env("XUEFEN_SITE_KEY", key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn an_import_killed_midway_resumes_without_double_entries_and_dates_registrations(app: TestApp) {
    let key = app.site("xihu").await;
    // Credited once (the default): each learner's first completion pays.
    let course = json!({"title": "课程", "category": "community", "rule": {"kind": "per_hours", "hours_per_credit": "5", "cap": "4"}});
    let (status, body) = app.put("/v1/courses/C1", &key, course).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A learner the site registered before, whose older account the file links.
    app.learner(&key, "pre-0", 9_999).await;

    let mut lines: Vec<String> = Vec::new();
    for i in 0..LEARNERS {
        lines.push(
            json!({"type": "learner", "name": "历史学员", "local_account": format!("u{i}"),
                   "document": {"kind": "resident_id", "number": resident_id(1_000 + i as u32)},
                   "registered_at": format!("2019-{:02}-15T09:00:00+08:00", 1 + i % 12)})
            .to_string(),
        );
    }
    lines.push(
        json!({"type": "link", "local_account": "alias-0", "name": "测试",
                      "document": {"kind": "resident_id", "number": resident_id(9_999)},
                      "registered_at": "2018-03-01T00:00:00Z"})
        .to_string(),
    );
    let bad_json = lines.len() + 1;
    lines.push("{not json".into());
    for i in 0..LEARNERS {
        for k in 0..EVENTS_EACH {
            lines.push(
                json!({"type": "event", "event_id": format!("h-{i}-{k}"), "kind": "completion", "course": "C1",
                       "learner": {"local_account": format!("u{i}")},
                       "completed_at": format!("2020-{:02}-01T10:00:00Z", 1 + k), "hours": "5"})
                .to_string(),
            );
        }
    }
    let bad_course = lines.len() + 1;
    lines.push(
        json!({"type": "event", "event_id": "h-x", "kind": "completion", "course": "NOPE",
               "learner": {"local_account": "u0"}, "completed_at": "2020-01-01T10:00:00Z", "hours": "5"})
        .to_string(),
    );
    let dir = std::env::temp_dir().join(format!("xuefen-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("history.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write input");
    let state = dir.join("history.ndjson.import-state.json");

    // Killed as soon as the first batch of events is saved as done.
    let mut child = import_cmd(&app, &key, &file).spawn().expect("spawn xuefen import");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done_at_kill = loop {
        if let Ok(bytes) = std::fs::read(&state)
            && let Ok(s) = serde_json::from_slice::<Value>(&bytes)
            && let Some(done) = s["done"].as_array()
            && done
                .iter()
                .any(|d| d.as_str().is_some_and(|d| d.starts_with("events-")))
        {
            child.kill().await.expect("kill");
            break done.len();
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the import ended before it was killed"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch of events finished in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let chunks = LEARNERS.div_ceil(50) + (LEARNERS * EVENTS_EACH + 1).div_ceil(50);
    assert!(
        done_at_kill < chunks,
        "killed midway: {done_at_kill} of {chunks} chunks done"
    );
    let written = app
        .scalar("select count(*) from ledger_entries where site_id = 'xihu'")
        .await;
    assert!(
        written > 0 && written < (LEARNERS * EVENTS_EACH) as i64,
        "{written} written at the kill"
    );

    // Resumed: the same command.
    let out = import_cmd(&app, &key, &file).output().await.expect("resume");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "two lines are rejected\n{stdout}\n{stderr}");
    let total_lines = lines.len() - 1; // the unreadable line is not a record
    assert!(
        stdout.contains(&format!(
            "{} lines: {} accepted, 2 rejected",
            total_lines,
            total_lines - 1
        )),
        "{stdout}"
    );

    // Every event once: no double entries, none missing.
    let n = (LEARNERS * EVENTS_EACH) as i64;
    assert_eq!(
        app.scalar("select count(*) from ledger_entries where site_id = 'xihu'")
            .await,
        n
    );
    assert_eq!(
        app.scalar("select count(distinct event_id) from ledger_entries where site_id = 'xihu'")
            .await,
        n
    );
    assert_eq!(app.scalar("select count(*) from learners").await, LEARNERS as i64 + 1);
    assert_eq!(
        app.scalar("select count(*) from learner_accounts where site_id = 'xihu'")
            .await,
        LEARNERS as i64 + 2
    );
    // Each learner's first C1 completion is paid, the others recognised (credited once).
    assert_eq!(
        app.scalar("select count(*) from ledger_entries where site_id = 'xihu' and kind = 1")
            .await,
        LEARNERS as i64
    );
    let (code, report) = app.verify_cli().await;
    assert_eq!(code, 0, "{report}");

    // The report names the two bad lines and their problems.
    let report = std::fs::read_to_string(dir.join("history.ndjson.rejected.ndjson")).expect("report");
    let rejected: Vec<Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).expect("report line"))
        .collect();
    assert_eq!(rejected.len(), 2, "{report}");
    assert_eq!(
        (rejected[0]["line"].clone(), rejected[0]["status"].clone()),
        (json!(bad_json), json!("unreadable"))
    );
    assert_eq!(rejected[1]["line"], json!(bad_course));
    assert_eq!(rejected[1]["event_id"], "h-x");
    assert_eq!(rejected[1]["problem"]["field"], "course", "{report}");

    // Registrations count in the year they happened, not the import's.
    let stats = |year: i32| {
        let app = &app;
        let key = key.clone();
        async move {
            let (status, s) = app.get(&format!("/v1/sites/xihu/stats?year={year}"), &key).await;
            assert_eq!(status, StatusCode::OK, "{s}");
            s
        }
    };
    assert_eq!(stats(2019).await["registrations"], LEARNERS);
    assert_eq!(stats(2018).await["registrations"], 1);
    assert_eq!(stats(2020).await["learners_active"], LEARNERS);
    let this_year = app.get("/v1/sites/xihu/stats", &key).await.1;
    assert_eq!(this_year["registrations"], 0, "{this_year}");
    // Run once more: nothing new is written.
    let out = import_cmd(&app, &key, &file).output().await.expect("again");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        app.scalar("select count(*) from ledger_entries where site_id = 'xihu'")
            .await,
        n
    );
    let _ = std::fs::remove_dir_all(&dir);
}

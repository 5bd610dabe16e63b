//! The configuration as the binary sees it: layering through a real file,
//! the environment and flags, and invalid settings failing at start with a
//! message naming the key.

use std::process::{Command, Output};

use crate::server::XUEFEN;

fn xuefen(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(XUEFEN);
    cmd.args(args);
    for var in ["XUEFEN_CONFIG", "XUEFEN_BATCH_EVENTS_MAX", "XUEFEN_LISTEN", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run xuefen")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xuefen-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn file_then_environment_then_flags() {
    let file = temp_file(
        "xuefen.toml",
        "batch_events_max = 7\nlisten = \"127.0.0.1:9001\"\ncommits_in_flight = 3\nlog_format = \"json\"\n",
    );
    let file = file.to_str().expect("utf-8 path");
    let out = xuefen(
        &["config", "check", "--set", "commits_in_flight=4"],
        &[("XUEFEN_CONFIG", file), ("XUEFEN_LISTEN", "127.0.0.1:9002")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        "batch_events_max = 7",
        "listen = \"127.0.0.1:9002\"",
        "commits_in_flight = 4",
        "log_format = \"json\"",
        "group_events_max = 4000",
    ] {
        assert!(shown.lines().any(|l| l == line), "missing `{line}` in:\n{shown}");
    }
}

#[test]
fn an_invalid_environment_value_stops_serve_at_start_naming_the_key() {
    let out = xuefen(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("XUEFEN_BATCH_EVENTS_MAX", "lots")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`batch_events_max`") && err.contains("XUEFEN_BATCH_EVENTS_MAX"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_in_the_file_stops_serve_at_start_naming_it() {
    let file = temp_file("typo.toml", "bach_events_max = 10\n");
    let out = xuefen(
        &[
            "serve",
            "--config",
            file.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`bach_events_max`") && err.contains("typo.toml"), "{err}");
}

#[test]
fn an_out_of_range_flag_names_the_key() {
    let out = xuefen(&["serve", "--commits-in-flight", "0", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`commits_in_flight`") && err.contains("--commits-in-flight"),
        "{err}"
    );
}

#[test]
fn the_example_lists_every_key_and_checks_clean() {
    let out = xuefen(&["config", "example"], &[]);
    assert!(out.status.success());
    let example = String::from_utf8_lossy(&out.stdout);
    let file = temp_file("example.toml", &example);
    let out = xuefen(&["config", "check", "--config", file.to_str().expect("utf-8")], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `ops/xuefen.example.toml` is what `xuefen config example` prints, so the
/// file operators copy cannot drift from the keys.
#[test]
fn the_example_file_in_ops_is_current() {
    let out = xuefen(&["config", "example"], &[]);
    let printed = String::from_utf8_lossy(&out.stdout);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/xuefen.example.toml");
    if std::env::var_os("XUEFEN_UPDATE_EXAMPLE").is_some() {
        std::fs::write(&path, printed.as_bytes()).expect("write the example");
    }
    let committed = std::fs::read_to_string(&path).expect("read ops/xuefen.example.toml");
    assert_eq!(
        committed, printed,
        "ops/xuefen.example.toml is stale: rerun with XUEFEN_UPDATE_EXAMPLE=1"
    );
}

/// A command run away from the server's data directory refuses, naming
/// where it looked, and creates no empty database there.
#[test]
fn a_command_away_from_the_server_data_dir_refuses_and_creates_nothing() {
    let dir = std::env::temp_dir().join(format!("xuefen-nodata-{}", uuid::Uuid::new_v4().simple()));
    let data = dir.join("data");
    let data_str = data.to_str().expect("utf-8");
    for args in [&["verify"][..], &["keys", "create", "--admin"][..]] {
        let mut cmd = Command::new(XUEFEN);
        cmd.args(args)
            .env_remove("DATABASE_URL")
            .env_remove("XUEFEN_CONFIG")
            .env("XUEFEN_DATA_DIR", data_str);
        let out = cmd.output().expect("run xuefen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded without a database");
        assert!(stderr.contains("no Xuefen database"), "{args:?}: {stderr}");
        assert!(!data.join("xuefen.db").exists(), "{args:?} created an empty database");
    }
    // dev-token with the development secret: refuses rather than
    // generating a secret (and a data dir) the server does not use.
    let out = Command::new(XUEFEN)
        .args(["dev-token", "--learner", "lrn_00000000000000000000000000000000"])
        .env_remove("DATABASE_URL")
        .env_remove("XUEFEN_CONFIG")
        .env_remove("XUEFEN_SSO_KEY")
        .env_remove("XUEFEN_SSO_KEY_FILE")
        .env("XUEFEN_DATA_DIR", data_str)
        .output()
        .expect("run xuefen dev-token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "dev-token succeeded without a data dir");
    assert!(stderr.contains("no development SSO secret"), "{stderr}");
    assert!(!data.exists(), "dev-token created the data dir");
    let _ = std::fs::remove_dir_all(&dir);
}

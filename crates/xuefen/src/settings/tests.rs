//! The layering, validation and documentation of the configuration.

use super::*;

fn load(env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let flags: Flags = flags
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into(), format!("--{k}")))
        .collect();
    Settings::load(None, |k| env.get(k).cloned(), &flags)
}

#[test]
fn every_default_parses_and_shows_as_written() {
    let s = Settings::defaults();
    for key in KEYS {
        assert_eq!(s.show(key.name).as_deref(), Some(key.default), "{}", key.name);
    }
    s.validate(&HashMap::new()).expect("defaults are valid");
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_defaults() {
    let s = load(
        &[("XUEFEN_BATCH_EVENTS_MAX", "10"), ("XUEFEN_LISTEN", "127.0.0.1:1")],
        &[("listen", "127.0.0.1:2")],
    )
    .expect("valid");
    assert_eq!(s.batch_events_max, 10);
    assert_eq!(s.listen.port(), 2);
    assert_eq!(s.group_events_max, 4_000);
}

#[test]
fn the_xuefen_variable_wins_over_the_conventional_one() {
    let s = load(&[("RUST_LOG", "warn"), ("XUEFEN_LOG_FILTER", "debug")], &[]).expect("valid");
    assert_eq!(s.log_filter, "debug");
    let s = load(&[("DATABASE_URL", "sqlite://a.db")], &[]).expect("valid");
    assert_eq!(s.database_url.as_ref().map(Secret::expose), Some("sqlite://a.db"));
}

#[test]
fn a_bad_value_names_its_key_and_where_it_came_from() {
    let e = load(&[("XUEFEN_BATCH_EVENTS_MAX", "many")], &[]).expect_err("invalid");
    let text = e.to_string();
    assert!(text.contains("`batch_events_max`"), "{text}");
    assert!(text.contains("XUEFEN_BATCH_EVENTS_MAX"), "{text}");
}

#[test]
fn values_outside_their_range_name_the_key() {
    for (key, bad) in [
        ("batch_events_max", "0"),
        ("commits_in_flight", "65"),
        ("body_bytes_max", "10"),
    ] {
        let e = load(&[], &[(key, bad)]).expect_err("out of range");
        assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
    }
    // Both ends of a range are allowed.
    load(&[], &[("commits_in_flight", "1")]).expect("least");
    load(&[], &[("commits_in_flight", "64")]).expect("most");
}

#[test]
fn the_metrics_listener_cannot_share_the_api_address() {
    let e = load(
        &[],
        &[("listen", "127.0.0.1:9000"), ("metrics_listen", "127.0.0.1:9000")],
    )
    .expect_err("same address");
    assert!(e.to_string().contains("`metrics_listen`"), "{e}");
    load(&[], &[("listen", "127.0.0.1:0"), ("metrics_listen", "127.0.0.1:0")]).expect("two free ports");
}

#[test]
fn a_short_or_non_hex_identity_key_is_refused() {
    let e = load(&[("XUEFEN_IDENTITY_KEY", "abcd")], &[]).expect_err("short");
    assert!(e.to_string().contains("`identity_key`"), "{e}");
    let e = load(&[("XUEFEN_IDENTITY_KEY", &"zz".repeat(32))], &[]).expect_err("not hex");
    assert!(e.to_string().contains("`identity_key`"), "{e}");
    load(&[("XUEFEN_IDENTITY_KEY", &"ab".repeat(32))], &[]).expect("32 bytes");
}

#[test]
fn secrets_never_show() {
    let s = load(
        &[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("XUEFEN_IDENTITY_KEY", &"ab".repeat(32)),
        ],
        &[],
    )
    .expect("valid");
    let shown = format!("{s:?}\n{}", s.to_toml());
    assert!(
        !shown.contains("hunter2") && !shown.contains(&"ab".repeat(32)),
        "{shown}"
    );
}

#[test]
fn a_file_is_read_and_unknown_keys_are_refused() {
    let dir = std::env::temp_dir().join(format!("xuefen-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("good.toml");
    std::fs::write(&path, "batch_events_max = 7\nlog_format = \"json\"\n").expect("write");
    let s = Settings::load(Some(&path), |_| None, &[]).expect("valid file");
    assert_eq!(s.batch_events_max, 7);
    assert_eq!(s.log_format, LogFormat::Json);
    // The environment wins over the file.
    let s = Settings::load(
        Some(&path),
        |k| (k == "XUEFEN_BATCH_EVENTS_MAX").then(|| "9".into()),
        &[],
    )
    .expect("valid");
    assert_eq!(s.batch_events_max, 9);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "batch_event_max = 7\n").expect("write");
    let e = Settings::load(Some(&bad), |_| None, &[]).expect_err("unknown key");
    assert!(e.to_string().contains("`batch_event_max`"), "{e}");
    std::fs::write(&bad, "log_format = \"xml\"\n").expect("write");
    let e = Settings::load(Some(&bad), |_| None, &[]).expect_err("bad value");
    assert!(e.to_string().contains("`log_format`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_file_parses_to_the_defaults() {
    // Uncomment every key of the example: the result is the defaults.
    let uncommented: String = example()
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("{} = ", k.name))))
        .filter(|l| !l.ends_with("= \"\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let table: toml::Table = uncommented.parse().expect("the example is TOML");
    assert_eq!(table.len(), KEYS.iter().filter(|k| !k.default.is_empty()).count());
    let dir = std::env::temp_dir().join(format!("xuefen-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("example.toml");
    std::fs::write(&path, &uncommented).expect("write");
    let s = Settings::load(Some(&path), |_| None, &[]).expect("valid");
    assert_eq!(s.to_toml(), Settings::defaults().to_toml());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's configuration table lists exactly the keys, each with
/// its environment variables and its default.
#[test]
fn the_readme_table_matches_the_keys() {
    let readme = include_str!("../../../../README.md");
    let rows: Vec<Vec<String>> = readme
        .lines()
        .skip_while(|l| !l.starts_with("## Configuration"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(names, keys, "README rows, in order");
    for (row, key) in rows.iter().zip(KEYS) {
        let env: Vec<String> = key.env.iter().map(|e| format!("`{e}`")).collect();
        assert_eq!(row[1], env.join(", "), "environment of {}", key.name);
        let default = if key.default.is_empty() {
            "unset".to_owned()
        } else {
            format!("`{}`", key.default)
        };
        assert_eq!(row[2], default, "default of {}", key.name);
    }
}

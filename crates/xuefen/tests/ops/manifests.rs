//! `ops/` cannot run here (no container engine), so it is checked by what
//! can: every YAML and JSON file parses; the Kubernetes manifests have the
//! probes, ports, selectors and grace periods the service needs; every
//! `XUEFEN_*` variable they set is a configuration key whose value the
//! binary accepts; and every metric the dashboard and the alerts query
//! exists in a real `/metrics` scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::json;
use yaml_rust2::{Yaml, YamlLoader};

use crate::server::{Backend, Server, XUEFEN, completion, sample_names};

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops")
}

fn read(rel: &str) -> String {
    let path = ops_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every document of a YAML file.
fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `doc[a][b]…`, or BadValue.
fn at<'a>(doc: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(doc, |node, key| &node[*key])
}

fn str_at<'a>(doc: &'a Yaml, path: &[&str]) -> &'a str {
    at(doc, path)
        .as_str()
        .unwrap_or_else(|| panic!("missing string at {}", path.join(".")))
}

/// The Kubernetes objects of ops/k8s, by kind.
fn k8s_objects() -> BTreeMap<String, Vec<Yaml>> {
    let mut by_kind: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    let mut files = Vec::new();
    files_under(&ops_dir().join("k8s"), &mut files);
    for file in files {
        let rel = file
            .strip_prefix(ops_dir())
            .expect("under ops")
            .to_string_lossy()
            .into_owned();
        for doc in yaml(&rel) {
            let kind = str_at(&doc, &["kind"]).to_owned();
            assert!(at(&doc, &["apiVersion"]).as_str().is_some(), "{rel}: apiVersion");
            // A kustomization is a build file, not an object: it has no name.
            if kind != "Kustomization" {
                assert!(
                    at(&doc, &["metadata", "name"]).as_str().is_some(),
                    "{rel}: metadata.name"
                );
            }
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    by_kind
}

#[test]
fn every_yaml_and_json_file_under_ops_parses() {
    let mut files = Vec::new();
    files_under(&ops_dir(), &mut files);
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        match file.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                let docs = YamlLoader::load_from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display()));
                assert!(!docs.is_empty(), "{} is empty", file.display());
                checked += 1;
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()));
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 12, "only {checked} files checked");
}

#[test]
fn the_kubernetes_manifests_wire_probes_ports_and_grace_periods() {
    let objects = k8s_objects();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "Job",
        "CronJob",
        "Kustomization",
    ] {
        assert!(objects.contains_key(kind), "no {kind} in ops/k8s");
    }
    let deployment = &objects["Deployment"][0];
    let pod = at(deployment, &["spec", "template"]);
    let labels = at(pod, &["metadata", "labels"]).as_hash().expect("pod labels");
    let selector = at(deployment, &["spec", "selector", "matchLabels"])
        .as_hash()
        .expect("selector");
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "the selector matches the pod labels");
    }
    let container = &at(pod, &["spec", "containers"])[0];
    let ports: BTreeMap<String, i64> = at(container, &["ports"])
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                str_at(p, &["name"]).to_owned(),
                at(p, &["containerPort"]).as_i64().expect("port"),
            )
        })
        .collect();
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/readyz"),
    ] {
        assert_eq!(str_at(container, &[probe, "httpGet", "path"]), path, "{probe}");
        let port = str_at(container, &[probe, "httpGet", "port"]);
        assert!(ports.contains_key(port), "{probe} port {port} is a container port");
    }

    // The Service selects the pods and targets named container ports.
    let service = &objects["Service"][0];
    for (k, v) in at(service, &["spec", "selector"]).as_hash().expect("service selector") {
        assert_eq!(labels.get(k), Some(v), "the Service selects the pods");
    }
    for port in at(service, &["spec", "ports"]).as_vec().expect("service ports") {
        let target = str_at(port, &["targetPort"]);
        assert!(ports.contains_key(target), "Service targetPort {target}");
    }

    // The drain fits in the pod's grace period, preStop sleep and the
    // final trace flush (bounded at 5 s) included.
    let config = at(&objects["ConfigMap"][0], &["data"]);
    let drain: i64 = str_at(config, &["XUEFEN_SHUTDOWN_GRACE_SECONDS"])
        .parse()
        .expect("number");
    let pre_stop = at(container, &["lifecycle", "preStop", "sleep", "seconds"])
        .as_i64()
        .unwrap_or(0);
    let grace = at(pod, &["spec", "terminationGracePeriodSeconds"])
        .as_i64()
        .expect("grace");
    assert!(
        pre_stop + drain < grace,
        "preStop {pre_stop} s + drain {drain} s must fit in {grace} s"
    );

    // The listen and metrics ports of the configuration are the container's.
    let port_of = |key: &str| -> i64 {
        str_at(config, &[key])
            .rsplit(':')
            .next()
            .expect("port")
            .parse()
            .expect("number")
    };
    assert_eq!(port_of("XUEFEN_LISTEN"), ports["http"]);
    assert_eq!(port_of("XUEFEN_METRICS_LISTEN"), ports["metrics"]);
    assert_eq!(
        at(pod, &["metadata", "annotations", "prometheus.io/port"]).as_str(),
        Some(ports["metrics"].to_string().as_str())
    );

    // Secrets come from the Secret, never from the ConfigMap.
    for secret in ["DATABASE_URL", "XUEFEN_IDENTITY_KEY"] {
        assert!(
            at(config, &[secret]).is_badvalue(),
            "{secret} must not be in the ConfigMap"
        );
        let from_secret = at(container, &["env"])
            .as_vec()
            .expect("env")
            .iter()
            .any(|e| str_at(e, &["name"]) == secret && !at(e, &["valueFrom", "secretKeyRef"]).is_badvalue());
        assert!(from_secret, "{secret} comes from a secretKeyRef");
    }

    // The migration Job migrates; the CronJob verifies.
    let job_args = at(&objects["Job"][0], &["spec", "template", "spec", "containers"])[0]["args"].clone();
    assert_eq!(job_args, Yaml::Array(vec![Yaml::String("migrate".into())]));
    let cron = &objects["CronJob"][0];
    let cron_args = &at(cron, &["spec", "jobTemplate", "spec", "template", "spec", "containers"])[0]["args"];
    assert_eq!(cron_args, &Yaml::Array(vec![Yaml::String("verify".into())]));

    // Every file the kustomization names exists.
    for resource in at(&objects["Kustomization"][0], &["resources"])
        .as_vec()
        .expect("resources")
    {
        let name = resource.as_str().expect("file name");
        assert!(ops_dir().join("k8s").join(name).exists(), "kustomization names {name}");
    }
}

/// The environment variables of every configuration key, from
/// `xuefen config example`.
fn config_variables() -> BTreeSet<String> {
    let out = std::process::Command::new(XUEFEN)
        .args(["config", "example"])
        .output()
        .expect("run xuefen config example");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("# environment: "))
        .flat_map(|l| l.split(", ").map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Runs `xuefen config check` with `env` (and a valid identity key and
/// database URL) and asserts it accepts them.
fn assert_config_accepts(what: &str, env: &BTreeMap<String, String>) {
    let known = config_variables();
    for name in env.keys().filter(|k| k.starts_with("XUEFEN_")) {
        assert!(
            known.contains(name),
            "{what} sets {name}, which is no configuration key"
        );
    }
    let mut cmd = std::process::Command::new(XUEFEN);
    cmd.args(["config", "check"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("XUEFEN_IDENTITY_KEY", "ab".repeat(32))
        .env("DATABASE_URL", "postgres://u@db/x")
        .env_remove("XUEFEN_CONFIG");
    let out = cmd.output().expect("run xuefen config check");
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_xuefen_variable_in_the_manifests_and_compose_is_a_valid_setting() {
    let objects = k8s_objects();
    let env: BTreeMap<String, String> = at(&objects["ConfigMap"][0], &["data"])
        .as_hash()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_owned(),
                v.as_str().expect("string value").to_owned(),
            )
        })
        .collect();
    assert_config_accepts("the ConfigMap", &env);

    let compose = &yaml("compose.yaml")[0];
    for service in ["xuefen", "postgres", "otel-collector", "prometheus", "grafana"] {
        assert!(
            !at(compose, &["services", service]).is_badvalue(),
            "compose has {service}"
        );
    }
    let env: BTreeMap<String, String> = at(compose, &["services", "xuefen", "environment"])
        .as_hash()
        .expect("environment")
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|i| i.to_string()));
            (k.as_str().expect("key").to_owned(), v.expect("value"))
        })
        // Values interpolated by compose are checked in their own right.
        .filter(|(_, v)| !v.starts_with("${"))
        .collect();
    assert_config_accepts("compose's xuefen service", &env);
    assert!(env["OTEL_EXPORTER_OTLP_ENDPOINT"].contains("otel-collector:4318"));

    // Files compose mounts exist; Prometheus scrapes the metrics listener.
    for service in at(compose, &["services"]).as_hash().expect("services").values() {
        for volume in at(service, &["volumes"]).as_vec().into_iter().flatten() {
            let src = volume.as_str().expect("volume").split(':').next().expect("source");
            if src.starts_with("./") {
                assert!(ops_dir().join(src).exists(), "compose mounts {src}");
            }
        }
    }
    let metrics_port = env["XUEFEN_METRICS_LISTEN"]
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let prometheus = &yaml("prometheus/prometheus.yml")[0];
    let target = str_at(
        &at(prometheus, &["scrape_configs"])[0]["static_configs"][0]["targets"][0],
        &[],
    )
    .to_owned();
    assert_eq!(target, format!("xuefen:{metrics_port}"));
}

/// Metric names in a PromQL expression: identifiers starting `xuefen_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(found) = expr[i..].find("xuefen_") {
        let start = i + found;
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if start > 0 && ident(bytes[start - 1]) {
            i = start + 1;
            continue;
        }
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        out.insert(expr[start..end].to_owned());
        i = end;
    }
    out
}

/// Every PromQL expression of the dashboard and of the alert rules.
fn queried_expressions() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/dashboards/xuefen.json")).expect("dashboard JSON");
    let datasources = &yaml("grafana/provisioning/datasources/datasources.yaml")[0];
    let prometheus_uid = at(datasources, &["datasources"])
        .as_vec()
        .expect("datasources")
        .iter()
        .find(|d| str_at(d, &["type"]) == "prometheus")
        .map(|d| str_at(d, &["uid"]).to_owned())
        .expect("a provisioned Prometheus data source");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("title");
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                target["datasource"]["uid"],
                json!(prometheus_uid),
                "{title} queries the provisioned source"
            );
            let expr = target["expr"].as_str().expect("expr");
            out.push((format!("panel `{title}`"), expr.to_owned()));
        }
    }
    let alerts = &yaml("prometheus/alerts.yml")[0];
    for group in at(alerts, &["groups"]).as_vec().expect("groups") {
        for rule in at(group, &["rules"]).as_vec().expect("rules") {
            out.push((
                format!("alert `{}`", str_at(rule, &["alert"])),
                str_at(rule, &["expr"]).to_owned(),
            ));
        }
    }
    out
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        "sum(rate(xuefen_a_total[5m])) / sum(rate(not_xuefen_b[5m])) + histogram_quantile(0.9, xuefen_c_bucket{le=\"1\"})",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["xuefen_a_total", "xuefen_c_bucket"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_query_exists_in_a_real_scrape() {
    let queries = queried_expressions();
    assert!(queries.len() >= 15, "{} expressions", queries.len());
    let app = Server::start(Backend::Sqlite, &[], &[]).await;
    let site = app.fixture().await;
    let (s, _) = app
        .call(Method::PUT, "/v1/events/d1", Some(&site), Some(completion("5")))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let names = sample_names(&app.scrape().await);
    let mut seen = 0;
    for (place, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                names.contains(&name),
                "{place} queries {name}, which /metrics does not expose"
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} metric references found");
}

#[test]
fn the_dockerfile_copies_what_exists_and_sets_valid_settings() {
    let dockerfile = read("Dockerfile");
    let root = ops_dir().join("..");
    let mut stages = Vec::new();
    let mut env = BTreeMap::new();
    // Join continuation lines, then look at each instruction.
    let joined = dockerfile.replace("\\\n", " ");
    for line in joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("FROM") => stages.push(line.to_owned()),
            Some("COPY") if !line.contains("--from=") => {
                let args: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                for src in &args[..args.len() - 1] {
                    assert!(
                        root.join(src).exists(),
                        "the Dockerfile copies {src}, which does not exist"
                    );
                }
            }
            Some("ENV") => {
                for pair in words {
                    let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
            _ => {}
        }
    }
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    assert!(
        dockerfile.contains("COPY --from=build"),
        "the runtime stage takes the built binary"
    );
    assert!(dockerfile.contains("USER 10001"), "the runtime runs unprivileged");
    assert_config_accepts("the Dockerfile", &env);
    assert_eq!(env["XUEFEN_LOG_FORMAT"], "json");
}

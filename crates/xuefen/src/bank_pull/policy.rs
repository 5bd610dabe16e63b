//! How each deposit is decided: accept all, a rules file, or a command that
//! reads the deposit on stdin and prints a decision; every decision is checked
//! with the service's own rules before it is posted.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use xuefen_core::bank::Decision;

use super::PullArgs;

/// One rule of a `--rules` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rule {
    pub(super) site: Option<String>,
    pub(super) course: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) event_id: Option<String>,
    pub(super) outcome: String,
    pub(super) reason_code: Option<String>,
    pub(super) reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesFile {
    #[serde(default)]
    pub(super) rule: Vec<Rule>,
}

/// How the consumer decides each deposit.
pub(super) enum Policy {
    AcceptAll,
    Rules(Vec<(Rule, Value)>),
    Command(String),
}

/// A decision as posted: `{"outcome": …, "reason_code": …, "reason": …}`,
/// checked with the service's own rules so one bad decision cannot make a
/// whole page of acknowledgements refused.
pub(super) fn decision_json(outcome: &str, code: Option<&str>, reason: Option<&str>) -> anyhow::Result<Value> {
    match (outcome, code) {
        ("accepted", None) => Ok(json!({"outcome": "accepted"})),
        ("accepted", Some(_)) => bail!("`reason_code` is only for a rejection"),
        ("rejected", Some(code)) => {
            let text = reason.unwrap_or("");
            Decision::rejected(code, text).map_err(|e| anyhow!("`{}` {}", e.field, e.detail))?;
            let mut d = json!({"outcome": "rejected", "reason_code": code});
            if !text.trim().is_empty() {
                d["reason"] = json!(text.trim());
            }
            Ok(d)
        }
        ("rejected", None) => bail!("`reason_code` is required for a rejection"),
        (other, _) => bail!("`outcome` must be `accepted` or `rejected`, not {other:?}"),
    }
}

impl Policy {
    pub(super) fn from_args(args: &PullArgs) -> anyhow::Result<Self> {
        if let Some(cmd) = &args.decide_command {
            return Ok(Self::Command(cmd.clone()));
        }
        let Some(path) = &args.rules else {
            return Ok(Self::AcceptAll);
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("read rules {}", path.display()))?;
        let file: RulesFile = toml::from_str(&text).with_context(|| format!("rules {}", path.display()))?;
        let rules = file
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let d = decision_json(&r.outcome, r.reason_code.as_deref(), r.reason.as_deref())
                    .with_context(|| format!("rules {}: rule {}", path.display(), i + 1))?;
                Ok((r, d))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self::Rules(rules))
    }

    pub(super) async fn decide(&self, d: &Value) -> anyhow::Result<Value> {
        match self {
            Self::AcceptAll => Ok(json!({"outcome": "accepted"})),
            Self::Rules(rules) => {
                let is = |want: &Option<String>, name: &str| want.as_ref().is_none_or(|w| d[name].as_str() == Some(w));
                Ok(rules
                    .iter()
                    .find(|(r, _)| {
                        is(&r.site, "site_id")
                            && is(&r.course, "course")
                            && is(&r.kind, "kind")
                            && is(&r.event_id, "event_id")
                    })
                    .map_or_else(|| json!({"outcome": "accepted"}), |(_, d)| d.clone()))
            }
            Self::Command(cmd) => run_decide_command(cmd, d).await,
        }
    }
}

pub(super) async fn run_decide_command(cmd: &str, d: &Value) -> anyhow::Result<Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start the decide command {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(serde_json::to_string(d)?.as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("the decide command took longer than 60 s"))?
        .context("the decide command")?;
    if !out.status.success() {
        bail!("the decide command exited with {}", out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the decide command printed {:?}, not a JSON decision",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    })?;
    let text = |name: &str| v[name].as_str();
    let outcome = text("outcome").ok_or_else(|| anyhow!("the decide command printed no `outcome`: {v}"))?;
    decision_json(outcome, text("reason_code"), text("reason")).context("the decide command's decision")
}

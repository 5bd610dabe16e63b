//! Learners' names sealed at rest: the key ring from `name_keys`, the check
//! `xuefen serve` makes before it listens, and `xuefen names`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use xuefen_core::names::{NONCE_BYTES, NameKeys};
use xuefen_store::ServiceStore;
use xuefen_store::names::{check_name_keys, reseal_names};

use crate::settings::Settings;

/// Rows read and rewritten at a time.
const PAGE: u32 = 500;

#[derive(Subcommand)]
pub(crate) enum NamesCommand {
    /// Count the learners' names under each key (and any still in clear),
    /// after checking that the configured keys open them.
    Status,
    /// Re-seal every learner's name under the first key of `name_keys`
    /// (with every other key still there to open the old ones); afterwards
    /// the other keys can be dropped.
    Reseal,
}

/// The ring `name_keys` describes, or the one key derived from the
/// identity key.
pub(crate) fn name_keys(settings: &Settings, identity_key: &[u8]) -> anyhow::Result<NameKeys> {
    match &settings.name_keys {
        None => Ok(NameKeys::derived(identity_key)),
        Some(spec) => NameKeys::parse_with_derived(spec.expose(), identity_key)
            .map_err(|m| anyhow::anyhow!("configuration key `name_keys`: {m}")),
    }
}

fn nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    nonce
}

/// Before serving: every stored name must open with the configured keys
/// (else a start-up error naming the key), and names written in clear
/// before sealing existed are sealed now.
pub(crate) async fn check_at_start(store: &dyn ServiceStore, keys: &NameKeys) -> anyhow::Result<()> {
    let uses = check_name_keys(store, keys)
        .await
        .context("configuration key `name_keys` cannot open the stored names")?;
    if uses.iter().any(|u| u.key.is_none()) {
        let report = reseal_names(store, keys, true, PAGE, &mut nonce)
            .await
            .context("seal the names stored in clear")?;
        tracing::info!(
            sealed = report.sealed,
            key = keys.current(),
            "sealed names stored in clear"
        );
    }
    let older: u64 = uses
        .iter()
        .filter(|u| u.key.as_deref().is_some_and(|k| k != keys.current()))
        .map(|u| u.rows)
        .sum();
    if older > 0 {
        tracing::info!(
            names = older,
            "names sealed under older keys; `xuefen names reseal` moves them to the first key"
        );
    }
    Ok(())
}

pub(crate) async fn run(store: &dyn ServiceStore, keys: &NameKeys, cmd: NamesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NamesCommand::Status => {
            let uses = check_name_keys(store, keys)
                .await
                .context("configuration key `name_keys` cannot open the stored names")?;
            println!("key\tnames");
            for u in &uses {
                println!("{}\t{}", u.key.as_deref().unwrap_or("(clear)"), u.rows);
            }
        }
        NamesCommand::Reseal => {
            check_name_keys(store, keys)
                .await
                .context("configuration key `name_keys` cannot open the stored names")?;
            let report = reseal_names(store, keys, false, PAGE, &mut nonce)
                .await
                .context("re-seal the names")?;
            println!(
                "{} names read; {} sealed from clear and {} re-sealed under key {}",
                report.names,
                report.sealed,
                report.resealed,
                keys.current()
            );
            let left: Vec<String> = check_name_keys(store, keys)
                .await?
                .into_iter()
                .filter(|u| u.key.as_deref() != Some(keys.current()))
                .map(|u| format!("{} under {}", u.rows, u.key.as_deref().unwrap_or("(clear)")))
                .collect();
            if !left.is_empty() {
                // Written meanwhile by an instance that seals under an older key.
                println!("still not under {}: {}; run again", keys.current(), left.join(", "));
                return Ok(ExitCode::from(1));
            }
            println!(
                "every name is sealed under {}; the other keys can be dropped",
                keys.current()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Learners' names sealed at rest: the key ring from `name_keys`, the check
//! `xuefen serve` makes before it listens (which also moves names from
//! before per-learner keys under a key of their own, and seals the entry
//! notes written in clear before notes were sealed), and `xuefen names`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use xuefen_core::names::NameKeys;
use xuefen_store::ServiceStore;
use xuefen_store::names::{check_name_keys, reseal_names, seal_clear_notes};

use crate::settings::Settings;

/// Rows read and rewritten at a time.
const PAGE: u32 = 500;

#[derive(Subcommand)]
pub(crate) enum NamesCommand {
    /// Count the learners' names under each key (through their own keys,
    /// wrapped by it, or sealed under it before learner keys; and any still
    /// in clear), after checking that the configured keys open them.
    Status,
    /// Re-wrap every learner's key under the first key of `name_keys` (with
    /// every other key still there to open the old ones), moving any older
    /// name under a learner key of its own; afterwards the other keys can
    /// be dropped.
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

fn random(bytes: &mut [u8]) {
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), bytes);
}

/// Before serving: every stored name must open with the configured keys
/// (else a start-up error naming the key), and names from before learner
/// keys (sealed under a service key, or in clear from before sealing) are
/// moved under a key of their own now.
pub(crate) async fn check_at_start(store: &dyn ServiceStore, keys: &NameKeys) -> anyhow::Result<()> {
    let uses = check_name_keys(store, keys)
        .await
        .context("configuration key `name_keys` cannot open the stored names")?;
    if uses.iter().any(|u| !u.keyed) {
        let report = reseal_names(store, keys, true, PAGE, &mut random)
            .await
            .context("move the names under learner keys")?;
        tracing::info!(
            sealed = report.sealed,
            keyed = report.keyed,
            key = keys.current(),
            "moved names under learner keys"
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
    // Notes written in clear before they were sealed (migration 0018).
    let notes = seal_clear_notes(store, PAGE)
        .await
        .context("seal the entry notes written in clear")?;
    if notes > 0 {
        tracing::info!(notes, "sealed entry notes written in clear under their learners' keys");
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
            let mut counts: Vec<(&str, u64)> = Vec::new();
            for u in &uses {
                let key = u.key.as_deref().unwrap_or("(clear)");
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += u.rows,
                    None => counts.push((key, u.rows)),
                }
            }
            for (key, n) in counts {
                println!("{key}\t{n}");
            }
            let older: u64 = uses.iter().filter(|u| !u.keyed).map(|u| u.rows).sum();
            if older > 0 {
                println!("({older} of them not yet under a learner key; the service moves them when it starts)");
            }
        }
        NamesCommand::Reseal => {
            check_name_keys(store, keys)
                .await
                .context("configuration key `name_keys` cannot open the stored names")?;
            let report = reseal_names(store, keys, false, PAGE, &mut random)
                .await
                .context("re-seal the names")?;
            println!(
                "{} names read; {} sealed from clear, {} moved under learner keys and {} learner keys re-wrapped under key {}",
                report.names,
                report.sealed,
                report.keyed,
                report.resealed,
                keys.current()
            );
            let left: Vec<String> = check_name_keys(store, keys)
                .await?
                .into_iter()
                .filter(|u| u.key.as_deref() != Some(keys.current()) || !u.keyed)
                .map(|u| {
                    let how = if u.keyed { "" } else { " without a learner key" };
                    format!("{} under {}{how}", u.rows, u.key.as_deref().unwrap_or("(clear)"))
                })
                .collect();
            if !left.is_empty() {
                // Written meanwhile by an instance that seals under an older key.
                println!("still not under {}: {}; run again", keys.current(), left.join(", "));
                return Ok(ExitCode::from(1));
            }
            println!(
                "every name is under its learner's key, wrapped by {}; the other keys can be dropped",
                keys.current()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `xuefen verify`: every hash chain from genesis, then the log over them
//! (segments, tiles, chain tips, the latest checkpoint and a held one).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use xuefen_store::verify::{VerifyFailure, verify_all};

use crate::settings::Settings;
use crate::stores::open_existing_store;

pub(crate) async fn run(
    db: &Settings,
    public_key: Option<&str>,
    held: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, false).await?;
    let key = public_key
        .map(|k| -> anyhow::Result<ed25519_dalek::VerifyingKey> {
            let bytes: [u8; 32] = hex::decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--public-key must be 32 bytes of hex")?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("--public-key is not an Ed25519 key")
        })
        .transpose()?;
    let held = match held {
        None => None,
        Some(path) => {
            let note = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            let body = note
                .split_once("\n\n")
                .map(|(b, _)| format!("{b}\n"))
                .unwrap_or_default();
            let cp = xuefen_core::tlog::LogCheckpoint::parse_body(&body)
                .with_context(|| format!("{} is not a checkpoint (a signed note)", path.display()))?;
            if let Some(key) = &key {
                xuefen_core::tlog::LogCheckpoint::open(&note, &cp.origin, key)
                    .with_context(|| format!("{}: the held checkpoint", path.display()))?;
            }
            Some(cp)
        }
    };
    let started = Instant::now();
    // The entries and the log side by side; a fault of the entries is named
    // before one of the log over them.
    let result = verify_all(&*store, key.as_ref(), held.as_ref()).await;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    match result {
        Ok((report, log)) => {
            println!(
                "ok: {} entries in {} chains and {} site changes in the alliance chain verified in {:.3}s ({:.0} entries/s)",
                report.entries,
                report.chains,
                report.site_changes,
                secs,
                report.entries as f64 / secs
            );
            println!(
                "ok: the log of {} entries matches its {} tiles and its checkpoint ({})",
                log.size,
                log.tiles,
                if log.signature {
                    "signature verified"
                } else {
                    "signature not checked: give --public-key"
                }
            );
            if let Some(h) = log.held {
                println!("ok: the log contains the held checkpoint of size {h}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyFailure::Store(e)) => Err(e).context("read the ledger"),
        Err(e) => {
            println!("FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

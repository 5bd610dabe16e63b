//! The witnesses whose cosignatures every page's checkpoint must carry
//! (`--witness NAME=KEY`, `--quorum N`).

use anyhow::{anyhow, bail};
use xuefen_core::witness::{self, Cosigner};

use super::{PullArgs, Untrusted};

/// The witnesses whose cosignatures a checkpoint must carry, and how many.
pub(super) struct Quorum {
    pub(super) witnesses: Vec<Cosigner>,
    pub(super) needed: usize,
}

impl Quorum {
    pub(super) fn from_args(args: &PullArgs) -> anyhow::Result<Option<Self>> {
        if args.witnesses.is_empty() {
            return Ok(None);
        }
        let mut witnesses: Vec<Cosigner> = Vec::new();
        for spec in &args.witnesses {
            let c = Cosigner::parse(spec).map_err(|m| anyhow!("--witness: {m}"))?;
            if witnesses.iter().any(|w| w.name == c.name) {
                bail!("--witness: `{}` is named twice", c.name);
            }
            witnesses.push(c);
        }
        let needed = args.quorum.unwrap_or(witnesses.len());
        if needed == 0 || needed > witnesses.len() {
            bail!("--quorum must be from 1 to the {} witnesses named", witnesses.len());
        }
        Ok(Some(Self { witnesses, needed }))
    }

    /// Checks that `note` carries cosignatures of at least `needed` of the
    /// named witnesses, none dated more than ten minutes ahead of this clock.
    pub(super) fn check(&self, note: &str) -> Result<(), Untrusted> {
        let (text, lines) =
            witness::split_note(note).ok_or_else(|| Untrusted("the page's checkpoint is not a signed note".into()))?;
        let ahead = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64 + 600;
        let good: Vec<String> = witness::cosignatures(lines, &self.witnesses, &text)
            .into_iter()
            .filter(|c| c.timestamp <= ahead)
            .map(|c| c.witness)
            .collect();
        if good.len() < self.needed {
            let size = text.lines().nth(1).unwrap_or("?");
            return Err(Untrusted(format!(
                "the checkpoint of size {size} carries valid cosignatures of {} of the named witnesses ({}), {} are required",
                good.len(),
                if good.is_empty() {
                    "none".to_owned()
                } else {
                    good.join(", ")
                },
                self.needed
            )));
        }
        Ok(())
    }
}

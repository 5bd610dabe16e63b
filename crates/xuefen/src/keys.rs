//! `xuefen keys`: mint and revoke API keys for the provincial centre, the
//! credit bank and sites (a secret is shown once and stored hashed).

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use xuefen_core::ids::SiteId;
use xuefen_store::Principal;

use crate::settings::Settings;
use crate::stores::open_existing_store;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (shown once).
    Create {
        /// A key for the provincial centre.
        #[arg(long, conflicts_with_all = ["site", "bank"])]
        admin: bool,
        /// A key for the credit bank (reads deposits, acknowledges them).
        #[arg(long, conflicts_with = "site")]
        bank: bool,
        /// A key for this site.
        #[arg(long)]
        site: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

pub(crate) async fn run(db: &Settings, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, true).await?;
    match cmd {
        KeysCommand::Create { admin, bank, site } => {
            let principal = match (admin, site) {
                (false, None) if bank => Principal::Bank,
                (true, None) => Principal::Admin,
                (false, Some(site)) => {
                    let id = SiteId::parse(site)?;
                    store.site(&id).await?.context("no such site")?;
                    Principal::Site(id)
                }
                _ => bail!("give --admin, --bank or --site ID"),
            };
            let (key, secret) = xuefen_api::auth::mint(principal);
            store.create_key(&key).await?;
            println!("key {} (shown once): {secret}", key.id);
        }
        KeysCommand::Revoke { key_id } => {
            store.revoke_key(&key_id).await?;
            println!("key {key_id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

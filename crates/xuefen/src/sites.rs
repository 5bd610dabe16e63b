//! `xuefen sites`: create, list and move alliance sites along their
//! lifecycle, each change recorded in the alliance chain.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use xuefen_core::event::Millis;
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_store::{Principal, Site, SiteAct};

use crate::settings::Settings;
use crate::stores::open_existing_store;

#[derive(Subcommand)]
pub(crate) enum SitesCommand {
    /// Create a site and print its first API key (shown once).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// province, city, county or township.
        #[arg(long)]
        level: String,
        /// 6-digit GB/T 2260 region code.
        #[arg(long)]
        region: String,
        #[arg(long, default_value = "active")]
        status: String,
        /// Why (recorded in the alliance chain).
        #[arg(long, default_value = "site created")]
        reason: String,
    },
    /// List sites.
    List,
    /// Move a site along its lifecycle (active, suspended, terminated),
    /// recorded in the alliance chain with the reason.
    Status {
        id: String,
        status: String,
        #[arg(long)]
        reason: String,
    },
}

pub(crate) async fn run(db: &Settings, cmd: SitesCommand) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, true).await?;
    match cmd {
        SitesCommand::Add {
            id,
            name,
            level,
            region,
            status,
            reason,
        } => {
            let site = Site {
                id: SiteId::parse(id)?,
                name,
                level: SiteLevel::parse(&level)?,
                region_code: RegionCode::parse(region)?,
                status: SiteStatus::parse(&status)?,
                agreement_starts_at: None,
                agreement_ends_at: None,
            };
            site.region_code.check_level(site.level)?;
            store
                .create_site(&site, &cli_act(&reason)?)
                .await
                .context("create site")?;
            let (key, secret) = xuefen_api::auth::mint(Principal::Site(site.id.clone()));
            store.create_key(&key).await?;
            println!("site {} created; key {} (shown once): {secret}", site.id, key.id);
        }
        SitesCommand::List => {
            // Standing against today, CST dates: an active site whose
            // agreement ended reads `expired`.
            let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
            let day = |m: Option<Millis>| m.map_or_else(|| "-".to_owned(), Millis::date_cst);
            println!("id\tlevel\tregion\tstatus\tstanding\tagreement_from\tagreement_to\tname");
            for s in store.sites().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.level,
                    s.region_code.as_str(),
                    s.status,
                    xuefen_store::agreement_standing(&s, now),
                    day(s.agreement_starts_at),
                    day(s.agreement_ends_at),
                    s.name
                );
            }
        }
        SitesCommand::Status { id, status, reason } => {
            let (site, entry) = store
                .set_site_status(
                    &SiteId::parse(id)?,
                    SiteStatus::parse(&status)?,
                    None,
                    &cli_act(&reason)?,
                )
                .await?;
            println!(
                "site {} is {} (alliance chain {})",
                site.id, site.status, entry.position
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A site change made from the command line.
fn cli_act(reason: &str) -> anyhow::Result<SiteAct> {
    Ok(SiteAct {
        actor: "cli".into(),
        reason: xuefen_core::event::Reason::parse(reason, "reason")?,
        at: xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc()),
    })
}

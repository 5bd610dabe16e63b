//! `xuefen dev-token`: a learner token signed with the HS256 development
//! secret the server generated, for trying `/v1/me/transcript` by hand.

use std::process::ExitCode;

use anyhow::{Context, bail};
use xuefen_api::sso::{SsoKey, dev_token, dev_token_with};

use crate::secrets::sso_key;
use crate::settings::Settings;

/// Prints the token for `learner` (as `sub`), or for the SSO's own
/// `subject` with an optional resident ID `document`.
pub(crate) fn run(
    settings: &Settings,
    learner: Option<String>,
    subject: Option<String>,
    document: Option<String>,
    ttl_seconds: u64,
) -> anyhow::Result<ExitCode> {
    // With the generated development secret, the server's must be
    // used: refuse instead of generating one nobody verifies with.
    let dev_secret = settings.data_dir.join("sso-dev.key");
    if settings.sso_algorithm == "HS256"
        && settings.sso_key.is_none()
        && settings.sso_key_file.is_none()
        && !dev_secret.exists()
    {
        bail!(
            "no development SSO secret at {}: run dev-token with the server's settings (from the \
             directory `xuefen serve` runs in, or with its XUEFEN_DATA_DIR), after the server started once",
            dev_secret.display()
        );
    }
    let SsoKey::Hs256(secret) = sso_key(settings)? else {
        bail!("dev-token signs with an HS256 secret; the configured key is a public key");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("read the clock")?
        .as_secs();
    let token = match (learner, subject) {
        (Some(learner), _) => {
            let learner = xuefen_core::ids::LearnerId::parse(learner)?;
            dev_token(
                &secret,
                &settings.sso_issuer,
                &settings.sso_audience,
                &learner,
                now,
                ttl_seconds,
            )
        }
        (None, subject) => {
            let mut claims = serde_json::Map::new();
            claims.insert(settings.sso_subject_claim.clone(), subject.unwrap_or_default().into());
            if let Some(number) = document {
                let Some(claim) = settings.sso_document_claim.clone() else {
                    bail!("--document needs sso_document_claim to name the claim it goes in");
                };
                claims.insert(claim, number.into());
            }
            dev_token_with(
                &secret,
                &settings.sso_issuer,
                &settings.sso_audience,
                claims,
                now,
                ttl_seconds,
            )
        }
    }
    .context("sign the token")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

//! The service's secrets: the single sign-on key and subject rule, the
//! identity key and the checkpoint signing key, from the settings or
//! generated once into a private `data_dir`. Kept apart from `serve` because
//! `dev-token` and `names` read the same keys.

use anyhow::{Context, bail};
use xuefen_api::sso::{SsoKey, SsoSubject};

use crate::settings::Settings;

/// How a learner token names the person: `sso_subject_claim` holding the
/// unified id, or the SSO's own id bound through `sso_document_claim`.
pub(crate) fn sso_subject(settings: &Settings) -> anyhow::Result<SsoSubject> {
    let claim = settings.sso_subject_claim.trim().to_owned();
    if claim.is_empty() {
        bail!("sso_subject_claim must name a claim");
    }
    match settings.sso_subject_kind.as_str() {
        "learner_id" => Ok(SsoSubject::LearnerId { claim }),
        "sso_id" => Ok(SsoSubject::Bound {
            claim,
            document_claim: settings.sso_document_claim.clone().filter(|c| !c.trim().is_empty()),
        }),
        other => bail!("sso_subject_kind `{other}` is not one of learner_id, sso_id"),
    }
}

/// The key learner tokens are verified with: `sso_key` (or the file
/// `sso_key_file`) for the algorithm `sso_algorithm`; for HS256 without a
/// key, a development secret generated once into `data_dir`.
pub(crate) fn sso_key(settings: &Settings) -> anyhow::Result<SsoKey> {
    let given = match (&settings.sso_key, &settings.sso_key_file) {
        (Some(k), _) => Some(k.expose().to_owned()),
        (None, Some(path)) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("read sso_key_file {}", path.display()))?)
        }
        (None, None) => None,
    };
    match (settings.sso_algorithm.as_str(), given) {
        ("HS256", Some(hex_key)) => {
            let key = hex::decode(hex_key.trim()).context("sso_key must be hex for HS256")?;
            if key.len() < 32 {
                bail!("sso_key must hold at least 32 bytes (64 hex digits) for HS256");
            }
            Ok(SsoKey::Hs256(key))
        }
        ("HS256", None) => Ok(SsoKey::Hs256(local_secret(
            &settings.data_dir,
            "sso-dev.key",
            "development SSO secret",
        )?)),
        ("RS256", Some(pem)) => Ok(SsoKey::Rs256Pem(pem.into_bytes())),
        ("ES256", Some(pem)) => Ok(SsoKey::Es256Pem(pem.into_bytes())),
        ("RS256" | "ES256", None) => bail!("sso_key or sso_key_file must give the SSO's public key"),
        (other, _) => bail!("sso_algorithm `{other}` is not one of HS256, RS256, ES256"),
    }
}

/// Creates the data directory, when missing, so that only its owner may
/// enter it (0700): it holds the database and the service's keys.
pub(crate) fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("create {}", dir.display()))
}

/// A 32-byte secret kept as hex in `data_dir/name`, generated on first use.
fn local_secret(data_dir: &std::path::Path, name: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim()).with_context(|| format!("read {what} {}", path.display()));
    }
    private_dir(data_dir)?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    std::fs::write(&path, hex::encode(key)).with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::warn!(path = %path.display(), "generated a new {what}; back it up");
    Ok(key.to_vec())
}

pub(crate) fn identity_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    let data_dir = settings.data_dir.as_path();
    if let Some(hex_key) = &settings.identity_key {
        // Length and hex were checked when the configuration loaded.
        return hex::decode(hex_key.expose()).context("identity_key must be hex");
    }
    let key = local_secret(
        data_dir,
        "identity.key",
        "identity key (learners cannot be matched across sites without it)",
    )?;
    if key.len() < 32 {
        anyhow::bail!(
            "the identity key in {} is shorter than 32 bytes",
            data_dir.join("identity.key").display()
        );
    }
    Ok(key)
}

/// The checkpoint signing key: from the settings, or generated once into `data_dir`.
pub(crate) fn checkpoint_key(settings: &Settings) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let secret = match &settings.checkpoint_key {
        // Length and hex were checked when the configuration loaded.
        Some(hex_key) => hex::decode(hex_key.expose()).context("checkpoint_key must be hex")?,
        None => local_secret(
            &settings.data_dir,
            "checkpoint.key",
            "checkpoint key (checkpoints it signed cannot be verified with another)",
        )?,
    };
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("the checkpoint key must be 32 bytes (64 hex digits)"))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&secret))
}

//! `xuefen witness`: a C2SP `tlog-witness` for the log (the credit bank
//! runs one).
//!
//! It follows the logs named by `--log ORIGIN=KEY`, keeps the latest
//! checkpoint it cosigned for each in a state file, and answers
//! `POST /add-checkpoint` as the spec says: 404 for an unknown origin, 403
//! without a valid signature of the log's key, 400 when the old size is
//! above the checkpoint's, 409 (`text/x.tlog.size`, its size) when the old
//! size is not the one it last cosigned, 422 when the consistency proof
//! fails or the same size has another root. Otherwise it saves the new
//! checkpoint (file written and synced, then renamed) and only then returns
//! its `cosignature/v1` line. Check and save happen under one lock, so two
//! requests can never roll its state back. `GET /<sha256(origin) hex>/checkpoint`
//! serves the latest cosigned checkpoint with its cosignature.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::Mutex;
use xuefen_core::tlog::LogCheckpoint;
use xuefen_core::witness::{self, AddCheckpoint, Cosigner, Refusal};

/// Options of `xuefen witness`.
#[derive(clap::Args, Debug)]
pub(crate) struct WitnessArgs {
    /// The witness's name: the key name of its cosignatures (no spaces or `+`).
    #[arg(long)]
    pub name: String,
    /// A log to follow, `ORIGIN=KEY` (KEY: the log's hex Ed25519 public key); repeatable.
    #[arg(long = "log", value_name = "ORIGIN=KEY", required = true)]
    pub logs: Vec<String>,
    /// The witness's hex Ed25519 secret key; generated into it when missing.
    #[arg(long, default_value = "witness.key")]
    pub key_file: PathBuf,
    /// Where the latest cosigned checkpoint of each log is kept.
    #[arg(long, default_value = "witness-state.json")]
    pub state: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
}

/// The latest checkpoint cosigned for one origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Latest {
    size: u64,
    /// The root, hex.
    root: String,
    /// The checkpoint as cosigned: the log's note with this witness's line.
    note: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WitnessState {
    logs: BTreeMap<String, Latest>,
}

struct Witness {
    name: String,
    key: SigningKey,
    logs: BTreeMap<String, VerifyingKey>,
    path: PathBuf,
    state: Mutex<WitnessState>,
}

fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let hex_key = match std::fs::read_to_string(path) {
        Ok(k) => k.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
            let k = hex::encode(key);
            std::fs::write(path, &k).with_context(|| format!("write {}", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            eprintln!("generated a new witness key into {}; back it up", path.display());
            k
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let bytes: [u8; 32] = hex::decode(&hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn load_state(path: &Path) -> anyhow::Result<WitnessState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("read state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WitnessState::default()),
        Err(e) => Err(e).with_context(|| format!("read state {}", path.display())),
    }
}

/// Saves so that a crash leaves either the old or the new file.
fn save_state(path: &Path, state: &WitnessState) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn refusal(r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match r {
        Refusal::Conflict { size } => text(status, witness::SIZE_CONTENT_TYPE, format!("{size}\n")),
        Refusal::BadRequest(m) | Refusal::Forbidden(m) | Refusal::UnknownLog(m) | Refusal::Inconsistent(m) => {
            text(status, "text/plain; charset=utf-8", format!("{m}\n"))
        }
    }
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let Ok(body) = std::str::from_utf8(&body) else {
        return refusal(&Refusal::BadRequest("the body is not UTF-8".into()));
    };
    let req = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(m) => return refusal(&Refusal::BadRequest(m)),
    };
    let origin = witness::note_origin(&req.note).unwrap_or_default().to_owned();
    // Check and save under one lock: no two requests interleave.
    let mut state = w.state.lock().await;
    let latest = state.logs.get(&origin).and_then(|l| {
        Some(LogCheckpoint {
            origin: origin.clone(),
            size: l.size,
            root: hex::decode(&l.root).ok()?.try_into().ok()?,
        })
    });
    let cp = match witness::decide(&req, w.logs.get(&origin), latest.as_ref()) {
        Ok(cp) => cp,
        Err(r) => {
            if r.status() == 422 || r.status() == 400 {
                tracing::warn!(origin = %origin, old_size = req.old_size, reason = ?r, "refused a checkpoint");
            }
            return refusal(&r);
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(1) as u64;
    let line = witness::cosign(&w.name, &w.key, &cp.body(), now);
    let mut note = req.note.clone();
    if !note.ends_with('\n') {
        note.push('\n');
    }
    // Keep the log's signature and ours (drop any other cosigners').
    let (body_text, sigs) = witness::split_note(&note).unwrap_or((cp.body(), Vec::new()));
    let mut kept = format!("{body_text}\n");
    for s in sigs.iter().filter(|s| s.starts_with(&format!("— {origin} "))) {
        kept.push_str(s);
        kept.push('\n');
    }
    kept.push_str(&line);
    let previous = state.logs.insert(
        origin.clone(),
        Latest {
            size: cp.size,
            root: hex::encode(cp.root),
            note: kept,
        },
    );
    if let Err(e) = save_state(&w.path, &state) {
        // Not persisted: not cosigned.
        match previous {
            Some(p) => state.logs.insert(origin, p),
            None => state.logs.remove(&origin),
        };
        tracing::error!(error = %e, "could not save the witness state");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the witness could not save its state\n".into(),
        );
    }
    tracing::info!(origin = %cp.origin, size = cp.size, "cosigned");
    text(StatusCode::OK, "text/plain; charset=utf-8", line)
}

async fn get_checkpoint(State(w): State<Arc<Witness>>, UrlPath(hash): UrlPath<String>) -> Response {
    let state = w.state.lock().await;
    let found = state
        .logs
        .iter()
        .find(|(origin, _)| hex::encode(sha2::Sha256::digest(origin.as_bytes())) == hash);
    match found {
        Some((_, l)) => text(StatusCode::OK, "text/plain; charset=utf-8", l.note.clone()),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no checkpoint cosigned for that log\n".into(),
        ),
    }
}

/// Runs the witness until SIGTERM/SIGINT.
pub(crate) async fn run(args: WitnessArgs) -> anyhow::Result<ExitCode> {
    if !witness::valid_name(&args.name) {
        bail!("--name `{}` is not a valid key name (no spaces or `+`)", args.name);
    }
    let mut logs = BTreeMap::new();
    for spec in &args.logs {
        let (origin, key) = spec
            .split_once('=')
            .with_context(|| format!("--log `{spec}` is not ORIGIN=KEY"))?;
        let bytes: [u8; 32] = hex::decode(key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("--log {origin}: the key must be 64 hex digits"))?;
        let key = VerifyingKey::from_bytes(&bytes).with_context(|| format!("--log {origin}: not an Ed25519 key"))?;
        logs.insert(origin.to_owned(), key);
    }
    let key = load_key(&args.key_file)?;
    let state = load_state(&args.state)?;
    let me = Cosigner {
        name: args.name.clone(),
        key: key.verifying_key(),
    };
    println!("witness {} public key {}", args.name, hex::encode(me.key.as_bytes()));
    println!("witness verifier key {}", me.vkey());
    let w = Arc::new(Witness {
        name: args.name,
        key,
        logs,
        path: args.state,
        state: Mutex::new(state),
    });
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(get_checkpoint))
        .with_state(w);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

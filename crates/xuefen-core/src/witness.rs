//! Witnessing the log: C2SP `tlog-cosignature` (Ed25519, `cosignature/v1`)
//! and the checks of C2SP `tlog-witness`'s `add-checkpoint` call.
//!
//! A cosignature is a signed-note signature line
//! `— <name> base64(key ID ‖ timestamp ‖ Ed25519 signature)` where the key
//! ID is `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[..4]`, the timestamp is
//! 8 bytes big-endian (POSIX seconds) and the signature is over
//! `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's note
//! text. The byte layout and a worked example are in `docs/ledger-format.md`, section 12.
//!
//! [`decide`] is the whole decision of a witness on one request, given the
//! latest checkpoint it cosigned for the origin: the HTTP answer the spec
//! asks for each refusal, or the new checkpoint to record and cosign.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::merkle::{self, Hash};
use crate::tlog::LogCheckpoint;

/// The signature type byte of Ed25519 cosignatures (`cosignature/v1`).
pub const COSIGNATURE_V1: u8 = 0x04;
/// Most consistency proof lines an `add-checkpoint` request may carry.
pub const PROOF_LINES_MAX: usize = 63;
/// The content type of a 409 answer's body: the witness's size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A cosigner: its name and Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub key: VerifyingKey,
}

/// A cosignature that verified: who signed, and when (POSIX seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    pub witness: String,
    pub timestamp: u64,
    /// The signature line, ending in a newline.
    pub line: String,
}

impl Cosigner {
    /// `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[..4]`, big-endian.
    pub fn key_id(&self) -> u32 {
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(self.key.as_bytes());
        signed_note::key_id(&self.name, &encoded)
    }

    /// The signed-note verifier key: `name+<key id hex>+base64(0x04 ‖ key)`.
    pub fn vkey(&self) -> String {
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), STANDARD.encode(encoded))
    }

    /// Parses `NAME=KEY` where KEY is the hex Ed25519 public key or the
    /// cosigner's verifier key (`NAME+id+base64(0x04 ‖ key)`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, text) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not NAME=KEY"))?;
        if !signed_note::is_key_name_valid(name) {
            return Err(format!("`{name}` is not a valid key name (no spaces or `+`)"));
        }
        let as_hex = hex::decode(text).ok();
        let bytes: [u8; 32] = if let Some(raw) = as_hex.clone() {
            raw.try_into()
                .map_err(|_| format!("the key of `{name}` is not 32 bytes"))?
        } else {
            let mut parts = text.splitn(3, '+');
            let (vname, _id, b64) = (parts.next(), parts.next(), parts.next());
            if vname != Some(name) {
                return Err(format!("the verifier key of `{name}` names another cosigner"));
            }
            let raw = b64
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or_else(|| format!("the key of `{name}` is neither hex nor a verifier key"))?;
            match raw.split_first() {
                Some((&COSIGNATURE_V1, rest)) => rest
                    .try_into()
                    .map_err(|_| format!("the key of `{name}` is not 32 bytes"))?,
                _ => {
                    return Err(format!(
                        "the verifier key of `{name}` is not an Ed25519 cosignature key"
                    ));
                }
            }
        };
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| format!("the key of `{name}` is not an Ed25519 key"))?;
        let c = Self {
            name: name.to_owned(),
            key,
        };
        if as_hex.is_none() && c.vkey() != text {
            return Err(format!("the verifier key of `{name}` has the wrong key ID"));
        }
        Ok(c)
    }
}

/// Whether `name` may name a key in a signed note (no spaces or `+`).
pub fn valid_name(name: &str) -> bool {
    signed_note::is_key_name_valid(name)
}

/// The message a `cosignature/v1` signs: the header line, the time line,
/// then the checkpoint's note text (its lines, without signatures).
pub fn signed_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// Cosigns the note text `text` at `timestamp`: one signature line.
pub fn cosign(name: &str, key: &SigningKey, text: &str, timestamp: u64) -> String {
    let me = Cosigner {
        name: name.to_owned(),
        key: key.verifying_key(),
    };
    let sig = key.sign(&signed_message(timestamp, text));
    let mut bytes = Vec::with_capacity(76);
    bytes.extend_from_slice(&me.key_id().to_be_bytes());
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&sig.to_bytes());
    format!("— {name} {}\n", STANDARD.encode(bytes))
}

/// Splits a signed note into its text (ending in a newline) and its
/// signature lines (each without its newline). `None` if it has no blank
/// line before its signatures.
pub fn split_note(note: &str) -> Option<(String, Vec<&str>)> {
    let (text, sigs) = note.rsplit_once("\n\n")?;
    let sigs = sigs.strip_suffix('\n')?;
    Some((format!("{text}\n"), sigs.split('\n').collect()))
}

/// The parts of a `cosignature/v1` signature line: the name, the key ID,
/// the timestamp and the signature. `None` if it is not shaped as one.
pub fn parse_line(line: &str) -> Option<(&str, u32, u64, Signature)> {
    let rest = line.trim_end_matches('\n').strip_prefix("— ")?;
    let (name, b64) = rest.split_once(' ')?;
    let raw = STANDARD.decode(b64).ok()?;
    if raw.len() != 4 + 8 + 64 {
        return None;
    }
    let (id, rest) = raw.split_at(4);
    let (ts, sig) = rest.split_at(8);
    let id = u32::from_be_bytes(id.try_into().ok()?);
    let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
    Some((name, id, timestamp, Signature::from_slice(sig).ok()?))
}

/// Checks one signature line against `cosigner` over the note text `text`:
/// the timestamp it carries when it is that cosigner's and verifies.
pub fn verify_line(line: &str, cosigner: &Cosigner, text: &str) -> Option<u64> {
    let (name, id, timestamp, sig) = parse_line(line)?;
    if name != cosigner.name || id != cosigner.key_id() {
        return None;
    }
    if timestamp == 0 || timestamp > i64::MAX as u64 {
        return None;
    }
    cosigner
        .key
        .verify(&signed_message(timestamp, text), &sig)
        .ok()
        .map(|()| timestamp)
}

/// The valid cosignatures in `lines` over `text`, one per named cosigner
/// (the newest when one signed twice). Lines of unknown keys are ignored,
/// as the spec asks.
pub fn cosignatures<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    cosigners: &[Cosigner],
    text: &str,
) -> Vec<Cosignature> {
    let mut out: Vec<Cosignature> = Vec::new();
    for line in lines {
        for c in cosigners {
            if let Some(timestamp) = verify_line(line, c, text) {
                match out.iter_mut().find(|o| o.witness == c.name) {
                    Some(o) if o.timestamp >= timestamp => {}
                    Some(o) => {
                        o.timestamp = timestamp;
                        o.line = format!("{}\n", line.trim_end_matches('\n'));
                    }
                    None => out.push(Cosignature {
                        witness: c.name.clone(),
                        timestamp,
                        line: format!("{}\n", line.trim_end_matches('\n')),
                    }),
                }
            }
        }
    }
    out
}

// ------------------------------------------------------- add-checkpoint

/// A parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The submitted checkpoint: a signed note.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body: `old N\n`, the proof lines, a blank line, the note.
    pub fn body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses a request body; the error says what is wrong (a 400).
    pub fn parse(body: &str) -> Result<Self, String> {
        let (first, mut rest) = body.split_once('\n').ok_or("the body has no old size line")?;
        let size_s = first.strip_prefix("old ").ok_or("the first line is not `old <size>`")?;
        let old_size: u64 = size_s.parse().map_err(|_| "the old size is not a decimal")?;
        if old_size.to_string() != size_s {
            return Err("the old size has leading zeroes or a sign".into());
        }
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or("the proof is not followed by a blank line")?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_LINES_MAX {
                return Err(format!("more than {PROOF_LINES_MAX} consistency proof lines"));
            }
            let hash: Hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("a consistency proof line is not a base64 hash")?;
            proof.push(hash);
        }
        Ok(Self {
            old_size,
            proof,
            note: rest.to_owned(),
        })
    }
}

/// A witness's refusal: the HTTP status the spec asks for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed, or the old size is above the checkpoint's.
    BadRequest(String),
    /// 403: no valid signature of the log's key.
    Forbidden(String),
    /// 404: the origin is not a log this witness follows.
    UnknownLog(String),
    /// 409: the old size is not the size this witness last cosigned.
    Conflict { size: u64 },
    /// 422: the checkpoint is not consistent with what the witness saw.
    Inconsistent(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::UnknownLog(_) => 404,
            Self::Conflict { .. } => 409,
            Self::Inconsistent(_) => 422,
        }
    }
}

/// The origin a note's first line names, without checking anything else.
pub fn note_origin(note: &str) -> Option<&str> {
    note.split_once('\n').map(|(o, _)| o).filter(|o| !o.is_empty())
}

/// A witness's decision on `req`: the checkpoint to record and cosign, or
/// the refusal. `log_key` is the trusted key of the origin the note names
/// (`None`: unknown origin); `latest` the checkpoint last cosigned for it.
pub fn decide(
    req: &AddCheckpoint,
    log_key: Option<&VerifyingKey>,
    latest: Option<&LogCheckpoint>,
) -> Result<LogCheckpoint, Refusal> {
    let origin =
        note_origin(&req.note).ok_or_else(|| Refusal::BadRequest("the checkpoint has no origin line".into()))?;
    let Some(key) = log_key else {
        return Err(Refusal::UnknownLog(format!(
            "`{origin}` is not a log this witness follows"
        )));
    };
    let cp = LogCheckpoint::open(&req.note, origin, key).map_err(|e| match e {
        crate::tlog::NoteFailure::Malformed(m) => Refusal::BadRequest(m),
        other => Refusal::Forbidden(other.to_string()),
    })?;
    if req.old_size > cp.size {
        return Err(Refusal::BadRequest(format!(
            "the old size {} is above the checkpoint's size {}",
            req.old_size, cp.size
        )));
    }
    let have = latest.map_or(0, |l| l.size);
    if req.old_size != have {
        return Err(Refusal::Conflict { size: have });
    }
    if cp.size == 0 && cp.root != merkle::empty_root() {
        return Err(Refusal::Inconsistent(
            "a checkpoint of size 0 must have the empty tree's root".into(),
        ));
    }
    match latest {
        None => {
            if !req.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "a proof from the old size 0 must be empty".into(),
                ));
            }
        }
        Some(l) if l.size == cp.size => {
            if l.root != cp.root {
                return Err(Refusal::Inconsistent(format!(
                    "the log of size {} has another root than the one cosigned (forked)",
                    cp.size
                )));
            }
        }
        Some(l) => {
            if l.size == 0 {
                if !req.proof.is_empty() {
                    return Err(Refusal::Inconsistent(
                        "a proof from the old size 0 must be empty".into(),
                    ));
                }
            } else if !merkle::verify_consistency(l.size, cp.size, &l.root, &cp.root, &req.proof) {
                return Err(Refusal::Inconsistent(format!(
                    "the checkpoint of size {} does not extend the one of size {} cosigned before (forked or rewritten)",
                    cp.size, l.size
                )));
            }
        }
    }
    Ok(cp)
}

#[cfg(test)]
mod tests;

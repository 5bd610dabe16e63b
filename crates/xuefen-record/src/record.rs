//! Building the learner's record and checking one offline.
//!
//! The record is a `VerifiableCredential` + `ClrCredential` whose subject
//! (`ClrSubject`) lists one Open Badges 3.0 `Achievement` per transcript
//! line (course title, course code, category, the site as creator, the
//! credits, the date and the line's status). Each achievement's
//! `ledgerEvidence` holds the entry's canonical bytes (which name the
//! learner only by commitment), its position and predecessor hash, and,
//! once sealed, its log index with the inclusion proof up to the checkpoint
//! in the record's `ledgerCheckpoint` (a C2SP signed note, verified with the
//! log key in `logVerifierKey`). The whole is signed with `eddsa-rdfc-2022`.

use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use xuefen_core::entry::{Entry, EntryBody, entry_hash};
use xuefen_core::ids::Position;
use xuefen_core::merkle::{Hash, verify_inclusion};
use xuefen_core::tlog::{self, LogCheckpoint};

use crate::canon::{OB_V3, VC_V2, XUEFEN_V1};
use crate::proof::{self, ProofError};

/// The evidence format written in `ledgerEvidence.format`.
pub const EVIDENCE_FORMAT: &str = "xuefen-ledger-entry";

/// The issuer key of records, derived from the log's checkpoint key under a
/// label of its own (HMAC-SHA256 of the key's seed): every instance derives
/// the same key, and a signature made for one purpose is never one of the
/// other.
pub fn issuer_key(log_key: &SigningKey) -> SigningKey {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(log_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"xuefen learner record issuer key v1");
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    SigningKey::from_bytes(&seed)
}

/// Who issues and what the log is.
pub struct Issuer<'a> {
    pub key: &'a SigningKey,
    pub name: &'a str,
    pub log_origin: &'a str,
    pub log_key: VerifyingKey,
}

/// A sealed entry's place in the log and its inclusion proof.
pub struct Sealed {
    pub index: u64,
    pub proof: Vec<Hash>,
}

/// One line of the record.
pub struct Line {
    pub entry: Entry,
    /// The transcript status (`awarded`, `recognised`, …).
    pub status: String,
    pub course_title: Option<String>,
    pub site_name: Option<String>,
    /// `None`: not sealed into the log yet.
    pub sealed: Option<Sealed>,
}

/// What the record is about and when.
pub struct Subject<'a> {
    /// The credential's id (a `urn:uuid:`).
    pub id: &'a str,
    /// The learner's id as this service names it to the learner.
    pub learner: &'a str,
    /// When it is issued (XML Schema dateTime, UTC).
    pub issued_at: &'a str,
    /// Open Badges 3.0 identity objects of the learner ([`identity_objects`]);
    /// empty when the learner did not ask for them.
    pub identifier: &'a [Value],
}

/// The OB3 `identityType` of a document kind: `nationalIdentityNumber` for
/// the resident identity card, an `ext:` type for the other documents.
pub fn identity_type(document_kind: &str) -> String {
    match document_kind {
        "resident_id" => "nationalIdentityNumber".to_owned(),
        other => format!("ext:{other}"),
    }
}

/// The learner's identity objects (Open Badges 3.0 `IdentityObject`) for
/// the credential subject: the name in clear, and the document number as a
/// salted hash, `sha256$` + hex(SHA-256(number ‖ salt)) as OB3 specifies,
/// so that someone shown the document checks the record is its holder's.
/// They live only inside the signed credential: the ledger evidence never
/// contains them.
pub fn identity_objects(name: &str, document_kind: &str, document_number: &str, salt: &str) -> Vec<Value> {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(document_number.as_bytes());
    h.update(salt.as_bytes());
    vec![
        json!({"type": "IdentityObject", "identityType": "name", "hashed": false, "identityHash": name}),
        json!({
            "type": "IdentityObject",
            "identityType": identity_type(document_kind),
            "hashed": true,
            "identityHash": format!("sha256${}", hex::encode(h.finalize())),
            "salt": salt,
        }),
    ]
}

fn entry_id(p: Position) -> String {
    format!("urn:xuefen:entry:{}:{}", p.chain, p.seq)
}

fn site_id(site: &str) -> String {
    format!("urn:xuefen:site:{site}")
}

fn achievement(line: &Line, tree_size: u64) -> Value {
    let e = &line.entry;
    let b = &e.body;
    let mut evidence = json!({
        "format": EVIDENCE_FORMAT,
        "version": b.version(),
        "chain": e.position.chain,
        "seq": e.position.seq,
        "prevHash": hex::encode(e.prev_hash),
        "entryHash": hex::encode(e.hash),
        "entryBytes": hex::encode(b.encode()),
        "sealed": line.sealed.is_some(),
    });
    if let (Some(s), Value::Object(map)) = (&line.sealed, &mut evidence) {
        map.insert("logIndex".into(), json!(s.index));
        map.insert("treeSize".into(), json!(tree_size));
        map.insert(
            "inclusionProof".into(),
            json!(s.proof.iter().map(hex::encode).collect::<Vec<_>>()),
        );
    }
    let mut creator = json!({"id": site_id(b.site.as_str()), "type": ["Profile"]});
    if let (Some(name), Value::Object(map)) = (&line.site_name, &mut creator) {
        map.insert("name".into(), json!(name));
    }
    let mut out = json!({
        "id": entry_id(e.position),
        "type": ["Achievement"],
        "achievementType": "Course",
        "name": line.course_title.clone().unwrap_or_else(|| b.course.to_string()),
        "humanCode": b.course.to_string(),
        "fieldOfStudy": b.category.to_string(),
        "creator": creator,
        "awardedCredits": b.credits.to_string(),
        "completedAt": b.occurred_at.to_rfc3339(),
        "entryStatus": line.status,
        "ledgerEvidence": evidence,
    });
    if let (Some(g), Value::Object(map)) = (&b.recognition_group, &mut out) {
        map.insert("recognitionGroup".into(), json!(g.to_string()));
    }
    out
}

/// The signed record. `checkpoint` is the log's latest signed note and the
/// size it signs (every sealed line's proof is up to it).
pub fn issue(
    issuer: &Issuer<'_>,
    subject: &Subject<'_>,
    lines: &[Line],
    checkpoint: Option<(&str, u64)>,
) -> Result<Value, ProofError> {
    let size = checkpoint.map_or(0, |(_, s)| s);
    let mut record = json!({
        "@context": [VC_V2, OB_V3, XUEFEN_V1],
        "id": subject.id,
        "type": ["VerifiableCredential", "ClrCredential"],
        "name": "学分银行学习记录",
        "issuer": {
            "id": proof::did_key(&issuer.key.verifying_key()),
            "type": ["Profile"],
            "name": issuer.name,
        },
        "validFrom": subject.issued_at,
        "credentialSubject": {
            "id": format!("urn:xuefen:learner:{}", subject.learner),
            "type": ["ClrSubject"],
            "achievement": lines.iter().map(|l| achievement(l, size)).collect::<Vec<_>>(),
        },
        "logVerifierKey": tlog::verifier_key(issuer.log_origin, &issuer.log_key),
    });
    if !subject.identifier.is_empty()
        && let Some(Value::Object(cs)) = record.get_mut("credentialSubject")
    {
        cs.insert("identifier".into(), Value::Array(subject.identifier.to_vec()));
    }
    if let (Some((note, _)), Value::Object(map)) = (checkpoint, &mut record) {
        map.insert("ledgerCheckpoint".into(), json!(note));
    }
    proof::sign_set(&mut record, issuer.key, subject.issued_at)?;
    Ok(record)
}

/// How one line checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// Entry bytes, hash and inclusion proof up to the signed checkpoint hold.
    Verified { log_index: u64 },
    /// Entry bytes and hash hold; the entry is not sealed into the log yet.
    NotSealed,
    /// Something does not hold: what.
    Failed(String),
}

/// One line's result.
#[derive(Debug, Clone)]
pub struct LineCheck {
    pub id: String,
    pub name: String,
    pub credits: String,
    pub outcome: LineOutcome,
}

/// Everything checked in a record.
#[derive(Debug, Clone)]
pub struct Report {
    /// The issuer's DID the proof names.
    pub issuer: Option<String>,
    /// `Ok`: the Data Integrity proof verifies.
    pub proof: Result<(), String>,
    /// `Ok`: the checkpoint's signature verifies under the log key.
    pub checkpoint: Result<Option<LogCheckpoint>, String>,
    pub lines: Vec<LineCheck>,
}

impl Report {
    /// Proof, checkpoint and every line hold (unsealed lines allowed).
    pub fn ok(&self) -> bool {
        self.proof.is_ok()
            && self.checkpoint.is_ok()
            && self.lines.iter().all(|l| !matches!(l.outcome, LineOutcome::Failed(_)))
    }

    /// The first line that does not hold.
    pub fn first_bad(&self) -> Option<&LineCheck> {
        self.lines.iter().find(|l| matches!(l.outcome, LineOutcome::Failed(_)))
    }
}

/// Parses a C2SP verifier key `name+hex id+base64(0x01 ‖ key)`.
pub fn parse_verifier_key(vkey: &str) -> Option<(String, VerifyingKey)> {
    use base64::Engine;
    // A key name has no `+`; the base64 key may.
    let mut parts = vkey.splitn(3, '+');
    let (name, id_hex, key_b64) = (parts.next()?, parts.next()?, parts.next()?);
    let raw = base64::engine::general_purpose::STANDARD.decode(key_b64).ok()?;
    let key: [u8; 32] = raw.strip_prefix(&[0x01])?.try_into().ok()?;
    let key = VerifyingKey::from_bytes(&key).ok()?;
    if format!("{:08x}", tlog::key_id(name, &key)) != id_hex {
        return None;
    }
    Some((name.to_owned(), key))
}

/// Checks a record offline: its proof (under `issuer` when given), the
/// checkpoint's signature (under `log_key` when given, else the key the
/// signed record names) and every line.
pub fn verify(record: &Value, issuer: Option<&VerifyingKey>, log_key: Option<(&str, &VerifyingKey)>) -> Report {
    let proof = proof::verify(record, issuer).map(|_| ()).map_err(|e| e.to_string());
    let issuer_did = proof::proof_method(record).map(|m| m.split('#').next().unwrap_or(m).to_owned());
    let named_key = record
        .get("logVerifierKey")
        .and_then(Value::as_str)
        .and_then(parse_verifier_key);
    let log = match log_key {
        Some((origin, key)) => Some((origin.to_owned(), *key)),
        None => named_key,
    };
    let checkpoint = match (record.get("ledgerCheckpoint"), &log) {
        (None, _) => Ok(None),
        (Some(_), None) => Err("the record names no usable log verifier key (logVerifierKey)".to_owned()),
        (Some(note), Some((origin, key))) => match note.as_str() {
            None => Err("ledgerCheckpoint is not a string".to_owned()),
            Some(note) => LogCheckpoint::open(note, origin, key)
                .map(Some)
                .map_err(|e| e.to_string()),
        },
    };
    let empty = Vec::new();
    let achievements = record
        .pointer("/credentialSubject/achievement")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let lines = achievements
        .iter()
        .map(|a| {
            let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            LineCheck {
                id: s("id"),
                name: s("name"),
                credits: s("awardedCredits"),
                outcome: match check_line(a, &checkpoint) {
                    Ok(o) => o,
                    Err(why) => LineOutcome::Failed(why),
                },
            }
        })
        .collect();
    Report {
        issuer: issuer_did,
        proof,
        checkpoint,
        lines,
    }
}

fn hash32(v: Option<&Value>, what: &str) -> Result<Hash, String> {
    v.and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| format!("{what} is not 32 bytes of hex"))
}

fn check_line(a: &Value, checkpoint: &Result<Option<LogCheckpoint>, String>) -> Result<LineOutcome, String> {
    let ev = a.get("ledgerEvidence").ok_or("no ledgerEvidence")?;
    if ev.get("format").and_then(Value::as_str) != Some(EVIDENCE_FORMAT) {
        return Err(format!("ledgerEvidence.format is not {EVIDENCE_FORMAT}"));
    }
    let u = |k: &str| {
        ev.get(k)
            .and_then(Value::as_u64)
            .ok_or(format!("ledgerEvidence.{k} is not a number"))
    };
    let chain = u32::try_from(u("chain")?).map_err(|_| "ledgerEvidence.chain is too large".to_owned())?;
    let position = Position { chain, seq: u("seq")? };
    let prev = hash32(ev.get("prevHash"), "prevHash")?;
    let claimed = hash32(ev.get("entryHash"), "entryHash")?;
    let bytes = ev
        .get("entryBytes")
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .ok_or("entryBytes is not hex")?;
    if entry_hash(position, &prev, &bytes) != claimed {
        return Err("the entry's bytes do not hash to its entryHash".into());
    }
    let body = EntryBody::decode(&bytes).map_err(|e| format!("entryBytes are not a ledger entry: {e}"))?;
    let s = |k: &str| a.get(k).and_then(Value::as_str);
    let mismatch = |what: &str| Err(format!("{what} differs from the ledger entry"));
    if s("id") != Some(entry_id(position).as_str()) {
        return mismatch("id");
    }
    if s("humanCode") != Some(body.course.as_str()) {
        return mismatch("humanCode (course)");
    }
    if s("fieldOfStudy") != Some(body.category.as_str()) {
        return mismatch("fieldOfStudy (category)");
    }
    if a.pointer("/creator/id").and_then(Value::as_str) != Some(site_id(body.site.as_str()).as_str()) {
        return mismatch("creator (site)");
    }
    if s("awardedCredits") != Some(body.credits.to_string().as_str()) {
        return mismatch("awardedCredits");
    }
    if s("completedAt") != Some(body.occurred_at.to_rfc3339().as_str()) {
        return mismatch("completedAt");
    }
    if s("recognitionGroup") != body.recognition_group.as_ref().map(|g| g.as_str()) {
        return mismatch("recognitionGroup");
    }
    if ev.get("sealed").and_then(Value::as_bool) != Some(true) {
        return Ok(LineOutcome::NotSealed);
    }
    let cp = match checkpoint {
        Ok(Some(cp)) => cp,
        Ok(None) => return Err("sealed, but the record carries no checkpoint".into()),
        Err(_) => return Err("the checkpoint's signature does not verify".into()),
    };
    let index = u("logIndex")?;
    if u("treeSize")? != cp.size {
        return Err(format!(
            "the proof is for tree size {}, the checkpoint signs {}",
            u("treeSize")?,
            cp.size
        ));
    }
    let path = ev
        .get("inclusionProof")
        .and_then(Value::as_array)
        .ok_or("inclusionProof is not a list")?
        .iter()
        .map(|h| hash32(Some(h), "an inclusion proof hash"))
        .collect::<Result<Vec<_>, _>>()?;
    if !verify_inclusion(index, cp.size, &tlog::leaf(&claimed), &path, &cp.root) {
        return Err(format!(
            "the inclusion proof of log index {index} does not lead to the checkpoint's root"
        ));
    }
    Ok(LineOutcome::Verified { log_index: index })
}

//! The `eddsa-rdfc-2022` Data Integrity cryptosuite (W3C VC Data Integrity
//! EdDSA Cryptosuites v1.0, section 3.3) and `did:key` for Ed25519.
//!
//! Signing: the proof options (type, cryptosuite, created,
//! verificationMethod, proofPurpose, with the document's `@context`) and the
//! document without its proof are each canonicalised (RDFC-1.0) and hashed
//! with SHA-256; the Ed25519 signature is over `hash(options) ‖
//! hash(document)`, written as `proofValue` in multibase base58btc.
//! `eddsa-jcs-2022` is the same with JCS (RFC 8785) in place of RDFC-1.0;
//! the record carries both as a proof set.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canon::{CanonError, canonical_nquads};

/// The cryptosuite's name.
pub const CRYPTOSUITE: &str = "eddsa-rdfc-2022";
/// The multicodec prefix of an Ed25519 public key (`0xed`, varint).
const ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// Why a proof does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("the record has no proof")]
    Missing,
    #[error("the proof's field `{0}` is missing or not as eddsa-rdfc-2022 requires")]
    Field(&'static str),
    #[error("the verification method is not an Ed25519 did:key: {0}")]
    Key(String),
    #[error("the proof is made with {found}, not the issuer key {expected}")]
    WrongKey { expected: String, found: String },
    #[error(transparent)]
    Canon(#[from] CanonError),
    #[error("the signature does not verify: the record was changed after it was signed, or not signed by this key")]
    Signature,
    #[error("the {0} signature does not verify: the record was changed after it was signed, or not signed by this key")]
    Suite(&'static str),
    #[error("{0}")]
    Jcs(String),
}

/// The `did:key` of an Ed25519 public key: `did:key:z` + base58btc(0xed01 ‖ key).
pub fn did_key(key: &VerifyingKey) -> String {
    format!("did:key:{}", multikey(key))
}

/// The multibase Multikey form of an Ed25519 public key (`z6Mk…`).
pub fn multikey(key: &VerifyingKey) -> String {
    let mut bytes = ED25519_PUB.to_vec();
    bytes.extend_from_slice(key.as_bytes());
    format!("z{}", bs58::encode(bytes).into_string())
}

/// The verification method id of a did:key: `did:key:z…#z…`.
pub fn verification_method(key: &VerifyingKey) -> String {
    format!("{}#{}", did_key(key), multikey(key))
}

/// The Ed25519 key of a `did:key` (with or without a `#fragment`), or of a
/// Multikey `z6Mk…` value.
pub fn parse_did_key(value: &str) -> Result<VerifyingKey, ProofError> {
    let bare = value.split('#').next().unwrap_or(value);
    let mb = bare.strip_prefix("did:key:").unwrap_or(bare);
    let b58 = mb
        .strip_prefix('z')
        .ok_or_else(|| ProofError::Key(format!("`{value}` is not multibase base58btc")))?;
    let bytes = bs58::decode(b58)
        .into_vec()
        .map_err(|e| ProofError::Key(format!("`{value}`: {e}")))?;
    let raw = bytes
        .strip_prefix(&ED25519_PUB)
        .ok_or_else(|| ProofError::Key(format!("`{value}` is not an Ed25519 key")))?;
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| ProofError::Key(format!("`{value}` is not 32 bytes of key")))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| ProofError::Key(e.to_string()))
}

/// The DID document of the issuer's did:key (Multikey verification method,
/// usable for assertions), as resolvers produce it.
pub fn did_document(key: &VerifyingKey) -> Value {
    let did = did_key(key);
    let vm = verification_method(key);
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{
            "id": vm,
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multikey(key),
        }],
        "authentication": [vm],
        "assertionMethod": [vm],
        "capabilityInvocation": [vm],
        "capabilityDelegation": [vm],
    })
}

/// The JCS-based cryptosuite carried next to [`CRYPTOSUITE`] in the
/// record's proof set (checkable in a browser without an RDF library).
pub const JCS_CRYPTOSUITE: &str = "eddsa-jcs-2022";

fn hash_data(suite: &str, options: &Map<String, Value>, document: &Value) -> Result<Vec<u8>, ProofError> {
    let (o, d) = if suite == JCS_CRYPTOSUITE {
        let jcs = |v: &Value| crate::jcs::canonicalize(v).map_err(|e| ProofError::Jcs(e.to_string()));
        (jcs(&Value::Object(options.clone()))?, jcs(document)?)
    } else {
        (
            canonical_nquads(&Value::Object(options.clone()))?,
            canonical_nquads(document)?,
        )
    };
    let mut out = Sha256::digest(o.as_bytes()).to_vec();
    out.extend_from_slice(&Sha256::digest(d.as_bytes()));
    Ok(out)
}

/// The proof of `suite` (`eddsa-rdfc-2022` or `eddsa-jcs-2022`) over
/// `document` (which must carry no proof), made at `created` (an XML Schema
/// dateTime) with `key`. The document's `@context` is hashed with the proof
/// options, as both suites require, and left out of the proof written.
pub fn make_proof(document: &Value, suite: &'static str, key: &SigningKey, created: &str) -> Result<Value, ProofError> {
    let context = document.get("@context").cloned().ok_or(ProofError::Field("@context"))?;
    if document.get("proof").is_some() {
        return Err(ProofError::Field("proof"));
    }
    let mut options = Map::new();
    options.insert("type".into(), json!("DataIntegrityProof"));
    options.insert("cryptosuite".into(), json!(suite));
    options.insert("created".into(), json!(created));
    options.insert(
        "verificationMethod".into(),
        json!(verification_method(&key.verifying_key())),
    );
    options.insert("proofPurpose".into(), json!("assertionMethod"));
    let mut with_context = options.clone();
    with_context.insert("@context".into(), context);
    let data = hash_data(suite, &with_context, document)?;
    let signature = key.sign(&data);
    options.insert(
        "proofValue".into(),
        json!(format!("z{}", bs58::encode(signature.to_bytes()).into_string())),
    );
    Ok(Value::Object(options))
}

/// Adds an `eddsa-rdfc-2022` proof to `document` (which must not have one),
/// made at `created` (an XML Schema dateTime) with `key`.
pub fn sign(document: &mut Value, key: &SigningKey, created: &str) -> Result<(), ProofError> {
    let proof = make_proof(document, CRYPTOSUITE, key, created)?;
    match document {
        Value::Object(map) => {
            map.insert("proof".into(), proof);
            Ok(())
        }
        _ => Err(ProofError::Field("@context")),
    }
}

/// Adds a proof set to `document` (which must not have a proof): an
/// `eddsa-rdfc-2022` proof and an `eddsa-jcs-2022` proof, each over the
/// document without proofs (W3C Data Integrity, proof sets).
pub fn sign_set(document: &mut Value, key: &SigningKey, created: &str) -> Result<(), ProofError> {
    let rdfc = make_proof(document, CRYPTOSUITE, key, created)?;
    let jcs = make_proof(document, JCS_CRYPTOSUITE, key, created)?;
    match document {
        Value::Object(map) => {
            map.insert("proof".into(), Value::Array(vec![rdfc, jcs]));
            Ok(())
        }
        _ => Err(ProofError::Field("@context")),
    }
}

/// The verification method the document's (first) proof names.
pub fn proof_method(document: &Value) -> Option<&str> {
    let proof = document.get("proof")?;
    let first = match proof {
        Value::Array(items) => items.first()?,
        other => other,
    };
    first.get("verificationMethod").and_then(Value::as_str)
}

/// Verifies the document's proof, or every proof of its proof set (each
/// `eddsa-rdfc-2022` or `eddsa-jcs-2022`; another suite is refused, and a
/// set must hold an `eddsa-rdfc-2022` proof). With `expected`, each proof
/// must be made with that key; without, with the key its verification
/// method names, and all with the same key. Returns the key that verified.
pub fn verify(document: &Value, expected: Option<&VerifyingKey>) -> Result<VerifyingKey, ProofError> {
    let mut unsecured = document.clone();
    let proof = match &mut unsecured {
        Value::Object(map) => map.remove("proof"),
        _ => None,
    }
    .ok_or(ProofError::Missing)?;
    let proofs = match proof {
        Value::Array(items) => items,
        other => vec![other],
    };
    if !proofs
        .iter()
        .any(|p| p.get("cryptosuite").and_then(Value::as_str) == Some(CRYPTOSUITE))
    {
        return Err(ProofError::Field("cryptosuite"));
    }
    let mut verified: Option<VerifyingKey> = None;
    for p in proofs {
        let key = verify_one(&unsecured, p, expected.or(verified.as_ref()))?;
        verified = Some(key);
    }
    verified.ok_or(ProofError::Missing)
}

fn verify_one(unsecured: &Value, proof: Value, expected: Option<&VerifyingKey>) -> Result<VerifyingKey, ProofError> {
    let Value::Object(mut options) = proof else {
        return Err(ProofError::Field("proof"));
    };
    let field = |m: &Map<String, Value>, name: &'static str| -> Result<String, ProofError> {
        m.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ProofError::Field(name))
    };
    if field(&options, "type")? != "DataIntegrityProof" {
        return Err(ProofError::Field("type"));
    }
    let suite = field(&options, "cryptosuite")?;
    let suite: &'static str = match suite.as_str() {
        CRYPTOSUITE => CRYPTOSUITE,
        JCS_CRYPTOSUITE => JCS_CRYPTOSUITE,
        _ => return Err(ProofError::Field("cryptosuite")),
    };
    if field(&options, "proofPurpose")? != "assertionMethod" {
        return Err(ProofError::Field("proofPurpose"));
    }
    let method = field(&options, "verificationMethod")?;
    let key = parse_did_key(&method)?;
    if let Some(want) = expected
        && want != &key
    {
        return Err(ProofError::WrongKey {
            expected: did_key(want),
            found: did_key(&key),
        });
    }
    let value = field(&options, "proofValue")?;
    options.remove("proofValue");
    let sig = value
        .strip_prefix('z')
        .and_then(|b| bs58::decode(b).into_vec().ok())
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .ok_or(ProofError::Field("proofValue"))?;
    let context = unsecured
        .get("@context")
        .cloned()
        .ok_or(ProofError::Field("@context"))?;
    options.insert("@context".into(), context);
    let data = hash_data(suite, &options, unsecured)?;
    key.verify(&data, &Signature::from_bytes(&sig))
        .map_err(|_| ProofError::Suite(suite))?;
    Ok(key)
}

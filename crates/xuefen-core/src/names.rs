//! Personal data at rest: a learner's real name is stored sealed with
//! XChaCha20-Poly1305 under a key the service holds outside the database.
//!
//! A sealed value is the text `xfn1:<key id>:<base64(nonce ‖ ciphertext)>`:
//! the key id travels with every value, so after a key rotation the newest
//! key seals while older ones still open, and `xuefen names reseal` moves
//! every row to the newest. The associated data binds a value to its row
//! (the learner's document hash), so a sealed name copied onto another
//! learner does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;

/// How every sealed value starts (stores recognise sealed values by it).
pub const SEALED_PREFIX: &str = "xfn1:";
const PREFIX: &str = SEALED_PREFIX;
/// Bytes of an XChaCha20 nonce.
pub const NONCE_BYTES: usize = 24;
/// The id of the key derived from the identity key when no name keys are configured.
pub const DERIVED_KEY_ID: &str = "k0";
const DERIVE_LABEL: &[u8] = b"xuefen/name-key/v1";
/// How every value sealed under a learner's own key starts.
pub const LEARNER_SEALED_PREFIX: &str = "xfl1:";
/// What a wrapped learner key is bound to, before the learner id.
const WRAP_LABEL: &[u8] = b"xuefen/learner-key/v1:";

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the value is sealed under key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value is malformed or was altered")]
    Corrupt,
    /// The value is sealed under the learner's own key, and that key is
    /// not given: the service's keys alone never open it, and after an
    /// erasure (which deletes the learner's key) nothing does.
    #[error("the value is sealed under the learner's own key, which is gone or not given")]
    NoLearnerKey,
}

/// The service's name keys: the first seals, every one opens.
#[derive(Clone)]
pub struct NameKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for NameKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("NameKeys").field("ids", &ids).finish_non_exhaustive()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl NameKeys {
    /// One key, id `k0`, derived from the identity key: what a service
    /// configured with no `name_keys` uses.
    pub fn derived(identity_key: &[u8]) -> Self {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(identity_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(DERIVE_LABEL);
        Self {
            keys: vec![(DERIVED_KEY_ID.to_owned(), mac.finalize().into_bytes().into())],
        }
    }

    /// Keys from their ids and bytes, the sealing one first.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("names no key; give at least one `id:hex`".into());
        }
        for (i, (id, _)) in keys.iter().enumerate() {
            if !valid_id(id) {
                return Err(format!("key id `{id}` must be 1 to 32 letters, digits, `_` or `-`"));
            }
            if keys[..i].iter().any(|(other, _)| other == id) {
                return Err(format!("key id `{id}` appears twice"));
            }
        }
        Ok(Self { keys })
    }

    /// Parses `id:hex,id:hex,…` (each key exactly 32 bytes, 64 hex digits),
    /// the sealing key first.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, hex_key) = part
                .split_once(':')
                .ok_or_else(|| format!("`{}…` is not `id:hex`", part.chars().take(8).collect::<String>()))?;
            let bytes = hex::decode(hex_key).map_err(|e| format!("key `{id}` is not hex: {e}"))?;
            let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                format!(
                    "key `{id}` holds {} bytes; exactly 32 (64 hex digits) are needed",
                    b.len()
                )
            })?;
            keys.push((id.to_owned(), key));
        }
        Self::new(keys)
    }

    /// As [`NameKeys::parse`], where a bare `k0` (no `:hex`) names the key
    /// derived from `identity_key` ([`NameKeys::derived`]): what a service
    /// that ran with no `name_keys` sealed under.
    pub fn parse_with_derived(spec: &str, identity_key: &[u8]) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == DERIVED_KEY_ID {
                keys.extend(Self::derived(identity_key).keys);
            } else {
                keys.extend(Self::parse(part)?.keys);
            }
        }
        Self::new(keys)
    }

    /// The ids of the keys, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Whether a key of this id is configured.
    pub fn has(&self, id: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == id)
    }

    /// The same keys with `older` after them: they open, these seal.
    pub fn then(mut self, older: &NameKeys) -> Self {
        for (id, key) in &older.keys {
            if !self.keys.iter().any(|(k, _)| k == id) {
                self.keys.push((id.clone(), *key));
            }
        }
        self
    }

    /// The id of the sealing key.
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(key.into())
    }

    /// Seals `clear` under the current key, bound to `row`, with this
    /// (random, never reused) nonce.
    pub fn seal(&self, row: &[u8], clear: &str, nonce: [u8; NONCE_BYTES]) -> String {
        let (id, key) = &self.keys[0];
        let sealed = Self::cipher(key)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: clear.as_bytes(),
                    aad: row,
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any message under 256 GiB"));
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{id}:{}", B64.encode(bytes))
    }

    /// Opens a stored value bound to `row`. A value not in the sealed form
    /// was written in clear before names were sealed and is returned as it
    /// is (the service seals such rows when it starts). A value sealed under
    /// a learner's own key does not open with the service's keys
    /// ([`OpenError::NoLearnerKey`]; see [`NameKeys::open_name`]).
    pub fn open(&self, row: &[u8], stored: &str) -> Result<String, OpenError> {
        if is_learner_sealed(stored) {
            return Err(OpenError::NoLearnerKey);
        }
        let Some((id, body)) = split(stored) else {
            return Ok(stored.to_owned());
        };
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, key)| key)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let bytes = B64.decode(body).map_err(|_| OpenError::Corrupt)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let clear = Self::cipher(key)
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: row })
            .map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(clear).map_err(|_| OpenError::Corrupt)
    }

    /// A learner's key, wrapped (sealed under the current key) and bound to
    /// the learner's id: what the store keeps, and erasure deletes.
    pub fn wrap(&self, learner: &str, key: &LearnerKey, nonce: [u8; NONCE_BYTES]) -> String {
        self.seal(&wrap_aad(learner), &hex::encode(key.0), nonce)
    }

    /// Opens a learner's wrapped key ([`NameKeys::wrap`]).
    pub fn unwrap(&self, learner: &str, wrapped: &str) -> Result<LearnerKey, OpenError> {
        if split(wrapped).is_none() {
            return Err(OpenError::Corrupt);
        }
        let hex_key = self.open(&wrap_aad(learner), wrapped)?;
        let bytes = hex::decode(hex_key).map_err(|_| OpenError::Corrupt)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| OpenError::Corrupt)?;
        Ok(LearnerKey(key))
    }

    /// Opens a learner's stored field bound to `row`: a value sealed under
    /// the learner's own key with their wrapped key (`None` when there is
    /// none, as after an erasure: [`OpenError::NoLearnerKey`]), an older
    /// value sealed under the service's keys (or in clear) without it.
    pub fn open_name(
        &self,
        learner: &str,
        row: &[u8],
        stored: &str,
        wrapped: Option<&str>,
    ) -> Result<String, OpenError> {
        if !is_learner_sealed(stored) {
            return self.open(row, stored);
        }
        let wrapped = wrapped.ok_or(OpenError::NoLearnerKey)?;
        self.unwrap(learner, wrapped)?.open(row, stored)
    }
}

fn wrap_aad(learner: &str) -> Vec<u8> {
    let mut aad = WRAP_LABEL.to_vec();
    aad.extend_from_slice(learner.as_bytes());
    aad
}

/// A learner's own data key: their personal fields are sealed under it, and
/// it is stored only wrapped by the service's keys ([`NameKeys::wrap`]).
#[derive(Clone, PartialEq, Eq)]
pub struct LearnerKey([u8; 32]);

impl std::fmt::Debug for LearnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LearnerKey(…)")
    }
}

impl LearnerKey {
    /// A key from 32 random bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Seals `clear` under this key, bound to `row`, with this (random,
    /// never reused) nonce: `xfl1:<base64(nonce ‖ ciphertext)>`.
    pub fn seal(&self, row: &[u8], clear: &str, nonce: [u8; NONCE_BYTES]) -> String {
        let sealed = NameKeys::cipher(&self.0)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: clear.as_bytes(),
                    aad: row,
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any message under 256 GiB"));
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{LEARNER_SEALED_PREFIX}{}", B64.encode(bytes))
    }

    /// Opens a value sealed under this key and bound to `row`.
    pub fn open(&self, row: &[u8], stored: &str) -> Result<String, OpenError> {
        let body = stored.strip_prefix(LEARNER_SEALED_PREFIX).ok_or(OpenError::Corrupt)?;
        let bytes = B64.decode(body).map_err(|_| OpenError::Corrupt)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let clear = NameKeys::cipher(&self.0)
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: row })
            .map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(clear).map_err(|_| OpenError::Corrupt)
    }
}

/// Whether a stored value is sealed under a learner's own key.
pub fn is_learner_sealed(stored: &str) -> bool {
    stored.starts_with(LEARNER_SEALED_PREFIX)
}

fn split(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

/// The id of the key a stored value is sealed under; `None` for a value
/// written in clear.
pub fn key_id_of(stored: &str) -> Option<&str> {
    split(stored).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(spec: &str) -> NameKeys {
        NameKeys::parse(spec).expect("keys")
    }

    const K1: &str = "k1:0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "k2:0202020202020202020202020202020202020202020202020202020202020202";

    #[test]
    fn a_sealed_name_names_its_key_and_hides_the_name() {
        let ring = keys(K1);
        let sealed = ring.seal(b"row", "王小明", [7; NONCE_BYTES]);
        assert_eq!(key_id_of(&sealed), Some("k1"));
        assert!(!sealed.contains("王小明"));
        assert_eq!(ring.open(b"row", &sealed), Ok("王小明".to_owned()));
    }

    #[test]
    fn old_keys_open_and_only_the_first_seals() {
        let old = keys(K1);
        let sealed = old.seal(b"row", "李华", [1; NONCE_BYTES]);
        let rotated = keys(K2).then(&old);
        assert_eq!(rotated.current(), "k2");
        assert_eq!(rotated.open(b"row", &sealed), Ok("李华".to_owned()));
        assert_eq!(key_id_of(&rotated.seal(b"row", "李华", [2; NONCE_BYTES])), Some("k2"));
        // Without the old key the value stays shut.
        assert_eq!(keys(K2).open(b"row", &sealed), Err(OpenError::UnknownKey("k1".into())));
    }

    #[test]
    fn another_row_or_an_altered_value_does_not_open() {
        let ring = keys(K1);
        let sealed = ring.seal(b"row a", "张三", [3; NONCE_BYTES]);
        assert_eq!(ring.open(b"row b", &sealed), Err(OpenError::Corrupt));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(ring.open(b"row a", &altered), Err(OpenError::Corrupt));
        assert_eq!(ring.open(b"row a", "xfn1:k1:!!"), Err(OpenError::Corrupt));
    }

    #[test]
    fn a_clear_legacy_value_is_returned_as_it_is() {
        assert_eq!(keys(K1).open(b"row", "王小明"), Ok("王小明".to_owned()));
        assert_eq!(key_id_of("王小明"), None);
    }

    #[test]
    fn bad_key_specs_are_refused_by_name() {
        assert!(NameKeys::parse("").unwrap_err().contains("no key"));
        assert!(NameKeys::parse("k1:00").unwrap_err().contains("exactly 32"));
        assert!(NameKeys::parse("k1:zz").unwrap_err().contains("not hex"));
        assert!(NameKeys::parse(&format!("{K1},{K1}")).unwrap_err().contains("twice"));
        assert!(NameKeys::parse("a:b:c").unwrap_err().contains("not hex"));
        assert!(NameKeys::parse("nokey").unwrap_err().contains("id:hex"));
    }

    #[test]
    fn the_derived_key_is_stable() {
        let a = NameKeys::derived(b"identity");
        let sealed = a.seal(b"row", "赵六", [9; NONCE_BYTES]);
        assert_eq!(
            NameKeys::derived(b"identity").open(b"row", &sealed),
            Ok("赵六".to_owned())
        );
        assert!(NameKeys::derived(b"other").open(b"row", &sealed).is_err());
    }

    #[test]
    fn a_bare_k0_is_the_derived_key() {
        let ring = NameKeys::parse_with_derived(&format!("{K1},k0"), b"identity").expect("ring");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k1", "k0"]);
        let old = NameKeys::derived(b"identity").seal(b"row", "孙七", [4; NONCE_BYTES]);
        assert_eq!(ring.open(b"row", &old), Ok("孙七".to_owned()));
        assert!(ring.has("k0") && !ring.has("k2"));
        assert!(
            NameKeys::parse_with_derived("k9", b"identity")
                .unwrap_err()
                .contains("id:hex")
        );
        assert!(
            NameKeys::parse_with_derived(&format!("k0,{}", K1.replace("k1", "k0")), b"i")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn a_learner_key_seals_and_only_its_wrapped_copy_opens_it() {
        let ring = keys(K1);
        let key = LearnerKey::from_bytes([5; 32]);
        let wrapped = ring.wrap("lrn_a", &key, [1; NONCE_BYTES]);
        assert_eq!(key_id_of(&wrapped), Some("k1"));
        assert!(!wrapped.contains(&hex::encode([5u8; 32])));
        let sealed = key.seal(b"row", "王小明", [2; NONCE_BYTES]);
        assert!(is_learner_sealed(&sealed) && !sealed.contains("王小明"));
        assert_eq!(ring.unwrap("lrn_a", &wrapped), Ok(key.clone()));
        assert_eq!(
            ring.open_name("lrn_a", b"row", &sealed, Some(&wrapped)),
            Ok("王小明".to_owned())
        );
        // The service's keys alone never open it; without the wrapped key
        // (erased) nothing does.
        assert_eq!(ring.open(b"row", &sealed), Err(OpenError::NoLearnerKey));
        assert_eq!(
            ring.open_name("lrn_a", b"row", &sealed, None),
            Err(OpenError::NoLearnerKey)
        );
        // Bound to the learner and to the row.
        assert_eq!(ring.unwrap("lrn_b", &wrapped), Err(OpenError::Corrupt));
        assert_eq!(key.open(b"other", &sealed), Err(OpenError::Corrupt));
        assert_eq!(
            LearnerKey::from_bytes([6; 32]).open(b"row", &sealed),
            Err(OpenError::Corrupt)
        );
        // A wrapped key must be sealed, never clear.
        assert_eq!(ring.unwrap("lrn_a", &hex::encode([5u8; 32])), Err(OpenError::Corrupt));
        // Older values (ring-sealed or clear) open as before.
        let old = ring.seal(b"row", "李华", [3; NONCE_BYTES]);
        assert_eq!(ring.open_name("lrn_a", b"row", &old, None), Ok("李华".to_owned()));
    }

    #[test]
    fn a_rotation_rewraps_the_learner_key_and_the_sealed_value_stays() {
        let old = keys(K1);
        let key = LearnerKey::from_bytes([8; 32]);
        let sealed = key.seal(b"row", "赵六", [4; NONCE_BYTES]);
        let wrapped = old.wrap("lrn_a", &key, [5; NONCE_BYTES]);
        let rotated = keys(K2).then(&old);
        let rewrapped = rotated.wrap(
            "lrn_a",
            &rotated.unwrap("lrn_a", &wrapped).expect("unwrap"),
            [6; NONCE_BYTES],
        );
        assert_eq!(key_id_of(&rewrapped), Some("k2"));
        assert_eq!(
            keys(K2).open_name("lrn_a", b"row", &sealed, Some(&rewrapped)),
            Ok("赵六".to_owned())
        );
        assert_eq!(
            keys(K2).open_name("lrn_a", b"row", &sealed, Some(&wrapped)),
            Err(OpenError::UnknownKey("k1".into()))
        );
    }

    proptest! {
        #[test]
        fn seal_then_open_is_the_identity(name in "\\PC{1,40}", row in proptest::collection::vec(any::<u8>(), 32), nonce in any::<[u8; NONCE_BYTES]>()) {
            let ring = keys(K2).then(&keys(K1));
            let sealed = ring.seal(&row, &name, nonce);
            prop_assert_eq!(ring.open(&row, &sealed), Ok(name.clone()));
        }
    }
}

//! The note of a version-2 entry: free text kept beside the entry, outside
//! its hash (`docs/ledger-format.md`, section 3d), sealed under a key of the
//! learner's own.
//!
//! A site may say in words why it revokes an award, and those words can be
//! about the person ("came in person to explain a private matter"). They
//! never enter the hashed bytes, and they are not stored in clear either:
//! the planner seals them with XChaCha20-Poly1305 under a key derived from
//! the learner's secret (the one their commitments use), bound to the
//! entry's position. Erasure deletes that secret, so every copy of the sealed
//! note that outlives the erasure's `update` (a WAL segment, a page not yet
//! reused, a replica that lags) opens for nobody.
//!
//! Sealing is deterministic (a synthetic nonce: an HMAC of the position and
//! the text under the note key), so the planner stays a pure function of its
//! input: a retried batch plans the same bytes, both backends store the same
//! value, and a repeated revocation is compared with the stored one by
//! opening it. The nonce reveals only whether two notes at one position
//! under one learner's key are the same text, and a position holds one note.
//!
//! The stored value is `xfr1:<base64(nonce ‖ ciphertext)>`. A value without
//! that prefix is a note written before notes were sealed, read as it is.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::FieldError;
use crate::event::Reason;
use crate::ids::Position;
use crate::names::NONCE_BYTES;

/// How every sealed note starts.
pub const NOTE_SEALED_PREFIX: &str = "xfr1:";
/// The HMAC message, under the learner's secret, of their note key.
const KEY_LABEL: &[u8] = b"xuefen/note-key/v1";
/// What a sealed note is bound to, before its position.
const BIND_LABEL: &[u8] = b"xuefen/note/v1\0";
/// The most bytes of a stored note: the most a sealed note of
/// [`crate::limits::TEXT_CHARS_MAX`] four-byte characters takes, with room.
const STORED_BYTES_MAX: usize = 2 * 1024;

/// The note of an entry: sealed, or in clear while planned (and as written
/// before notes were sealed). Its `Debug` never shows the text.
#[derive(Clone, PartialEq, Eq)]
pub enum Note {
    /// Planned and not yet sealed, or written before notes were sealed.
    Clear(Reason),
    /// Sealed under the learner's note key, bound to the entry's position.
    Sealed(String),
}

impl std::fmt::Debug for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Clear(_) => f.write_str("Note::Clear(…)"),
            Note::Sealed(_) => f.write_str("Note::Sealed(…)"),
        }
    }
}

fn note_key(secret: &[u8; 32]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().into()
}

fn bound_to(position: Position) -> Vec<u8> {
    let mut aad = BIND_LABEL.to_vec();
    aad.extend(position.chain.to_be_bytes());
    aad.extend(position.seq.to_be_bytes());
    aad
}

impl Note {
    /// The note `clear` of the entry at `position`, sealed under the key of
    /// the learner whose secret is `secret`.
    pub fn seal(secret: &[u8; 32], position: Position, clear: &str) -> Self {
        let key = note_key(secret);
        let aad = bound_to(position);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"nonce\0");
        mac.update(&aad);
        mac.update(clear.as_bytes());
        let tag = mac.finalize().into_bytes();
        let nonce = &tag[..NONCE_BYTES];
        let sealed = XChaCha20Poly1305::new((&key).into())
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: clear.as_bytes(),
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any message under 256 GiB"));
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Note::Sealed(format!("{NOTE_SEALED_PREFIX}{}", B64.encode(bytes)))
    }

    /// This note as the entry at `position` keeps it: a clear one sealed
    /// under `secret`, a sealed one as it is.
    pub fn sealed_at(self, secret: &[u8; 32], position: Position) -> Self {
        match self {
            Note::Clear(text) => Note::seal(secret, position, text.as_str()),
            sealed => sealed,
        }
    }

    /// A note as a store holds it: sealed when it has the prefix, otherwise
    /// text written before notes were sealed. `field` names the column.
    pub fn from_stored(stored: String, field: &'static str) -> Result<Self, FieldError> {
        if stored.starts_with(NOTE_SEALED_PREFIX) {
            if stored.len() > STORED_BYTES_MAX {
                return Err(FieldError::new(
                    field,
                    "the sealed note is longer than any note seals to",
                ));
            }
            return Ok(Note::Sealed(stored));
        }
        Reason::parse(stored, field).map(Note::Clear)
    }

    /// The text a store writes for this note.
    pub fn stored(&self) -> &str {
        match self {
            Note::Clear(text) => text.as_str(),
            Note::Sealed(sealed) => sealed,
        }
    }

    /// The note's words: a clear note's as they are; a sealed note's opened
    /// under `secret` (the learner's, while they are not erased), bound to
    /// `position`. `None` when it does not open.
    pub fn open(&self, secret: Option<&[u8; 32]>, position: Position) -> Option<String> {
        let sealed = match self {
            Note::Clear(text) => return Some(text.as_str().to_owned()),
            Note::Sealed(sealed) => sealed,
        };
        let bytes = B64.decode(sealed.strip_prefix(NOTE_SEALED_PREFIX)?).ok()?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let key = note_key(secret?);
        let clear = XChaCha20Poly1305::new((&key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &bound_to(position),
                },
            )
            .ok()?;
        String::from_utf8(clear).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Position = Position { chain: 7, seq: 42 };

    #[test]
    fn a_sealed_note_opens_under_its_learner_and_position_only() {
        let note = Note::seal(&[1; 32], AT, "学员本人来电说明私事");
        assert!(note.stored().starts_with(NOTE_SEALED_PREFIX));
        assert!(!note.stored().contains("学员"));
        assert_eq!(note.open(Some(&[1; 32]), AT).as_deref(), Some("学员本人来电说明私事"));
        assert_eq!(note.open(Some(&[2; 32]), AT), None, "another learner's secret");
        assert_eq!(
            note.open(Some(&[1; 32]), Position { chain: 7, seq: 43 }),
            None,
            "moved to another entry"
        );
        assert_eq!(note.open(None, AT), None, "the secret erased");
    }

    #[test]
    fn sealing_is_deterministic_and_depends_on_every_input() {
        let a = Note::seal(&[1; 32], AT, "entered in error");
        assert_eq!(a, Note::seal(&[1; 32], AT, "entered in error"));
        assert_ne!(a, Note::seal(&[1; 32], AT, "entered in error."));
        assert_ne!(a, Note::seal(&[3; 32], AT, "entered in error"));
        assert_ne!(
            a,
            Note::seal(&[1; 32], Position { chain: 8, seq: 42 }, "entered in error")
        );
    }

    #[test]
    fn stored_notes_read_back_and_altered_ones_do_not_open() {
        let sealed = Note::seal(&[1; 32], AT, "x");
        let back = Note::from_stored(sealed.stored().to_owned(), "reason_note").expect("sealed");
        assert_eq!(back, sealed);
        let legacy = Note::from_stored("written before sealing".into(), "reason_note").expect("clear");
        assert_eq!(legacy.open(None, AT).as_deref(), Some("written before sealing"));
        let mut altered = sealed.stored().to_owned();
        let last = altered.pop().map(|c| if c == 'A' { 'B' } else { 'A' }).unwrap_or('A');
        altered.push(last);
        let altered = Note::from_stored(altered, "reason_note").expect("still shaped like one");
        assert_eq!(altered.open(Some(&[1; 32]), AT), None);
        assert!(
            Note::from_stored(
                format!("{NOTE_SEALED_PREFIX}{}", "A".repeat(STORED_BYTES_MAX)),
                "reason_note"
            )
            .is_err()
        );
        assert_eq!(
            format!("{:?}", Note::Clear(Reason::parse("private", "r").expect("ok"))),
            "Note::Clear(…)"
        );
    }

    #[test]
    fn the_longest_note_fits_the_stored_bound() {
        let longest = "𠀀".repeat(crate::limits::TEXT_CHARS_MAX);
        let sealed = Note::seal(&[1; 32], AT, &longest);
        assert!(sealed.stored().len() <= STORED_BYTES_MAX, "{}", sealed.stored().len());
    }
}

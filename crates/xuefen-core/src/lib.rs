//! The pure domain of the Xuefen credit ledger.
//!
//! Everything here is deterministic and free of I/O: values are parsed into
//! newtypes at the edge ([`ids`], [`amount`]), events are planned into ledger
//! entries by [`plan`] (batch in, decisions out), entries are encoded into
//! canonical bytes and chained with SHA-256 by [`entry`], and any holder of
//! the ledger can check it with [`verify`]. Storage backends and the HTTP
//! layer call into this crate; it calls into nothing.
#![forbid(unsafe_code)]

pub mod amount;
pub mod bank;
pub mod entry;
pub mod error;
pub mod event;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod merkle;
pub mod names;
pub mod note;
pub mod plan;
pub mod pseudonym;
pub mod rule;
pub mod site_log;
pub mod tlog;
pub mod transcript;
pub mod verify;
pub mod witness;
pub mod xapi;

pub use error::FieldError;

//! The learner's record as a W3C Verifiable Credential 2.0 in the 1EdTech
//! CLR 2.0 / Open Badges 3.0 shape, secured with a Data Integrity proof
//! (`eddsa-rdfc-2022`), every achievement carrying its ledger evidence (the
//! entry's canonical bytes, its log index and an inclusion proof up to the
//! C2SP signed checkpoint the record carries). Issuing and offline
//! verification; `docs/record-format.md` describes the record.

pub mod canon;
pub mod jcs;
pub mod proof;
pub mod record;

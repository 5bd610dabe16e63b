//! What an entry records ([`EntryKind`]), with its one-byte code in the
//! canonical bytes and its name on the wire.

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A completion was credited.
    Awarded,
    /// A completion below the course's pass mark: recorded, zero credits.
    NotPassed,
    /// The reversal of an earlier entry, with its credits negated.
    Reversal,
    /// A passing completion of a course whose recognition group the learner
    /// has already been credited for: zero credits, `refers_to` the paid
    /// entry, `withheld` what the rule would have given.
    Recognised,
    /// A passing completion that hit the learner's annual cap for its
    /// category: `credits` is what fitted under the cap, `withheld` the rest.
    Capped,
    /// A recognised completion that became the paid one of its group after
    /// the paid entry was reversed: `refers_to` the recognised entry.
    Promoted,
    /// The credit bank accepted the deposit at `refers_to` (see `bank`).
    BankAccepted,
    /// The credit bank rejected the deposit at `refers_to`; `reason` says why.
    BankRejected,
    /// A learner's personal data was erased (version 2 only): `reason` is
    /// the legal reason code; nothing names the learner or their entries.
    Erased,
}

impl EntryKind {
    pub fn code(self) -> u8 {
        match self {
            EntryKind::Awarded => 1,
            EntryKind::NotPassed => 2,
            EntryKind::Reversal => 3,
            EntryKind::Recognised => 4,
            EntryKind::Capped => 5,
            EntryKind::Promoted => 6,
            EntryKind::BankAccepted => 10,
            EntryKind::BankRejected => 11,
            EntryKind::Erased => 12,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(EntryKind::Awarded),
            2 => Some(EntryKind::NotPassed),
            3 => Some(EntryKind::Reversal),
            4 => Some(EntryKind::Recognised),
            5 => Some(EntryKind::Capped),
            6 => Some(EntryKind::Promoted),
            10 => Some(EntryKind::BankAccepted),
            11 => Some(EntryKind::BankRejected),
            12 => Some(EntryKind::Erased),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Awarded => "awarded",
            EntryKind::NotPassed => "not_passed",
            EntryKind::Reversal => "reversal",
            EntryKind::Recognised => "recognised",
            EntryKind::Capped => "capped",
            EntryKind::Promoted => "promoted",
            EntryKind::BankAccepted => "bank_accepted",
            EntryKind::BankRejected => "bank_rejected",
            EntryKind::Erased => "erased",
        }
    }

    pub const ALL: [EntryKind; 9] = [
        EntryKind::Awarded,
        EntryKind::NotPassed,
        EntryKind::Reversal,
        EntryKind::Recognised,
        EntryKind::Capped,
        EntryKind::Promoted,
        EntryKind::BankAccepted,
        EntryKind::BankRejected,
        EntryKind::Erased,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Whether an entry of this kind pays its completion's credits (and so
    /// is the paid entry of its recognition group while not reversed).
    pub fn pays(self) -> bool {
        matches!(self, EntryKind::Awarded | EntryKind::Capped | EntryKind::Promoted)
    }

    /// Whether an entry of this kind records a completion sent by a site.
    pub fn is_completion(self) -> bool {
        matches!(
            self,
            EntryKind::Awarded | EntryKind::NotPassed | EntryKind::Recognised | EntryKind::Capped
        )
    }

    /// Whether an entry of this kind owns its `(site, event_id)`, the
    /// idempotency key. A promotion repeats the key of the completion it
    /// promotes, which stays that key's entry.
    pub fn owns_key(self) -> bool {
        !matches!(self, EntryKind::Promoted)
    }
}

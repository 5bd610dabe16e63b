//! Plain row shapes shared by the backends, and their checked conversion
//! to and from domain values. A backend maps its driver's rows into these
//! records; everything after that is common.

use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::{Entry, EntryBody, EntryKind};
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::SiteStatus;
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, Position, SiteId};
use xuefen_core::note::Note;
use xuefen_core::rule::CreditRule;
use xuefen_core::site_log::{ALLIANCE_CHAIN, SiteChange, SiteChangeEntry, check_actor};

use crate::Result;
use crate::row::{Columns, ReadRow};
use crate::{Course, StoreError};

/// One row of `ledger_entries`, column for column.
#[derive(Debug, Clone, Default)]
pub struct EntryRecord {
    pub chain_id: i64,
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub kind: i64,
    pub site_id: String,
    pub event_id: String,
    pub learner_id: String,
    pub course_code: String,
    pub category: String,
    pub credits_cents: i64,
    pub occurred_at_ms: i64,
    pub recorded_at_ms: i64,
    pub score_cents: Option<i64>,
    pub hours_cents: Option<i64>,
    pub rule_version: i64,
    pub refers_chain: Option<i64>,
    pub refers_seq: Option<i64>,
    pub target_event: Option<String>,
    pub reason: String,
    pub recognition_group: Option<String>,
    pub withheld_cents: Option<i64>,
    /// Version 2: the learner commitment (null: a version-1 entry).
    pub learner_commitment: Option<Vec<u8>>,
    /// Version 2: the free text with the reason code, outside the hash.
    pub reason_note: Option<String>,
}

impl EntryRecord {
    /// An entry's row, its columns by name.
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("ledger_entries", row);
        Ok(Self {
            chain_id: c.get("chain_id")?,
            seq: c.get("seq")?,
            prev_hash: c.get("prev_hash")?,
            hash: c.get("hash")?,
            kind: c.get("kind")?,
            site_id: c.get("site_id")?,
            event_id: c.get("event_id")?,
            learner_id: c.get("learner_id")?,
            course_code: c.get("course_code")?,
            category: c.get("category")?,
            credits_cents: c.get("credits_cents")?,
            occurred_at_ms: c.get("occurred_at_ms")?,
            recorded_at_ms: c.get("recorded_at_ms")?,
            score_cents: c.get("score_cents")?,
            hours_cents: c.get("hours_cents")?,
            rule_version: c.get("rule_version")?,
            refers_chain: c.get("refers_chain")?,
            refers_seq: c.get("refers_seq")?,
            target_event: c.get("target_event")?,
            reason: c.get("reason")?,
            recognition_group: c.get("recognition_group")?,
            withheld_cents: c.get("withheld_cents")?,
            learner_commitment: c.get("learner_commitment")?,
            reason_note: c.get("reason_note")?,
        })
    }
}

impl From<&Entry> for EntryRecord {
    fn from(e: &Entry) -> Self {
        let b = &e.body;
        Self {
            chain_id: i64::from(e.position.chain),
            seq: e.position.seq as i64,
            prev_hash: e.prev_hash.to_vec(),
            hash: e.hash.to_vec(),
            kind: i64::from(b.kind.code()),
            site_id: b.site.as_str().to_owned(),
            event_id: b.event_id.as_str().to_owned(),
            learner_id: b.learner.as_str().to_owned(),
            course_code: b.course.as_str().to_owned(),
            category: b.category.as_str().to_owned(),
            credits_cents: b.credits.cents(),
            occurred_at_ms: b.occurred_at.0,
            recorded_at_ms: b.recorded_at.0,
            score_cents: b.score.map(Score::cents),
            hours_cents: b.hours.map(Hours::cents),
            rule_version: i64::from(b.rule_version),
            refers_chain: b.refers_to.map(|p| i64::from(p.chain)),
            refers_seq: b.refers_to.map(|p| p.seq as i64),
            target_event: b.target_event.as_ref().map(|t| t.as_str().to_owned()),
            reason: b.reason.as_str().to_owned(),
            recognition_group: b.recognition_group.as_ref().map(|g| g.as_str().to_owned()),
            withheld_cents: b.withheld.map(Credits::cents),
            learner_commitment: b.commitment.map(|c| c.to_vec()),
            reason_note: b.note.as_ref().map(|n| n.stored().to_owned()),
        }
    }
}

impl TryFrom<EntryRecord> for Entry {
    type Error = StoreError;

    fn try_from(r: EntryRecord) -> Result<Self, StoreError> {
        // The position is written out only for an error: this runs once per
        // entry read, `xuefen verify` over the whole ledger included.
        let (chain_id, seq) = (r.chain_id, r.seq);
        let corrupt = move |detail: String| StoreError::Corrupt {
            at: format!("chain {chain_id} position {seq}"),
            detail,
        };
        let field = |e: xuefen_core::FieldError| corrupt(e.to_string());
        let hash32 =
            |v: Vec<u8>, name: &str| <[u8; 32]>::try_from(v).map_err(|_| corrupt(format!("{name} is not 32 bytes")));
        let position = Position {
            chain: u32::try_from(r.chain_id).map_err(|_| corrupt("chain id out of range".into()))?,
            seq: u64::try_from(r.seq).map_err(|_| corrupt("seq out of range".into()))?,
        };
        let refers_to = match (r.refers_chain, r.refers_seq) {
            (None, None) => None,
            (Some(chain), Some(seq)) => Some(Position {
                chain: u32::try_from(chain).map_err(|_| corrupt("refers_chain out of range".into()))?,
                seq: u64::try_from(seq).map_err(|_| corrupt("refers_seq out of range".into()))?,
            }),
            _ => {
                return Err(corrupt(
                    "refers_chain and refers_seq must both be set or both be null".into(),
                ));
            }
        };
        let kind = u8::try_from(r.kind).ok().and_then(EntryKind::from_code);
        let body = EntryBody {
            kind: kind.ok_or_else(|| corrupt(format!("unknown kind {}", r.kind)))?,
            site: SiteId::parse(r.site_id).map_err(field)?,
            event_id: EventId::parse(r.event_id).map_err(field)?,
            learner: LearnerId::parse(r.learner_id).map_err(field)?,
            commitment: r
                .learner_commitment
                .map(|c| hash32(c, "learner_commitment"))
                .transpose()?,
            course: CourseCode::parse(r.course_code).map_err(field)?,
            category: Category::parse(r.category).map_err(field)?,
            credits: Credits::from_cents(r.credits_cents),
            occurred_at: Millis(r.occurred_at_ms),
            recorded_at: Millis(r.recorded_at_ms),
            score: r.score_cents.map(Score::from_cents),
            hours: r.hours_cents.map(Hours::from_cents),
            rule_version: u32::try_from(r.rule_version).map_err(|_| corrupt("rule_version out of range".into()))?,
            refers_to,
            target_event: r.target_event.map(EventId::parse).transpose().map_err(field)?,
            reason: Reason::parse(r.reason, "reason").map_err(field)?,
            note: r
                .reason_note
                .map(|n| Note::from_stored(n, "reason_note"))
                .transpose()
                .map_err(field)?,
            recognition_group: r.recognition_group.map(GroupId::parse).transpose().map_err(field)?,
            withheld: r.withheld_cents.map(Credits::from_cents),
        };
        Ok(Entry {
            position,
            prev_hash: hash32(r.prev_hash, "prev_hash")?,
            hash: hash32(r.hash, "hash")?,
            body,
        })
    }
}

/// Column-wise arrays of entries, for one multi-row insert (`UNNEST` on
/// PostgreSQL, bound parameters on SQLite).
#[derive(Debug, Default)]
pub struct EntryColumns {
    pub chain_id: Vec<i64>,
    pub seq: Vec<i64>,
    pub prev_hash: Vec<Vec<u8>>,
    pub hash: Vec<Vec<u8>>,
    pub kind: Vec<i64>,
    pub site_id: Vec<String>,
    pub event_id: Vec<String>,
    pub learner_id: Vec<String>,
    pub course_code: Vec<String>,
    pub category: Vec<String>,
    pub credits_cents: Vec<i64>,
    pub occurred_at_ms: Vec<i64>,
    pub recorded_at_ms: Vec<i64>,
    pub score_cents: Vec<Option<i64>>,
    pub hours_cents: Vec<Option<i64>>,
    pub rule_version: Vec<i64>,
    pub refers_chain: Vec<Option<i64>>,
    pub refers_seq: Vec<Option<i64>>,
    pub target_event: Vec<Option<String>>,
    pub reason: Vec<String>,
    pub recognition_group: Vec<Option<String>>,
    pub withheld_cents: Vec<Option<i64>>,
    pub learner_commitment: Vec<Option<Vec<u8>>>,
    pub reason_note: Vec<Option<String>>,
}

impl EntryColumns {
    pub fn new(entries: &[Entry]) -> Self {
        let mut c = Self::default();
        for e in entries {
            let r = EntryRecord::from(e);
            c.chain_id.push(r.chain_id);
            c.seq.push(r.seq);
            c.prev_hash.push(r.prev_hash);
            c.hash.push(r.hash);
            c.kind.push(r.kind);
            c.site_id.push(r.site_id);
            c.event_id.push(r.event_id);
            c.learner_id.push(r.learner_id);
            c.course_code.push(r.course_code);
            c.category.push(r.category);
            c.credits_cents.push(r.credits_cents);
            c.occurred_at_ms.push(r.occurred_at_ms);
            c.recorded_at_ms.push(r.recorded_at_ms);
            c.score_cents.push(r.score_cents);
            c.hours_cents.push(r.hours_cents);
            c.rule_version.push(r.rule_version);
            c.refers_chain.push(r.refers_chain);
            c.refers_seq.push(r.refers_seq);
            c.target_event.push(r.target_event);
            c.reason.push(r.reason);
            c.recognition_group.push(r.recognition_group);
            c.withheld_cents.push(r.withheld_cents);
            c.learner_commitment.push(r.learner_commitment);
            c.reason_note.push(r.reason_note);
        }
        c
    }
}

/// One row of `courses`.
#[derive(Debug, Clone, Default)]
pub struct CourseRecord {
    pub site_id: String,
    pub code: String,
    pub title: String,
    pub category: String,
    pub rule_kind: String,
    pub credits_cents: Option<i64>,
    pub hours_per_credit_cents: Option<i64>,
    pub cap_cents: Option<i64>,
    pub pass_mark_cents: Option<i64>,
    pub rule_version: i64,
    /// From `recognition_members`, not a column of `courses`.
    pub recognition_group: Option<String>,
    pub offered_from_ms: Option<i64>,
    /// `once` or `per_year` ([`xuefen_core::rule::Repeat`]).
    pub credit_repeat: String,
}

impl CourseRecord {
    /// A course's row with its recognition group (`group_id`), by name.
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("courses", row);
        Ok(Self {
            site_id: c.get("site_id")?,
            code: c.get("code")?,
            title: c.get("title")?,
            category: c.get("category")?,
            rule_kind: c.get("rule_kind")?,
            credits_cents: c.get("credits_cents")?,
            hours_per_credit_cents: c.get("hours_per_credit_cents")?,
            cap_cents: c.get("cap_cents")?,
            pass_mark_cents: c.get("pass_mark_cents")?,
            rule_version: c.get("rule_version")?,
            recognition_group: c.get("group_id")?,
            offered_from_ms: c.get("offered_from_ms")?,
            credit_repeat: c.get("credit_repeat")?,
        })
    }
}

impl From<&Course> for CourseRecord {
    fn from(c: &Course) -> Self {
        let (rule_kind, credits, hpc, cap) = match c.rule {
            CreditRule::Fixed { credits } => ("fixed", Some(credits.cents()), None, None),
            CreditRule::PerHours { hours_per_credit, cap } => {
                ("per_hours", None, Some(hours_per_credit.cents()), Some(cap.cents()))
            }
        };
        Self {
            site_id: c.site.as_str().to_owned(),
            code: c.code.as_str().to_owned(),
            title: c.title.clone(),
            category: c.category.as_str().to_owned(),
            rule_kind: rule_kind.to_owned(),
            credits_cents: credits,
            hours_per_credit_cents: hpc,
            cap_cents: cap,
            pass_mark_cents: c.pass_mark.map(Score::cents),
            rule_version: i64::from(c.rule_version),
            recognition_group: c.recognition_group.as_ref().map(|g| g.as_str().to_owned()),
            offered_from_ms: c.offered_from.map(|m| m.0),
            credit_repeat: c.repeat.as_str().to_owned(),
        }
    }
}

impl TryFrom<CourseRecord> for Course {
    type Error = StoreError;

    fn try_from(r: CourseRecord) -> Result<Self, StoreError> {
        let at = format!("course {}/{}", r.site_id, r.code);
        let corrupt = |detail: String| StoreError::Corrupt { at: at.clone(), detail };
        let rule = match (
            r.rule_kind.as_str(),
            r.credits_cents,
            r.hours_per_credit_cents,
            r.cap_cents,
        ) {
            ("fixed", Some(c), _, _) => CreditRule::Fixed {
                credits: Credits::from_cents(c),
            },
            ("per_hours", _, Some(h), Some(cap)) => CreditRule::PerHours {
                hours_per_credit: Hours::from_cents(h),
                cap: Credits::from_cents(cap),
            },
            (kind, ..) => return Err(corrupt(format!("rule `{kind}` is incomplete"))),
        };
        Ok(Course {
            site: SiteId::parse(r.site_id).map_err(|e| corrupt(e.to_string()))?,
            code: CourseCode::parse(r.code).map_err(|e| corrupt(e.to_string()))?,
            title: r.title,
            category: Category::parse(r.category).map_err(|e| corrupt(e.to_string()))?,
            rule,
            pass_mark: r.pass_mark_cents.map(Score::from_cents),
            rule_version: u32::try_from(r.rule_version).map_err(|_| corrupt("rule_version out of range".into()))?,
            recognition_group: r
                .recognition_group
                .map(GroupId::parse)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            offered_from: r.offered_from_ms.map(Millis),
            repeat: xuefen_core::rule::Repeat::parse(&r.credit_repeat, "credit_repeat")
                .map_err(|e| corrupt(e.to_string()))?,
        })
    }
}

impl Course {
    /// The terms the planner applies.
    pub fn terms(&self) -> xuefen_core::rule::CourseTerms {
        xuefen_core::rule::CourseTerms {
            category: self.category.clone(),
            rule: self.rule,
            pass_mark: self.pass_mark,
            rule_version: self.rule_version,
            recognition_group: self.recognition_group.clone(),
            offered_from: self.offered_from,
            repeat: self.repeat,
        }
    }

    /// Whether `other` credits differently (which makes a new rule version).
    pub fn terms_differ(&self, other: &Course) -> bool {
        self.rule != other.rule
            || self.pass_mark != other.pass_mark
            || self.category != other.category
            || self.offered_from != other.offered_from
            || self.repeat != other.repeat
    }
}

/// One row of `site_changes`, column for column.
#[derive(Debug, Clone, Default)]
pub struct SiteChangeRecord {
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub site_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: String,
    pub at_ms: i64,
    pub agreement_starts_at_ms: i64,
    pub agreement_ends_at_ms: i64,
}

/// A sealed site change from its row of `site_changes`.
pub fn read_site_change<R: ReadRow + ?Sized>(row: &R) -> Result<SiteChangeEntry> {
    SiteChangeEntry::try_from(SiteChangeRecord::read(row)?)
}

impl SiteChangeRecord {
    /// A row of `site_changes`, by name.
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("site_changes", row);
        Ok(Self {
            seq: c.get("seq")?,
            prev_hash: c.get("prev_hash")?,
            hash: c.get("hash")?,
            site_id: c.get("site_id")?,
            from_status: c.get("from_status")?,
            to_status: c.get("to_status")?,
            actor: c.get("actor")?,
            reason: c.get("reason")?,
            at_ms: c.get("at_ms")?,
            agreement_starts_at_ms: c.get("agreement_starts_at_ms")?,
            agreement_ends_at_ms: c.get("agreement_ends_at_ms")?,
        })
    }
}

impl From<&SiteChangeEntry> for SiteChangeRecord {
    fn from(e: &SiteChangeEntry) -> Self {
        let c = &e.change;
        Self {
            seq: e.position.seq as i64,
            prev_hash: e.prev_hash.to_vec(),
            hash: e.hash.to_vec(),
            site_id: c.site.as_str().to_owned(),
            from_status: c.from.map(|s| s.as_str().to_owned()),
            to_status: c.to.as_str().to_owned(),
            actor: c.actor.clone(),
            reason: c.reason.as_str().to_owned(),
            at_ms: c.at.0,
            agreement_starts_at_ms: c.agreement_starts_at.0,
            agreement_ends_at_ms: c.agreement_ends_at.0,
        }
    }
}

impl TryFrom<SiteChangeRecord> for SiteChangeEntry {
    type Error = StoreError;

    fn try_from(r: SiteChangeRecord) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            at: format!("alliance chain position {}", r.seq),
            detail,
        };
        let field = |e: xuefen_core::FieldError| corrupt(e.to_string());
        let hash32 =
            |v: &[u8], name: &str| <[u8; 32]>::try_from(v).map_err(|_| corrupt(format!("{name} is not 32 bytes")));
        check_actor(&r.actor).map_err(field)?;
        Ok(SiteChangeEntry {
            position: Position {
                chain: ALLIANCE_CHAIN,
                seq: u64::try_from(r.seq).map_err(|_| corrupt("seq out of range".into()))?,
            },
            prev_hash: hash32(&r.prev_hash, "prev_hash")?,
            hash: hash32(&r.hash, "hash")?,
            change: SiteChange {
                site: SiteId::parse(r.site_id.clone()).map_err(field)?,
                from: r
                    .from_status
                    .as_deref()
                    .map(SiteStatus::parse)
                    .transpose()
                    .map_err(field)?,
                to: SiteStatus::parse(&r.to_status).map_err(field)?,
                actor: r.actor.clone(),
                reason: Reason::parse(r.reason.clone(), "reason").map_err(field)?,
                at: Millis(r.at_ms),
                agreement_starts_at: Millis(r.agreement_starts_at_ms),
                agreement_ends_at: Millis(r.agreement_ends_at_ms),
            },
        })
    }
}

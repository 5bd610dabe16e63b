//! Recognition (学分互认): groups of equivalent courses and annual category
//! caps, and the rows both backends read and write them as.

use std::collections::BTreeMap;

use async_trait::async_trait;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, CourseCode, GroupId, LearnerId, SiteId};

use crate::row::{Columns, ReadRow};
use crate::{ConflictKind, Result, StoreError, Written};

/// A recognition group (学分互认): equivalent courses of several sites,
/// credited once per learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub title: String,
    /// The member courses, sorted.
    pub courses: Vec<(SiteId, CourseCode)>,
}

/// The recognition port: groups and caps.
#[async_trait]
pub trait RecognitionStore: Send + Sync {
    /// Creates or replaces a recognition group and its member courses, and
    /// in the same transaction writes what the declaration plans
    /// ([`xuefen_core::plan::plan_declaration`]): a reversal of every
    /// earlier double payment among the group's courses. A course already
    /// in another group is a `Conflict` naming it. Entries already written
    /// are never changed. Returns the reversals written.
    async fn put_group(&self, group: &Group, now: Millis) -> Result<(Written, Vec<Entry>)>;
    async fn group(&self, id: &GroupId) -> Result<Option<Group>>;
    /// Sets (or with `None` removes) the annual credit cap of a category.
    async fn set_cap(&self, category: &Category, annual: Option<Credits>) -> Result<()>;
    /// Every category cap, by category.
    async fn caps(&self) -> Result<Vec<(Category, Credits)>>;
}

/// The columns of a group, as both backends write it.
pub const GROUP_COLUMNS: &str = "id, title";

/// The columns of a group's member course, in [`MemberRecord`] order.
pub const MEMBER_COLUMNS: &str = "site_id, course_code, group_id";

/// The columns of a category's cap, in [`CapRecord`] order.
pub const CAP_COLUMNS: &str = "category, annual_cap_cents";

/// A `recognition_members` row as both backends read it, by column name.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub site_id: String,
    pub course_code: String,
    pub group_id: String,
}

impl MemberRecord {
    /// A row of `recognition_members`, by name.
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("recognition_members", row);
        Ok(Self {
            site_id: c.get("site_id")?,
            course_code: c.get("course_code")?,
            group_id: c.get("group_id")?,
        })
    }
}

impl MemberRecord {
    /// The conflict of a group that claims this course, which is a member of
    /// another group.
    pub fn in_another_group(&self) -> StoreError {
        StoreError::conflict(
            ConflictKind::InAnotherGroup,
            format!(
                "course {}/{} is already in group {}",
                self.site_id, self.course_code, self.group_id
            ),
        )
    }

    /// The member course; ids the service could not have written are
    /// corrupt data.
    pub fn course(self) -> Result<(SiteId, CourseCode)> {
        let Self {
            site_id,
            course_code,
            group_id,
        } = self;
        let corrupt = |e: xuefen_core::FieldError| StoreError::Corrupt {
            at: format!("group {group_id}"),
            detail: e.to_string(),
        };
        Ok((
            SiteId::parse(site_id).map_err(corrupt)?,
            CourseCode::parse(course_code).map_err(corrupt)?,
        ))
    }
}

/// A `category_caps` row as both backends read it, by column name.
#[derive(Debug, Clone)]
pub struct CapRecord {
    pub category: String,
    pub annual_cap_cents: i64,
}

impl TryFrom<CapRecord> for (Category, Credits) {
    type Error = StoreError;

    fn try_from(r: CapRecord) -> Result<Self> {
        let category = Category::parse(r.category).map_err(|e| StoreError::Corrupt {
            at: "category_caps".into(),
            detail: e.to_string(),
        })?;
        Ok((category, Credits::from_cents(r.annual_cap_cents)))
    }
}

/// The histories a group's declaration is planned with
/// ([`xuefen_core::plan::plan_declaration`]): the entries of its member
/// courses, read in chain and sequence order, per learner and chain, keeping
/// only the chains `keep` says (those the backend holds locked).
pub fn declaration_histories(
    entries: impl IntoIterator<Item = Entry>,
    keep: impl Fn(u32) -> bool,
) -> Vec<(LearnerId, u32, Vec<Entry>)> {
    let mut histories: BTreeMap<(u32, LearnerId), Vec<Entry>> = BTreeMap::new();
    for e in entries {
        if keep(e.position.chain) {
            histories
                .entry((e.position.chain, e.body.learner.clone()))
                .or_default()
                .push(e);
        }
    }
    histories.into_iter().map(|((chain, l), h)| (l, chain, h)).collect()
}

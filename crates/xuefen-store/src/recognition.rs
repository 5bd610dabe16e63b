//! Recognition (学分互认): groups of equivalent courses and annual category caps.

use async_trait::async_trait;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::Category;

use crate::{Result, Written};

use xuefen_core::ids::{CourseCode, GroupId, SiteId};

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

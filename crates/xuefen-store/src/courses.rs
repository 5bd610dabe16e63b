//! Courses: the credit terms a site offers.

use async_trait::async_trait;

use crate::{Result, Written};

use xuefen_core::amount::Score;
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, CourseCode, GroupId, SiteId};
use xuefen_core::rule::CreditRule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub site: SiteId,
    pub code: CourseCode,
    pub title: String,
    pub category: Category,
    pub rule: CreditRule,
    pub pass_mark: Option<Score>,
    /// Starts at 1 and grows whenever the rule or pass mark changes.
    pub rule_version: u32,
    /// The recognition group the admin put the course in (read only here:
    /// [`RecognitionStore::put_group`](crate::RecognitionStore::put_group) sets it).
    pub recognition_group: Option<GroupId>,
    /// When the course was first offered; earlier completions are refused.
    pub offered_from: Option<Millis>,
    /// How often the course may credit the same learner.
    pub repeat: xuefen_core::rule::Repeat,
}

/// The courses port.
#[async_trait]
pub trait CourseStore: Send + Sync {
    /// Creates or updates a course; the rule version grows when terms change.
    async fn put_course(&self, course: &Course) -> Result<(Course, Written)>;
    async fn course(&self, site: &SiteId, code: &CourseCode) -> Result<Option<Course>>;
}

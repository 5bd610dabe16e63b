//! Recognition (学分互认): groups of equivalent courses and annual category caps.

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

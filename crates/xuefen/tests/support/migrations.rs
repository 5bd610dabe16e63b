//! A backend's migrations cut at a version, for tests that start from a
//! database as an older release left it (the conformance suite's
//! `Backend::fresh_at_version`). Included by each test binary that needs it
//! with `#[path]`.

use std::borrow::Cow;

use sqlx::migrate::Migrator;

/// `all` with only the migrations up to `version` (inclusive).
pub(crate) fn up_to(all: &Migrator, version: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            all.migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

//! What `POST /v1/events` promises about a batch, stated once for the
//! OpenAPI document (and `docs/design.md`, guarantee 4).
//!
//! A batch is split by chain shard (see [`crate::commit`]): the part of
//! each shard commits in that shard's group transaction, the shards on
//! their own. A batch is therefore not atomic across shards on PostgreSQL,
//! and the contract says exactly what a client may see after a crash and
//! why retrying the whole batch is safe. `crates/xuefen/tests/ops/batch_crash.rs`
//! kills the server with SIGKILL mid-batch and checks every sentence here.

use utoipa::Modify;

/// The summary of `POST /v1/events`.
pub(crate) const SUMMARY: &str =
    "Posts a batch of events: a JSON array, or NDJSON with `Content-Type: application/x-ndjson`.";

/// The description of `POST /v1/events`: the batch contract.
pub(crate) const DESCRIPTION: &str = "\
Each item gets its own result; a rejected item never blocks the others.

**Durability.** A 200 answer means every item it reports `accepted` or `duplicate` is committed durably.

**Not one transaction.** The items are committed by chain shard (`commit_shards`, PostgreSQL): the items \
whose learners' chains fall in one shard commit together in one transaction, each shard on its own. If the \
service stops before it answers (a crash, SIGKILL, a lost connection), any of the shards' parts may be \
committed and others not. Each item is then either written whole (all its ledger entries, with its \
idempotency key) or not at all, never in part, and the chains verify. On SQLite (one shard) a batch of at \
most `group_events_max` events is one transaction: all or nothing.

**Retry.** Sending the whole batch again, unchanged, is safe and idempotent: an item already written \
answers `duplicate` with its original position and writes nothing; an item not written is judged and \
written as if new. No item is ever written twice. A client that got no answer retries the whole batch (or \
each item) with the same event ids and bodies; a changed body under an event id already written is a \
`conflict`.";

/// Sets the summary and description of `POST /v1/events`.
pub(crate) struct BatchContract;

impl Modify for BatchContract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(op) = openapi
            .paths
            .paths
            .get_mut("/v1/events")
            .and_then(|item| item.post.as_mut())
        {
            op.summary = Some(SUMMARY.to_owned());
            op.description = Some(DESCRIPTION.to_owned());
        }
    }
}

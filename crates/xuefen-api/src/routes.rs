//! The router: every endpoint of the API and the handler that answers it.
//!
//! An endpoint is declared once: `routes!` takes the path and the method
//! from the handler's `#[utoipa::path]` annotation, so the same list builds
//! the axum router and the OpenAPI paths ([`api_routes`] feeds both
//! [`routes`] and `openapi::json`). The log's tiles (an axum wildcard the
//! annotation cannot spell), the xAPI door, the pages and the learning
//! record keep their own routers; their paths are listed in `openapi.rs`.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::{bank, courses, keys, learners, ledger, ops, recognition, sites, stats, transcript};
use axum::Router;

/// The endpoints declared here, with their OpenAPI paths.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(sites::create_site, sites::list_sites))
        .routes(routes!(sites::get_site))
        .routes(routes!(sites::set_site_status))
        .routes(routes!(sites::list_site_changes))
        .routes(routes!(stats::get_site_stats))
        .routes(routes!(stats::list_stats))
        .routes(routes!(keys::create_site_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(learners::register_learner))
        .routes(routes!(learners::link_account))
        .routes(routes!(courses::put_course, courses::get_course))
        .routes(routes!(ledger::post_events))
        .routes(routes!(ledger::put_event, ledger::get_event))
        .routes(routes!(learners::erase_learner))
        .routes(routes!(transcript::get_transcript))
        .routes(routes!(transcript::get_my_transcript))
        .routes(routes!(recognition::put_group, recognition::get_group))
        .routes(routes!(recognition::list_caps))
        .routes(routes!(recognition::put_cap, recognition::delete_cap))
        .routes(routes!(bank::deposits::create_bank_key))
        .routes(routes!(bank::deposits::list_deposits))
        .routes(routes!(bank::deposits::post_acks))
        .routes(routes!(bank::deposits::put_ack))
        .routes(routes!(bank::log::get_public_key))
        .routes(routes!(bank::log::get_log_checkpoint))
}

pub(crate) fn routes() -> Router<AppState> {
    let (router, _) = api_routes().split_for_parts();
    router
        .merge(crate::bank::routes())
        .merge(crate::xapi::routes())
        .merge(crate::pages::routes())
        .merge(crate::record::routes())
}

//! The router: every endpoint of the API and the handler that answers it.

use crate::AppState;
use crate::courses::get_course;
use crate::courses::put_course;
use crate::keys::create_site_key;
use crate::keys::revoke_key;
use crate::learners::erase_learner;
use crate::learners::link_account;
use crate::learners::register_learner;
use crate::ledger::get_event;
use crate::ledger::post_events;
use crate::ledger::put_event;
use crate::ops::healthz;
use crate::ops::readyz;
use crate::recognition::delete_cap;
use crate::recognition::get_group;
use crate::recognition::list_caps;
use crate::recognition::put_cap;
use crate::recognition::put_group;
use crate::sites::create_site;
use crate::sites::get_site;
use crate::sites::list_site_changes;
use crate::sites::list_sites;
use crate::sites::set_site_status;
use crate::stats::get_site_stats;
use crate::stats::list_stats;
use crate::transcript::get_my_transcript;
use crate::transcript::get_transcript;
use axum::Router;
use axum::routing::{delete, get, post, put};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/sites", post(create_site).get(list_sites))
        .route("/v1/sites/{site_id}", get(get_site))
        .route("/v1/sites/{site_id}/status", put(set_site_status))
        .route("/v1/sites/{site_id}/changes", get(list_site_changes))
        .route("/v1/sites/{site_id}/stats", get(get_site_stats))
        .route("/v1/stats", get(list_stats))
        .route("/v1/sites/{site_id}/keys", post(create_site_key))
        .route("/v1/keys/{key_id}", delete(revoke_key))
        .route("/v1/learners", post(register_learner))
        .route("/v1/accounts/{local_account}", put(link_account))
        .route("/v1/courses/{code}", put(put_course).get(get_course))
        .route("/v1/events", post(post_events))
        .route("/v1/events/{event_id}", put(put_event).get(get_event))
        .route("/v1/learners/{learner_id}", delete(erase_learner))
        .route("/v1/learners/{learner_id}/transcript", get(get_transcript))
        .route("/v1/me/transcript", get(get_my_transcript))
        .route("/v1/recognition-groups/{group_id}", put(put_group).get(get_group))
        .route("/v1/caps", get(list_caps))
        .route("/v1/caps/{category}", put(put_cap).delete(delete_cap))
        .merge(crate::bank::routes())
        .merge(crate::xapi::routes())
        .merge(crate::pages::routes())
}

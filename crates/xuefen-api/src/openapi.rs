//! The OpenAPI document, generated from the handlers' annotations. The
//! committed copy in `openapi/xuefen.json` is checked against it by a test.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::batch_contract::BatchContract;
use crate::contract::Strict;
use crate::dto::*;
use crate::problem::Problem;
use crate::{bank, pages, routes, xapi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("xf_<48 hex>")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "the xAPI door: user name the site id, password one of the site's API keys",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "sso",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT of the province's single sign-on; `sub` is the unified learner id")
                    .build(),
            ),
        );
        // The browser pages (tag `pages`) sign in with cookies.
        components.add_security_scheme(
            "sso_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "xf_sso",
                "the single sign-on token, set by POST /me/login",
            ))),
        );
        components.add_security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "xf_admin",
                "the admin session, set by POST /admin/login with the admin key",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Xuefen", description = "The lifelong-learning credit ledger of a provincial alliance of learning sites."),
    modifiers(&Security, &Strict, &BatchContract),
    paths(
        routes::healthz, routes::readyz, crate::metrics::metrics,
        routes::create_site, routes::list_sites, routes::get_site, routes::set_site_status, routes::list_site_changes, routes::get_site_stats, routes::list_stats, routes::create_site_key, routes::revoke_key,
        routes::register_learner, routes::link_account, routes::erase_learner,
        routes::put_course, routes::get_course,
        routes::put_event, routes::get_event, routes::post_events,
        routes::get_transcript, routes::get_my_transcript,
        routes::put_group, routes::get_group, routes::list_caps, routes::put_cap, routes::delete_cap,
        bank::create_bank_key, bank::list_deposits, bank::post_acks, bank::put_ack,
        bank::get_public_key, bank::get_log_checkpoint, bank::get_tile,
        xapi::get_about, xapi::put_statement, xapi::post_statements, xapi::get_statements,
        xapi::put_profile, xapi::get_profile, xapi::put_mbox_link,
        xapi::documents::state_resource, xapi::documents::activity_profile_resource,
        xapi::documents::agent_profile_resource, xapi::documents::get_activity, xapi::documents::get_agents,
        xapi::documents::get_document_usage,
        xapi::documents::put_xapi_state, xapi::documents::post_xapi_state, xapi::documents::delete_xapi_state,
        xapi::documents::put_xapi_activity_profile, xapi::documents::post_xapi_activity_profile,
        xapi::documents::delete_xapi_activity_profile, xapi::documents::put_xapi_agent_profile,
        xapi::documents::post_xapi_agent_profile, xapi::documents::delete_xapi_agent_profile,
        pages::me_page, pages::me_login, pages::me_logout, pages::admin_page, pages::admin_login, pages::admin_logout,
    ),
    components(schemas(
        Problem, PositionOut, SiteIn, SiteOut, SiteStatusIn, KeyOut, SiteCreated, DocumentIn, LearnerIn, LearnerOut,
        AccountLinkIn, AccountLinkOut, ErasureOut, RuleIn, CourseIn, CourseOut, LearnerRefIn, EventIn, EventResult, BatchOut,
        EntryOut, TotalsOut, TranscriptOut, GroupCourse, GroupIn, GroupOut, DeclaredReversal, CapIn, CapOut, SiteChangeOut, StandingOut, SiteStatsOut,

        bank::ProofOut, bank::DepositOut, bank::DepositPageOut,
        bank::PublicKeyOut, bank::DecisionIn, bank::AckIn, bank::AcksIn, bank::AckResult, bank::AcksOut,
        xapi::AboutOut, xapi::StatementPageOut, xapi::XapiProfileIn, xapi::XapiProfileOut, xapi::MboxLinkIn, xapi::MboxLinkOut, xapi::documents::DocumentUsageOut,
    ))
)]
pub struct ApiDoc;

/// The document as pretty JSON, with a trailing newline.
pub fn json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| panic!("OpenAPI serialises: {e}"));
    s.push('\n');
    s
}

//! The OpenAPI document, generated from the handlers' annotations. The
//! committed copy in `openapi/xuefen.json` is checked against it by a test.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::batch_contract::BatchContract;
use crate::contract::Strict;
use crate::problem::{PositionOut, Problem};
use crate::{bank, courses, keys, learners, ledger, pages, recognition, sites, stats, transcript, xapi};

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
    info(
        title = "Xuefen",
        description = "The lifelong-learning credit ledger of a provincial alliance of learning sites."
    ),
    paths(
        crate::metrics::metrics,
        bank::log::get_tile,
        xapi::get_about,
        xapi::write::put_statement,
        xapi::write::post_statements,
        xapi::read::get_statements,
        xapi::settings::put_profile,
        xapi::settings::get_profile,
        xapi::settings::put_mbox_link,
        xapi::documents::state_resource,
        xapi::documents::activity_profile_resource,
        xapi::documents::agent_profile_resource,
        xapi::documents::get_activity,
        xapi::documents::get_agents,
        xapi::documents::get_document_usage,
        xapi::documents::put_xapi_state,
        xapi::documents::post_xapi_state,
        xapi::documents::delete_xapi_state,
        xapi::documents::put_xapi_activity_profile,
        xapi::documents::post_xapi_activity_profile,
        xapi::documents::delete_xapi_activity_profile,
        xapi::documents::put_xapi_agent_profile,
        xapi::documents::post_xapi_agent_profile,
        xapi::documents::delete_xapi_agent_profile,
        pages::me::me_page,
        pages::me::me_login,
        pages::me::me_logout,
        pages::admin::admin_page,
        pages::admin::admin_login,
        pages::admin::admin_logout,
        crate::record::get_my_record,
        crate::record::get_learner_record,
        crate::record::get_record_issuer,
        crate::record::download::download_my_record,
        crate::record::verify::verify_page,
        crate::record::verify::verify_posted,
        crate::record::verify::verify_offline_page,
        crate::record::post_my_record,
        crate::record::download::download_my_record_with_identity,
    ),
    components(schemas(
        Problem,
        PositionOut,
        sites::SiteIn,
        sites::SiteOut,
        sites::SiteStatusIn,
        keys::KeyOut,
        sites::SiteCreated,
        learners::DocumentIn,
        learners::LearnerIn,
        learners::LearnerOut,
        learners::AccountLinkIn,
        learners::AccountLinkOut,
        learners::ErasureOut,
        courses::RuleIn,
        courses::CourseIn,
        courses::CourseOut,
        ledger::LearnerRefIn,
        ledger::EventIn,
        ledger::EventResult,
        ledger::BatchOut,
        transcript::EntryOut,
        transcript::TotalsOut,
        transcript::TranscriptOut,
        recognition::GroupCourse,
        recognition::GroupIn,
        recognition::GroupOut,
        recognition::DeclaredReversal,
        recognition::CapIn,
        recognition::CapOut,
        sites::SiteChangeOut,
        stats::StandingOut,
        stats::SiteStatsOut,
        bank::wire::ProofOut,
        bank::wire::DepositOut,
        bank::wire::DepositPageOut,
        bank::wire::PublicKeyOut,
        bank::wire::DecisionIn,
        bank::wire::AckIn,
        bank::wire::AcksIn,
        bank::wire::AckResult,
        bank::wire::AcksOut,
        xapi::AboutOut,
        xapi::read::StatementPageOut,
        xapi::settings::XapiProfileIn,
        xapi::settings::XapiProfileOut,
        xapi::settings::MboxLinkIn,
        xapi::settings::MboxLinkOut,
        xapi::documents::DocumentUsageOut,
        crate::record::RecordIssuerOut,
        crate::record::verify::VerifyForm,
        crate::record::RecordIdentityIn,
        crate::record::download::RecordIdentityForm,
    ))
)]
pub struct ApiDoc;

/// The whole document: the paths of the one-list router in `routes.rs`
/// merged with those listed above, then the modifiers (which see every path).
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = crate::routes::api_routes().split_for_parts();
    doc.merge(ApiDoc::openapi());
    doc.info = ApiDoc::openapi().info;
    for modifier in [&Security as &dyn Modify, &Strict, &BatchContract, &crate::roles::XRoles] {
        modifier.modify(&mut doc);
    }
    doc
}

/// The document as pretty JSON, with a trailing newline.
pub fn json() -> String {
    let mut s = document()
        .to_pretty_json()
        .unwrap_or_else(|e| panic!("OpenAPI serialises: {e}"));
    s.push('\n');
    s
}

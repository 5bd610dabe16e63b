//! HTTP-level tests of the whole service over a real socket, against a real
//! database. Every scenario is written once and run on each backend by
//! [`backend_tests!`].

#[path = "../support/pg.rs"]
mod pg;

mod bank;
mod cdp;
mod credited_once;
mod harness;
mod hostile;
mod import;
mod pages;
mod privacy;
mod pseudonyms;
mod recognition;
mod record;
mod record_browser;
mod renewal;
mod roles;
mod scenarios;
mod sealed_names;
mod sso_binding;
mod xapi;
mod xapi_documents;
mod xapi_erasure;

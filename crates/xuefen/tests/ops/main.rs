//! Operations tests: the real `xuefen` binary with its configuration,
//! metrics, OpenTelemetry export and graceful shutdown, and checks that the
//! files under `ops/` parse and agree with what the service exposes.
//!
//! Scenarios that touch a database run on SQLite always and on PostgreSQL
//! when `XUEFEN_TEST_PG_ADMIN_URL` is set (scripts/test.sh sets it).

#[path = "../support/pg.rs"]
mod pg;

mod batch_crash;
mod config;
mod hostile_tcp;
mod manifests;
mod metrics;
mod name_keys;
mod otel;
mod server;
mod shutdown;
mod witness;
mod xapi_version;

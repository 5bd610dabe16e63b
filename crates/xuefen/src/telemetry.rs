//! Logging and tracing, set up once at start.
//!
//! A `tracing` registry with the configured filter writes log lines to
//! stderr (text or JSON). An OpenTelemetry layer always gives spans W3C
//! trace ids, so JSON log lines and problem responses carry a `trace_id`
//! even when nothing is exported. Spans are exported over OTLP
//! (http/protobuf) only when the standard variables ask for it:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set.
//! `OTEL_SDK_DISABLED=true` leaves OpenTelemetry out altogether (no export,
//! no trace ids). The exporter itself reads the other `OTEL_*` variables
//! (headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`,
//! `OTEL_TRACES_SAMPLER`). [`Telemetry::shutdown`] flushes what is still
//! queued, within [`FLUSH_BOUND`].

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, Settings};

/// The longest the final flush may hold up the exit, so that a collector
/// that is down cannot stretch a shutdown past the pod's grace period.
pub(crate) const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// Keeps the tracer provider alive until [`Telemetry::shutdown`].
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

fn sdk_disabled(env: &impl Fn(&str) -> Option<String>) -> bool {
    env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether the standard variables ask for OTLP export.
fn otlp_requested(env: impl Fn(&str) -> Option<String>) -> bool {
    let endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|k| env(k).is_some_and(|v| !v.trim().is_empty()));
    endpoint && !sdk_disabled(&env)
}

/// Installs the global subscriber and the OpenTelemetry tracer. Call it
/// outside the async runtime: the OTLP exporter runs its own thread.
pub(crate) fn init(settings: &Settings) -> anyhow::Result<Telemetry> {
    let env = |k: &str| std::env::var(k).ok();
    let filter = EnvFilter::try_new(&settings.log_filter).context("log_filter")?;
    if sdk_disabled(&env) {
        install(tracing_subscriber::registry(), settings.log_format, filter)?;
        return Ok(Telemetry {
            provider: None,
            exporting: false,
        });
    }
    let exporting = otlp_requested(env);
    // `Resource::builder` reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    // the service name defaults to `xuefen` rather than `unknown_service`.
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("xuefen");
    }
    let resource = resource.build();
    let provider = if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .context("build the OTLP span exporter")?;
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build()
    } else {
        // Nothing is exported: spans are not sampled, but still get trace
        // ids for the logs and the problem responses.
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::AlwaysOff)
            .build()
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // Spans are traced at info whatever the log filter says: quieter logs
    // must not switch tracing (or the trace ids of problems) off.
    let traced = Targets::new()
        .with_default(Level::INFO)
        .with_target("sqlx", Level::WARN);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("xuefen"))
        .with_filter(traced);
    install(tracing_subscriber::registry().with(otel), settings.log_format, filter)?;
    if exporting {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry {
        provider: Some(provider),
        exporting,
    })
}

/// Adds the log-line layer, filtered by `log_filter`, to `registry` and
/// installs it globally.
fn install<S>(registry: S, format: LogFormat, filter: EnvFilter) -> anyhow::Result<()>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    }
    .context("install the tracing subscriber")
}

impl Telemetry {
    /// Flushes queued spans and stops the exporter.
    pub(crate) fn shutdown(self) {
        if self.exporting
            && let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_BOUND)
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::otlp_requested;

    #[test]
    fn export_needs_an_endpoint_and_no_disable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert!(!otlp_requested(env(&[])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c/v1/traces"
        )])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
    }
}

//! One `init_telemetry` for every binary: human or JSON log lines under the
//! log filter, metrics ([`crate::metrics`]), and, when an OTLP endpoint is
//! configured, spans and metrics exported over OTLP/gRPC, the spans under a
//! filter of their own (`--trace-filter`: quiet logs do not drop spans). An
//! exporter that cannot reach the collector logs it once, with the reason
//! ([`export`]). W3C trace context is the global propagator, so clients
//! inject `traceparent` and servers continue the caller's trace.

mod export;

pub use export::LoggedMetricExporter;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryOptions};

/// Flushes and shuts the trace exporter down when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown: {error}");
        }
        // Exports what was recorded since the last period.
        if let Some(meters) = self.meters.take()
            && let Err(error) = meters.shutdown()
        {
            eprintln!("metric exporter shutdown: {error}");
        }
    }
}

/// Installs the global subscriber. Call once, at the start of `main`.
///
/// # Errors
/// When the filter is invalid, the exporter cannot be built, or a global
/// subscriber is already installed.
pub fn init_telemetry(options: &TelemetryOptions) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let log_filter = EnvFilter::try_new(&options.log_filter)?;
    let trace_filter = EnvFilter::try_new(&options.trace_filter)?;

    let provider = match &options.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(export::LoggedSpanExporter::new(exporter, endpoint))
                .with_resource(
                    Resource::builder()
                        .with_service_name(options.service_name.clone())
                        .build(),
                )
                .build();
            opentelemetry::global::set_tracer_provider(provider.clone());
            Some(provider)
        }
        None => None,
    };
    let meters = crate::metrics::install(&options.service_name, options.otlp_endpoint.as_deref())?;
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rebalancer"))
            .with_filter(trace_filter)
    });

    let registry = tracing_subscriber::registry().with(otel_layer);
    match options.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter),
            )
            .try_init()?,
    }
    Ok(TelemetryGuard {
        provider,
        meters: options.otlp_endpoint.as_ref().map(|_| meters),
    })
}

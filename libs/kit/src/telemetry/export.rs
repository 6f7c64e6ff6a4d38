//! Exporters that say when they stop reaching the collector: the first
//! failure is logged with its reason, then nothing until an export works
//! again (logged once too), so a dead collector is neither silent nor a
//! flood of identical lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Whether the last export of one signal failed, and the logging of changes.
#[derive(Debug, Clone)]
struct Outage {
    signal: &'static str,
    endpoint: String,
    failing: Arc<AtomicBool>,
}

impl Outage {
    fn new(signal: &'static str, endpoint: &str) -> Self {
        Self {
            signal,
            endpoint: endpoint.to_owned(),
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    fn record(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(signal = self.signal, endpoint = %self.endpoint, "telemetry export works again");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        signal = self.signal,
                        endpoint = %self.endpoint,
                        reason = %error,
                        "telemetry export failed; dropping data until the collector answers (logged once)"
                    );
                }
            }
        }
    }
}

/// A span exporter that logs its outages once.
#[derive(Debug)]
pub(super) struct LoggedSpanExporter<E> {
    inner: E,
    outage: Outage,
}

impl<E> LoggedSpanExporter<E> {
    pub(super) fn new(inner: E, endpoint: &str) -> Self {
        Self {
            inner,
            outage: Outage::new("traces", endpoint),
        }
    }
}

impl<E: SpanExporter> SpanExporter for LoggedSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.outage.record(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// A metric exporter that logs its outages once.
#[derive(Debug)]
pub struct LoggedMetricExporter<E> {
    inner: E,
    outage: Outage,
}

impl<E> LoggedMetricExporter<E> {
    #[must_use]
    pub fn new(inner: E, endpoint: &str) -> Self {
        Self {
            inner,
            outage: Outage::new("metrics", endpoint),
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for LoggedMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.outage.record(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

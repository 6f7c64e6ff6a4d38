//! Metrics through OpenTelemetry: one meter provider per process, exported
//! over OTLP beside the traces when an endpoint is configured, and always
//! readable as a Prometheus scrape (`GET /metrics` on the admin port).
//!
//! Instruments (names as OpenTelemetry has them; Prometheus replaces dots
//! with underscores and adds the unit and `_total`/`_bucket` suffixes):
//!
//! | Name | Kind, unit | Labels | What |
//! |---|---|---|---|
//! | `rpc.server.call.duration` | histogram, s | `rpc.method`, `rpc.grpc.status_code` | every call but health: rate, errors, duration (RED) |
//! | `rebalancer.monitor.accounts_evaluated` | counter | `tenant` | accounts evaluated by cycles |
//! | `rebalancer.monitor.runs_opened` | counter | `tenant` | runs the cycles opened |
//! | `rebalancer.execution.fills` | counter | `side`, `crossed` | fills booked |
//! | `rebalancer.execution.slippage` | histogram, bp | `side` | fill price against the block's arrival price, worse is positive |
//! | `rebalancer.execution.child_orders` | counter | `status`, `broker` | child orders sent, by status once the broker answered: fill rate = `filled` / all |
//! | `rebalancer.monitor.accounts` | gauge | `tenant`, `status` | accounts by status as the tenant's latest full (not dry-run) cycle left them |
//! | `rebalancer.monitor.cycle.duration` | histogram, s | `trigger` | first shard claimed to last shard done |
//! | `rebalancer.lease.reclaims` | counter | `kind` (`shard`, `slice`) | work claimed again after a lease ran out or an attempt failed |
//! | `rebalancer.events` | counter | `type`, `status` | every change a service recorded (runs opened and ended by status, blocks by state, cash movements, cycles, flags) |
//! | `rebalancer.db.pool.connections` | gauge | `database`, `state` (`used`, `idle`) | the service's database pool, every 2 s |
//! | `rebalancer.readiness.check.duration` | histogram, s | `check` | each readiness check's round trip (a database's `SELECT 1`: its latency as the service sees it; the live broker's session) |
//! | `rebalancer.readiness` | gauge | `check` | 1 while the dependency is usable (the database; `execution broker (fix)`: the FIX session logged on), 0 while not |

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use tower::{Layer, Service};

/// The process's meter provider and the reader the scrape collects from.
#[derive(Debug)]
struct Installed {
    provider: SdkMeterProvider,
    reader: Arc<ManualReader>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The scrape's reader, shared with the provider that owns a clone.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Installs the process's meter provider (once; later calls return the
/// first), exporting to `otlp` every 30 s when given.
///
/// # Errors
/// When the OTLP exporter cannot be built.
pub fn install(service_name: &str, otlp: Option<&str>) -> anyhow::Result<SdkMeterProvider> {
    if let Some(installed) = INSTALLED.get() {
        return Ok(installed.provider.clone());
    }
    let reader = Arc::new(ManualReader::builder().build());
    let mut builder = SdkMeterProvider::builder()
        .with_reader(SharedReader(reader.clone()))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        );
    if let Some(endpoint) = otlp {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.to_owned())
            .build()?;
        builder = builder.with_periodic_exporter(crate::telemetry::LoggedMetricExporter::new(
            exporter, endpoint,
        ));
    }
    let provider = builder.build();
    let installed = INSTALLED.get_or_init(|| Installed {
        provider: provider.clone(),
        reader,
    });
    opentelemetry::global::set_meter_provider(installed.provider.clone());
    Ok(installed.provider.clone())
}

/// The Prometheus names (without `_bucket`/`_sum`/`_count`) of every
/// instrument above: what dashboards may use.
pub const PROMETHEUS_NAMES: &[&str] = &[
    "rpc_server_call_duration_seconds",
    "rebalancer_monitor_accounts_evaluated_total",
    "rebalancer_monitor_runs_opened_total",
    "rebalancer_execution_fills_total",
    "rebalancer_execution_slippage_basis_points",
    "rebalancer_execution_child_orders_total",
    "rebalancer_monitor_cycle_duration_seconds",
    "rebalancer_monitor_accounts",
    "rebalancer_lease_reclaims_total",
    "rebalancer_events_total",
    "rebalancer_db_pool_connections",
    "rebalancer_readiness_check_duration_seconds",
    "rebalancer_readiness",
];

/// The meter every instrument of Rebalancer is made from (installing a
/// scrape-only provider if none is yet).
#[must_use]
pub fn meter() -> Meter {
    if INSTALLED.get().is_none() {
        let _ = install("rebalancer", None);
    }
    opentelemetry::global::meter("rebalancer")
}

/// The current values in the Prometheus text format.
#[must_use]
pub fn prometheus_text() -> String {
    let Some(installed) = INSTALLED.get() else {
        return String::new();
    };
    let mut metrics = ResourceMetrics::default();
    if let Err(error) = installed.reader.collect(&mut metrics) {
        return format!("# collection failed: {error}\n");
    }
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let name = prometheus_name(metric.name(), metric.unit());
            match metric.data() {
                AggregatedMetrics::F64(data) => render(&mut out, &name, metric.description(), data),
                AggregatedMetrics::U64(data) => render(&mut out, &name, metric.description(), data),
                AggregatedMetrics::I64(data) => render(&mut out, &name, metric.description(), data),
            }
        }
    }
    out
}

fn prometheus_name(name: &str, unit: &str) -> String {
    let mut text: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let unit = match unit {
        "ms" => "milliseconds",
        "s" => "seconds",
        "bp" => "basis_points",
        "" | "1" => "",
        other => other,
    };
    if !unit.is_empty() {
        text.push('_');
        text.push_str(unit);
    }
    text
}

fn labels<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    extra: Option<(&str, String)>,
) -> String {
    // Sorted by key: the SDK keeps attributes in no fixed order.
    let mut attributes: Vec<&KeyValue> = attributes.collect();
    attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut parts: Vec<String> = attributes
        .into_iter()
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                prometheus_name(kv.key.as_str(), ""),
                kv.value.as_str().replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    if let Some((key, value)) = extra {
        parts.push(format!("{key}=\"{value}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn render<T: Copy + std::fmt::Display>(
    out: &mut String,
    name: &str,
    description: &str,
    data: &MetricData<T>,
) {
    match data {
        MetricData::Sum(sum) => {
            let (name, kind) = if sum.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_owned(), "gauge")
            };
            let _ = writeln!(out, "# HELP {name} {description}\n# TYPE {name} {kind}");
            for point in sum.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(point.attributes(), None),
                    point.value()
                );
            }
        }
        MetricData::Gauge(gauge) => {
            let _ = writeln!(out, "# HELP {name} {description}\n# TYPE {name} gauge");
            for point in gauge.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(point.attributes(), None),
                    point.value()
                );
            }
        }
        MetricData::Histogram(histogram) => {
            let _ = writeln!(out, "# HELP {name} {description}\n# TYPE {name} histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0;
                let counts: Vec<u64> = point.bucket_counts().collect();
                for (bound, count) in point.bounds().zip(counts.iter()) {
                    cumulative += count;
                    let le = labels(point.attributes(), Some(("le", bound.to_string())));
                    let _ = writeln!(out, "{name}_bucket{le} {cumulative}");
                }
                let le = labels(point.attributes(), Some(("le", "+Inf".to_owned())));
                let _ = writeln!(out, "{name}_bucket{le} {}", point.count());
                let plain = labels(point.attributes(), None);
                let _ = writeln!(out, "{name}_sum{plain} {}", point.sum());
                let _ = writeln!(out, "{name}_count{plain} {}", point.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// Records `rpc.server.call.duration` for every call but health checks.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
}

impl RpcMetricsLayer {
    #[must_use]
    pub fn new() -> Self {
        Self {
            duration: meter()
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of gRPC calls, by method and status")
                .with_boundaries(vec![
                    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ])
                .build(),
        }
    }
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            duration: self.duration.clone(),
        }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    duration: Histogram<f64>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let future = self.inner.call(request);
        if path.starts_with("/grpc.health.v1.Health/") {
            return Box::pin(future);
        }
        let duration = self.duration.clone();
        let started = Instant::now();
        Box::pin(async move {
            let result = future.await;
            // Errors are trailers-only responses: the status is in the
            // headers; a streamed call that fails later counts as OK here.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i64>().ok())
                    .unwrap_or(0),
                Err(_) => 2,
            };
            duration.record(
                started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("rpc.method", path),
                    KeyValue::new("rpc.grpc.status_code", code),
                ],
            );
            result
        })
    }
}

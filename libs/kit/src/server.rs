//! The gRPC server every service runs on: health (`grpc.health.v1`, one entry
//! per service, following its database: [`crate::health`]), reflection v1
//! and v1alpha (grpcurl 1.8.6 asks v1alpha) of the services this process
//! serves, tracing with W3C context extraction, authentication and the
//! permission of every RPC ([`crate::auth`]), TLS ([`crate::tls`]), explicit
//! limits (deadline, global and per-tenant concurrency and rate, with load
//! shedding that health checks bypass, message sizes), and graceful
//! shutdown: health flips to NOT_SERVING, new connections stop, in-flight
//! requests get a grace period to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use opentelemetry::propagation::Extractor;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, GrpcFailureClass, SharedClassifier};
use tower_http::trace::{MakeSpan, TraceLayer};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::{AuthLayer, Authenticator};
use crate::config::ServerOptions;
use crate::health::ReadinessCheck;
use crate::limits::{LoadLimitLayer, TenantLimitLayer};
use crate::rate::TenantRateLayer;
use crate::request_id::RequestIdLayer;

/// Encoding and decoding limits applied to each generated service.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimits {
    pub max_bytes: usize,
}

impl From<&ServerOptions> for MessageLimits {
    fn from(options: &ServerOptions) -> Self {
        Self {
            max_bytes: options.max_message_bytes,
        }
    }
}

/// Binds the listener first, so callers learn the port (0 in tests) before serving.
///
/// # Errors
/// When the address is taken or not local.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address).await?;
    Ok(listener)
}

/// Serves `routes` (plus health and reflection) on `listener` until `shutdown`
/// completes, then drains. Every call but health and reflection is
/// authenticated and authorized by `auth`.
///
/// # Errors
/// When the options are invalid or the transport fails.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&'static str],
    options: &ServerOptions,
    auth: Authenticator,
    readiness: Vec<ReadinessCheck>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    options.validate()?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let readiness = crate::health::watch(health_reporter.clone(), readiness);
    // Reflection lists only what this process serves (with health and
    // reflection itself).
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rebalancer_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for name in service_names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let routes = routes
        .add_service(health_service.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let trace_layer = TraceLayer::new(SharedClassifier::new(server_errors_only()))
        .make_span_with(GrpcMakeSpan)
        .on_failure(GrpcOnFailure);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stop_rx.await;
    };
    let acceptor = options.tls.acceptor()?;
    let admin = match options.admin_listen {
        Some(address) => Some(serve_admin(address, health_service.clone()).await?),
        None => None,
    };
    let mut builder = Server::builder().timeout(options.request_timeout());
    if options.max_connection_age_secs > 0 {
        // Calls in flight (long streams included) get ten minutes to finish
        // on the old connection; new calls go over a new one.
        builder = builder
            .max_connection_age(std::time::Duration::from_secs(
                options.max_connection_age_secs,
            ))
            .max_connection_age_grace(std::time::Duration::from_secs(600));
    }
    let router = builder
        .layer(RequestIdLayer)
        .layer(crate::metrics::RpcMetricsLayer::new())
        .layer(trace_layer)
        .layer(AuthLayer::new(auth))
        .layer(LoadLimitLayer::new(options.concurrency_limit))
        .layer(TenantRateLayer::new(
            options.tenant_rate_limit,
            options.tenant_rate_burst,
        ))
        .layer(TenantLimitLayer::new(options.tenant_concurrency_limit))
        .add_routes(routes);
    let mut server: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
        match acceptor {
            Some(acceptor) => {
                Box::pin(router.serve_with_incoming_shutdown(
                    crate::tls::incoming(listener, acceptor),
                    stopped,
                ))
            }
            // `Server::tcp_nodelay` only applies to listeners tonic binds
            // itself: set it on the accepted connections, or Nagle holds each
            // frame of a streaming response until the peer's delayed ACK
            // (about 40 ms).
            None => Box::pin(router.serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopped,
            )),
        };

    tokio::select! {
        result = &mut server => {
            readiness.abort();
            stop_admin(admin).await;
            return Ok(result?);
        }
        () = shutdown => {}
    }
    readiness.abort();
    tracing::info!("shutting down: health NOT_SERVING, draining requests");
    health_reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in service_names {
        health_reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(options.shutdown_grace(), server).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("grace period over, closing remaining streams"),
    }
    stop_admin(admin).await;
    Ok(())
}

/// The plaintext admin server: gRPC health and the Prometheus scrape.
type Admin = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
);

async fn serve_admin<H>(address: SocketAddr, health: H) -> anyhow::Result<Admin>
where
    H: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    H::Future: Send + 'static,
{
    let listener = bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "admin port serving health and /metrics");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = Routes::new(health).into_axum_router().route(
        "/metrics",
        axum::routing::get(|| async { crate::metrics::prometheus_text() }),
    );
    let server = Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            let _ = stop_rx.await;
        });
    Ok((stop_tx, tokio::spawn(server)))
}

async fn stop_admin(admin: Option<Admin>) {
    if let Some((stop, server)) = admin {
        let _ = stop.send(());
        let _ = server.await;
    }
}

/// Client mistakes (invalid argument, not found, ...) are not server failures.
fn server_errors_only() -> GrpcErrorsAsFailures {
    [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Unauthenticated,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    )
}

/// Records a failed call's status on its span (ERROR, with the gRPC code)
/// and logs it.
#[derive(Debug, Clone, Copy)]
struct GrpcOnFailure;

impl tower_http::trace::OnFailure<GrpcFailureClass> for GrpcOnFailure {
    fn on_failure(&mut self, failure: GrpcFailureClass, latency: std::time::Duration, span: &Span) {
        let message = match &failure {
            GrpcFailureClass::Status(status) => {
                span.record("rpc.grpc.status_code", status.code_raw());
                status.to_string()
            }
            other => other.to_string(),
        };
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_message", message.as_str());
        tracing::warn!(parent: span, failure = %message, latency_ms = latency.as_millis(), "response failed");
    }
}

/// A span per request, continuing the caller's trace from `traceparent`.
#[derive(Debug, Clone, Copy)]
struct GrpcMakeSpan;

impl<B> MakeSpan<B> for GrpcMakeSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let path = request.uri().path();
        // Probes every few seconds would drown the traces that matter.
        if path.starts_with("/grpc.health.v1.Health/") {
            return Span::none();
        }
        let request_id = request
            .headers()
            .get(rebalancer_proto::client::REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        // Named `package.Service/Method` in the trace backend; the status is
        // recorded when the call fails (`GrpcOnFailure`).
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            otel.status_message = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.method = %path,
            rpc.grpc.status_code = tracing::field::Empty,
            // Verified by the auth layer, which records them.
            tenant = tracing::field::Empty,
            actor = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            request_id = %request_id,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);
        // The ids the trace backend shows, on every log line of the request
        // (JSON logs carry the span's fields), when traces are exported.
        let ids = {
            use opentelemetry::trace::TraceContextExt as _;
            let context = span.context();
            let otel = context.span();
            let ids = otel.span_context();
            ids.is_valid()
                .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
        };
        if let Some((trace_id, span_id)) = ids {
            span.record("trace_id", trace_id.as_str());
            span.record("span_id", span_id.as_str());
        }
        span
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (Kubernetes).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

//! A ready client channel for calling Rebalancer services: lazy connection,
//! per-call timeout, W3C trace-context propagation, and the request metadata
//! (tenant, actor, request id) every call carries.

use std::time::Duration;

use opentelemetry::propagation::Injector;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Metadata key of the tenant every request is scoped to.
pub const TENANT_HEADER: &str = "x-tenant-id";
/// Metadata key naming the person or system acting.
pub const ACTOR_HEADER: &str = "x-actor";
/// Metadata key correlating one request across services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Errors building a client channel.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {endpoint:?}")]
    InvalidEndpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// How to reach a service.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// For example `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// Deadline of every unary call.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientOptions {
    #[must_use]
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A channel that injects the current span's trace context into every call.
pub type TracedChannel = InterceptedService<Channel, TraceContextInterceptor>;

/// Builds a channel that connects on first use, so services can start in any order.
///
/// # Errors
/// Fails when the endpoint is not a valid URI.
pub fn lazy_channel(options: &ClientOptions) -> Result<TracedChannel, ClientError> {
    let endpoint = Endpoint::from_shared(options.endpoint.clone())
        .map_err(|source| ClientError::InvalidEndpoint {
            endpoint: options.endpoint.clone(),
            source,
        })?
        .timeout(options.request_timeout)
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(InterceptedService::new(
        endpoint.connect_lazy(),
        TraceContextInterceptor,
    ))
}

/// Injects the W3C `traceparent` of the current tracing span.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = tonic::metadata::MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if let Ok(value) = MetadataValue::try_from(value.as_str()) {
            self.0.insert(key, value);
        }
    }
}

/// Who a call is made for: the tenant, and optionally the actor and request id
/// to carry into the callee's audit trail.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub tenant: String,
    pub actor: Option<String>,
    pub request_id: Option<String>,
}

impl CallContext {
    #[must_use]
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            actor: None,
            request_id: None,
        }
    }

    /// Wraps a message in a request carrying this context's metadata.
    #[must_use]
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        insert_ascii(metadata, TENANT_HEADER, &self.tenant);
        if let Some(actor) = &self.actor {
            insert_ascii(metadata, ACTOR_HEADER, actor);
        }
        if let Some(request_id) = &self.request_id {
            insert_ascii(metadata, REQUEST_ID_HEADER, request_id);
        }
        request
    }
}

fn insert_ascii(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
}

//! A ready client channel for calling Rebalancer services: lazy connection,
//! per-call timeout, W3C trace-context propagation, the caller's credentials
//! (a bearer token on every call), and the request metadata (tenant, actor,
//! request id) every call carries.

use std::fmt;
use std::sync::Arc;
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
/// Metadata key of the caller's credentials (`Bearer <JWT>`).
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Where a client's bearer token comes from (a service's own identity, or a
/// user's token). Asked on every call, so it can renew tokens.
pub trait Credentials: Send + Sync + fmt::Debug {
    /// The token to send (without `Bearer `), or `None` to send none.
    fn token(&self) -> Option<String>;
}

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
    /// Sent as `authorization: Bearer <token>` on every call.
    pub credentials: Option<Arc<dyn Credentials>>,
    /// TLS settings for an `https://` endpoint (trusted CAs, and the
    /// client certificate for mutual TLS).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientOptions {
    #[must_use]
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            credentials: None,
            tls: None,
        }
    }

    /// The same endpoint, over TLS with `tls` when given.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    /// The same endpoint, calling with `credentials`.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<Arc<dyn Credentials>>) -> Self {
        self.credentials = credentials;
        self
    }
}

/// A channel that injects the current span's trace context (and the
/// credentials, if any) into every call.
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
    let channel = match &options.tls {
        Some(config) => endpoint.connect_with_connector_lazy(tls::Connector::new(config.clone())),
        None => endpoint.connect_lazy(),
    };
    Ok(InterceptedService::new(
        channel,
        TraceContextInterceptor {
            credentials: options.credentials.clone(),
        },
    ))
}

mod tls {
    //! Connections to `https://` endpoints with rustls: the CAs and client
    //! certificate of a [`rustls::ClientConfig`], ALPN h2.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use hyper_util::rt::TokioIo;
    use rustls::pki_types::ServerName;
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    #[derive(Clone)]
    pub(super) struct Connector {
        config: Arc<rustls::ClientConfig>,
    }

    impl Connector {
        pub(super) fn new(config: Arc<rustls::ClientConfig>) -> Self {
            Self { config }
        }
    }

    impl tower::Service<http::Uri> for Connector {
        type Response = TokioIo<TlsStream<TcpStream>>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, uri: http::Uri) -> Self::Future {
            let config = self.config.clone();
            Box::pin(async move {
                let host = uri
                    .host()
                    .ok_or("the endpoint has no host")?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = uri.port_u16().unwrap_or(443);
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(host)?;
                let stream = TlsConnector::from(config).connect(name, tcp).await?;
                Ok(TokioIo::new(stream))
            })
        }
    }
}

/// Injects the W3C `traceparent` of the current tracing span, and the
/// bearer token unless the request carries one already.
#[derive(Debug, Clone, Default)]
pub struct TraceContextInterceptor {
    credentials: Option<Arc<dyn Credentials>>,
}

impl Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        if let Some(credentials) = &self.credentials
            && !request.metadata().contains_key(AUTHORIZATION_HEADER)
            && let Some(token) = credentials.token()
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            request.metadata_mut().insert(AUTHORIZATION_HEADER, value);
        }
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
    /// A bearer token to send instead of the channel's own credentials (a
    /// user's token).
    pub token: Option<String>,
}

impl CallContext {
    #[must_use]
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            actor: None,
            request_id: None,
            token: None,
        }
    }

    /// The same context, sending `token` as the caller's credentials.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// [`CallContext::request`] with a deadline the callee sees
    /// (`grpc-timeout`).
    #[must_use]
    pub fn request_within<T>(&self, message: T, deadline: Duration) -> tonic::Request<T> {
        let mut request = self.request(message);
        request.set_timeout(deadline);
        request
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
        if let Some(token) = &self.token {
            insert_ascii(metadata, AUTHORIZATION_HEADER, &format!("Bearer {token}"));
        }
        request
    }
}

fn insert_ascii(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
}

/// How an idempotent call from one service to another is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled before each next one ...
    pub first_backoff: Duration,
    /// ... up to this.
    pub max_backoff: Duration,
    /// Deadline of each try (sent as `grpc-timeout` where the caller sets
    /// it, and enforced here).
    pub attempt_timeout: Duration,
}

impl Default for Retry {
    /// Four tries over about 1.5 s of back-off, 30 s each at most.
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// Whether a failed call may be tried again: the callee or the way to it was
/// unavailable, overloaded or too slow. Never a refusal of the request.
#[must_use]
pub fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted
    )
}

/// Runs `call` (an idempotent RPC: a read, or a create with an idempotency
/// key) under `retry`: each try within its deadline, transient failures
/// tried again after a growing back-off; the last failure is returned.
///
/// # Errors
/// The call's status when it is not transient or the tries are used up.
pub async fn retry_idempotent<T, F, Fut>(
    retry: Retry,
    what: &str,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut backoff = retry.first_backoff;
    let mut attempt = 1;
    loop {
        let result =
            match tokio::time::timeout(retry.attempt_timeout, call(retry.attempt_timeout)).await {
                Ok(result) => result,
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "{what}: no answer within {:?}",
                    retry.attempt_timeout
                ))),
            };
        match result {
            Err(status) if is_transient(&status) && attempt < retry.attempts => {
                tracing::warn!(
                    call = what,
                    attempt,
                    code = ?status.code(),
                    message = status.message(),
                    retry_in = ?backoff,
                    "transient failure; trying again"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry.max_backoff);
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            attempt_timeout: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_until_one_answers() {
        let calls = AtomicU32::new(0);
        let answer = retry_idempotent(quick(4), "test", |_| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match call {
                    0 => Err(tonic::Status::unavailable("connection refused")),
                    1 => Err(tonic::Status::resource_exhausted("shed")),
                    _ => Ok(call),
                }
            }
        })
        .await;
        assert_eq!(answer.expect("third try answers"), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_never_tried_again() {
        let calls = AtomicU32::new(0);
        let answer: Result<(), _> = retry_idempotent(quick(4), "test", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(tonic::Status::invalid_argument("bad")) }
        })
        .await;
        assert_eq!(
            answer.expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn tries_end_with_the_last_failure_and_slow_tries_hit_their_deadline() {
        let calls = AtomicU32::new(0);
        let answer: Result<(), _> = retry_idempotent(quick(3), "test", |deadline| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(deadline * 2).await;
                Ok(())
            }
        })
        .await;
        let status = answer.expect_err("every try too slow");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("test"), "{}", status.message());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}

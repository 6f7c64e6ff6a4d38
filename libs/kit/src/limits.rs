//! The server's load limits, with health checks exempt: under overload a
//! probe must see whether the process is alive, not `RESOURCE_EXHAUSTED`
//! (which makes Kubernetes restart a pod that is merely busy). Every other
//! call shares one concurrency limit and is shed when it is full; and each
//! tenant has its own limit, so one firm's burst sheds only its own calls.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rebalancer_proto::client::TENANT_HEADER;
use tokio::sync::Semaphore;

use tower::limit::{ConcurrencyLimit, GlobalConcurrencyLimitLayer};
use tower::load_shed::LoadShed;
use tower::{BoxError, Layer, Service, ServiceExt};

/// Paths that bypass the limits.
const EXEMPT: &str = "/grpc.health.v1.Health/";

/// Limits every call but health checks.
#[derive(Debug, Clone)]
pub struct LoadLimitLayer {
    limit: GlobalConcurrencyLimitLayer,
}

impl LoadLimitLayer {
    /// At most `concurrency` calls at once; more are shed.
    #[must_use]
    pub fn new(concurrency: usize) -> Self {
        Self {
            limit: GlobalConcurrencyLimitLayer::new(concurrency),
        }
    }
}

impl<S: Clone> Layer<S> for LoadLimitLayer {
    type Service = LoadLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadLimit {
            direct: inner.clone(),
            limited: LoadShed::new(self.limit.layer(inner)),
        }
    }
}

/// See [`LoadLimitLayer`].
#[derive(Debug, Clone)]
pub struct LoadLimit<S> {
    direct: S,
    limited: LoadShed<ConcurrencyLimit<S>>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for LoadLimit<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is decided per call: the limit for most, none for health.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(EXEMPT) {
            let direct = self.direct.clone();
            Box::pin(async move { direct.oneshot(request).await.map_err(Into::into) })
        } else {
            let limited = self.limited.clone();
            Box::pin(async move { limited.oneshot(request).await })
        }
    }
}

/// Tenants whose idle limits are kept; past this, idle ones are dropped.
const MAX_TRACKED_TENANTS: usize = 10_000;

/// At most `per_tenant` calls of one tenant at once (by `x-tenant-id`);
/// more are answered `RESOURCE_EXHAUSTED` at once, naming the tenant's limit.
/// Health checks are exempt.
#[derive(Debug, Clone)]
pub struct TenantLimitLayer {
    per_tenant: usize,
    tenants: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl TenantLimitLayer {
    #[must_use]
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant,
            tenants: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<S> Layer<S> for TenantLimitLayer {
    type Service = TenantLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`TenantLimitLayer`].
#[derive(Debug, Clone)]
pub struct TenantLimit<S> {
    inner: S,
    layer: TenantLimitLayer,
}

impl TenantLimitLayer {
    fn semaphore(&self, tenant: &str) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if tenants.len() >= MAX_TRACKED_TENANTS && !tenants.contains_key(tenant) {
            let full = self.per_tenant;
            tenants.retain(|_, semaphore| semaphore.available_permits() < full);
        }
        tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }
}

impl<S, B, R> Service<http::Request<B>> for TenantLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    R: Default + Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        if request.uri().path().starts_with(EXEMPT) {
            return Box::pin(async move { inner.oneshot(request).await.map_err(Into::into) });
        }
        let tenant = request
            .headers()
            .get(TENANT_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let semaphore = self.layer.semaphore(&tenant);
        let per_tenant = self.layer.per_tenant;
        Box::pin(async move {
            let Ok(_permit) = semaphore.try_acquire_owned() else {
                return Ok(tonic::Status::resource_exhausted(format!(
                    "tenant {tenant:?} already has {per_tenant} calls in flight: retry with backoff"
                ))
                .into_http());
            };
            inner.oneshot(request).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::*;

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .body(())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn health_checks_pass_a_full_limit_and_other_calls_are_shed() {
        let release = Arc::new(Notify::new());
        let held = release.clone();
        let inner = tower::service_fn(move |request: http::Request<()>| {
            let held = held.clone();
            async move {
                if request.uri().path().starts_with("/slow") {
                    held.notified().await;
                }
                Ok::<_, std::convert::Infallible>(request.uri().path().to_owned())
            }
        });
        let service = LoadLimitLayer::new(1).layer(inner);
        let busy = tokio::spawn(service.clone().oneshot(request("/slow/Call")));
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let shed = service
            .clone()
            .oneshot(request(
                "/rebalancer.target.v1.PortfolioService/ListPortfolios",
            ))
            .await;
        assert!(
            shed.is_err(),
            "a second call is shed while the limit is full"
        );
        let health = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check"))
            .await
            .expect("health passes");
        assert_eq!(health, "/grpc.health.v1.Health/Check");
        release.notify_one();
        assert!(busy.await.expect("join").is_ok());
    }
}

#[cfg(test)]
mod tenant_tests {
    use std::sync::Arc;

    use tokio::sync::Notify;
    use tower::{Layer, ServiceExt};

    use super::TenantLimitLayer;

    fn request(path: &str, tenant: &str) -> http::Request<()> {
        let mut request = http::Request::builder()
            .uri(path)
            .body(())
            .unwrap_or_default();
        if let Ok(value) = tenant.parse() {
            request.headers_mut().insert("x-tenant-id", value);
        }
        request
    }

    #[tokio::test]
    async fn one_tenants_burst_sheds_only_its_own_calls() {
        let release = Arc::new(Notify::new());
        let held = release.clone();
        let inner = tower::service_fn(move |request: http::Request<()>| {
            let held = held.clone();
            async move {
                if request.uri().path().starts_with("/slow") {
                    held.notified().await;
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            }
        });
        let service = TenantLimitLayer::new(1).layer(inner);
        let busy = tokio::spawn(service.clone().oneshot(request("/slow/Call", "firm-a")));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let shed = service
            .clone()
            .oneshot(request("/rebalancer.x/Call", "firm-a"))
            .await
            .expect("answered");
        assert_eq!(
            shed.headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()),
            Some("8"),
            "firm-a over its limit: RESOURCE_EXHAUSTED"
        );
        let other = service
            .clone()
            .oneshot(request("/rebalancer.x/Call", "firm-b"))
            .await
            .expect("answered");
        assert!(
            other.headers().get("grpc-status").is_none(),
            "firm-b is not shed"
        );
        let health = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check", "firm-a"))
            .await
            .expect("answered");
        assert!(health.headers().get("grpc-status").is_none());
        release.notify_one();
        assert!(busy.await.expect("join").is_ok());
    }
}

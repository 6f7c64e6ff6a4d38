//! The server's load limits, with health checks exempt: under overload a
//! probe must see whether the process is alive, not `RESOURCE_EXHAUSTED`
//! (which makes Kubernetes restart a pod that is merely busy). Every other
//! call shares one concurrency limit and is shed when it is full.

use std::pin::Pin;
use std::task::{Context, Poll};

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

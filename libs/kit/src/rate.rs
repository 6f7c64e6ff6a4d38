//! Per-tenant request rates: each tenant's calls draw from its own token
//! bucket (GCRA, `governor`), so one firm's burst is answered
//! `RESOURCE_EXHAUSTED` (with a `RetryInfo` delay) while the others go on.
//! The services' own calls (a verified service token) and health checks are
//! not counted: they are the system's work, bounded by its concurrency.

use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rebalancer_proto::access;
use rebalancer_proto::client::TENANT_HEADER;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::auth::{Caller, Principal};

/// Calls between sweeps of idle tenants' buckets.
const SWEEP_EVERY: u64 = 10_000;

/// Limits each tenant to `per_second` calls a second, with bursts of `burst`.
#[derive(Debug, Clone)]
pub struct TenantRateLayer {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    per_second: u32,
    calls: Arc<AtomicU64>,
}

impl TenantRateLayer {
    /// `per_second` 0 turns the limit off; `burst` 0 means `per_second`.
    #[must_use]
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self {
            limiter,
            per_second,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<S> Layer<S> for TenantRateLayer {
    type Service = TenantRate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantRate {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`TenantRateLayer`].
#[derive(Debug, Clone)]
pub struct TenantRate<S> {
    inner: S,
    layer: TenantRateLayer,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl TenantRateLayer {
    /// `None` when the call may go on; the refusal otherwise.
    fn refuse<B>(&self, request: &http::Request<B>) -> Option<Status> {
        let limiter = self.limiter.as_ref()?;
        access::required(request.uri().path())?;
        if let Some(Principal {
            caller: Caller::Service { .. },
            ..
        }) = request.extensions().get::<Principal>()
        {
            return None;
        }
        let tenant = request
            .headers()
            .get(TENANT_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        let Err(not_until) = limiter.check_key(&tenant.to_owned()) else {
            return None;
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let details = ErrorDetails::with_retry_info(Some(wait));
        Some(Status::with_error_details(
            Code::ResourceExhausted,
            format!(
                "tenant {tenant:?} is over its {} calls per second: retry in {} ms",
                self.per_second,
                wait.as_millis().max(1)
            ),
            details,
        ))
    }
}

impl<S, B, R> Service<http::Request<B>> for TenantRate<S>
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
        let refusal = self.layer.refuse(&request);
        let inner = self.inner.clone();
        Box::pin(async move {
            match refusal {
                Some(status) => Ok(status.into_http()),
                None => inner.oneshot(request).await.map_err(Into::into),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer, ServiceExt};

    use super::*;

    fn request(path: &str, tenant: &str) -> http::Request<()> {
        let mut request = http::Request::builder()
            .uri(path)
            .body(())
            .unwrap_or_default();
        if let Ok(value) = tenant.parse() {
            request.headers_mut().insert(TENANT_HEADER, value);
        }
        request
    }

    fn status(response: &http::Response<String>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
    }

    #[tokio::test]
    async fn a_tenants_burst_past_its_rate_is_refused_and_others_go_on() {
        let inner = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
        let service = TenantRateLayer::new(5, 5).layer(inner);
        let path = "/rebalancer.target.v1.PortfolioService/ListPortfolios";
        let mut refused = 0;
        for _ in 0..20 {
            let answer = service
                .clone()
                .oneshot(request(path, "firm-a"))
                .await
                .expect("answered");
            if status(&answer) == Some("8") {
                refused += 1;
            }
        }
        assert!((14..=15).contains(&refused), "refused {refused} of 20");
        let other = service
            .clone()
            .oneshot(request(path, "firm-b"))
            .await
            .expect("answered");
        assert_eq!(status(&other), None, "firm-b has its own bucket");
        let health = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check", "firm-a"))
            .await
            .expect("answered");
        assert_eq!(status(&health), None, "health is not counted");
        let mut from_service = request(path, "firm-a");
        from_service.extensions_mut().insert(Principal {
            tenant: "firm-a".to_owned(),
            actor: "monitor on behalf of tenant firm-a".to_owned(),
            caller: Caller::Service {
                name: "monitor".to_owned(),
            },
        });
        let internal = service
            .clone()
            .oneshot(from_service)
            .await
            .expect("answered");
        assert_eq!(
            status(&internal),
            None,
            "the services' own calls are not counted"
        );
    }
}

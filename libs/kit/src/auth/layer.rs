//! The tower layer that authenticates and authorizes every call before any
//! handler runs: public paths (health, reflection) pass; every other call
//! gets a [`Principal`] or `UNAUTHENTICATED`, then the permission its RPC
//! requires (`rebalancer_proto::access::RPCS`) or `PERMISSION_DENIED` naming
//! the missing permission. The verified tenant and actor replace the
//! `x-tenant-id` and `x-actor` the caller sent, so the layers and handlers
//! after it (the per-tenant limit, audit trails) see only verified values.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use rebalancer_proto::access;
use rebalancer_proto::client::{ACTOR_HEADER, TENANT_HEADER};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{BoxError, Layer, Service, ServiceExt};

use super::{Authenticator, Principal};

/// Applies an [`Authenticator`] and the permission table to every call.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    #[must_use]
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Authenticator,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for AuthService<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let path = request.uri().path().to_owned();
        let Some(required) = access::required(&path) else {
            return Box::pin(async move { inner.oneshot(request).await.map_err(Into::into) });
        };
        let auth = self.auth.clone();
        // The request's span (the trace layer runs outside this one).
        let span = tracing::Span::current();
        Box::pin(async move {
            let principal = match auth.authenticate(request.headers()).await {
                Ok(principal) => principal,
                Err(status) => return Ok(status.into_http()),
            };
            span.record("tenant", principal.tenant.as_str());
            span.record("actor", principal.actor.as_str());
            if let Some(permission) = required
                && !principal.may(permission)
            {
                return Ok(denied(&path, permission, &principal).into_http());
            }
            let headers = request.headers_mut();
            headers.insert(TENANT_HEADER, header_value(&principal.tenant));
            headers.insert(ACTOR_HEADER, header_value(&principal.actor));
            request.extensions_mut().insert(principal);
            inner.oneshot(request).await.map_err(Into::into)
        })
    }
}

/// Header values are ASCII; a subject that is not is sent percent-free as `?`.
fn header_value(text: &str) -> HeaderValue {
    let ascii: String = text
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&ascii).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

fn denied(path: &str, permission: access::Permission, principal: &Principal) -> Status {
    let method = path.rsplit('/').next().unwrap_or(path);
    let message = format!(
        "{method} requires the {permission} permission, which {} does not grant",
        principal.roles_text()
    );
    let details = ErrorDetails::with_error_info(
        "MISSING_PERMISSION",
        "rebalancer",
        [
            ("permission".to_owned(), permission.name().to_owned()),
            ("method".to_owned(), path.to_owned()),
        ],
    );
    Status::with_error_details(Code::PermissionDenied, message, details)
}

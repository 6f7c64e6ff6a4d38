//! Who a request is for: the tenant (an advisor firm or platform client) every
//! resource belongs to, the actor (person or system) and the request id. Taken
//! from request metadata; real authentication will fill the same slot.

use std::task::{Context, Poll};

use http::HeaderValue;
use rebalancer_proto::client::{ACTOR_HEADER, CallContext, REQUEST_ID_HEADER, TENANT_HEADER};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tower::{Layer, Service};

/// Longest tenant id.
const MAX_TENANT_LEN: usize = 64;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub tenant: String,
    /// `x-actor`, or "anonymous".
    pub actor: String,
    pub request_id: Option<String>,
}

impl RequestContext {
    /// Reads the context from a request's metadata.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the tenant is missing or malformed.
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Self, Status> {
        let tenant = metadata
            .get(TENANT_HEADER)
            .ok_or_else(|| Status::unauthenticated("missing x-tenant-id metadata"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("x-tenant-id is not ASCII"))?;
        if let Some(problem) = tenant_problem(tenant) {
            return Err(Status::unauthenticated(format!("x-tenant-id {problem}")));
        }
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .map(|value| value.chars().take(200).collect::<String>())
        };
        Ok(Self {
            tenant: tenant.to_owned(),
            actor: text(ACTOR_HEADER).unwrap_or_else(|| "anonymous".to_owned()),
            request_id: text(REQUEST_ID_HEADER),
        })
    }

    /// Reads the context of a tonic request.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the tenant is missing or malformed.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        Self::from_metadata(request.metadata())
    }

    /// A context for work the system does on its own (schedules, workers).
    #[must_use]
    pub fn system(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            actor: "system".to_owned(),
            request_id: None,
        }
    }

    /// The same caller, for a call to another service.
    #[must_use]
    pub fn call(&self) -> CallContext {
        CallContext {
            tenant: self.tenant.clone(),
            actor: Some(self.actor.clone()),
            request_id: self.request_id.clone(),
        }
    }
}

/// Why a tenant id is refused, if it is.
#[must_use]
pub fn tenant_problem(tenant: &str) -> Option<&'static str> {
    if tenant.is_empty() {
        return Some("is empty");
    }
    if tenant.len() > MAX_TENANT_LEN {
        return Some("is longer than 64 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !tenant.chars().all(allowed) {
        return Some("may contain only letters, digits and - _ .");
    }
    None
}

/// Inserts a default tenant into requests that carry none (the dev stack, so
/// grpcurl sessions stay short). Without a default it does nothing and such
/// requests are refused by the handlers.
#[derive(Debug, Clone)]
pub struct DefaultTenantLayer {
    tenant: Option<HeaderValue>,
}

impl DefaultTenantLayer {
    /// # Errors
    /// When the tenant id is malformed.
    pub fn new(tenant: Option<&str>) -> anyhow::Result<Self> {
        let tenant = match tenant {
            Some(tenant) => {
                if let Some(problem) = tenant_problem(tenant) {
                    anyhow::bail!("default tenant {tenant:?} {problem}");
                }
                Some(HeaderValue::from_str(tenant)?)
            }
            None => None,
        };
        Ok(Self { tenant })
    }
}

impl<S> Layer<S> for DefaultTenantLayer {
    type Service = DefaultTenant<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DefaultTenant {
            inner,
            tenant: self.tenant.clone(),
        }
    }
}

/// Service produced by [`DefaultTenantLayer`].
#[derive(Debug, Clone)]
pub struct DefaultTenant<S> {
    inner: S,
    tenant: Option<HeaderValue>,
}

impl<S, B> Service<http::Request<B>> for DefaultTenant<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(tenant) = &self.tenant
            && !request.headers().contains_key(TENANT_HEADER)
        {
            request.headers_mut().insert(TENANT_HEADER, tenant.clone());
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tenant_is_unauthenticated() {
        let metadata = MetadataMap::new();
        let status = RequestContext::from_metadata(&metadata).expect_err("must fail");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn reads_tenant_actor_and_request_id() {
        let mut metadata = MetadataMap::new();
        metadata.insert(TENANT_HEADER, "firm-a".parse().expect("ascii"));
        metadata.insert(ACTOR_HEADER, "advisor@firm-a".parse().expect("ascii"));
        let context = RequestContext::from_metadata(&metadata).expect("valid");
        assert_eq!(context.tenant, "firm-a");
        assert_eq!(context.actor, "advisor@firm-a");
        assert_eq!(context.request_id, None);
    }

    #[test]
    fn malformed_tenant_is_refused() {
        let mut metadata = MetadataMap::new();
        metadata.insert(TENANT_HEADER, "firm a".parse().expect("ascii"));
        assert!(RequestContext::from_metadata(&metadata).is_err());
    }
}

//! Who a request is for: the tenant (an advisor firm or platform client) every
//! resource belongs to, the actor (person or system) and the request id.
//! Taken from the [`Principal`] the auth layer verified; a request that did
//! not pass through it (a handler called directly in a test) falls back to
//! its metadata.

use rebalancer_proto::client::{ACTOR_HEADER, CallContext, REQUEST_ID_HEADER, TENANT_HEADER};
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::auth::Principal;

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
        let Some(principal) = request.extensions().get::<Principal>() else {
            return Self::from_metadata(request.metadata());
        };
        let request_id = request
            .metadata()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .map(str::to_owned);
        Ok(Self {
            tenant: principal.tenant.clone(),
            actor: principal.actor.clone(),
            request_id,
        })
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
            token: None,
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

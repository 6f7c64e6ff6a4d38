//! The Monitor service's errors and their gRPC statuses.

use rebalancer_domain::Violations;
use tonic::Status;

use crate::store::StoreError;

/// Everything a Monitor operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{0}")]
    NotFound(String),
    /// A service this one depends on failed.
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failure")]
    Store(#[source] StoreError),
}

impl From<StoreError> for MonitorError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::IdempotencyMismatch => Self::Invalid(Violations::one(
                "idempotency_key",
                "was already used for a different request",
            )),
            other => Self::Store(other),
        }
    }
}

impl From<Violations> for MonitorError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<MonitorError> for Status {
    fn from(error: MonitorError) -> Self {
        match error {
            MonitorError::Invalid(violations) => {
                rebalancer_kit::error::invalid_argument(&violations)
            }
            MonitorError::NotFound(message) => Status::not_found(message),
            MonitorError::Unavailable(message) => Status::unavailable(message),
            error @ MonitorError::Store(_) => rebalancer_kit::error::internal(&error),
        }
    }
}

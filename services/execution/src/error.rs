//! The Execution service's errors and their gRPC statuses.

use rebalancer_domain::Violations;
use tonic::Status;

use crate::store::StoreError;

/// Everything an Execution operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// Bad input; nothing was changed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Valid, but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Optimistic concurrency: the etag no longer matches.
    #[error("{0}")]
    Aborted(String),
    /// A service this one depends on failed.
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failure")]
    Store(#[source] StoreError),
}

impl From<StoreError> for ExecutionError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::AlreadyExists(message),
            StoreError::StaleRevision(message) => Self::Aborted(message),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::FailedPrecondition(message) => Self::FailedPrecondition(message),
            StoreError::IdempotencyMismatch => Self::Invalid(Violations::one(
                "idempotency_key",
                "was already used for a different request",
            )),
            other => Self::Store(other),
        }
    }
}

impl From<Violations> for ExecutionError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<ExecutionError> for Status {
    fn from(error: ExecutionError) -> Self {
        match error {
            ExecutionError::Invalid(violations) => {
                rebalancer_kit::error::invalid_argument(&violations)
            }
            ExecutionError::NotFound(message) => Status::not_found(message),
            ExecutionError::AlreadyExists(message) => Status::already_exists(message),
            ExecutionError::FailedPrecondition(message) => Status::failed_precondition(message),
            ExecutionError::Aborted(message) => Status::aborted(message),
            ExecutionError::Unavailable(message) => Status::unavailable(message),
            error @ ExecutionError::Store(_) => rebalancer_kit::error::internal(&error),
        }
    }
}

//! The Target service's errors and their gRPC statuses.

use rebalancer_domain::Violations;
use tonic::Status;

use crate::store::StoreError;

/// Everything a Target operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Bad input; nothing was changed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the current state forbids it.
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

impl From<StoreError> for TargetError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::AlreadyExists(message),
            StoreError::StaleRevision(message) => Self::Aborted(message),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::IdempotencyMismatch => Self::Invalid(Violations::one(
                "idempotency_key",
                "was already used for a different request",
            )),
            other => Self::Store(other),
        }
    }
}

impl From<Violations> for TargetError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<TargetError> for Status {
    fn from(error: TargetError) -> Self {
        match error {
            TargetError::Invalid(violations) => {
                rebalancer_kit::error::invalid_argument(&violations)
            }
            TargetError::NotFound(message) => Status::not_found(message),
            TargetError::AlreadyExists(message) => Status::already_exists(message),
            TargetError::FailedPrecondition(message) => Status::failed_precondition(message),
            TargetError::Aborted(message) => Status::aborted(message),
            TargetError::Unavailable(message) => Status::unavailable(message),
            error @ TargetError::Store(_) => rebalancer_kit::error::internal(&error),
        }
    }
}

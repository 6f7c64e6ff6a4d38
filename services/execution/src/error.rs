//! The Execution service's errors: the shared taxonomy of
//! [`rebalancer_kit::error`], under the name the service's code uses, and the
//! bridge from this service's own `StoreError` into it.

pub use rebalancer_kit::error::ServiceError as ExecutionError;

use crate::store::StoreError;

/// The Execution store still declares its own `StoreError` (its
/// `From<ClaimError>` lives in `store/sql/mod.rs`, which the orphan rule
/// forbids for the shared type); it converts variant for variant into the
/// shared one, so a client sees the statuses of the shared mapping.
impl From<StoreError> for rebalancer_kit::error::StoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::StaleRevision(message) => Self::StaleRevision(message),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::FailedPrecondition(message) => Self::FailedPrecondition(message),
            StoreError::IdempotencyMismatch => Self::IdempotencyMismatch,
            StoreError::Database(error) => Self::Database(error),
            StoreError::Corrupt(message) => Self::Corrupt(message),
        }
    }
}

impl From<StoreError> for ExecutionError {
    fn from(error: StoreError) -> Self {
        rebalancer_kit::error::StoreError::from(error).into()
    }
}

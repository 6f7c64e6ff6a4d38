//! The Execution service's errors: the shared taxonomy of
//! [`rebalancer_kit::error`], under the name the service's code uses.

pub use rebalancer_kit::error::ServiceError as ExecutionError;

//! The gRPC face of the Execution service: [`ExecutionApi`] implements its
//! five gRPC services, one feature folder each (`book/grpc.rs`,
//! `market/grpc.rs`, `runs/grpc.rs` and `runs/grpc_batches.rs`,
//! `blocks/grpc.rs`): read the request context, convert wire types, call
//! [`Execution`], convert back.

use rebalancer_kit::error::invalid_field;
use tonic::Status;

use crate::Execution;

pub(crate) fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field, "is required"));
    }
    Ok(())
}

/// The handlers, sharing the service's state.
#[derive(Debug, Clone)]
pub struct ExecutionApi {
    pub(crate) execution: Execution,
}

impl ExecutionApi {
    #[must_use]
    pub fn new(execution: Execution) -> Self {
        Self { execution }
    }
}

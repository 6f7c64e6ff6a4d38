//! The gRPC face of the Execution service: [`ExecutionApi`] implements its
//! five gRPC services, one feature folder each (`book/grpc.rs`,
//! `market/grpc.rs`, `runs/grpc.rs` and `runs/grpc_batches.rs`,
//! `blocks/grpc.rs`): read the request context, convert wire types, call
//! [`Execution`], convert back.

use crate::Execution;

pub(crate) use rebalancer_kit::wire::required;

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

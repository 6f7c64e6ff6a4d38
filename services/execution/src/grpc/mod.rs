//! gRPC handlers of the Execution service's five gRPC services: read the
//! request context, convert wire types, call [`Execution`], convert back.

mod accounts;
mod batches;
mod market_data;
mod orders;
mod runs;

use rebalancer_kit::error::invalid_field;
use tonic::Status;

use crate::app::Execution;

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field, "is required"));
    }
    Ok(())
}

/// The handlers, sharing the service's state.
#[derive(Debug, Clone)]
pub struct ExecutionApi {
    execution: Execution,
}

impl ExecutionApi {
    #[must_use]
    pub fn new(execution: Execution) -> Self {
        Self { execution }
    }
}

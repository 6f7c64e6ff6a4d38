//! gRPC handlers: read the request context, convert wire types, call
//! [`Target`](crate::app::Target), convert back.

mod assignments;
mod portfolios;

pub use assignments::AssignmentApi;
pub use portfolios::PortfolioApi;

use rebalancer_kit::error::invalid_field;
use tonic::Status;

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field, "is required"));
    }
    Ok(())
}

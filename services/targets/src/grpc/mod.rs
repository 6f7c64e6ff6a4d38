//! gRPC handlers: read the request context, convert wire types, call
//! [`Target`](crate::app::Target), convert back.

mod assignments;
mod events;
mod portfolios;
mod tenants;

pub use assignments::AssignmentApi;
pub use events::EventExportApi;
pub use portfolios::PortfolioApi;
pub use tenants::TenantApi;

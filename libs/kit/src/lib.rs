//! Shared plumbing of the Rebalancer services. Everything a service needs that
//! is not its own business: typed config, telemetry, the gRPC server with
//! health, reflection, limits and graceful shutdown, request context and
//! tenancy, error mapping to `tonic::Status`, database pools and migrations,
//! page tokens, idempotency fingerprints and injectable clocks.

pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod page;
pub mod server;
pub mod telemetry;
pub mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, SimClock, SystemClock};
pub use context::RequestContext;
pub use rebalancer_kit_macros::sql_store;

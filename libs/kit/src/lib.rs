//! Shared plumbing of the Rebalancer services. Everything a service needs that
//! is not its own business: typed config, telemetry, the gRPC server with
//! health, reflection, limits and graceful shutdown, request context and
//! tenancy, the one error taxonomy and its mapping to `tonic::Status`,
//! database pools and migrations, request field checks, pages and page
//! tokens, idempotency fingerprints, injectable clocks, and (feature
//! `testing`) the store conformance runner.
//!
//! No business rules live here (they are `rebalancer_domain`'s), and nothing
//! here knows one service from another.

pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod rate;
pub mod request_id;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod wire;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

// The store macros name `::rebalancer_kit`; this lets kit's own store code use them.
extern crate self as rebalancer_kit;

pub use auth::{Authenticator, Principal};
pub use clock::{Clock, SimClock, SystemClock};
pub use context::RequestContext;
pub use error::{ServiceError, StoreError};
pub use rebalancer_domain::text_enum;
pub use rebalancer_kit_macros::{sql_row, sql_store};

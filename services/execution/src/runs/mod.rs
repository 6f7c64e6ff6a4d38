//! Runs and batches: planning trades for an account from the book, market
//! data and its target; preview, edit, approve, cancel, watch; batches that
//! transmit many runs at once. Every change of a run's status goes through
//! `rebalancer_domain::run::RunStatus`'s transition rules. Runs hand their
//! orders to `blocks/` when transmitted; they never call the broker.

mod app;
mod batches;
mod checks;
pub mod convert;
mod four_eyes;
mod grpc;
mod grpc_batches;
mod households;
mod plan;
pub(crate) mod sql;
mod sql_batches;
pub mod store;
mod targets;
mod tax;

pub use app::{OrderAdjustmentInput, RunSpecInput};
pub use batches::{BatchInput, BatchView, TickerTotal};

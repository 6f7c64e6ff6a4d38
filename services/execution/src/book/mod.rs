//! The account book: accounts (cash, positions with average cost,
//! restrictions), deposits and withdrawals, and the holdings the Monitor
//! streams. Fills are booked to accounts here ([`sql_booking`]) and nowhere
//! else. The book decides what an account holds; it does not plan trades
//! (`runs/`) or talk to the broker (`broker/`).

mod app;
pub mod app_households;
pub mod convert;
mod grpc;
mod grpc_households;
pub mod households;
mod reconcile;
pub mod reconcile_store;
mod sql_accounts;
mod sql_booking;
mod sql_cash;
mod sql_households;
mod sql_lots;
mod sql_reconcile;
mod sql_splits;
pub mod store;

pub use app::{AccountView, HoldingsView, PositionInput, YearGains, parse_etag};
pub(crate) use sql_lots::OPENING_LOT;

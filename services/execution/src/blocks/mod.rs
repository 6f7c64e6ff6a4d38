//! Block orders: the orders of transmitted runs grouped per symbol and side,
//! worked slice by slice (market, TWAP, VWAP) through the [`Broker`] port,
//! fills allocated back to account orders and booked through the book, runs
//! completed. The worker is split into pure decisions (`decide.rs`) and the
//! steps that carry them out (`worker.rs`: transmissions, blocks, runs;
//! `slices.rs`: one slice through the broker). Nothing here knows which broker
//! or market-data adapter is plugged in.
//!
//! [`Broker`]: crate::broker::Broker

mod app;
pub mod convert;
mod decide;
mod fit;
mod grpc;
mod metrics;
mod slices;
pub(crate) mod sql;
mod sql_reads;
mod sql_room;
pub(crate) mod sql_rows;
mod sql_settle;
pub mod store;
mod worker;

pub use app::BlockView;

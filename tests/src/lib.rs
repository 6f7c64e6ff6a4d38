//! Harness of the cross-service tests: the whole system started in-process on
//! a free port (SQLite or a fresh PostgreSQL database per service), typed
//! clients for each gRPC service, and the way to find and start the real
//! `rebalancer` binary.

pub mod bench;
pub mod binary;
pub mod book_model;
pub mod stack;

pub use stack::{Backend, StackOptions, TestStack};

//! Harness of the cross-service tests: the whole system started in-process on
//! a free port (SQLite or a fresh PostgreSQL database per service), typed
//! clients for each gRPC service, and the way to find and start the real
//! `rebalancer` binary.

pub mod bench;
pub mod binary;
pub mod book_model;
pub mod fix_acceptor;
pub mod market;
pub mod pki;
pub mod process;
pub mod stack;

pub use stack::{Backend, StackOptions, TestStack};

/// The fields of an `INVALID_ARGUMENT` status's `BadRequest` violations, in order.
///
/// # Panics
/// When the status is not `INVALID_ARGUMENT`.
#[must_use]
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A target weight: cash when `symbol` is empty, else the asset.
#[must_use]
pub fn weight(symbol: &str, percent: &str) -> rebalancer_proto::common::Weight {
    use rebalancer_proto::common::{Weight, WeightType};
    Weight {
        r#type: if symbol.is_empty() {
            WeightType::Cash
        } else {
            WeightType::Asset
        }
        .into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

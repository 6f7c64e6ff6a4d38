//! The Rebalancer wire contracts: generated clients and servers of every
//! service in `proto/`, the encoded descriptor set for server reflection, and
//! [`client`], a ready-made channel with timeouts and trace propagation.
//!
//! `tonic` and `prost` are re-exported so every crate of the workspace builds
//! against the same versions.
//!
//! Generated code only, plus the client channel: no service logic.

pub use prost;
pub use prost_types;
pub use tonic;

pub mod access;
pub mod client;

/// Generated code, one module per protobuf package.
#[allow(clippy::all, reason = "generated code; lints may or may not fire")]
pub mod rebalancer {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("rebalancer.common.v1");
        }
    }
    pub mod target {
        pub mod v1 {
            tonic::include_proto!("rebalancer.target.v1");
        }
    }
    pub mod monitor {
        pub mod v1 {
            tonic::include_proto!("rebalancer.monitor.v1");
        }
    }
    pub mod execution {
        pub mod v1 {
            tonic::include_proto!("rebalancer.execution.v1");
        }
    }
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("rebalancer.events.v1");
        }
    }
}

pub use rebalancer::common::v1 as common;
pub use rebalancer::events::v1 as events;
pub use rebalancer::execution::v1 as execution;
pub use rebalancer::monitor::v1 as monitor;
pub use rebalancer::target::v1 as target;

/// Encoded `FileDescriptorSet` of every file in `proto/` (with imports), for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rebalancer_descriptor.bin"));

/// Fully qualified names of the twelve services, as health checks and
/// reflection list them.
pub mod service_names {
    pub const PORTFOLIO: &str = "rebalancer.target.v1.PortfolioService";
    pub const ASSIGNMENT: &str = "rebalancer.target.v1.AssignmentService";
    pub const TENANT: &str = "rebalancer.target.v1.TenantService";
    pub const MONITOR: &str = "rebalancer.monitor.v1.MonitorService";
    pub const ACCOUNT: &str = "rebalancer.execution.v1.AccountService";
    pub const MARKET_DATA: &str = "rebalancer.execution.v1.MarketDataService";
    pub const RUN: &str = "rebalancer.execution.v1.RunService";
    pub const BATCH: &str = "rebalancer.execution.v1.BatchService";
    pub const ORDER: &str = "rebalancer.execution.v1.OrderService";
    pub const EVENTS: &str = "rebalancer.events.v1.EventService";
    pub const TARGET_EVENT_EXPORT: &str = "rebalancer.target.v1.EventExportService";
    pub const MONITOR_EVENT_EXPORT: &str = "rebalancer.monitor.v1.EventExportService";

    pub const TARGET_SERVICES: &[&str] = &[PORTFOLIO, ASSIGNMENT, TENANT, TARGET_EVENT_EXPORT];
    pub const MONITOR_SERVICES: &[&str] = &[MONITOR, MONITOR_EVENT_EXPORT];
    pub const EXECUTION_SERVICES: &[&str] = &[ACCOUNT, MARKET_DATA, RUN, BATCH, ORDER, EVENTS];
}

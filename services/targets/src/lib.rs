//! The Target service: the system of record for what each account should look
//! like. Model portfolios (versioned weights and rebalance conditions, sleeves,
//! minimums) and the assignment of accounts to them.
//!
//! A library with one entry point, [`TargetService`]: open it on a database,
//! then mount its [`routes`](TargetService::routes) on a server.
//!
//! It owns portfolios, their versions and assignments; it never reads an
//! account's holdings or market data except through Execution's gRPC
//! services, and it never trades.

pub mod app;
pub mod convert;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::events::EventLog;
use rebalancer_kit::server::MessageLimits;
use rebalancer_proto::client::TracedChannel;
use rebalancer_proto::target::assignment_service_server::AssignmentServiceServer;
use rebalancer_proto::target::event_export_service_server::EventExportServiceServer;
use rebalancer_proto::target::portfolio_service_server::PortfolioServiceServer;
use rebalancer_proto::target::tenant_service_server::TenantServiceServer;
use tonic::service::RoutesBuilder;

pub use app::Target;
pub use error::TargetError;

/// This service's database, as metrics name it.
const DATABASE: &str = "target";

/// Names of this service's gRPC services, for health checks.
pub const SERVICE_NAMES: &[&str] = rebalancer_proto::service_names::TARGET_SERVICES;

/// What the Target service depends on besides its database.
#[derive(Debug, Clone)]
pub struct TargetDeps {
    pub clock: Arc<dyn Clock>,
    /// The Execution service: market data for symbol checks, account values for minimums.
    pub execution: Option<TracedChannel>,
}

/// The Target service, ready to mount on a server.
#[derive(Debug, Clone)]
pub struct TargetService {
    target: Target,
    /// Changes of its objects, recorded by its database's triggers.
    events: EventLog,
}

impl TargetService {
    /// Opens the database at `url`, applying migrations.
    ///
    /// # Errors
    /// When the database is unreachable or a migration fails.
    pub async fn open(
        url: &DatabaseUrl,
        pool: &PoolOptions,
        deps: TargetDeps,
    ) -> anyhow::Result<Self> {
        let (store, events) = store::open_with_events(url, pool).await?;
        let events = EventLog::new(events, deps.clock.clone(), DATABASE);
        Ok(Self {
            events,
            target: Target::new(store, deps.clock, deps.execution),
        })
    }

    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    #[must_use]
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Adds the gRPC services, with message size limits, to `routes`.
    pub fn register(&self, routes: &mut RoutesBuilder, limits: MessageLimits) {
        let portfolios = PortfolioServiceServer::new(grpc::PortfolioApi::new(self.target.clone()))
            .max_decoding_message_size(limits.max_bytes)
            .max_encoding_message_size(limits.max_bytes);
        let assignments =
            AssignmentServiceServer::new(grpc::AssignmentApi::new(self.target.clone()))
                .max_decoding_message_size(limits.max_bytes)
                .max_encoding_message_size(limits.max_bytes);
        let tenants = TenantServiceServer::new(grpc::TenantApi::new(self.target.clone()))
            .max_decoding_message_size(limits.max_bytes)
            .max_encoding_message_size(limits.max_bytes);
        let export = EventExportServiceServer::new(grpc::EventExportApi::new(self.events.clone()))
            .max_decoding_message_size(limits.max_bytes)
            .max_encoding_message_size(limits.max_bytes);
        routes
            .add_service(portfolios)
            .add_service(assignments)
            .add_service(tenants)
            .add_service(export);
    }
}

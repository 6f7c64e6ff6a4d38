//! The Monitor service: every trading day, evaluates every assigned account
//! against its target, flags it and opens runs; on demand, shows drift per
//! account and ticker (the Rebalance Center) and backtests a policy.
//!
//! A library with one entry point, [`MonitorService`]: open it on a
//! database, mount it on a server, start its worker.
//!
//! It owns cycles, evaluations and flags; it reads targets only through
//! Target's `AssignmentService` and holdings and prices only through
//! Execution's `AccountService`/`MarketDataService`, and never plans or
//! places a trade itself: it asks Execution for runs.

pub mod app;
pub mod convert;
pub mod error;
pub mod events;
pub mod grpc;
pub mod simulate;
pub mod store;

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::events::EventLog;
use rebalancer_kit::server::MessageLimits;
use rebalancer_proto::client::TracedChannel;
use rebalancer_proto::monitor::event_export_service_server::EventExportServiceServer;
use rebalancer_proto::monitor::monitor_service_server::MonitorServiceServer;
use tonic::service::RoutesBuilder;

pub use app::{Monitor, MonitorConfig};
pub use error::MonitorError;

/// This service's database, as metrics name it.
const DATABASE: &str = "monitor";

/// Names of this service's gRPC services, for health checks.
pub const SERVICE_NAMES: &[&str] = rebalancer_proto::service_names::MONITOR_SERVICES;

/// What the Monitor service depends on besides its database.
#[derive(Debug, Clone)]
pub struct MonitorDeps {
    pub clock: Arc<dyn Clock>,
    /// The Target service: assignments with resolved targets.
    pub target: TracedChannel,
    /// The Execution service: holdings, quotes, runs.
    pub execution: TracedChannel,
    pub config: MonitorConfig,
}

/// The Monitor service, ready to mount on a server.
#[derive(Debug, Clone)]
pub struct MonitorService {
    monitor: Monitor,
    /// Changes of its objects, recorded by its database's triggers.
    events: EventLog,
}

impl MonitorService {
    /// Opens the database at `url`, applying migrations.
    ///
    /// # Errors
    /// When the database is unreachable or a migration fails.
    pub async fn open(
        url: &DatabaseUrl,
        pool: &PoolOptions,
        deps: MonitorDeps,
    ) -> anyhow::Result<Self> {
        let (store, events) = store::open_with_events(url, pool).await?;
        let events = EventLog::new(events, deps.clock.clone(), DATABASE);
        Ok(Self {
            events,
            monitor: Monitor::new(store, deps.clock, deps.target, deps.execution, deps.config),
        })
    }

    #[must_use]
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    #[must_use]
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Starts the scheduler and shard worker until `shutdown`; `owner` names
    /// this replica in shard leases.
    #[must_use]
    pub fn start_worker(
        &self,
        owner: String,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.monitor.clone().run(owner, shutdown))
    }

    /// Adds the gRPC services, with message size limits, to `routes`.
    pub fn register(&self, routes: &mut RoutesBuilder, limits: MessageLimits) {
        routes
            .add_service(
                MonitorServiceServer::new(grpc::MonitorApi::new(self.monitor.clone()))
                    .max_decoding_message_size(limits.max_bytes)
                    .max_encoding_message_size(limits.max_bytes),
            )
            .add_service(
                EventExportServiceServer::new(events::EventExportApi::new(self.events.clone()))
                    .max_decoding_message_size(limits.max_bytes)
                    .max_encoding_message_size(limits.max_bytes),
            );
    }
}

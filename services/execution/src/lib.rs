//! The Execution service: where the money moves. One folder per subject,
//! each with its operations (`app.rs`), gRPC handlers (`grpc.rs`), wire
//! conversions (`convert.rs`), storage trait (`store.rs`) and SQL (`sql*.rs`):
//!
//! - [`book`]: accounts, positions, cash movements, restrictions; fills are
//!   booked to accounts here and nowhere else.
//! - [`market`]: assets, quotes, calendar and volume profiles behind the
//!   [`market::MarketData`] port (the simulated market is one adapter).
//! - [`broker`]: the [`broker::Broker`] port (submit, cancel, status, reports,
//!   holdings) and its adapters (the paper broker), chosen by
//!   [`broker::BrokerConfig`].
//! - [`runs`]: planning, preview, edit, approve, cancel, batches; every run
//!   status change is checked against `rebalancer_domain::run::RunStatus`.
//! - [`blocks`]: block orders, slices, child orders, fills and allocations;
//!   the worker's pure decisions apart from the steps that carry them out.
//!
//! A library with one entry point, [`ExecutionService`]: open it on a
//! database with its [`ExecutionDeps`], then mount its routes on a server.
//!
//! It owns the book, runs and orders; it reads targets only through Target's
//! gRPC services and never evaluates drift on a schedule (that is the
//! Monitor's).

pub mod blocks;
pub mod book;
pub mod broker;
pub mod error;
pub mod events;
mod execution;
pub mod grpc;
pub mod market;
pub mod runs;
pub mod store;

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::events::{EventLog, Gatherer};
use rebalancer_kit::server::MessageLimits;
use rebalancer_proto::client::TracedChannel;
use rebalancer_proto::events::event_service_server::EventServiceServer;
use rebalancer_proto::execution::account_service_server::AccountServiceServer;
use rebalancer_proto::execution::batch_service_server::BatchServiceServer;
use rebalancer_proto::execution::market_data_service_server::MarketDataServiceServer;
use rebalancer_proto::execution::order_service_server::OrderServiceServer;
use rebalancer_proto::execution::run_service_server::RunServiceServer;
use tonic::service::RoutesBuilder;

use crate::broker::BrokerConfig;
pub use crate::error::ExecutionError;
pub use crate::execution::Execution;
use crate::market::{MarketData, MasterMarketData};

/// This service's database, as metrics name it.
const DATABASE: &str = "execution";

/// Names of this service's gRPC services, for health checks.
pub const SERVICE_NAMES: &[&str] = rebalancer_proto::service_names::EXECUTION_SERVICES;

/// Quotes older than this are not used by default: covers end-of-day prices
/// over a long weekend.
pub const DEFAULT_MAX_QUOTE_AGE: chrono::Duration = chrono::Duration::hours(96);

/// What the Execution service depends on besides its database.
#[derive(Debug, Clone)]
pub struct ExecutionDeps {
    pub clock: Arc<dyn Clock>,
    /// The live market data feed (the simulated market by default), under
    /// the platform's asset master and uploaded quotes; `None` for the
    /// platform's data alone.
    pub market: Option<Arc<dyn MarketData>>,
    /// Quotes older than this are not used to value or plan.
    pub max_quote_age: chrono::Duration,
    /// The broker child orders go to (the paper broker by default).
    pub broker: BrokerConfig,
    /// The Target service.
    pub target: Option<TracedChannel>,
    /// The Monitor service (its events are gathered into the tenant's stream).
    pub monitor: Option<TracedChannel>,
}

/// The Execution service, ready to mount on a server.
#[derive(Debug, Clone)]
pub struct ExecutionService {
    execution: Execution,
    /// Changes of its objects, and those gathered from the other services.
    events: EventLog,
    /// Copies the Target's and the Monitor's events into `events`.
    gatherer: Arc<Gatherer>,
}

impl ExecutionService {
    /// Opens the database at `url`, applying migrations.
    ///
    /// # Errors
    /// When the database is unreachable or a migration fails.
    pub async fn open(
        url: &DatabaseUrl,
        pool: &PoolOptions,
        deps: ExecutionDeps,
    ) -> anyhow::Result<Self> {
        let (store, events) = store::open_with_events(url, pool).await?;
        let events = EventLog::new(events, deps.clock.clone(), DATABASE);
        let gatherer = Arc::new(Gatherer::new(
            events.clone(),
            events::sources(deps.target.as_ref(), deps.monitor.as_ref()),
        ));
        let master = Arc::new(
            MasterMarketData::open(
                store.clone(),
                deps.market,
                deps.clock.clone(),
                deps.max_quote_age,
            )
            .await?,
        );
        let brokers = broker::connect(
            deps.broker,
            store.clone(),
            master.clone(),
            deps.clock.clone(),
        )
        .await?;
        Ok(Self {
            execution: Execution::new(store, deps.clock, master, brokers, deps.target),
            events,
            gatherer,
        })
    }

    #[must_use]
    pub fn execution(&self) -> &Execution {
        &self.execution
    }

    #[must_use]
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Copies what the Target and the Monitor recorded since the last pass
    /// into this service's stream (the worker does it every 500 ms).
    ///
    /// # Errors
    /// When a peer or the database fails.
    pub async fn gather_events(&self) -> anyhow::Result<u64> {
        self.gatherer.gather().await
    }

    /// Starts gathering the other services' events until `shutdown`.
    #[must_use]
    pub fn start_gatherer(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.gatherer.clone().run(shutdown))
    }

    /// The readiness check of the live broker's session (the FIX session
    /// logged on), when the service has a live broker: the `OrderService`
    /// entry answers `NOT_SERVING` while orders cannot reach the broker. The
    /// other entries (and the Kubernetes readiness probe, on `RunService`)
    /// follow the database only: every replica shares the broker, so taking
    /// them out of routing would stop reads and cash movements and cure
    /// nothing (the session is also down outside its schedule).
    #[must_use]
    pub fn broker_readiness(&self) -> Option<rebalancer_kit::health::ReadinessCheck> {
        let (name, broker) = self.execution.brokers.live_broker()?;
        Some(rebalancer_kit::health::ReadinessCheck::custom(
            format!("execution broker ({name})"),
            &[rebalancer_proto::service_names::ORDER],
            move || {
                let ready = broker.session_ready();
                async move { ready }
            },
        ))
    }

    /// Starts the execution worker (transmissions, slices, run completion)
    /// until `shutdown`; `owner` names this replica in slice leases.
    #[must_use]
    pub fn start_worker(
        &self,
        owner: String,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.execution.clone().run_worker(owner, shutdown))
    }

    /// Adds the gRPC services, with message size limits, to `routes`.
    pub fn register(&self, routes: &mut RoutesBuilder, limits: MessageLimits) {
        let api = grpc::ExecutionApi::new(self.execution.clone());
        let max = limits.max_bytes;
        routes
            .add_service(
                AccountServiceServer::new(api.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                MarketDataServiceServer::new(api.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                RunServiceServer::new(api.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                BatchServiceServer::new(api.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                OrderServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                EventServiceServer::new(events::EventApi::new(self.events.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
    }
}

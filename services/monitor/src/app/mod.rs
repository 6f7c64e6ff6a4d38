//! The Monitor service's operations: cycles (scheduled daily or on demand),
//! the shard worker that evaluates accounts and opens runs, and the reads of
//! the Rebalance Center.

mod calendar;
mod cycles;
mod inputs;
mod shard;
mod tenants;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use rebalancer_kit::Clock;
use rebalancer_proto::client::TracedChannel;
use tokio_util::sync::CancellationToken;

pub use cycles::{EvaluateNowInput, FlaggedPage};

use crate::store::MonitorStore;

/// How the monitor runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// When the daily cycle starts, New York time (default 09:45, after the open).
    pub run_at: NaiveTime,
    /// Tenants evaluated by the daily schedule at `run_at`, besides those
    /// the tenant registry enables (at their own time).
    pub tenants: Vec<String>,
    /// Accounts per shard.
    pub shard_size: i64,
    /// Runs created in parallel per shard.
    pub run_concurrency: usize,
    /// Shards worked at once by this replica.
    pub parallel_shards: usize,
    /// How the runs the monitor opens are worked (the Execution default,
    /// one market order per block, when `None`).
    pub algorithm: Option<rebalancer_proto::execution::ExecutionAlgorithm>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            run_at: NaiveTime::from_hms_opt(9, 45, 0).unwrap_or(NaiveTime::MIN),
            tenants: vec!["default".to_owned()],
            shard_size: 20_000,
            run_concurrency: 16,
            parallel_shards: 2,
            algorithm: None,
        }
    }
}

/// The Monitor service's state.
#[derive(Debug, Clone)]
pub struct Monitor {
    store: Arc<dyn MonitorStore>,
    clock: Arc<dyn Clock>,
    /// The Target service (assignments with resolved weights).
    target: TracedChannel,
    /// The Execution service (holdings, quotes, runs).
    execution: TracedChannel,
    config: MonitorConfig,
    /// The exchange date the calendar overrides were last fetched for.
    calendar_fetched_for: Arc<std::sync::Mutex<Option<chrono::NaiveDate>>>,
    /// The tenant registry's scheduled tenants, as last read.
    registry: Arc<std::sync::Mutex<tenants::RegistryCache>>,
}

/// Simulated time between scheduler ticks.
const TICK: Duration = Duration::from_secs(1);

impl Monitor {
    #[must_use]
    pub fn new(
        store: Arc<dyn MonitorStore>,
        clock: Arc<dyn Clock>,
        target: TracedChannel,
        execution: TracedChannel,
        config: MonitorConfig,
    ) -> Self {
        Self {
            store,
            clock,
            target,
            execution,
            config,
            calendar_fetched_for: Arc::default(),
            registry: Arc::default(),
        }
    }

    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs the scheduler and the shard worker until `shutdown`.
    pub async fn run(self, owner: String, shutdown: CancellationToken) {
        tracing::info!(%owner, "monitor worker started");
        loop {
            if let Err(error) = self.tick(&owner).await {
                tracing::warn!(%error, "monitor tick failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.clock.sleep(TICK) => {}
            }
        }
        tracing::info!(%owner, "monitor worker stopped");
    }

    /// One pass: start today's scheduled cycles when due, then work every
    /// open shard. Returns how many shards were worked.
    ///
    /// # Errors
    /// Storage failures (the work is retried on the next tick).
    pub async fn tick(&self, owner: &str) -> Result<usize, crate::error::MonitorError> {
        self.schedule().await?;
        self.work_shards(owner).await
    }
}

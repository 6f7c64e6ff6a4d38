//! The Execution service's operations, in domain terms. gRPC handlers convert
//! wire types and call these.

mod accounts;
mod batches;
mod market;
mod orders;
mod runs;
mod worker;

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_proto::client::TracedChannel;

pub use accounts::{AccountView, HoldingsView, PositionInput, parse_etag};
pub use batches::{BatchInput, BatchView, TickerTotal};
pub use market::{AssetFlags, ClockView};
pub use orders::BlockView;
pub use runs::{OrderAdjustmentInput, RunSpecInput};

use tokio::sync::broadcast;

use crate::broker::Broker;
use crate::broker::paper::PaperBroker;
use crate::market::MarketData;
use crate::store::ExecutionStore;

/// The Execution service's state.
#[derive(Debug, Clone)]
pub struct Execution {
    store: Arc<dyn ExecutionStore>,
    clock: Arc<dyn Clock>,
    market: Arc<dyn MarketData>,
    /// The Target service: account targets, and told when an asset becomes unusable.
    target: Option<TracedChannel>,
    broker: Arc<dyn Broker>,
    /// Ids of runs that changed, for watchers in this process.
    events: broadcast::Sender<String>,
}

impl Execution {
    #[must_use]
    pub fn new(
        store: Arc<dyn ExecutionStore>,
        clock: Arc<dyn Clock>,
        market: Arc<dyn MarketData>,
        target: Option<TracedChannel>,
    ) -> Self {
        let broker = Arc::new(PaperBroker::new(
            store.clone(),
            market.clone(),
            clock.clone(),
        ));
        let (events, _) = broadcast::channel(1024);
        Self {
            store,
            clock,
            market,
            target,
            broker,
            events,
        }
    }

    /// Tells watchers in this process that a run changed.
    pub(crate) fn notify(&self, run_id: &str) {
        let _ = self.events.send(run_id.to_owned());
    }

    /// Changes of runs in this process (watchers also poll, for other replicas).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    #[must_use]
    pub fn store(&self) -> &Arc<dyn ExecutionStore> {
        &self.store
    }
}

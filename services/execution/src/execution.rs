//! The Execution service's shared state: the store, the clock, the market-data
//! and broker ports, the Target client and the in-process run events. Each
//! feature folder adds its operations to [`Execution`] in its own `app.rs`.

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_proto::client::TracedChannel;

use tokio::sync::broadcast;

use crate::broker::brokers::Brokers;
use crate::market::{MarketData, MasterMarketData};
use crate::store::ExecutionStore;

/// The Execution service's state.
#[derive(Debug, Clone)]
pub struct Execution {
    pub(crate) store: Arc<dyn ExecutionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The asset master and its quotes over the feed, as a [`MarketData`].
    pub(crate) market: Arc<dyn MarketData>,
    pub(crate) master: Arc<MasterMarketData>,
    /// The Target service: account targets, and told when an asset becomes unusable.
    pub(crate) target: Option<TracedChannel>,
    pub(crate) brokers: Brokers,
    /// Ids of runs that changed, for watchers in this process.
    events: broadcast::Sender<String>,
}

impl Execution {
    /// The service's state over its store and ports.
    #[must_use]
    pub fn new(
        store: Arc<dyn ExecutionStore>,
        clock: Arc<dyn Clock>,
        master: Arc<MasterMarketData>,
        brokers: Brokers,
        target: Option<TracedChannel>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            store,
            clock,
            market: master.clone(),
            master,
            target,
            brokers,
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

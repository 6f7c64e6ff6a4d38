//! The brokers a service trades through: the paper broker always (fills on
//! the feed's prices, nothing leaves the platform), and the live broker it is
//! configured with, if any. Each tenant trades in one mode, paper or live
//! (a firm runs paper first, then switches); each block records the broker
//! it was sent to and keeps it until it ends, whatever the mode becomes.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::broker::Broker;
use crate::store::StoreError;

/// The paper broker's name in block and run records.
pub const PAPER: &str = "paper";

rebalancer_kit::text_enum! {
    /// Where a tenant's orders go.
    pub enum TradingMode {
        Paper = "paper",
        Live = "live",
    }
}

/// A tenant's chosen mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingModeRecord {
    pub mode: TradingMode,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// Tenants' trading modes.
#[tonic::async_trait]
pub trait TradingModeStore: Send + Sync + std::fmt::Debug {
    async fn trading_mode(&self, tenant: &str) -> Result<Option<TradingModeRecord>, StoreError>;

    async fn set_trading_mode(
        &self,
        tenant: &str,
        record: TradingModeRecord,
    ) -> Result<(), StoreError>;
}

/// Every broker of this service, by name.
#[derive(Debug, Clone)]
pub struct Brokers {
    by_name: BTreeMap<&'static str, Arc<dyn Broker>>,
    live: Option<&'static str>,
    default_mode: TradingMode,
}

impl Brokers {
    /// The paper broker alone: every tenant trades paper.
    #[must_use]
    pub fn paper_only(paper: Arc<dyn Broker>) -> Self {
        Self {
            by_name: BTreeMap::from([(PAPER, paper)]),
            live: None,
            default_mode: TradingMode::Paper,
        }
    }

    /// The paper broker and a live one; tenants that never chose trade in
    /// `default_mode`.
    #[must_use]
    pub fn with_live(
        paper: Arc<dyn Broker>,
        name: &'static str,
        live: Arc<dyn Broker>,
        default_mode: TradingMode,
    ) -> Self {
        Self {
            by_name: BTreeMap::from([(PAPER, paper), (name, live)]),
            live: Some(name),
            default_mode,
        }
    }

    /// The broker a block recorded.
    #[must_use]
    pub fn named(&self, name: &str) -> Option<&Arc<dyn Broker>> {
        self.by_name.get(name)
    }

    /// The live broker and its name, if the service has one.
    #[must_use]
    pub fn live_broker(&self) -> Option<(&'static str, Arc<dyn Broker>)> {
        let name = self.live?;
        Some((name, self.by_name.get(name)?.clone()))
    }

    /// The live broker's name, if the service has one.
    #[must_use]
    pub fn live(&self) -> Option<&'static str> {
        self.live
    }

    /// The mode of tenants that never chose one.
    #[must_use]
    pub fn default_mode(&self) -> TradingMode {
        self.default_mode
    }

    /// The broker name a mode trades through.
    #[must_use]
    pub fn name_for(&self, mode: TradingMode) -> &'static str {
        match (mode, self.live) {
            (TradingMode::Live, Some(live)) => live,
            _ => PAPER,
        }
    }
}

//! Market data behind a port: assets, quotes, bars and volume profiles. The
//! embedded default adapter is the simulated market ([`SimMarketData`] over
//! [`sim::SimulatedMarket`] on the injected clock); a real feed implements the
//! same [`MarketData`] trait and is chosen by configuration. Operators'
//! overrides of asset flags live here too. Market data never moves money.

mod app;
pub mod convert;
mod grpc;
pub mod sim;
mod simulated;
mod sql;
pub mod store;
pub mod universe;

pub use app::{AssetFlags, ClockView};
pub use simulated::SimMarketData;

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Smallest quantity step of a fractionable asset (9 decimals).
pub const FRACTIONAL_INCREMENT: Decimal = Decimal::from_parts(1, 0, 0, false, 9);

/// An instrument and its trading flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub symbol: String,
    pub name: String,
    pub exchange: String,
    pub asset_class: String,
    pub active: bool,
    pub tradable: bool,
    pub fractionable: bool,
    /// Smallest quantity step.
    pub min_increment: Decimal,
}

/// Latest prices of a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub symbol: String,
    pub last: Decimal,
    pub bid: Decimal,
    pub ask: Decimal,
    pub timestamp: DateTime<Utc>,
}

/// A price and volume bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub symbol: String,
    pub start: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub vwap: Decimal,
}

/// The market data port.
#[tonic::async_trait]
pub trait MarketData: Send + Sync + Debug {
    /// Every listed asset, with the feed's own flags.
    async fn assets(&self) -> Vec<Asset>;

    async fn asset(&self, symbol: &str) -> Option<Asset>;

    /// The quote of a symbol now.
    async fn quote(&self, symbol: &str) -> Option<Quote>;

    /// Bars of `timeframe_minutes` from `start` to `end`.
    async fn bars(
        &self,
        symbol: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        timeframe_minutes: usize,
    ) -> Vec<Bar>;

    /// The one-minute bar in progress at `moment`, when the market is open.
    async fn minute_bar(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Bar>;

    /// Share of a full day's volume per minute of a regular session.
    async fn volume_profile(&self, symbol: &str) -> Option<Vec<Decimal>>;

    async fn average_daily_volume(&self, symbol: &str) -> Option<Decimal>;

    /// Simulated seconds per real second (1 for a real feed).
    fn speed(&self) -> u32;
}

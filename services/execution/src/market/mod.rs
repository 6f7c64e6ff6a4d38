//! Market data behind a port: assets, quotes, bars and volume profiles. The
//! service reads it through [`MasterMarketData`]: the platform's asset master
//! and uploaded quotes (in this service's database, loaded in bulk over
//! gRPC), over an optional live feed. The embedded default feed is the
//! simulated market ([`SimMarketData`] over [`sim::SimulatedMarket`] on the
//! injected clock), which seeds its universe into the same master; a real
//! feed implements the same [`MarketData`] trait. Operators' overrides of
//! asset flags and calendar days live here too. Market data never moves money.

mod app;
pub mod convert;
mod days;
mod grpc;
mod master;
mod master_sql;
mod parse;
pub mod sim;
mod simulated;
mod sql;
pub mod store;
pub mod universe;
mod upload;

pub use app::{AssetFlags, ClockView};
pub use days::{XNYS, load_calendar_overrides};
pub use master::{MasterMarketData, QuoteProblem};
pub use simulated::SimMarketData;
pub use upload::AssetsUpserted;

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
    /// ISO 4217 code of its prices.
    pub currency: String,
    pub marginable: bool,
    /// Smallest notional of one order (zero for none).
    pub min_order_size: Decimal,
    /// Share lot of orders when not fractionable.
    pub lot_size: Decimal,
    /// Average shares traded per full day, when known.
    pub average_daily_volume: Option<Decimal>,
    /// Who listed it: `simulator` or `platform`.
    pub source: String,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The asset class of crypto assets, which trade 24/7.
pub const CRYPTO: &str = "crypto";

impl Asset {
    /// The calendar the asset trades on.
    #[must_use]
    pub fn calendar(&self) -> &'static str {
        if self.asset_class == CRYPTO {
            "CRYPTO"
        } else {
            "XNYS"
        }
    }

    /// The quantity step of its orders: 9 decimals when fractionable, else its lot.
    #[must_use]
    pub fn step(fractionable: bool, lot_size: Decimal) -> Decimal {
        if fractionable {
            FRACTIONAL_INCREMENT
        } else {
            lot_size.max(Decimal::ONE)
        }
    }
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

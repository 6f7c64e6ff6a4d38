//! The simulated market as a [`MarketData`] adapter: the embedded default.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rebalancer_kit::Clock;
use rust_decimal::Decimal;

use crate::market::{Asset, Bar, MarketData, Quote};
use crate::market::{FRACTIONAL_INCREMENT, sim, universe};

/// The simulated market on an injected clock.
#[derive(Debug, Clone)]
pub struct SimMarketData {
    market: Arc<sim::SimulatedMarket>,
    clock: Arc<dyn Clock>,
    speed: u32,
}

impl SimMarketData {
    #[must_use]
    pub fn new(seed: u64, clock: Arc<dyn Clock>, speed: u32) -> Self {
        Self {
            market: Arc::new(sim::SimulatedMarket::new(seed)),
            clock,
            speed,
        }
    }

    fn asset_of(listing: &universe::Listing) -> Asset {
        Asset {
            symbol: listing.symbol.to_owned(),
            name: listing.name.to_owned(),
            exchange: match (listing.crypto, listing.etf) {
                (true, _) => "CRYPTO",
                (false, true) => "ARCA",
                (false, false) => "NYSE",
            }
            .to_owned(),
            asset_class: match (listing.crypto, listing.etf) {
                (true, _) => super::CRYPTO,
                (false, true) => "etf",
                (false, false) => "us_equity",
            }
            .to_owned(),
            active: true,
            tradable: true,
            fractionable: listing.fractionable,
            min_increment: if listing.fractionable {
                FRACTIONAL_INCREMENT
            } else {
                Decimal::ONE
            },
            currency: "USD".to_owned(),
            marginable: !listing.crypto,
            min_order_size: Decimal::ZERO,
            lot_size: Decimal::ONE,
            average_daily_volume: Some(Decimal::from(listing.average_daily_volume)),
            source: "simulator".to_owned(),
            updated_at: None,
        }
    }
}

#[tonic::async_trait]
impl MarketData for SimMarketData {
    async fn assets(&self) -> Vec<Asset> {
        self.market.listings().map(Self::asset_of).collect()
    }

    async fn asset(&self, symbol: &str) -> Option<Asset> {
        self.market.listing(symbol).map(Self::asset_of)
    }

    async fn quote(&self, symbol: &str) -> Option<Quote> {
        self.market.quote(symbol, self.clock.now())
    }

    async fn bars(
        &self,
        symbol: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        timeframe_minutes: usize,
    ) -> Vec<Bar> {
        self.market.bars(symbol, start, end, timeframe_minutes)
    }

    async fn minute_bar(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Bar> {
        self.market.minute_bar(symbol, moment)
    }

    async fn volume_profile(&self, symbol: &str) -> Option<Vec<Decimal>> {
        let listing = self.market.listing(symbol)?;
        Some(sim::volume_profile(if listing.crypto { 1440 } else { 390 }))
    }

    async fn average_daily_volume(&self, symbol: &str) -> Option<Decimal> {
        self.market.average_daily_volume(symbol)
    }

    fn speed(&self) -> u32 {
        self.speed
    }
}

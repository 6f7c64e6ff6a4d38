//! Wire conversions of market data.

use rebalancer_kit::wire::{decimal_text, money_text, timestamp};
use rebalancer_proto::execution as pb;

use crate::market::{Asset, Bar, Quote};

#[must_use]
pub fn asset_to_wire(asset: &Asset) -> pb::Asset {
    pb::Asset {
        symbol: asset.symbol.clone(),
        name: asset.name.clone(),
        exchange: asset.exchange.clone(),
        asset_class: asset.asset_class.clone(),
        active: asset.active,
        tradable: asset.tradable,
        fractionable: asset.fractionable,
        min_increment: decimal_text(asset.min_increment),
    }
}

#[must_use]
pub fn quote_to_wire(quote: &Quote) -> pb::Quote {
    pb::Quote {
        symbol: quote.symbol.clone(),
        last: money_text(quote.last),
        bid: money_text(quote.bid),
        ask: money_text(quote.ask),
        timestamp: Some(timestamp(quote.timestamp)),
    }
}

#[must_use]
pub fn bar_to_wire(bar: &Bar) -> pb::Bar {
    pb::Bar {
        symbol: bar.symbol.clone(),
        start: Some(timestamp(bar.start)),
        open: decimal_text(bar.open),
        high: decimal_text(bar.high),
        low: decimal_text(bar.low),
        close: decimal_text(bar.close),
        volume: decimal_text(bar.volume),
        vwap: decimal_text(bar.vwap),
    }
}

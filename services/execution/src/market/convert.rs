//! Wire conversions of market data.

use rebalancer_domain::calendar_days::{CalendarDay, DayHours, DaySource};
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
        currency: asset.currency.clone(),
        marginable: asset.marginable,
        min_order_size: decimal_text(asset.min_order_size),
        lot_size: decimal_text(asset.lot_size),
        average_daily_volume: asset
            .average_daily_volume
            .map(decimal_text)
            .unwrap_or_default(),
        calendar: asset.calendar().to_owned(),
        source: asset.source.clone(),
        updated_at: asset.updated_at.map(timestamp),
    }
}

#[must_use]
pub fn calendar_day_to_wire(day: &CalendarDay, source: DaySource) -> pb::CalendarDay {
    let (kind, open, close) = match day.hours {
        DayHours::Closed => (pb::CalendarDayKind::Closed, String::new(), String::new()),
        DayHours::Session { open, close } => (
            pb::CalendarDayKind::Session,
            open.format("%H:%M").to_string(),
            close.format("%H:%M").to_string(),
        ),
    };
    pb::CalendarDay {
        calendar: crate::market::XNYS.to_owned(),
        date: day.date.to_string(),
        kind: kind.into(),
        open,
        close,
        name: day.name.clone(),
        source: match source {
            DaySource::Shipped => "shipped",
            DaySource::Override => "override",
        }
        .to_owned(),
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

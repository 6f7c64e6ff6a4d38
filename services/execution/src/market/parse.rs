//! Uploads from the wire: assets, quotes and calendar days, each refused
//! with one field violation per problem (`assets[3].lot_size`).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rebalancer_domain::calendar_days::{CalendarDay, DayHours};
use rebalancer_domain::{Symbol, Violations, parse_decimal};
use rebalancer_kit::wire::datetime;
use rebalancer_proto::execution as pb;
use rust_decimal::Decimal;

use crate::market::{Asset, CRYPTO, Quote};

/// Most assets or quotes in one upload.
pub const MAX_UPLOAD: usize = 20_000;
/// Most calendar days in one call.
pub const MAX_CALENDAR_DAYS: usize = 400;
/// Largest price, volume or size accepted.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
/// Smallest price accepted, and the most decimals of a price.
const MIN_PRICE: Decimal = Decimal::from_parts(1, 0, 0, false, 4);
const PRICE_DECIMALS: u32 = 9;
const MAX_TEXT: usize = 200;
/// How far ahead of the clock a quote's time may be (clock skew).
const FUTURE_SLACK: Duration = Duration::minutes(1);

fn text(violations: &mut Violations, field: &str, value: &str, required: bool) -> String {
    if required && value.trim().is_empty() {
        violations.add(field, "is required");
    } else if value.chars().count() > MAX_TEXT {
        violations.add(field, format!("at most {MAX_TEXT} characters"));
    }
    value.trim().to_owned()
}

/// A decimal in `[0, 1e9]`, or `None` when empty.
fn amount(violations: &mut Violations, field: &str, value: &str) -> Option<Decimal> {
    if value.is_empty() {
        return None;
    }
    match parse_decimal(value) {
        Ok(amount) if amount.is_sign_negative() => {
            violations.add(field, "must not be negative");
            None
        }
        Ok(amount) if amount > MAX_AMOUNT => {
            violations.add(field, format!("must be at most {MAX_AMOUNT}"));
            None
        }
        Ok(amount) => Some(amount),
        Err(error) => {
            violations.add(field, error.to_string());
            None
        }
    }
}

/// A price: at least 0.0001, at most 1e9, at most 9 decimals; `None` when empty.
fn price(violations: &mut Violations, field: &str, value: &str) -> Option<Decimal> {
    let price = amount(violations, field, value)?;
    if price < MIN_PRICE {
        violations.add(field, format!("must be at least {MIN_PRICE}"));
        return None;
    }
    if price.normalize().scale() > PRICE_DECIMALS {
        violations.add(field, format!("at most {PRICE_DECIMALS} decimal places"));
        return None;
    }
    Some(price)
}

fn symbol(violations: &mut Violations, field: &str, value: &str) -> String {
    match Symbol::parse(value) {
        Ok(symbol) => symbol.to_string(),
        Err(error) => {
            violations.add(field, error.to_string());
            String::new()
        }
    }
}

/// An asset of an upload; `now` stamps it.
pub fn asset(
    violations: &mut Violations,
    prefix: &str,
    wire: &pb::Asset,
    now: DateTime<Utc>,
) -> Asset {
    let field = |name: &str| format!("{prefix}.{name}");
    let symbol = symbol(violations, &field("symbol"), &wire.symbol);
    let name = text(violations, &field("name"), &wire.name, true);
    let exchange = text(violations, &field("exchange"), &wire.exchange, false);
    let asset_class = wire.asset_class.trim().to_ascii_lowercase();
    if asset_class.is_empty()
        || asset_class.len() > 32
        || !asset_class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        violations.add(
            field("asset_class"),
            "must be a class like us_equity, etf or crypto (lower case letters and _)",
        );
    }
    // Crypto trades around the clock, and the workers tell it by its pair
    // symbol: the two go together.
    let pair = symbol.contains('/');
    if pair != (asset_class == CRYPTO) && !symbol.is_empty() {
        violations.add(
            field("asset_class"),
            if pair {
                format!("{symbol} is a pair: its class must be crypto")
            } else {
                format!("crypto is listed as a pair like BTC/USD, not {symbol}")
            },
        );
    }
    let currency = if wire.currency.is_empty() {
        "USD".to_owned()
    } else {
        wire.currency.to_ascii_uppercase()
    };
    if currency != "USD" {
        violations.add(
            field("currency"),
            "must be USD: accounts are valued in US dollars and there is no FX yet",
        );
    }
    let min_order_size =
        amount(violations, &field("min_order_size"), &wire.min_order_size).unwrap_or_default();
    let lot_size = match amount(violations, &field("lot_size"), &wire.lot_size) {
        None => Decimal::ONE,
        Some(lot) if lot < Decimal::ONE || !lot.fract().is_zero() => {
            violations.add(
                field("lot_size"),
                "must be a whole number of shares, 1 or more",
            );
            Decimal::ONE
        }
        Some(lot) => lot,
    };
    Asset {
        symbol,
        name,
        exchange,
        asset_class,
        active: wire.active,
        tradable: wire.tradable,
        fractionable: wire.fractionable,
        min_increment: Asset::step(wire.fractionable, lot_size),
        currency,
        marginable: wire.marginable,
        min_order_size,
        lot_size,
        average_daily_volume: match amount(
            violations,
            &field("average_daily_volume"),
            &wire.average_daily_volume,
        ) {
            Some(volume) if volume.is_zero() => {
                violations.add(
                    field("average_daily_volume"),
                    "must be positive, or empty when unknown",
                );
                None
            }
            volume => volume,
        },
        source: "platform".to_owned(),
        updated_at: Some(now),
    }
}

/// A quote of an upload; `known` tells whether the master lists a symbol.
pub fn quote(
    violations: &mut Violations,
    prefix: &str,
    wire: &pb::Quote,
    now: DateTime<Utc>,
    known: impl Fn(&str) -> bool,
) -> Quote {
    let field = |name: &str| format!("{prefix}.{name}");
    let symbol = symbol(violations, &field("symbol"), &wire.symbol);
    if !symbol.is_empty() && !known(&symbol) {
        violations.add(
            field("symbol"),
            format!("{symbol} is not a known asset: load it with UpsertAssets first"),
        );
    }
    if wire.last.is_empty() {
        violations.add(field("last"), "is required");
    }
    let last = price(violations, &field("last"), &wire.last).unwrap_or_default();
    let bid = price(violations, &field("bid"), &wire.bid).unwrap_or(last);
    let ask = price(violations, &field("ask"), &wire.ask).unwrap_or(last);
    if bid > ask {
        violations.add(field("bid"), format!("{bid} is above the ask {ask}"));
    }
    let timestamp = match wire.timestamp.as_ref().and_then(datetime) {
        None => {
            violations.add(field("timestamp"), "is required");
            now
        }
        Some(at) if at > now + FUTURE_SLACK => {
            violations.add(field("timestamp"), format!("{at} is in the future"));
            now
        }
        Some(at) => at,
    };
    Quote {
        symbol,
        last,
        bid,
        ask,
        timestamp,
    }
}

fn clock_time(violations: &mut Violations, field: &str, value: &str) -> Option<NaiveTime> {
    let time = NaiveTime::parse_from_str(value, "%H:%M").ok();
    if time.is_none() {
        violations.add(field, "must be a local time as HH:MM");
    }
    time
}

/// A calendar day to set on `XNYS`.
pub fn calendar_day(
    violations: &mut Violations,
    prefix: &str,
    wire: &pb::CalendarDay,
) -> Option<CalendarDay> {
    let field = |name: &str| format!("{prefix}.{name}");
    calendar_name(violations, &field("calendar"), &wire.calendar);
    let date = NaiveDate::parse_from_str(&wire.date, "%Y-%m-%d").ok();
    match date {
        None => violations.add(field("date"), "must be a date as YYYY-MM-DD"),
        Some(date) if !(1990..=2100).contains(&chrono::Datelike::year(&date)) => {
            violations.add(field("date"), "must be between 1990 and 2100");
        }
        Some(_) => {}
    }
    let name = text(violations, &field("name"), &wire.name, true);
    let hours = match pb::CalendarDayKind::try_from(wire.kind) {
        Ok(pb::CalendarDayKind::Closed) => {
            if !wire.open.is_empty() || !wire.close.is_empty() {
                violations.add(field("open"), "a closed day has no hours");
            }
            Some(DayHours::Closed)
        }
        Ok(pb::CalendarDayKind::Session) => {
            let open = clock_time(violations, &field("open"), &wire.open);
            let close = clock_time(violations, &field("close"), &wire.close);
            match (open, close) {
                (Some(open), Some(close)) if open >= close => {
                    violations.add(field("close"), "must be after open");
                    None
                }
                (Some(open), Some(close)) => Some(DayHours::Session { open, close }),
                _ => None,
            }
        }
        _ => {
            violations.add(
                field("kind"),
                "must be CALENDAR_DAY_KIND_CLOSED or CALENDAR_DAY_KIND_SESSION",
            );
            None
        }
    };
    Some(CalendarDay {
        date: date?,
        hours: hours?,
        name,
    })
}

/// The exchange calendar a request names: only `XNYS` has exceptions.
pub fn calendar_name(violations: &mut Violations, field: &str, value: &str) {
    if !(value.is_empty() || value.eq_ignore_ascii_case("XNYS")) {
        violations.add(
            field,
            format!("{value:?} has no exceptional days: only XNYS does (CRYPTO trades every day)"),
        );
    }
}

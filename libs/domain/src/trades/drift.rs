//! The drift report of a plan: where each symbol and cash stand against the
//! target now, and where the orders would put them at the estimate prices.
//!
//! Expected values move by the dollars of the orders (a notional buy adds
//! its notional, a sell removes what it raises), so the report adds up to
//! the equity exactly: a plan never creates or loses value at its own prices.

use rust_decimal::Decimal;

use super::book::{Book, Line};
use super::rounding::weight_of;
use super::{PlannedOrder, Side, TickerDrift};
use crate::Symbol;

/// Cash first, then one row per symbol, by symbol.
pub(super) fn drift_report(
    book: &Book,
    orders: &[PlannedOrder],
    cash_after: Decimal,
) -> Vec<TickerDrift> {
    let mut asset_rows: Vec<TickerDrift> = book
        .lines
        .iter()
        .map(|line| {
            let values = Values {
                current: line.value,
                expected: expected_value(line, orders),
            };
            drift_row(
                Some(line.symbol.clone()),
                line.target_percent,
                values,
                book.equity,
            )
        })
        .collect();
    asset_rows.extend(book.unpriced_targets.iter().map(|target| {
        let nothing = Values {
            current: Decimal::ZERO,
            expected: Decimal::ZERO,
        };
        drift_row(
            Some(target.symbol.clone()),
            target.target_percent,
            nothing,
            book.equity,
        )
    }));
    asset_rows.sort_by(|left, right| left.symbol.cmp(&right.symbol));
    let cash_values = Values {
        current: book.cash,
        expected: cash_after,
    };
    let mut rows = vec![drift_row(None, book.cash_percent, cash_values, book.equity)];
    rows.extend(asset_rows);
    rows
}

/// A value now and once the plan is filled.
#[derive(Debug, Clone, Copy)]
struct Values {
    current: Decimal,
    expected: Decimal,
}

fn drift_row(
    symbol: Option<Symbol>,
    target_weight: Decimal,
    values: Values,
    equity: Decimal,
) -> TickerDrift {
    let current_weight = weight_of(values.current, equity);
    TickerDrift {
        symbol,
        target_weight,
        current_weight,
        drift: current_weight - target_weight,
        expected_weight: weight_of(values.expected, equity),
        current_value: values.current,
        expected_value: values.expected,
    }
}

/// The line's value once its orders fill at their estimate prices.
fn expected_value(line: &Line, orders: &[PlannedOrder]) -> Decimal {
    orders
        .iter()
        .filter(|order| order.symbol == line.symbol)
        .fold(line.value, |value, order| match order.side {
            Side::Buy => value + order.cash_amount(),
            Side::Sell => value - order.cash_amount(),
        })
}

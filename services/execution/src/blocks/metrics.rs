//! The execution worker's metrics (see `rebalancer_kit::metrics`):
//! `rebalancer.execution.fills` (counter, by `side`, crosses apart) and
//! `rebalancer.execution.slippage` (histogram, basis points against the
//! block's arrival price, positive when worse for the accounts, by `side`),
//! recorded once a slice's fills are booked;
//! `rebalancer.execution.child_orders` (counter, by `status` after the
//! broker answered: the fill rate is `filled` over all) and
//! `rebalancer.lease.reclaims` (counter, `kind` = `slice`: slices claimed
//! again after a worker's lease ran out or its attempt failed).

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;

use super::store::{BlockRecord, FillRecord};

struct FillMetrics {
    fills: Counter<u64>,
    slippage: Histogram<f64>,
    child_orders: Counter<u64>,
    reclaims: Counter<u64>,
}

fn instruments() -> &'static FillMetrics {
    static METRICS: OnceLock<FillMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = rebalancer_kit::metrics::meter();
        FillMetrics {
            fills: meter
                .u64_counter("rebalancer.execution.fills")
                .with_description("Fills booked, by side (crossed: netted internally)")
                .build(),
            slippage: meter
                .f64_histogram("rebalancer.execution.slippage")
                .with_unit("bp")
                .with_description("Fill price against the block's arrival price, worse is positive")
                .with_boundaries(vec![
                    -50.0, -20.0, -10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 20.0, 50.0,
                ])
                .build(),
            child_orders: meter
                .u64_counter("rebalancer.execution.child_orders")
                .with_description("Child orders sent, by their status once the broker answered")
                .build(),
            reclaims: meter
                .u64_counter("rebalancer.lease.reclaims")
                .with_description(
                    "Work claimed again after a lease ran out or an attempt failed, by kind",
                )
                .build(),
        }
    })
}

/// Slippage of a fill at `price` against `arrival`, in basis points,
/// positive when worse for the accounts.
fn slippage_bp(side: Side, price: Decimal, arrival: Decimal) -> Option<f64> {
    if arrival <= Decimal::ZERO {
        return None;
    }
    let moved = (price - arrival) / arrival * Decimal::from(10_000);
    let worse = match side {
        Side::Buy => moved,
        Side::Sell => -moved,
    };
    worse.to_f64()
}

/// Records a child order's status once the broker answered.
pub(super) fn child_order(status: rebalancer_domain::run::OrderStatus, broker: &str) {
    instruments().child_orders.add(
        1,
        &[
            KeyValue::new("status", status.as_str()),
            KeyValue::new("broker", broker.to_owned()),
        ],
    );
}

/// Records a slice claimed again (its `attempts` counts this claim).
pub(super) fn slice_claimed(attempts: i32) {
    if attempts > 1 {
        instruments()
            .reclaims
            .add(1, &[KeyValue::new("kind", "slice")]);
    }
}

/// Records the booked `fills` of `block`.
pub(super) fn record(block: &BlockRecord, fills: &[FillRecord]) {
    let metrics = instruments();
    for fill in fills {
        let labels = [
            KeyValue::new("side", block.side.as_str()),
            KeyValue::new("crossed", fill.crossed),
        ];
        metrics.fills.add(1, &labels);
        if !fill.crossed
            && let Some(arrival) = block.arrival_price
            && let Some(bp) = slippage_bp(block.side, fill.price, arrival)
        {
            metrics
                .slippage
                .record(bp, &[KeyValue::new("side", block.side.as_str())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn slippage_is_positive_when_worse_for_the_accounts() {
        assert_eq!(slippage_bp(Side::Buy, dec!(100.05), dec!(100)), Some(5.0));
        assert_eq!(slippage_bp(Side::Sell, dec!(100.05), dec!(100)), Some(-5.0));
        assert_eq!(slippage_bp(Side::Buy, dec!(1), Decimal::ZERO), None);
    }
}

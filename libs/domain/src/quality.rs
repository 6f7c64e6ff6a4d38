//! Execution quality of a block: its average fill price against the arrival
//! price, the market's interval VWAP and TWAP over the working window, the
//! slippage in basis points against each (positive = worse for the block's
//! side), and its participation in the market's volume. Shares crossed
//! internally (netting across accounts) count at the cross price in the
//! average fill and the slippage against arrival; the interval benchmarks
//! and the participation measure the market part only, the algorithm's work.

use rust_decimal::Decimal;

use crate::trades::Side;

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// One market bar of the working window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketBar {
    pub vwap: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
}

/// One execution of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execution {
    pub quantity: Decimal,
    pub price: Decimal,
    /// Matched internally against the other side, not sent to the market.
    pub crossed: bool,
}

/// Benchmarks and slippage of a block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Quality {
    pub arrival_price: Option<Decimal>,
    pub average_fill_price: Option<Decimal>,
    pub interval_vwap: Option<Decimal>,
    pub interval_twap: Option<Decimal>,
    pub slippage_vs_arrival_bps: Option<Decimal>,
    pub slippage_vs_vwap_bps: Option<Decimal>,
    pub slippage_vs_twap_bps: Option<Decimal>,
    pub participation_percent: Option<Decimal>,
    pub filled_percent: Option<Decimal>,
    pub filled_quantity: Decimal,
    pub filled_notional: Decimal,
    /// Part of `filled_quantity` crossed internally.
    pub crossed_quantity: Decimal,
}

/// Measures a block that asked for `requested` on `side`.
#[must_use]
pub fn measure(
    side: Side,
    requested: Decimal,
    arrival_price: Option<Decimal>,
    executions: &[Execution],
    bars: &[MarketBar],
) -> Quality {
    let filled_quantity: Decimal = executions.iter().map(|e| e.quantity).sum();
    let filled_notional: Decimal = executions.iter().map(|e| e.quantity * e.price).sum();
    let average_fill_price =
        (filled_quantity > Decimal::ZERO).then(|| (filled_notional / filled_quantity).round_dp(6));
    let market = executions.iter().filter(|e| !e.crossed);
    let market_quantity: Decimal = market.clone().map(|e| e.quantity).sum();
    let market_notional: Decimal = market.map(|e| e.quantity * e.price).sum();
    let market_average =
        (market_quantity > Decimal::ZERO).then(|| (market_notional / market_quantity).round_dp(6));
    let market_volume: Decimal = bars.iter().map(|bar| bar.volume).sum();
    let interval_vwap = (market_volume > Decimal::ZERO).then(|| {
        (bars
            .iter()
            .map(|bar| bar.vwap * bar.volume)
            .sum::<Decimal>()
            / market_volume)
            .round_dp(6)
    });
    let interval_twap = (!bars.is_empty()).then(|| {
        (bars.iter().map(|bar| bar.close).sum::<Decimal>() / Decimal::from(bars.len())).round_dp(6)
    });
    let slippage = |average: Option<Decimal>, benchmark: Option<Decimal>| -> Option<Decimal> {
        let (average, benchmark) = (average?, benchmark?);
        if benchmark.is_zero() {
            return None;
        }
        let signed = match side {
            Side::Buy => average - benchmark,
            Side::Sell => benchmark - average,
        };
        Some((signed / benchmark * BPS).round_dp(2))
    };
    Quality {
        arrival_price,
        average_fill_price,
        interval_vwap,
        interval_twap,
        slippage_vs_arrival_bps: slippage(average_fill_price, arrival_price),
        slippage_vs_vwap_bps: slippage(market_average, interval_vwap),
        slippage_vs_twap_bps: slippage(market_average, interval_twap),
        participation_percent: (market_volume > Decimal::ZERO)
            .then(|| (market_quantity / market_volume * Decimal::ONE_HUNDRED).round_dp(4)),
        filled_percent: (requested > Decimal::ZERO)
            .then(|| (filled_quantity / requested * Decimal::ONE_HUNDRED).round_dp(4)),
        filled_quantity,
        filled_notional: filled_notional.round_dp(6),
        crossed_quantity: filled_quantity - market_quantity,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn slippage_is_positive_when_worse_for_the_side() {
        let bars = [
            MarketBar {
                vwap: dec!(100),
                close: dec!(100),
                volume: dec!(1000),
            },
            MarketBar {
                vwap: dec!(102),
                close: dec!(102),
                volume: dec!(1000),
            },
        ];
        let fills = [Execution {
            quantity: dec!(10),
            price: dec!(101.101),
            crossed: false,
        }];
        let buy = measure(Side::Buy, dec!(10), Some(dec!(100)), &fills, &bars);
        assert_eq!(buy.interval_vwap, Some(dec!(101)));
        assert_eq!(buy.interval_twap, Some(dec!(101)));
        assert_eq!(buy.slippage_vs_vwap_bps, Some(dec!(10)));
        assert_eq!(buy.slippage_vs_arrival_bps, Some(dec!(110.1)));
        assert_eq!(buy.participation_percent, Some(dec!(0.5)));
        assert_eq!(buy.filled_percent, Some(dec!(100)));
        let sell = measure(Side::Sell, dec!(20), Some(dec!(100)), &fills, &bars);
        assert_eq!(sell.slippage_vs_vwap_bps, Some(dec!(-10)));
        assert_eq!(sell.filled_percent, Some(dec!(50)));
        assert_eq!(sell.crossed_quantity, Decimal::ZERO);
    }

    #[test]
    fn crossed_shares_count_in_the_average_not_against_the_market() {
        let bars = [MarketBar {
            vwap: dec!(100),
            close: dec!(100),
            volume: dec!(1000),
        }];
        let fills = [
            Execution {
                quantity: dec!(10),
                price: dec!(99),
                crossed: true,
            },
            Execution {
                quantity: dec!(10),
                price: dec!(101),
                crossed: false,
            },
        ];
        let buy = measure(Side::Buy, dec!(20), Some(dec!(99)), &fills, &bars);
        assert_eq!(buy.average_fill_price, Some(dec!(100)));
        assert_eq!(buy.slippage_vs_arrival_bps, Some(dec!(101.01)));
        assert_eq!(buy.slippage_vs_vwap_bps, Some(dec!(100)));
        assert_eq!(buy.participation_percent, Some(dec!(1)));
        assert_eq!(buy.crossed_quantity, dec!(10));
        assert_eq!(buy.filled_percent, Some(dec!(100)));
    }
}

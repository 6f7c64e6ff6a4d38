//! Valuing an account: positions at prices, equity, weights, leverage.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::account::leverage_exceeded;

/// A position valued at a price (when one is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuedPosition {
    pub symbol: String,
    pub quantity: Decimal,
    pub price: Option<Decimal>,
    pub value: Option<Decimal>,
    /// Percent of equity.
    pub weight: Option<Decimal>,
}

/// An account valued at prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valuation {
    pub cash: Decimal,
    /// Cash plus the value of every priced position.
    pub equity: Decimal,
    pub positions_value: Decimal,
    pub positions: Vec<ValuedPosition>,
    /// Symbols held without a price: the valuation is incomplete.
    pub missing_prices: Vec<String>,
}

impl Valuation {
    #[must_use]
    pub fn leverage_exceeded(&self) -> bool {
        leverage_exceeded(self.positions_value, self.equity)
    }

    /// Cash as a percent of equity.
    #[must_use]
    pub fn cash_weight(&self) -> Option<Decimal> {
        percent_of(self.cash, self.equity)
    }
}

/// `part` as a percent of `whole`, to 6 decimals; `None` when `whole` is not positive.
#[must_use]
pub fn percent_of(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole <= Decimal::ZERO {
        return None;
    }
    part.checked_mul(Decimal::ONE_HUNDRED)?
        .checked_div(whole)
        .map(|percent| percent.round_dp(6))
}

/// Values `positions` (symbol, quantity) at `prices`.
#[must_use]
pub fn value<'a>(
    cash: Decimal,
    positions: impl IntoIterator<Item = (&'a str, Decimal)>,
    prices: &HashMap<String, Decimal>,
) -> Valuation {
    let mut valued = Vec::new();
    let mut missing_prices = Vec::new();
    let mut positions_value = Decimal::ZERO;
    for (symbol, quantity) in positions {
        let price = prices.get(symbol).copied();
        let value = price.map(|price| (price * quantity).round_dp(9));
        match value {
            Some(value) => positions_value += value,
            None => missing_prices.push(symbol.to_owned()),
        }
        valued.push(ValuedPosition {
            symbol: symbol.to_owned(),
            quantity,
            price,
            value,
            weight: None,
        });
    }
    let equity = cash + positions_value;
    for position in &mut valued {
        position.weight = position.value.and_then(|value| percent_of(value, equity));
    }
    Valuation {
        cash,
        equity,
        positions_value,
        positions: valued,
        missing_prices,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn values_positions_and_weights() {
        let prices = HashMap::from([("SPY".to_owned(), dec!(500)), ("TLT".to_owned(), dec!(100))]);
        let valuation = value(
            dec!(500),
            [("SPY", dec!(6)), ("TLT", dec!(15)), ("XYZ", dec!(1))],
            &prices,
        );
        assert_eq!(valuation.positions_value, dec!(4500));
        assert_eq!(valuation.equity, dec!(5000));
        assert_eq!(valuation.positions[0].weight, Some(dec!(60)));
        assert_eq!(valuation.positions[1].weight, Some(dec!(30)));
        assert_eq!(valuation.cash_weight(), Some(dec!(10)));
        assert_eq!(valuation.missing_prices, ["XYZ"]);
        assert!(!valuation.leverage_exceeded());
    }
}

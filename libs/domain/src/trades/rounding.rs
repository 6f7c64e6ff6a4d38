//! Every rounding of money and quantities in trade generation, so that its
//! direction is explicit where it is used: buys round down (never spend more
//! than the budget), liquidation sells round up (never raise less than asked).

use rust_decimal::{Decimal, RoundingStrategy};

/// One cent: the smallest notional an order can carry, and the smallest
/// difference from target the plan acts on.
pub(super) const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// Decimals of a share quantity.
const QUANTITY_SCALE: u32 = 9;

/// Decimals of a weight in the drift report.
const WEIGHT_SCALE: u32 = 4;

/// Rounds dollars down to the cent.
pub(super) fn floor_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity)
}

/// Rounds dollars up to the cent.
pub(super) fn ceil_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity)
}

/// Shares a notional buys at `price`, rounded down to 9 decimals so the
/// estimate never exceeds what the dollars pay for.
pub(super) fn quantity_for(notional: Decimal, price: Decimal) -> Decimal {
    (notional / price).round_dp_with_strategy(QUANTITY_SCALE, RoundingStrategy::ToNegativeInfinity)
}

/// The whole number nearest to `value`, halves away from zero.
pub(super) fn nearest_whole(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
}

/// `percent` of `total`, exactly.
pub(super) fn percent_share(total: Decimal, percent: Decimal) -> Decimal {
    total * percent / Decimal::ONE_HUNDRED
}

/// `part` as a percent of `whole` to 4 decimals; 0 when `whole` is not positive.
pub(super) fn weight_of(part: Decimal, whole: Decimal) -> Decimal {
    if whole <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (part * Decimal::ONE_HUNDRED / whole).round_dp(WEIGHT_SCALE)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn rounds_in_the_stated_direction() {
        assert_eq!(floor_cents(dec!(1.009)), dec!(1.00));
        assert_eq!(ceil_cents(dec!(1.001)), dec!(1.01));
        assert_eq!(ceil_cents(dec!(1.00)), dec!(1.00));
        assert_eq!(quantity_for(dec!(1), dec!(3)), dec!(0.333333333));
        assert_eq!(nearest_whole(dec!(2.5)), dec!(3));
        assert_eq!(nearest_whole(dec!(2.49)), dec!(2));
        assert_eq!(percent_share(dec!(100000), dec!(60)), dec!(60000));
        assert_eq!(weight_of(dec!(1), dec!(3)), dec!(33.3333));
        assert_eq!(weight_of(dec!(1), dec!(0)), dec!(0));
    }
}

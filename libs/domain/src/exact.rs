//! Exact drift arithmetic in 128-bit integers, the fast path of the
//! evaluation. Every amount is a `Decimal`, that is an integer mantissa and a
//! power-of-ten scale; aligned to one scale per account, sums, products and
//! comparisons are plain integer operations, exact, and an order of magnitude
//! cheaper than `Decimal`'s (which rescales on every operation). Anything that
//! would not fit in 128 bits returns `None`, and the caller falls back to
//! `Decimal` arithmetic.

use rust_decimal::Decimal;

/// Largest scale the fast path aligns to (beyond it, `None`).
const MAX_SCALE: u32 = 24;

const POW10: [i128; 25] = {
    let mut table = [1_i128; 25];
    let mut i = 1;
    while i < 25 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// 10^`exponent`, when the fast path allows it.
#[must_use]
pub fn pow10(exponent: u32) -> Option<i128> {
    POW10.get(usize::try_from(exponent).ok()?).copied()
}

/// `value`'s mantissa at `scale` (≥ its own), when it fits.
#[must_use]
pub fn at_scale(value: Decimal, scale: u32) -> Option<i128> {
    let own = value.scale();
    if own > scale || scale > MAX_SCALE {
        return None;
    }
    value.mantissa().checked_mul(pow10(scale - own)?)
}

/// The product of two decimals as (mantissa, scale).
#[must_use]
pub fn product(a: Decimal, b: Decimal) -> Option<(i128, u32)> {
    let scale = a.scale() + b.scale();
    if scale > MAX_SCALE {
        return None;
    }
    Some((a.mantissa().checked_mul(b.mantissa())?, scale))
}

/// `numerator / denominator` to 4 decimal places, rounding half to even
/// (as `Decimal::round_dp` does); both non-negative, denominator positive.
#[must_use]
pub fn ratio_4dp(numerator: i128, denominator: i128) -> Option<Decimal> {
    if denominator <= 0 || numerator < 0 {
        return None;
    }
    let scaled = numerator.checked_mul(10_000)?;
    let (quotient, remainder) = (scaled / denominator, scaled % denominator);
    let twice = remainder.checked_mul(2)?;
    let rounded = if twice > denominator || (twice == denominator && quotient % 2 == 1) {
        quotient + 1
    } else {
        quotient
    };
    Decimal::try_from_i128_with_scale(rounded, 4).ok()
}

/// A decimal from a mantissa at `scale`, when it fits.
#[must_use]
pub fn decimal(mantissa: i128, scale: u32) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(mantissa, scale).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::RoundingStrategy;

    use super::*;

    #[test]
    fn aligns_and_multiplies() {
        let price = Decimal::new(50_012, 2);
        let quantity = Decimal::new(12_345, 4);
        assert_eq!(product(price, quantity), Some((50_012 * 12_345, 6)));
        assert_eq!(at_scale(Decimal::new(5, 1), 3), Some(500));
        assert_eq!(at_scale(Decimal::new(5, 3), 1), None);
    }

    proptest! {
        #[test]
        fn ratio_rounds_like_decimal(numerator in 0_i64..1_000_000_000_000, denominator in 1_i64..1_000_000_000) {
            let exact = ratio_4dp(i128::from(numerator), i128::from(denominator)).expect("fits");
            let reference = (Decimal::from(numerator) / Decimal::from(denominator))
                .round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven);
            prop_assert_eq!(exact, reference);
        }
    }
}

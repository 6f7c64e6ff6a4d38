//! Sharing a budget over needs when it cannot meet them all.
//!
//! Water-filling gives each need `max(0, need - level)` for the one level at
//! which the shares add up to the budget. That is the allocation minimising
//! Σ (need − share)² under Σ share = budget and share ≥ 0: the largest needs
//! are cut down to a common remainder first, so the most underweight
//! positions are served first. The same rule, run over excesses instead of
//! needs, picks which positions a liquidation sells from.

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimals of the water level once rounded; far below a cent, so rounding
/// the level only decides on which side of the budget the total lands.
const LEVEL_SCALE: u32 = 12;

/// Which side of the budget the shares may land on once the level is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    /// Σ shares ≤ budget: spending must never exceed what is there.
    AtMost,
    /// Σ shares ≥ budget: raising must never fall short of what is asked.
    AtLeast,
}

impl Bound {
    fn holds(self, total: Decimal, budget: Decimal) -> bool {
        match self {
            Self::AtMost => total <= budget,
            Self::AtLeast => total >= budget,
        }
    }

    /// Moving the level this way moves the total towards the kept side.
    fn level_step(self) -> Decimal {
        let step = Decimal::new(1, LEVEL_SCALE);
        match self {
            Self::AtMost => step,
            Self::AtLeast => -step,
        }
    }

    fn round_level(self, level: Decimal) -> Decimal {
        let strategy = match self {
            Self::AtMost => RoundingStrategy::ToPositiveInfinity,
            Self::AtLeast => RoundingStrategy::ToNegativeInfinity,
        };
        level
            .round_dp_with_strategy(LEVEL_SCALE, strategy)
            .max(Decimal::ZERO)
    }
}

/// Shares `budget` over `needs` (same order), each share between 0 and its
/// need. When the positive needs fit in the budget each is met in full;
/// otherwise the shares add up to the budget within 10⁻¹² on the `bound` side.
pub(super) fn water_fill(needs: &[Decimal], budget: Decimal, bound: Bound) -> Vec<Decimal> {
    if budget <= Decimal::ZERO {
        return vec![Decimal::ZERO; needs.len()];
    }
    let total_need: Decimal = needs.iter().filter(|need| need.is_sign_positive()).sum();
    if total_need <= budget {
        return needs
            .iter()
            .map(|need| (*need).max(Decimal::ZERO))
            .collect();
    }
    let mut level = bound.round_level(exact_level(needs, budget));
    loop {
        let shares = shares_above(needs, level);
        let total: Decimal = shares.iter().sum();
        if bound.holds(total, budget) || level.is_zero() {
            return shares;
        }
        level = (level + bound.level_step()).max(Decimal::ZERO);
    }
}

/// The level at which Σ max(0, need − level) = budget, for needs exceeding it.
fn exact_level(needs: &[Decimal], budget: Decimal) -> Decimal {
    let mut descending: Vec<Decimal> = needs
        .iter()
        .copied()
        .filter(|need| *need > Decimal::ZERO)
        .collect();
    descending.sort_by(|left, right| right.cmp(left));
    let mut largest_sum = Decimal::ZERO;
    for (index, need) in descending.iter().enumerate() {
        largest_sum += *need;
        let count = Decimal::from(index + 1);
        let level = (largest_sum - budget) / count;
        let next_need = descending.get(index + 1).copied().unwrap_or(Decimal::ZERO);
        // The level is below this need (it was not reached by the previous
        // count); once it is at or above the next need, only the needs
        // counted so far are served.
        if level >= next_need {
            return level;
        }
    }
    Decimal::ZERO
}

fn shares_above(needs: &[Decimal], level: Decimal) -> Vec<Decimal> {
    needs
        .iter()
        .map(|need| (*need - level).max(Decimal::ZERO))
        .collect()
}

/// Splits `amount` over `weights` in proportion, each part rounded up at
/// 10⁻¹² so the parts never add up to less than `amount`.
pub(super) fn proportional(weights: &[Decimal], amount: Decimal) -> Vec<Decimal> {
    let total: Decimal = weights.iter().sum();
    if total <= Decimal::ZERO || amount <= Decimal::ZERO {
        return vec![Decimal::ZERO; weights.len()];
    }
    weights
        .iter()
        .map(|weight| {
            (amount * *weight / total)
                .round_dp_with_strategy(LEVEL_SCALE, RoundingStrategy::ToPositiveInfinity)
        })
        .collect()
}

/// Position of the smallest positive amount for which `is_under` holds; on
/// ties the later one. Callers list candidates by symbol, so the higher symbol
/// gives way and the choice is deterministic.
pub(super) fn smallest_under(
    amounts: &[Decimal],
    is_under: impl Fn(usize, Decimal) -> bool,
) -> Option<usize> {
    let mut smallest: Option<usize> = None;
    for (position, amount) in amounts.iter().enumerate() {
        if *amount <= Decimal::ZERO || !is_under(position, *amount) {
            continue;
        }
        if smallest.is_none_or(|current| *amount <= amounts[current]) {
            smallest = Some(position);
        }
    }
    smallest
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn meets_every_need_that_fits() {
        let shares = water_fill(
            &[dec!(10), dec!(0), dec!(-3), dec!(5)],
            dec!(20),
            Bound::AtMost,
        );
        assert_eq!(shares, [dec!(10), dec!(0), dec!(0), dec!(5)]);
    }

    #[test]
    fn serves_the_largest_need_first() {
        // Level 4: 10 − 4 = 6, 5 − 4 = 1, 1 is below the level.
        let shares = water_fill(&[dec!(10), dec!(5), dec!(1)], dec!(7), Bound::AtMost);
        assert_eq!(shares, [dec!(6), dec!(1), dec!(0)]);
    }

    #[test]
    fn equal_needs_share_equally() {
        let needs = vec![dec!(1000); 10];
        let shares = water_fill(&needs, dec!(10), Bound::AtMost);
        assert!(shares.iter().all(|share| *share == dec!(1)), "{shares:?}");
    }

    #[test]
    fn thirds_round_to_the_promised_side() {
        let needs = [dec!(5), dec!(5), dec!(5)];
        let under: Decimal = water_fill(&needs, dec!(1), Bound::AtMost).iter().sum();
        let over: Decimal = water_fill(&needs, dec!(1), Bound::AtLeast).iter().sum();
        assert!(
            under <= dec!(1) && dec!(1) - under < dec!(0.00000000001),
            "{under}"
        );
        assert!(
            over >= dec!(1) && over - dec!(1) < dec!(0.00000000001),
            "{over}"
        );
    }

    #[test]
    fn no_budget_no_shares() {
        assert_eq!(
            water_fill(&[dec!(3)], dec!(0), Bound::AtMost),
            [Decimal::ZERO]
        );
        assert_eq!(
            water_fill(&[dec!(3)], dec!(-1), Bound::AtLeast),
            [Decimal::ZERO]
        );
    }

    #[test]
    fn proportional_parts_cover_the_amount() {
        let parts = proportional(&[dec!(1), dec!(1), dec!(1)], dec!(1));
        let total: Decimal = parts.iter().sum();
        assert!(total >= dec!(1), "{total}");
        assert_eq!(proportional(&[dec!(0)], dec!(1)), [Decimal::ZERO]);
    }

    #[test]
    fn smallest_under_prefers_dropping_the_later_of_equals() {
        let amounts = [dec!(0.5), dec!(0), dec!(0.5), dec!(2)];
        assert_eq!(
            smallest_under(&amounts, |_, amount| amount < dec!(1)),
            Some(2)
        );
        assert_eq!(
            smallest_under(&amounts, |_, amount| amount < dec!(0.1)),
            None
        );
    }

    fn cents(raw: &[i64]) -> Vec<Decimal> {
        raw.iter().map(|value| Decimal::new(*value, 2)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The shares are the water-filling optimum: within [0, need], summing
        /// to the budget (or every need), with one common remainder for every
        /// served need and unserved needs at or below it.
        #[test]
        fn shares_are_the_waterfilling_optimum(
            raw_needs in proptest::collection::vec(-10_000i64..1_000_000, 1..15),
            raw_budget in 1i64..3_000_000,
            at_most in any::<bool>(),
        ) {
            let needs = cents(&raw_needs);
            let budget = Decimal::new(raw_budget, 2);
            let bound = if at_most { Bound::AtMost } else { Bound::AtLeast };
            let shares = water_fill(&needs, budget, bound);
            let tolerance = dec!(0.000000001);
            let total: Decimal = shares.iter().sum();
            let total_need: Decimal = needs.iter().filter(|need| need.is_sign_positive()).sum();
            for (need, share) in needs.iter().zip(&shares) {
                prop_assert!(*share >= Decimal::ZERO);
                prop_assert!(*share <= (*need).max(Decimal::ZERO));
            }
            if total_need <= budget {
                prop_assert_eq!(total, total_need);
                return Ok(());
            }
            prop_assert!(bound.holds(total, budget), "{} vs {}", total, budget);
            prop_assert!((total - budget).abs() <= tolerance);
            let served: Vec<Decimal> = needs
                .iter()
                .zip(&shares)
                .filter(|(_, share)| !share.is_zero())
                .map(|(need, share)| *need - *share)
                .collect();
            let level = served.iter().copied().max().unwrap_or(Decimal::ZERO);
            for remainder in &served {
                prop_assert!(level - *remainder <= tolerance);
            }
            for (need, share) in needs.iter().zip(&shares) {
                if share.is_zero() {
                    prop_assert!(*need <= level + tolerance);
                }
            }
        }
    }
}

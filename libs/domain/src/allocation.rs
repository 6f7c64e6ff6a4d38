//! Fair allocation of a block's fills back to the account orders it was made
//! of: pro rata to what each order still needs, everyone at the fill's price,
//! whole-share orders getting whole shares, by the largest-remainder method.
//! The allocation of a fill always sums exactly to the fill, and no order gets
//! more than it asked for. Whole-share and fractional orders may share one
//! block: any fill whose fraction the fractional orders can take is split.

use rust_decimal::Decimal;

/// Smallest fractional quantity step (9 decimals).
pub const FRACTIONAL_STEP: Decimal = Decimal::from_parts(1, 0, 0, false, 9);

/// What one account order still needs from the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub remaining: Decimal,
    pub whole_shares: bool,
}

/// Why a fill cannot be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("fill of {fill} exceeds what the orders still need ({needed})")]
    Overfill { fill: Decimal, needed: Decimal },
    #[error("fill of {0} cannot be split into whole shares")]
    NotWhole(Decimal),
    #[error("fill quantity must be positive")]
    NotPositive,
}

/// The most a claim can take: whole units for whole-share claims, 9-decimal
/// steps otherwise (a remainder finer than the step cannot be given).
#[must_use]
pub fn capacity(claim: &Claim) -> Decimal {
    floor_to(claim.remaining.max(Decimal::ZERO), step_of(claim))
}

fn step_of(claim: &Claim) -> Decimal {
    if claim.whole_shares {
        Decimal::ONE
    } else {
        FRACTIONAL_STEP
    }
}

/// Splits `fill` across `claims`; returns one quantity per claim, in order.
///
/// The fill is first split between the whole-share claims and the
/// fractional ones, pro rata to what each group can take, rounded to whole
/// units for the whole-share group (the fractional group takes any
/// fraction); then within each group pro rata to each claim's capacity,
/// floored to the group's step, the last steps going to the largest
/// remainders (ties: the earlier claim).
///
/// # Errors
/// [`AllocationError`] when the fill is not positive, exceeds what the
/// claims can take, or cannot be split under the whole-share constraint
/// (its fraction exceeds what the fractional claims can take, or it is
/// finer than the fractional step).
pub fn allocate(fill: Decimal, claims: &[Claim]) -> Result<Vec<Decimal>, AllocationError> {
    if fill <= Decimal::ZERO {
        return Err(AllocationError::NotPositive);
    }
    let capacities: Vec<Decimal> = claims.iter().map(capacity).collect();
    let group_capacity = |whole: bool| -> Decimal {
        claims
            .iter()
            .zip(&capacities)
            .filter(|(claim, _)| claim.whole_shares == whole)
            .map(|(_, capacity)| *capacity)
            .sum()
    };
    let whole_capacity = group_capacity(true);
    let fractional_capacity = group_capacity(false);
    let needed = whole_capacity + fractional_capacity;
    if fill > needed {
        return Err(AllocationError::Overfill { fill, needed });
    }
    if !(fill / FRACTIONAL_STEP).fract().is_zero() {
        return Err(AllocationError::NotWhole(fill));
    }
    // Whole units for the whole-share group: as near its pro rata share as
    // the fractional group's room and the fill's own fraction allow.
    let lowest = (fill - fractional_capacity).ceil().max(Decimal::ZERO);
    let highest = fill.floor().min(whole_capacity);
    if lowest > highest {
        return Err(AllocationError::NotWhole(fill));
    }
    let whole_part = (fill * whole_capacity / needed)
        .round()
        .clamp(lowest, highest);
    let mut allocated = vec![Decimal::ZERO; claims.len()];
    for (whole, part) in [(true, whole_part), (false, fill - whole_part)] {
        let members: Vec<usize> = (0..claims.len())
            .filter(|index| claims[*index].whole_shares == whole)
            .collect();
        let step = if whole { Decimal::ONE } else { FRACTIONAL_STEP };
        let shares =
            pro_rata(part, step, &members, &capacities).ok_or(AllocationError::NotWhole(fill))?;
        for (index, share) in members.into_iter().zip(shares) {
            allocated[index] = share;
        }
    }
    Ok(allocated)
}

/// Splits `part` (a multiple of `step`, at most the members' capacities)
/// over `members` pro rata to their capacities, by largest remainder.
fn pro_rata(
    part: Decimal,
    step: Decimal,
    members: &[usize],
    capacities: &[Decimal],
) -> Option<Vec<Decimal>> {
    if part.is_zero() {
        return Some(vec![Decimal::ZERO; members.len()]);
    }
    let total: Decimal = members.iter().map(|index| capacities[*index]).sum();
    if total < part {
        return None;
    }
    let exact: Vec<Decimal> = members
        .iter()
        .map(|index| part * capacities[*index] / total)
        .collect();
    let mut shares: Vec<Decimal> = exact.iter().map(|share| floor_to(*share, step)).collect();
    let given: Decimal = shares.iter().sum();
    // Fewer steps left than members with a remainder: each takes at most one.
    let left = ((part - given) / step).round();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - shares[*b])
            .cmp(&(exact[*a] - shares[*a]))
            .then(a.cmp(b))
    });
    let mut steps_left = left;
    for position in order {
        if steps_left <= Decimal::ZERO {
            break;
        }
        if shares[position] + step <= capacities[members[position]] {
            shares[position] += step;
            steps_left -= Decimal::ONE;
        }
    }
    (steps_left.is_zero() && shares.iter().sum::<Decimal>() == part).then_some(shares)
}

/// Floors `value` to a multiple of `step`.
fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    (value / step).floor() * step
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    fn whole(remaining: Decimal) -> Claim {
        Claim {
            remaining,
            whole_shares: true,
        }
    }

    fn fractional(remaining: Decimal) -> Claim {
        Claim {
            remaining,
            whole_shares: false,
        }
    }

    #[test]
    fn pro_rata_whole_shares_by_largest_remainder() {
        // 10 shares over 3, 3 and 4 requested, fill 7: exact 2.1, 2.1, 2.8.
        let allocated = allocate(dec!(7), &[whole(dec!(3)), whole(dec!(3)), whole(dec!(4))])
            .expect("allocates");
        assert_eq!(allocated, [dec!(2), dec!(2), dec!(3)]);
    }

    #[test]
    fn fractional_orders_split_exactly() {
        let claims = [
            fractional(dec!(1)),
            fractional(dec!(1)),
            fractional(dec!(1)),
        ];
        let allocated = allocate(dec!(1), &claims).expect("allocates");
        assert_eq!(allocated.iter().sum::<Decimal>(), dec!(1));
        assert!(
            allocated
                .iter()
                .all(|a| *a >= dec!(0.333333333) && *a <= dec!(0.333333334))
        );
    }

    #[test]
    fn a_full_fill_gives_everyone_what_they_asked() {
        let claims = [
            whole(dec!(5)),
            fractional(dec!(2.5)),
            fractional(dec!(0.123456789)),
        ];
        let allocated = allocate(dec!(7.623456789), &claims).expect("allocates");
        assert_eq!(allocated, [dec!(5), dec!(2.5), dec!(0.123456789)]);
    }

    #[test]
    fn overfills_and_impossible_splits_are_errors() {
        assert!(matches!(
            allocate(dec!(11), &[whole(dec!(10))]),
            Err(AllocationError::Overfill { .. })
        ));
        assert_eq!(
            allocate(dec!(1.5), &[whole(dec!(1)), whole(dec!(1))]),
            Err(AllocationError::NotWhole(dec!(1.5)))
        );
        assert_eq!(
            allocate(dec!(0), &[whole(dec!(1))]),
            Err(AllocationError::NotPositive)
        );
    }

    #[test]
    fn whole_and_fractional_orders_share_a_fill() {
        // The fractional order cannot take 0.5 more: the whole one takes 3.
        let claims = [whole(dec!(3)), fractional(dec!(0.5))];
        let allocated = allocate(dec!(3), &claims).expect("allocates");
        assert_eq!(allocated.iter().sum::<Decimal>(), dec!(3));
        assert!(allocated[0].fract().is_zero());
        assert!(allocated[1] <= dec!(0.5));
        // A fraction larger than the fractional orders can take is refused.
        assert_eq!(
            allocate(dec!(2.7), &claims),
            Err(AllocationError::NotWhole(dec!(2.7)))
        );
    }

    #[test]
    fn remainders_finer_than_the_step_cannot_be_given() {
        // Two claims of 1.5 billionths: only one billionth each can be given.
        let claims = [
            fractional(dec!(0.0000000015)),
            fractional(dec!(0.0000000015)),
        ];
        assert_eq!(
            allocate(dec!(0.000000002), &claims).expect("allocates"),
            [dec!(0.000000001), dec!(0.000000001)]
        );
        assert!(matches!(
            allocate(dec!(0.000000003), &claims),
            Err(AllocationError::Overfill { .. })
        ));
    }

    #[test]
    fn a_thousand_orders_split_in_one_pass() {
        let claims: Vec<Claim> = (1..=1000)
            .map(|n| fractional(Decimal::new(n * 1_234_567, 9)))
            .collect();
        let needed: Decimal = claims.iter().map(|c| c.remaining).sum();
        let fill = floor_to(needed / dec!(3), FRACTIONAL_STEP);
        let allocated = allocate(fill, &claims).expect("allocates");
        assert_eq!(allocated.iter().sum::<Decimal>(), fill);
    }

    fn claims_strategy() -> impl Strategy<Value = Vec<Claim>> {
        proptest::collection::vec((1u64..5_000_000_000, any::<bool>()), 1..40).prop_map(|raw| {
            raw.into_iter()
                .map(|(units, whole_shares)| {
                    let remaining = if whole_shares {
                        Decimal::from(units % 500 + 1)
                    } else {
                        Decimal::new(i64::try_from(units).unwrap_or(1), 9)
                    };
                    Claim {
                        remaining,
                        whole_shares,
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every fill allocates exactly, within each order's need, whole
        /// shares to whole-share orders.
        #[test]
        fn allocations_sum_to_the_fill(claims in claims_strategy(), share in 1u32..=1000) {
            let needed: Decimal = claims.iter().map(|c| c.remaining).sum();
            let whole_needed: Decimal = claims.iter().filter(|c| c.whole_shares).map(|c| c.remaining).sum();
            let fractional_needed = needed - whole_needed;
            // A fill the orders can take: whole part in whole shares plus any fractional part.
            let whole_fill = (whole_needed * Decimal::from(share) / Decimal::from(1000)).floor();
            let fractional_fill = floor_to(fractional_needed * Decimal::from(share) / Decimal::from(1000), FRACTIONAL_STEP);
            let fill = whole_fill + fractional_fill;
            prop_assume!(fill > Decimal::ZERO);
            let allocated = allocate(fill, &claims).expect("allocates");
            prop_assert_eq!(allocated.iter().sum::<Decimal>(), fill);
            for (claim, given) in claims.iter().zip(&allocated) {
                prop_assert!(*given >= Decimal::ZERO);
                prop_assert!(*given <= claim.remaining);
                if claim.whole_shares {
                    prop_assert_eq!(given.fract(), Decimal::ZERO);
                }
            }
        }

        /// Any fill the claims can take is allocated: a whole number of
        /// shares the whole-share claims can take plus a fraction the
        /// fractional claims can take; and nothing beyond the claims.
        #[test]
        fn every_feasible_fill_is_allocated(
            claims in claims_strategy(),
            whole_share in 0u32..=1000,
            fractional_share in 0u32..=1000,
            extra in 0u64..3,
        ) {
            let whole_capacity: Decimal = claims.iter().filter(|c| c.whole_shares).map(capacity).sum();
            let fractional_capacity: Decimal = claims.iter().filter(|c| !c.whole_shares).map(capacity).sum();
            let whole_fill = (whole_capacity * Decimal::from(whole_share) / Decimal::from(1000)).floor();
            let fractional_fill = floor_to(
                fractional_capacity * Decimal::from(fractional_share) / Decimal::from(1000),
                FRACTIONAL_STEP,
            );
            let fill = whole_fill + fractional_fill;
            prop_assume!(fill > Decimal::ZERO);
            let allocated = allocate(fill, &claims).expect("a feasible fill allocates");
            prop_assert_eq!(allocated.iter().sum::<Decimal>(), fill);
            for (claim, given) in claims.iter().zip(&allocated) {
                prop_assert!(*given >= Decimal::ZERO && *given <= capacity(claim));
            }
            let beyond = whole_capacity + fractional_capacity + Decimal::from(extra + 1) * FRACTIONAL_STEP;
            let overfill = allocate(beyond, &claims);
            prop_assert!(matches!(overfill, Err(AllocationError::Overfill { .. })), "{:?}", overfill);
        }
    }
}

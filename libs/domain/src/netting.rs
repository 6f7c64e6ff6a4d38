//! Netting across accounts: the buys and sells of one symbol in a
//! transmission are crossed internally at one price (the arrival price), so
//! only the net quantity goes to the market. The crossed quantity is split
//! over each side pro rata (the fair allocation of [`crate::allocation`]),
//! and its cash over each side's orders to the cent, by largest remainder:
//! both sides cross exactly the same shares and exactly the same dollars.

use rust_decimal::Decimal;

use crate::allocation::{Claim, allocate, capacity};

const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// The part of each order crossed internally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// Shares crossed: bought by the buy orders and sold by the sell orders.
    pub quantity: Decimal,
    /// Shares crossed per buy order, in order.
    pub buys: Vec<Decimal>,
    /// Shares crossed per sell order, in order.
    pub sells: Vec<Decimal>,
}

impl Crossing {
    fn none(buys: usize, sells: usize) -> Self {
        Self {
            quantity: Decimal::ZERO,
            buys: vec![Decimal::ZERO; buys],
            sells: vec![Decimal::ZERO; sells],
        }
    }
}

/// Crosses as much as both sides can take: the smaller side in full when the
/// other side can take it under its whole-share constraints, else the whole
/// shares of it (which any side can always take).
#[must_use]
pub fn cross(buys: &[Claim], sells: &[Claim]) -> Crossing {
    let total = |claims: &[Claim]| -> Decimal { claims.iter().map(capacity).sum() };
    let most = total(buys).min(total(sells));
    for candidate in [most, most.floor()] {
        if candidate <= Decimal::ZERO {
            continue;
        }
        if let (Ok(bought), Ok(sold)) = (allocate(candidate, buys), allocate(candidate, sells)) {
            return Crossing {
                quantity: candidate,
                buys: bought,
                sells: sold,
            };
        }
    }
    Crossing::none(buys.len(), sells.len())
}

/// The cash of a cross for one side's orders: `shares[i] × price` each, to
/// the cent, summing exactly to the value of all the shares rounded to the
/// cent (so both sides of a cross move the same dollars). Each amount is the
/// exact value floored or raised to the cent; the raised ones are those with
/// the largest remainders (ties: the earlier order).
#[must_use]
pub fn cross_amounts(price: Decimal, shares: &[Decimal]) -> Vec<Decimal> {
    let exact: Vec<Decimal> = shares.iter().map(|quantity| quantity * price).collect();
    let total = (shares.iter().sum::<Decimal>() * price).round_dp(2);
    let mut amounts: Vec<Decimal> = exact.iter().map(|value| floor_cents(*value)).collect();
    let mut left = ((total - amounts.iter().sum::<Decimal>()) / CENT).round();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - amounts[*b])
            .cmp(&(exact[*a] - amounts[*a]))
            .then(a.cmp(b))
    });
    for index in order {
        if left <= Decimal::ZERO {
            break;
        }
        amounts[index] += CENT;
        left -= Decimal::ONE;
    }
    amounts
}

fn floor_cents(value: Decimal) -> Decimal {
    (value / CENT).floor() * CENT
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
    fn the_smaller_side_crosses_in_full() {
        let buys = [fractional(dec!(10.5)), fractional(dec!(4.5))];
        let sells = [fractional(dec!(6)), whole(dec!(3))];
        let crossing = cross(&buys, &sells);
        assert_eq!(crossing.quantity, dec!(9));
        assert_eq!(crossing.sells, [dec!(6), dec!(3)]);
        assert_eq!(crossing.buys, [dec!(6.3), dec!(2.7)]);
    }

    #[test]
    fn whole_shares_on_the_larger_side_cross_whole() {
        // 2.5 fractional shares to sell, only whole-share buyers: 2 cross.
        let crossing = cross(&[whole(dec!(10))], &[fractional(dec!(2.5))]);
        assert_eq!(crossing.quantity, dec!(2));
        assert_eq!(crossing.buys, [dec!(2)]);
        assert_eq!(crossing.sells, [dec!(2)]);
        // Nothing to cross against.
        let crossing = cross(&[whole(dec!(10))], &[]);
        assert_eq!(crossing.quantity, Decimal::ZERO);
        assert_eq!(crossing.buys, [Decimal::ZERO]);
        let crossing = cross(&[whole(dec!(1))], &[fractional(dec!(0.4))]);
        assert_eq!(crossing.quantity, Decimal::ZERO);
    }

    #[test]
    fn cash_splits_to_the_cent_and_sums_exactly() {
        let amounts = cross_amounts(dec!(100.003), &[dec!(1), dec!(1), dec!(1)]);
        // 300.009 → 300.01: one order pays the extra cent.
        assert_eq!(amounts, [dec!(100.01), dec!(100.00), dec!(100.00)]);
        assert_eq!(
            cross_amounts(dec!(100.003), &[dec!(3)]),
            [dec!(300.01)],
            "the other side moves the same dollars"
        );
    }

    fn side() -> impl Strategy<Value = Vec<Claim>> {
        proptest::collection::vec((1u64..2_000_000_000_000, any::<bool>()), 0..30).prop_map(|raw| {
            raw.into_iter()
                .map(|(units, whole_shares)| {
                    if whole_shares {
                        whole(Decimal::from(units % 300 + 1))
                    } else {
                        fractional(Decimal::new(i64::try_from(units).unwrap_or(1), 9))
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Crossed buys equal crossed sells, in shares and in cash; nobody
        /// crosses more than it asked; whole-share orders cross whole shares.
        #[test]
        fn crossing_conserves_shares_and_cash(
            buys in side(),
            sells in side(),
            price_cents in 1i64..100_000_000,
        ) {
            let crossing = cross(&buys, &sells);
            let bought: Decimal = crossing.buys.iter().sum();
            let sold: Decimal = crossing.sells.iter().sum();
            prop_assert_eq!(bought, crossing.quantity);
            prop_assert_eq!(sold, crossing.quantity);
            let most = buys.iter().map(capacity).sum::<Decimal>().min(sells.iter().map(capacity).sum());
            prop_assert!(crossing.quantity <= most);
            prop_assert!(crossing.quantity >= most.floor(), "crosses at least the whole shares");
            for (claims, crossed) in [(&buys, &crossing.buys), (&sells, &crossing.sells)] {
                prop_assert_eq!(claims.len(), crossed.len());
                for (claim, shares) in claims.iter().zip(crossed.iter()) {
                    prop_assert!(*shares >= Decimal::ZERO && *shares <= claim.remaining);
                    if claim.whole_shares {
                        prop_assert!(shares.fract().is_zero());
                    }
                }
            }
            let price = Decimal::new(price_cents, 4);
            let paid = cross_amounts(price, &crossing.buys);
            let received = cross_amounts(price, &crossing.sells);
            prop_assert_eq!(paid.iter().sum::<Decimal>(), received.iter().sum::<Decimal>());
            prop_assert_eq!(paid.iter().sum::<Decimal>(), (crossing.quantity * price).round_dp(2));
            for (shares, amount) in crossing.buys.iter().chain(&crossing.sells).zip(paid.iter().chain(&received)) {
                prop_assert!((shares * price - amount).abs() < CENT);
                prop_assert_eq!(amount.round_dp(2), *amount);
            }
        }
    }
}

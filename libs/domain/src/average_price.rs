//! Block average pricing: every account order of a block is settled at the
//! block's volume-weighted average price, as RIA block-trading policies
//! require, whatever fills its shares came from.
//!
//! The block's cash total is what its fills moved, to the cent, over all its
//! orders. Each order's share of it is `total × its shares / block shares`,
//! floored to the cent; the cents left over go one each to the orders with
//! the largest remainders (ties to the earlier order). So the amounts sum to
//! the total exactly, and no two orders' prices differ by more than a cent
//! over their shares.

use rust_decimal::Decimal;

const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// What one account order got from the block: shares and the cash they moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    pub quantity: Decimal,
    /// Cash moved, to the cent (positive for both sides).
    pub amount: Decimal,
}

/// The cash each order moves at the block's average price, in order; the
/// amounts sum exactly to the amounts moved. Orders without shares keep
/// their amount (zero).
#[must_use]
pub fn at_average_price(orders: &[Filled]) -> Vec<Decimal> {
    let shares: Decimal = orders.iter().map(|o| o.quantity).sum();
    let total: Decimal = orders.iter().map(|o| o.amount).sum();
    if shares <= Decimal::ZERO {
        return orders.iter().map(|o| o.amount).collect();
    }
    let exact: Vec<Decimal> = orders.iter().map(|o| total * o.quantity / shares).collect();
    let mut amounts: Vec<Decimal> = exact
        .iter()
        .map(|value| (value / CENT).floor() * CENT)
        .collect();
    let assigned: Decimal = amounts.iter().sum();
    let residue = ((total - assigned) / CENT).round();
    let mut order: Vec<usize> = (0..orders.len())
        .filter(|index| orders[*index].quantity > Decimal::ZERO)
        .collect();
    order.sort_by(|a, b| {
        let left = exact[*a] - amounts[*a];
        let right = exact[*b] - amounts[*b];
        right.cmp(&left).then(a.cmp(b))
    });
    let cents = usize::try_from(residue.mantissa()).unwrap_or(0);
    for index in order.into_iter().cycle().take(cents) {
        amounts[index] += CENT;
    }
    amounts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn accounts_pay_one_price_and_the_cents_add_up() {
        // Two fills (3 @ 100.00 and 3 @ 101.00) split 4/2 by whole shares:
        // account A got 3 @ 100 + 1 @ 101, B got 2 @ 101.
        let orders = [
            Filled {
                quantity: dec!(4),
                amount: dec!(401.00),
            },
            Filled {
                quantity: dec!(2),
                amount: dec!(202.00),
            },
        ];
        let amounts = at_average_price(&orders);
        assert_eq!(amounts, [dec!(402.00), dec!(201.00)]);
        // 100.50 a share each.
        assert_eq!(amounts[0] / dec!(4), amounts[1] / dec!(2));
    }

    #[test]
    fn residue_cents_go_to_the_largest_remainders_then_the_earliest() {
        let orders = [
            Filled {
                quantity: dec!(1),
                amount: dec!(0.50),
            },
            Filled {
                quantity: dec!(1),
                amount: dec!(0.25),
            },
            Filled {
                quantity: dec!(1),
                amount: dec!(0.25),
            },
        ];
        // 1.00 over three equal orders: 0.33 each and one cent to the first.
        assert_eq!(
            at_average_price(&orders),
            [dec!(0.34), dec!(0.33), dec!(0.33)]
        );
    }

    proptest! {
        #[test]
        fn amounts_sum_exactly_and_prices_agree_within_a_cent(
            fills in prop::collection::vec((1u32..500, 1u32..10_000_000), 1..12),
        ) {
            let orders: Vec<Filled> = fills
                .iter()
                .map(|(quantity, cents)| Filled {
                    quantity: Decimal::from(*quantity),
                    amount: Decimal::new(i64::from(*cents), 2),
                })
                .collect();
            let amounts = at_average_price(&orders);
            let total: Decimal = orders.iter().map(|o| o.amount).sum();
            prop_assert_eq!(amounts.iter().sum::<Decimal>(), total);
            let shares: Decimal = orders.iter().map(|o| o.quantity).sum();
            let average = total / shares;
            for (order, amount) in orders.iter().zip(&amounts) {
                prop_assert_eq!(amount.round_dp(2), *amount);
                prop_assert!((*amount - average * order.quantity).abs() < CENT);
            }
        }
    }
}

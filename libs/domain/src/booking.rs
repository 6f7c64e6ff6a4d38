//! Booking fills to an account: how an allocation moves the account's cash
//! and its position in the symbol (quantity, average cost). The account book
//! stores the result; this is the arithmetic, in one place.

use rust_decimal::Decimal;

use crate::trades::Side;

/// An account's position in one symbol; zero quantity means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub quantity: Decimal,
    /// Per share, 6 decimals.
    pub average_cost: Decimal,
}

/// One allocation of a fill to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booking {
    pub side: Side,
    pub quantity: Decimal,
    pub price: Decimal,
    /// Cash the allocation moves, to the cent (positive).
    pub amount: Decimal,
}

/// The account's cash and position after bookings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    pub cash: Decimal,
    pub position: Position,
    /// Shares sold beyond what the position held (the position stops at zero).
    pub oversold: Decimal,
}

/// Applies `bookings` in order: a buy adds shares at its price to the
/// average cost and pays its amount; a sell removes shares (never below
/// zero: the excess is reported as `oversold`) and receives its amount; the
/// average cost of what remains is unchanged by a sale.
#[must_use]
pub fn book(cash: Decimal, position: Position, bookings: &[Booking]) -> Booked {
    let mut booked = Booked {
        cash,
        position,
        oversold: Decimal::ZERO,
    };
    for booking in bookings {
        let held = booked.position;
        match booking.side {
            Side::Buy => {
                let after = held.quantity + booking.quantity;
                if after > Decimal::ZERO {
                    booked.position.average_cost = ((held.quantity * held.average_cost
                        + booking.quantity * booking.price)
                        / after)
                        .round_dp(6);
                }
                booked.position.quantity = after;
                booked.cash -= booking.amount;
            }
            Side::Sell => {
                if booking.quantity > held.quantity {
                    booked.oversold += booking.quantity - held.quantity;
                }
                booked.position.quantity = (held.quantity - booking.quantity).max(Decimal::ZERO);
                booked.cash += booking.amount;
            }
        }
    }
    if booked.position.quantity.is_zero() {
        booked.position.average_cost = Decimal::ZERO;
    }
    booked
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    fn buy(quantity: Decimal, price: Decimal) -> Booking {
        Booking {
            side: Side::Buy,
            quantity,
            price,
            amount: (quantity * price).round_dp(2),
        }
    }

    fn sell(quantity: Decimal, price: Decimal) -> Booking {
        Booking {
            side: Side::Sell,
            ..buy(quantity, price)
        }
    }

    #[test]
    fn buys_average_the_cost_and_sells_keep_it() {
        let start = Position {
            quantity: dec!(10),
            average_cost: dec!(100),
        };
        let booked = book(
            dec!(1000),
            start,
            &[buy(dec!(10), dec!(110)), sell(dec!(5), dec!(120))],
        );
        assert_eq!(booked.position.quantity, dec!(15));
        assert_eq!(booked.position.average_cost, dec!(105));
        assert_eq!(booked.cash, dec!(1000) - dec!(1100) + dec!(600));
        assert_eq!(booked.oversold, Decimal::ZERO);
    }

    #[test]
    fn a_sale_beyond_the_position_is_reported() {
        let start = Position {
            quantity: dec!(10),
            average_cost: dec!(100),
        };
        let booked = book(Decimal::ZERO, start, &[sell(dec!(100), dec!(360))]);
        assert_eq!(booked.position, Position::default());
        assert_eq!(booked.oversold, dec!(90));
    }

    proptest! {
        /// Cash moves by exactly the allocations' amounts; shares by their
        /// quantities, less what was oversold.
        #[test]
        fn cash_and_shares_are_conserved(
            start in 0_i64..1_000,
            trades in prop::collection::vec((any::<bool>(), 1_i64..500, 1_i64..100_000), 0..20),
        ) {
            let bookings: Vec<Booking> = trades
                .iter()
                .map(|&(is_buy, quantity, cents)| {
                    let (quantity, price) = (Decimal::from(quantity), Decimal::new(cents, 2));
                    if is_buy { buy(quantity, price) } else { sell(quantity, price) }
                })
                .collect();
            let position = Position { quantity: Decimal::from(start), average_cost: dec!(50) };
            let booked = book(dec!(10000), position, &bookings);
            let cash_flow: Decimal = bookings
                .iter()
                .map(|b| if b.side == Side::Buy { -b.amount } else { b.amount })
                .sum();
            prop_assert_eq!(booked.cash, dec!(10000) + cash_flow);
            let share_flow: Decimal = bookings
                .iter()
                .map(|b| if b.side == Side::Buy { b.quantity } else { -b.quantity })
                .sum();
            prop_assert_eq!(
                booked.position.quantity,
                Decimal::from(start) + share_flow + booked.oversold
            );
            prop_assert!(booked.position.quantity >= Decimal::ZERO);
        }
    }
}

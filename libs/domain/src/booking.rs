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
    /// Cash the allocation moves, to the cent: positive, except for a price
    /// correction (no shares), which may go either way.
    pub amount: Decimal,
}

/// The account's cash and position after bookings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    pub cash: Decimal,
    pub position: Position,
    /// Shares sold beyond what the position held (the position stops at zero).
    pub oversold: Decimal,
    /// Proceeds of those shares: never credited (a break to report).
    pub unbooked: Decimal,
}

/// Applies `bookings` in order: a buy adds shares at its price to the
/// average cost and pays its amount; a sell removes shares and receives its
/// amount, never below zero shares: the excess is reported as `oversold` and
/// its share of the proceeds as `unbooked`, never credited. The average cost
/// of what remains is unchanged by a sale. A booking without shares is a
/// price correction (the block's average price): it moves its amount, and on
/// a buy changes the cost of the shares held.
#[must_use]
pub fn book(cash: Decimal, position: Position, bookings: &[Booking]) -> Booked {
    let mut booked = Booked {
        cash,
        position,
        oversold: Decimal::ZERO,
        unbooked: Decimal::ZERO,
    };
    for booking in bookings {
        let held = booked.position;
        match booking.side {
            Side::Buy if booking.quantity.is_zero() => {
                if held.quantity > Decimal::ZERO {
                    booked.position.average_cost =
                        ((held.quantity * held.average_cost + booking.amount) / held.quantity)
                            .round_dp(6);
                }
                booked.cash -= booking.amount;
            }
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
                let mut amount = booking.amount;
                if booking.quantity > held.quantity {
                    booked.oversold += booking.quantity - held.quantity;
                    // Only the shares held are paid for.
                    let credited = (amount * held.quantity / booking.quantity).round_dp(2);
                    booked.unbooked += amount - credited;
                    amount = credited;
                }
                booked.position.quantity = (held.quantity - booking.quantity).max(Decimal::ZERO);
                booked.cash += amount;
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
        // Only the 10 shares held are paid for: no phantom proceeds.
        assert_eq!(booked.cash, dec!(3600));
        assert_eq!(booked.unbooked, dec!(32400));
    }

    #[test]
    fn a_price_correction_moves_cash_and_the_cost_of_what_is_held() {
        let start = Position {
            quantity: dec!(4),
            average_cost: dec!(100.25),
        };
        let correction = Booking {
            side: Side::Buy,
            quantity: Decimal::ZERO,
            price: dec!(100.5),
            amount: dec!(1.00),
        };
        let booked = book(dec!(10), start, &[correction]);
        assert_eq!(booked.cash, dec!(9));
        assert_eq!(booked.position.quantity, dec!(4));
        assert_eq!(booked.position.average_cost, dec!(100.5));
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
            prop_assert_eq!(booked.cash, dec!(10000) + cash_flow - booked.unbooked);
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

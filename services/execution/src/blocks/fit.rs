//! Fitting account orders to their accounts before each slice (pure). A
//! plan can be wrong by the time it trades: positions lowered by an upsert,
//! sells that filled below their estimate, cash withdrawn. So before every
//! slice, sells are cut to the shares the account holds now, and buys to
//! the cash it can spend now: its buying power (cash less withdrawals
//! requested, plus any margin limit), shared among its open buy orders in
//! proportion to what each still needs, with [`BUY_PRICE_BUFFER`] kept back
//! for the distance between the quote a slice is sized on and its fill
//! price (the paper broker's slippage is at most 6 bp) and the move to the
//! block's average price. An order with nothing left it can trade ends
//! CANCELED with the reason.

use std::collections::HashMap;

use rebalancer_domain::allocation::FRACTIONAL_STEP;
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

use crate::blocks::decide::{CENT, Leg, floor_to, still_needed};
use crate::blocks::store::{AccountRoom, OrderCap};
use crate::runs::store::OrderRecord;

/// Share of a buy's value kept back from the cash it may spend when the cash
/// is short: 0.2%, over three times the paper broker's worst slippage.
pub(super) const BUY_PRICE_BUFFER: Decimal = Decimal::from_parts(2, 0, 0, false, 3);

/// A buy cut by less than this share of what it still needed (sales that
/// filled a little below their estimate) is trimmed, not a change of plan:
/// its run still completes as planned.
const TRIM: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// How a cut order's reason starts when the cut changes the plan (the run
/// then completes adjusted), and when it only trims a buy.
pub(super) const CUT: &str = "cut to";
const TRIMMED: &str = "trimmed to";

/// Whether an order's reason says its plan was changed on the way (a cut,
/// or a break while booking).
pub(super) fn changed_the_plan(reason: &str) -> bool {
    reason.starts_with(CUT) || reason.starts_with("break:")
}

/// What a buy order still needs, in dollars at `price`.
pub(super) fn buy_value(order: &OrderRecord, price: Decimal) -> Decimal {
    match Leg::of(order) {
        Leg::Dollars => still_needed(order),
        Leg::Shares | Leg::Whole => still_needed(order) * price,
    }
    .max(Decimal::ZERO)
}

/// The orders of a block (all one side) that their accounts cannot trade
/// in full now, cut to what they can; `reference` is the price the block
/// trades at now.
pub(super) fn fit_to_accounts(
    side: Side,
    open: &[&OrderRecord],
    rooms: &HashMap<String, AccountRoom>,
    reference: Decimal,
) -> Vec<OrderCap> {
    if reference <= Decimal::ZERO {
        return Vec::new();
    }
    open.iter()
        .filter_map(|order| {
            let room = rooms.get(&order.account_id)?;
            match side {
                Side::Sell => fit_sell(order, room.held, reference),
                Side::Buy => fit_buy(order, room, reference),
            }
        })
        .collect()
}

fn fit_sell(order: &OrderRecord, held: Decimal, reference: Decimal) -> Option<OrderCap> {
    let leg = Leg::of(order);
    let left = still_needed(order);
    let allowed = match leg {
        // Dollars: what the shares held fetch, with the buffer for a lower fill.
        Leg::Dollars => floor_to(held * reference * (Decimal::ONE - BUY_PRICE_BUFFER), CENT),
        Leg::Shares => floor_to(held, FRACTIONAL_STEP),
        Leg::Whole => held.floor(),
    };
    if left <= allowed {
        return None;
    }
    // Dollars a little above what the shares fetch (a lower price since the
    // plan) are trimmed; shares the account no longer holds change the plan.
    let verb = if leg == Leg::Dollars && allowed >= left * (Decimal::ONE - TRIM) {
        TRIMMED
    } else {
        CUT
    };
    Some(cap(
        order,
        allowed,
        format!("{verb} the {held} {} the account holds now", order.symbol),
    ))
}

fn fit_buy(order: &OrderRecord, room: &AccountRoom, reference: Decimal) -> Option<OrderCap> {
    let needed = buy_value(order, reference) * (Decimal::ONE + BUY_PRICE_BUFFER);
    let all = needed + room.other_buys * (Decimal::ONE + BUY_PRICE_BUFFER);
    let power = room.limits.buying_power();
    if all <= power || needed <= Decimal::ZERO {
        return None;
    }
    // This order's share of the buying power, less the buffer.
    let dollars = power * needed / all / (Decimal::ONE + BUY_PRICE_BUFFER);
    let wanted = buy_value(order, reference);
    let verb = if dollars >= wanted * (Decimal::ONE - TRIM) {
        TRIMMED
    } else {
        CUT
    };
    let allowed = match Leg::of(order) {
        Leg::Dollars => floor_to(dollars, CENT),
        Leg::Shares => floor_to(dollars / reference, FRACTIONAL_STEP),
        Leg::Whole => (dollars / reference).floor(),
    };
    Some(cap(
        order,
        allowed,
        format!(
            "{verb} the cash the account can spend now ({} of buying power)",
            power.round_dp(2)
        ),
    ))
}

/// The order cut so that `allowed` (in its leg's unit) is what it still
/// trades; ended when that is below the leg's smallest amount.
fn cap(order: &OrderRecord, allowed: Decimal, reason: String) -> OrderCap {
    let leg = Leg::of(order);
    let allowed = allowed.max(Decimal::ZERO);
    let ended = allowed < leg.threshold();
    let (quantity, notional) = match leg {
        Leg::Dollars => (
            order.quantity,
            Some(order.filled_notional + if ended { Decimal::ZERO } else { allowed }),
        ),
        Leg::Shares | Leg::Whole => (
            order.filled_quantity + if ended { Decimal::ZERO } else { allowed },
            order.notional,
        ),
    };
    OrderCap {
        order_id: order.id.clone(),
        quantity,
        notional,
        status: if ended {
            OrderStatus::Canceled
        } else {
            order.status
        },
        reason,
    }
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;

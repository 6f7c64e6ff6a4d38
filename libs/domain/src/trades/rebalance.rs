//! Full rebalance: sell what is above target, then buy what is below with the
//! proceeds and the cash above the cash target.
//!
//! Sells come first because they fund the buys. A sell never takes a position
//! below its target (notional sells round down to the cent); whole-share
//! sells take the share count nearest to the excess, the one leaving the
//! position closest to its target.

use rust_decimal::Decimal;

use super::book::{Book, Line};
use super::buys::buy_towards_targets;
use super::ledger::{Ledger, Refusal, close_position, notional_order, quantity_order};
use super::rounding::{CENT, floor_cents, nearest_whole};
use super::tax_limits::cap_sell;
use super::{PlannedOrder, Side, SkipReason};

/// Plans the sells, then the buys, of a full rebalance.
pub(super) fn full_rebalance(book: &Book, ledger: &mut Ledger) {
    for line in &book.lines {
        let target = book.target_value(line);
        let excess = line.value - target;
        // Less than a cent over target is on target.
        if excess < CENT {
            continue;
        }
        if let Some(drift) = book.within_minimum_drift(line) {
            ledger.refuse(line, Side::Sell, minimum_drift_refusal(line, excess, drift));
            continue;
        }
        let sized = rebalance_sell(book, line, target, excess);
        match sized {
            Ok(order) => {
                let (kept, held_back) = cap_sell(line, order);
                if let Some(order) = kept {
                    ledger.place(order);
                }
                if let Some(refusal) = held_back {
                    ledger.refuse(line, Side::Sell, refusal);
                }
            }
            Err(refusal) => ledger.refuse(line, Side::Sell, refusal),
        }
    }
    let budget = book.cash + ledger.proceeds() - book.cash_target();
    buy_towards_targets(book, budget, ledger, true);
}

/// Why an asset within its minimum drift is not traded.
pub(super) fn minimum_drift_refusal(line: &Line, dollars: Decimal, drift: Decimal) -> Refusal {
    Refusal::new(
        SkipReason::BelowMinimumDrift,
        floor_cents(dollars),
        format!(
            "{} is {} points from its target, within its minimum drift of {}",
            line.symbol,
            drift.round_dp(2),
            line.minimum_drift.unwrap_or_default().normalize()
        ),
    )
}

/// The sell bringing `line` down to `target`, or why there is none.
fn rebalance_sell(
    book: &Book,
    line: &Line,
    target: Decimal,
    excess: Decimal,
) -> Result<PlannedOrder, Refusal> {
    let wanted = floor_cents(excess);
    if !line.tradable {
        return Err(Refusal::new(
            SkipReason::NotTradable,
            wanted,
            format!("{} is not tradable: position kept as is", line.symbol),
        ));
    }
    if book.sells_blocked {
        return Err(Refusal::new(
            SkipReason::Restricted,
            wanted,
            "the account may not sell".to_owned(),
        ));
    }
    if line.sell_restricted {
        return Err(Refusal::new(
            SkipReason::Restricted,
            wanted,
            format!(
                "{} is restricted from selling in this account: position kept",
                line.symbol
            ),
        ));
    }
    if target.is_zero() {
        return sell_entire_position(line, line.minimum);
    }
    if line.sized_in_dollars {
        sell_dollars(line, wanted, line.minimum)
    } else {
        sell_nearest_shares(line, excess, line.minimum)
    }
}

/// A position the target drops is closed by quantity, whatever its sizing,
/// so nothing is left behind; unless it is worth less than the minimum order.
fn sell_entire_position(line: &Line, minimum: Decimal) -> Result<PlannedOrder, Refusal> {
    if line.value < minimum {
        return Err(Refusal::below_minimum(
            line,
            floor_cents(line.value),
            minimum,
        ));
    }
    Ok(close_position(line))
}

/// Sells the excess rounded down to the cent, so the position stays at or
/// just above its target.
fn sell_dollars(line: &Line, notional: Decimal, minimum: Decimal) -> Result<PlannedOrder, Refusal> {
    if notional < minimum {
        return Err(Refusal::below_minimum(line, notional, minimum));
    }
    notional_order(line, Side::Sell, notional)
}

/// Sells the whole number of shares nearest to the excess.
fn sell_nearest_shares(
    line: &Line,
    excess: Decimal,
    minimum: Decimal,
) -> Result<PlannedOrder, Refusal> {
    let shares = nearest_whole(excess / line.price);
    if shares >= line.held {
        return sell_entire_position(line, minimum);
    }
    if shares.is_zero() {
        return Err(Refusal::new(
            SkipReason::RoundsToZero,
            floor_cents(excess),
            format!(
                "{} is ${} over target, less than half a share at ${}",
                line.symbol,
                floor_cents(excess),
                line.price
            ),
        ));
    }
    let proceeds = shares * line.price;
    if proceeds < minimum {
        return Err(Refusal::below_minimum(line, floor_cents(proceeds), minimum));
    }
    Ok(quantity_order(line, Side::Sell, shares))
}

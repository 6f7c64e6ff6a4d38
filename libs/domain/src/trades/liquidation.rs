//! Liquidations: raising cash for a withdrawal, or selling everything.
//!
//! A withdrawal of A leaves E − A invested, so the positions are measured
//! against the target on that remaining equity and the cash is raised from
//! the most overweight first (water-filling over the excesses). What the
//! excesses cannot cover is sold in proportion to what remains, which keeps
//! the remaining positions at their relative weights. Sells round up (cents or
//! shares) so the amount is never missed by rounding, and the amount carries
//! [`LIQUIDATION_BUFFER`] so price moves before execution do not miss it
//! either.

use rust_decimal::Decimal;

use super::book::{Book, Line};
use super::ledger::{Ledger, Refusal, close_position, notional_order, quantity_order};
use super::rounding::{CENT, ceil_cents, floor_cents, percent_share};
use super::waterfill::{Bound, proportional, smallest_under, water_fill};
use super::{LIQUIDATION_BUFFER, PlannedOrder, Side, SkipReason};

/// A held position a liquidation may sell from.
#[derive(Debug, Clone, Copy)]
struct SaleCandidate<'a> {
    line: &'a Line,
    /// Dollars above its target on the remaining equity (negative when below).
    excess: Decimal,
}

/// Dollars to raise per candidate, once the minimum order was enforced.
#[derive(Debug, Default)]
struct Sales {
    /// Candidate position and the dollars to raise from it (positive).
    sales: Vec<(usize, Decimal)>,
    /// Candidate position and the dollars it would have raised.
    dropped: Vec<(usize, Decimal)>,
}

/// Sells every tradable position entirely, whatever the target.
pub(super) fn liquidate_everything(book: &Book, ledger: &mut Ledger) {
    for line in book.lines.iter().filter(|line| line.held > Decimal::ZERO) {
        match blocked_sale(book, line, floor_cents(line.value)) {
            Some(refusal) => ledger.refuse(line, Side::Sell, refusal),
            None => ledger.place(close_position(line)),
        }
    }
}

/// Raises at least `amount` plus the buffer, on top of the cash the target
/// keeps on what remains.
pub(super) fn raise_cash(book: &Book, amount: Decimal, ledger: &mut Ledger) {
    if amount <= Decimal::ZERO {
        return;
    }
    let remaining_equity = (book.equity - amount).max(Decimal::ZERO);
    let cash_target_after = percent_share(remaining_equity, book.cash_percent);
    let required = amount * (Decimal::ONE + LIQUIDATION_BUFFER) + cash_target_after - book.cash;
    if required <= Decimal::ZERO {
        return;
    }
    let candidates: Vec<SaleCandidate<'_>> = book
        .lines
        .iter()
        .filter(|line| line.held > Decimal::ZERO)
        .map(|line| SaleCandidate {
            line,
            excess: line.value - percent_share(remaining_equity, line.target_percent),
        })
        .collect();
    report_blocked_sales(book, &candidates, required, ledger);
    let sellable: Vec<SaleCandidate<'_>> = candidates
        .iter()
        .copied()
        .filter(|candidate| may_sell(book, candidate.line))
        .collect();
    let sales = sales_with_minimum(&sellable, required);
    for (index, dollars) in sales.dropped {
        let line = sellable[index].line;
        let notional = ceil_cents(dollars);
        let detail = format!(
            "${notional} of {} is below the minimum order of ${} and the other sales cover the amount",
            line.symbol, line.minimum
        );
        let refusal = Refusal::new(SkipReason::BelowMinimumNotional, notional, detail);
        ledger.refuse(line, Side::Sell, refusal);
    }
    for (index, dollars) in sales.sales {
        let line = sellable[index].line;
        ledger.place_or_refuse(line, Side::Sell, sale_order(line, dollars));
    }
}

fn may_sell(book: &Book, line: &Line) -> bool {
    line.tradable && !book.sells_blocked && !line.sell_restricted
}

/// Why `line` may not be sold at all, if it may not.
fn blocked_sale(book: &Book, line: &Line, notional: Decimal) -> Option<Refusal> {
    if !line.tradable {
        let detail = format!("{} is not tradable: position kept as is", line.symbol);
        return Some(Refusal::new(SkipReason::NotTradable, notional, detail));
    }
    if book.sells_blocked {
        let detail = "the account may not sell".to_owned();
        return Some(Refusal::new(SkipReason::Restricted, notional, detail));
    }
    if line.sell_restricted {
        let detail = format!(
            "{} is restricted from selling in this account: position kept",
            line.symbol
        );
        return Some(Refusal::new(SkipReason::Restricted, notional, detail));
    }
    None
}

/// Reports the positions the liquidation would have sold from had they been
/// sellable; the others cover for them.
fn report_blocked_sales(
    book: &Book,
    candidates: &[SaleCandidate<'_>],
    required: Decimal,
    ledger: &mut Ledger,
) {
    let wanted = allocate_sales(candidates, required);
    for (candidate, dollars) in candidates.iter().zip(wanted) {
        if dollars < CENT {
            continue;
        }
        if let Some(refusal) = blocked_sale(book, candidate.line, ceil_cents(dollars)) {
            ledger.refuse(candidate.line, Side::Sell, refusal);
        }
    }
}

/// Dollars to raise from each candidate so they add up to at least
/// `required` (or everything when that is not enough): first the excesses,
/// most overweight first, then the rest in proportion.
fn allocate_sales(candidates: &[SaleCandidate<'_>], required: Decimal) -> Vec<Decimal> {
    if required <= Decimal::ZERO {
        return vec![Decimal::ZERO; candidates.len()];
    }
    let excesses: Vec<Decimal> = candidates
        .iter()
        .map(|candidate| candidate.excess.max(Decimal::ZERO))
        .collect();
    let total_excess: Decimal = excesses.iter().sum();
    if required <= total_excess {
        return water_fill(&excesses, required, Bound::AtLeast);
    }
    let rests: Vec<Decimal> = candidates
        .iter()
        .zip(&excesses)
        .map(|(candidate, excess)| candidate.line.value - *excess)
        .collect();
    let shortfall = required - total_excess;
    let total_rest: Decimal = rests.iter().sum();
    if shortfall >= total_rest {
        return candidates
            .iter()
            .map(|candidate| candidate.line.value)
            .collect();
    }
    excesses
        .iter()
        .zip(proportional(&rests, shortfall))
        .map(|(excess, extra)| *excess + extra)
        .collect()
}

/// Allocates the sales, then enforces the minimum order: the smallest sale
/// under it is dropped when the others can raise the amount without it, and
/// raised to the minimum (or to the whole position, when that is worth less)
/// when they cannot. When what is left to raise is itself under the minimum,
/// one sale of the minimum from the most overweight position covers it.
fn sales_with_minimum(candidates: &[SaleCandidate<'_>], required: Decimal) -> Sales {
    let mut free: Vec<usize> = (0..candidates.len()).collect();
    let mut pinned: Vec<(usize, Decimal)> = Vec::new();
    let mut dropped = Vec::new();
    loop {
        let pinned_total: Decimal = pinned.iter().map(|(_, dollars)| *dollars).sum();
        let still_required = required - pinned_total;
        let free_candidates: Vec<SaleCandidate<'_>> =
            free.iter().map(|index| candidates[*index]).collect();
        let dollars = allocate_sales(&free_candidates, still_required);
        let minimum = |position: usize| candidates[free[position]].line.minimum;
        let under_minimum =
            |position: usize, amount: Decimal| ceil_cents(amount) < minimum(position);
        let Some(position) = smallest_under(&dollars, under_minimum) else {
            let free_sales = free
                .into_iter()
                .zip(dollars)
                .filter(|(_, amount)| *amount > Decimal::ZERO);
            let sales = pinned.into_iter().chain(free_sales).collect();
            return Sales { sales, dropped };
        };
        let largest = position_of_largest(&dollars);
        let (largest_minimum, minimum) = (minimum(largest), minimum(position));
        if still_required < largest_minimum {
            // One sale at the minimum covers what is left: take it from the
            // position the allocation leans on most.
            let index = free.remove(largest);
            pinned.push((index, largest_minimum.min(candidates[index].line.value)));
            continue;
        }
        let index = free.remove(position);
        let others_value: Decimal = free.iter().map(|other| candidates[*other].line.value).sum();
        if others_value >= still_required {
            dropped.push((index, dollars[position]));
        } else {
            let value = candidates[index].line.value;
            pinned.push((index, minimum.min(value)));
        }
    }
}

/// Position of the largest amount; on ties the earlier one.
fn position_of_largest(amounts: &[Decimal]) -> usize {
    let mut largest = 0;
    for (position, amount) in amounts.iter().enumerate() {
        if *amount > amounts[largest] {
            largest = position;
        }
    }
    largest
}

/// The order raising at least `dollars` from `line`: rounded up to the cent or
/// the share, and the whole position once that reaches it.
fn sale_order(line: &Line, dollars: Decimal) -> Result<PlannedOrder, Refusal> {
    if line.sized_in_dollars {
        let notional = ceil_cents(dollars);
        if notional >= line.value {
            return Ok(close_position(line));
        }
        return notional_order(line, Side::Sell, notional);
    }
    let shares = (dollars / line.price).ceil();
    if shares >= line.held {
        return Ok(close_position(line));
    }
    Ok(quantity_order(line, Side::Sell, shares))
}

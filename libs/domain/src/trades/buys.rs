//! The buy side, shared by full rebalances and cash investments.
//!
//! A budget is spent on the positions below target. When it cannot fill them
//! all, water-filling serves the most underweight first. An order is never
//! below the minimum notional: a position short by less than the minimum may
//! be bought up to the minimum (as Alpaca does), and when the budget cannot
//! give everyone the minimum the smallest is dropped and the budget shared
//! again over the rest, so that ($10 over eleven equal needs with a $1
//! minimum) ten assets get exactly $1.00 rather than eleven getting nothing.
//! Whole-share assets then round their dollars to shares, and fractional
//! assets absorb what that rounding leaves.

use rust_decimal::Decimal;

use super::book::{Book, Line};
use super::ledger::{Ledger, Refusal, notional_order, quantity_order};
use super::rebalance::minimum_drift_refusal;
use super::rounding::{CENT, floor_cents};
use super::waterfill::{Bound, smallest_under, water_fill};
use super::whole_shares::{WholeShareBuy, round_to_targets};
use super::{Side, SkipReason};

/// A position below target that may be bought.
#[derive(Debug, Clone, Copy)]
struct BuyCandidate<'a> {
    line: &'a Line,
    /// Dollars below target; positive.
    need: Decimal,
}

/// How the budget was shared once the minimum order was enforced.
#[derive(Debug, Default)]
struct Allocation {
    /// Candidate position and its dollars (possibly 0 when the budget ran out).
    kept: Vec<(usize, Decimal)>,
    /// Candidate position and why it gets nothing.
    dropped: Vec<(usize, Refusal)>,
}

/// Invests the cash above the cash target; with none, plans nothing.
pub(super) fn invest_cash(book: &Book, ledger: &mut Ledger) {
    let budget = book.cash - book.cash_target();
    if budget <= Decimal::ZERO {
        return;
    }
    buy_towards_targets(book, budget, ledger, false);
}

/// Spends at most `budget` on the positions below target; a full rebalance
/// (`rebalancing`) leaves alone those within their minimum drift.
pub(super) fn buy_towards_targets(
    book: &Book,
    budget: Decimal,
    ledger: &mut Ledger,
    rebalancing: bool,
) {
    let candidates = buyable_needs(book, ledger, rebalancing);
    if candidates.is_empty() {
        return;
    }
    if budget <= Decimal::ZERO {
        for candidate in &candidates {
            ledger.refuse(
                candidate.line,
                Side::Buy,
                Refusal::new(
                    SkipReason::InsufficientCash,
                    floor_cents(candidate.need),
                    "no cash above the cash target to buy with".to_owned(),
                ),
            );
        }
        return;
    }
    let allocation = allocate_with_minimum(&candidates, budget);
    for (index, refusal) in allocation.dropped {
        ledger.refuse(candidates[index].line, Side::Buy, refusal);
    }
    place_buys(&candidates, &allocation.kept, budget, ledger);
}

/// The positions at least a cent below target that may be bought; the others
/// are refused here.
fn buyable_needs<'a>(
    book: &'a Book,
    ledger: &mut Ledger,
    rebalancing: bool,
) -> Vec<BuyCandidate<'a>> {
    let mut candidates = Vec::new();
    for line in &book.lines {
        let need = book.target_value(line) - line.value;
        if need < CENT {
            continue;
        }
        if rebalancing && let Some(drift) = book.within_minimum_drift(line) {
            ledger.refuse(line, Side::Buy, minimum_drift_refusal(line, need, drift));
            continue;
        }
        if !line.tradable {
            let detail = format!("{} is not tradable", line.symbol);
            let refusal = Refusal::new(SkipReason::NotTradable, floor_cents(need), detail);
            ledger.refuse(line, Side::Buy, refusal);
        } else if book.buys_blocked {
            let detail = "the account may not buy".to_owned();
            let refusal = Refusal::new(SkipReason::Restricted, floor_cents(need), detail);
            ledger.refuse(line, Side::Buy, refusal);
        } else if let Some(detail) = &line.buy_blocked {
            let detail = format!("{detail}: its target weight stays in cash");
            let refusal = Refusal::new(SkipReason::WashSale, floor_cents(need), detail);
            ledger.refuse(line, Side::Buy, refusal);
        } else if line.buy_restricted {
            let detail = format!(
                "{} is restricted from buying in this account: its target weight stays in cash",
                line.symbol
            );
            let refusal = Refusal::new(SkipReason::Restricted, floor_cents(need), detail);
            ledger.refuse(line, Side::Buy, refusal);
        } else {
            candidates.push(BuyCandidate { line, need });
        }
    }
    candidates
}

/// Water-fills the budget, dropping the smallest share under the minimum and
/// filling again until every share is 0 or at least the minimum.
fn allocate_with_minimum(candidates: &[BuyCandidate<'_>], budget: Decimal) -> Allocation {
    let mut active: Vec<usize> = (0..candidates.len()).collect();
    let mut dropped = Vec::new();
    loop {
        // A need under the minimum may take the minimum (a slight overshoot
        // rather than no order at all).
        let minimum = |position: usize| candidates[active[position]].line.minimum;
        let needs: Vec<Decimal> = active
            .iter()
            .map(|index| candidates[*index].need.max(candidates[*index].line.minimum))
            .collect();
        let shares = water_fill(&needs, budget, Bound::AtMost);
        let under_minimum =
            |position: usize, share: Decimal| floor_cents(share) < minimum(position);
        let Some(position) = smallest_under(&shares, under_minimum) else {
            let kept = active.into_iter().zip(shares).collect();
            return Allocation { kept, dropped };
        };
        let index = active.remove(position);
        let line_minimum = candidates[index].line.minimum;
        let refusal = minimum_refusal(&candidates[index], shares[position], line_minimum);
        dropped.push((index, refusal));
    }
}

fn minimum_refusal(candidate: &BuyCandidate<'_>, share: Decimal, minimum: Decimal) -> Refusal {
    let wanted = floor_cents(candidate.need);
    Refusal::new(
        SkipReason::InsufficientCash,
        wanted,
        format!(
            "the budget leaves ${} for {}, below the minimum order of ${minimum}",
            floor_cents(share),
            candidate.line.symbol
        ),
    )
}

/// A fractional buy being sized.
#[derive(Debug, Clone, Copy)]
struct DollarBuy {
    candidate: usize,
    notional: Decimal,
}

/// Turns the dollar allocation into orders: cents for fractional assets,
/// shares as close to target as the budget allows for the others, then what
/// rounding leaves to the fractional ones.
fn place_buys(
    candidates: &[BuyCandidate<'_>],
    kept: &[(usize, Decimal)],
    budget: Decimal,
    ledger: &mut Ledger,
) {
    let mut dollar_buys = Vec::new();
    let mut whole_buys = Vec::new();
    for (index, allocation) in kept {
        let candidate = &candidates[*index];
        if candidate.line.sized_in_dollars {
            dollar_buys.push(DollarBuy {
                candidate: *index,
                notional: floor_cents(*allocation),
            });
        } else {
            let price = candidate.line.price;
            whole_buys.push(WholeShareBuy::from_allocation(
                *index,
                price,
                candidate.need,
                *allocation,
                candidate.line.minimum,
            ));
        }
    }
    let spent: Decimal = dollar_buys.iter().map(|buy| buy.notional).sum::<Decimal>()
        + whole_buys.iter().map(WholeShareBuy::cost).sum::<Decimal>();
    // What the fractional buys placed could still take, as they absorb the
    // rounding's leftover below.
    let sink: Decimal = dollar_buys
        .iter()
        .filter(|buy| !buy.notional.is_zero())
        .map(|buy| (candidates[buy.candidate].need - buy.notional).max(Decimal::ZERO))
        .sum();
    let rounding_leftover = round_to_targets(&mut whole_buys, budget - spent, sink);
    let mut leftover = rounding_leftover;
    for buy in &whole_buys {
        let candidate = &candidates[buy.candidate];
        match whole_share_order(candidate, buy, candidate.line.minimum) {
            Ok(shares) => ledger.place(quantity_order(candidate.line, Side::Buy, shares)),
            Err(refusal) => {
                leftover += buy.cost();
                ledger.refuse(candidate.line, Side::Buy, refusal);
            }
        }
    }
    absorb_leftover(&mut dollar_buys, candidates, leftover);
    for buy in &dollar_buys {
        let line = candidates[buy.candidate].line;
        if buy.notional.is_zero() {
            let refusal = Refusal::new(
                SkipReason::InsufficientCash,
                floor_cents(candidates[buy.candidate].need),
                format!("the budget ran out before {}", line.symbol),
            );
            ledger.refuse(line, Side::Buy, refusal);
            continue;
        }
        ledger.place_or_refuse(
            line,
            Side::Buy,
            notional_order(line, Side::Buy, buy.notional),
        );
    }
}

/// The shares of a whole-share buy, or why none are bought.
fn whole_share_order(
    candidate: &BuyCandidate<'_>,
    buy: &WholeShareBuy,
    minimum: Decimal,
) -> Result<Decimal, Refusal> {
    let line = candidate.line;
    let wanted = floor_cents(candidate.need);
    if buy.shares.is_zero() {
        // More than half a share short: a share would have brought it closer,
        // so only the budget stood in the way.
        if candidate.need + candidate.need > line.price {
            return Err(Refusal::new(
                SkipReason::InsufficientCash,
                wanted,
                format!(
                    "the budget left less than one share of {} at ${}",
                    line.symbol, line.price
                ),
            ));
        }
        return Err(Refusal::new(
            SkipReason::RoundsToZero,
            wanted,
            format!(
                "{} is ${wanted} below target, less than half a share at ${}",
                line.symbol, line.price
            ),
        ));
    }
    if buy.cost() < minimum {
        return Err(Refusal::below_minimum(
            line,
            floor_cents(buy.cost()),
            minimum,
        ));
    }
    Ok(buy.shares)
}

/// Shares `leftover` over the fractional buys already placed (so each stays
/// above the minimum), by their remaining needs.
fn absorb_leftover(
    dollar_buys: &mut [DollarBuy],
    candidates: &[BuyCandidate<'_>],
    leftover: Decimal,
) {
    if leftover < CENT {
        return;
    }
    let remaining_needs: Vec<Decimal> = dollar_buys
        .iter()
        .map(|buy| {
            if buy.notional.is_zero() {
                Decimal::ZERO
            } else {
                candidates[buy.candidate].need - buy.notional
            }
        })
        .collect();
    let extras = water_fill(&remaining_needs, leftover, Bound::AtMost);
    for (buy, extra) in dollar_buys.iter_mut().zip(extras) {
        buy.notional += floor_cents(extra);
    }
}

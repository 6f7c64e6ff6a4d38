//! Pure decisions of the block worker: how orders group into blocks, how a
//! slice is sized and split over legs, how fills are allocated to account
//! orders, what a slice leaves behind, how a run ends. No I/O, no clock
//! reads: the worker ([`super::worker`]) gathers the facts, calls these, and
//! carries out what they return.
//!
//! Over 500 lines: every pure rule of the worker is here, so the worker's
//! other files only gather facts and carry out decisions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rebalancer_domain::allocation::{AllocationError, Claim, FRACTIONAL_STEP, allocate};
use rebalancer_domain::netting;
use rebalancer_domain::run::{OrderStatus, RunStatus};
use rust_decimal::Decimal;

use crate::blocks::store::{
    AllocationRecord, BlockFinish, BlockRecord, FillRecord, NewBlock, OrderProgress, SliceRecord,
};
use crate::broker::{BrokerFill, BrokerOrder, OrderRequest};
use crate::runs::store::{OrderRecord, RunRecord};

pub(super) const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// How the account orders of a leg are sized and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Leg {
    /// Fractional notional orders: worked in dollars, sent as notional orders.
    Dollars,
    /// Orders for fractional share quantities.
    Shares,
    /// Orders for whole shares only.
    Whole,
}

impl Leg {
    pub(super) fn of(order: &OrderRecord) -> Self {
        if is_notional(order) {
            Self::Dollars
        } else if order.whole_shares {
            Self::Whole
        } else {
            Self::Shares
        }
    }

    /// Suffix of the leg's client order ids.
    pub(super) fn code(self) -> &'static str {
        match self {
            Self::Dollars => "d",
            Self::Shares => "f",
            Self::Whole => "w",
        }
    }

    /// Below this an order of the leg counts as done: a cent, or the share step.
    pub(super) fn threshold(self) -> Decimal {
        match self {
            Self::Dollars => CENT,
            Self::Shares => FRACTIONAL_STEP,
            Self::Whole => Decimal::ONE,
        }
    }
}

/// What an order still needs: dollars for notional orders, else shares.
pub(super) fn still_needed(order: &OrderRecord) -> Decimal {
    match Leg::of(order) {
        Leg::Dollars => order.notional.unwrap_or_default() - order.filled_notional,
        Leg::Shares | Leg::Whole => order.quantity - order.filled_quantity,
    }
}

/// Whether an order still takes part in its block.
pub(super) fn is_open(order: &OrderRecord) -> bool {
    !order.status.is_terminal()
        && !order.excluded
        && still_needed(order) >= Leg::of(order).threshold()
}

/// An order's fills so far, as a slice or a cross moves them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Progress {
    pub filled: Decimal,
    pub spent: Decimal,
    /// Cash moved, to the cent.
    booked: Decimal,
}

impl Progress {
    pub(super) fn of(order: &OrderRecord) -> Self {
        Self {
            filled: order.filled_quantity,
            spent: order.filled_notional,
            booked: order.filled_amount,
        }
    }

    /// Adds a fill of `quantity` at `price`; returns the cash it moves: the
    /// order's filled value to the cent, less what was moved before (so an
    /// order's cash never drifts from its value by more than half a cent).
    pub(super) fn add(&mut self, quantity: Decimal, price: Decimal) -> Decimal {
        self.filled += quantity;
        self.spent += quantity * price;
        let booked = self.spent.round_dp(2);
        let amount = booked - self.booked;
        self.booked = booked;
        amount
    }

    /// The order as it stands after this progress.
    pub(super) fn apply(self, order: &OrderRecord) -> OrderRecord {
        OrderRecord {
            filled_quantity: self.filled,
            filled_notional: self.spent,
            filled_amount: self.booked,
            ..order.clone()
        }
    }
}

/// The order's progress to store, with its share estimate refreshed at
/// `price` for notional orders.
pub(super) fn progress_record(
    order: &OrderRecord,
    progress: Progress,
    price: Decimal,
) -> OrderProgress {
    let after = progress.apply(order);
    let leg = Leg::of(order);
    let left = still_needed(&after);
    let done = left < leg.threshold();
    let quantity = match leg {
        Leg::Dollars if done || price <= Decimal::ZERO => after.filled_quantity,
        Leg::Dollars => after.filled_quantity + floor_to(left / price, FRACTIONAL_STEP),
        Leg::Shares | Leg::Whole => order.quantity,
    };
    OrderProgress {
        order_id: order.id.clone(),
        quantity,
        filled_quantity: after.filled_quantity,
        filled_notional: after.filled_notional,
        filled_amount: after.filled_amount,
        status: if done {
            OrderStatus::Filled
        } else if after.filled_quantity > Decimal::ZERO {
            OrderStatus::PartiallyFilled
        } else {
            order.status
        },
    }
}

/// Records the crossed part of a block's orders: one crossed fill at
/// `price`, its allocations (cash split to the cent so both sides move the
/// same dollars) and the orders' progress; a block crossed in full ends.
/// `fill_id` names the crossed fill.
pub(super) fn record_cross(
    new: &mut NewBlock,
    fill_id: String,
    orders: &HashMap<&str, &OrderRecord>,
    shares: &[Decimal],
    price: Decimal,
    now: DateTime<Utc>,
) {
    let quantity: Decimal = shares.iter().sum();
    if quantity.is_zero() {
        return;
    }
    let amounts = netting::cross_amounts(price, shares);
    let mut estimate_change = Decimal::ZERO;
    let mut all_filled = true;
    for ((order_id, share), amount) in new.order_ids.iter().zip(shares).zip(amounts) {
        let order = orders[order_id.as_str()];
        if share.is_zero() {
            all_filled &= !is_open(order);
            continue;
        }
        let mut progress = Progress::of(order);
        progress.filled += *share;
        progress.spent += *share * price;
        progress.booked += amount;
        new.allocations.push(AllocationRecord {
            fill_id: fill_id.clone(),
            order_id: order.id.clone(),
            account_id: order.account_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            quantity: *share,
            price,
            amount,
        });
        let record = progress_record(order, progress, price);
        all_filled &= record.status == OrderStatus::Filled;
        estimate_change += record.quantity - order.quantity;
        new.orders.push(record);
    }
    new.fills.push(FillRecord {
        id: fill_id,
        child_order_id: String::new(),
        block_order_id: new.block.id.clone(),
        quantity,
        price,
        executed_at: now,
        crossed: true,
    });
    let block = &mut new.block;
    block.quantity += estimate_change;
    block.filled_quantity += quantity;
    block.filled_notional += quantity * price;
    block.arrival_price = Some(price);
    if all_filled {
        block.status = OrderStatus::Filled;
        block.completed_at = Some(now);
        block.reason = "crossed internally in full".to_owned();
    } else {
        block.status = OrderStatus::PartiallyFilled;
    }
}

/// Why a run ended as it did, in words.
pub(super) fn outcome_reason(run: &RunRecord, status: RunStatus) -> String {
    match status {
        RunStatus::CompletedSuccess => run.reason.clone(),
        RunStatus::CanceledMidRun => run.reason.clone(),
        _ => {
            let short: Vec<String> = run
                .orders
                .iter()
                .filter(|o| {
                    !o.excluded
                        && (o.status != OrderStatus::Filled
                            || crate::blocks::fit::changed_the_plan(&o.reason))
                })
                .map(|o| {
                    format!(
                        "{} {} {}: {}",
                        o.side.as_str(),
                        o.symbol,
                        o.status,
                        o.reason
                    )
                })
                .collect();
            let mut parts = Vec::new();
            if !short.is_empty() {
                parts.push(short.join("; "));
            }
            if !run.skipped.is_empty() {
                parts.push(format!("{} trade(s) skipped", run.skipped.len()));
            }
            if parts.is_empty() {
                run.reason.clone()
            } else {
                parts.join("; ")
            }
        }
    }
}

/// Account orders grouped into blocks: one per tenant transmission, symbol,
/// side, batch and algorithm, whatever the orders' sizing (the legs).
/// `next_id` names each new block.
pub(super) fn group_into_blocks(
    transmission_id: &str,
    runs: &[RunRecord],
    broker: &str,
    now: DateTime<Utc>,
    mut next_id: impl FnMut() -> String,
) -> Vec<NewBlock> {
    let mut groups: BTreeMap<(String, &'static str, String, String), NewBlock> = BTreeMap::new();
    for run in runs {
        let algorithm_key = serde_json::to_string(&run.algorithm).unwrap_or_default();
        for order in run
            .orders
            .iter()
            .filter(|o| o.block_order_id.is_none() && is_open(o))
        {
            let key = (
                order.symbol.clone(),
                order.side.as_str(),
                run.batch_id.clone().unwrap_or_default(),
                algorithm_key.clone(),
            );
            let entry = groups.entry(key).or_insert_with(|| NewBlock {
                block: BlockRecord {
                    id: next_id(),
                    transmission_id: transmission_id.to_owned(),
                    batch_id: run.batch_id.clone(),
                    symbol: order.symbol.clone(),
                    side: order.side,
                    whole_shares: true,
                    notional: true,
                    algorithm: run.algorithm.clone(),
                    status: OrderStatus::New,
                    quantity: Decimal::ZERO,
                    filled_quantity: Decimal::ZERO,
                    filled_notional: Decimal::ZERO,
                    account_order_count: 0,
                    arrival_price: None,
                    window_start: None,
                    window_end: None,
                    reason: String::new(),
                    created_at: now,
                    completed_at: None,
                    broker: broker.to_owned(),
                    trace_context: None,
                },
                order_ids: Vec::new(),
                fills: Vec::new(),
                allocations: Vec::new(),
                orders: Vec::new(),
            });
            let block = &mut entry.block;
            block.whole_shares &= order.whole_shares;
            block.notional &= is_notional(order);
            block.quantity += order.quantity;
            block.account_order_count += 1;
            entry.order_ids.push(order.id.clone());
        }
    }
    groups.into_values().collect()
}

/// Whether an account order is worked in dollars (fractional notional).
pub(super) fn is_notional(order: &OrderRecord) -> bool {
    order.notional.is_some() && !order.whole_shares
}

/// A stable number from a block id, to seed its randomization.
pub(super) fn salt_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Floors `value` to a multiple of `step`.
pub(super) fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    (value / step).floor() * step
}

/// Raises `value` to a multiple of `step`.
pub(super) fn ceil_to(value: Decimal, step: Decimal) -> Decimal {
    (value / step).ceil() * step
}

/// The shares a child order asked for (a notional order: what its dollars buy).
pub(super) fn order_quantity(order: &BrokerOrder, amount: Decimal, notional: bool) -> Decimal {
    if notional {
        let price = order.average_price().unwrap_or(Decimal::ZERO);
        if price > Decimal::ZERO {
            (amount / price).round_dp(9)
        } else {
            Decimal::ZERO
        }
    } else {
        amount
    }
}

/// The child order one leg of a block sends for `amount` in `slice`. Its
/// client order id is `<block>-<slice sequence>-<leg>`: a resend after a crash
/// reaches the broker under the same id and can never open a second order.
pub(super) fn child_request(
    block: &BlockRecord,
    slice: &SliceRecord,
    leg: Leg,
    amount: Decimal,
) -> OrderRequest {
    OrderRequest {
        client_order_id: format!("{}-{}-{}", block.id, slice.sequence, leg.code()),
        symbol: block.symbol.clone(),
        side: block.side,
        quantity: if leg == Leg::Dollars {
            Decimal::ZERO
        } else {
            amount
        },
        notional: (leg == Leg::Dollars).then_some(amount),
        limit_price: block.algorithm.limit_prices.get(&block.symbol).copied(),
        extended_hours: block.algorithm.extended_hours,
        whole_shares: leg == Leg::Whole,
    }
}

/// Splits one fill of a leg's child order over the leg's account orders
/// (pro rata to what each still needs; whole shares by largest remainder),
/// advancing their progress. The allocations sum exactly to the fill.
///
/// # Errors
/// When the fill cannot be allocated (more than the orders need).
pub(super) fn allocate_fill(
    fill: &BrokerFill,
    leg: Leg,
    members: &[&OrderRecord],
    progress: &mut BTreeMap<&str, Progress>,
) -> Result<Vec<AllocationRecord>, AllocationError> {
    let claims: Vec<Claim> = members
        .iter()
        .map(|o| {
            let state = progress[o.id.as_str()];
            let remaining = match leg {
                // The shares its remaining dollars buy at this price, rounded
                // up to the step: the broker floors the shares of the whole
                // notional, which the orders' floors alone might not absorb
                // (the excess is below a billionth of a share each).
                Leg::Dollars => ceil_to(
                    (o.notional.unwrap_or_default() - state.spent).max(Decimal::ZERO) / fill.price,
                    FRACTIONAL_STEP,
                ),
                Leg::Shares | Leg::Whole => o.quantity - state.filled,
            };
            Claim {
                remaining,
                whole_shares: o.whole_shares,
            }
        })
        .collect();
    let shares = allocate(fill.quantity, &claims)?;
    let mut allocations = Vec::new();
    for (member, share) in members.iter().zip(shares) {
        if share.is_zero() {
            continue;
        }
        let Some(state) = progress.get_mut(member.id.as_str()) else {
            continue;
        };
        let amount = state.add(share, fill.price);
        allocations.push(AllocationRecord {
            fill_id: fill.id.clone(),
            order_id: member.id.clone(),
            account_id: member.account_id.clone(),
            symbol: member.symbol.clone(),
            side: member.side,
            quantity: share,
            price: fill.price,
            amount,
        });
    }
    Ok(allocations)
}

/// What the worker knows once a slice's child orders came back.
#[derive(Debug)]
pub(super) struct SliceFacts<'a> {
    pub block: &'a BlockRecord,
    /// Every account order of the block.
    pub orders: &'a [OrderRecord],
    /// The orders this slice worked.
    pub open: &'a [&'a OrderRecord],
    /// Their progress after this slice's fills.
    pub progress: &'a BTreeMap<&'a str, Progress>,
    pub block_filled_quantity: Decimal,
    /// Price of the last fill (or the reference price without fills).
    pub last_price: Decimal,
    /// This was the last slice of the block's window.
    pub last_slice: bool,
    pub in_hours: bool,
    /// Today's close, when the market is open.
    pub close: Option<DateTime<Utc>>,
    pub window_end: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The broker's reason when a child order was rejected.
    pub rejected: Option<String>,
}

/// What a block's legs still need, in shares: dollars at `reference`, the
/// price the block trades at now.
pub(super) fn shares_needed(needed: &BTreeMap<Leg, Decimal>, reference: Decimal) -> Decimal {
    needed
        .iter()
        .map(|(leg, left)| match leg {
            Leg::Dollars => *left / reference,
            Leg::Shares | Leg::Whole => *left,
        })
        .sum()
}

/// Splits a slice of `size` shares over the legs pro rata to what each
/// needs: dollars to the cent, fractional shares to the step, whole shares
/// floored, none above what the leg needs, zero amounts left out.
pub(super) fn split_over_legs(
    size: Decimal,
    needed: &BTreeMap<Leg, Decimal>,
    reference: Decimal,
) -> Vec<(Leg, Decimal)> {
    let total = shares_needed(needed, reference);
    if total <= Decimal::ZERO || size <= Decimal::ZERO {
        return Vec::new();
    }
    needed
        .iter()
        .map(|(leg, left)| {
            let in_shares = match leg {
                Leg::Dollars => *left / reference,
                Leg::Shares | Leg::Whole => *left,
            };
            let share = size * in_shares / total;
            let amount = match leg {
                Leg::Dollars => floor_to(share * reference, CENT),
                Leg::Shares => floor_to(share, FRACTIONAL_STEP),
                Leg::Whole => share.floor(),
            };
            (*leg, amount.min(*left))
        })
        .filter(|(_, amount)| *amount > Decimal::ZERO)
        .collect()
}

/// New due times for `count` slices missed while no worker ran: spread
/// evenly over what remains of the window, the last at its end; `None`
/// (dropped) for all of them once the window is over.
pub(super) fn respread(
    now: DateTime<Utc>,
    window_end: DateTime<Utc>,
    count: usize,
) -> Vec<Option<DateTime<Utc>>> {
    let left = window_end - now;
    let Ok(count_i32) = i32::try_from(count) else {
        return vec![None; count];
    };
    if left <= TimeDelta::zero() || count == 0 {
        return vec![None; count];
    }
    (1..=count_i32)
        .map(|index| Some(now + left * index / count_i32))
        .collect()
}

/// What a slice leaves behind: the orders' progress, the block's state, and
/// whether it goes on.
#[derive(Debug)]
pub(super) struct SliceConclusion {
    pub orders: Vec<OrderProgress>,
    /// Change of the block's quantity (share estimates of notional orders).
    pub block_quantity_change: Decimal,
    pub block_status: OrderStatus,
    /// When a follow-up slice is due, if the block goes on past its window.
    pub next_slice_due: Option<DateTime<Utc>>,
    /// Set when the block ends with this slice.
    pub finish: Option<BlockFinish>,
}

/// Decides what a slice leaves behind. The last slice of the window sweeps;
/// what it could not fill gets one more try a minute later, until the close.
pub(super) fn conclude_slice(facts: &SliceFacts<'_>) -> SliceConclusion {
    let block = facts.block;
    let mut orders = Vec::new();
    let mut block_quantity_change = Decimal::ZERO;
    let mut still_open = 0_usize;
    let mut unfilled: BTreeMap<Leg, Decimal> = BTreeMap::new();
    for order in facts.open {
        let state = facts.progress[order.id.as_str()];
        let record = progress_record(order, state, facts.last_price);
        let left = still_needed(&state.apply(order));
        if left >= Leg::of(order).threshold() {
            still_open += 1;
            *unfilled.entry(Leg::of(order)).or_default() += left;
        }
        if state.filled != order.filled_quantity || record.quantity != order.quantity {
            block_quantity_change += record.quantity - order.quantity;
            orders.push(record);
        }
    }
    let done = still_open == 0;
    let block_status = if done {
        OrderStatus::Filled
    } else if facts.block_filled_quantity > Decimal::ZERO {
        OrderStatus::PartiallyFilled
    } else {
        OrderStatus::Submitted
    };
    // After the window a TWAP or VWAP stops (the trader's horizon) unless it
    // asked to continue; a market order keeps trying until the close.
    let goes_on = block.algorithm.continue_after_window
        || block.algorithm.kind == rebalancer_domain::algo::AlgorithmKind::Market;
    let mut next_slice_due = None;
    if facts.last_slice && !done && facts.rejected.is_none() && facts.in_hours && goes_on {
        let next = facts.now + TimeDelta::minutes(1);
        if facts.close.is_none_or(|close| next < close) || block.algorithm.extended_hours {
            next_slice_due = Some(next.max(facts.window_end));
        }
    }
    let will_continue = next_slice_due.is_some() || !facts.last_slice;
    let finish = if block.completed_at.is_some() {
        None
    } else if let Some(reason) = &facts.rejected {
        Some(BlockFinish {
            status: OrderStatus::Rejected,
            order_status: OrderStatus::Rejected,
            reason: reason.clone(),
        })
    } else if done {
        // Every order this slice worked is filled now; the others ended before.
        let all_filled =
            facts.orders.iter().filter(|o| !o.excluded).all(|o| {
                o.status == OrderStatus::Filled || facts.progress.contains_key(o.id.as_str())
            });
        Some(if all_filled {
            BlockFinish {
                status: OrderStatus::Filled,
                order_status: OrderStatus::Filled,
                reason: String::new(),
            }
        } else {
            BlockFinish {
                status: OrderStatus::Canceled,
                order_status: OrderStatus::Canceled,
                reason: "its account orders were canceled".to_owned(),
            }
        })
    } else if !will_continue || !facts.in_hours {
        let left: Vec<String> = unfilled
            .iter()
            .map(|(leg, left)| match leg {
                Leg::Dollars => format!("${left}"),
                Leg::Shares | Leg::Whole => format!("{left} shares"),
            })
            .collect();
        let horizon = !goes_on && facts.close.is_none_or(|close| facts.now < close);
        Some(BlockFinish {
            status: OrderStatus::Expired,
            order_status: OrderStatus::Expired,
            reason: if horizon {
                format!(
                    "the window ended with {} of {} unfilled (at most {}% of the market's volume)",
                    left.join(" and "),
                    block.symbol,
                    block.algorithm.max_participation_percent
                )
            } else {
                format!(
                    "could not finish before the close: {} of {} unfilled",
                    left.join(" and "),
                    block.symbol
                )
            },
        })
    } else {
        None
    };
    SliceConclusion {
        orders,
        block_quantity_change,
        block_status,
        next_slice_due,
        finish,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

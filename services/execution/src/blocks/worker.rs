//! The execution worker: turns queued runs into block orders (one per
//! symbol and side of a transmission, crossing buys against sells first when
//! the algorithm nets across accounts), works the blocks slice by slice
//! (durable timers claimed with leases, so any replica can pick up a crashed
//! one's work), allocates fills back to the account orders, and ends runs.
//! Every step is driven by the injected clock and can be repeated after a
//! crash: a transmission whose blocks were never stored is grouped again,
//! blocks never started are started, slices are re-sent under the same
//! client order ids.
//!
//! A block may mix account orders sized three ways, its *legs*: dollars
//! (fractional notional orders), fractional shares and whole shares. Each
//! slice is sized on the whole block and split over the legs pro rata to
//! what each still needs; each leg goes to the broker as its own child order
//! (notional, fractional or whole shares), so its fills always fit its
//! orders.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rebalancer_domain::algo::{AlgorithmKind, SliceContext, slice_quantity};
use rebalancer_domain::allocation::{Claim, FRACTIONAL_STEP, allocate};
use rebalancer_domain::calendar;
use rebalancer_domain::netting;
use rebalancer_domain::run::{self as runs, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use crate::Execution;
use crate::blocks::store::{
    AllocationRecord, BlockFinish, BlockRecord, BlockStart, ChildOrderRecord, ClaimedSlice,
    FillRecord, NewBlock, OrderProgress, RunCompletion, SliceOutcome, SliceRecord, SliceStatus,
};
use crate::broker::OrderRequest;
use crate::error::ExecutionError;
use crate::runs::store::{OrderRecord, RunRecord};

/// No new run starts later than this before the close (Alpaca's rule).
const LAST_START_BEFORE_CLOSE: TimeDelta = TimeDelta::minutes(15);
/// How long a claimed slice stays with its worker.
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// Slices handled per tick.
const SLICES_PER_TICK: u32 = 256;
/// Runs transmitted per tick.
const RUNS_PER_TICK: u32 = 5000;
/// The runs the monitor opens one by one during its cycle are gathered into
/// one transmission (so one block per symbol and side for the whole cycle):
/// sent once none has been queued for this long ...
const GATHER_QUIET: TimeDelta = TimeDelta::seconds(15);
/// ... or this long after the first of them was queued.
const GATHER_AT_MOST: TimeDelta = TimeDelta::minutes(5);
/// Simulated time between ticks.
const TICK: Duration = Duration::from_secs(1);
const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// How the account orders of a leg are sized and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Leg {
    /// Fractional notional orders: worked in dollars, sent as notional orders.
    Dollars,
    /// Orders for fractional share quantities.
    Shares,
    /// Orders for whole shares only.
    Whole,
}

impl Leg {
    fn of(order: &OrderRecord) -> Self {
        if is_notional(order) {
            Self::Dollars
        } else if order.whole_shares {
            Self::Whole
        } else {
            Self::Shares
        }
    }

    /// Suffix of the leg's client order ids.
    fn code(self) -> &'static str {
        match self {
            Self::Dollars => "d",
            Self::Shares => "f",
            Self::Whole => "w",
        }
    }

    /// Below this an order of the leg counts as done: a cent, or the share step.
    fn threshold(self) -> Decimal {
        match self {
            Self::Dollars => CENT,
            Self::Shares => FRACTIONAL_STEP,
            Self::Whole => Decimal::ONE,
        }
    }
}

/// What an order still needs: dollars for notional orders, else shares.
fn still_needed(order: &OrderRecord) -> Decimal {
    match Leg::of(order) {
        Leg::Dollars => order.notional.unwrap_or_default() - order.filled_notional,
        Leg::Shares | Leg::Whole => order.quantity - order.filled_quantity,
    }
}

/// Whether an order still takes part in its block.
fn is_open(order: &OrderRecord) -> bool {
    !order.status.is_terminal()
        && !order.excluded
        && still_needed(order) >= Leg::of(order).threshold()
}

/// An order's fills so far, as a slice or a cross moves them.
#[derive(Debug, Clone, Copy)]
struct Progress {
    filled: Decimal,
    spent: Decimal,
    /// Cash moved, to the cent.
    booked: Decimal,
}

impl Progress {
    fn of(order: &OrderRecord) -> Self {
        Self {
            filled: order.filled_quantity,
            spent: order.filled_notional,
            booked: order.filled_amount,
        }
    }

    /// Adds a fill of `quantity` at `price`; returns the cash it moves: the
    /// order's filled value to the cent, less what was moved before (so an
    /// order's cash never drifts from its value by more than half a cent).
    fn add(&mut self, quantity: Decimal, price: Decimal) -> Decimal {
        self.filled += quantity;
        self.spent += quantity * price;
        let booked = self.spent.round_dp(2);
        let amount = booked - self.booked;
        self.booked = booked;
        amount
    }

    /// The order as it stands after this progress.
    fn apply(self, order: &OrderRecord) -> OrderRecord {
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
fn progress_record(order: &OrderRecord, progress: Progress, price: Decimal) -> OrderProgress {
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

impl Execution {
    /// Runs the worker until `shutdown`: one tick per simulated second.
    pub async fn run_worker(self, owner: String, shutdown: CancellationToken) {
        tracing::info!(%owner, "execution worker started");
        loop {
            if let Err(error) = self.tick(&owner).await {
                tracing::warn!(%error, "execution worker tick failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.clock.sleep(TICK) => {}
            }
        }
        tracing::info!(%owner, "execution worker stopped");
    }

    /// One pass: transmit queued runs, work due slices, start blocks and end
    /// finished runs. Returns how many slices were worked.
    ///
    /// # Errors
    /// Storage or broker failures (the work is retried on the next tick).
    pub async fn tick(&self, owner: &str) -> Result<usize, ExecutionError> {
        let now = self.clock.now();
        self.transmit(now).await?;
        for (tenant, transmission) in self.store.open_transmissions().await? {
            self.advance(&tenant, &transmission).await?;
        }
        let claimed = self
            .store
            .claim_due_slices(owner, now, now + LEASE, SLICES_PER_TICK)
            .await?;
        let worked = claimed.len();
        for slice in claimed {
            let tenant = slice.tenant.clone();
            if let Err(error) = self.work_slice(slice).await {
                tracing::warn!(%tenant, %error, "slice failed; it will be retried when its lease ends");
            }
        }
        for (tenant, transmission) in self.store.open_transmissions().await? {
            self.advance(&tenant, &transmission).await?;
        }
        Ok(worked)
    }

    /// Claims queued runs while the market allows and groups their orders
    /// into block orders; the monitor's runs wait while they are still
    /// coming in (`GATHER_QUIET`, `GATHER_AT_MOST`).
    async fn transmit(&self, now: DateTime<Utc>) -> Result<(), ExecutionError> {
        let Some(session) = calendar::open_session(now) else {
            return Ok(());
        };
        if now + LAST_START_BEFORE_CLOSE > session.close {
            return Ok(());
        }
        let gathering = self
            .store
            .queued_system_runs()
            .await?
            .is_some_and(|(oldest, newest)| {
                now - newest < GATHER_QUIET && now - oldest < GATHER_AT_MOST
            })
            // Never gather past the day's last start.
            && now + GATHER_QUIET + LAST_START_BEFORE_CLOSE < session.close;
        let transmission_id = new_id();
        let claimed = self
            .store
            .claim_queued_runs(&transmission_id, now, RUNS_PER_TICK, gathering)
            .await?;
        let mut by_tenant: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
        for (tenant, run) in claimed {
            by_tenant.entry(tenant).or_default().push(run);
        }
        for (tenant, tenant_runs) in by_tenant {
            self.group_transmission(&tenant, &transmission_id, &tenant_runs, now)
                .await?;
        }
        Ok(())
    }

    /// Groups the orders of a transmission's runs into blocks, crosses buys
    /// against sells where the algorithm nets across accounts, and stores it
    /// all in one transaction.
    async fn group_transmission(
        &self,
        tenant: &str,
        transmission_id: &str,
        transmission_runs: &[RunRecord],
        now: DateTime<Utc>,
    ) -> Result<(), ExecutionError> {
        let mut blocks = group_into_blocks(transmission_id, transmission_runs, now);
        let orders: HashMap<&str, &OrderRecord> = transmission_runs
            .iter()
            .flat_map(|run| run.orders.iter())
            .map(|order| (order.id.as_str(), order))
            .collect();
        self.cross_blocks(&mut blocks, &orders, now).await;
        let created = self.store.create_blocks(tenant, &blocks, now).await?;
        if created {
            tracing::info!(%tenant, runs = transmission_runs.len(), blocks = blocks.len(), "transmitted");
            for run in transmission_runs {
                self.notify(&run.id);
            }
        } else {
            tracing::info!(%tenant, %transmission_id, "transmission already grouped by another worker");
        }
        Ok(())
    }

    /// Crosses the buy and sell blocks of each symbol whose algorithm nets
    /// across accounts, at the quote's mid price now (the arrival price):
    /// each block gets one crossed fill and its allocations.
    async fn cross_blocks(
        &self,
        blocks: &mut [NewBlock],
        orders: &HashMap<&str, &OrderRecord>,
        now: DateTime<Utc>,
    ) {
        let mut pairs: BTreeMap<(String, Option<String>, String), [Option<usize>; 2]> =
            BTreeMap::new();
        for (index, new) in blocks.iter().enumerate() {
            let block = &new.block;
            if !block.algorithm.net_across_accounts {
                continue;
            }
            let key = (
                block.symbol.clone(),
                block.batch_id.clone(),
                serde_json::to_string(&block.algorithm).unwrap_or_default(),
            );
            let slot = usize::from(block.side == Side::Sell);
            pairs.entry(key).or_default()[slot] = Some(index);
        }
        for ((symbol, _, _), pair) in pairs {
            let [Some(buy), Some(sell)] = pair else {
                continue;
            };
            let Some(quote) = self.market.quote(&symbol).await else {
                continue;
            };
            let price = ((quote.bid + quote.ask) / Decimal::TWO).round_dp(4);
            if price <= Decimal::ZERO {
                continue;
            }
            let claims = |index: usize| -> Vec<Claim> {
                blocks[index]
                    .order_ids
                    .iter()
                    .map(|id| {
                        let order = orders[id.as_str()];
                        let remaining = match Leg::of(order) {
                            // Shares the dollars buy at the cross, never more.
                            Leg::Dollars => floor_to(still_needed(order) / price, FRACTIONAL_STEP),
                            Leg::Shares | Leg::Whole => still_needed(order),
                        };
                        Claim {
                            remaining: remaining.max(Decimal::ZERO),
                            whole_shares: order.whole_shares,
                        }
                    })
                    .collect()
            };
            let crossing = netting::cross(&claims(buy), &claims(sell));
            if crossing.quantity.is_zero() {
                continue;
            }
            tracing::info!(%symbol, quantity = %crossing.quantity, %price, "crossed buys against sells");
            for (index, shares) in [(buy, &crossing.buys), (sell, &crossing.sells)] {
                record_cross(&mut blocks[index], orders, shares, price, now);
            }
        }
    }

    /// Starts a block's working phase: arrival price, window, share
    /// estimates of notional orders, and the slice timers.
    async fn start_block(
        &self,
        tenant: &str,
        block: &BlockRecord,
        now: DateTime<Utc>,
    ) -> Result<(), ExecutionError> {
        let session = calendar::current_or_next_session(now);
        let close = if block.algorithm.extended_hours {
            session.close + TimeDelta::hours(4)
        } else {
            session.close
        };
        let (window_start, window_end) = block.algorithm.window(now, close);
        let quote = self.market.quote(&block.symbol).await;
        // A block that crossed at transmission keeps the cross price, the
        // quote of that moment, as its arrival price.
        let arrival = block.arrival_price.unwrap_or_else(|| {
            quote.as_ref().map_or(Decimal::ZERO, |q| {
                ((q.bid + q.ask) / Decimal::TWO).round_dp(4)
            })
        });
        let sizing_price = match (&quote, block.side) {
            (Some(q), Side::Buy) => q.ask,
            (Some(q), Side::Sell) => q.bid,
            (None, _) => Decimal::ZERO,
        };
        let orders = self.store.block_orders(tenant, &block.id).await?;
        let mut order_quantities = Vec::new();
        let mut total = Decimal::ZERO;
        for order in orders
            .iter()
            .filter(|o| !o.excluded && (!o.status.is_terminal() || o.status == OrderStatus::Filled))
        {
            let quantity =
                if is_open(order) && Leg::of(order) == Leg::Dollars && sizing_price > Decimal::ZERO
                {
                    // An estimate for display: the order is worked in dollars.
                    let estimate = order.filled_quantity
                        + floor_to(still_needed(order) / sizing_price, FRACTIONAL_STEP);
                    order_quantities.push((order.id.clone(), estimate));
                    estimate
                } else {
                    order.quantity
                };
            total += quantity;
        }
        let salt = salt_of(&block.id);
        let slices = block
            .algorithm
            .slice_times(window_start, window_end, salt)
            .into_iter()
            .enumerate()
            .map(|(sequence, due_at)| SliceRecord {
                id: new_id(),
                block_order_id: block.id.clone(),
                sequence: i32::try_from(sequence).unwrap_or(i32::MAX),
                due_at,
                status: SliceStatus::Pending,
                attempts: 0,
            })
            .collect();
        self.store
            .start_block(
                tenant,
                BlockStart {
                    block_id: block.id.clone(),
                    arrival_price: arrival,
                    window_start,
                    window_end,
                    quantity: total,
                    order_quantities,
                    slices,
                },
            )
            .await?;
        Ok(())
    }

    /// Works one claimed slice: sizes it from what remains, sends one child
    /// order per leg (deterministic client order ids), allocates their fills
    /// and records everything, the block's end included, in one transaction.
    async fn work_slice(&self, claimed: ClaimedSlice) -> Result<(), ExecutionError> {
        let tenant = claimed.tenant.as_str();
        let slice = claimed.slice;
        let now = self.clock.now();
        let Some(block) = self.store.get_block(tenant, &slice.block_order_id).await? else {
            return Ok(());
        };
        let orders = self.store.block_orders(tenant, &block.id).await?;
        let open: Vec<&OrderRecord> = if block.completed_at.is_some() {
            Vec::new()
        } else {
            orders.iter().filter(|o| is_open(o)).collect()
        };
        let open_slices = self.store.open_slices(tenant, &block.id).await?;
        let slices_left = u32::try_from(open_slices.len().max(1)).unwrap_or(u32::MAX);
        let window_end = block.window_end.unwrap_or(now);
        let session = calendar::open_session(now);
        let in_hours = session.is_some() || block.algorithm.extended_hours;

        let mut needed: BTreeMap<Leg, Decimal> = BTreeMap::new();
        for order in &open {
            *needed.entry(Leg::of(order)).or_default() += still_needed(order);
        }
        let quote = self.market.quote(&block.symbol).await;
        let reference = match (&quote, block.side) {
            (Some(q), Side::Buy) => q.ask,
            (Some(q), Side::Sell) => q.bid,
            (None, _) => block.arrival_price.unwrap_or_default(),
        };
        let amounts = if in_hours && !needed.is_empty() {
            self.leg_amounts(
                &block,
                &slice,
                &open_slices,
                slices_left,
                &needed,
                reference,
                now,
            )
            .await
        } else {
            Vec::new()
        };

        let mut progress: BTreeMap<&str, Progress> = open
            .iter()
            .map(|o| (o.id.as_str(), Progress::of(o)))
            .collect();
        let mut outcome = SliceOutcome {
            slice_id: slice.id.clone(),
            block_id: block.id.clone(),
            children: Vec::new(),
            fills: Vec::new(),
            allocations: Vec::new(),
            orders: Vec::new(),
            block_quantity: block.quantity,
            block_filled_quantity: block.filled_quantity,
            block_filled_notional: block.filled_notional,
            block_status: block.status,
            new_slices: Vec::new(),
            finish: None,
        };
        let mut rejected = None;
        let mut last_price = reference;
        for (leg, amount) in amounts {
            let request = OrderRequest {
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
            };
            let order = self
                .broker
                .submit(request.clone())
                .await
                .map_err(|error| ExecutionError::Unavailable(error.to_string()))?;
            let child_id = new_id();
            let members: Vec<&OrderRecord> =
                open.iter().copied().filter(|o| Leg::of(o) == leg).collect();
            for fill in &order.fills {
                // The broker's fill id: recording the same fill twice is impossible.
                outcome.fills.push(FillRecord {
                    id: fill.id.clone(),
                    child_order_id: child_id.clone(),
                    block_order_id: block.id.clone(),
                    quantity: fill.quantity,
                    price: fill.price,
                    executed_at: fill.executed_at,
                    crossed: false,
                });
                let claims: Vec<Claim> = members
                    .iter()
                    .map(|o| {
                        let state = progress[o.id.as_str()];
                        let remaining = match leg {
                            // The shares its remaining dollars buy at this
                            // price, rounded up to the step: the broker
                            // floors the shares of the whole notional, which
                            // the orders' floors alone might not absorb (the
                            // excess is below a billionth of a share each).
                            Leg::Dollars => ceil_to(
                                (o.notional.unwrap_or_default() - state.spent).max(Decimal::ZERO)
                                    / fill.price,
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
                let shares = allocate(fill.quantity, &claims).map_err(|error| {
                    ExecutionError::FailedPrecondition(format!("allocation failed: {error}"))
                })?;
                for (member, share) in members.iter().zip(shares) {
                    if share.is_zero() {
                        continue;
                    }
                    let Some(state) = progress.get_mut(member.id.as_str()) else {
                        continue;
                    };
                    let amount = state.add(share, fill.price);
                    outcome.allocations.push(AllocationRecord {
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
                outcome.block_filled_quantity += fill.quantity;
                outcome.block_filled_notional += fill.quantity * fill.price;
                last_price = fill.price;
            }
            if order.status == OrderStatus::Rejected {
                rejected = Some(order.reason.clone());
            }
            outcome.children.push(ChildOrderRecord {
                id: child_id,
                block_order_id: block.id.clone(),
                slice_id: slice.id.clone(),
                client_order_id: request.client_order_id,
                broker_order_id: order.broker_order_id.clone(),
                quantity: order_quantity(&order, amount, leg == Leg::Dollars),
                limit_price: request.limit_price,
                status: order.status,
                filled_quantity: order.filled_quantity,
                average_fill_price: order.average_price().map(|p| p.round_dp(6)),
                reason: order.reason.clone(),
                due_at: slice.due_at,
                submitted_at: now,
            });
        }

        // Orders after this slice: progress, share estimates, what is left.
        let mut still_open = 0_usize;
        let mut unfilled: BTreeMap<Leg, Decimal> = BTreeMap::new();
        for order in &open {
            let state = progress[order.id.as_str()];
            let record = progress_record(order, state, last_price);
            let left = still_needed(&state.apply(order));
            if left >= Leg::of(order).threshold() {
                still_open += 1;
                *unfilled.entry(Leg::of(order)).or_default() += left;
            }
            if state.filled != order.filled_quantity || record.quantity != order.quantity {
                outcome.block_quantity += record.quantity - order.quantity;
                outcome.orders.push(record);
            }
        }
        let done = still_open == 0;
        outcome.block_status = if done {
            OrderStatus::Filled
        } else if outcome.block_filled_quantity > Decimal::ZERO {
            OrderStatus::PartiallyFilled
        } else {
            OrderStatus::Submitted
        };
        // The last slice of the window sweeps; what it could not fill gets
        // one more try a minute later, until the close.
        let last = slices_left <= 1;
        let close = session.map(|s| s.close);
        if last && !done && rejected.is_none() && in_hours {
            let next = now + TimeDelta::minutes(1);
            if close.is_none_or(|close| next < close) || block.algorithm.extended_hours {
                outcome.new_slices.push(SliceRecord {
                    id: new_id(),
                    block_order_id: block.id.clone(),
                    sequence: slice.sequence + 1,
                    due_at: next.max(window_end),
                    status: SliceStatus::Pending,
                    attempts: 0,
                });
            }
        }
        let will_continue = !outcome.new_slices.is_empty() || !last;
        outcome.finish = if block.completed_at.is_some() {
            None
        } else if let Some(reason) = rejected {
            Some(BlockFinish {
                status: OrderStatus::Rejected,
                order_status: OrderStatus::Rejected,
                reason,
            })
        } else if done {
            // Every order this slice worked is filled now; the others ended before.
            let all_filled = orders
                .iter()
                .filter(|o| !o.excluded)
                .all(|o| o.status == OrderStatus::Filled || progress.contains_key(o.id.as_str()));
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
        } else if !will_continue || !in_hours {
            let left: Vec<String> = unfilled
                .iter()
                .map(|(leg, left)| match leg {
                    Leg::Dollars => format!("${left}"),
                    Leg::Shares | Leg::Whole => format!("{left} shares"),
                })
                .collect();
            Some(BlockFinish {
                status: OrderStatus::Expired,
                order_status: OrderStatus::Expired,
                reason: format!(
                    "could not finish before the close: {} of {} unfilled",
                    left.join(" and "),
                    block.symbol
                ),
            })
        } else {
            None
        };
        let recorded = self.store.record_slice(tenant, outcome, now).await?;
        if !recorded {
            tracing::info!(block_id = %block.id, sequence = slice.sequence, "slice already recorded by another worker");
        }
        let run_ids: BTreeSet<&str> = open.iter().map(|o| o.run_id.as_str()).collect();
        for run_id in run_ids {
            self.notify(run_id);
        }
        Ok(())
    }

    /// What each leg sends this slice: the whole block's slice (sized from
    /// what remains, by the algorithm, capped by participation) split pro
    /// rata to what each leg needs; the last slice sends everything left.
    #[expect(clippy::too_many_arguments, reason = "the sizing inputs of one slice")]
    async fn leg_amounts(
        &self,
        block: &BlockRecord,
        slice: &SliceRecord,
        open_slices: &[SliceRecord],
        slices_left: u32,
        needed: &BTreeMap<Leg, Decimal>,
        reference: Decimal,
        now: DateTime<Utc>,
    ) -> Vec<(Leg, Decimal)> {
        if slices_left <= 1 || reference <= Decimal::ZERO {
            return needed.iter().map(|(leg, left)| (*leg, *left)).collect();
        }
        // Everything in shares: dollars at the price the block trades at now.
        let shares_of = |leg: Leg, left: Decimal| match leg {
            Leg::Dollars => left / reference,
            Leg::Shares | Leg::Whole => left,
        };
        let total: Decimal = needed
            .iter()
            .map(|(leg, left)| shares_of(*leg, *left))
            .sum();
        let bar = self.market.minute_bar(&block.symbol, now).await;
        let cap = bar.map(|bar| {
            floor_to(
                bar.volume * block.algorithm.max_participation_percent / Decimal::ONE_HUNDRED,
                FRACTIONAL_STEP,
            )
        });
        let (volume_now, volume_left) = self.volume_shares(block, open_slices, slice).await;
        let size = slice_quantity(&SliceContext {
            kind: block.algorithm.kind,
            remaining: total,
            slices_left,
            volume_now,
            volume_left,
            participation_cap: cap,
            step: FRACTIONAL_STEP,
            randomization_percent: block.algorithm.randomization_percent,
            noise: block.algorithm.size_noise(
                salt_of(&block.id),
                u64::try_from(slice.sequence).unwrap_or(0),
            ),
        });
        if total <= Decimal::ZERO || size <= Decimal::ZERO {
            return Vec::new();
        }
        needed
            .iter()
            .map(|(leg, left)| {
                let share = size * shares_of(*leg, *left) / total;
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

    /// VWAP: the expected volume share of this slice's interval, and of it
    /// and every later open slice.
    async fn volume_shares(
        &self,
        block: &BlockRecord,
        open_slices: &[SliceRecord],
        slice: &SliceRecord,
    ) -> (Decimal, Decimal) {
        if block.algorithm.kind != AlgorithmKind::Vwap {
            return (Decimal::ONE, Decimal::ONE);
        }
        let Some(profile) = self.market.volume_profile(&block.symbol).await else {
            return (Decimal::ONE, Decimal::ONE);
        };
        let interval = block.algorithm.slice_interval_secs.max(60) / 60;
        let share_at = |due: DateTime<Utc>| -> Decimal {
            let Some(session) = calendar::open_session(due) else {
                return Decimal::ZERO;
            };
            let start = usize::try_from((due - session.open).num_minutes()).unwrap_or(0);
            let end = (start + usize::try_from(interval).unwrap_or(1)).min(profile.len());
            profile
                .get(start..end)
                .map_or(Decimal::ZERO, |bins| bins.iter().sum())
        };
        let now_share = share_at(slice.due_at);
        let left: Decimal = open_slices
            .iter()
            .filter(|s| s.sequence >= slice.sequence)
            .map(|s| share_at(s.due_at))
            .sum();
        (now_share, left.max(now_share))
    }

    /// Regroups a transmission whose blocks were never stored (a crash right
    /// after its runs were claimed), starts its blocks (sells first, buys
    /// once the sells are done), and ends its runs whose orders all ended.
    async fn advance(&self, tenant: &str, transmission: &str) -> Result<(), ExecutionError> {
        let now = self.clock.now();
        let mut blocks = self.store.transmission_blocks(tenant, transmission).await?;
        if blocks.is_empty() {
            let waiting: Vec<RunRecord> = self
                .store
                .transmission_runs(tenant, transmission)
                .await?
                .into_iter()
                .filter(|run| {
                    run.status == RunStatus::InProgress
                        && run
                            .orders
                            .iter()
                            .any(|o| o.block_order_id.is_none() && is_open(o))
                })
                .collect();
            if !waiting.is_empty() {
                tracing::info!(%tenant, %transmission, runs = waiting.len(), "grouping a transmission left ungrouped");
                self.group_transmission(tenant, transmission, &waiting, now)
                    .await?;
                blocks = self.store.transmission_blocks(tenant, transmission).await?;
            }
        }
        let sells_open = blocks
            .iter()
            .any(|b| b.side == Side::Sell && !b.status.is_terminal());
        let market_open = calendar::open_session(now).is_some();
        for block in blocks
            .iter()
            .filter(|b| b.window_start.is_none() && !b.status.is_terminal())
        {
            let turn = block.side == Side::Sell || !sells_open;
            if turn && (market_open || block.algorithm.extended_hours) {
                self.start_block(tenant, block, now).await?;
            }
        }
        let finished = self.store.finished_runs(tenant, transmission).await?;
        if finished.is_empty() {
            return Ok(());
        }
        let completions: Vec<RunCompletion> = finished
            .iter()
            .map(|run| {
                let live: Vec<&OrderRecord> = run.orders.iter().filter(|o| !o.excluded).collect();
                let statuses: Vec<OrderStatus> = live.iter().map(|o| o.status).collect();
                let excluded = run.orders.len() - live.len();
                let status = runs::outcome(
                    &statuses,
                    run.skipped.len() + excluded,
                    run.cancel_requested,
                );
                RunCompletion {
                    run_id: run.id.clone(),
                    status,
                    reason: outcome_reason(run, status),
                    rebalanced: run.kind == RunKind::FullRebalance
                        && matches!(
                            status,
                            RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted
                        ),
                }
            })
            .collect();
        self.store.complete_runs(tenant, &completions, now).await?;
        tracing::info!(%tenant, %transmission, runs = completions.len(), "runs ended");
        for completion in &completions {
            tracing::debug!(run_id = %completion.run_id, status = %completion.status, "run ended");
            self.notify(&completion.run_id);
        }
        let batches: BTreeSet<&str> = finished
            .iter()
            .filter_map(|run| run.batch_id.as_deref())
            .collect();
        for batch_id in batches {
            self.finish_batch_if_done(tenant, batch_id).await?;
        }
        Ok(())
    }
}

/// Records the crossed part of a block's orders: one crossed fill at
/// `price`, its allocations (cash split to the cent so both sides move the
/// same dollars) and the orders' progress; a block crossed in full ends.
fn record_cross(
    new: &mut NewBlock,
    orders: &HashMap<&str, &OrderRecord>,
    shares: &[Decimal],
    price: Decimal,
    now: DateTime<Utc>,
) {
    let quantity: Decimal = shares.iter().sum();
    if quantity.is_zero() {
        return;
    }
    let fill_id = new_id();
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
fn outcome_reason(run: &RunRecord, status: RunStatus) -> String {
    match status {
        RunStatus::CompletedSuccess => run.reason.clone(),
        RunStatus::CanceledMidRun => run.reason.clone(),
        _ => {
            let short: Vec<String> = run
                .orders
                .iter()
                .filter(|o| o.status != OrderStatus::Filled && !o.excluded)
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
fn group_into_blocks(
    transmission_id: &str,
    runs: &[RunRecord],
    now: DateTime<Utc>,
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
                    id: new_id(),
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
fn is_notional(order: &OrderRecord) -> bool {
    order.notional.is_some() && !order.whole_shares
}

/// A stable number from a block id, to seed its randomization.
fn salt_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Floors `value` to a multiple of `step`.
fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    (value / step).floor() * step
}

/// Raises `value` to a multiple of `step`.
fn ceil_to(value: Decimal, step: Decimal) -> Decimal {
    (value / step).ceil() * step
}

/// The shares a child order asked for (a notional order: what its dollars buy).
fn order_quantity(order: &crate::broker::BrokerOrder, amount: Decimal, notional: bool) -> Decimal {
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

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
use rebalancer_domain::allocation::{Claim, FRACTIONAL_STEP};
use rebalancer_domain::calendar;
use rebalancer_domain::netting;
use rebalancer_domain::run::{self as runs, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use crate::Execution;
use crate::blocks::decide::{
    self, CENT, Leg, Progress, floor_to, group_into_blocks, is_open, order_quantity,
    outcome_reason, record_cross, salt_of, still_needed,
};
use crate::blocks::store::{
    BlockRecord, BlockStart, ChildOrderRecord, ClaimedSlice, FillRecord, NewBlock, RunCompletion,
    SliceOutcome, SliceRecord, SliceStatus,
};
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
        let mut blocks = group_into_blocks(transmission_id, transmission_runs, now, new_id);
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
                record_cross(&mut blocks[index], new_id(), orders, shares, price, now);
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
            let request = decide::child_request(&block, &slice, leg, amount);
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
                let allocations = decide::allocate_fill(fill, leg, &members, &mut progress)
                    .map_err(|error| {
                        ExecutionError::FailedPrecondition(format!("allocation failed: {error}"))
                    })?;
                outcome.allocations.extend(allocations);
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

        let conclusion = decide::conclude_slice(&decide::SliceFacts {
            block: &block,
            orders: &orders,
            open: &open,
            progress: &progress,
            block_filled_quantity: outcome.block_filled_quantity,
            last_price,
            last_slice: slices_left <= 1,
            in_hours,
            close: session.map(|s| s.close),
            window_end,
            now,
            rejected,
        });
        outcome.orders = conclusion.orders;
        outcome.block_quantity += conclusion.block_quantity_change;
        outcome.block_status = conclusion.block_status;
        outcome.finish = conclusion.finish;
        if let Some(due_at) = conclusion.next_slice_due {
            outcome.new_slices.push(SliceRecord {
                id: new_id(),
                block_order_id: block.id.clone(),
                sequence: slice.sequence + 1,
                due_at,
                status: SliceStatus::Pending,
                attempts: 0,
            });
        }
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

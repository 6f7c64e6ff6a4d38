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
use rebalancer_domain::allocation::{Claim, FRACTIONAL_STEP};
use rebalancer_domain::calendar::{self, LAST_START_BEFORE_CLOSE};
use rebalancer_domain::netting;
use rebalancer_domain::run::{self as runs, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_domain::trading_hours::TradingHours;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::Execution;
use crate::blocks::decide::{
    Leg, floor_to, group_into_blocks, is_open, outcome_reason, record_cross, salt_of, still_needed,
};
use crate::blocks::store::{
    BlockRecord, BlockStart, Claimable, NewBlock, RunCompletion, SliceRecord, SliceStatus,
};
use crate::error::ExecutionError;
use crate::runs::store::{OrderRecord, RunRecord};

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
        self.expire(now).await?;
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
            super::metrics::slice_claimed(slice.slice.attempts);
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

    /// Ends the runs still proposed or queued at their expiry (TIMEOUT).
    async fn expire(&self, now: DateTime<Utc>) -> Result<(), ExecutionError> {
        let expired = self.store.expire_runs(now, RUNS_PER_TICK).await?;
        for (tenant, run_id) in &expired {
            tracing::info!(%tenant, %run_id, "run expired");
            self.notify(run_id);
        }
        Ok(())
    }

    /// Claims queued runs while the market allows and groups their orders
    /// into block orders; the monitor's runs wait while they are still
    /// coming in (`GATHER_QUIET`, `GATHER_AT_MOST`).
    async fn transmit(&self, now: DateTime<Utc>) -> Result<(), ExecutionError> {
        // Regular hours start every run until shortly before the close;
        // extended hours (and that last stretch) only runs whose algorithm
        // trades outside regular hours, or that trade crypto alone; the
        // rest of the time only crypto runs, which trade around the clock.
        let open = calendar::open_session(now);
        let regular = open.filter(|session| now + LAST_START_BEFORE_CLOSE <= session.close);
        let claimable = if regular.is_some() {
            Claimable::All
        } else if open.is_some() || calendar::in_extended_hours(now) {
            Claimable::ExtendedHoursOrAroundTheClock
        } else {
            Claimable::AroundTheClock
        };
        let gathering = match regular {
            Some(session) => {
                self
                .store
                .queued_system_runs()
                .await?
                .is_some_and(|(oldest, newest)| {
                    now - newest < GATHER_QUIET && now - oldest < GATHER_AT_MOST
                })
                // Never gather past the day's last start.
                && now + GATHER_QUIET + LAST_START_BEFORE_CLOSE < session.close
            }
            None => false,
        };
        let transmission_id = new_id();
        let claimed = self
            .store
            .claim_queued_runs(&transmission_id, now, RUNS_PER_TICK, gathering, claimable)
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
        // Continues the trace that created the runs (the cycle's, for the
        // Monitor's), linked to the others'.
        let span = tracing::info_span!(
            parent: None,
            "transmit",
            %tenant,
            %transmission_id,
            runs = transmission_runs.len(),
        );
        rebalancer_kit::trace::continue_traces(
            &span,
            transmission_runs
                .iter()
                .filter_map(|run| run.trace_context.as_deref()),
        );
        self.group_runs(tenant, transmission_id, transmission_runs, now)
            .instrument(span)
            .await
    }

    async fn group_runs(
        &self,
        tenant: &str,
        transmission_id: &str,
        transmission_runs: &[RunRecord],
        now: DateTime<Utc>,
    ) -> Result<(), ExecutionError> {
        // The tenant's mode now decides the broker of these blocks for good.
        let broker = self.trading_mode(tenant).await?.broker;
        let mut blocks = group_into_blocks(transmission_id, transmission_runs, broker, now, new_id);
        let trace_context = rebalancer_kit::trace::current_traceparent();
        for new in &mut blocks {
            new.block.trace_context.clone_from(&trace_context);
        }
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
        let hours = TradingHours::of(&block.symbol);
        let close = if block.algorithm.extended_hours {
            hours.extended_or_next_session(now).close + hours.after_hours()
        } else {
            hours.current_or_next_session(now).close
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
        for block in blocks
            .iter()
            .filter(|b| b.window_start.is_none() && !b.status.is_terminal())
        {
            let turn = block.side == Side::Sell || !sells_open;
            let open = TradingHours::of(&block.symbol).open_session(now).is_some();
            if turn && (open || block.algorithm.extended_hours) {
                let span = tracing::info_span!(
                    parent: None,
                    "start_block",
                    %tenant,
                    block_id = %block.id,
                    symbol = %block.symbol,
                );
                rebalancer_kit::trace::continue_trace(&span, block.trace_context.as_deref());
                self.start_block(tenant, block, now)
                    .instrument(span)
                    .await?;
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
                // Orders cut to what the account could trade, or that hit a
                // break, filled but not as planned.
                let cut = live
                    .iter()
                    .filter(|o| {
                        o.status == OrderStatus::Filled
                            && crate::blocks::fit::changed_the_plan(&o.reason)
                    })
                    .count();
                let status = runs::outcome(
                    &statuses,
                    run.skipped.len() + excluded + cut,
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
        let span = tracing::info_span!(parent: None, "complete_runs", %tenant, %transmission, runs = completions.len());
        rebalancer_kit::trace::continue_traces(
            &span,
            finished
                .iter()
                .filter_map(|run| run.trace_context.as_deref()),
        );
        self.store
            .complete_runs(tenant, &completions, now)
            .instrument(span)
            .await?;
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

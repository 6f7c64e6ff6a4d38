//! Working one slice of a block: size it from what remains (the algorithm,
//! capped by participation in the market's volume), send one child order per
//! leg through the broker port, allocate the fills, and record everything in
//! one transaction. The decisions are [`super::decide`]'s; this is the part
//! that talks to the market, the broker and the store.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rebalancer_domain::algo::{AlgorithmKind, SliceContext, slice_quantity};
use rebalancer_domain::allocation::FRACTIONAL_STEP;
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_domain::trading_hours::TradingHours;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;
use tracing::Instrument as _;

use crate::Execution;
use crate::blocks::decide::{
    self, Leg, Progress, floor_to, is_open, order_quantity, salt_of, still_needed,
};
use crate::blocks::fit;
use crate::blocks::store::{
    BlockRecord, ChildOrderRecord, ClaimedSlice, FillRecord, SliceOutcome, SliceRecord, SliceStatus,
};
use crate::error::ExecutionError;
use crate::runs::store::OrderRecord;

impl Execution {
    /// Works one claimed slice: sizes it from what remains, sends one child
    /// order per leg (deterministic client order ids), allocates their fills
    /// and records everything, the block's end included, in one transaction.
    pub(super) async fn work_slice(&self, claimed: ClaimedSlice) -> Result<(), ExecutionError> {
        let tenant = claimed.tenant.as_str();
        let Some(block) = self
            .store
            .get_block(tenant, &claimed.slice.block_order_id)
            .await?
        else {
            return Ok(());
        };
        // Part of the trace of the transmission that made the block (and so
        // of the request or cycle that created its runs).
        let span = tracing::info_span!(
            parent: None,
            "work_slice",
            %tenant,
            block_id = %block.id,
            symbol = %block.symbol,
            side = block.side.as_str(),
            sequence = claimed.slice.sequence,
        );
        rebalancer_kit::trace::continue_trace(&span, block.trace_context.as_deref());
        self.work_block_slice(tenant, claimed.slice, block)
            .instrument(span)
            .await
    }

    async fn work_block_slice(
        &self,
        tenant: &str,
        slice: SliceRecord,
        block: BlockRecord,
    ) -> Result<(), ExecutionError> {
        let now = self.clock.now();
        let mut orders = self.store.block_orders(tenant, &block.id).await?;
        let window_end = block.window_end.unwrap_or(now);
        let hours = TradingHours::of(&block.symbol);
        let session = hours.open_session(now);
        let in_hours =
            session.is_some() || (block.algorithm.extended_hours && hours.in_extended_hours(now));
        let quote = self.market.quote(&block.symbol).await;
        let reference = match (&quote, block.side) {
            (Some(q), Side::Buy) => q.ask,
            (Some(q), Side::Sell) => q.bid,
            (None, _) => block.arrival_price.unwrap_or_default(),
        };
        if block.completed_at.is_none() && in_hours {
            self.fit_orders(tenant, &block, &mut orders, reference, now)
                .await?;
        }
        let open: Vec<&OrderRecord> = if block.completed_at.is_some() {
            Vec::new()
        } else {
            orders.iter().filter(|o| is_open(o)).collect()
        };
        let mut open_slices = self.store.open_slices(tenant, &block.id).await?;
        if self
            .respread_missed_slices(tenant, &slice, &open_slices, window_end, now)
            .await?
        {
            open_slices = self.store.open_slices(tenant, &block.id).await?;
        }
        let slices_left = u32::try_from(open_slices.len().max(1)).unwrap_or(u32::MAX);

        let mut needed: BTreeMap<Leg, Decimal> = BTreeMap::new();
        for order in &open {
            *needed.entry(Leg::of(order)).or_default() += still_needed(order);
        }
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
        let broker = if amounts.is_empty() {
            None
        } else {
            Some(self.brokers.named(&block.broker).ok_or_else(|| {
                ExecutionError::Unavailable(format!(
                    "block {} was sent to the {} broker, which this service is not configured with",
                    block.id, block.broker
                ))
            })?)
        };
        for (leg, amount) in amounts {
            let request = decide::child_request(&block, &slice, leg, amount);
            let Some(broker) = broker else { break };
            let child_span = tracing::info_span!(
                "child_order",
                client_order_id = %request.client_order_id,
                amount = %amount,
                fills = tracing::field::Empty,
            );
            let order = broker
                .submit(request.clone())
                .instrument(child_span.clone())
                .await
                .map_err(|error| ExecutionError::Unavailable(error.to_string()))?;
            child_span.record("fills", order.fills.len());
            super::metrics::child_order(order.status, &block.broker);
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
        let fills = outcome.fills.clone();
        let booking = tracing::info_span!(
            "book_fills",
            fills = outcome.fills.len(),
            allocations = outcome.allocations.len(),
        );
        let recorded = self
            .store
            .record_slice(tenant, outcome, now)
            .instrument(booking)
            .await?;
        if recorded {
            super::metrics::record(&block, &fills);
        } else {
            tracing::info!(block_id = %block.id, sequence = slice.sequence, "slice already recorded by another worker");
        }
        let run_ids: BTreeSet<&str> = open.iter().map(|o| o.run_id.as_str()).collect();
        for run_id in run_ids {
            self.notify(run_id);
        }
        Ok(())
    }

    /// Cuts the block's open orders to what their accounts can trade now
    /// ([`super::fit`]), in the store and in `orders`.
    async fn fit_orders(
        &self,
        tenant: &str,
        block: &BlockRecord,
        orders: &mut [OrderRecord],
        reference: Decimal,
        now: DateTime<Utc>,
    ) -> Result<(), ExecutionError> {
        let open: Vec<&OrderRecord> = orders.iter().filter(|o| is_open(o)).collect();
        if open.is_empty() {
            return Ok(());
        }
        let accounts: Vec<String> = open
            .iter()
            .map(|o| o.account_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rooms = self
            .store
            .account_room(tenant, &block.id, &block.symbol, &accounts)
            .await?;
        let caps = fit::fit_to_accounts(block.side, &open, &rooms, reference);
        if caps.is_empty() {
            return Ok(());
        }
        tracing::info!(block_id = %block.id, orders = caps.len(), "orders cut to what their accounts can trade");
        self.store.cap_orders(tenant, &caps, now).await?;
        for cap in caps {
            if let Some(order) = orders.iter_mut().find(|o| o.id == cap.order_id) {
                order.quantity = cap.quantity;
                order.notional = cap.notional;
                order.status = cap.status;
                order.reason = cap.reason;
            }
        }
        Ok(())
    }

    /// Slices missed while no worker ran (a restart) are spread again over
    /// what remains of the window rather than fired back to back; past the
    /// window they are dropped, and this slice is the last. Returns whether
    /// any slice moved.
    async fn respread_missed_slices(
        &self,
        tenant: &str,
        slice: &SliceRecord,
        open_slices: &[SliceRecord],
        window_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, ExecutionError> {
        let later: Vec<&SliceRecord> = open_slices
            .iter()
            .filter(|s| s.sequence > slice.sequence)
            .collect();
        if !later.iter().any(|s| s.due_at <= now) {
            return Ok(false);
        }
        let times = decide::respread(now, window_end, later.len());
        let moves: Vec<(String, Option<DateTime<Utc>>)> = later
            .iter()
            .zip(times)
            .map(|(s, due)| (s.id.clone(), due))
            .collect();
        tracing::info!(block_id = %slice.block_order_id, slices = moves.len(), "missed slices spread over the rest of the window");
        self.store.reschedule_slices(tenant, &moves).await?;
        Ok(true)
    }

    /// What each leg sends this slice: the whole block's slice (sized from
    /// what remains, by the algorithm, capped by participation) split pro
    /// rata to what each leg needs; a market order's last slice sends
    /// everything left, a TWAP or VWAP slice never more than the cap.
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
        let market = block.algorithm.kind == AlgorithmKind::Market;
        if (slices_left <= 1 && market) || reference <= Decimal::ZERO {
            return needed.iter().map(|(leg, left)| (*leg, *left)).collect();
        }
        let total = decide::shares_needed(needed, reference);
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
        // A slice that covers everything sends everything (flooring each leg
        // of a size floored to the share step would leave a residue behind).
        if size + FRACTIONAL_STEP >= total {
            return needed.iter().map(|(leg, left)| (*leg, *left)).collect();
        }
        decide::split_over_legs(size, needed, reference)
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
        let hours = TradingHours::of(&block.symbol);
        let share_at = |due: DateTime<Utc>| -> Decimal {
            let Some(session) = hours.open_session(due) else {
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
}

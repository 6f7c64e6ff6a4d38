//! Whether a plan still fits its account. Holdings, cash and the target can
//! change between preview and approval (an upsert, a deposit, a new
//! portfolio version), so a plan is checked again where state changes hands:
//! when it is edited, when it is approved, and when a newer plan for the
//! same account arrives. Execution checks again per child order (sells never
//! above the shares held, buys never above the cash available).

use std::collections::HashSet;

use rebalancer_domain::account::CashLimits;
use rebalancer_domain::cash::{CashMovementKind, CashMovementStatus};
use rebalancer_domain::run::{OrderStatus, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::RequestContext;
use rebalancer_kit::wire::money_text;
use rust_decimal::Decimal;

use crate::Execution;
use crate::book::store::{AccountRecord, CashMovementRecord};
use crate::error::ExecutionError;
use crate::runs::RunSpecInput;
use crate::runs::store::{OrderEdit, OrderRecord, RunChange, RunRecord};

/// Buys may exceed the plan's funding by this share of their value (plus a
/// dollar) before an edit or an approval is refused: estimates round, and
/// execution sizes buys from the cash actually there anyway.
const FUNDING_TOLERANCE: Decimal = Decimal::from_parts(5, 0, 0, false, 3);
const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// An order as it would be sent: its shares and, for notional orders, dollars.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sized<'a> {
    pub order: &'a OrderRecord,
    pub quantity: Decimal,
    pub notional: Option<Decimal>,
}

impl<'a> Sized<'a> {
    /// The order as planned.
    fn planned(order: &'a OrderRecord) -> Self {
        Self {
            order,
            quantity: order.quantity,
            notional: order.notional,
        }
    }

    fn value(&self) -> Decimal {
        self.notional
            .unwrap_or(self.quantity * self.order.estimated_price)
    }
}

/// Why the buys cannot be paid for: more than the buying power plus what the
/// sells raise, at the plan's prices.
pub(super) fn overspend(orders: &[Sized<'_>], limits: CashLimits) -> Option<String> {
    let total = |side: Side| -> Decimal {
        orders
            .iter()
            .filter(|sized| sized.order.side == side)
            .map(Sized::value)
            .sum()
    };
    let (buys, sells) = (total(Side::Buy), total(Side::Sell));
    let power = limits.buying_power();
    let tolerance = buys * FUNDING_TOLERANCE + Decimal::ONE;
    (buys > power + sells + tolerance).then(|| {
        format!(
            "buys of {} need more than the account can spend: {} of buying power plus {} from sells",
            money_text(buys),
            money_text(power),
            money_text(sells)
        )
    })
}

/// Sells of more shares than the account holds now, in words.
pub(super) fn oversold(orders: &[Sized<'_>], account: &AccountRecord) -> Vec<String> {
    orders
        .iter()
        .filter(|sized| sized.order.side == Side::Sell)
        .filter_map(|sized| {
            let held = account
                .positions
                .iter()
                .find(|p| p.symbol == sized.order.symbol)
                .map_or(Decimal::ZERO, |p| p.quantity);
            (sized.quantity > held).then(|| {
                format!(
                    "sells {} {} but the account holds {held} now",
                    sized.quantity, sized.order.symbol
                )
            })
        })
        .collect()
}

/// Orders on a side of a symbol the account's preferences now restrict.
pub(super) fn restricted(orders: &[Sized<'_>], account: &AccountRecord) -> Vec<String> {
    orders
        .iter()
        .filter_map(|sized| {
            let rule = account
                .preferences
                .restricted
                .iter()
                .find(|rule| rule.symbol == sized.order.symbol)?;
            let (blocked, verb) = match sized.order.side {
                Side::Buy => (rule.no_buy, "buys"),
                Side::Sell => (rule.no_sell, "sells"),
            };
            blocked.then(|| {
                format!(
                    "{verb} {} but the account restricts it now",
                    sized.order.symbol
                )
            })
        })
        .collect()
}

/// The live orders of a run as they stand.
pub(super) fn live_orders(run: &RunRecord) -> Vec<Sized<'_>> {
    run.orders
        .iter()
        .filter(|o| !o.excluded)
        .map(Sized::planned)
        .collect()
}

/// What an account may spend for `run`: the withdrawal the run raises cash
/// for (if still open) is not held back from it.
pub(super) fn limits_for_run(
    account: &AccountRecord,
    movement: Option<&CashMovementRecord>,
) -> CashLimits {
    let mut limits = account.limits();
    if let Some(movement) = movement
        && movement.kind == CashMovementKind::Withdrawal
        && !matches!(
            movement.status,
            CashMovementStatus::Settled | CashMovementStatus::Canceled
        )
    {
        limits.earmarked = (limits.earmarked - movement.amount).max(Decimal::ZERO);
    }
    limits
}

impl Execution {
    /// What changed since `run` was planned that makes it wrong to execute:
    /// shares no longer held, cash no longer there, or a portfolio that moved
    /// to another version. Empty when the plan still holds.
    pub(super) async fn plan_changes(
        &self,
        context: &RequestContext,
        run: &RunRecord,
    ) -> Result<Vec<String>, ExecutionError> {
        let account = self
            .store
            .get_account(&context.tenant, &run.account_id)
            .await?
            .ok_or_else(|| {
                ExecutionError::NotFound(format!("account {} not found", run.account_id))
            })?;
        let orders = live_orders(run);
        let mut changes = oversold(&orders, &account);
        changes.extend(restricted(&orders, &account));
        let limits = self.run_limits(context, run, &account).await?;
        // Buys the plan funded with cash that has gone since.
        if limits.free_cash() < run.cash_before - CENT {
            changes.extend(overspend(&orders, limits));
        }
        // Gains booked since the plan may have spent the year's budget.
        if let (Some(budget), Some(tax)) = (account.tax.annual_gain_budget, &run.tax)
            && account.tax.status == rebalancer_domain::tax::TaxStatus::Taxable
            && run.kind == rebalancer_domain::run::RunKind::FullRebalance
        {
            let planned = tax.short_term_gain + tax.long_term_gain;
            let year = self
                .realized_this_year(&context.tenant, &account.id)
                .await?;
            let realized = year.short_term + year.long_term;
            if planned > Decimal::ZERO && realized + planned > budget {
                changes.push(format!(
                    "its sales realize ${} of gains; with ${} realized this year since, the annual gain budget of ${budget} would be exceeded",
                    planned.round_dp(2),
                    realized.round_dp(2)
                ));
            }
        }
        if let (Some(portfolio_id), Some(version)) = (&run.portfolio_id, run.portfolio_version) {
            let now = self.assigned_target(context, &run.account_id).await?;
            let current = now
                .as_ref()
                .and_then(|t| t.portfolio_id.as_deref().zip(t.portfolio_version));
            match current {
                Some((id, current)) if id == portfolio_id && current == version => {}
                Some((id, current)) => changes.push(format!(
                    "planned against portfolio {portfolio_id} version {version}; the account now follows {id} version {current}"
                )),
                None => changes.push(format!(
                    "planned against portfolio {portfolio_id} version {version}; the account no longer follows it"
                )),
            }
        }
        Ok(changes)
    }

    /// [`limits_for_run`], with the run's withdrawal read from the book.
    async fn run_limits(
        &self,
        context: &RequestContext,
        run: &RunRecord,
        account: &AccountRecord,
    ) -> Result<CashLimits, ExecutionError> {
        let movement = match &run.cash_movement_id {
            Some(id) => self.store.get_cash_movement(&context.tenant, id).await?,
            None => None,
        };
        Ok(limits_for_run(account, movement.as_ref()))
    }

    /// Whether edits leave buys the account cannot pay for, and which edited
    /// orders raised a buy (fewer sales only shrink the buys at execution,
    /// cut to the cash there; a raised buy must be paid for).
    pub(super) async fn edits_overspend(
        &self,
        context: &RequestContext,
        run: &RunRecord,
        account: &AccountRecord,
        edits: &[OrderEdit],
    ) -> Result<Option<(String, HashSet<String>)>, ExecutionError> {
        let mut raised = HashSet::new();
        let mut edited = Vec::new();
        for order in &run.orders {
            let planned = Sized::planned(order);
            match edits.iter().find(|e| e.order_id == order.id) {
                Some(edit) if edit.excluded => {}
                Some(edit) => {
                    let sized = Sized {
                        order,
                        quantity: edit.quantity,
                        notional: edit.notional,
                    };
                    if order.side == Side::Buy && sized.value() > planned.value() {
                        raised.insert(order.id.clone());
                    }
                    edited.push(sized);
                }
                None if order.excluded => {}
                None => edited.push(planned),
            }
        }
        if raised.is_empty() {
            return Ok(None);
        }
        let limits = self.run_limits(context, run, account).await?;
        Ok(overspend(&edited, limits).map(|problem| (problem, raised)))
    }

    /// Ends the account's open run when a new plan may take its place: it
    /// expired, or it is a proposal planned against an older version of the
    /// portfolio the new spec names. Returns whether the account is free.
    pub(super) async fn clear_stale_run(
        &self,
        context: &RequestContext,
        open_id: &str,
        spec: &RunSpecInput,
    ) -> Result<bool, ExecutionError> {
        let Some(run) = self.store.get_run(&context.tenant, open_id).await? else {
            return Ok(true);
        };
        if self.expire_if_due(context, &run).await? {
            return Ok(true);
        }
        let planned_version = run.portfolio_version.unwrap_or_default();
        if run.status == RunStatus::Proposed
            && !spec.portfolio_id.is_empty()
            && run.portfolio_id.as_deref() == Some(spec.portfolio_id.as_str())
            && spec.portfolio_version > planned_version
        {
            let reason = format!(
                "superseded: planned against portfolio {} version {planned_version}, which is now at version {}",
                spec.portfolio_id, spec.portfolio_version
            );
            self.end_waiting_run(context, &run, RunStatus::Canceled, reason)
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Ends `run` TIMEOUT when it is still waiting past its expiry; returns
    /// whether it did.
    pub(super) async fn expire_if_due(
        &self,
        context: &RequestContext,
        run: &RunRecord,
    ) -> Result<bool, ExecutionError> {
        let now = self.clock.now();
        let waiting = matches!(run.status, RunStatus::Proposed | RunStatus::Queued);
        if !waiting || run.expires_at.is_none_or(|at| at > now) {
            return Ok(false);
        }
        let reason = format!(
            "expired at {}: not {} in time, the plan is stale",
            run.expires_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
            if run.status == RunStatus::Proposed {
                "approved"
            } else {
                "started"
            }
        );
        self.end_waiting_run(context, run, RunStatus::Timeout, reason)
            .await?;
        Ok(true)
    }

    /// Ends a proposed or queued run (TIMEOUT or CANCELED) with its orders.
    pub(super) async fn end_waiting_run(
        &self,
        context: &RequestContext,
        run: &RunRecord,
        status: RunStatus,
        reason: String,
    ) -> Result<RunRecord, ExecutionError> {
        let now = self.clock.now();
        let order_status = if status == RunStatus::Timeout {
            OrderStatus::Expired
        } else {
            OrderStatus::Canceled
        };
        let change = RunChange {
            status: Some(status),
            completed_at: (status == RunStatus::Timeout).then_some(now),
            canceled_at: (status == RunStatus::Canceled).then_some(now),
            order_statuses: run
                .orders
                .iter()
                .map(|o| (o.id.clone(), order_status, reason.clone()))
                .collect(),
            reason: Some(reason),
            ..RunChange::default()
        };
        let ended = self
            .store
            .update_run(&context.tenant, &run.id, None, change, now)
            .await?;
        tracing::info!(run_id = %run.id, status = %ended.status, reason = %ended.reason, "waiting run ended");
        self.notify(&run.id);
        Ok(ended)
    }
}

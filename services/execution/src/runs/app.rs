//! The advisor's part of a run: preview, create, read, approve, edit,
//! cancel. Plans come from [`super::plan`]; status changes go through the
//! domain's run transitions.

use chrono::{DateTime, Utc};
use rebalancer_domain::Violations;
use rebalancer_domain::algo::AlgorithmInput;
use rebalancer_domain::decimal::{parse_decimal, significant_scale};
use rebalancer_domain::portfolio::WeightInput;
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::RequestContext;
use rebalancer_kit::wire::{decimal_text, money_text};
use rust_decimal::Decimal;

use super::targets::TargetInfo;
use crate::Execution;
use crate::error::ExecutionError;
use crate::runs::store::{
    AdjustmentEntry, OrderEdit, OrderRecord, RunChange, RunFilter, RunRecord, SkipEntry,
};
use crate::store::{Created, IdempotencyClaim, PageRequest};

/// What to plan, as a client sent it (field paths under `spec.`).
#[derive(Debug, Clone, Default)]
pub struct RunSpecInput {
    pub account_id: String,
    pub kind: Option<RunKind>,
    pub amount: String,
    pub weights: Vec<WeightInput>,
    pub initiated_from: Option<InitiatedFrom>,
    pub approval_mode: Option<ApprovalMode>,
    pub algorithm: AlgorithmInput,
    pub reason: String,
    pub minimum_order_notional: String,
    pub cash_movement_id: String,
    /// The portfolio the caller evaluated; empty: the current assignment.
    pub portfolio_id: String,
    /// The version of `portfolio_id` the caller evaluated; 0: its current one.
    pub portfolio_version: i64,
    /// When a run not yet started ends TIMEOUT; `Err` for a time out of
    /// range; `None`: the close of the trading day.
    pub expires_at: Option<Result<DateTime<Utc>, ()>>,
    /// Trade through the wash-sale guard.
    pub allow_wash_sales: bool,
}

/// An edit of one order, as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct OrderAdjustmentInput {
    pub order_id: String,
    pub quantity: String,
    pub notional: String,
    pub exclude: bool,
    /// Sales: the lots to close first, in order.
    pub lot_ids: Vec<String>,
}

impl Execution {
    /// Plans a run and shows it without storing anything.
    ///
    /// # Errors
    /// As [`Execution::create_run`], minus conflicts.
    #[tracing::instrument(name = "preview_run", skip_all, fields(tenant = %context.tenant, account_id = %spec.account_id))]
    pub async fn preview_run(
        &self,
        context: &RequestContext,
        spec: RunSpecInput,
    ) -> Result<RunRecord, ExecutionError> {
        self.plan_run(context, spec, None, None).await
    }

    /// Plans and stores a run: PROPOSED under manual approval, else QUEUED.
    /// One run per account at a time, once per idempotency key: a retry gets
    /// the run created first.
    ///
    /// # Errors
    /// `Invalid`, `NotFound` (account), `FailedPrecondition` (open run, no
    /// target), `Unavailable` (Target service).
    #[tracing::instrument(name = "create_run", skip_all, fields(tenant = %context.tenant, account_id = %spec.account_id))]
    pub async fn create_run(
        &self,
        context: &RequestContext,
        spec: RunSpecInput,
        claim: IdempotencyClaim,
        batch_id: Option<String>,
    ) -> Result<Created<RunRecord>, ExecutionError> {
        self.create_run_with_target(context, spec, Some(claim), batch_id, None)
            .await
    }

    /// [`Execution::create_run`] with the account's target already read
    /// (a batch reads every account's target in one stream).
    pub(super) async fn create_run_with_target(
        &self,
        context: &RequestContext,
        spec: RunSpecInput,
        claim: Option<IdempotencyClaim>,
        batch_id: Option<String>,
        known_target: Option<Option<TargetInfo>>,
    ) -> Result<Created<RunRecord>, ExecutionError> {
        if let Some(open) = self
            .store
            .open_run_id(&context.tenant, &spec.account_id)
            .await?
            && !self.clear_stale_run(context, &open, &spec).await?
            && claim.is_none()
        {
            return Err(ExecutionError::FailedPrecondition(format!(
                "account {} already has run {open} in progress",
                spec.account_id
            )));
        }
        let movement = Some(spec.cash_movement_id.clone()).filter(|id| !id.is_empty());
        let run = self.plan_run(context, spec, batch_id, known_target).await?;
        let created = match self.store.create_run(&context.tenant, run, claim).await {
            Err(crate::store::StoreError::Conflict(message)) => {
                return Err(ExecutionError::FailedPrecondition(message));
            }
            other => other?,
        };
        if let Created::New(run) = &created {
            tracing::info!(run_id = %run.id, status = %run.status, orders = run.orders.len(), "run created");
            if let Some(movement_id) = movement {
                self.store
                    .apply_cash_action(
                        &context.tenant,
                        &movement_id,
                        rebalancer_domain::cash::CashAction::Acknowledge,
                        Some(run.id.clone()),
                        self.clock.now(),
                    )
                    .await?;
            }
            self.notify(&run.id);
        }
        Ok(created)
    }

    /// One run.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_run(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<RunRecord, ExecutionError> {
        self.store
            .get_run(&context.tenant, id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("run {id} not found")))
    }

    /// Runs newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_runs(
        &self,
        context: &RequestContext,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Vec<RunRecord>, ExecutionError> {
        Ok(self.store.list_runs(&context.tenant, filter, page).await?)
    }

    /// Approves a proposed run: it is queued for execution.
    ///
    /// # Errors
    /// `NotFound`, `Aborted` (stale etag), `FailedPrecondition` (not proposed).
    #[tracing::instrument(name = "approve_run", skip_all, fields(tenant = %context.tenant, run_id = %id))]
    pub async fn approve_run(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
    ) -> Result<RunRecord, ExecutionError> {
        let revision = crate::book::parse_etag("etag", etag)?;
        let run = self.get_run(context, id).await?;
        if run.status != RunStatus::Proposed {
            return Err(ExecutionError::FailedPrecondition(format!(
                "run {id} is {}, not proposed",
                run.status
            )));
        }
        if revision.is_some_and(|revision| revision != run.revision) {
            return Err(ExecutionError::Aborted(format!(
                "run {id} changed since etag {etag} (now r{})",
                run.revision
            )));
        }
        if self.expire_if_due(context, &run).await? {
            return Err(ExecutionError::FailedPrecondition(format!(
                "run {id} expired at {}: preview and create it again",
                run.expires_at.map(|at| at.to_rfc3339()).unwrap_or_default()
            )));
        }
        let creator = run
            .adjustments
            .iter()
            .find(|entry| entry.action == "created")
            .map_or("", |entry| entry.actor.as_str());
        self.check_four_eyes(context, &format!("run {id}"), creator)
            .await?;
        let changes = self.plan_changes(context, &run).await?;
        if !changes.is_empty() {
            return Err(ExecutionError::FailedPrecondition(format!(
                "run {id} no longer fits account {}: {}; cancel it and create a new one",
                run.account_id,
                changes.join("; ")
            )));
        }
        let now = self.clock.now();
        let mut adjustments = run.adjustments.clone();
        adjustments.push(AdjustmentEntry {
            actor: context.actor.clone(),
            at: now,
            order_id: None,
            action: "approved".to_owned(),
            details: String::new(),
        });
        let change = RunChange {
            status: Some(RunStatus::Queued),
            approved_by: Some(context.actor.clone()),
            approved_at: Some(now),
            adjustments: Some(adjustments),
            ..RunChange::default()
        };
        let run = self
            .store
            .update_run(&context.tenant, id, revision, change, now)
            .await?;
        self.notify(id);
        Ok(run)
    }

    /// Edits a proposed run: order quantities (never flipping a side, never
    /// selling more than held), excluded orders, or the whole account.
    ///
    /// # Errors
    /// `Invalid` naming the adjustment, `FailedPrecondition` (not proposed), `Aborted`.
    #[tracing::instrument(name = "adjust_run", skip_all, fields(tenant = %context.tenant, run_id = %id))]
    pub async fn adjust_run(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        adjustments: Vec<OrderAdjustmentInput>,
        exclude_account: bool,
    ) -> Result<RunRecord, ExecutionError> {
        let revision = crate::book::parse_etag("etag", etag)?;
        let run = self.get_run(context, id).await?;
        if run.status != RunStatus::Proposed {
            return Err(ExecutionError::FailedPrecondition(format!(
                "run {id} is {}: only proposed runs can be edited",
                run.status
            )));
        }
        let now = self.clock.now();
        let mut log = run.adjustments.clone();
        let mut change = RunChange::default();
        if exclude_account {
            log.push(AdjustmentEntry {
                actor: context.actor.clone(),
                at: now,
                order_id: None,
                action: "account_excluded".to_owned(),
                details: String::new(),
            });
            change.status = Some(RunStatus::Canceled);
            change.canceled_at = Some(now);
            change.reason = Some(format!("account excluded by {}", context.actor));
            change.adjustments = Some(log);
            let run = self
                .store
                .update_run(&context.tenant, id, revision, change, now)
                .await?;
            self.notify(id);
            return Ok(run);
        }
        let account = self
            .store
            .get_account(&context.tenant, &run.account_id)
            .await?
            .ok_or_else(|| {
                ExecutionError::NotFound(format!("account {} not found", run.account_id))
            })?;
        let mut violations = Violations::new();
        let mut skipped = run.skipped.clone();
        let mut lot_choices: Vec<(usize, String, Vec<String>)> = Vec::new();
        for (index, adjustment) in adjustments.iter().enumerate() {
            let at = |field: &str| format!("adjustments[{index}].{field}");
            let Some(order) = run.orders.iter().find(|o| o.id == adjustment.order_id) else {
                violations.add(
                    at("order_id"),
                    format!("order {:?} is not part of run {id}", adjustment.order_id),
                );
                continue;
            };
            if adjustment.exclude {
                change.order_edits.push(OrderEdit {
                    order_id: order.id.clone(),
                    quantity: order.quantity,
                    notional: order.notional,
                    excluded: true,
                });
                skipped.push(SkipEntry {
                    symbol: order.symbol.clone(),
                    side: order.side.as_str().to_owned(),
                    quantity: order.quantity,
                    notional: order
                        .notional
                        .unwrap_or(order.quantity * order.estimated_price),
                    reason: "excluded".to_owned(),
                    detail: format!("excluded by {}", context.actor),
                });
                log.push(AdjustmentEntry {
                    actor: context.actor.clone(),
                    at: now,
                    order_id: Some(order.id.clone()),
                    action: "order_excluded".to_owned(),
                    details: String::new(),
                });
                continue;
            }
            if !adjustment.lot_ids.is_empty() {
                if order.side != Side::Sell {
                    violations.add(at("lot_ids"), "only a sale closes lots");
                    continue;
                }
                lot_choices.push((index, order.id.clone(), adjustment.lot_ids.clone()));
                log.push(AdjustmentEntry {
                    actor: context.actor.clone(),
                    at: now,
                    order_id: Some(order.id.clone()),
                    action: "lots_chosen".to_owned(),
                    details: adjustment.lot_ids.join(", "),
                });
                if adjustment.quantity.is_empty() && adjustment.notional.is_empty() {
                    continue;
                }
            }
            let held = account
                .positions
                .iter()
                .find(|p| p.symbol == order.symbol)
                .map_or(Decimal::ZERO, |p| p.quantity);
            match edit_order(order, adjustment, held) {
                Ok(edit) => {
                    log.push(AdjustmentEntry {
                        actor: context.actor.clone(),
                        at: now,
                        order_id: Some(order.id.clone()),
                        action: "quantity_changed".to_owned(),
                        details: edit_details(order, &edit),
                    });
                    change.order_edits.push(edit);
                }
                Err((field, problem)) => violations.add(at(field), problem),
            }
        }
        if violations.is_empty()
            && let Some((problem, raised)) = self
                .edits_overspend(context, &run, &account, &change.order_edits)
                .await?
        {
            for (index, adjustment) in adjustments.iter().enumerate() {
                if raised.contains(adjustment.order_id.as_str()) {
                    let field = if adjustment.notional.is_empty() {
                        "quantity"
                    } else {
                        "notional"
                    };
                    violations.add(format!("adjustments[{index}].{field}"), problem.clone());
                }
            }
        }
        // The tax estimate follows the edits and the lots chosen.
        if violations.is_empty() && (run.tax.is_some() || !lot_choices.is_empty()) {
            change.tax = Some(
                self.adjusted_tax(
                    context,
                    &run,
                    &account,
                    &change.order_edits,
                    &lot_choices,
                    &mut violations,
                )
                .await?,
            );
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        change.skipped = Some(skipped);
        change.adjustments = Some(log);
        let run = self
            .store
            .update_run(&context.tenant, id, revision, change, now)
            .await?;
        self.notify(id);
        Ok(run)
    }

    /// Cancels a run: before execution it ends CANCELED; during execution its
    /// unfilled orders stop and it ends CANCELED_MID_RUN.
    ///
    /// # Errors
    /// `NotFound`, `Aborted`, `FailedPrecondition` (already ended).
    #[tracing::instrument(name = "cancel_run", skip_all, fields(tenant = %context.tenant, run_id = %id))]
    pub async fn cancel_run(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        reason: &str,
    ) -> Result<RunRecord, ExecutionError> {
        let revision = if etag.is_empty() {
            None
        } else {
            crate::book::parse_etag("etag", etag)?
        };
        let run = self.get_run(context, id).await?;
        let now = self.clock.now();
        let reason = if reason.is_empty() {
            format!("canceled by {}", context.actor)
        } else {
            reason.to_owned()
        };
        let change = match run.status {
            RunStatus::Proposed | RunStatus::Queued => RunChange {
                status: Some(RunStatus::Canceled),
                canceled_at: Some(now),
                reason: Some(reason),
                order_statuses: run
                    .orders
                    .iter()
                    .map(|o| {
                        (
                            o.id.clone(),
                            OrderStatus::Canceled,
                            "run canceled".to_owned(),
                        )
                    })
                    .collect(),
                ..RunChange::default()
            },
            RunStatus::InProgress => RunChange {
                cancel_requested: Some(true),
                canceled_at: Some(now),
                reason: Some(reason),
                order_statuses: run
                    .orders
                    .iter()
                    .filter(|o| !o.status.is_terminal())
                    .map(|o| {
                        (
                            o.id.clone(),
                            OrderStatus::Canceled,
                            "run canceled".to_owned(),
                        )
                    })
                    .collect(),
                ..RunChange::default()
            },
            status => {
                return Err(ExecutionError::FailedPrecondition(format!(
                    "run {id} already ended ({status})"
                )));
            }
        };
        let run = self
            .store
            .update_run(&context.tenant, id, revision, change, now)
            .await?;
        self.notify(id);
        Ok(run)
    }
}

/// Applies an edit to one order; the error names the field.
/// What an edit changed, as users read it in the run's adjustments, with
/// values written as the API writes them elsewhere:
/// `quantity 47.7 -> 57.3, notional 25000.00 -> 30000.00` ("none" for the
/// notional of an order sized in shares).
fn edit_details(order: &OrderRecord, edit: &OrderEdit) -> String {
    let notional = |value: Option<Decimal>| value.map_or_else(|| "none".to_owned(), money_text);
    format!(
        "quantity {} -> {}, notional {} -> {}",
        decimal_text(order.quantity),
        decimal_text(edit.quantity),
        notional(order.notional),
        notional(edit.notional)
    )
}

fn edit_order(
    order: &OrderRecord,
    adjustment: &OrderAdjustmentInput,
    held: Decimal,
) -> Result<OrderEdit, (&'static str, String)> {
    let parse = |text: &str| -> Result<Option<Decimal>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let value = parse_decimal(text).map_err(|error| error.to_string())?;
        if value <= Decimal::ZERO {
            return Err(
                "must be greater than 0; the side never flips (exclude the order instead)"
                    .to_owned(),
            );
        }
        if value > rebalancer_domain::account::MAX_QUANTITY
            || rebalancer_domain::decimal::significant_scale(value)
                > rebalancer_domain::account::QUANTITY_SCALE
        {
            return Err("must be at most 1000000000000 with at most 9 decimal places".to_owned());
        }
        Ok(Some(value))
    };
    let quantity = parse(&adjustment.quantity).map_err(|problem| ("quantity", problem))?;
    let notional = parse(&adjustment.notional).map_err(|problem| ("notional", problem))?;
    let (quantity, notional) = match (order.notional, quantity, notional) {
        (_, None, None) => {
            return Err((
                "quantity",
                "give a new quantity or notional, or exclude the order".to_owned(),
            ));
        }
        (Some(_), _, Some(notional)) => {
            if significant_scale(notional) > 2 {
                return Err(("notional", "must have at most 2 decimal places".to_owned()));
            }
            (
                (notional / order.estimated_price).round_dp(9),
                Some(notional),
            )
        }
        (Some(_), Some(quantity), None) | (None, Some(quantity), None) => {
            if order.whole_shares && !quantity.fract().is_zero() {
                return Err(("quantity", "this order trades whole shares".to_owned()));
            }
            if significant_scale(quantity) > 9 {
                return Err(("quantity", "must have at most 9 decimal places".to_owned()));
            }
            (quantity, None)
        }
        (None, _, Some(_)) => return Err(("notional", "this order is sized in shares".to_owned())),
    };
    if order.side == Side::Sell && quantity > held {
        return Err((
            "quantity",
            format!(
                "would sell {quantity} {} but the account holds {held}",
                order.symbol
            ),
        ));
    }
    Ok(OrderEdit {
        order_id: order.id.clone(),
        quantity,
        notional,
        excluded: false,
    })
}

//! Batches (the Rebalance Center's rebalance requests): a run planned for
//! every account of a portfolio or of a list, reviewed as trades per ticker
//! and per account, adjusted, then transmitted all at once so the worker
//! works them as one set of block orders.
//!
//! Over 500 lines: a batch's whole life (create, review per ticker, adjust,
//! transmit, cancel, finish) in one place, as the Rebalance Center shows it.

use std::collections::{BTreeMap, HashMap};

use rebalancer_domain::Violations;
use rebalancer_domain::algo::{Algorithm, AlgorithmInput};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::{AssignmentStatus, ListAssignmentsRequest};
use rust_decimal::Decimal;

use crate::Execution;
use crate::error::ExecutionError;
use crate::runs::store::{BatchRecord, BatchStatus, RunFilter, RunRecord};
use crate::runs::{OrderAdjustmentInput, RunSpecInput};
use crate::store::{Created, IdempotencyClaim, PageRequest};

/// Most accounts one batch may cover.
const MAX_BATCH_ACCOUNTS: usize = 100_000;

/// A batch request as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct BatchInput {
    pub portfolio_id: String,
    pub account_ids: Vec<String>,
    pub kind: Option<RunKind>,
    pub algorithm: AlgorithmInput,
    pub reason: String,
    pub initiated_from: Option<InitiatedFrom>,
}

/// A batch with its runs counted by status.
#[derive(Debug, Clone)]
pub struct BatchView {
    pub batch: BatchRecord,
    pub counts: Vec<(RunStatus, i64)>,
}

/// Proposed trades of a batch for one symbol and side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerTotal {
    pub symbol: String,
    pub side: Side,
    pub quantity: Decimal,
    pub notional: Decimal,
    pub accounts: i64,
}

impl Execution {
    /// Every account assigned to `portfolio_id`, from the Target service.
    async fn accounts_of_portfolio(
        &self,
        context: &RequestContext,
        portfolio_id: &str,
    ) -> Result<Vec<String>, ExecutionError> {
        let Some(channel) = &self.target else {
            return Err(ExecutionError::Unavailable(
                "no target service configured".to_owned(),
            ));
        };
        let mut accounts = Vec::new();
        let mut page_token = String::new();
        let call = context.call();
        loop {
            let response = retry_idempotent(Retry::default(), "ListAssignments", |deadline| {
                let mut client = AssignmentServiceClient::new(channel.clone());
                let request = call.request_within(
                    ListAssignmentsRequest {
                        page_size: 1000,
                        page_token: page_token.clone(),
                        portfolio_id: portfolio_id.to_owned(),
                        status: AssignmentStatus::Active.into(),
                        ..ListAssignmentsRequest::default()
                    },
                    deadline,
                );
                async move { client.list_assignments(request).await }
            })
            .await
            .map_err(|status| {
                ExecutionError::Unavailable(format!(
                    "cannot list the portfolio's accounts: {}",
                    status.message()
                ))
            })?
            .into_inner();
            accounts.extend(response.assignments.into_iter().map(|a| a.account_id));
            if response.next_page_token.is_empty() || accounts.len() > MAX_BATCH_ACCOUNTS {
                break;
            }
            page_token = response.next_page_token;
        }
        Ok(accounts)
    }

    /// Plans a run (PROPOSED) for every account of the batch; accounts that
    /// cannot get one are listed with the reason. Once per idempotency key:
    /// a retry gets the batch created first.
    ///
    /// # Errors
    /// `Invalid` for bad input; `Unavailable` when the Target service is down.
    #[tracing::instrument(name = "create_batch", skip_all, fields(tenant = %context.tenant))]
    pub async fn create_batch(
        &self,
        context: &RequestContext,
        input: BatchInput,
        claim: IdempotencyClaim,
    ) -> Result<Created<BatchView>, ExecutionError> {
        let mut violations = Violations::new();
        if input.portfolio_id.is_empty() == input.account_ids.is_empty() {
            violations.add(
                "portfolio_id",
                "give either a portfolio or a list of accounts",
            );
        }
        if input.account_ids.len() > MAX_BATCH_ACCOUNTS {
            violations.add(
                "account_ids",
                format!("at most {MAX_BATCH_ACCOUNTS} accounts"),
            );
        }
        let Some(kind) = input.kind else {
            violations.add(
                "type",
                "is required (full_rebalance, invest_cash or liquidation)",
            );
            return Err(violations.into());
        };
        let algorithm = match input.algorithm.clone().validate("algorithm") {
            Ok(algorithm) => algorithm,
            Err(problems) => {
                for violation in problems {
                    violations.add(violation.field, violation.description);
                }
                Algorithm::default()
            }
        };
        if !violations.is_empty() {
            return Err(violations.into());
        }
        let now = self.clock.now();
        let batch = BatchRecord {
            id: new_id(),
            portfolio_id: Some(input.portfolio_id.clone()).filter(|id| !id.is_empty()),
            kind,
            status: BatchStatus::Proposed,
            algorithm: algorithm.clone(),
            initiated_from: input.initiated_from.unwrap_or(InitiatedFrom::User),
            created_by: context.actor.clone(),
            reason: input.reason.clone(),
            account_errors: Vec::new(),
            revision: 1,
            created_at: now,
            transmitted_at: None,
            completed_at: None,
        };
        let created = self
            .store
            .create_batch(&context.tenant, batch, Some(claim))
            .await?;
        let batch = match created {
            Created::Replayed(batch) => {
                return Ok(Created::Replayed(self.batch_view(context, batch).await?));
            }
            Created::New(batch) => batch,
        };
        let mut accounts = if input.account_ids.is_empty() {
            self.accounts_of_portfolio(context, &input.portfolio_id)
                .await?
        } else {
            input.account_ids.clone()
        };
        accounts.sort();
        accounts.dedup();
        let mut errors = Vec::new();
        // Every account's target in one stream, rather than one call per run.
        let mut targets = if kind == RunKind::Liquidation {
            HashMap::new()
        } else {
            self.assigned_targets(context, &accounts).await?
        };
        for account_id in accounts {
            let known_target = match targets.remove(&account_id) {
                Some(Ok(target)) => Some(Some(target)),
                Some(Err(error)) => {
                    errors.push(format!("{account_id}: {error}"));
                    continue;
                }
                None if kind == RunKind::Liquidation => None,
                None => Some(None),
            };
            let spec = RunSpecInput {
                account_id: account_id.clone(),
                kind: Some(kind),
                initiated_from: Some(batch.initiated_from),
                approval_mode: Some(ApprovalMode::Manual),
                algorithm: input.algorithm.clone(),
                reason: input.reason.clone(),
                ..RunSpecInput::default()
            };
            if let Err(error) = self
                .create_run_with_target(context, spec, None, Some(batch.id.clone()), known_target)
                .await
            {
                errors.push(format!("{account_id}: {error}"));
            }
        }
        let batch = if errors.is_empty() {
            batch
        } else {
            self.store
                .set_batch_errors(&context.tenant, &batch.id, &errors)
                .await?
        };
        tracing::info!(batch_id = %batch.id, errors = errors.len(), "batch proposed");
        Ok(Created::New(self.batch_view(context, batch).await?))
    }

    async fn batch_view(
        &self,
        context: &RequestContext,
        batch: BatchRecord,
    ) -> Result<BatchView, ExecutionError> {
        let counts = self.store.batch_counts(&context.tenant, &batch.id).await?;
        Ok(BatchView { batch, counts })
    }

    /// One batch with its counts.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_batch(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<BatchView, ExecutionError> {
        let batch = self
            .store
            .get_batch(&context.tenant, id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("batch {id} not found")))?;
        self.batch_view(context, batch).await
    }

    /// Batches newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_batches(
        &self,
        context: &RequestContext,
        portfolio_id: Option<&str>,
        status: Option<BatchStatus>,
        page: &PageRequest,
    ) -> Result<Vec<BatchView>, ExecutionError> {
        let batches = self
            .store
            .list_batches(&context.tenant, portfolio_id, status, page)
            .await?;
        let mut views = Vec::with_capacity(batches.len());
        for batch in batches {
            views.push(self.batch_view(context, batch).await?);
        }
        Ok(views)
    }

    /// The batch's trades by ticker and a page of its runs (all of them,
    /// canceled ones included). The totals leave out what will never trade:
    /// orders an advisor excluded, and canceled runs (an excluded account,
    /// a run canceled before it started).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn batch_trades(
        &self,
        context: &RequestContext,
        id: &str,
        page: &PageRequest,
    ) -> Result<(Vec<TickerTotal>, Vec<RunRecord>), ExecutionError> {
        self.get_batch(context, id).await?;
        let filter = RunFilter {
            batch_id: Some(id.to_owned()),
            ..RunFilter::default()
        };
        let mut totals: BTreeMap<(String, &'static str), TickerTotal> = BTreeMap::new();
        let mut after = None;
        loop {
            let runs = self
                .store
                .list_runs(
                    &context.tenant,
                    &filter,
                    &PageRequest {
                        after: after.clone(),
                        limit: 1000,
                    },
                )
                .await?;
            for run in runs.iter().filter(|r| r.status != RunStatus::Canceled) {
                for order in run.orders.iter().filter(|o| !o.excluded) {
                    let total = totals
                        .entry((order.symbol.clone(), order.side.as_str()))
                        .or_insert(TickerTotal {
                            symbol: order.symbol.clone(),
                            side: order.side,
                            quantity: Decimal::ZERO,
                            notional: Decimal::ZERO,
                            accounts: 0,
                        });
                    total.quantity += order.quantity;
                    total.notional += order
                        .notional
                        .unwrap_or(order.quantity * order.estimated_price);
                    total.accounts += 1;
                }
            }
            match runs.last() {
                Some(last) if runs.len() == 1000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let runs = self.store.list_runs(&context.tenant, &filter, page).await?;
        Ok((totals.into_values().collect(), runs))
    }

    /// Excludes accounts and edits orders of a proposed batch.
    ///
    /// # Errors
    /// `NotFound`, `FailedPrecondition` (not proposed), `Invalid` for bad edits.
    pub async fn adjust_batch(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        exclude_account_ids: &[String],
        adjustments: Vec<OrderAdjustmentInput>,
    ) -> Result<BatchView, ExecutionError> {
        let revision = crate::book::parse_etag("etag", etag)?;
        let view = self.get_batch(context, id).await?;
        if view.batch.status != BatchStatus::Proposed {
            return Err(ExecutionError::FailedPrecondition(format!(
                "batch {id} was already transmitted"
            )));
        }
        let runs = self.batch_runs(context, id).await?;
        for account_id in exclude_account_ids {
            let run = runs
                .iter()
                .find(|r| &r.account_id == account_id && r.status == RunStatus::Proposed)
                .ok_or_else(|| {
                    Violations::one(
                        "exclude_account_ids",
                        format!("{account_id} has no proposed run in the batch"),
                    )
                })?;
            self.adjust_run(context, &run.id, "", Vec::new(), true)
                .await?;
        }
        let mut by_run: BTreeMap<String, Vec<OrderAdjustmentInput>> = BTreeMap::new();
        for (index, adjustment) in adjustments.into_iter().enumerate() {
            let run = runs
                .iter()
                .find(|r| r.orders.iter().any(|o| o.id == adjustment.order_id))
                .ok_or_else(|| {
                    Violations::one(
                        format!("adjustments[{index}].order_id"),
                        "is not an order of this batch",
                    )
                })?;
            by_run.entry(run.id.clone()).or_default().push(adjustment);
        }
        for (run_id, edits) in by_run {
            self.adjust_run(context, &run_id, "", edits, false).await?;
        }
        let batch = self
            .store
            .update_batch(&context.tenant, id, revision, None, None, self.clock.now())
            .await?;
        self.batch_view(context, batch).await
    }

    /// Approves every proposed run of the batch at once: the worker works
    /// them together as block orders.
    ///
    /// # Errors
    /// `NotFound`, `Aborted`, `FailedPrecondition` (not proposed).
    #[tracing::instrument(name = "transmit_batch", skip_all, fields(tenant = %context.tenant, batch_id = %id))]
    pub async fn transmit_batch(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        algorithm: Option<AlgorithmInput>,
    ) -> Result<BatchView, ExecutionError> {
        let revision = crate::book::parse_etag("etag", etag)?;
        let view = self.get_batch(context, id).await?;
        if view.batch.status != BatchStatus::Proposed {
            return Err(ExecutionError::FailedPrecondition(format!(
                "batch {id} was already transmitted"
            )));
        }
        let algorithm = match algorithm {
            Some(input) => input.validate("algorithm")?,
            None => view.batch.algorithm.clone(),
        };
        self.check_four_eyes(context, &format!("batch {id}"), &view.batch.created_by)
            .await?;
        let now = self.clock.now();
        let batch = self
            .store
            .update_batch(
                &context.tenant,
                id,
                revision,
                Some(BatchStatus::InProgress),
                Some(algorithm.clone()),
                now,
            )
            .await?;
        let queued = self
            .store
            .queue_batch_runs(&context.tenant, id, &algorithm, &context.actor, now)
            .await?;
        tracing::info!(queued, "batch transmitted");
        self.finish_batch_if_done(&context.tenant, id).await?;
        let batch = self
            .store
            .get_batch(&context.tenant, id)
            .await?
            .unwrap_or(batch);
        self.batch_view(context, batch).await
    }

    /// Cancels every run of the batch that has not ended.
    ///
    /// # Errors
    /// `NotFound`, `FailedPrecondition` (already ended).
    pub async fn cancel_batch(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        reason: &str,
    ) -> Result<BatchView, ExecutionError> {
        let revision = crate::book::parse_etag("etag", etag)?;
        let view = self.get_batch(context, id).await?;
        if matches!(
            view.batch.status,
            BatchStatus::Completed | BatchStatus::Canceled
        ) {
            return Err(ExecutionError::FailedPrecondition(format!(
                "batch {id} already ended"
            )));
        }
        for run in self.batch_runs(context, id).await? {
            if !run.status.is_terminal() {
                self.cancel_run(context, &run.id, "", reason).await?;
            }
        }
        let batch = self
            .store
            .update_batch(
                &context.tenant,
                id,
                revision,
                Some(BatchStatus::Canceled),
                None,
                self.clock.now(),
            )
            .await?;
        self.batch_view(context, batch).await
    }

    async fn batch_runs(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<Vec<RunRecord>, ExecutionError> {
        let filter = RunFilter {
            batch_id: Some(id.to_owned()),
            ..RunFilter::default()
        };
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_runs(
                    &context.tenant,
                    &filter,
                    &PageRequest {
                        after: after.clone(),
                        limit: 1000,
                    },
                )
                .await?;
            let last = page.last().map(|r| r.id.clone());
            let full = page.len() == 1000;
            all.extend(page);
            match last {
                Some(last) if full => after = Some(last),
                _ => break,
            }
        }
        Ok(all)
    }

    /// Marks a transmitted batch completed once none of its runs is open.
    pub(crate) async fn finish_batch_if_done(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(), ExecutionError> {
        let counts = self.store.batch_counts(tenant, id).await?;
        let open = counts
            .iter()
            .any(|(status, count)| !status.is_terminal() && *count > 0);
        if open {
            return Ok(());
        }
        if let Some(batch) = self.store.get_batch(tenant, id).await?
            && batch.status == BatchStatus::InProgress
        {
            self.store
                .update_batch(
                    tenant,
                    id,
                    None,
                    Some(BatchStatus::Completed),
                    None,
                    self.clock.now(),
                )
                .await?;
        }
        Ok(())
    }
}

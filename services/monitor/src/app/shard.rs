//! The shard worker: claims a shard of a cycle, streams the shard's
//! assignments (Target) and holdings (Execution) side by side in account
//! order, evaluates each account, opens the runs it asks for (with a
//! deterministic idempotency key, so a retried shard never opens a second
//! run), and writes the evaluations.
//!
//! Over 500 lines: the two streams, the evaluation and the writes are
//! pipelined in one loop (writes overlap the next reads), and the loop's
//! state is what keeps the cycle within a small factor of a raw scan.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt;
use rebalancer_domain::evaluation::{
    self, AccountView, AssignmentView, Evaluation, EvaluationInput, PreparedTarget, PriceBook,
    TargetView,
};
use rebalancer_domain::run::RunKind;
use rebalancer_kit::RequestContext;
use rebalancer_kit::wire::decimal_text;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::common::{InitiatedFrom, RunType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AcknowledgeCashMovementRequest, CreateRunRequest, GetQuotesRequest, Holdings, RunSpec,
    StreamHoldingsRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::{ResolvedAssignment, StreamAssignmentsRequest};
use rust_decimal::Decimal;
use tonic::Streaming;
use tracing::Instrument;

use super::Monitor;
use super::inputs::{self, Assigned, ParsedHoldings, TargetCache};
use crate::error::MonitorError;
use crate::store::{
    CycleRecord, CycleState, CycleTrigger, EvaluationRecord, ShardCounts, ShardFailure,
    ShardRecord, StoreError, TickerRecord,
};

/// How long a claimed shard stays with its replica.
const LEASE: Duration = Duration::minutes(10);
/// Attempts of a shard before its cycle fails: with the back-off below, a
/// cycle whose peer stays unreachable fails after about 15 minutes.
const MAX_ATTEMPTS: i32 = 5;
/// Wait before the next attempt of a failed shard, times the attempts made.
const RETRY_BACKOFF: Duration = Duration::seconds(90);
/// Accounts evaluated (and written) per step.
const STEP: usize = 1000;
/// Assignments and holdings per streamed message.
const STREAM_BATCH: i32 = 2000;

/// A stream of account-ordered records, buffered a message at a time.
struct Cursor<T> {
    stream: Streaming<T>,
    buffer: VecDeque<Record>,
    done: bool,
}

enum Record {
    Assignment(ResolvedAssignment),
    Holdings(Holdings),
}

impl Record {
    fn account_id(&self) -> &str {
        match self {
            Self::Assignment(a) => &a.account_id,
            Self::Holdings(h) => &h.account_id,
        }
    }
}

trait Batch {
    fn records(self) -> Vec<Record>;
}

impl Batch for rebalancer_proto::target::StreamAssignmentsResponse {
    fn records(self) -> Vec<Record> {
        self.assignments
            .into_iter()
            .map(Record::Assignment)
            .collect()
    }
}

impl Batch for rebalancer_proto::execution::StreamHoldingsResponse {
    fn records(self) -> Vec<Record> {
        self.holdings.into_iter().map(Record::Holdings).collect()
    }
}

impl<T: Batch> Cursor<T> {
    fn new(stream: Streaming<T>) -> Self {
        Self {
            stream,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// The next record's account id, reading a message when needed.
    async fn peek(&mut self) -> Result<Option<&str>, MonitorError> {
        while self.buffer.is_empty() && !self.done {
            match self.stream.message().await {
                Ok(Some(batch)) => self.buffer.extend(batch.records()),
                Ok(None) => self.done = true,
                Err(status) => {
                    return Err(MonitorError::Unavailable(format!(
                        "stream failed: {}",
                        status.message()
                    )));
                }
            }
        }
        Ok(self.buffer.front().map(Record::account_id))
    }

    fn pop(&mut self) -> Option<Record> {
        self.buffer.pop_front()
    }
}

/// One account of the shard: its assignment (if any) and holdings (if any).
struct Pair {
    account_id: String,
    assignment: Option<ResolvedAssignment>,
    holdings: Option<ParsedHoldings>,
}

impl Monitor {
    /// Claims and works shards until none is left open, keeping
    /// `parallel_shards` under way: a shard is claimed as soon as one ends.
    /// Each shard is its own task, so a shard in the middle of a
    /// transaction keeps going while the next one is claimed.
    pub(super) async fn work_shards(&self, owner: &str) -> Result<usize, MonitorError> {
        let parallel = self.config.parallel_shards.max(1);
        let mut working = tokio::task::JoinSet::new();
        let mut worked = 0;
        loop {
            while working.len() < parallel {
                let now = self.clock.now();
                let claimed = match self.store.claim_shard(owner, now, now + LEASE).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        // Let the shards under way finish (dropping the set
                        // would abort them mid-step) before reporting.
                        while working.join_next().await.is_some() {}
                        return Err(error.into());
                    }
                };
                let Some((tenant, shard)) = claimed else {
                    break;
                };
                shard_metrics().shard_claimed(shard.attempts);
                worked += 1;
                let monitor = self.clone();
                let owner = owner.to_owned();
                working.spawn(async move {
                    let cycle = match monitor.store.get_cycle(&tenant, &shard.cycle_id).await {
                        Ok(Some(cycle)) => cycle,
                        Ok(None) => {
                            let error = MonitorError::NotFound(format!(
                                "cycle {} not found",
                                shard.cycle_id
                            ));
                            monitor.shard_failed(&owner, &tenant, &shard, &error).await;
                            return;
                        }
                        Err(error) => {
                            let error = MonitorError::from(error);
                            monitor.shard_failed(&owner, &tenant, &shard, &error).await;
                            return;
                        }
                    };
                    // Part of the trace of the request or schedule that
                    // started the cycle.
                    let span = tracing::info_span!(
                        parent: None,
                        "work_shard",
                        %tenant,
                        cycle_id = %shard.cycle_id,
                        sequence = shard.sequence,
                    );
                    rebalancer_kit::trace::continue_trace(&span, cycle.trace_context.as_deref());
                    let worked = monitor
                        .work_shard(&owner, &tenant, &shard, &cycle)
                        .instrument(span.clone())
                        .await;
                    if let Err(error) = worked {
                        monitor
                            .shard_failed(&owner, &tenant, &shard, &error)
                            .instrument(span)
                            .await;
                    }
                });
            }
            match working.join_next().await {
                None => return Ok(worked),
                Some(Err(error)) => tracing::error!(%error, "shard task ended abnormally"),
                Some(Ok(())) => {}
            }
        }
    }

    async fn work_shard(
        &self,
        owner: &str,
        tenant: &str,
        shard: &ShardRecord,
        cycle: &CycleRecord,
    ) -> Result<(), MonitorError> {
        let context = RequestContext::system(tenant);
        let call = context.call();
        // Opening the streams is retried on transient failures (reads); a
        // stream broken midway fails the shard's attempt, retried later.
        let assignment_stream = retry_idempotent(Retry::default(), "StreamAssignments", |_| {
            let mut client = AssignmentServiceClient::new(self.target.clone());
            let request = call.request(StreamAssignmentsRequest {
                batch_size: STREAM_BATCH,
                portfolio_id: cycle.portfolio_id.clone().unwrap_or_default(),
                account_ids: cycle.account_ids.clone(),
                include_unmonitored: true,
                after_account_id: shard.after_account.clone().unwrap_or_default(),
                before_account_id: shard.before_account.clone().unwrap_or_default(),
                omit_repeated_targets: true,
            });
            async move { client.stream_assignments(request).await }
        })
        .await
        .map_err(|status| {
            MonitorError::Unavailable(format!("target service: {}", status.message()))
        })?
        .into_inner();
        let holdings_stream = retry_idempotent(Retry::default(), "StreamHoldings", |_| {
            let mut client = AccountServiceClient::new(self.execution.clone());
            let request = call.request(StreamHoldingsRequest {
                batch_size: STREAM_BATCH,
                account_ids: cycle.account_ids.clone(),
                after_account_id: shard.after_account.clone().unwrap_or_default(),
                before_account_id: shard.before_account.clone().unwrap_or_default(),
            });
            async move { client.stream_holdings(request).await }
        })
        .await
        .map_err(|status| {
            MonitorError::Unavailable(format!("execution service: {}", status.message()))
        })?
        .into_inner();
        let mut assigned = Cursor::new(assignment_stream);
        let mut held = Cursor::new(holdings_stream);
        let mut targets = TargetCache::new();
        let mut prices = PriceBook::default();
        let mut priced: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut counts = ShardCounts::default();
        let scoped_to_portfolio = cycle.portfolio_id.is_some();
        // A step's evaluations are written while the next step is read: at
        // most one write in flight.
        let mut writing: Option<Writing> = None;
        loop {
            let mut step = Vec::with_capacity(STEP);
            while step.len() < STEP {
                let next_assignment = assigned.peek().await?.map(str::to_owned);
                let next_holdings = held.peek().await?.map(str::to_owned);
                let pair = match (next_assignment, next_holdings) {
                    (None, None) => break,
                    (Some(a), Some(h)) if a == h => Pair {
                        account_id: a,
                        assignment: take_assignment(&mut assigned),
                        holdings: take_holdings(&mut held),
                    },
                    (Some(a), Some(h)) if a < h => Pair {
                        account_id: a,
                        assignment: take_assignment(&mut assigned),
                        holdings: None,
                    },
                    (Some(a), None) => Pair {
                        account_id: a,
                        assignment: take_assignment(&mut assigned),
                        holdings: None,
                    },
                    (_, Some(h)) => Pair {
                        account_id: h,
                        assignment: None,
                        holdings: take_holdings(&mut held),
                    },
                };
                // A cycle scoped to a portfolio looks only at its accounts.
                if scoped_to_portfolio && pair.assignment.is_none() {
                    continue;
                }
                step.push(pair);
            }
            if step.is_empty() {
                break;
            }
            // The previous step's evaluations are stored before this step
            // opens runs: a failed write is retried with nothing acted on
            // beyond it.
            if let Some(previous) = writing.take() {
                finish_write(previous).await?;
            }
            self.price(&context, &step, &mut prices, &mut priced)
                .await?;
            let evaluated = self
                .evaluate_step(&context, cycle, step, &mut targets, &prices, &mut counts)
                .await?;
            let store = Arc::clone(&self.store);
            let tenant = tenant.to_owned();
            writing = Some(tokio::spawn(
                async move { store.write_evaluations(&tenant, &evaluated).await }
                    .instrument(tracing::Span::current()),
            ));
        }
        if let Some(previous) = writing.take() {
            finish_write(previous).await?;
        }
        let now = self.clock.now();
        let finished = self
            .store
            .finish_shard(tenant, shard, owner, counts, now)
            .await?;
        if finished
            && let Some(done) = self.store.get_cycle(tenant, &cycle.id).await?
            && done.state == CycleState::Completed
            && done.completed_at == Some(now)
            && let Some(started) = done.started_at
        {
            let seconds = (now - started)
                .to_std()
                .map_or(0.0, |elapsed| elapsed.as_secs_f64());
            shard_metrics().cycle_done(done.trigger, seconds);
            if !done.dry_run && done.portfolio_id.is_none() && done.account_ids.is_empty() {
                shard_metrics().accounts_by_status(tenant, &done.status_counts);
            }
            tracing::info!(cycle_id = %done.id, seconds, accounts = done.accounts_evaluated, "cycle completed");
        }
        tracing::info!(
            evaluated = counts.evaluated,
            runs = counts.runs_created,
            finished,
            "shard done"
        );
        shard_metrics().record(tenant, counts.evaluated, counts.runs_created);
        Ok(())
    }

    /// Records a failed attempt: the error on the cycle (seen by `GetCycle`
    /// and `WatchCycle`) and a retry after a back-off, or, out of attempts,
    /// the cycle FAILED with the error.
    async fn shard_failed(
        &self,
        owner: &str,
        tenant: &str,
        shard: &ShardRecord,
        error: &MonitorError,
    ) {
        let give_up = shard.attempts >= MAX_ATTEMPTS;
        let message = format!(
            "shard {} attempt {} of {MAX_ATTEMPTS}: {error}",
            shard.sequence, shard.attempts
        );
        let now = self.clock.now();
        let failure = ShardFailure {
            error: &message,
            retry_at: now + RETRY_BACKOFF * shard.attempts.max(1),
            give_up,
        };
        if give_up {
            tracing::error!(%tenant, cycle_id = %shard.cycle_id, %message, "cycle failed");
        } else {
            tracing::warn!(%tenant, cycle_id = %shard.cycle_id, %message, "shard failed; retried after a back-off");
        }
        if let Err(store_error) = self
            .store
            .fail_shard(tenant, shard, owner, failure, now)
            .await
        {
            tracing::warn!(%store_error, "could not record the shard's failure; it is retried when its lease ends");
        }
    }

    /// Fetches quotes for symbols not yet priced in this shard.
    async fn price(
        &self,
        context: &RequestContext,
        step: &[Pair],
        prices: &mut PriceBook,
        priced: &mut std::collections::HashSet<String>,
    ) -> Result<(), MonitorError> {
        let mut wanted: Vec<String> = Vec::new();
        for pair in step {
            let held = pair
                .holdings
                .iter()
                .flat_map(|h| h.positions.iter().map(|(s, _)| s.as_str()));
            let targeted = pair
                .assignment
                .iter()
                .flat_map(|a| a.weights.iter().map(|w| w.symbol.as_str()))
                .filter(|s| !s.is_empty());
            // A substitute takes its model asset's place: price it too.
            let substitutes = pair
                .holdings
                .iter()
                .filter_map(|h| h.preferences.as_ref())
                .flat_map(|p| p.substitutes.iter().map(|s| s.held_symbol.as_str()));
            for symbol in held.chain(targeted).chain(substitutes) {
                if !priced.contains(symbol) && !wanted.iter().any(|w| w == symbol) {
                    wanted.push(symbol.to_owned());
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let call = context.call();
        for chunk in wanted.chunks(1000) {
            let response = retry_idempotent(Retry::default(), "GetQuotes", |deadline| {
                let mut client = MarketDataServiceClient::new(self.execution.clone());
                let request = call.request_within(
                    GetQuotesRequest {
                        symbols: chunk.to_vec(),
                    },
                    deadline,
                );
                async move { client.get_quotes(request).await }
            })
            .await
            .map_err(|status| MonitorError::Unavailable(format!("quotes: {}", status.message())))?
            .into_inner();
            for quote in response.quotes {
                if let Ok(last) = quote.last.parse::<Decimal>() {
                    prices.prices.insert(quote.symbol, last);
                }
            }
            for missing in response.missing {
                prices.notes.insert(missing.symbol, missing.reason);
            }
            priced.extend(chunk.iter().cloned());
        }
        Ok(())
    }

    /// Evaluates a step of accounts and opens the runs they ask for.
    async fn evaluate_step(
        &self,
        context: &RequestContext,
        cycle: &CycleRecord,
        step: Vec<Pair>,
        targets: &mut TargetCache,
        prices: &PriceBook,
        counts: &mut ShardCounts,
    ) -> Result<Vec<EvaluationRecord>, MonitorError> {
        let now = self.clock.now();
        let mut records = Vec::with_capacity(step.len());
        let mut wanted_runs = Vec::new();
        for pair in &step {
            let assigned = match &pair.assignment {
                None => Assigned::None,
                Some(assignment) => inputs::assignment(assignment, targets).ok_or_else(|| {
                    MonitorError::Unavailable(format!(
                        "target service: the target of portfolio {} version {} was left out before it was sent",
                        assignment.portfolio_id, assignment.portfolio_version
                    ))
                })?,
            };
            let evaluation = evaluate(
                cycle.trading_date,
                now,
                &assigned,
                pair.holdings.as_ref(),
                prices,
            );
            let (portfolio_id, portfolio_version) = match &assigned {
                Assigned::Active { target, .. } => {
                    (Some(target.portfolio_id.clone()), Some(target.version))
                }
                _ => (None, None),
            };
            if let Some(run) = &evaluation.run
                && !cycle.dry_run
            {
                wanted_runs.push((records.len(), run.clone()));
            }
            records.push(record(
                cycle,
                &pair.account_id,
                portfolio_id,
                portfolio_version,
                &evaluation,
                now,
            ));
        }
        counts.evaluated += i64::try_from(records.len()).unwrap_or(i64::MAX);
        if cycle.dry_run {
            for record in &mut records {
                if record.run_type.is_some() {
                    record.run_note = "dry run: no run created".to_owned();
                }
            }
            return Ok(records);
        }
        let date = cycle.trading_date;
        let results: Vec<(usize, Result<String, String>)> = futures::stream::iter(wanted_runs)
            .map(|(index, decision)| {
                let account_id = records[index].account_id.clone();
                let reason = records[index].reason.clone();
                let evaluated = records[index]
                    .portfolio_id
                    .clone()
                    .zip(records[index].portfolio_version);
                async move {
                    (
                        index,
                        self.open_run(
                            context,
                            date,
                            &account_id,
                            &decision,
                            &reason,
                            evaluated.as_ref(),
                        )
                        .await,
                    )
                }
            })
            .buffer_unordered(self.config.run_concurrency.max(1))
            .collect()
            .await;
        let deposits: HashMap<&str, &Vec<String>> = step
            .iter()
            .filter_map(|pair| {
                pair.holdings
                    .as_ref()
                    .map(|h| (pair.account_id.as_str(), &h.deposits))
            })
            .collect();
        let call = context.call();
        for (index, result) in results {
            let record = &mut records[index];
            match result {
                Ok(run_id) => {
                    counts.runs_created += 1;
                    // The monitor acted on the account's pending deposits.
                    for deposit in deposits
                        .get(record.account_id.as_str())
                        .copied()
                        .into_iter()
                        .flatten()
                    {
                        let acknowledged = retry_idempotent(
                            Retry::default(),
                            "AcknowledgeCashMovement",
                            |deadline| {
                                let mut client = AccountServiceClient::new(self.execution.clone());
                                let request = call.request_within(
                                    AcknowledgeCashMovementRequest {
                                        cash_movement_id: deposit.clone(),
                                        run_id: run_id.clone(),
                                    },
                                    deadline,
                                );
                                async move { client.acknowledge_cash_movement(request).await }
                            },
                        )
                        .await;
                        if let Err(status) = acknowledged {
                            tracing::warn!(deposit = %deposit, %status, "cannot acknowledge a deposit");
                        }
                    }
                    record.run_id = Some(run_id);
                }
                Err(note) => {
                    counts.errors += 1;
                    record.run_note = note;
                }
            }
        }
        Ok(records)
    }

    /// Opens a run in the Execution service; the key makes it one per account and day.
    /// `evaluated` is the portfolio and version the account was evaluated
    /// against: Execution plans against exactly that version, or refuses
    /// when the account has moved on since.
    async fn open_run(
        &self,
        context: &RequestContext,
        date: NaiveDate,
        account_id: &str,
        decision: &evaluation::RunDecision,
        reason: &str,
        evaluated: Option<&(String, i64)>,
    ) -> Result<String, String> {
        let kind = match decision.kind {
            RunKind::FullRebalance => RunType::FullRebalance,
            RunKind::InvestCash => RunType::InvestCash,
            RunKind::Liquidation => RunType::Liquidation,
        };
        let request = CreateRunRequest {
            idempotency_key: format!("monitor-{date}-{account_id}"),
            spec: Some(RunSpec {
                account_id: account_id.to_owned(),
                r#type: kind.into(),
                amount: decision.amount.map(decimal_text).unwrap_or_default(),
                initiated_from: InitiatedFrom::System.into(),
                reason: reason.to_owned(),
                cash_movement_id: decision.cash_movement_id.clone().unwrap_or_default(),
                algorithm: self.config.algorithm.clone(),
                portfolio_id: evaluated.map(|(id, _)| id.clone()).unwrap_or_default(),
                portfolio_version: evaluated.map_or(0, |(_, version)| *version),
                ..RunSpec::default()
            }),
        };
        // Safe to retry: the idempotency key makes a repeat return the run
        // the first try opened.
        let call = context.call();
        let created = retry_idempotent(Retry::default(), "CreateRun", |deadline| {
            let mut client = RunServiceClient::new(self.execution.clone());
            let request = call.request_within(request.clone(), deadline);
            async move { client.create_run(request).await }
        })
        .await;
        match created {
            Ok(response) => response
                .into_inner()
                .run
                .map(|run| run.id)
                .ok_or_else(|| "no run returned".to_owned()),
            Err(status)
                if status.code() == tonic::Code::InvalidArgument
                    && status.message().contains("idempotency_key") =>
            {
                Err("a run was already opened for this account today".to_owned())
            }
            Err(status) => Err(format!("run not created: {}", status.message())),
        }
    }
}

/// A write of evaluations under way.
type Writing = tokio::task::JoinHandle<Result<(), StoreError>>;

async fn finish_write(writing: Writing) -> Result<(), MonitorError> {
    match writing.await {
        Ok(result) => Ok(result?),
        Err(error) => Err(MonitorError::Unavailable(format!(
            "writing evaluations failed: {error}"
        ))),
    }
}

fn take_assignment(
    cursor: &mut Cursor<rebalancer_proto::target::StreamAssignmentsResponse>,
) -> Option<ResolvedAssignment> {
    match cursor.pop() {
        Some(Record::Assignment(assignment)) => Some(assignment),
        _ => None,
    }
}

fn take_holdings(
    cursor: &mut Cursor<rebalancer_proto::execution::StreamHoldingsResponse>,
) -> Option<ParsedHoldings> {
    match cursor.pop() {
        Some(Record::Holdings(holdings)) => Some(inputs::holdings(&holdings)),
        _ => None,
    }
}

/// The domain evaluation of one account.
fn evaluate<'a>(
    today: NaiveDate,
    now: DateTime<Utc>,
    assigned: &'a Assigned,
    holdings: Option<&'a ParsedHoldings>,
    prices: &'a PriceBook,
) -> Evaluation<'a> {
    let assignment = match assigned {
        Assigned::None => AssignmentView::None,
        Assigned::Liquidate => AssignmentView::Liquidate,
        Assigned::Active {
            target,
            rebalancing_enabled,
            target_changed_at,
        } => AssignmentView::Active {
            target: TargetView {
                target: own_target(&target.prepared, holdings, prices),
                target_changed_at: *target_changed_at,
            },
            rebalancing_enabled: *rebalancing_enabled,
        },
    };
    let account = holdings.map(|h| AccountView {
        cash: h.cash,
        positions: &h.positions,
        restrictions: &h.restrictions,
        pending: &h.pending,
        open_run: h.open_run,
        last_rebalanced_at: h.last_rebalanced_at,
    });
    evaluation::evaluate(&EvaluationInput {
        today,
        now,
        assignment,
        account,
        prices: &prices.prices,
        price_notes: &prices.notes,
    })
}

/// The target `holdings`' account is measured against: its assignment's, or
/// with trading preferences its own (made once per account and cycle).
fn own_target<'a>(
    prepared: &'a PreparedTarget,
    holdings: Option<&'a ParsedHoldings>,
    prices: &PriceBook,
) -> &'a PreparedTarget {
    let Some((holdings, preferences)) =
        holdings.and_then(|h| h.preferences.as_ref().map(|p| (h, p)))
    else {
        return prepared;
    };
    holdings.own_target.get_or_init(|| {
        let values: Vec<(String, Decimal)> = holdings
            .positions
            .iter()
            .filter_map(|(symbol, quantity)| {
                let price = prices.prices.get(symbol)?;
                Some((symbol.clone(), *quantity * *price))
            })
            .collect();
        let equity = holdings.cash + values.iter().map(|(_, value)| *value).sum::<Decimal>();
        prepared.with_target(
            preferences.monitored_target(&prepared.weights, equity, &values),
            preferences.substitute_conditions(&prepared.conditions),
        )
    })
}

fn record(
    cycle: &CycleRecord,
    account_id: &str,
    portfolio_id: Option<String>,
    portfolio_version: Option<i64>,
    evaluation: &Evaluation,
    now: DateTime<Utc>,
) -> EvaluationRecord {
    EvaluationRecord {
        cycle_id: cycle.id.clone(),
        account_id: account_id.to_owned(),
        flag: evaluation.flag,
        reason: evaluation.reason.clone(),
        portfolio_id,
        portfolio_version,
        equity: evaluation.equity,
        cash: evaluation.cash,
        max_drift: evaluation.max_drift,
        total_drift: evaluation.total_drift,
        tickers: evaluation
            .tickers
            .iter()
            .map(|t| TickerRecord {
                symbol: t.symbol.map(str::to_owned),
                target_weight: t.target_weight,
                band_lower: t.band_lower,
                band_upper: t.band_upper,
                breached: t.breached,
                value: t.value.round_dp(2),
            })
            .collect(),
        missing: evaluation.missing.clone(),
        run_id: None,
        run_type: evaluation
            .run
            .as_ref()
            .map(|run| run.kind.as_str().to_owned()),
        run_note: evaluation.run_note.clone(),
        evaluated_at: now,
    }
}

/// `rebalancer.monitor.accounts_evaluated` and `rebalancer.monitor.runs_opened`.
struct ShardMetrics {
    evaluated: opentelemetry::metrics::Counter<u64>,
    runs: opentelemetry::metrics::Counter<u64>,
    cycle_duration: opentelemetry::metrics::Histogram<f64>,
    reclaims: opentelemetry::metrics::Counter<u64>,
    accounts: opentelemetry::metrics::Gauge<u64>,
}

impl ShardMetrics {
    fn record(&self, tenant: &str, evaluated: i64, runs: i64) {
        let labels = [opentelemetry::KeyValue::new("tenant", tenant.to_owned())];
        self.evaluated
            .add(u64::try_from(evaluated).unwrap_or(0), &labels);
        self.runs.add(u64::try_from(runs).unwrap_or(0), &labels);
    }
}

impl ShardMetrics {
    fn cycle_done(&self, trigger: CycleTrigger, seconds: f64) {
        self.cycle_duration.record(
            seconds,
            &[opentelemetry::KeyValue::new("trigger", trigger.as_str())],
        );
    }

    /// The accounts of a tenant by status, as its latest full cycle left
    /// them (statuses absent from the cycle read 0).
    fn accounts_by_status(&self, tenant: &str, counts: &std::collections::BTreeMap<String, i64>) {
        for status in rebalancer_domain::evaluation::Flag::ALL {
            let count = counts.get(status.as_str()).copied().unwrap_or(0);
            self.accounts.record(
                u64::try_from(count).unwrap_or(0),
                &[
                    opentelemetry::KeyValue::new("tenant", tenant.to_owned()),
                    opentelemetry::KeyValue::new("status", status.as_str()),
                ],
            );
        }
    }

    /// Records a shard claimed again (its `attempts` counts this claim).
    fn shard_claimed(&self, attempts: i32) {
        if attempts > 1 {
            self.reclaims
                .add(1, &[opentelemetry::KeyValue::new("kind", "shard")]);
        }
    }
}

fn shard_metrics() -> &'static ShardMetrics {
    static METRICS: std::sync::OnceLock<ShardMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = rebalancer_kit::metrics::meter();
        ShardMetrics {
            evaluated: meter
                .u64_counter("rebalancer.monitor.accounts_evaluated")
                .with_description("Accounts evaluated by cycles")
                .build(),
            runs: meter
                .u64_counter("rebalancer.monitor.runs_opened")
                .with_description("Runs opened by cycles")
                .build(),
            cycle_duration: meter
                .f64_histogram("rebalancer.monitor.cycle.duration")
                .with_unit("s")
                .with_description("From a cycle's first shard claimed to its last done, by trigger")
                .with_boundaries(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
                ])
                .build(),
            reclaims: meter
                .u64_counter("rebalancer.lease.reclaims")
                .with_description(
                    "Work claimed again after a lease ran out or an attempt failed, by kind",
                )
                .build(),
            accounts: meter
                .u64_gauge("rebalancer.monitor.accounts")
                .with_description("Accounts by status as the tenant's latest full cycle left them")
                .build(),
        }
    })
}

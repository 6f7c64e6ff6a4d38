//! Cycles: the daily schedule (once per trading day per tenant, at the
//! configured New York time), on-demand cycles, splitting a cycle into
//! shards, and the reads of the Rebalance Center.

use std::collections::{BTreeMap, HashMap, HashSet};

use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::target::ListPortfoliosRequest;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;

use rebalancer_domain::Violations;
use rebalancer_domain::calendar::{at_new_york, exchange_date, is_trading_day};
use rebalancer_domain::evaluation::Flag;
use rebalancer_domain::ids::external_id_problem;
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use tracing::Instrument as _;

use super::Monitor;
use crate::error::MonitorError;
use crate::store::{
    Created, CycleRecord, CycleTrigger, EvaluationRecord, IdempotencyClaim, NewCycle,
};

/// Pages of portfolios read for the Rebalance Center's group names.
const NAME_PAGES: usize = 20;

/// Most accounts one on-demand cycle may list.
const MAX_LISTED_ACCOUNTS: usize = 10_000;

/// An on-demand cycle request.
#[derive(Debug, Clone, Default)]
pub struct EvaluateNowInput {
    pub portfolio_id: String,
    pub account_ids: Vec<String>,
    pub dry_run: bool,
}

/// Counts by flag of one portfolio (`None`: accounts without one).
pub type PortfolioCounts = (Option<String>, Vec<(Flag, i64)>);

/// A page of the Rebalance Center.
#[derive(Debug, Clone)]
pub struct FlaggedPage {
    pub cycle_id: String,
    pub groups: Vec<PortfolioCounts>,
    pub evaluations: Vec<EvaluationRecord>,
    /// Names of the groups' portfolios, as the target service has them now
    /// (missing when it could not say).
    pub names: HashMap<String, String>,
}

impl Monitor {
    /// Starts today's scheduled cycle of each tenant once the run time has
    /// passed on a trading day (the database keeps it to one per day).
    pub(super) async fn schedule(&self) -> Result<(), MonitorError> {
        let now = self.clock.now();
        let today = exchange_date(now);
        let tenants = self.scheduled_tenants().await;
        let due: Vec<&String> = tenants
            .iter()
            .filter(|(_, run_at)| at_new_york(today, *run_at).is_some_and(|at| now >= at))
            .map(|(tenant, _)| tenant)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.fetch_calendar_once(today).await;
        if !is_trading_day(today) {
            return Ok(());
        }
        for tenant in due {
            if self.store.scheduled_cycle(tenant, today).await?.is_some() {
                continue;
            }
            let shards = self.plan_shards(tenant).await?;
            // The root of the day's trace: the cycle's shards, the runs they
            // open and their fills continue it.
            let span = tracing::info_span!(parent: None, "scheduled_cycle", %tenant, date = %today);
            let cycle = NewCycle {
                id: new_id(),
                trading_date: today,
                trigger: CycleTrigger::Scheduled,
                dry_run: false,
                portfolio_id: None,
                account_ids: Vec::new(),
                shards,
                now,
                trace_context: span.in_scope(rebalancer_kit::trace::current_traceparent),
            };
            let created = self
                .store
                .create_cycle(tenant, cycle, None)
                .instrument(span)
                .await?;
            if let Created::New(cycle) = created {
                tracing::info!(%tenant, cycle_id = %cycle.id, date = %today, shards = cycle.shards_total, "daily cycle started");
            }
        }
        Ok(())
    }

    /// Fetches the operators' calendar days once per exchange date, when the
    /// daily cycle is due (a failure keeps the days fetched before).
    async fn fetch_calendar_once(&self, today: chrono::NaiveDate) {
        let tenant = self.config.tenants.first().map_or("system", String::as_str);
        {
            let fetched = self
                .calendar_fetched_for
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *fetched == Some(today) {
                return;
            }
        }
        match self.refresh_calendar(tenant).await {
            Ok(()) => {
                *self
                    .calendar_fetched_for
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(today);
            }
            Err(error) => tracing::warn!(%error, "could not fetch the calendar overrides"),
        }
    }

    /// Account ranges for a full cycle, from the last complete one's
    /// evaluations (one range when there is none yet).
    async fn plan_shards(
        &self,
        tenant: &str,
    ) -> Result<Vec<(Option<String>, Option<String>)>, MonitorError> {
        let Some(previous) = self.store.latest_completed_cycle(tenant).await? else {
            return Ok(vec![(None, None)]);
        };
        let every = self.config.shard_size.max(2);
        let marks = self
            .store
            .account_boundaries(tenant, &previous.id, every)
            .await?;
        let at: BTreeMap<i64, String> = marks.into_iter().collect();
        let mut shards = Vec::new();
        let mut after: Option<String> = None;
        let mut k = 1;
        // Shard k covers (account k·every, account (k+1)·every + 1): every
        // account once; accounts opened since then in a gap may be seen twice,
        // which is harmless (evaluations are upserted, runs keyed per day).
        while let Some(end) = at.get(&(k * every)) {
            let before = at.get(&(k * every + 1)).cloned();
            let Some(before) = before else { break };
            shards.push((after.clone(), Some(before)));
            after = Some(end.clone());
            k += 1;
        }
        shards.push((after, None));
        Ok(shards)
    }

    /// Starts a cycle now over everything, one portfolio, or listed accounts.
    ///
    /// # Errors
    /// `Invalid` for malformed account ids.
    #[tracing::instrument(name = "evaluate_now", skip_all, fields(tenant = %context.tenant))]
    pub async fn evaluate_now(
        &self,
        context: &RequestContext,
        input: EvaluateNowInput,
        claim: Option<IdempotencyClaim>,
    ) -> Result<CycleRecord, MonitorError> {
        let mut violations = Violations::new();
        if input.account_ids.len() > MAX_LISTED_ACCOUNTS {
            violations.add(
                "account_ids",
                format!("at most {MAX_LISTED_ACCOUNTS} accounts per request"),
            );
        }
        for (index, id) in input.account_ids.iter().enumerate() {
            if let Some(problem) = external_id_problem(id) {
                violations.add(format!("account_ids[{index}]"), problem);
            }
        }
        if !input.portfolio_id.is_empty()
            && let Some(problem) = external_id_problem(&input.portfolio_id)
        {
            violations.add("portfolio_id", problem);
        }
        if !input.portfolio_id.is_empty() && !input.account_ids.is_empty() {
            violations.add(
                "portfolio_id",
                "give a portfolio or a list of accounts, not both",
            );
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        let now = self.clock.now();
        let shards = if input.portfolio_id.is_empty() && input.account_ids.is_empty() {
            self.plan_shards(&context.tenant).await?
        } else {
            vec![(None, None)]
        };
        let mut account_ids = input.account_ids;
        account_ids.sort();
        account_ids.dedup();
        let cycle = NewCycle {
            id: new_id(),
            trading_date: exchange_date(now),
            trigger: CycleTrigger::OnDemand,
            dry_run: input.dry_run,
            portfolio_id: Some(input.portfolio_id).filter(|id| !id.is_empty()),
            account_ids,
            shards,
            now,
            trace_context: rebalancer_kit::trace::current_traceparent(),
        };
        let cycle = self
            .store
            .create_cycle(&context.tenant, cycle, claim)
            .await?
            .into_inner();
        tracing::info!(cycle_id = %cycle.id, shards = cycle.shards_total, dry_run = cycle.dry_run, "cycle requested");
        Ok(cycle)
    }

    /// One cycle.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_cycle(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<CycleRecord, MonitorError> {
        self.store
            .get_cycle(&context.tenant, id)
            .await?
            .ok_or_else(|| MonitorError::NotFound(format!("cycle {id} not found")))
    }

    /// Cycles newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_cycles(
        &self,
        context: &RequestContext,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CycleRecord>, MonitorError> {
        Ok(self
            .store
            .list_cycles(&context.tenant, after, limit)
            .await?)
    }

    /// An account's evaluation in a cycle, or its latest.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_evaluation(
        &self,
        context: &RequestContext,
        account_id: &str,
        cycle_id: Option<&str>,
    ) -> Result<EvaluationRecord, MonitorError> {
        self.store
            .get_evaluation(&context.tenant, account_id, cycle_id)
            .await?
            .ok_or_else(|| {
                MonitorError::NotFound(format!("account {account_id} has no evaluation"))
            })
    }

    /// The Rebalance Center: flagged accounts of a cycle (the latest complete
    /// one by default) by status, grouped by portfolio with counts.
    ///
    /// # Errors
    /// `NotFound` when there is no such cycle.
    pub async fn list_flagged(
        &self,
        context: &RequestContext,
        cycle_id: Option<&str>,
        flags: &[Flag],
        portfolio_id: Option<&str>,
        after_account: Option<&str>,
        limit: u32,
    ) -> Result<FlaggedPage, MonitorError> {
        let cycle = match cycle_id {
            Some(id) => self.get_cycle(context, id).await?,
            None => self
                .store
                .latest_completed_cycle(&context.tenant)
                .await?
                .ok_or_else(|| MonitorError::NotFound("no completed cycle yet".to_owned()))?,
        };
        let flags: Vec<Flag> = if flags.is_empty() {
            Flag::ALL
                .into_iter()
                .filter(|f| !matches!(f, Flag::InsideTolerance | Flag::RebalancingOff))
                .collect()
        } else {
            flags.to_vec()
        };
        let mut groups: BTreeMap<Option<String>, Vec<(Flag, i64)>> = BTreeMap::new();
        for (portfolio, flag, count) in self
            .store
            .flag_counts(&context.tenant, &cycle.id, portfolio_id)
            .await?
        {
            groups.entry(portfolio).or_default().push((flag, count));
        }
        let evaluations = self
            .store
            .list_evaluations(
                &context.tenant,
                &cycle.id,
                &flags,
                portfolio_id,
                after_account,
                limit,
            )
            .await?;
        let ids: Vec<String> = groups.keys().flatten().cloned().collect();
        let names = self.portfolio_names(&context.tenant, ids).await;
        Ok(FlaggedPage {
            cycle_id: cycle.id,
            groups: groups.into_iter().collect(),
            evaluations,
            names,
        })
    }

    /// The names of `ids`, read from the target service a page of 1,000
    /// portfolios at a time (at most [`NAME_PAGES`] pages), best effort: a
    /// failure is logged and leaves the names it could not read out.
    async fn portfolio_names(&self, tenant: &str, ids: Vec<String>) -> HashMap<String, String> {
        let mut wanted: HashSet<String> = ids.into_iter().collect();
        let mut names = HashMap::new();
        if wanted.is_empty() {
            return names;
        }
        let call = RequestContext::system(tenant).call();
        let mut page_token = String::new();
        for _ in 0..NAME_PAGES {
            let answer = retry_idempotent(Retry::default(), "ListPortfolios", |_| {
                let mut client = PortfolioServiceClient::new(self.target.clone());
                let request = call.request(ListPortfoliosRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListPortfoliosRequest::default()
                });
                async move { client.list_portfolios(request).await }
            })
            .await;
            let page = match answer {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "portfolio names unavailable");
                    break;
                }
            };
            for portfolio in page.portfolios {
                if wanted.remove(&portfolio.id) {
                    names.insert(portfolio.id, portfolio.name);
                }
            }
            if wanted.is_empty() || page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        names
    }
}

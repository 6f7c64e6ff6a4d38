//! The Monitor end to end, across the three services, on the simulated
//! clock: the nine statuses, run creation with manual approval, reruns that
//! create no duplicate runs, the Rebalance Center reads, cooldown with
//! invest-cash, a quarterly calendar over a simulated year, a replica
//! dying mid-cycle, and runs that carry the portfolio version evaluated.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{
    ApprovalMode, ConditionSubType, ConditionType, InitiatedFrom, RebalanceCondition, RunType,
};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    CashMovementType, CreateCashMovementRequest, CreateRunRequest, GetQuotesRequest,
    ListRunsRequest, Position, Restriction, Run, RunSpec, RunStatus, UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{
    Cycle, CycleState, EvaluateNowRequest, Evaluation, EvaluationStatus, GetCycleRequest,
    GetEvaluationRequest, ListCyclesRequest, ListFlaggedRequest, WatchCycleRequest,
};
use rebalancer_proto::prost_types::FieldMask;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, CreatePortfolioRequest, GetPortfolioRequest, UnassignRequest,
    UpdatePortfolioRequest,
};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?}"))
}

fn band(percent: &str) -> RebalanceCondition {
    RebalanceCondition {
        r#type: ConditionType::DriftBand.into(),
        sub_type: ConditionSubType::Absolute.into(),
        percent: percent.to_owned(),
        ..RebalanceCondition::default()
    }
}

fn quarterly(day: &str) -> RebalanceCondition {
    RebalanceCondition {
        r#type: ConditionType::Calendar.into(),
        sub_type: ConditionSubType::Quarterly.into(),
        day: day.to_owned(),
        ..RebalanceCondition::default()
    }
}

/// Clients of the three services for one tenant.
struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
    portfolios: PortfolioServiceClient<TracedChannel>,
    assignments: AssignmentServiceClient<TracedChannel>,
    monitor: MonitorServiceClient<TracedChannel>,
    prices: HashMap<String, Decimal>,
}

impl Desk {
    async fn new(stack: &TestStack, tenant: &str) -> Self {
        let firm = stack.tenant(tenant);
        let mut market = MarketDataServiceClient::new(stack.channel());
        let quotes = market
            .get_quotes(firm.request(GetQuotesRequest {
                symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
            }))
            .await
            .expect("quotes")
            .into_inner()
            .quotes;
        Self {
            accounts: AccountServiceClient::new(stack.channel()),
            runs: RunServiceClient::new(stack.channel()),
            portfolios: PortfolioServiceClient::new(stack.channel()),
            assignments: AssignmentServiceClient::new(stack.channel()),
            monitor: MonitorServiceClient::new(stack.channel()),
            prices: quotes.into_iter().map(|q| (q.symbol, d(&q.last))).collect(),
            firm,
        }
    }

    async fn portfolio(
        &mut self,
        name: &str,
        conditions: Vec<RebalanceCondition>,
        cooldown_days: i32,
    ) -> String {
        self.portfolios
            .create_portfolio(self.firm.request(CreatePortfolioRequest {
                name: name.to_owned(),
                weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
                rebalance_conditions: conditions,
                cooldown_days,
                // Day-to-day price moves leave tens of dollars uninvested.
                invest_cash_threshold: "500".to_owned(),
                ..CreatePortfolioRequest::default()
            }))
            .await
            .expect("portfolio")
            .into_inner()
            .portfolio
            .expect("portfolio")
            .id
    }

    /// Quantity of `symbol` worth `value` now.
    fn shares(&self, symbol: &str, value: Decimal) -> String {
        (value / self.prices[symbol]).round_dp(6).to_string()
    }

    /// An account worth $100,000 at the 5/60/35 target (or all in SPY).
    async fn open(&mut self, id: &str, at_target: bool, restrictions: Vec<Restriction>) {
        let positions = if at_target {
            vec![
                Position {
                    symbol: "SPY".to_owned(),
                    quantity: self.shares("SPY", d("60000")),
                    ..Position::default()
                },
                Position {
                    symbol: "TLT".to_owned(),
                    quantity: self.shares("TLT", d("35000")),
                    ..Position::default()
                },
            ]
        } else {
            vec![Position {
                symbol: "SPY".to_owned(),
                quantity: self.shares("SPY", d("95000")),
                ..Position::default()
            }]
        };
        self.accounts
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: "5000".to_owned(),
                positions,
                restrictions: restrictions.into_iter().map(i32::from).collect(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
    }

    async fn assign(
        &mut self,
        account: &str,
        portfolio: &str,
        approval: ApprovalMode,
        enabled: bool,
    ) -> (String, String) {
        let assignment = self
            .assignments
            .assign(self.firm.request(AssignRequest {
                account_id: account.to_owned(),
                portfolio_id: portfolio.to_owned(),
                rebalancing_enabled: enabled,
                approval_mode: approval.into(),
                ..AssignRequest::default()
            }))
            .await
            .expect("assign")
            .into_inner()
            .assignment
            .expect("assignment");
        (assignment.id, assignment.etag)
    }

    async fn cash(&mut self, account: &str, kind: CashMovementType, amount: &str) {
        self.accounts
            .create_cash_movement(self.firm.request(CreateCashMovementRequest {
                idempotency_key: format!("{account}-{amount}-{}", kind.as_str_name()),
                account_id: account.to_owned(),
                r#type: kind.into(),
                amount: amount.to_owned(),
            }))
            .await
            .expect("cash movement");
    }

    async fn evaluate_now(&mut self, request: EvaluateNowRequest) -> Result<Cycle, tonic::Status> {
        self.monitor
            .evaluate_now(self.firm.request(request))
            .await
            .map(|r| r.into_inner().cycle.expect("cycle"))
    }

    async fn cycle(&mut self, id: &str) -> Cycle {
        self.monitor
            .get_cycle(self.firm.request(GetCycleRequest {
                cycle_id: id.to_owned(),
            }))
            .await
            .expect("cycle")
            .into_inner()
            .cycle
            .expect("cycle")
    }

    async fn evaluation(&mut self, account: &str) -> Evaluation {
        self.monitor
            .get_evaluation(self.firm.request(GetEvaluationRequest {
                account_id: account.to_owned(),
                cycle_id: String::new(),
            }))
            .await
            .expect("evaluation")
            .into_inner()
            .evaluation
            .expect("evaluation")
    }

    async fn runs_of(&mut self, account: &str) -> Vec<Run> {
        self.runs
            .list_runs(self.firm.request(ListRunsRequest {
                account_id: account.to_owned(),
                page_size: 100,
                ..ListRunsRequest::default()
            }))
            .await
            .expect("runs")
            .into_inner()
            .runs
    }
}

fn status(evaluation: &Evaluation) -> EvaluationStatus {
    EvaluationStatus::try_from(evaluation.status).expect("known status")
}

fn counts(cycle: &Cycle) -> BTreeMap<&'static str, i64> {
    cycle
        .status_counts
        .iter()
        .map(|c| {
            (
                EvaluationStatus::try_from(c.status)
                    .expect("status")
                    .as_str_name(),
                c.count,
            )
        })
        .collect()
}

/// The accounts of the nine statuses, their expected status and run type.
const NINE: [(&str, EvaluationStatus, RunType); 9] = [
    (
        "acct-attention",
        EvaluationStatus::NeedsAttention,
        RunType::Unspecified,
    ),
    (
        "acct-deposit",
        EvaluationStatus::NewDeposit,
        RunType::InvestCash,
    ),
    (
        "acct-inside",
        EvaluationStatus::InsideTolerance,
        RunType::Unspecified,
    ),
    (
        "acct-liquidate",
        EvaluationStatus::Liquidation,
        RunType::Liquidation,
    ),
    (
        "acct-none",
        EvaluationStatus::NoPortfolioAssigned,
        RunType::Unspecified,
    ),
    (
        "acct-off",
        EvaluationStatus::RebalancingOff,
        RunType::Unspecified,
    ),
    (
        "acct-out",
        EvaluationStatus::OutOfTolerance,
        RunType::FullRebalance,
    ),
    (
        "acct-unable",
        EvaluationStatus::UnableToCheck,
        RunType::Unspecified,
    ),
    (
        "acct-withdraw",
        EvaluationStatus::NewWithdrawal,
        RunType::Liquidation,
    ),
];

async fn nine_statuses(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let balanced = desk.portfolio("Balanced", vec![band("5")], 7).await;

    desk.open("acct-inside", true, Vec::new()).await;
    desk.assign("acct-inside", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.open("acct-out", false, Vec::new()).await;
    desk.assign("acct-out", &balanced, ApprovalMode::Manual, true)
        .await;
    // As far out, but rebalancing is off: not monitored.
    desk.open("acct-off", false, Vec::new()).await;
    desk.assign("acct-off", &balanced, ApprovalMode::Auto, false)
        .await;
    // Assigned but unknown to the account book.
    desk.assign("acct-unable", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.open("acct-attention", true, vec![Restriction::PatternDayTrader])
        .await;
    desk.assign("acct-attention", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.open("acct-deposit", true, Vec::new()).await;
    desk.assign("acct-deposit", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.cash("acct-deposit", CashMovementType::Deposit, "3000")
        .await;
    desk.open("acct-withdraw", true, Vec::new()).await;
    desk.assign("acct-withdraw", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.cash("acct-withdraw", CashMovementType::Withdrawal, "2000")
        .await;
    desk.open("acct-liquidate", true, Vec::new()).await;
    let (assignment, etag) = desk
        .assign("acct-liquidate", &balanced, ApprovalMode::Auto, true)
        .await;
    desk.assignments
        .unassign(desk.firm.request(UnassignRequest {
            assignment_id: assignment,
            etag,
            keep_rebalancing_enabled: true,
        }))
        .await
        .expect("unassign");
    // In the book, never assigned.
    desk.open("acct-none", true, Vec::new()).await;

    // 10:00 New York on a Monday: past the 09:45 run time, so the first
    // monitor pass starts the day's cycle and works it.
    assert!(stack.monitor_tick().await >= 1);
    let cycles = desk
        .monitor
        .list_cycles(desk.firm.request(ListCyclesRequest::default()))
        .await
        .expect("cycles")
        .into_inner()
        .cycles;
    assert_eq!(cycles.len(), 1);
    let cycle = &cycles[0];
    assert_eq!(cycle.state, i32::from(CycleState::Completed), "{cycle:?}");
    assert_eq!(cycle.trading_date, "2026-03-02");
    assert_eq!(cycle.accounts_evaluated, 9);
    assert_eq!(cycle.runs_created, 4, "{cycle:?}");
    assert_eq!(cycle.errors, 0);
    assert!(
        counts(cycle).values().all(|n| *n == 1),
        "{:?}",
        counts(cycle)
    );

    for (account, expected, run_type) in NINE {
        let evaluation = desk.evaluation(account).await;
        assert_eq!(status(&evaluation), expected, "{account}: {evaluation:?}");
        assert_eq!(
            evaluation.run_type,
            i32::from(run_type),
            "{account}: {evaluation:?}"
        );
        assert_eq!(
            evaluation.run_id.is_empty(),
            run_type == RunType::Unspecified,
            "{account}: {evaluation:?}"
        );
    }
    let unable = desk.evaluation("acct-unable").await;
    assert_eq!(unable.missing, vec!["holdings".to_owned()]);
    let attention = desk.evaluation("acct-attention").await;
    assert!(
        attention.reason.contains("pattern_day_trader"),
        "{}",
        attention.reason
    );
    // Per-ticker drift: SPY at 95% against 60 ± 5.
    let out = desk.evaluation("acct-out").await;
    let spy = out
        .tickers
        .iter()
        .find(|t| t.symbol == "SPY")
        .expect("SPY drift");
    assert!(spy.breached);
    assert_eq!((d(&spy.band_lower), d(&spy.band_upper)), (d("55"), d("65")));
    assert!(
        (d(&spy.current_weight) - d("95")).abs() < d("0.01"),
        "{spy:?}"
    );
    assert!((d(&out.max_drift) - d("35")).abs() < d("0.01"), "{out:?}");
    // Rebalancing off: the same drift is shown, with no flag and no run.
    let off = desk.evaluation("acct-off").await;
    assert_eq!(off.reason, "rebalancing is off for this account");
    assert_eq!(off.tickers, out.tickers);
    assert_eq!(off.max_drift, out.max_drift);
    assert!(desk.runs_of("acct-off").await.is_empty());
    // Manual approval leaves the run proposed; the withdrawal run sells its amount.
    let out_runs = desk.runs_of("acct-out").await;
    assert_eq!(out_runs.len(), 1);
    assert_eq!(out_runs[0].status, i32::from(RunStatus::Proposed));
    // The run is planned against the portfolio version the account was evaluated against.
    assert_eq!(
        (
            out_runs[0].portfolio_id.as_str(),
            out_runs[0].portfolio_version
        ),
        (out.portfolio_id.as_str(), out.portfolio_version)
    );
    assert_eq!(
        (out.portfolio_id.as_str(), out.portfolio_version),
        (balanced.as_str(), 1)
    );
    let withdraw_runs = desk.runs_of("acct-withdraw").await;
    assert_eq!(withdraw_runs.len(), 1);
    assert_eq!(withdraw_runs[0].r#type, i32::from(RunType::Liquidation));

    // The Rebalance Center: flagged (not inside tolerance, not rebalancing
    // off) by portfolio, paginated; the group counts every account.
    let first = desk
        .monitor
        .list_flagged(desk.firm.request(ListFlaggedRequest {
            page_size: 4,
            ..ListFlaggedRequest::default()
        }))
        .await
        .expect("flagged")
        .into_inner();
    assert_eq!(first.cycle_id, cycle.id);
    assert_eq!(first.evaluations.len(), 4);
    assert!(!first.next_page_token.is_empty());
    let second = desk
        .monitor
        .list_flagged(desk.firm.request(ListFlaggedRequest {
            page_size: 4,
            page_token: first.next_page_token.clone(),
            ..ListFlaggedRequest::default()
        }))
        .await
        .expect("flagged page 2")
        .into_inner();
    assert_eq!(second.evaluations.len(), 3);
    assert!(second.next_page_token.is_empty());
    let balanced_group = first
        .groups
        .iter()
        .find(|g| g.portfolio_id == balanced)
        .expect("group");
    assert_eq!(balanced_group.total, 7, "{balanced_group:?}");
    // The Rebalance Center names its groups.
    assert_eq!(balanced_group.portfolio_name, "Balanced");
    assert!(
        first
            .evaluations
            .iter()
            .chain(&second.evaluations)
            .all(|e| e.account_id != "acct-off")
    );
    let only_off = desk
        .monitor
        .list_flagged(desk.firm.request(ListFlaggedRequest {
            statuses: vec![EvaluationStatus::RebalancingOff.into()],
            ..ListFlaggedRequest::default()
        }))
        .await
        .expect("rebalancing off")
        .into_inner();
    assert_eq!(only_off.evaluations.len(), 1);
    assert_eq!(only_off.evaluations[0].account_id, "acct-off");
    let only_out = desk
        .monitor
        .list_flagged(desk.firm.request(ListFlaggedRequest {
            statuses: vec![EvaluationStatus::OutOfTolerance.into()],
            ..ListFlaggedRequest::default()
        }))
        .await
        .expect("out of tolerance")
        .into_inner();
    let listed: Vec<&str> = only_out
        .evaluations
        .iter()
        .map(|e| e.account_id.as_str())
        .collect();
    assert_eq!(listed, vec!["acct-out"]);

    // Rerunning the day creates no second run for anyone.
    let rerun = desk
        .evaluate_now(EvaluateNowRequest::default())
        .await
        .expect("rerun");
    let mut watch = desk
        .monitor
        .watch_cycle(desk.firm.request(WatchCycleRequest {
            cycle_id: rerun.id.clone(),
        }))
        .await
        .expect("watch")
        .into_inner();
    let first_event = watch.next().await.expect("event").expect("snapshot");
    assert_eq!(
        first_event.cycle.expect("cycle").state,
        i32::from(CycleState::Pending)
    );
    stack.monitor_tick().await;
    let mut last = None;
    while let Some(event) = watch.next().await {
        last = event.expect("event").cycle;
    }
    let last = last.expect("a final event");
    assert_eq!(last.state, i32::from(CycleState::Completed));
    assert_eq!(last.accounts_evaluated, 9);
    for (account, _, _) in NINE {
        assert!(
            desk.runs_of(account).await.len() <= 1,
            "{account} has a duplicate run"
        );
    }
    // The scheduled cycle of the day is not started again.
    stack.clock.advance(Duration::hours(1));
    stack.monitor_tick().await;
    let all = desk
        .monitor
        .list_cycles(desk.firm.request(ListCyclesRequest::default()))
        .await
        .expect("cycles")
        .into_inner()
        .cycles;
    assert_eq!(all.len(), 2);

    // Dry run over listed accounts: flags without runs.
    let dry = desk
        .evaluate_now(EvaluateNowRequest {
            account_ids: vec!["acct-inside".to_owned(), "acct-deposit".to_owned()],
            dry_run: true,
            ..EvaluateNowRequest::default()
        })
        .await
        .expect("dry run");
    stack.monitor_tick().await;
    let dry = desk.cycle(&dry.id).await;
    assert_eq!((dry.accounts_evaluated, dry.runs_created), (2, 0));

    // Bad input names its field and changes nothing.
    let error = desk
        .evaluate_now(EvaluateNowRequest {
            account_ids: vec!["bad id with spaces".to_owned()],
            portfolio_id: balanced.clone(),
            ..EvaluateNowRequest::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(error.code(), Code::InvalidArgument);
    let fields: Vec<String> = error
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"account_ids[0]".to_owned()), "{fields:?}");
    assert!(fields.contains(&"portfolio_id".to_owned()), "{fields:?}");
    let missing = desk
        .monitor
        .get_cycle(desk.firm.request(GetCycleRequest {
            cycle_id: "nope".to_owned(),
        }))
        .await
        .expect_err("not found");
    assert_eq!(missing.code(), Code::NotFound);
    let bad_status = desk
        .monitor
        .list_flagged(desk.firm.request(ListFlaggedRequest {
            statuses: vec![99],
            ..ListFlaggedRequest::default()
        }))
        .await
        .expect_err("bad status");
    assert_eq!(bad_status.code(), Code::InvalidArgument);
    let cycles_after = desk
        .monitor
        .list_cycles(desk.firm.request(ListCyclesRequest::default()))
        .await
        .expect("cycles")
        .into_inner()
        .cycles;
    assert_eq!(cycles_after.len(), 3);
    // Another tenant sees none of it.
    let mut other = Desk::new(&stack, "firm-b").await;
    let error = other
        .monitor
        .get_evaluation(other.firm.request(GetEvaluationRequest {
            account_id: "acct-out".to_owned(),
            cycle_id: String::new(),
        }))
        .await
        .expect_err("other tenant");
    assert_eq!(error.code(), Code::NotFound);
    stack.stop().await;
}

#[tokio::test]
async fn nine_statuses_sqlite() {
    nine_statuses(Backend::Sqlite).await;
}

#[tokio::test]
async fn nine_statuses_postgres() {
    nine_statuses(Backend::Postgres).await;
}

/// The monitor names the portfolio version it evaluated in the runs it
/// opens; Execution plans them against that version (here 2, after an update).
async fn runs_carry_the_evaluated_version(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let balanced = desk.portfolio("Balanced", vec![band("5")], 0).await;
    let mut portfolio = desk
        .portfolios
        .get_portfolio(desk.firm.request(GetPortfolioRequest {
            portfolio_id: balanced.clone(),
            version: 0,
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    portfolio.weights = vec![weight("", "5"), weight("SPY", "55"), weight("TLT", "40")];
    let updated = desk
        .portfolios
        .update_portfolio(desk.firm.request(UpdatePortfolioRequest {
            portfolio: Some(portfolio),
            update_mask: Some(FieldMask {
                paths: vec!["weights".to_owned()],
            }),
        }))
        .await
        .expect("update")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(updated.version, 2);
    desk.open("acct-v", false, Vec::new()).await;
    desk.assign("acct-v", &balanced, ApprovalMode::Manual, true)
        .await;

    assert!(stack.monitor_tick().await >= 1);
    let evaluation = desk.evaluation("acct-v").await;
    assert_eq!(status(&evaluation), EvaluationStatus::OutOfTolerance);
    assert_eq!(
        (
            evaluation.portfolio_id.as_str(),
            evaluation.portfolio_version
        ),
        (balanced.as_str(), 2)
    );
    let runs = desk.runs_of("acct-v").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].id, evaluation.run_id);
    assert_eq!(
        (runs[0].portfolio_id.as_str(), runs[0].portfolio_version),
        (balanced.as_str(), 2)
    );
    let spy = runs[0]
        .weights
        .iter()
        .find(|w| w.symbol == "SPY")
        .expect("SPY weight");
    assert_eq!(d(&spy.percent), d("55"));

    // What the monitor sent: the exact request, replayed under its key
    // (one per account and day), returns its run only with the version in it.
    let sent = RunSpec {
        account_id: "acct-v".to_owned(),
        r#type: RunType::FullRebalance.into(),
        initiated_from: InitiatedFrom::System.into(),
        reason: evaluation.reason.clone(),
        portfolio_id: balanced.clone(),
        portfolio_version: 2,
        ..RunSpec::default()
    };
    let replay = |spec: RunSpec| {
        let request = desk.firm.request(CreateRunRequest {
            idempotency_key: "monitor-2026-03-02-acct-v".to_owned(),
            spec: Some(spec),
        });
        let mut runs = desk.runs.clone();
        async move { runs.create_run(request).await }
    };
    let replayed = replay(sent.clone())
        .await
        .expect("the monitor's request")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(replayed.id, runs[0].id);
    let without_version = replay(RunSpec {
        portfolio_id: String::new(),
        portfolio_version: 0,
        ..sent
    })
    .await
    .expect_err("not the monitor's request");
    assert_eq!(without_version.code(), Code::InvalidArgument);
    assert!(
        without_version.message().contains("idempotency_key"),
        "{without_version:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn runs_carry_the_evaluated_version_sqlite() {
    runs_carry_the_evaluated_version(Backend::Sqlite).await;
}

#[tokio::test]
async fn runs_carry_the_evaluated_version_postgres() {
    runs_carry_the_evaluated_version(Backend::Postgres).await;
}

/// Sets the clock to 10:30 New York on `date` and runs the monitor.
async fn cycle_on(stack: &TestStack, date: NaiveDate) {
    let at = Utc
        .with_ymd_and_hms(date.year(), date.month(), date.day(), 15, 30, 0)
        .single()
        .expect("valid");
    let now = stack.clock.now();
    if at > now {
        stack.clock.advance(at - now);
    }
    stack.monitor_tick().await;
}

/// Works the execution worker until every run of `account` is finished.
async fn execute(stack: &TestStack, desk: &mut Desk, account: &str) {
    for _ in 0..120 {
        let runs = desk.runs_of(account).await;
        let open = runs.iter().any(|r| {
            !matches!(
                RunStatus::try_from(r.status).expect("status"),
                RunStatus::CompletedSuccess
                    | RunStatus::CompletedAdjusted
                    | RunStatus::Canceled
                    | RunStatus::CanceledMidRun
                    | RunStatus::Error
                    | RunStatus::Timeout
            )
        });
        if !open {
            return;
        }
        stack.advance_and_tick(Duration::seconds(5), 1).await;
    }
    panic!(
        "runs of {account} did not finish: {:?}",
        desk.runs_of(account).await
    );
}

#[tokio::test]
async fn cooldown_suppresses_rebalances_but_not_invest_cash() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let balanced = desk.portfolio("Balanced", vec![band("5")], 5).await;
    desk.open("acct-1", false, Vec::new()).await;
    desk.assign("acct-1", &balanced, ApprovalMode::Auto, true)
        .await;

    // Monday: out of tolerance, rebalanced.
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")).await;
    let monday = desk.evaluation("acct-1").await;
    assert_eq!(status(&monday), EvaluationStatus::OutOfTolerance);
    assert_eq!(monday.run_type, i32::from(RunType::FullRebalance));
    execute(&stack, &mut desk, "acct-1").await;
    let runs = desk.runs_of("acct-1").await;
    assert_eq!(
        runs[0].status,
        i32::from(RunStatus::CompletedSuccess),
        "{runs:?}"
    );

    // Tuesday: the custodian reports the account drifted again; in cooldown.
    desk.open("acct-1", false, Vec::new()).await;
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 3).expect("date")).await;
    let tuesday = desk.evaluation("acct-1").await;
    assert_eq!(status(&tuesday), EvaluationStatus::OutOfTolerance);
    assert_eq!(tuesday.run_type, i32::from(RunType::Unspecified));
    assert!(tuesday.run_note.contains("cooldown"), "{tuesday:?}");

    // Wednesday: a deposit still gets invested during the cooldown.
    desk.cash("acct-1", CashMovementType::Deposit, "4000").await;
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 4).expect("date")).await;
    let wednesday = desk.evaluation("acct-1").await;
    assert_eq!(
        status(&wednesday),
        EvaluationStatus::NewDeposit,
        "{wednesday:?}"
    );
    assert_eq!(wednesday.run_type, i32::from(RunType::InvestCash));
    execute(&stack, &mut desk, "acct-1").await;

    // Thursday and Friday: still cooling down, no run.
    for day in [5, 6] {
        cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, day).expect("date")).await;
        let evaluation = desk.evaluation("acct-1").await;
        assert_eq!(
            evaluation.run_type,
            i32::from(RunType::Unspecified),
            "day {day}: {evaluation:?}"
        );
    }
    // The next Monday (cooldown of 5 days over): rebalanced again.
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 9).expect("date")).await;
    let next = desk.evaluation("acct-1").await;
    assert_eq!(status(&next), EvaluationStatus::OutOfTolerance);
    assert_eq!(next.run_type, i32::from(RunType::FullRebalance), "{next:?}");
    let kinds: Vec<i32> = desk
        .runs_of("acct-1")
        .await
        .iter()
        .map(|r| r.r#type)
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    stack.stop().await;
}

#[tokio::test]
async fn quarterly_calendar_fires_on_the_right_trading_days_over_a_year() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    // Day 31 of each quarter's first month: clamped to the month's end and
    // rolled back to the previous trading day.
    let quarterly_31 = desk.portfolio("Quarterly", vec![quarterly("31")], 0).await;
    // Rebalancing on with manual approval: the first cycle proposes a run
    // (never approved here), so later cycles flag without opening runs.
    desk.open("acct-q", true, Vec::new()).await;
    desk.assign("acct-q", &quarterly_31, ApprovalMode::Manual, true)
        .await;
    let mut fired = Vec::new();
    let mut date = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let end = NaiveDate::from_ymd_opt(2027, 3, 1).expect("date");
    while date < end {
        if rebalancer_domain::calendar::is_trading_day(date) {
            cycle_on(&stack, date).await;
            let evaluation = desk.evaluation("acct-q").await;
            assert_eq!(
                evaluation.evaluated_at.map(|t| t.seconds),
                Some(stack.clock.now().timestamp())
            );
            if evaluation.reason == "calendar rebalance day" {
                fired.push(date.to_string());
                assert_eq!(status(&evaluation), EvaluationStatus::OutOfTolerance);
                assert!(
                    evaluation.run_type == i32::from(RunType::FullRebalance)
                        || evaluation.run_note.contains("in progress"),
                    "{evaluation:?}"
                );
            }
        }
        date += Duration::days(1);
    }
    let cycles = desk
        .monitor
        .list_cycles(desk.firm.request(ListCyclesRequest {
            page_size: 1000,
            ..ListCyclesRequest::default()
        }))
        .await
        .expect("cycles")
        .into_inner()
        .cycles;
    let trading_days = cycles.len();
    // 2026-04-30 Thu; 2026-07-31 Fri; 2026-10-31 is a Saturday: Fri 10-30;
    // 2027-01-31 is a Sunday: Fri 01-29.
    assert_eq!(
        fired,
        vec!["2026-04-30", "2026-07-31", "2026-10-30", "2027-01-29"]
    );
    // One cycle per NYSE trading day: 250 between 2026-03-02 and 2027-02-26.
    assert!((245..=252).contains(&trading_days), "{trading_days} cycles");
    stack.stop().await;
}

async fn replica_dies_mid_cycle(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    // A tenant outside the daily schedule: only the on-demand cycles run.
    let mut desk = Desk::new(&stack, "firm-c").await;
    let balanced = desk.portfolio("Balanced", vec![band("5")], 0).await;
    let accounts: Vec<String> = (0..1100).map(|i| format!("acct-{i:05}")).collect();
    for account in &accounts {
        desk.open(account, false, Vec::new()).await;
        desk.assign(account, &balanced, ApprovalMode::Manual, true)
            .await;
    }
    // A dry run gives the next cycles their shard boundaries (500 per shard here).
    let dry = desk
        .evaluate_now(EvaluateNowRequest {
            dry_run: true,
            ..EvaluateNowRequest::default()
        })
        .await
        .expect("dry run");
    stack.monitor_tick().await;
    assert_eq!(desk.cycle(&dry.id).await.accounts_evaluated, 1100);

    let cycle = desk
        .evaluate_now(EvaluateNowRequest {
            idempotency_key: "cycle-1".to_owned(),
            ..EvaluateNowRequest::default()
        })
        .await
        .expect("cycle");
    assert_eq!(cycle.shards_total, 3);
    // Replica A claims a shard and dies before finishing it.
    let store = stack.monitor_store().await;
    let now = stack.clock.now();
    let (_, abandoned) = store
        .claim_shard("replica-a", now, now + Duration::minutes(10))
        .await
        .expect("claim")
        .expect("a shard");
    // Replica B works the rest; the cycle waits for the abandoned shard.
    assert_eq!(stack.monitor_tick().await, 2);
    let waiting = desk.cycle(&cycle.id).await;
    assert_eq!(waiting.state, i32::from(CycleState::Running));
    assert_eq!(waiting.shards_done, 2);
    // Once A's lease ends, B takes the shard over and completes the cycle.
    stack.clock.advance(Duration::minutes(11));
    assert_eq!(stack.monitor_tick().await, 1);
    let done = desk.cycle(&cycle.id).await;
    assert_eq!(done.state, i32::from(CycleState::Completed), "{done:?}");
    assert_eq!(done.shards_done, 3);
    assert_eq!(done.accounts_evaluated, 1100);
    assert_eq!(done.runs_created, 1100);
    // A too-late finish by the dead replica changes nothing.
    let stale = store
        .finish_shard(
            "firm-c",
            &abandoned,
            "replica-a",
            Default::default(),
            stack.clock.now(),
        )
        .await
        .expect("finish");
    assert!(!stale);
    // Exactly one run per account, even after the same request again.
    let again = desk
        .evaluate_now(EvaluateNowRequest {
            idempotency_key: "cycle-1".to_owned(),
            ..EvaluateNowRequest::default()
        })
        .await
        .expect("replay");
    assert_eq!(again.id, cycle.id);
    for account in accounts.iter().step_by(97) {
        assert_eq!(desk.runs_of(account).await.len(), 1, "{account}");
    }
    let mut total = 0;
    let mut token = String::new();
    loop {
        let page = desk
            .runs
            .list_runs(desk.firm.request(ListRunsRequest {
                page_size: 1000,
                page_token: token,
                ..ListRunsRequest::default()
            }))
            .await
            .expect("runs")
            .into_inner();
        total += page.runs.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(total, 1100);
    stack.stop().await;
}

#[tokio::test]
async fn replica_dies_mid_cycle_sqlite() {
    replica_dies_mid_cycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn replica_dies_mid_cycle_postgres() {
    replica_dies_mid_cycle(Backend::Postgres).await;
}

/// `SimulatePolicy` over gRPC: a 60/40 policy with a 5% band over two
/// decades of the embedded history, and precise refusals for months outside
/// it and for a weekly calendar (the history is monthly).
fn monthly_review(day: &str) -> RebalanceCondition {
    RebalanceCondition {
        r#type: ConditionType::Calendar.into(),
        sub_type: ConditionSubType::Monthly.into(),
        day: day.to_owned(),
        only_outside_bands: true,
        ..RebalanceCondition::default()
    }
}

/// Vanguard's hybrid policy end to end: reviewed monthly on the 2nd, traded
/// only outside the 5-point band, and then only to the band's edge.
#[tokio::test]
async fn a_hybrid_policy_trades_only_outside_its_band_on_review_days() {
    use rebalancer_proto::common::RebalanceTo;

    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let hybrid = desk
        .portfolios
        .create_portfolio(desk.firm.request(CreatePortfolioRequest {
            name: "Hybrid monthly 5%".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            rebalance_conditions: vec![band("5"), monthly_review("2")],
            invest_cash_threshold: "500".to_owned(),
            rebalance_to: RebalanceTo::BandEdge.into(),
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert!(hybrid.rebalance_conditions[1].only_outside_bands);
    assert_eq!(hybrid.rebalance_to, i32::from(RebalanceTo::BandEdge));
    desk.open("acct-in", true, Vec::new()).await;
    desk.open("acct-out", false, Vec::new()).await;
    for account in ["acct-in", "acct-out"] {
        desk.assign(account, &hybrid.id, ApprovalMode::Auto, true)
            .await;
    }

    // Monday 2 March is a review day. Inside the band: no trade.
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")).await;
    let inside = desk.evaluation("acct-in").await;
    assert_eq!(status(&inside), EvaluationStatus::InsideTolerance);
    assert_eq!(
        inside.reason,
        "review day (monthly on day 2): inside tolerance"
    );
    assert_eq!(inside.run_type, i32::from(RunType::Unspecified));
    assert!(desk.runs_of("acct-in").await.is_empty());
    // All in SPY: rebalanced, to the band's edge.
    let outside = desk.evaluation("acct-out").await;
    assert_eq!(status(&outside), EvaluationStatus::OutOfTolerance);
    assert_eq!(outside.run_type, i32::from(RunType::FullRebalance));
    assert!(
        outside
            .reason
            .starts_with("review day (monthly on day 2): SPY 95"),
        "{outside:?}"
    );
    assert!(
        outside.reason.ends_with("; to the band's edge"),
        "{outside:?}"
    );
    execute(&stack, &mut desk, "acct-out").await;

    // Tuesday: SPY sits on its 65% edge, TLT on its 30% edge (not 60/35).
    // acct-in is now all in SPY too, but Tuesday is not a review day.
    desk.open("acct-in", false, Vec::new()).await;
    cycle_on(&stack, NaiveDate::from_ymd_opt(2026, 3, 3).expect("date")).await;
    let after = desk.evaluation("acct-out").await;
    let weight_of = |evaluation: &Evaluation, symbol: &str| {
        evaluation
            .tickers
            .iter()
            .find(|t| t.symbol == symbol)
            .map(|t| d(&t.current_weight))
            .expect("ticker")
    };
    let spy = weight_of(&after, "SPY");
    let tlt = weight_of(&after, "TLT");
    assert!(
        (d("64.5")..=d("65.5")).contains(&spy),
        "SPY at {spy}: {after:?}"
    );
    assert!(
        (d("29.5")..=d("30.5")).contains(&tlt),
        "TLT at {tlt}: {after:?}"
    );
    let waiting = desk.evaluation("acct-in").await;
    assert_eq!(status(&waiting), EvaluationStatus::OutOfTolerance);
    assert_eq!(waiting.run_type, i32::from(RunType::Unspecified));
    assert_eq!(
        waiting.run_note,
        "hybrid policy: trades only on review days, next on 2026-04-02"
    );
    assert!(desk.runs_of("acct-in").await.is_empty());

    // A hybrid calendar without a band is refused, naming the field.
    let refused = desk
        .portfolios
        .create_portfolio(desk.firm.request(CreatePortfolioRequest {
            name: "No band".to_owned(),
            weights: vec![weight("SPY", "100")],
            rebalance_conditions: vec![monthly_review("2")],
            rebalance_to: RebalanceTo::BandEdge.into(),
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    assert_eq!(
        fields,
        ["rebalance_conditions[0].only_outside_bands", "rebalance_to"]
    );
    stack.stop().await;
}

/// The shape of Table 1 of Vanguard's *Best practices for portfolio
/// rebalancing* (Jaconetti, Kinniry, Zilbering, 2010): 60/40 stocks/bonds,
/// 1926–2009, monthly/quarterly/annual monitoring × 0/1/5/10% thresholds,
/// and never rebalanced, in one call. Prints the table (`--nocapture`).
#[tokio::test]
async fn simulate_policy_sweeps_vanguards_grid() {
    use rebalancer_proto::monitor::{PolicyGrid, SimulatePolicyRequest};

    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut monitor = MonitorServiceClient::new(stack.channel());
    let response = monitor
        .simulate_policy(firm.request(SimulatePolicyRequest {
            weights: vec![weight("STOCKS", "60"), weight("BONDS", "40")],
            start_month: "1926-01".to_owned(),
            end_month: "2009-12".to_owned(),
            grid: Some(PolicyGrid {
                monitoring: vec![
                    ConditionSubType::Monthly.into(),
                    ConditionSubType::Quarterly.into(),
                    ConditionSubType::Annually.into(),
                ],
                thresholds: ["0", "1", "5", "10"].map(str::to_owned).to_vec(),
                include_never: true,
                ..PolicyGrid::default()
            }),
            ..SimulatePolicyRequest::default()
        }))
        .await
        .expect("simulation")
        .into_inner();
    let results = &response.grid_results;
    println!("| policy | events | avg equity % | return % | volatility % | turnover % |");
    println!("|---|---:|---:|---:|---:|---:|");
    for result in results {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            result.label,
            result.rebalance_count,
            result.average_equity_percent,
            result.annualized_return_percent,
            result.annualized_volatility_percent,
            result.total_turnover_percent
        );
    }
    assert_eq!(results.len(), 13);
    let never = &results[0];
    assert_eq!(never.label, "never");
    assert_eq!(never.rebalance_count, 0);
    for (row, frequency) in ["monthly", "quarterly", "annually"].iter().enumerate() {
        let rows = &results[1 + 4 * row..5 + 4 * row];
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["0", "1", "5", "10"].map(|t| format!("{frequency} {t}% to target")),
        );
        // Wider thresholds rebalance less often and let equity drift more.
        for pair in rows.windows(2) {
            assert!(
                pair[0].rebalance_count >= pair[1].rebalance_count,
                "{pair:?}"
            );
        }
        assert!(
            rows[0].rebalance_count > rows[3].rebalance_count,
            "{rows:?}"
        );
        // Rebalancing on every date holds the 60% target on average…
        let held = d(&rows[0].average_equity_percent);
        assert!((d("59")..=d("62")).contains(&held), "{frequency}: {held}");
        // …with less risk than never rebalancing, whose equity drifts up.
        for policy in rows {
            assert!(
                d(&policy.annualized_volatility_percent) < d(&never.annualized_volatility_percent),
                "{policy:?} against {never:?}"
            );
            assert!(
                d(&policy.average_equity_percent) < d(&never.average_equity_percent),
                "{policy:?}"
            );
        }
    }
    // 1926-01 to 2009-12: 1,007 month ends after the first; monthly at 0%
    // rebalances at every one, quarterly at 336, annually at 84.
    assert_eq!(results[1].rebalance_count, 1007);
    assert_eq!(results[5].rebalance_count, 336);
    assert_eq!(results[9].rebalance_count, 84);
    stack.stop().await;
}

#[tokio::test]
async fn simulate_policy_over_grpc() {
    use rebalancer_proto::monitor::SimulatePolicyRequest;

    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut monitor = MonitorServiceClient::new(stack.channel());
    let outcome = monitor
        .simulate_policy(firm.request(SimulatePolicyRequest {
            weights: vec![weight("STOCKS", "60"), weight("BONDS", "40")],
            rebalance_conditions: vec![band("5")],
            start_month: "1990-01".to_owned(),
            end_month: "2009-12".to_owned(),
            ..SimulatePolicyRequest::default()
        }))
        .await
        .expect("simulation")
        .into_inner();
    assert!(outcome.rebalance_count > 0, "{outcome:?}");
    assert_eq!(
        usize::try_from(outcome.rebalance_count).expect("count"),
        outcome.rebalances.len()
    );
    assert!(d(&outcome.final_value) > d("10000"), "{outcome:?}");
    assert!(d(&outcome.max_drift) > d("5"), "{outcome:?}");

    let refused = monitor
        .simulate_policy(firm.request(SimulatePolicyRequest {
            weights: vec![weight("STOCKS", "60"), weight("BONDS", "40")],
            rebalance_conditions: vec![RebalanceCondition {
                r#type: ConditionType::Calendar.into(),
                sub_type: ConditionSubType::Weekly.into(),
                day: "monday".to_owned(),
                ..RebalanceCondition::default()
            }],
            start_month: "1850-01".to_owned(),
            end_month: "2009-12".to_owned(),
            ..SimulatePolicyRequest::default()
        }))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    assert_eq!(fields, ["rebalance_conditions[0].sub_type", "start_month"]);
    stack.stop().await;
}

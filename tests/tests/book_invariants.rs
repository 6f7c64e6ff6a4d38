//! The account book keeps its invariants where state changes, not only where
//! a plan is made (issue 10): each defect found by trying the product is
//! replayed here over gRPC on the in-process stack.
//!
//! - sells of shares no longer held never credit cash (approval refuses;
//!   execution cuts the sale to what is held);
//! - cash accounts never overdraw (edits refused, buys cut to the cash);
//! - a full rebalance funded by sales that fill low ends at zero cash, not
//!   below;
//! - cash raised for a withdrawal is held back until it is paid out, and a
//!   withdrawal above what the account can pay is refused;
//! - proposals and queued runs expire, and a stale plan is refused;
//! - every account of a block gets the block's average price;
//! - a TWAP ends with its window instead of sweeping past the cap;
//! - extended-hours runs start before the open; pattern day traders are not
//!   rebalanced by hand.

use std::str::FromStr;

use chrono::TimeDelta;
use rebalancer_kit::clock::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{
    ApprovalMode, ConditionSubType, ConditionType, RebalanceCondition, RunType, Weight,
};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AccountType, AdjustRunRequest, AlgorithmType, ApproveRunRequest, CashMovementType,
    CreateCashMovementRequest, CreateRunRequest, ExecutionAlgorithm, GetAccountRequest,
    GetRunRequest, ListAllocationsRequest, ListBlockOrdersRequest, ListChildOrdersRequest,
    ListOrdersRequest, OrderAdjustment, OrderStatus, Position, Restriction, Run, RunSpec,
    RunStatus, SettleCashMovementRequest, UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{EvaluateNowRequest, EvaluationStatus, GetEvaluationRequest};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, UpdatePortfolioRequest};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};
use rust_decimal::Decimal;
use tonic::Code;
use tonic_types::StatusExt;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?}"))
}

fn position(symbol: &str, quantity: &str) -> Position {
    Position {
        symbol: symbol.to_owned(),
        quantity: quantity.to_owned(),
        ..Position::default()
    }
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
    orders: OrderServiceClient<TracedChannel>,
}

impl Desk {
    fn new(stack: &TestStack, tenant: &str) -> Self {
        Self {
            firm: stack.tenant(tenant),
            accounts: AccountServiceClient::new(stack.channel()),
            runs: RunServiceClient::new(stack.channel()),
            orders: OrderServiceClient::new(stack.channel()),
        }
    }

    async fn upsert(&mut self, request: UpsertAccountRequest) -> Result<(), tonic::Status> {
        self.accounts
            .upsert_account(self.firm.request(request))
            .await
            .map(|_| ())
    }

    async fn open(&mut self, id: &str, cash: &str, positions: Vec<Position>) {
        self.upsert(UpsertAccountRequest {
            account_id: id.to_owned(),
            cash: cash.to_owned(),
            positions,
            ..UpsertAccountRequest::default()
        })
        .await
        .expect("account");
    }

    async fn account(&mut self, id: &str) -> rebalancer_proto::execution::Account {
        self.accounts
            .get_account(self.firm.request(GetAccountRequest {
                account_id: id.to_owned(),
            }))
            .await
            .expect("account")
            .into_inner()
            .account
            .expect("account")
    }

    async fn held(&mut self, id: &str, symbol: &str) -> Decimal {
        self.account(id)
            .await
            .positions
            .iter()
            .find(|p| p.symbol == symbol)
            .map_or(Decimal::ZERO, |p| d(&p.quantity))
    }

    async fn create(&mut self, key: &str, spec: RunSpec) -> Result<Run, tonic::Status> {
        self.runs
            .create_run(self.firm.request(CreateRunRequest {
                idempotency_key: key.to_owned(),
                spec: Some(spec),
            }))
            .await
            .map(|response| response.into_inner().run.expect("run"))
    }

    async fn run(&mut self, id: &str) -> Run {
        self.runs
            .get_run(self.firm.request(GetRunRequest {
                run_id: id.to_owned(),
            }))
            .await
            .expect("get run")
            .into_inner()
            .run
            .expect("run")
    }

    async fn approve(&mut self, run: &Run) -> Result<Run, tonic::Status> {
        self.runs
            .approve_run(self.firm.request(ApproveRunRequest {
                run_id: run.id.clone(),
                etag: run.etag.clone(),
            }))
            .await
            .map(|response| response.into_inner().run.expect("run"))
    }

    async fn withdraw(
        &mut self,
        key: &str,
        id: &str,
        amount: &str,
    ) -> Result<String, tonic::Status> {
        self.accounts
            .create_cash_movement(self.firm.request(CreateCashMovementRequest {
                idempotency_key: key.to_owned(),
                account_id: id.to_owned(),
                r#type: CashMovementType::Withdrawal.into(),
                amount: amount.to_owned(),
            }))
            .await
            .map(|response| response.into_inner().cash_movement.expect("movement").id)
    }
}

/// Ticks the worker a simulated second at a time until `run` ends.
async fn until_ended(stack: &TestStack, desk: &mut Desk, run: &str) -> Run {
    for _ in 0..4000 {
        let current = desk.run(run).await;
        if !matches!(
            RunStatus::try_from(current.status),
            Ok(RunStatus::Proposed | RunStatus::Queued | RunStatus::InProgress)
        ) {
            return current;
        }
        stack.advance_and_tick(TimeDelta::seconds(1), 1).await;
    }
    panic!("run {run} never ended");
}

fn liquidation(account: &str, approval: ApprovalMode) -> RunSpec {
    RunSpec {
        account_id: account.to_owned(),
        r#type: RunType::Liquidation.into(),
        approval_mode: approval.into(),
        ..RunSpec::default()
    }
}

fn one_off(account: &str, weights: Vec<Weight>, approval: ApprovalMode) -> RunSpec {
    RunSpec {
        account_id: account.to_owned(),
        r#type: RunType::FullRebalance.into(),
        weights,
        approval_mode: approval.into(),
        ..RunSpec::default()
    }
}

async fn sales_of_shares_no_longer_held(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-1");
    desk.open("a1", "0", vec![position("QQQ", "100")]).await;
    let proposed = desk
        .create("liq-1", liquidation("a1", ApprovalMode::Manual))
        .await
        .expect("liquidation");
    assert_eq!(proposed.status, i32::from(RunStatus::Proposed));
    // The position is lowered after the plan: approval names the change.
    desk.open("a1", "0", vec![position("QQQ", "10")]).await;
    let refused = desk.approve(&proposed).await.expect_err("stale plan");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("holds 10"),
        "{}",
        refused.message()
    );
    assert_eq!(
        desk.run(&proposed.id).await.status,
        i32::from(RunStatus::Proposed)
    );
    desk.runs
        .cancel_run(
            desk.firm
                .request(rebalancer_proto::execution::CancelRunRequest {
                    run_id: proposed.id.clone(),
                    ..Default::default()
                }),
        )
        .await
        .expect("cancel");

    // Lowered after approval: the sale is cut to the 10 shares at execution.
    desk.open("a1", "0", vec![position("QQQ", "100")]).await;
    let queued = desk
        .create("liq-2", liquidation("a1", ApprovalMode::Auto))
        .await
        .expect("liquidation");
    assert_eq!(queued.status, i32::from(RunStatus::Queued));
    desk.open("a1", "0", vec![position("QQQ", "10")]).await;
    let done = until_ended(&stack, &mut desk, &queued.id).await;
    assert_eq!(
        done.status,
        i32::from(RunStatus::CompletedAdjusted),
        "{done:?}"
    );
    assert!(done.reason.contains("holds now"), "{}", done.reason);
    let account = desk.account("a1").await;
    assert!(account.positions.is_empty(), "{account:?}");
    // Proceeds of 10 shares (QQQ trades near $500), never of 100.
    let cash = d(&account.cash);
    assert!(cash > d("4000") && cash < d("6000"), "{account:?}");
}

#[tokio::test]
async fn sales_of_shares_no_longer_held_sqlite() {
    sales_of_shares_no_longer_held(Backend::Sqlite).await;
}

#[tokio::test]
async fn sales_of_shares_no_longer_held_postgres() {
    sales_of_shares_no_longer_held(Backend::Postgres).await;
}

async fn cash_accounts_never_overdraw(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-2");
    // A cash account cannot be given negative cash; a margin account can,
    // within its limit.
    let refused = desk
        .upsert(UpsertAccountRequest {
            account_id: "b0".to_owned(),
            cash: "-0.01".to_owned(),
            ..UpsertAccountRequest::default()
        })
        .await
        .expect_err("negative cash");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["cash"]);
    let refused = desk
        .upsert(UpsertAccountRequest {
            account_id: "b0".to_owned(),
            cash: "100".to_owned(),
            margin_limit: "5000".to_owned(),
            ..UpsertAccountRequest::default()
        })
        .await
        .expect_err("margin limit on a cash account");
    assert_eq!(violated_fields(&refused), ["margin_limit"]);
    desk.upsert(UpsertAccountRequest {
        account_id: "m1".to_owned(),
        cash: "-500".to_owned(),
        r#type: AccountType::Margin.into(),
        margin_limit: "1000".to_owned(),
        ..UpsertAccountRequest::default()
    })
    .await
    .expect("margin account");
    let margin = desk.account("m1").await;
    assert_eq!(margin.r#type, i32::from(AccountType::Margin));
    assert_eq!(margin.buying_power, "500.00");

    // An edit that would spend $50,000 of $10,000 is refused, naming it.
    desk.open("b1", "10000", Vec::new()).await;
    let run = desk
        .create(
            "buy-spy",
            one_off("b1", vec![weight("SPY", "100")], ApprovalMode::Manual),
        )
        .await
        .expect("run");
    let order = run.orders.first().expect("a buy");
    let refused = desk
        .runs
        .adjust_run(desk.firm.request(AdjustRunRequest {
            run_id: run.id.clone(),
            etag: run.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: order.id.clone(),
                notional: "50000".to_owned(),
                ..OrderAdjustment::default()
            }],
            ..AdjustRunRequest::default()
        }))
        .await
        .expect_err("overdraft");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["adjustments[0].notional"]);
    assert_eq!(desk.run(&run.id).await.etag, run.etag, "nothing changed");

    // Cash taken away after approval: the buy is cut to what is left.
    desk.approve(&run).await.expect("approve");
    desk.open("b1", "2000", Vec::new()).await;
    let done = until_ended(&stack, &mut desk, &run.id).await;
    assert_eq!(
        done.status,
        i32::from(RunStatus::CompletedAdjusted),
        "{done:?}"
    );
    let account = desk.account("b1").await;
    assert!(d(&account.cash) >= Decimal::ZERO, "{account:?}");
    assert!(d(&account.cash) < d("20"), "{account:?}");
}

#[tokio::test]
async fn cash_accounts_never_overdraw_sqlite() {
    cash_accounts_never_overdraw(Backend::Sqlite).await;
}

#[tokio::test]
async fn cash_accounts_never_overdraw_postgres() {
    cash_accounts_never_overdraw(Backend::Postgres).await;
}

#[tokio::test]
async fn a_rebalance_funded_by_sales_never_goes_below_zero() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-3");
    desk.open(
        "c1",
        "0",
        vec![position("AAPL", "20.5"), position("ARKK", "7")],
    )
    .await;
    let run = desk
        .create(
            "rebalance-c1",
            one_off(
                "c1",
                vec![
                    weight("SPY", "40"),
                    weight("TLT", "30"),
                    weight("QQQ", "30"),
                ],
                ApprovalMode::Auto,
            ),
        )
        .await
        .expect("run");
    let done = until_ended(&stack, &mut desk, &run.id).await;
    assert!(
        matches!(
            RunStatus::try_from(done.status),
            Ok(RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted)
        ),
        "{done:?}"
    );
    let account = desk.account("c1").await;
    let cash = d(&account.cash);
    assert!(cash >= Decimal::ZERO, "{account:?}");
    // Invested: what is left is the buffer kept for prices, not idle cash.
    assert!(cash < d("0.01") * d(&account.equity), "{account:?}");
}

async fn withdrawals_are_held_until_paid(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-4");
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let mut monitor = MonitorServiceClient::new(stack.channel());
    let treasury = portfolios
        .create_portfolio(desk.firm.request(CreatePortfolioRequest {
            name: "Treasury".to_owned(),
            weights: vec![weight("SGOV", "100")],
            rebalance_conditions: vec![RebalanceCondition {
                r#type: ConditionType::DriftBand.into(),
                sub_type: ConditionSubType::Absolute.into(),
                percent: "5".to_owned(),
                ..RebalanceCondition::default()
            }],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    desk.open("w1", "0", vec![position("SGOV", "100")]).await;
    assignments
        .assign(desk.firm.request(AssignRequest {
            account_id: "w1".to_owned(),
            portfolio_id: treasury.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Auto.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    // More than the account is worth, alone or with what was asked before.
    let refused = desk
        .withdraw("w-huge", "w1", "1000000")
        .await
        .expect_err("above value");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let movement = desk
        .withdraw("w-3000", "w1", "3000")
        .await
        .expect("withdrawal");
    let refused = desk
        .withdraw("w-9000", "w1", "9000")
        .await
        .expect_err("above what is left");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("already requested"),
        "{}",
        refused.message()
    );
    assert_eq!(desk.account("w1").await.earmarked_cash, "3000.00");

    // The monitor raises it; the cash stays held back for the payout.
    let evaluate = |key: &str| EvaluateNowRequest {
        idempotency_key: key.to_owned(),
        ..EvaluateNowRequest::default()
    };
    monitor
        .evaluate_now(desk.firm.request(evaluate("cycle-1")))
        .await
        .expect("cycle");
    stack.monitor_tick().await;
    let runs = desk
        .runs
        .list_runs(
            desk.firm
                .request(rebalancer_proto::execution::ListRunsRequest {
                    account_id: "w1".to_owned(),
                    ..Default::default()
                }),
        )
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    stack.clock.advance(TimeDelta::seconds(20));
    let raised = until_ended(&stack, &mut desk, &runs[0].id).await;
    assert_eq!(
        raised.status,
        i32::from(RunStatus::CompletedSuccess),
        "{raised:?}"
    );
    let account = desk.account("w1").await;
    assert!(d(&account.cash) >= d("3000"), "{account:?}");
    assert_eq!(account.earmarked_cash, "3000.00");

    // The next cycle does not buy it back: SGOV is at target once the
    // held-back cash is left out.
    monitor
        .evaluate_now(desk.firm.request(evaluate("cycle-2")))
        .await
        .expect("cycle");
    stack.monitor_tick().await;
    let evaluation = monitor
        .get_evaluation(desk.firm.request(GetEvaluationRequest {
            account_id: "w1".to_owned(),
            ..GetEvaluationRequest::default()
        }))
        .await
        .expect("evaluation")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_ne!(
        evaluation.status,
        i32::from(EvaluationStatus::OutOfTolerance),
        "{evaluation:?}"
    );
    assert_eq!(evaluation.run_id, "", "{evaluation:?}");
    let before = d(&desk.account("w1").await.cash);
    desk.accounts
        .settle_cash_movement(desk.firm.request(SettleCashMovementRequest {
            cash_movement_id: movement,
        }))
        .await
        .expect("settle");
    let account = desk.account("w1").await;
    assert_eq!(d(&account.cash), before - d("3000"));
    assert_eq!(account.earmarked_cash, "0.00");
}

#[tokio::test]
async fn withdrawals_are_held_until_paid_sqlite() {
    withdrawals_are_held_until_paid(Backend::Sqlite).await;
}

#[tokio::test]
async fn withdrawals_are_held_until_paid_postgres() {
    withdrawals_are_held_until_paid(Backend::Postgres).await;
}

async fn plans_expire_and_stale_plans_are_refused(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-5");
    desk.open("e1", "10000", Vec::new()).await;
    // A proposal lives until the close by default.
    let monday = desk
        .create(
            "monday",
            one_off("e1", vec![weight("SPY", "100")], ApprovalMode::Manual),
        )
        .await
        .expect("run");
    assert!(monday.expires_at.is_some(), "{monday:?}");
    stack.clock.advance(TimeDelta::hours(7));
    stack.tick().await;
    let expired = desk.run(&monday.id).await;
    assert_eq!(expired.status, i32::from(RunStatus::Timeout), "{expired:?}");
    assert!(expired.reason.contains("expired"), "{}", expired.reason);
    let refused = desk.approve(&expired).await.expect_err("expired");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // It no longer blocks the account.
    let tuesday = desk
        .create(
            "tuesday",
            RunSpec {
                expires_at: Some(prost_types_timestamp(&stack, TimeDelta::minutes(1))),
                ..one_off("e1", vec![weight("SPY", "100")], ApprovalMode::Auto)
            },
        )
        .await
        .expect("a new run");
    // A queued run that could not start in time (the market is closed) ends
    // instead of running an old plan later.
    stack.advance_and_tick(TimeDelta::minutes(2), 1).await;
    let late = desk.run(&tuesday.id).await;
    assert_eq!(late.status, i32::from(RunStatus::Timeout), "{late:?}");
    assert!(
        late.orders
            .iter()
            .all(|o| o.status == i32::from(OrderStatus::Expired))
    );
    // Out of range expiries are named.
    let refused = desk
        .create(
            "too-late",
            RunSpec {
                expires_at: Some(prost_types_timestamp(&stack, TimeDelta::days(30))),
                ..one_off("e1", vec![weight("SPY", "100")], ApprovalMode::Auto)
            },
        )
        .await
        .expect_err("expiry out of range");
    assert_eq!(violated_fields(&refused), ["spec.expires_at"]);

    // Approving a plan made against an older portfolio version is refused.
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let model = portfolios
        .create_portfolio(desk.firm.request(CreatePortfolioRequest {
            name: "Model".to_owned(),
            weights: vec![weight("SPY", "100")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assignments
        .assign(desk.firm.request(AssignRequest {
            account_id: "e1".to_owned(),
            portfolio_id: model.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");
    let planned = desk
        .create(
            "on-version-1",
            RunSpec {
                account_id: "e1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                ..RunSpec::default()
            },
        )
        .await
        .expect("run");
    assert_eq!(planned.portfolio_version, 1);
    portfolios
        .update_portfolio(desk.firm.request(UpdatePortfolioRequest {
            portfolio: Some(rebalancer_proto::target::Portfolio {
                id: model.id.clone(),
                etag: model.etag.clone(),
                weights: vec![weight("VOO", "100")],
                ..model.clone()
            }),
            update_mask: Some(rebalancer_proto::prost_types::FieldMask {
                paths: vec!["weights".to_owned()],
            }),
        }))
        .await
        .expect("version 2");
    let refused = desk.approve(&planned).await.expect_err("stale version");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("version 2"),
        "{}",
        refused.message()
    );
    // A plan against version 2 replaces the stale proposal.
    let fresh = desk
        .create(
            "on-version-2",
            RunSpec {
                account_id: "e1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                portfolio_id: model.id.clone(),
                portfolio_version: 2,
                ..RunSpec::default()
            },
        )
        .await
        .expect("fresh run");
    assert_eq!(fresh.portfolio_version, 2);
    let superseded = desk.run(&planned.id).await;
    assert_eq!(superseded.status, i32::from(RunStatus::Canceled));
    assert!(
        superseded.reason.contains("superseded"),
        "{}",
        superseded.reason
    );
}

fn prost_types_timestamp(
    stack: &TestStack,
    after: TimeDelta,
) -> rebalancer_proto::prost_types::Timestamp {
    let at = stack.clock.now() + after;
    rebalancer_proto::prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

#[tokio::test]
async fn plans_expire_and_stale_plans_are_refused_sqlite() {
    plans_expire_and_stale_plans_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn plans_expire_and_stale_plans_are_refused_postgres() {
    plans_expire_and_stale_plans_are_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn every_account_of_a_block_gets_its_average_price() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-6");
    // Whole shares of NVR over a TWAP: fills at several prices, split by
    // whole shares between two accounts.
    let twap = ExecutionAlgorithm {
        r#type: AlgorithmType::Twap.into(),
        horizon: Some(rebalancer_proto::prost_types::Duration {
            seconds: 600,
            nanos: 0,
        }),
        max_participation_percent: "100".to_owned(),
        ..ExecutionAlgorithm::default()
    };
    let mut runs = Vec::new();
    for (account, cash) in [("n1", "60000"), ("n2", "95000")] {
        desk.open(account, cash, Vec::new()).await;
        let run = desk
            .create(
                &format!("nvr-{account}"),
                RunSpec {
                    algorithm: Some(twap.clone()),
                    ..one_off(account, vec![weight("NVR", "100")], ApprovalMode::Auto)
                },
            )
            .await
            .expect("run");
        runs.push(run);
    }
    for run in &runs {
        until_ended(&stack, &mut desk, &run.id).await;
    }
    let blocks = desk
        .orders
        .list_block_orders(desk.firm.request(ListBlockOrdersRequest {
            symbol: "NVR".to_owned(),
            ..ListBlockOrdersRequest::default()
        }))
        .await
        .expect("blocks")
        .into_inner()
        .block_orders;
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let block = &blocks[0];
    let fills = desk
        .orders
        .list_fills(
            desk.firm
                .request(rebalancer_proto::execution::ListFillsRequest {
                    block_order_id: block.id.clone(),
                    ..Default::default()
                }),
        )
        .await
        .expect("fills")
        .into_inner()
        .fills;
    let prices: std::collections::BTreeSet<String> =
        fills.iter().map(|f| f.price.clone()).collect();
    assert!(prices.len() > 1, "one price only: {fills:?}");
    let shares: Decimal = fills.iter().map(|f| d(&f.quantity)).sum();
    let value: Decimal = fills.iter().map(|f| d(&f.quantity) * d(&f.price)).sum();
    let average = value / shares;
    let allocations = desk
        .orders
        .list_allocations(desk.firm.request(ListAllocationsRequest {
            block_order_id: block.id.clone(),
            page_size: 1000,
            ..ListAllocationsRequest::default()
        }))
        .await
        .expect("allocations")
        .into_inner()
        .allocations;
    let mut by_order: std::collections::BTreeMap<String, (Decimal, Decimal)> =
        std::collections::BTreeMap::new();
    for allocation in &allocations {
        let entry = by_order.entry(allocation.order_id.clone()).or_default();
        entry.0 += d(&allocation.quantity);
        entry.1 += d(&allocation.amount);
    }
    assert_eq!(by_order.len(), 2, "{allocations:?}");
    let total: Decimal = by_order.values().map(|(_, amount)| *amount).sum();
    // The block's cash is unchanged by the corrections: its fills, to the cent.
    assert!((total - value).abs() <= d("0.01"), "{total} vs {value}");
    for (order, (quantity, amount)) in &by_order {
        assert!(*quantity > Decimal::ZERO);
        // Each order's price is the block's average, within a cent per order.
        let off = (*amount - average * *quantity).abs();
        assert!(
            off < d("0.01"),
            "order {order}: {amount} for {quantity} at {average}: {allocations:?} {fills:?} {block:?}"
        );
    }
    for account in ["n1", "n2"] {
        assert!(d(&desk.account(account).await.cash) >= Decimal::ZERO);
    }
}

async fn twap_window(continue_after_window: bool) {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-7");
    // NVR trades some 20,000 shares a day; 1% of a minute's volume is a
    // fraction of a share, so 40 shares cannot fill in five minutes.
    desk.open("t1", "400000", Vec::new()).await;
    let run = desk
        .create(
            "twap-t1",
            RunSpec {
                algorithm: Some(ExecutionAlgorithm {
                    r#type: AlgorithmType::Twap.into(),
                    horizon: Some(rebalancer_proto::prost_types::Duration {
                        seconds: 300,
                        nanos: 0,
                    }),
                    max_participation_percent: "5".to_owned(),
                    continue_after_window,
                    ..ExecutionAlgorithm::default()
                }),
                ..one_off(
                    "t1",
                    vec![weight("", "10"), weight("NVR", "90")],
                    ApprovalMode::Auto,
                )
            },
        )
        .await
        .expect("run");
    let started = stack.clock.now();
    if continue_after_window {
        // Still working well after its window.
        stack.advance_and_tick(TimeDelta::seconds(1), 900).await;
        let block = desk
            .orders
            .list_block_orders(desk.firm.request(ListBlockOrdersRequest {
                run_id: run.id.clone(),
                ..ListBlockOrdersRequest::default()
            }))
            .await
            .expect("blocks")
            .into_inner()
            .block_orders
            .remove(0);
        let children = desk
            .orders
            .list_child_orders(desk.firm.request(ListChildOrdersRequest {
                block_order_id: block.id.clone(),
                page_size: 1000,
                ..ListChildOrdersRequest::default()
            }))
            .await
            .expect("children")
            .into_inner()
            .child_orders;
        let late = children
            .iter()
            .filter(|c| {
                c.due_at
                    .as_ref()
                    .is_some_and(|at| at.seconds > (started + TimeDelta::minutes(6)).timestamp())
            })
            .count();
        assert!(late > 0, "{children:?}");
        return;
    }
    let done = until_ended(&stack, &mut desk, &run.id).await;
    assert!(
        stack.clock.now() < started + TimeDelta::minutes(7),
        "worked past its window"
    );
    assert_eq!(
        done.status,
        i32::from(RunStatus::CompletedAdjusted),
        "{done:?}"
    );
    assert!(done.reason.contains("window ended"), "{}", done.reason);
    let orders = desk
        .orders
        .list_orders(desk.firm.request(ListOrdersRequest {
            run_id: run.id.clone(),
            ..ListOrdersRequest::default()
        }))
        .await
        .expect("orders")
        .into_inner()
        .orders;
    assert!(
        orders
            .iter()
            .all(|o| o.status == i32::from(OrderStatus::Expired)
                || o.status == i32::from(OrderStatus::Filled))
    );
}

#[tokio::test]
async fn twap_ends_with_its_window() {
    twap_window(false).await;
}

#[tokio::test]
async fn twap_continues_after_its_window_when_asked() {
    twap_window(true).await;
}

#[tokio::test]
async fn extended_hours_and_pattern_day_traders() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-8");
    // A pattern day trader is not rebalanced by hand (as the monitor does);
    // raising cash is still allowed.
    desk.upsert(UpsertAccountRequest {
        account_id: "p1".to_owned(),
        cash: "10000".to_owned(),
        positions: vec![position("SPY", "1")],
        restrictions: vec![Restriction::PatternDayTrader.into()],
        ..UpsertAccountRequest::default()
    })
    .await
    .expect("pdt account");
    let refused = desk
        .create(
            "pdt-rebalance",
            one_off("p1", vec![weight("SPY", "100")], ApprovalMode::Auto),
        )
        .await
        .expect_err("pdt");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("pattern day trader"),
        "{}",
        refused.message()
    );
    desk.create("pdt-liquidation", liquidation("p1", ApprovalMode::Manual))
        .await
        .expect("a liquidation is allowed");

    // 07:00 New York, before the open: an extended-hours run trades now.
    desk.open("x1", "10000", Vec::new()).await;
    // From 10:00 on Monday to 07:00 on Tuesday.
    stack.clock.advance(TimeDelta::hours(21));
    let run = desk
        .create(
            "pre-market",
            RunSpec {
                algorithm: Some(ExecutionAlgorithm {
                    extended_hours: true,
                    ..ExecutionAlgorithm::default()
                }),
                ..one_off("x1", vec![weight("SPY", "100")], ApprovalMode::Auto)
            },
        )
        .await
        .expect("run");
    stack.advance_and_tick(TimeDelta::seconds(1), 5).await;
    let done = desk.run(&run.id).await;
    assert!(
        matches!(
            RunStatus::try_from(done.status),
            Ok(RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted)
        ),
        "{done:?}"
    );
    assert!(desk.held("x1", "SPY").await > Decimal::ZERO);
}

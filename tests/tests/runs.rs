//! Runs end to end on both backends: deposit, plan against the Balanced
//! portfolio from the Target service, preview, approve, execute through the
//! paper broker on the simulated market, watch, and read the holdings back;
//! whole shares, the $10 / 11 assets case, edits, withdrawals, idempotency;
//! runs pinned to the portfolio version their caller evaluated.

use std::str::FromStr;

use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, InitiatedFrom, RunType, Weight};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AdjustRunRequest, ApproveRunRequest, CancelRunRequest, CashMovementType,
    CreateCashMovementRequest, CreateRunRequest, GetHoldingsRequest, GetRunRequest, Holdings,
    ListBlockOrdersRequest, ListRunsRequest, OrderAdjustment, OrderSide, Position,
    PreviewRunRequest, Run, RunEventType, RunSpec, RunStatus, SkipReason, UpsertAccountRequest,
    WatchRunRequest,
};
use rebalancer_proto::prost_types::FieldMask;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, CreatePortfolioRequest, UnassignRequest, UpdatePortfolioRequest,
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

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
}

impl Desk {
    async fn open_account(&mut self, id: &str, cash: &str, positions: Vec<Position>) {
        self.accounts
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: cash.to_owned(),
                positions,
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
    }

    async fn deposit(&mut self, id: &str, amount: &str) {
        self.accounts
            .create_cash_movement(self.firm.request(CreateCashMovementRequest {
                idempotency_key: format!("deposit-{id}-{amount}"),
                account_id: id.to_owned(),
                r#type: CashMovementType::Deposit.into(),
                amount: amount.to_owned(),
            }))
            .await
            .expect("deposit");
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

    async fn cancel(&mut self, run: &Run) {
        self.runs
            .cancel_run(self.firm.request(CancelRunRequest {
                run_id: run.id.clone(),
                etag: run.etag.clone(),
                reason: String::new(),
            }))
            .await
            .expect("cancel");
    }

    async fn holdings(&mut self, id: &str) -> Holdings {
        self.accounts
            .get_holdings(self.firm.request(GetHoldingsRequest {
                account_id: id.to_owned(),
            }))
            .await
            .expect("holdings")
            .into_inner()
            .holdings
            .expect("holdings")
    }
}

fn position(holdings: &Holdings, symbol: &str) -> Position {
    holdings
        .positions
        .iter()
        .find(|p| p.symbol == symbol)
        .cloned()
        .unwrap_or_else(|| panic!("no {symbol} position in {holdings:?}"))
}

/// Dollars spent on a position: quantity × average cost.
fn cost(position: &Position) -> Decimal {
    d(&position.quantity) * d(&position.average_cost)
}

async fn run_lifecycle(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut firm = stack.tenant("firm-a");
    firm.actor = Some("advisor@firm-a".to_owned());
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(stack.channel()),
        runs: RunServiceClient::new(stack.channel()),
    };
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());

    // Alpaca's Balanced model; a new account funded with $100,000 and assigned, manual approval.
    let balanced = portfolios
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            cooldown_days: 7,
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    desk.open_account("acct-1", "0", Vec::new()).await;
    desk.deposit("acct-1", "100000").await;
    assignments
        .assign(firm.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: balanced.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    // Preview shows the trades and drift without creating anything.
    let full = RunSpec {
        account_id: "acct-1".to_owned(),
        r#type: RunType::FullRebalance.into(),
        ..RunSpec::default()
    };
    let preview = desk
        .runs
        .preview_run(firm.request(PreviewRunRequest {
            spec: Some(full.clone()),
        }))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.orders.len(), 2);
    assert_eq!(d(&preview.cash_after), d("5000"));

    // Create twice with one key: one run, PROPOSED (manual approval).
    let run = desk
        .create("rebalance-acct-1", full.clone())
        .await
        .expect("create");
    let again = desk
        .create("rebalance-acct-1", full.clone())
        .await
        .expect("replay");
    assert_eq!(run.id, again.id);
    assert_eq!(run.status, i32::from(RunStatus::Proposed));
    assert_eq!(run.portfolio_id, balanced.id);
    let notionals: Vec<(String, String)> = run
        .orders
        .iter()
        .map(|o| (o.symbol.clone(), o.notional.clone()))
        .collect();
    assert_eq!(
        notionals,
        [
            ("SPY".to_owned(), "60000.00".to_owned()),
            ("TLT".to_owned(), "35000.00".to_owned())
        ]
    );
    // One run per account at a time.
    let status = desk
        .create("rebalance-acct-1-again", full.clone())
        .await
        .expect_err("open run");
    assert_eq!(status.code(), Code::FailedPrecondition);

    // Watch, approve, execute.
    let mut watch = desk
        .runs
        .watch_run(firm.request(WatchRunRequest {
            run_id: run.id.clone(),
        }))
        .await
        .expect("watch")
        .into_inner();
    let watcher = tokio::spawn(async move {
        let mut kinds = Vec::new();
        while let Some(event) = watch.next().await {
            kinds.push(event.expect("event").event_type);
        }
        kinds
    });
    let approved = desk
        .runs
        .approve_run(firm.request(ApproveRunRequest {
            run_id: run.id.clone(),
            etag: run.etag.clone(),
        }))
        .await
        .expect("approve")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(approved.status, i32::from(RunStatus::Queued));
    assert_eq!(approved.approved_by, "advisor@firm-a");
    stack.tick().await;
    let done = desk.run(&run.id).await;
    assert_eq!(
        done.status,
        i32::from(RunStatus::CompletedSuccess),
        "{done:?}"
    );
    let events = watcher.await.expect("watcher");
    assert_eq!(events.first(), Some(&i32::from(RunEventType::Snapshot)));
    assert!(
        events.contains(&i32::from(RunEventType::Fill)),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&i32::from(RunEventType::StatusChanged)));

    // Holdings within a cent of target: $60,000 of SPY, $35,000 of TLT, $5,000 cash.
    let holdings = desk.holdings("acct-1").await;
    assert!(
        (cost(&position(&holdings, "SPY")) - d("60000")).abs() <= d("0.01"),
        "{holdings:?}"
    );
    assert!(
        (cost(&position(&holdings, "TLT")) - d("35000")).abs() <= d("0.01"),
        "{holdings:?}"
    );
    assert!(
        (d(&holdings.cash) - d("5000")).abs() <= d("0.02"),
        "{holdings:?}"
    );

    // A withdrawal of $5,000 raises at least $5,000, keeping the rest near target.
    let withdrawal = desk
        .accounts
        .create_cash_movement(firm.request(CreateCashMovementRequest {
            idempotency_key: "withdraw-acct-1-5000".to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Withdrawal.into(),
            amount: "5000".to_owned(),
        }))
        .await
        .expect("withdrawal")
        .into_inner()
        .cash_movement
        .expect("movement");
    let liquidation = desk
        .create(
            "liquidate-acct-1",
            RunSpec {
                account_id: "acct-1".to_owned(),
                r#type: RunType::Liquidation.into(),
                cash_movement_id: withdrawal.id.clone(),
                approval_mode: ApprovalMode::Auto.into(),
                ..RunSpec::default()
            },
        )
        .await
        .expect("liquidation");
    assert_eq!(liquidation.amount, "5000.00");
    assert!(
        liquidation
            .orders
            .iter()
            .all(|o| o.side == i32::from(OrderSide::Sell))
    );
    stack.tick().await;
    let done = desk.run(&liquidation.id).await;
    assert!(
        matches!(
            RunStatus::try_from(done.status),
            Ok(RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted)
        ),
        "{done:?}"
    );
    let holdings = desk.holdings("acct-1").await;
    let cash = d(&holdings.cash);
    assert!(cash >= d("5000"), "cash {cash}");
    let spy = cost(&position(&holdings, "SPY"));
    let tlt = cost(&position(&holdings, "TLT"));
    let invested_share = spy / (spy + tlt);
    assert!(
        (invested_share - d("60") / d("95")).abs() < d("0.01"),
        "SPY share {invested_share}"
    );

    // Whole shares for a non-fractionable asset.
    desk.open_account("acct-whole", "50000", Vec::new()).await;
    let whole = desk
        .create(
            "whole-acct-whole",
            RunSpec {
                account_id: "acct-whole".to_owned(),
                r#type: RunType::FullRebalance.into(),
                weights: vec![weight("", "10"), weight("AZO", "90")],
                ..RunSpec::default()
            },
        )
        .await
        .expect("one-off run");
    assert_eq!(whole.status, i32::from(RunStatus::Queued));
    assert!(whole.orders[0].notional.is_empty());
    stack.tick().await;
    let holdings = desk.holdings("acct-whole").await;
    let azo = d(&position(&holdings, "AZO").quantity);
    assert!(azo > Decimal::ZERO && azo.fract().is_zero(), "AZO {azo}");

    // $10 into 11 equal assets with a $1 minimum: 10 buys of $1 and one skipped with its reason.
    desk.open_account("acct-ten", "10", Vec::new()).await;
    let symbols = [
        "AAPL", "MSFT", "AMZN", "GOOGL", "META", "JPM", "V", "UNH", "XOM", "MA", "JNJ",
    ];
    let mut eleven: Vec<Weight> = symbols.iter().map(|s| weight(s, "9.09")).collect();
    eleven[10].percent = "9.10".to_owned();
    let ten = desk
        .create(
            "invest-acct-ten",
            RunSpec {
                account_id: "acct-ten".to_owned(),
                r#type: RunType::InvestCash.into(),
                weights: eleven,
                ..RunSpec::default()
            },
        )
        .await
        .expect("invest cash");
    assert_eq!(ten.orders.len(), 10, "{ten:?}");
    assert!(ten.orders.iter().all(|o| d(&o.notional) == d("1")));
    assert_eq!(ten.skipped_orders.len(), 1);
    assert_ne!(
        ten.skipped_orders[0].reason,
        i32::from(SkipReason::Unspecified)
    );
    assert!(!ten.skipped_orders[0].detail.is_empty());

    // Editing an order to sell more than held is refused; a smaller sell is fine.
    desk.open_account(
        "acct-sell",
        "0",
        vec![Position {
            symbol: "SPY".to_owned(),
            quantity: "10".to_owned(),
            ..Position::default()
        }],
    )
    .await;
    let sell = desk
        .create(
            "sell-acct-sell",
            RunSpec {
                account_id: "acct-sell".to_owned(),
                r#type: RunType::FullRebalance.into(),
                weights: vec![weight("", "100")],
                approval_mode: ApprovalMode::Manual.into(),
                ..RunSpec::default()
            },
        )
        .await
        .expect("sell run");
    let order = &sell.orders[0];
    assert_eq!(order.side, i32::from(OrderSide::Sell));
    let status = desk
        .runs
        .adjust_run(firm.request(AdjustRunRequest {
            run_id: sell.id.clone(),
            etag: sell.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: order.id.clone(),
                quantity: "11".to_owned(),
                ..OrderAdjustment::default()
            }],
            exclude_account: false,
        }))
        .await
        .expect_err("sells more than held");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .expect("details")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["adjustments[0].quantity"]);
    let edited = desk
        .runs
        .adjust_run(firm.request(AdjustRunRequest {
            run_id: sell.id.clone(),
            etag: sell.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: order.id.clone(),
                quantity: "4".to_owned(),
                ..OrderAdjustment::default()
            }],
            exclude_account: false,
        }))
        .await
        .expect("edit")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(d(&edited.orders[0].quantity), d("4"));
    assert!(
        edited
            .adjustments
            .iter()
            .any(|a| a.action == "quantity_changed" && a.actor == "advisor@firm-a")
    );
    stack.stop().await;
}

#[tokio::test]
async fn run_lifecycle_sqlite() {
    run_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn run_lifecycle_postgres() {
    run_lifecycle(Backend::Postgres).await;
}

/// An edit of a proposed run is recorded in its adjustments as plain
/// values users can read, the notional an order had and the one it has now.
async fn adjustments_read_as_plain_values(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(stack.channel()),
        runs: RunServiceClient::new(stack.channel()),
    };
    desk.open_account("acct-edit", "50000", Vec::new()).await;
    let run = desk
        .create(
            "edit-acct-edit",
            RunSpec {
                account_id: "acct-edit".to_owned(),
                r#type: RunType::FullRebalance.into(),
                weights: vec![weight("", "50"), weight("SPY", "50")],
                approval_mode: ApprovalMode::Manual.into(),
                ..RunSpec::default()
            },
        )
        .await
        .expect("run");
    let order = &run.orders[0];
    assert_eq!(order.notional, "25000.00", "{order:?}");
    let edited = desk
        .runs
        .adjust_run(firm.request(AdjustRunRequest {
            run_id: run.id.clone(),
            etag: run.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: order.id.clone(),
                notional: "30000".to_owned(),
                ..OrderAdjustment::default()
            }],
            exclude_account: false,
        }))
        .await
        .expect("raise the notional")
        .into_inner()
        .run
        .expect("run");
    let stored = desk.run(&run.id).await;
    for read in [&edited, &stored] {
        let edits: Vec<_> = read
            .adjustments
            .iter()
            .filter(|a| a.action == "quantity_changed")
            .collect();
        let [adjustment] = edits.as_slice() else {
            panic!("one edit: {:?}", read.adjustments);
        };
        assert_eq!(adjustment.order_id, order.id);
        let details = &adjustment.details;
        assert!(
            details.starts_with(&format!("quantity {} -> ", order.quantity)),
            "{details:?}"
        );
        assert!(
            details.ends_with(", notional 25000.00 -> 30000.00"),
            "{details:?}"
        );
        assert!(
            !details.contains("Some(") && !details.contains("None"),
            "{details:?}"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn adjustments_read_as_plain_values_sqlite() {
    adjustments_read_as_plain_values(Backend::Sqlite).await;
}

#[tokio::test]
async fn adjustments_read_as_plain_values_postgres() {
    adjustments_read_as_plain_values(Backend::Postgres).await;
}

/// Target weights of a run, by symbol ("" for cash).
fn run_weights(run: &Run) -> Vec<(String, Decimal)> {
    let mut weights: Vec<(String, Decimal)> = run
        .weights
        .iter()
        .map(|w| (w.symbol.clone(), d(&w.percent)))
        .collect();
    weights.sort();
    weights
}

/// The field paths of an INVALID_ARGUMENT status.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// A run spec that names the portfolio version its caller evaluated is
/// planned against exactly that version and records it; once the portfolio
/// has a newer version (or the account no longer follows it) the spec is
/// refused and nothing is stored; a version without a portfolio is invalid.
async fn runs_pinned_to_a_portfolio_version(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(stack.channel()),
        runs: RunServiceClient::new(stack.channel()),
    };
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let balanced = portfolios
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(balanced.version, 1);
    desk.open_account("acct-pin", "100000", Vec::new()).await;
    let assignment = assignments
        .assign(firm.request(AssignRequest {
            account_id: "acct-pin".to_owned(),
            portfolio_id: balanced.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign")
        .into_inner()
        .assignment
        .expect("assignment");
    let pinned = |version: i64| RunSpec {
        account_id: "acct-pin".to_owned(),
        r#type: RunType::FullRebalance.into(),
        portfolio_id: balanced.id.clone(),
        portfolio_version: version,
        ..RunSpec::default()
    };

    // (a) The current version: planned against it, and recorded.
    let first = desk
        .create("pin-v1", pinned(1))
        .await
        .expect("run at version 1");
    assert_eq!(first.status, i32::from(RunStatus::Proposed));
    assert_eq!(
        (first.portfolio_id.as_str(), first.portfolio_version),
        (balanced.id.as_str(), 1)
    );
    assert_eq!(
        run_weights(&first),
        [
            (String::new(), d("5")),
            ("SPY".to_owned(), d("60")),
            ("TLT".to_owned(), d("35"))
        ]
    );
    let stored = desk.run(&first.id).await;
    assert_eq!(
        (stored.portfolio_id.as_str(), stored.portfolio_version),
        (balanced.id.as_str(), 1)
    );
    desk.cancel(&stored).await;

    // (b) The portfolio moves to version 2: a spec naming version 1 is
    // refused, by CreateRun and PreviewRun alike, and nothing is stored.
    let mut changed = balanced.clone();
    changed.weights = vec![weight("", "5"), weight("SPY", "55"), weight("TLT", "40")];
    let updated = portfolios
        .update_portfolio(firm.request(UpdatePortfolioRequest {
            portfolio: Some(changed),
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
    let stale = desk
        .create("pin-v1-again", pinned(1))
        .await
        .expect_err("version 1 is no longer current");
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    for expected in [
        "acct-pin".to_owned(),
        format!("portfolio {} version 2", balanced.id),
        format!("portfolio {} version 1", balanced.id),
    ] {
        assert!(
            stale.message().contains(&expected),
            "{:?} should name {expected:?}",
            stale.message()
        );
    }
    let preview = desk
        .runs
        .preview_run(firm.request(PreviewRunRequest {
            spec: Some(pinned(1)),
        }))
        .await
        .expect_err("preview of version 1");
    assert_eq!(preview.code(), Code::FailedPrecondition);
    assert_eq!(desk.runs_of("acct-pin").await.len(), 1);

    // The new version, named or left to the assignment (0), plans 55/40.
    for (key, version) in [("pin-v2", 2), ("pin-current", 0)] {
        let run = desk.create(key, pinned(version)).await.expect("run");
        assert_eq!(
            (run.portfolio_id.as_str(), run.portfolio_version),
            (balanced.id.as_str(), 2)
        );
        assert_eq!(run_weights(&run)[1], ("SPY".to_owned(), d("55")));
        desk.cancel(&run).await;
    }

    // An account that no longer follows the portfolio is refused too.
    assignments
        .unassign(firm.request(UnassignRequest {
            assignment_id: assignment.id.clone(),
            etag: assignment.etag.clone(),
            keep_rebalancing_enabled: true,
        }))
        .await
        .expect("unassign");
    let unassigned = desk
        .create("pin-unassigned", pinned(2))
        .await
        .expect_err("no longer assigned");
    assert_eq!(unassigned.code(), Code::FailedPrecondition);
    assert!(
        unassigned
            .message()
            .contains("acct-pin follows no portfolio now"),
        "{}",
        unassigned.message()
    );
    assert_eq!(desk.runs_of("acct-pin").await.len(), 3);

    // (c) A version without a portfolio, or a negative one, is invalid.
    for (version, portfolio_id) in [(1, String::new()), (-1, balanced.id.clone())] {
        let invalid = desk
            .create(
                &format!("pin-invalid-{version}"),
                RunSpec {
                    portfolio_id,
                    portfolio_version: version,
                    ..pinned(0)
                },
            )
            .await
            .expect_err("invalid version");
        assert_eq!(violated_fields(&invalid), ["spec.portfolio_version"]);
    }
    // Named portfolios are for assignments, not one-off weights.
    let mixed = desk
        .create(
            "pin-mixed",
            RunSpec {
                weights: vec![weight("", "100")],
                ..pinned(2)
            },
        )
        .await
        .expect_err("weights and a portfolio");
    assert_eq!(violated_fields(&mixed), ["spec.portfolio_id"]);
    assert_eq!(desk.runs_of("acct-pin").await.len(), 3);
    stack.stop().await;
}

#[tokio::test]
async fn runs_pinned_to_a_portfolio_version_sqlite() {
    runs_pinned_to_a_portfolio_version(Backend::Sqlite).await;
}

#[tokio::test]
async fn runs_pinned_to_a_portfolio_version_postgres() {
    runs_pinned_to_a_portfolio_version(Backend::Postgres).await;
}

/// The runs the monitor opens one by one during its cycle are gathered into
/// one transmission (one block per symbol and side), sent once none has come
/// for a while; a run an advisor or a platform service creates goes at once.
#[tokio::test]
async fn system_runs_are_gathered_into_one_transmission() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(stack.channel()),
        runs: RunServiceClient::new(stack.channel()),
    };
    let spec = |account: &str, from: InitiatedFrom| RunSpec {
        account_id: account.to_owned(),
        r#type: RunType::FullRebalance.into(),
        weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
        initiated_from: from.into(),
        approval_mode: ApprovalMode::Auto.into(),
        ..RunSpec::default()
    };
    for account in ["acct-a", "acct-b", "acct-c"] {
        desk.open_account(account, "10000", Vec::new()).await;
    }
    let status = |run: &Run| RunStatus::try_from(run.status).expect("status");

    let first = desk
        .create("a", spec("acct-a", InitiatedFrom::System))
        .await
        .expect("first");
    stack.tick().await;
    assert_eq!(status(&desk.run(&first.id).await), RunStatus::Queued);
    stack.clock.advance(chrono::Duration::seconds(10));
    let second = desk
        .create("b", spec("acct-b", InitiatedFrom::System))
        .await
        .expect("second");
    stack
        .advance_and_tick(chrono::Duration::seconds(10), 1)
        .await;
    assert_eq!(status(&desk.run(&first.id).await), RunStatus::Queued);
    assert_eq!(status(&desk.run(&second.id).await), RunStatus::Queued);

    // An API run is not held back by the gathering.
    let api = desk
        .create("c", spec("acct-c", InitiatedFrom::Api))
        .await
        .expect("api");
    stack.tick().await;
    assert_ne!(status(&desk.run(&api.id).await), RunStatus::Queued);
    assert_eq!(status(&desk.run(&first.id).await), RunStatus::Queued);

    // Quiet for 15 s: both system runs go together.
    stack
        .advance_and_tick(chrono::Duration::seconds(10), 1)
        .await;
    assert_ne!(status(&desk.run(&first.id).await), RunStatus::Queued);
    assert_ne!(status(&desk.run(&second.id).await), RunStatus::Queued);
    let orders = OrderServiceClient::new(stack.channel());
    let blocks = |run_id: String| {
        let request = firm.request(ListBlockOrdersRequest {
            run_id,
            page_size: 10,
            ..ListBlockOrdersRequest::default()
        });
        let mut orders = orders.clone();
        async move {
            orders
                .list_block_orders(request)
                .await
                .expect("blocks")
                .into_inner()
                .block_orders
        }
    };
    let gathered = blocks(first.id.clone()).await;
    assert_eq!(gathered.len(), 2, "{gathered:?}");
    assert!(
        gathered.iter().all(|b| b.account_order_count == 2),
        "{gathered:?}"
    );
    assert_eq!(blocks(second.id.clone()).await, gathered);
    let alone = blocks(api.id.clone()).await;
    assert!(
        alone.iter().all(|b| b.account_order_count == 1),
        "{alone:?}"
    );
    stack.stop().await;
}

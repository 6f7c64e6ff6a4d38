//! Sleeve investment minimums at rebalance time, across Target and
//! Execution: an account assigned when it was large enough, then lowered
//! below a sleeve's minimum, is rebalanced without opening that sleeve (its
//! weight goes pro rata to the rest of the target, its buys show as skipped
//! with the reason); a sleeve the account already holds is kept.

use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, RunType, Weight, WeightType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    CreateRunRequest, OrderSide, Position, PreviewRunRequest, Run, RunSpec, SkipReason,
    UpsertAccountRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rebalancer_tests::{Backend, TestStack};

fn weight(kind: WeightType, symbol: &str, portfolio_id: &str, percent: &str) -> Weight {
    Weight {
        r#type: kind.into(),
        symbol: symbol.to_owned(),
        portfolio_id: portfolio_id.to_owned(),
        percent: percent.to_owned(),
    }
}

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    portfolios: PortfolioServiceClient<TracedChannel>,
    assignments: AssignmentServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
}

impl Desk {
    async fn portfolio(&mut self, name: &str, weights: Vec<Weight>, minimum: &str) -> String {
        self.portfolios
            .create_portfolio(self.firm.request(CreatePortfolioRequest {
                name: name.to_owned(),
                weights,
                investment_minimum: minimum.to_owned(),
                ..CreatePortfolioRequest::default()
            }))
            .await
            .expect("portfolio")
            .into_inner()
            .portfolio
            .expect("portfolio")
            .id
    }

    async fn account(&mut self, id: &str, cash: &str, positions: Vec<Position>) {
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

    async fn assign(&mut self, account: &str, portfolio: &str) {
        self.assignments
            .assign(self.firm.request(AssignRequest {
                account_id: account.to_owned(),
                portfolio_id: portfolio.to_owned(),
                rebalancing_enabled: true,
                approval_mode: ApprovalMode::Manual.into(),
                ..AssignRequest::default()
            }))
            .await
            .expect("assign");
    }

    fn spec(account: &str) -> RunSpec {
        RunSpec {
            account_id: account.to_owned(),
            r#type: RunType::FullRebalance.into(),
            ..RunSpec::default()
        }
    }

    async fn rebalance(&mut self, account: &str) -> Run {
        self.runs
            .create_run(self.firm.request(CreateRunRequest {
                idempotency_key: format!("rebalance-{account}"),
                spec: Some(Self::spec(account)),
            }))
            .await
            .expect("run")
            .into_inner()
            .run
            .expect("run")
    }
}

fn target(run: &Run) -> Vec<(String, String)> {
    run.weights
        .iter()
        .map(|w| (w.symbol.clone(), w.percent.clone()))
        .collect()
}

fn buys(run: &Run) -> Vec<&str> {
    run.orders
        .iter()
        .filter(|o| o.side == i32::from(OrderSide::Buy))
        .map(|o| o.symbol.as_str())
        .collect()
}

#[tokio::test]
async fn a_rebalance_does_not_open_a_sleeve_below_its_minimum() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk {
        firm: stack.tenant("firm-a"),
        accounts: AccountServiceClient::new(stack.channel()),
        portfolios: PortfolioServiceClient::new(stack.channel()),
        assignments: AssignmentServiceClient::new(stack.channel()),
        runs: RunServiceClient::new(stack.channel()),
    };
    // A $10K-minimum SPY model at 20%, next to 80% TLT: $50K at least.
    let model = desk
        .portfolio(
            "SPY model",
            vec![weight(WeightType::Asset, "SPY", "", "100")],
            "10000",
        )
        .await;
    let target_id = desk
        .portfolio(
            "Core and SPY",
            vec![
                weight(WeightType::Portfolio, "", &model, "20"),
                weight(WeightType::Asset, "TLT", "", "80"),
            ],
            "0",
        )
        .await;
    for account in ["acct-lowered", "acct-large"] {
        desk.account(account, "50000", Vec::new()).await;
        desk.assign(account, &target_id).await;
    }
    // Lowered to $30K after the assignment: the sleeve would get $6K.
    desk.account("acct-lowered", "30000", Vec::new()).await;

    let preview = desk
        .runs
        .preview_run(desk.firm.request(PreviewRunRequest {
            spec: Some(Desk::spec("acct-lowered")),
        }))
        .await
        .expect("preview")
        .into_inner();
    let run = desk.rebalance("acct-lowered").await;
    assert_eq!(run.skipped_orders, preview.skipped_orders);
    assert_eq!(target(&run), [("TLT".to_owned(), "100".to_owned())]);
    assert_eq!(buys(&run), ["TLT"], "{run:?}");
    let skipped: Vec<_> = run
        .skipped_orders
        .iter()
        .filter(|s| s.reason == i32::from(SkipReason::BelowInvestmentMinimum))
        .collect();
    assert_eq!(skipped.len(), 1, "{run:?}");
    assert_eq!(skipped[0].symbol, "SPY");
    assert_eq!(skipped[0].notional, "6000.00");
    assert!(
        skipped[0]
            .detail
            .contains(&format!("sleeve {model} not opened"))
            && skipped[0]
                .detail
                .contains("below its investment minimum of 10000"),
        "{}",
        skipped[0].detail
    );

    // Large enough: the sleeve opens as usual.
    let run = desk.rebalance("acct-large").await;
    let mut opened = buys(&run);
    opened.sort_unstable();
    assert_eq!(opened, ["SPY", "TLT"], "{run:?}");
    assert!(run.skipped_orders.is_empty(), "{run:?}");

    // Already holding the sleeve (opened when the account was larger): kept.
    desk.account(
        "acct-lowered",
        "25000",
        vec![Position {
            symbol: "SPY".to_owned(),
            quantity: "1".to_owned(),
            ..Position::default()
        }],
    )
    .await;
    let held = desk
        .runs
        .preview_run(desk.firm.request(PreviewRunRequest {
            spec: Some(Desk::spec("acct-lowered")),
        }))
        .await
        .expect("preview")
        .into_inner();
    let weights: Vec<(String, String)> = held
        .weights
        .iter()
        .map(|w| (w.symbol.clone(), w.percent.clone()))
        .collect();
    assert_eq!(
        weights,
        [
            ("SPY".to_owned(), "20".to_owned()),
            ("TLT".to_owned(), "80".to_owned())
        ]
    );
    assert!(held.skipped_orders.is_empty(), "{held:?}");
    stack.stop().await;
}

//! Crypto around the clock, end to end on both backends: on a Sunday a
//! BTC/ETH/USDC/SOL portfolio (the 40/30/20/10 of the seed's blog) is
//! evaluated by the Monitor and traded by Execution in fractions to nine
//! decimals, while an account mixing stocks and crypto waits for the
//! exchange's Monday open and trades then.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, RunType, Weight};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    GetHoldingsRequest, Holdings, ListRunsRequest, Run, RunStatus, UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{
    EvaluateNowRequest, EvaluationStatus, GetCycleRequest, GetEvaluationRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};
use rust_decimal::Decimal;

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0)
        .single()
        .expect("moment")
}

struct Desk {
    firm: CallContext,
    channel: TracedChannel,
}

impl Desk {
    async fn open_account(&self, id: &str, cash: &str, weights: Vec<Weight>) {
        let portfolio = PortfolioServiceClient::new(self.channel.clone())
            .create_portfolio(self.firm.request(CreatePortfolioRequest {
                name: format!("{id} model"),
                weights,
                ..CreatePortfolioRequest::default()
            }))
            .await
            .expect("portfolio")
            .into_inner()
            .portfolio
            .expect("portfolio");
        AccountServiceClient::new(self.channel.clone())
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: cash.to_owned(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
        AssignmentServiceClient::new(self.channel.clone())
            .assign(self.firm.request(AssignRequest {
                account_id: id.to_owned(),
                portfolio_id: portfolio.id,
                rebalancing_enabled: true,
                approval_mode: ApprovalMode::Auto.into(),
                ..AssignRequest::default()
            }))
            .await
            .expect("assign");
    }

    async fn runs(&self, id: &str) -> Vec<Run> {
        RunServiceClient::new(self.channel.clone())
            .list_runs(self.firm.request(ListRunsRequest {
                account_id: id.to_owned(),
                ..ListRunsRequest::default()
            }))
            .await
            .expect("runs")
            .into_inner()
            .runs
    }

    async fn holdings(&self, id: &str) -> Holdings {
        AccountServiceClient::new(self.channel.clone())
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

async fn crypto_trades_on_a_sunday(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    // Sunday 2026-03-08, noon in New York: the exchange is closed.
    stack.clock.set(at(8, 16, 0));
    let desk = Desk {
        firm: stack.tenant("firm-a"),
        channel: stack.channel(),
    };
    desk.open_account(
        "crypto-1",
        "100000",
        vec![
            weight("BTC/USD", "40"),
            weight("ETH/USD", "30"),
            weight("USDC/USD", "20"),
            weight("SOL/USD", "10"),
        ],
    )
    .await;
    desk.open_account(
        "mixed-1",
        "50000",
        vec![
            weight("", "5"),
            weight("SPY", "50"),
            weight("BTC/USD", "45"),
        ],
    )
    .await;

    let mut monitor = MonitorServiceClient::new(desk.channel.clone());
    let cycle = monitor
        .evaluate_now(desk.firm.request(EvaluateNowRequest {
            idempotency_key: "sunday".to_owned(),
            account_ids: vec!["crypto-1".to_owned(), "mixed-1".to_owned()],
            ..EvaluateNowRequest::default()
        }))
        .await
        .expect("evaluate")
        .into_inner()
        .cycle
        .expect("cycle");
    while stack.monitor_tick().await > 0 {}
    let cycle = monitor
        .get_cycle(desk.firm.request(GetCycleRequest { cycle_id: cycle.id }))
        .await
        .expect("cycle")
        .into_inner()
        .cycle
        .expect("cycle");
    for account in ["crypto-1", "mixed-1"] {
        let evaluation = monitor
            .get_evaluation(desk.firm.request(GetEvaluationRequest {
                account_id: account.to_owned(),
                cycle_id: cycle.id.clone(),
            }))
            .await
            .expect("evaluation")
            .into_inner()
            .evaluation
            .expect("evaluation");
        assert_eq!(
            evaluation.status,
            i32::from(EvaluationStatus::OutOfTolerance),
            "{evaluation:?}"
        );
    }
    stack.advance_and_tick(Duration::seconds(30), 6).await;

    // The crypto account trades on the Sunday, to nine decimals.
    let runs = desk.runs("crypto-1").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].r#type, i32::from(RunType::FullRebalance));
    assert_eq!(
        runs[0].status,
        i32::from(RunStatus::CompletedSuccess),
        "{:?}",
        runs[0]
    );
    let holdings = desk.holdings("crypto-1").await;
    let symbols: Vec<&str> = holdings
        .positions
        .iter()
        .map(|p| p.symbol.as_str())
        .collect();
    assert_eq!(symbols.len(), 4, "{holdings:?}");
    for symbol in ["BTC/USD", "ETH/USD", "USDC/USD", "SOL/USD"] {
        assert!(symbols.contains(&symbol), "{symbol} held: {holdings:?}");
    }
    let btc = holdings
        .positions
        .iter()
        .find(|p| p.symbol == "BTC/USD")
        .map(|p| d(&p.quantity))
        .expect("BTC");
    assert!(
        btc > Decimal::ZERO && btc < Decimal::ONE,
        "a fraction of a coin: {btc}"
    );
    assert!(btc.scale() <= 9, "{btc}");
    let cash = d(&holdings.cash);
    assert!(
        cash >= Decimal::ZERO && cash < d("500"),
        "invested within half a percent: {cash}"
    );

    // Stocks and crypto together wait for the exchange: queued on Sunday.
    let mixed = desk.runs("mixed-1").await;
    assert_eq!(mixed.len(), 1, "{mixed:?}");
    assert_eq!(
        mixed[0].status,
        i32::from(RunStatus::Queued),
        "{:?}",
        mixed[0]
    );
    // Monday 2026-03-09, 09:31 in New York (daylight saving time began on Sunday).
    stack.clock.set(at(9, 13, 31));
    stack.advance_and_tick(Duration::seconds(30), 6).await;
    let mixed = desk.runs("mixed-1").await;
    assert_eq!(
        mixed[0].status,
        i32::from(RunStatus::CompletedSuccess),
        "{:?}",
        mixed[0]
    );
    let holdings = desk.holdings("mixed-1").await;
    assert_eq!(holdings.positions.len(), 2, "{holdings:?}");
    stack.stop().await;
}

#[tokio::test]
async fn crypto_trades_on_a_sunday_sqlite() {
    crypto_trades_on_a_sunday(Backend::Sqlite).await;
}

#[tokio::test]
async fn crypto_trades_on_a_sunday_postgres() {
    crypto_trades_on_a_sunday(Backend::Postgres).await;
}

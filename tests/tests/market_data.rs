//! The platform's own market data, end to end over gRPC on both backends,
//! with no simulated market under it (`--market platform`): assets loaded
//! through the asset master are priced from uploaded quotes, checked by the
//! Target service, evaluated by the Monitor and traded by Execution; bad
//! uploads are refused with field violations and change nothing; quotes
//! never go back in time; a stale quote makes the account `UNABLE_TO_CHECK`
//! with the reason.

use chrono::Duration;
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, RunType, Weight, WeightType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    Asset, GetAssetRequest, GetHoldingsRequest, GetQuotesRequest, Holdings, ListRunsRequest, Quote,
    RunStatus, UpsertAccountRequest, UpsertAssetsRequest, UpsertQuotesRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{
    EvaluateNowRequest, Evaluation, EvaluationStatus, GetCycleRequest, GetEvaluationRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, OrderSizing};
use rebalancer_server::stack::MarketChoice;
use rebalancer_tests::{Backend, StackOptions, TestStack, violated_fields};
use rust_decimal::Decimal;
use tonic::Code;

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

fn asset(symbol: &str, fractionable: bool) -> Asset {
    Asset {
        symbol: symbol.to_owned(),
        name: format!("{symbol} Holdings Inc."),
        exchange: "NASDAQ".to_owned(),
        asset_class: "us_equity".to_owned(),
        active: true,
        tradable: true,
        fractionable,
        marginable: true,
        ..Asset::default()
    }
}

fn quote(symbol: &str, last: &str, at: chrono::DateTime<chrono::Utc>) -> Quote {
    Quote {
        symbol: symbol.to_owned(),
        last: last.to_owned(),
        timestamp: Some(rebalancer_kit::wire::timestamp(at)),
        ..Quote::default()
    }
}

struct Desk {
    firm: CallContext,
    market: MarketDataServiceClient<TracedChannel>,
    accounts: AccountServiceClient<TracedChannel>,
    monitor: MonitorServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
}

impl Desk {
    async fn evaluate(&mut self, stack: &TestStack, key: &str) -> Evaluation {
        let cycle = self
            .monitor
            .evaluate_now(self.firm.request(EvaluateNowRequest {
                idempotency_key: key.to_owned(),
                account_ids: vec!["acct-1".to_owned()],
                ..EvaluateNowRequest::default()
            }))
            .await
            .expect("evaluate")
            .into_inner()
            .cycle
            .expect("cycle");
        while stack.monitor_tick().await > 0 {}
        let cycle = self
            .monitor
            .get_cycle(self.firm.request(GetCycleRequest { cycle_id: cycle.id }))
            .await
            .expect("cycle")
            .into_inner()
            .cycle
            .expect("cycle");
        self.monitor
            .get_evaluation(self.firm.request(GetEvaluationRequest {
                account_id: "acct-1".to_owned(),
                cycle_id: cycle.id,
            }))
            .await
            .expect("evaluation")
            .into_inner()
            .evaluation
            .expect("evaluation")
    }

    async fn holdings(&mut self) -> Holdings {
        self.accounts
            .get_holdings(self.firm.request(GetHoldingsRequest {
                account_id: "acct-1".to_owned(),
            }))
            .await
            .expect("holdings")
            .into_inner()
            .holdings
            .expect("holdings")
    }
}

fn quantity(holdings: &Holdings, symbol: &str) -> Decimal {
    holdings
        .positions
        .iter()
        .find(|p| p.symbol == symbol)
        .map_or(Decimal::ZERO, |p| d(&p.quantity))
}

async fn platform_assets_are_priced_evaluated_and_traded(backend: Backend) {
    let options = StackOptions {
        market: MarketChoice::Platform,
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        return;
    };
    let channel = stack.channel();
    let firm = stack.tenant("firm-a");
    let mut desk = Desk {
        firm: firm.clone(),
        market: MarketDataServiceClient::new(channel.clone()),
        accounts: AccountServiceClient::new(channel.clone()),
        monitor: MonitorServiceClient::new(channel.clone()),
        runs: RunServiceClient::new(channel.clone()),
    };
    let now = stack.clock.now();

    // A bad upload is refused whole, one violation per problem.
    let mut bad = asset("bad sym", true);
    bad.asset_class = "Equity!".to_owned();
    bad.lot_size = "0.5".to_owned();
    bad.currency = "EUR".to_owned();
    // Crypto trades around the clock and is told by its pair symbol.
    let mut crypto_without_pair = asset("DOGEUSD", true);
    crypto_without_pair.asset_class = "crypto".to_owned();
    let refused = desk
        .market
        .upsert_assets(firm.request(UpsertAssetsRequest {
            assets: vec![
                asset("ZZZZQ", true),
                bad,
                asset("ZZZZQ", true),
                asset("DOGE/USD", true),
                crypto_without_pair,
            ],
        }))
        .await
        .expect_err("bad upload");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(
        violated_fields(&refused),
        [
            "assets[1].symbol",
            "assets[1].asset_class",
            "assets[1].currency",
            "assets[1].lot_size",
            "assets[2].symbol",
            "assets[3].asset_class",
            "assets[4].asset_class"
        ],
        "{refused:?}"
    );
    let unknown = desk
        .market
        .get_asset(firm.request(GetAssetRequest {
            symbol: "ZZZZQ".to_owned(),
        }))
        .await
        .expect_err("nothing stored");
    assert_eq!(unknown.code(), Code::NotFound);

    // Two listed symbols the simulator never heard of.
    let loaded = desk
        .market
        .upsert_assets(firm.request(UpsertAssetsRequest {
            assets: vec![asset("ZZZZQ", true), asset("YYYQ", false)],
        }))
        .await
        .expect("upload")
        .into_inner();
    assert_eq!((loaded.created, loaded.updated), (2, 0));
    let yyyq = desk
        .market
        .get_asset(firm.request(GetAssetRequest {
            symbol: "YYYQ".to_owned(),
        }))
        .await
        .expect("asset")
        .into_inner()
        .asset
        .expect("asset");
    assert_eq!(
        (
            yyyq.min_increment.as_str(),
            yyyq.source.as_str(),
            yyyq.calendar.as_str()
        ),
        ("1", "platform", "XNYS")
    );

    // Quotes: only of known assets, never replaced by an older one.
    let refused = desk
        .market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![
                quote("NOPEQ", "10", now),
                Quote {
                    bid: "0".to_owned(),
                    ..quote("ZZZZQ", "", now)
                },
                quote("YYYQ", "40", now + Duration::hours(1)),
            ],
        }))
        .await
        .expect_err("bad quotes");
    assert_eq!(
        violated_fields(&refused),
        [
            "quotes[0].symbol",
            "quotes[1].last",
            "quotes[1].bid",
            "quotes[2].timestamp"
        ],
        "{refused:?}"
    );
    let stored = desk
        .market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![quote("ZZZZQ", "25", now), quote("YYYQ", "40", now)],
        }))
        .await
        .expect("quotes")
        .into_inner();
    assert_eq!(stored.stored, 2);
    let older = desk
        .market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![quote("ZZZZQ", "20", now - Duration::hours(1))],
        }))
        .await
        .expect("older quote")
        .into_inner();
    assert_eq!(older.ignored_older, ["ZZZZQ"]);

    // A portfolio of them, an account of cash, a cycle, a trade.
    let portfolio = PortfolioServiceClient::new(channel.clone())
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Platform names".to_owned(),
            order_sizing: OrderSizing::WholeShares.into(),
            weights: vec![
                Weight {
                    r#type: WeightType::Cash.into(),
                    percent: "5".to_owned(),
                    ..Weight::default()
                },
                Weight {
                    r#type: WeightType::Asset.into(),
                    symbol: "ZZZZQ".to_owned(),
                    percent: "50".to_owned(),
                    ..Weight::default()
                },
                Weight {
                    r#type: WeightType::Asset.into(),
                    symbol: "YYYQ".to_owned(),
                    percent: "45".to_owned(),
                    ..Weight::default()
                },
            ],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio of uploaded assets")
        .into_inner()
        .portfolio
        .expect("portfolio");
    desk.accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "10000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    AssignmentServiceClient::new(channel.clone())
        .assign(firm.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio.id,
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Auto.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");
    let evaluation = desk.evaluate(&stack, "day-1").await;
    assert_eq!(
        evaluation.status,
        i32::from(EvaluationStatus::OutOfTolerance),
        "{evaluation:?}"
    );
    stack.advance_and_tick(Duration::seconds(30), 4).await;
    let runs = desk
        .runs
        .list_runs(firm.request(ListRunsRequest {
            account_id: "acct-1".to_owned(),
            ..ListRunsRequest::default()
        }))
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].r#type, i32::from(RunType::FullRebalance));
    assert_eq!(
        runs[0].status,
        i32::from(RunStatus::CompletedSuccess),
        "{:?}",
        runs[0]
    );
    let holdings = desk.holdings().await;
    // $5,000 of ZZZZQ at 25 and $4,500 of YYYQ at 40 in whole shares (the
    // paper broker's slippage costs a share of ZZZZQ or not).
    let zzzzq = quantity(&holdings, "ZZZZQ");
    assert!(zzzzq == d("199") || zzzzq == d("200"), "{holdings:?}");
    assert_eq!(quantity(&holdings, "YYYQ"), d("112"), "{holdings:?}");
    assert!(d(&holdings.cash) >= Decimal::ZERO, "{holdings:?}");

    // A week later the quotes are stale: not used, and said so.
    stack.clock.advance(Duration::days(7));
    let quotes = desk
        .market
        .get_quotes(firm.request(GetQuotesRequest {
            symbols: vec!["ZZZZQ".to_owned(), "NOPEQ".to_owned()],
        }))
        .await
        .expect("quotes")
        .into_inner();
    assert!(quotes.quotes.is_empty(), "{quotes:?}");
    let reasons: Vec<(&str, &str)> = quotes
        .missing
        .iter()
        .map(|m| (m.symbol.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(reasons[1], ("NOPEQ", "not a known asset"));
    assert!(
        reasons[0].1.starts_with("stale: last quoted") && reasons[0].1.ends_with("older than 96h"),
        "{reasons:?}"
    );
    let evaluation = desk.evaluate(&stack, "day-8").await;
    assert_eq!(
        evaluation.status,
        i32::from(EvaluationStatus::UnableToCheck),
        "{evaluation:?}"
    );
    assert!(
        evaluation.reason.contains("ZZZZQ (stale: last quoted"),
        "{}",
        evaluation.reason
    );

    // Fresh prices: checked again.
    let now = stack.clock.now();
    desk.market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![quote("ZZZZQ", "25.5", now), quote("YYYQ", "40.2", now)],
        }))
        .await
        .expect("fresh quotes");
    let evaluation = desk.evaluate(&stack, "day-8-again").await;
    assert_eq!(
        evaluation.status,
        i32::from(EvaluationStatus::InsideTolerance),
        "{evaluation:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn platform_assets_are_priced_evaluated_and_traded_on_sqlite() {
    platform_assets_are_priced_evaluated_and_traded(Backend::Sqlite).await;
}

#[tokio::test]
async fn platform_assets_are_priced_evaluated_and_traded_on_postgres() {
    platform_assets_are_priced_evaluated_and_traded(Backend::Postgres).await;
}

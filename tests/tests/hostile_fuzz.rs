//! Generated hostile requests against the RPCs that take free-form input,
//! on both backends: boundary and malformed decimals, 20-decimal strings,
//! huge and odd strings, unknown enum values, bad page tokens and other
//! tenants' ids. No call may panic or answer INTERNAL/UNKNOWN, and every
//! INVALID_ARGUMENT names its fields. Prints the statuses by code.
//!
//! `FUZZ_REQUESTS=<n>` per backend (default 400; CI runs the default).
//! `FUZZ_SEED=<n>` replays a run.

use std::collections::BTreeMap;

use rebalancer_proto::common::{RebalanceCondition, Weight};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    Asset, CreateCashMovementRequest, ExecutionAlgorithm, GetCalendarRequest, LimitPrice,
    ListAccountsRequest, ListOrdersRequest, ListRunsRequest, Position, PreviewRunRequest, Quote,
    ReconcileAccountsRequest, RunSpec, UpsertAccountRequest, UpsertAssetsRequest,
    UpsertQuotesRequest,
};
use rebalancer_proto::monitor::EvaluateNowRequest;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssetTradeRule, CreatePortfolioRequest};
use rebalancer_tests::{Backend, TestStack};
use tonic::Code;
use tonic_types::StatusExt;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn decimal(&mut self) -> String {
        const DECIMALS: &[&str] = &[
            "0",
            "-0",
            "1",
            "100",
            "0.01",
            "-1",
            "1.005",
            "1e5",
            "NaN",
            "",
            " 1",
            "1,5",
            "0x10",
            "1/3",
            "١٢",
            "+5",
            ".5",
            "5.",
            "0.0000000001",
            "0.12345678901234567890",
            "99999999999999999999999",
            "7922816251426433759354395033.5",
            "79228162514264337593543950335",
            "1000000000000",
            "1000000000000.01",
            "-79228162514264337593543950335",
            "00000000000000000000000000001",
        ];
        if self.below(10) == 0 {
            return "9".repeat(1 + self.below(200));
        }
        self.pick(DECIMALS).to_owned()
    }

    fn text(&mut self) -> String {
        const TEXTS: &[&str] = &[
            "",
            "SPY",
            "spy",
            "TLT",
            "BTC/USD",
            "BRK.B",
            "A.B.C",
            "SPY ",
            " SPY",
            "💥",
            "SPY\u{0}",
            "../../etc/passwd",
            "'; DROP TABLE accounts;--",
            "acct-1",
            "acct 1",
            "Ω",
            "\u{202e}SPY",
            "ZZZZQ",
            "/",
            "a/b/c",
            "%s%n",
            "{}",
            "NULL",
        ];
        match self.below(12) {
            0 => "x".repeat(1 + self.below(100_000)),
            1 => "é".repeat(1 + self.below(200)),
            _ => self.pick(TEXTS).to_owned(),
        }
    }

    fn enum_value(&mut self) -> i32 {
        [0, 1, 2, 3, 4, 5, 999, -1, i32::MAX][self.below(9)]
    }

    fn many<T>(&mut self, most: usize, mut make: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let count = match self.below(20) {
            0 => 1 + self.below(3_000),
            _ => self.below(most + 1),
        };
        (0..count).map(|_| make(self)).collect()
    }
}

fn weight(rng: &mut Rng) -> Weight {
    Weight {
        r#type: rng.enum_value(),
        symbol: rng.text(),
        percent: rng.decimal(),
        portfolio_id: rng.text(),
    }
}

/// One generated call; its status code, or OK.
async fn call(stack: &TestStack, rng: &mut Rng) -> (&'static str, Result<(), tonic::Status>) {
    let channel = stack.channel();
    let firm = stack.tenant(if rng.below(8) == 0 {
        "firm-b"
    } else {
        "firm-a"
    });
    match rng.below(12) {
        0 => (
            "UpsertAccount",
            AccountServiceClient::new(channel)
                .upsert_account(firm.request(UpsertAccountRequest {
                    account_id: rng.text(),
                    cash: rng.decimal(),
                    positions: rng.many(4, |rng| Position {
                        symbol: rng.text(),
                        quantity: rng.decimal(),
                        average_cost: rng.decimal(),
                        ..Position::default()
                    }),
                    restrictions: rng.many(2, Rng::enum_value),
                    margin_limit: rng.decimal(),
                    r#type: rng.enum_value(),
                    status: rng.enum_value(),
                    etag: rng.text(),
                }))
                .await
                .map(drop),
        ),
        1 => (
            "CreateCashMovement",
            AccountServiceClient::new(channel)
                .create_cash_movement(firm.request(CreateCashMovementRequest {
                    idempotency_key: rng.text(),
                    account_id: rng.text(),
                    r#type: rng.enum_value(),
                    amount: rng.decimal(),
                }))
                .await
                .map(drop),
        ),
        2 => (
            "CreatePortfolio",
            PortfolioServiceClient::new(channel)
                .create_portfolio(firm.request(CreatePortfolioRequest {
                    idempotency_key: rng.text(),
                    name: rng.text(),
                    description: rng.text(),
                    weights: rng.many(5, weight),
                    rebalance_conditions: rng.many(3, |rng| RebalanceCondition {
                        r#type: rng.enum_value(),
                        sub_type: rng.enum_value(),
                        percent: rng.decimal(),
                        day: rng.text(),
                        symbol: rng.text(),
                        only_outside_bands: rng.below(2) == 0,
                    }),
                    cooldown_days: [0, 1, -1, i32::MAX][rng.below(4)],
                    scope: rng.enum_value(),
                    account_id: rng.text(),
                    order_sizing: rng.enum_value(),
                    invest_cash_threshold: rng.decimal(),
                    minimum_order_notional: rng.decimal(),
                    investment_minimum: rng.decimal(),
                    rebalance_to: rng.enum_value(),
                    rebalancing_enabled: rng.below(2) == 0,
                    approval_mode: rng.enum_value(),
                    asset_rules: rng.many(3, |rng| AssetTradeRule {
                        symbol: rng.text(),
                        minimum_order_notional: rng.decimal(),
                        minimum_drift: rng.decimal(),
                    }),
                }))
                .await
                .map(drop),
        ),
        3 => (
            "PreviewRun",
            RunServiceClient::new(channel)
                .preview_run(firm.request(PreviewRunRequest {
                    spec: Some(RunSpec {
                        account_id: if rng.below(2) == 0 {
                            "acct-1".to_owned()
                        } else {
                            rng.text()
                        },
                        r#type: rng.enum_value(),
                        weights: rng.many(4, weight),
                        amount: rng.decimal(),
                        minimum_order_notional: rng.decimal(),
                        algorithm: Some(ExecutionAlgorithm {
                            r#type: rng.enum_value(),
                            horizon: Some(rebalancer_proto::prost_types::Duration {
                                seconds: [0, 1, -5, i64::MAX, 3_600][rng.below(5)],
                                nanos: 0,
                            }),
                            randomization_percent: rng.decimal(),
                            max_participation_percent: rng.decimal(),
                            limit_prices: rng.many(2, |rng| LimitPrice {
                                symbol: rng.text(),
                                price: rng.decimal(),
                            }),
                            ..ExecutionAlgorithm::default()
                        }),
                        ..RunSpec::default()
                    }),
                }))
                .await
                .map(drop),
        ),
        4 => (
            "UpsertAssets",
            MarketDataServiceClient::new(channel)
                .upsert_assets(firm.request(UpsertAssetsRequest {
                    assets: rng.many(3, |rng| Asset {
                        symbol: rng.text(),
                        name: rng.text(),
                        exchange: rng.text(),
                        asset_class: rng.text(),
                        currency: rng.text(),
                        min_order_size: rng.decimal(),
                        lot_size: rng.decimal(),
                        average_daily_volume: rng.decimal(),
                        active: true,
                        tradable: true,
                        ..Asset::default()
                    }),
                }))
                .await
                .map(drop),
        ),
        5 => (
            "UpsertQuotes",
            MarketDataServiceClient::new(channel)
                .upsert_quotes(firm.request(UpsertQuotesRequest {
                    quotes: rng.many(3, |rng| Quote {
                        symbol: rng.text(),
                        last: rng.decimal(),
                        bid: rng.decimal(),
                        ask: rng.decimal(),
                        timestamp: Some(rebalancer_proto::prost_types::Timestamp {
                            seconds: [0, -1, 1_772_463_600, i64::MAX, 253_402_300_800]
                                [rng.below(5)],
                            nanos: [0, -1, 999_999_999][rng.below(3)],
                        }),
                    }),
                }))
                .await
                .map(drop),
        ),
        6 => {
            let mut csv = String::from("account_id,kind,symbol,quantity\n");
            for _ in 0..rng.below(6) {
                csv.push_str(&format!(
                    "{},{},{},{}\n",
                    rng.text(),
                    rng.pick(&["position", "cash", "bond", ""]),
                    rng.text(),
                    rng.decimal()
                ));
            }
            (
                "ReconcileAccounts",
                AccountServiceClient::new(channel)
                    .reconcile_accounts(firm.request(ReconcileAccountsRequest {
                        idempotency_key: format!("fuzz-{}", rng.next()),
                        statement_csv: csv,
                        source: rng.text(),
                        ..ReconcileAccountsRequest::default()
                    }))
                    .await
                    .map(drop),
            )
        }
        7 => (
            "ListRuns",
            RunServiceClient::new(channel)
                .list_runs(firm.request(ListRunsRequest {
                    page_size: [0, 1, -1, i32::MAX, 1_001][rng.below(5)],
                    page_token: rng.text(),
                    account_id: rng.text(),
                    ..ListRunsRequest::default()
                }))
                .await
                .map(drop),
        ),
        8 => (
            "ListAccounts",
            AccountServiceClient::new(channel)
                .list_accounts(firm.request(ListAccountsRequest {
                    page_size: [0, 1, -1, i32::MAX][rng.below(4)],
                    page_token: rng.text(),
                    ..ListAccountsRequest::default()
                }))
                .await
                .map(drop),
        ),
        9 => (
            "EvaluateNow",
            MonitorServiceClient::new(channel)
                .evaluate_now(firm.request(EvaluateNowRequest {
                    idempotency_key: rng.text(),
                    portfolio_id: rng.text(),
                    account_ids: rng.many(3, Rng::text),
                    dry_run: true,
                }))
                .await
                .map(drop),
        ),
        10 => (
            "ListOrders",
            OrderServiceClient::new(channel)
                .list_orders(firm.request(ListOrdersRequest {
                    page_size: [0, 1, -1][rng.below(3)],
                    page_token: rng.text(),
                    account_id: rng.text(),
                    run_id: rng.text(),
                    block_order_id: rng.text(),
                    status: rng.enum_value(),
                }))
                .await
                .map(drop),
        ),
        _ => (
            "GetCalendar",
            MarketDataServiceClient::new(channel)
                .get_calendar(
                    firm.request(GetCalendarRequest {
                        start_date: rng
                            .pick(&["2025-01-06", "", "2025-13-01", "99999-01-01", "x"])
                            .to_owned(),
                        end_date: rng
                            .pick(&["2025-01-10", "", "1900-01-01", "2100-12-31"])
                            .to_owned(),
                        calendar: rng
                            .pick(&["", "XNYS", "CRYPTO", "LSE", "crypto"])
                            .to_owned(),
                    }),
                )
                .await
                .map(drop),
        ),
    }
}

async fn hostile_requests(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    AccountServiceClient::new(stack.channel())
        .upsert_account(stack.tenant("firm-a").request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "10000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let requests: usize = std::env::var("FUZZ_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_261_129);
    let mut rng = Rng(seed);
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for index in 0..requests {
        let (rpc, answer) = call(&stack, &mut rng).await;
        let code = match &answer {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        };
        *by_code.entry(format!("{code:?}")).or_default() += 1;
        if let Err(status) = &answer {
            let bad = matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::Cancelled | Code::DataLoss
            );
            let imprecise = status.code() == Code::InvalidArgument
                && status
                    .get_error_details()
                    .bad_request()
                    .is_none_or(|b| b.field_violations.is_empty());
            if bad || imprecise {
                failures.push(format!(
                    "#{index} {rpc}: {:?} {}",
                    status.code(),
                    status.message().chars().take(200).collect::<String>()
                ));
            }
        }
    }
    eprintln!("hostile_fuzz {backend:?}: {requests} requests (seed {seed}), by code {by_code:?}");
    assert!(
        failures.is_empty(),
        "{} bad answers: {failures:#?}",
        failures.len()
    );
    stack.stop().await;
}

#[tokio::test]
async fn hostile_requests_never_reach_internal_sqlite() {
    hostile_requests(Backend::Sqlite).await;
}

#[tokio::test]
async fn hostile_requests_never_reach_internal_postgres() {
    hostile_requests(Backend::Postgres).await;
}

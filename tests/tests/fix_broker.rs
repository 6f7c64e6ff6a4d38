//! The FIX adapter in the whole system, against QuickFIX as the broker
//! (`tests/fix/fix_acceptor.py`), on both backends: a run's orders go out as
//! NewOrderSingles, a symbol the broker rejects ends its order REJECTED with
//! the broker's text, a fill over two reports is booked and allocated once,
//! and an execution for an order nobody sent is raised as a break
//! (`ListBrokerBreaks`), never booked. The kill -9 case is in
//! `fault_restart.rs`.

use std::time::Duration as WallDuration;

use chrono::Duration;
use rebalancer_execution::broker::BrokerConfig;
use rebalancer_execution::broker::fix::config::FixConfig;
use rebalancer_proto::common::{ApprovalMode, RunType, Weight, WeightType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    BrokerBreakKind, CreateRunRequest, GetHoldingsRequest, GetQuotesRequest, GetRunRequest,
    ListBrokerBreaksRequest, ListFillsRequest, OrderStatus, RunSpec, UpsertAccountRequest,
};
use rebalancer_tests::fix_acceptor::{self, Acceptor};
use rebalancer_tests::{Backend, StackOptions, TestStack};
use rust_decimal::Decimal;

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

fn weight(symbol: &str, percent: &str) -> Weight {
    Weight {
        r#type: if symbol.is_empty() {
            WeightType::Cash
        } else {
            WeightType::Asset
        }
        .into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

async fn orders_through_fix(backend: Backend) {
    if !fix_acceptor::quickfix_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = FixConfig::load(&fix_acceptor::config_file(dir.path(), port)).expect("config");
    let Some(stack) = TestStack::start_with(
        backend,
        StackOptions {
            broker: BrokerConfig::Fix(Box::new(config)),
            ..StackOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let channel = stack.channel();
    let quotes = MarketDataServiceClient::new(channel.clone())
        .get_quotes(firm.request(GetQuotesRequest {
            symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
        }))
        .await
        .expect("quotes")
        .into_inner()
        .quotes;
    let prices: serde_json::Map<String, serde_json::Value> = quotes
        .iter()
        .map(|q| (q.symbol.clone(), serde_json::Value::String(q.last.clone())))
        .collect();
    let prices_file = dir.path().join("prices.json");
    std::fs::write(&prices_file, serde_json::Value::Object(prices).to_string()).expect("prices");
    let acceptor = Acceptor::start(
        port,
        dir.path(),
        &[
            "--prices",
            &prices_file.display().to_string(),
            "--reject-symbols",
            "TLT",
            "--partial-fills",
            "2",
            "--qty-decimals",
            "9",
            "--cash-qty-decimals",
            "9",
            "--stray-fill-after-orders",
            "1",
            "--fill-delay-ms",
            "5",
        ],
    );

    let mut accounts = AccountServiceClient::new(channel.clone());
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "100000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let mut runs = RunServiceClient::new(channel.clone());
    let run = runs
        .create_run(firm.request(CreateRunRequest {
            idempotency_key: "fix-run-1".to_owned(),
            spec: Some(RunSpec {
                account_id: "acct-1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                weights: vec![weight("", "10"), weight("SPY", "45"), weight("TLT", "45")],
                approval_mode: ApprovalMode::Auto.into(),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("run");

    // The session logs on in the background; a slice sent before it is up
    // is retried when its lease ends.
    let mut finished = None;
    for _ in 0..40 {
        stack.advance_and_tick(Duration::seconds(30), 1).await;
        let now = runs
            .get_run(firm.request(GetRunRequest {
                run_id: run.id.clone(),
            }))
            .await
            .expect("get run")
            .into_inner()
            .run
            .expect("run");
        if now.orders.iter().all(|o| {
            !matches!(
                OrderStatus::try_from(o.status),
                Ok(OrderStatus::New | OrderStatus::Submitted | OrderStatus::PartiallyFilled)
            )
        }) {
            finished = Some(now);
            break;
        }
        tokio::time::sleep(WallDuration::from_millis(50)).await;
    }
    let run = finished.expect("the run's orders end");
    let spy = run.orders.iter().find(|o| o.symbol == "SPY").expect("SPY");
    let tlt = run.orders.iter().find(|o| o.symbol == "TLT").expect("TLT");
    assert_eq!(spy.status, i32::from(OrderStatus::Filled), "{spy:?}");
    assert_eq!(tlt.status, i32::from(OrderStatus::Rejected), "{tlt:?}");
    assert!(
        tlt.reason.contains("TLT rejected by test broker"),
        "the broker's text: {tlt:?}"
    );

    // Two reports, booked once each, and the account moved by them alone.
    let mut orders = OrderServiceClient::new(channel.clone());
    let fills = orders
        .list_fills(firm.request(ListFillsRequest {
            block_order_id: spy.block_order_id.clone(),
            ..ListFillsRequest::default()
        }))
        .await
        .expect("fills")
        .into_inner()
        .fills;
    let records = acceptor.records();
    let broker_fills: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "fill").collect();
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!(broker_fills.len(), 2, "{broker_fills:?}");
    let mut spent = Decimal::ZERO;
    let mut shares = Decimal::ZERO;
    for fill in &fills {
        assert!(
            broker_fills
                .iter()
                .any(|b| b["exec_id"] == fill.id.as_str()),
            "{fill:?} is one of the broker's"
        );
        spent += d(&fill.quantity) * d(&fill.price);
        shares += d(&fill.quantity);
    }
    let holdings = accounts
        .get_holdings(firm.request(GetHoldingsRequest {
            account_id: "acct-1".to_owned(),
        }))
        .await
        .expect("holdings")
        .into_inner()
        .holdings
        .expect("holdings");
    let held: Decimal = holdings
        .positions
        .iter()
        .filter(|p| p.symbol == "SPY")
        .map(|p| d(&p.quantity))
        .sum();
    assert_eq!(held, shares);
    assert_eq!(d(&holdings.cash), (d("100000") - spent).round_dp(2));
    assert!(holdings.positions.iter().all(|p| p.symbol != "TLT"));

    // The stray fill: a break, not a booking.
    let breaks = orders
        .list_broker_breaks(firm.request(ListBrokerBreaksRequest::default()))
        .await
        .expect("breaks")
        .into_inner()
        .breaks;
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!(breaks[0].kind, i32::from(BrokerBreakKind::UnknownOrder));
    assert_eq!(breaks[0].client_order_id, "STRAY-1");
    let stray = records
        .iter()
        .find(|r| r["event"] == "stray_fill")
        .expect("stray fill sent");
    assert_eq!(stray["exec_id"], breaks[0].id.as_str());
    drop(acceptor);
    stack.stop().await;
}

#[tokio::test]
async fn orders_through_fix_sqlite() {
    orders_through_fix(Backend::Sqlite).await;
}

#[tokio::test]
async fn orders_through_fix_postgres() {
    orders_through_fix(Backend::Postgres).await;
}

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
use rebalancer_execution::broker::brokers::TradingMode;
use rebalancer_execution::broker::fix::config::FixConfig;
use rebalancer_proto::client::CallContext;
use rebalancer_proto::common::{ApprovalMode, RunType, Weight};
use rebalancer_proto::execution::TradingMode as ProtoTradingMode;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    BrokerBreakKind, CreateRunRequest, GetBlockOrderRequest, GetHoldingsRequest, GetQuotesRequest,
    GetRunRequest, GetTradingModeRequest, ListBrokerBreaksRequest, ListFillsRequest, OrderStatus,
    Run, RunSpec, RunStatus, SetTradingModeRequest, UpsertAccountRequest,
};
use rebalancer_tests::fix_acceptor::{self, Acceptor};
use rebalancer_tests::process::free_port;
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, StackOptions, TestStack, violated_fields};
use rust_decimal::Decimal;

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

/// Creates an auto-approved full rebalance to `weights` and ticks until its
/// orders end.
async fn run_to_end(
    stack: &TestStack,
    firm: &CallContext,
    account: &str,
    key: &str,
    weights: Vec<Weight>,
) -> Run {
    let mut runs = RunServiceClient::new(stack.channel());
    let run = runs
        .create_run(firm.request(CreateRunRequest {
            idempotency_key: key.to_owned(),
            spec: Some(RunSpec {
                account_id: account.to_owned(),
                r#type: RunType::FullRebalance.into(),
                weights,
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
        let ended = now.orders.iter().all(|o| {
            !matches!(
                OrderStatus::try_from(o.status),
                Ok(OrderStatus::New | OrderStatus::Submitted | OrderStatus::PartiallyFilled)
            )
        });
        if ended
            && RunStatus::try_from(now.status).is_ok_and(|s| {
                !matches!(
                    s,
                    RunStatus::Proposed | RunStatus::Queued | RunStatus::InProgress
                )
            })
        {
            return now;
        }
        tokio::time::sleep(WallDuration::from_millis(50)).await;
    }
    panic!("run {} did not end", run.id);
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
            broker: BrokerConfig::Fix {
                config: Box::new(config),
                default_mode: TradingMode::Live,
            },
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
    let run = run_to_end(
        &stack,
        &firm,
        "acct-1",
        "fix-run-1",
        vec![weight("", "10"), weight("SPY", "45"), weight("TLT", "45")],
    )
    .await;
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
    assert_eq!(run.broker, "fix");
    let block = orders
        .get_block_order(firm.request(GetBlockOrderRequest {
            block_order_id: spy.block_order_id.clone(),
        }))
        .await
        .expect("block")
        .into_inner()
        .block_order
        .expect("block");
    assert_eq!(block.broker, "fix");

    // Paper before live: another firm trades paper, then switches.
    let other = stack.tenant("firm-b");
    let state = orders
        .get_trading_mode(other.request(GetTradingModeRequest {}))
        .await
        .expect("mode")
        .into_inner()
        .state
        .expect("state");
    assert_eq!(
        (
            state.mode,
            state.broker.as_str(),
            state.live_broker.as_str(),
            state.chosen
        ),
        (i32::from(ProtoTradingMode::Live), "fix", "fix", false)
    );
    let unspecified = orders
        .set_trading_mode(other.request(SetTradingModeRequest::default()))
        .await
        .expect_err("no mode");
    assert_eq!(violated_fields(&unspecified), ["mode"]);
    let state = orders
        .set_trading_mode(
            CallContext {
                actor: Some("ops@firm-b".to_owned()),
                ..other.clone()
            }
            .request(SetTradingModeRequest {
                mode: ProtoTradingMode::Paper.into(),
            }),
        )
        .await
        .expect("paper")
        .into_inner()
        .state
        .expect("state");
    assert_eq!((state.broker.as_str(), state.chosen), ("paper", true));
    assert_eq!(state.changed_by, "ops@firm-b");
    accounts
        .upsert_account(other.request(UpsertAccountRequest {
            account_id: "acct-b".to_owned(),
            cash: "20000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let paper_run = run_to_end(
        &stack,
        &other,
        "acct-b",
        "b-1",
        vec![weight("", "50"), weight("SPY", "50")],
    )
    .await;
    assert_eq!(
        paper_run.status,
        i32::from(RunStatus::CompletedSuccess),
        "{paper_run:?}"
    );
    assert_eq!(paper_run.broker, "paper");
    let sent: Vec<String> = acceptor
        .records()
        .iter()
        .filter(|r| r["msg_type"] == "D")
        .map(|r| r["cl_ord_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let paper_block = &paper_run.orders[0].block_order_id;
    assert!(
        !sent.iter().any(|id| id.starts_with(paper_block.as_str())),
        "paper orders never reach the live broker: {sent:?}"
    );
    orders
        .set_trading_mode(other.request(SetTradingModeRequest {
            mode: ProtoTradingMode::Live.into(),
        }))
        .await
        .expect("live");
    let live_run = run_to_end(
        &stack,
        &other,
        "acct-b",
        "b-2",
        vec![weight("", "20"), weight("SPY", "80")],
    )
    .await;
    assert_eq!(
        live_run.status,
        i32::from(RunStatus::CompletedSuccess),
        "{live_run:?}"
    );
    assert_eq!(live_run.broker, "fix");
    let live_block = &live_run.orders[0].block_order_id;
    assert!(
        acceptor.records().iter().any(|r| r["msg_type"] == "D"
            && r["cl_ord_id"]
                .as_str()
                .is_some_and(|id| id.starts_with(live_block.as_str()))),
        "after the switch its orders go to the live broker"
    );
    drop(acceptor);
    stack.stop().await;
}

/// Without a live broker every tenant trades paper and cannot switch.
async fn paper_only_service_refuses_live(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut orders = OrderServiceClient::new(stack.channel());
    let state = orders
        .get_trading_mode(firm.request(GetTradingModeRequest {}))
        .await
        .expect("mode")
        .into_inner()
        .state
        .expect("state");
    assert_eq!(
        (
            state.mode,
            state.broker.as_str(),
            state.live_broker.as_str()
        ),
        (i32::from(ProtoTradingMode::Paper), "paper", "")
    );
    let refused = orders
        .set_trading_mode(firm.request(SetTradingModeRequest {
            mode: ProtoTradingMode::Live.into(),
        }))
        .await
        .expect_err("no live broker");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let state = orders
        .get_trading_mode(firm.request(GetTradingModeRequest {}))
        .await
        .expect("mode")
        .into_inner()
        .state
        .expect("state");
    assert!(!state.chosen, "nothing stored: {state:?}");
    stack.stop().await;
}

#[tokio::test]
async fn paper_only_service_refuses_live_sqlite() {
    paper_only_service_refuses_live(Backend::Sqlite).await;
}

#[tokio::test]
async fn paper_only_service_refuses_live_postgres() {
    paper_only_service_refuses_live(Backend::Postgres).await;
}

#[tokio::test]
async fn orders_through_fix_sqlite() {
    orders_through_fix(Backend::Sqlite).await;
}

#[tokio::test]
async fn orders_through_fix_postgres() {
    orders_through_fix(Backend::Postgres).await;
}

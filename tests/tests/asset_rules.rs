//! Per-asset trading rules of a portfolio end to end, on both backends: a
//! minimum drift leaves an asset close to its target alone, an asset's own
//! minimum order refuses a smaller buy, both visible in the preview with
//! their reasons; the rules are versioned with the portfolio, read back, and
//! a rule for an asset the portfolio lacks is refused naming the field.

use std::str::FromStr;

use rebalancer_proto::common::RunType;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    Position, PreviewRunRequest, RunSpec, SkipReason, UpsertAccountRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssetTradeRule, AssignRequest, CreatePortfolioRequest, Portfolio, UpdatePortfolioRequest,
};
use rebalancer_tests::{Backend, TestStack, weight};
use rust_decimal::Decimal;
use tonic::Code;
use tonic_types::StatusExt;

fn rule(symbol: &str, minimum_order_notional: &str, minimum_drift: &str) -> AssetTradeRule {
    AssetTradeRule {
        symbol: symbol.to_owned(),
        minimum_order_notional: minimum_order_notional.to_owned(),
        minimum_drift: minimum_drift.to_owned(),
    }
}

async fn asset_rules_shape_the_plan(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut accounts = AccountServiceClient::new(stack.channel());
    let mut runs = RunServiceClient::new(stack.channel());
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let created = portfolios
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Rules".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            asset_rules: vec![rule("SPY", "", "3"), rule("TLT", "6000", "")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(
        created.asset_rules,
        vec![rule("SPY", "", "3"), rule("TLT", "6000.00", "")]
    );
    // Worth $100,000 at today's prices: SPY 62%, TLT 28%, cash 10%.
    let quotes =
        rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient::new(
            stack.channel(),
        )
        .get_quotes(firm.request(rebalancer_proto::execution::GetQuotesRequest {
            symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
        }))
        .await
        .expect("quotes")
        .into_inner()
        .quotes;
    let price = |symbol: &str| {
        quotes
            .iter()
            .find(|q| q.symbol == symbol)
            .map(|q| Decimal::from_str(&q.last).expect("price"))
            .expect("quote")
    };
    let shares = |symbol: &str, dollars: i64| {
        (Decimal::from(dollars) / price(symbol))
            .round_dp(6)
            .to_string()
    };
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-r".to_owned(),
            cash: "10000".to_owned(),
            positions: vec![
                Position {
                    symbol: "SPY".to_owned(),
                    quantity: shares("SPY", 62_000),
                    ..Position::default()
                },
                Position {
                    symbol: "TLT".to_owned(),
                    quantity: shares("TLT", 28_000),
                    ..Position::default()
                },
            ],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    assignments
        .assign(firm.request(AssignRequest {
            account_id: "acct-r".to_owned(),
            portfolio_id: created.id.clone(),
            rebalancing_enabled: true,
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");
    let preview = runs
        .preview_run(firm.request(PreviewRunRequest {
            spec: Some(RunSpec {
                account_id: "acct-r".to_owned(),
                r#type: RunType::FullRebalance.into(),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect("preview")
        .into_inner();
    // SPY is 2 points over, within its 3: not sold. TLT wants $7,000 but
    // only the $5,000 of cash above target pays: under its $6,000 minimum.
    assert!(preview.orders.is_empty(), "{preview:?}");
    let reason = |symbol: &str| {
        preview
            .skipped_orders
            .iter()
            .find(|s| s.symbol == symbol)
            .unwrap_or_else(|| panic!("{symbol} skipped: {preview:?}"))
    };
    assert_eq!(
        reason("SPY").reason,
        i32::from(SkipReason::BelowMinimumDrift)
    );
    assert!(reason("SPY").detail.contains("minimum drift of 3"));
    assert!(
        reason("TLT").detail.contains("minimum order of $6000"),
        "{:?}",
        reason("TLT")
    );

    // A rule for an asset the portfolio does not hold is refused.
    let refused = portfolios
        .update_portfolio(firm.request(UpdatePortfolioRequest {
            portfolio: Some(Portfolio {
                id: created.id.clone(),
                etag: created.etag.clone(),
                asset_rules: vec![rule("QQQ", "100", "")],
                ..Portfolio::default()
            }),
            update_mask: None,
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
    assert_eq!(fields, ["portfolio.asset_rules[0].symbol"]);
    stack.stop().await;
}

#[tokio::test]
async fn asset_rules_shape_the_plan_sqlite() {
    asset_rules_shape_the_plan(Backend::Sqlite).await;
}

#[tokio::test]
async fn asset_rules_shape_the_plan_postgres() {
    asset_rules_shape_the_plan(Backend::Postgres).await;
}

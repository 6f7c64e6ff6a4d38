//! An account's trading preferences end to end, on both backends: a
//! buy-restricted symbol is never bought (the preview says why), a
//! substitute is held in its model asset's slot, a cash reserve stays in
//! cash; the monitor measures the account against its own target, so it is
//! inside tolerance once traded; bad preferences are refused field by field
//! and change nothing.

use std::str::FromStr;

use chrono::{Duration, TimeZone, Utc};
use rebalancer_kit::Clock;
use rebalancer_proto::common::{
    ApprovalMode, ConditionSubType, ConditionType, RebalanceCondition, RunType,
};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    GetAccountRequest, ListRunsRequest, OrderSide, PreviewRunRequest, RestrictedSymbol, RunSpec,
    RunStatus, SetTradingPreferencesRequest, SkipReason, Substitute, TradingPreferences,
    UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{EvaluationStatus, GetEvaluationRequest};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rebalancer_tests::{Backend, TestStack, weight};
use rust_decimal::Decimal;
use tonic::Code;
use tonic_types::StatusExt;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?}"))
}

fn preferences() -> TradingPreferences {
    TradingPreferences {
        restricted_symbols: vec![RestrictedSymbol {
            symbol: "TLT".to_owned(),
            no_buy: true,
            no_sell: false,
            reason: "held at another custodian".to_owned(),
        }],
        substitutes: vec![Substitute {
            model_symbol: "SPY".to_owned(),
            held_symbol: "VOO".to_owned(),
        }],
        cash_reserve_amount: "10000".to_owned(),
        cash_reserve_percent: String::new(),
    }
}

async fn preferences_are_honoured(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut accounts = AccountServiceClient::new(stack.channel());
    let mut runs = RunServiceClient::new(stack.channel());
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let mut monitor = MonitorServiceClient::new(stack.channel());

    let core = portfolios
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Core".to_owned(),
            weights: vec![
                weight("", "5"),
                weight("SPY", "40"),
                weight("TLT", "30"),
                weight("AGG", "25"),
            ],
            rebalance_conditions: vec![RebalanceCondition {
                r#type: ConditionType::DriftBand.into(),
                sub_type: ConditionSubType::Absolute.into(),
                percent: "5".to_owned(),
                ..RebalanceCondition::default()
            }],
            invest_cash_threshold: "500".to_owned(),
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-p".to_owned(),
            cash: "100000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let set = accounts
        .set_trading_preferences(firm.request(SetTradingPreferencesRequest {
            account_id: "acct-p".to_owned(),
            preferences: Some(preferences()),
            etag: String::new(),
        }))
        .await
        .expect("preferences")
        .into_inner()
        .account
        .expect("account");
    let stored = set.preferences.clone().expect("preferences");
    assert_eq!(stored.restricted_symbols[0].symbol, "TLT");
    assert_eq!(stored.substitutes[0].held_symbol, "VOO");
    assert_eq!(stored.cash_reserve_amount, "10000.00");
    // Repeating the same set is harmless.
    accounts
        .set_trading_preferences(firm.request(SetTradingPreferencesRequest {
            account_id: "acct-p".to_owned(),
            preferences: Some(preferences()),
            etag: String::new(),
        }))
        .await
        .expect("repeat");
    assignments
        .assign(firm.request(AssignRequest {
            account_id: "acct-p".to_owned(),
            portfolio_id: core.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Auto.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    // The preview: VOO in SPY's slot, no TLT bought (and why), the reserve kept.
    let preview = runs
        .preview_run(firm.request(PreviewRunRequest {
            spec: Some(RunSpec {
                account_id: "acct-p".to_owned(),
                r#type: RunType::FullRebalance.into(),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect("preview")
        .into_inner();
    let bought: Vec<&str> = preview
        .orders
        .iter()
        .filter(|o| o.side == i32::from(OrderSide::Buy))
        .map(|o| o.symbol.as_str())
        .collect();
    assert!(bought.contains(&"VOO"), "{preview:?}");
    assert!(bought.contains(&"AGG"), "{preview:?}");
    assert!(
        !bought.contains(&"SPY") && !bought.contains(&"TLT"),
        "{preview:?}"
    );
    let tlt = preview
        .skipped_orders
        .iter()
        .find(|s| s.symbol == "TLT")
        .expect("TLT refused");
    assert_eq!(tlt.reason, i32::from(SkipReason::Restricted));
    assert!(tlt.detail.contains("restricted from buying"), "{tlt:?}");
    assert!(d(&preview.cash_after) >= d("10000"), "{preview:?}");

    // The daily cycle opens the run; the worker trades it.
    let at = Utc
        .with_ymd_and_hms(2026, 3, 2, 15, 30, 0)
        .single()
        .expect("valid");
    stack.clock.advance(at - stack.clock.now());
    stack.monitor_tick().await;
    for _ in 0..120 {
        let listed = runs
            .list_runs(firm.request(ListRunsRequest {
                account_id: "acct-p".to_owned(),
                page_size: 10,
                ..ListRunsRequest::default()
            }))
            .await
            .expect("runs")
            .into_inner()
            .runs;
        assert_eq!(listed.len(), 1, "{listed:?}");
        if listed[0].status == i32::from(RunStatus::CompletedSuccess)
            || listed[0].status == i32::from(RunStatus::CompletedAdjusted)
        {
            break;
        }
        stack.advance_and_tick(Duration::seconds(5), 1).await;
    }
    let account = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "acct-p".to_owned(),
        }))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    let held: Vec<&str> = account
        .positions
        .iter()
        .map(|p| p.symbol.as_str())
        .collect();
    assert!(
        held.contains(&"VOO") && held.contains(&"AGG"),
        "{account:?}"
    );
    assert!(
        !held.contains(&"SPY") && !held.contains(&"TLT"),
        "{account:?}"
    );
    assert!(d(&account.cash) >= d("10000"), "{account:?}");

    // The next day the monitor finds it on its own target: inside tolerance.
    stack.clock.advance(Duration::days(1));
    stack.monitor_tick().await;
    let evaluation = monitor
        .get_evaluation(firm.request(GetEvaluationRequest {
            account_id: "acct-p".to_owned(),
            cycle_id: String::new(),
        }))
        .await
        .expect("evaluation")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_eq!(
        evaluation.status,
        i32::from(EvaluationStatus::InsideTolerance),
        "{evaluation:?}"
    );
    assert!(evaluation.tickers.iter().any(|t| t.symbol == "VOO"));

    // Bad preferences: every problem named, nothing changed.
    let refused = accounts
        .set_trading_preferences(firm.request(SetTradingPreferencesRequest {
            account_id: "acct-p".to_owned(),
            preferences: Some(TradingPreferences {
                restricted_symbols: vec![RestrictedSymbol {
                    symbol: "not a symbol".to_owned(),
                    ..RestrictedSymbol::default()
                }],
                substitutes: vec![Substitute {
                    model_symbol: "SPY".to_owned(),
                    held_symbol: "SPY".to_owned(),
                }],
                cash_reserve_amount: "5".to_owned(),
                cash_reserve_percent: "5".to_owned(),
            }),
            etag: "r1".to_owned(),
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
        [
            "preferences.restricted_symbols[0].symbol",
            "preferences.substitutes[0].held_symbol",
            "preferences.cash_reserve_percent",
        ]
    );
    let unchanged = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "acct-p".to_owned(),
        }))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(unchanged.preferences, Some(stored));
    // A stale etag is refused as such.
    let stale = accounts
        .set_trading_preferences(firm.request(SetTradingPreferencesRequest {
            account_id: "acct-p".to_owned(),
            preferences: Some(TradingPreferences::default()),
            etag: "r1".to_owned(),
        }))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    stack.stop().await;
}

#[tokio::test]
async fn preferences_are_honoured_sqlite() {
    preferences_are_honoured(Backend::Sqlite).await;
}

#[tokio::test]
async fn preferences_are_honoured_postgres() {
    preferences_are_honoured(Backend::Postgres).await;
}

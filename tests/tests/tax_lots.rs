//! Tax lots end to end, on both backends, against prices the platform
//! uploads (SPY at $500, TLT at $100): an account transferred in with three
//! SPY lots (a long-term gain, a short-term gain, a loss) is previewed under
//! each lot method, and each sells the lots the method says with the gains
//! a hand calculation gives to the cent; a $1,000 gain budget stops the
//! plan at $1,000 and says what it left; the run executes, and the fills
//! close exactly those lots, open a lot for the buy, and book the realized
//! gain; bad settings and lots are refused field by field and change
//! nothing.

use chrono::{DateTime, Duration, Utc};
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{RunType, Weight};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    Account, AdjustRunRequest, ApplySplitRequest, ApproveRunRequest, CreateRunRequest,
    GetAccountRequest, GetHoldingsRequest, HoldingTerm, LotMethod, OrderAdjustment, OrderSide,
    Position, PreviewRunRequest, PreviewRunResponse, Run, RunSpec, RunStatus,
    SetTaxSettingsRequest, SkipReason, TaxLot, TaxSettings, TaxStatus, UpsertAccountRequest,
    UpsertAssetsRequest, UpsertQuotesRequest,
};
use rebalancer_server::stack::MarketChoice;
use rebalancer_tests::market::{listed_asset, quote, tick_until_ended};
use rebalancer_tests::{Backend, StackOptions, TestStack, violated_fields, weight};
use rust_decimal::Decimal;
use tonic::Code;

fn d(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|_| panic!("decimal {text:?}"))
}

fn lot(id: &str, quantity: &str, basis: &str, acquired: DateTime<Utc>) -> TaxLot {
    TaxLot {
        id: id.to_owned(),
        quantity: quantity.to_owned(),
        cost_basis: basis.to_owned(),
        acquired_on: acquired.date_naive().to_string(),
        ..TaxLot::default()
    }
}

/// 30 SPY in three lots: 10 bought at $300 two years ago (a long-term
/// gain at $500), 10 at $450 sixty days ago (short-term gain), 10 at $550
/// two hundred days ago (short-term loss).
fn spy_lots(now: DateTime<Utc>) -> Vec<TaxLot> {
    vec![
        lot("long-gain", "10", "3000", now - Duration::days(730)),
        lot("short-gain", "10", "4500", now - Duration::days(60)),
        lot("loss", "10", "5500", now - Duration::days(200)),
    ]
}

fn spec(account: &str, weights: Vec<Weight>) -> RunSpec {
    RunSpec {
        account_id: account.to_owned(),
        r#type: RunType::FullRebalance.into(),
        weights,
        approval_mode: rebalancer_proto::common::ApprovalMode::Auto.into(),
        ..RunSpec::default()
    }
}

/// Lots closed by the one SPY sale: (lot, quantity, gain).
fn closed(preview: &PreviewRunResponse) -> Vec<(String, Decimal, Decimal)> {
    let sell = preview
        .orders
        .iter()
        .find(|o| o.symbol == "SPY" && o.side == i32::from(OrderSide::Sell))
        .unwrap_or_else(|| panic!("an SPY sale: {preview:?}"));
    sell.tax_lots
        .iter()
        .map(|l| (l.lot_id.clone(), d(&l.quantity), d(&l.gain)))
        .collect()
}

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
}

impl Desk {
    async fn open(&mut self, id: &str, now: DateTime<Utc>, method: LotMethod, budget: &str) {
        self.accounts
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: "0".to_owned(),
                positions: vec![Position {
                    symbol: "SPY".to_owned(),
                    quantity: "30".to_owned(),
                    lots: spy_lots(now),
                    ..Position::default()
                }],
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account with lots");
        self.accounts
            .set_tax_settings(self.firm.request(SetTaxSettingsRequest {
                account_id: id.to_owned(),
                tax_settings: Some(TaxSettings {
                    status: TaxStatus::Taxable.into(),
                    lot_method: method.into(),
                    run_gain_budget: budget.to_owned(),
                    ..TaxSettings::default()
                }),
                etag: String::new(),
            }))
            .await
            .expect("tax settings");
    }

    async fn preview(&mut self, spec: RunSpec) -> PreviewRunResponse {
        self.runs
            .preview_run(self.firm.request(PreviewRunRequest { spec: Some(spec) }))
            .await
            .expect("preview")
            .into_inner()
    }

    async fn account(&mut self, id: &str) -> Account {
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
}

async fn lots_drive_gains_budgets_and_bookings(backend: Backend) {
    let options = StackOptions {
        market: MarketChoice::Platform,
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        return;
    };
    let channel = stack.channel();
    let firm = stack.tenant("firm-a");
    let now = stack.clock.now();
    let mut market = MarketDataServiceClient::new(channel.clone());
    market
        .upsert_assets(firm.request(UpsertAssetsRequest {
            assets: vec![listed_asset("SPY", false), listed_asset("TLT", false)],
        }))
        .await
        .expect("assets");
    market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![quote("SPY", "500", now), quote("TLT", "100", now)],
        }))
        .await
        .expect("quotes");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(channel.clone()),
        runs: RunServiceClient::new(channel.clone()),
    };

    // Half in cash sells 15 of the 30 shares; each method picks its lots.
    let half = || vec![weight("", "50"), weight("SPY", "50")];
    type Case = (
        LotMethod,
        &'static str,
        Vec<(&'static str, &'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        // Oldest first: 10 × (500 − 300) long; 5 × (500 − 550) short.
        (
            LotMethod::Fifo,
            "fifo",
            vec![("long-gain", "10", "2000.00"), ("loss", "5", "-250.00")],
            "-250.00",
            "2000.00",
        ),
        // Newest first: 10 × (500 − 450); 5 × (500 − 550).
        (
            LotMethod::Lifo,
            "lifo",
            vec![("short-gain", "10", "500.00"), ("loss", "5", "-250.00")],
            "250.00",
            "0.00",
        ),
        // Dearest first: 10 × −50; 5 × +50.
        (
            LotMethod::Hifo,
            "hifo",
            vec![("loss", "10", "-500.00"), ("short-gain", "5", "250.00")],
            "-250.00",
            "0.00",
        ),
        // Losses, then long-term gains: 10 × −50; 5 × +200.
        (
            LotMethod::MinimumTax,
            "mintax",
            vec![("loss", "10", "-500.00"), ("long-gain", "5", "1000.00")],
            "-500.00",
            "1000.00",
        ),
    ];
    for (method, name, lots, short, long) in cases {
        let id = format!("acct-{name}");
        desk.open(&id, now, method, "").await;
        let preview = desk.preview(spec(&id, half())).await;
        let expected: Vec<(String, Decimal, Decimal)> = lots
            .iter()
            .map(|(lot, quantity, gain)| ((*lot).to_owned(), d(quantity), d(gain)))
            .collect();
        assert_eq!(closed(&preview), expected, "{name}: {preview:?}");
        let tax = preview.tax.clone().expect("tax impact");
        assert_eq!(
            (tax.short_term_gain.as_str(), tax.long_term_gain.as_str()),
            (short, long),
            "{name}"
        );
        assert_eq!(tax.lot_method, i32::from(method));
        assert_eq!(tax.budget_left, "", "no budget");
    }

    // GetHoldings: unrealized gains per lot, with the holding period.
    let holdings = desk
        .accounts
        .get_holdings(firm.request(GetHoldingsRequest {
            account_id: "acct-fifo".to_owned(),
        }))
        .await
        .expect("holdings")
        .into_inner()
        .holdings
        .expect("holdings");
    let spy = &holdings.positions[0];
    assert_eq!(spy.average_cost, "433.333333333");
    let unrealized: Vec<(&str, &str, i32)> = spy
        .lots
        .iter()
        .map(|l| (l.id.as_str(), l.unrealized_gain.as_str(), l.term))
        .collect();
    assert_eq!(
        unrealized,
        [
            ("long-gain", "2000.00", i32::from(HoldingTerm::Long)),
            ("loss", "-500.00", i32::from(HoldingTerm::Short)),
            ("short-gain", "500.00", i32::from(HoldingTerm::Short)),
        ]
    );

    // A $1,000 budget: all of SPY into TLT would sell 30 shares; FIFO's
    // first lot gains $200 a share, so 5 shares spend the budget, and the
    // $2,500 they raise buys 25 TLT.
    desk.open("acct-budget", now, LotMethod::Fifo, "1000").await;
    let all_tlt = || vec![weight("TLT", "100")];
    let preview = desk.preview(spec("acct-budget", all_tlt())).await;
    assert_eq!(
        closed(&preview),
        [("long-gain".to_owned(), d("5"), d("1000.00"))]
    );
    let tax = preview.tax.clone().expect("tax impact");
    assert_eq!(
        (tax.total_gain.as_str(), tax.budget_left.as_str()),
        ("1000.00", "0.00")
    );
    let buy = preview
        .orders
        .iter()
        .find(|o| o.symbol == "TLT")
        .expect("TLT buy");
    assert_eq!(d(&buy.quantity), d("25"));
    let held_back = preview
        .skipped_orders
        .iter()
        .find(|s| s.reason == i32::from(SkipReason::Tax))
        .unwrap_or_else(|| panic!("SPY held back: {preview:?}"));
    assert_eq!(held_back.symbol, "SPY");
    assert_eq!(held_back.notional, "12500.00");
    assert!(
        held_back
            .detail
            .contains("25 shares of SPY not sold: the run's gain budget of $1000 is spent"),
        "{}",
        held_back.detail
    );

    // The run executes: the fills close the planned lot and open one.
    let run = desk
        .runs
        .create_run(firm.request(CreateRunRequest {
            idempotency_key: "budget-run".to_owned(),
            spec: Some(spec("acct-budget", all_tlt())),
        }))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(run.tax.as_ref().expect("tax").total_gain, "1000.00");
    let ended = tick_until_ended(&stack, &mut desk.runs, &firm, &run.id).await;
    // The paper broker's slippage may leave a TLT share unbought.
    assert!(
        matches!(
            RunStatus::try_from(ended.status),
            Ok(RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted)
        ),
        "{ended:?}"
    );
    let sold = ended
        .orders
        .iter()
        .find(|o| o.symbol == "SPY")
        .expect("SPY order");
    let bought = ended
        .orders
        .iter()
        .find(|o| o.symbol == "TLT")
        .expect("TLT order");
    let account = desk.account("acct-budget").await;
    let position = |symbol: &str| {
        account
            .positions
            .iter()
            .find(|p| p.symbol == symbol)
            .unwrap_or_else(|| panic!("{symbol}: {account:?}"))
            .clone()
    };
    let spy = position("SPY");
    let left: Vec<(&str, Decimal, Decimal)> = spy
        .lots
        .iter()
        .map(|l| (l.id.as_str(), d(&l.quantity), d(&l.cost_basis)))
        .collect();
    assert_eq!(
        left,
        [
            ("long-gain", d("5"), d("1500")),
            ("loss", d("10"), d("5500")),
            ("short-gain", d("10"), d("4500")),
        ]
    );
    // Lots cover the position exactly, and the bought lot cost what was paid.
    let tlt = position("TLT");
    let tlt_lots: Decimal = tlt.lots.iter().map(|l| d(&l.quantity)).sum();
    assert_eq!(tlt_lots, d(&tlt.quantity));
    assert_eq!(tlt.lots.len(), 1, "{tlt:?}");
    assert_eq!(d(&tlt.lots[0].quantity), d(&bought.filled_quantity));
    let basis = d(&tlt.lots[0].cost_basis);
    let priced = d(&bought.filled_quantity) * d(&bought.filled_avg_price);
    assert!((basis - priced).abs() <= d("0.01"), "{basis} vs {priced}");
    assert_eq!(
        tlt.lots[0].acquired_on,
        rebalancer_domain::calendar::exchange_date(now).to_string()
    );
    // Cash is conserved (it started at 0): what the sale raised is what
    // the buy cost plus the cash left; the gain is that less the basis
    // closed, long term.
    assert_eq!(d(&sold.filled_quantity), d("5"));
    let proceeds = basis + d(&account.cash);
    let sold_at = d(&sold.filled_quantity) * d(&sold.filled_avg_price);
    assert!(
        (proceeds - sold_at).abs() <= d("0.01"),
        "{proceeds} vs {sold_at}"
    );
    let realized = account.realized_gains.expect("realized gains");
    assert_eq!(d(&realized.long_term_gain), proceeds - d("1500"));
    assert_eq!(d(&realized.short_term_gain), Decimal::ZERO);

    // Bad settings and lots: refused field by field, nothing changed.
    let before = desk.account("acct-budget").await;
    let refused = desk
        .accounts
        .set_tax_settings(firm.request(SetTaxSettingsRequest {
            account_id: "acct-budget".to_owned(),
            tax_settings: Some(TaxSettings {
                lot_method: 99,
                run_gain_budget: "-5".to_owned(),
                ..TaxSettings::default()
            }),
            etag: String::new(),
        }))
        .await
        .expect_err("bad method");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["tax_settings.lot_method"]);
    let refused = desk
        .accounts
        .set_tax_settings(firm.request(SetTaxSettingsRequest {
            account_id: "acct-budget".to_owned(),
            tax_settings: Some(TaxSettings {
                run_gain_budget: "-5".to_owned(),
                annual_gain_budget: "1.001".to_owned(),
                ..TaxSettings::default()
            }),
            etag: String::new(),
        }))
        .await
        .expect_err("bad budgets");
    assert_eq!(
        violated_fields(&refused),
        [
            "tax_settings.run_gain_budget",
            "tax_settings.annual_gain_budget"
        ]
    );
    let mut short = spy_lots(now);
    short[0].quantity = "9".to_owned();
    short[1].acquired_on = "2026-13-01".to_owned();
    short[2].id = "long-gain".to_owned();
    let refused = desk
        .accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-budget".to_owned(),
            cash: "0".to_owned(),
            positions: vec![Position {
                symbol: "SPY".to_owned(),
                quantity: "30".to_owned(),
                lots: short,
                ..Position::default()
            }],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("bad lots");
    assert_eq!(
        violated_fields(&refused),
        [
            "positions[0].lots[1].acquired_on",
            "positions[0].lots[2].id"
        ]
    );
    let after = desk.account("acct-budget").await;
    assert_eq!(after.etag, before.etag);
    assert_eq!(after.positions, before.positions);

    // A 2-for-1 split: positions and lots double, bases and dates stay;
    // a retry does not split twice.
    let split = |key: &str| ApplySplitRequest {
        idempotency_key: key.to_owned(),
        symbol: "SPY".to_owned(),
        new_shares: "2".to_owned(),
        old_shares: "1".to_owned(),
        effective_on: rebalancer_domain::calendar::exchange_date(now).to_string(),
    };
    for _ in 0..2 {
        let applied = desk
            .accounts
            .apply_split(firm.request(split("split-1")))
            .await
            .expect("split")
            .into_inner();
        assert_eq!(applied.accounts_adjusted, 5);
    }
    let fifo = desk.account("acct-fifo").await;
    let spy = &fifo.positions[0];
    assert_eq!(d(&spy.quantity), d("60"));
    let split_lots: Vec<(&str, Decimal, Decimal)> = spy
        .lots
        .iter()
        .map(|l| (l.id.as_str(), d(&l.quantity), d(&l.cost_basis)))
        .collect();
    assert_eq!(
        split_lots,
        [
            ("long-gain", d("20"), d("3000")),
            ("loss", d("20"), d("5500")),
            ("short-gain", d("20"), d("4500")),
        ]
    );
    let refused = desk
        .accounts
        .apply_split(firm.request(ApplySplitRequest {
            idempotency_key: "split-bad".to_owned(),
            symbol: "bad sym".to_owned(),
            new_shares: "0".to_owned(),
            old_shares: "1.5".to_owned(),
            effective_on: "2026-13-01".to_owned(),
        }))
        .await
        .expect_err("bad split");
    assert_eq!(
        violated_fields(&refused),
        ["symbol", "new_shares", "old_shares", "effective_on"]
    );

    // Within its drift tolerance a taxable account is not traded for drift
    // alone; past it, it is.
    let tolerance = |points: &str| SetTaxSettingsRequest {
        account_id: "acct-lifo".to_owned(),
        tax_settings: Some(TaxSettings {
            lot_method: LotMethod::Lifo.into(),
            drift_tolerance: points.to_owned(),
            ..TaxSettings::default()
        }),
        etag: String::new(),
    };
    desk.accounts
        .set_tax_settings(firm.request(tolerance("5")))
        .await
        .expect("tolerance");
    let near = || vec![weight("", "3"), weight("SPY", "97")];
    let held = desk.preview(spec("acct-lifo", near())).await;
    assert!(held.orders.is_empty(), "{held:?}");
    assert_eq!(held.skipped_orders[0].reason, i32::from(SkipReason::Tax));
    assert!(
        held.skipped_orders[0]
            .detail
            .starts_with("within the taxable drift tolerance of 5 points"),
        "{}",
        held.skipped_orders[0].detail
    );
    desk.accounts
        .set_tax_settings(firm.request(tolerance("2")))
        .await
        .expect("tolerance");
    let traded = desk.preview(spec("acct-lifo", near())).await;
    assert_eq!(traded.orders.len(), 1, "{traded:?}");
    let refused = desk
        .accounts
        .set_tax_settings(firm.request(tolerance("100")))
        .await
        .expect_err("bad tolerance");
    assert_eq!(violated_fields(&refused), ["tax_settings.drift_tolerance"]);

    // Specific lots chosen in an edit: the estimate follows, and the fills
    // close those lots (HIFO alone would close the loss lot first).
    let proposed = desk
        .runs
        .create_run(firm.request(CreateRunRequest {
            idempotency_key: "hifo-run".to_owned(),
            spec: Some(RunSpec {
                approval_mode: rebalancer_proto::common::ApprovalMode::Manual.into(),
                ..spec("acct-hifo", half())
            }),
        }))
        .await
        .expect("proposed run")
        .into_inner()
        .run
        .expect("run");
    let sale = proposed.orders[0].clone();
    assert_eq!(d(&sale.quantity), d("30"));
    let adjust = |lot_ids: Vec<&str>, quantity: &str, order: &str, etag: &str| AdjustRunRequest {
        run_id: proposed.id.clone(),
        etag: etag.to_owned(),
        adjustments: vec![OrderAdjustment {
            order_id: order.to_owned(),
            quantity: quantity.to_owned(),
            lot_ids: lot_ids.into_iter().map(ToOwned::to_owned).collect(),
            ..OrderAdjustment::default()
        }],
        ..AdjustRunRequest::default()
    };
    let chosen = desk
        .runs
        .adjust_run(firm.request(adjust(vec!["short-gain"], "", &sale.id, &proposed.etag)))
        .await
        .expect("lots chosen")
        .into_inner()
        .run
        .expect("run");
    let lots_of = |run: &Run| -> Vec<(String, Decimal, Decimal)> {
        run.orders[0]
            .tax_lots
            .iter()
            .map(|l| (l.lot_id.clone(), d(&l.quantity), d(&l.gain)))
            .collect()
    };
    // 20 × (500 − 225), then FIFO: 10 × (500 − 150).
    assert_eq!(
        lots_of(&chosen),
        [
            ("short-gain".to_owned(), d("20"), d("5500.00")),
            ("long-gain".to_owned(), d("10"), d("3500.00")),
        ]
    );
    let refused = desk
        .runs
        .adjust_run(firm.request(adjust(vec!["nope"], "", &sale.id, &chosen.etag)))
        .await
        .expect_err("unknown lot");
    assert_eq!(violated_fields(&refused), ["adjustments[0].lot_ids[0]"]);
    let chosen = desk
        .runs
        .adjust_run(firm.request(adjust(vec!["long-gain"], "10", &sale.id, &chosen.etag)))
        .await
        .expect("fewer shares, another lot")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(
        lots_of(&chosen),
        [("long-gain".to_owned(), d("10"), d("3500.00"))]
    );
    assert_eq!(chosen.tax.as_ref().expect("tax").long_term_gain, "3500.00");
    desk.runs
        .approve_run(firm.request(ApproveRunRequest {
            run_id: chosen.id.clone(),
            etag: chosen.etag.clone(),
        }))
        .await
        .expect("approve");
    let ended = tick_until_ended(&stack, &mut desk.runs, &firm, &chosen.id).await;
    let hifo = desk.account("acct-hifo").await;
    let kept: Vec<(&str, Decimal)> = hifo.positions[0]
        .lots
        .iter()
        .map(|l| (l.id.as_str(), d(&l.quantity)))
        .collect();
    assert_eq!(
        kept,
        [
            ("long-gain", d("10")),
            ("loss", d("20")),
            ("short-gain", d("20"))
        ],
        "{ended:?}"
    );

    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lots_drive_gains_budgets_and_bookings_on_sqlite() {
    lots_drive_gains_budgets_and_bookings(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lots_drive_gains_budgets_and_bookings_on_postgres() {
    lots_drive_gains_budgets_and_bookings(Backend::Postgres).await;
}

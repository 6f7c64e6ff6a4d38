use rust_decimal_macros::dec;

use super::*;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("symbol")
}

fn lot(id: &str, quantity: Decimal, basis: Decimal, acquired: &str) -> Lot {
    Lot {
        id: id.to_owned(),
        quantity,
        basis,
        acquired: date(acquired),
    }
}

/// SPY at $500 on 2 March 2026: 10 long-term at $300, 10 short-term at
/// $450, 10 at a loss ($550).
fn lots() -> HashMap<Symbol, Vec<Lot>> {
    HashMap::from([(
        symbol("SPY"),
        vec![
            lot("long-gain", dec!(10), dec!(3000), "2024-01-10"),
            lot("short-gain", dec!(10), dec!(4500), "2025-09-15"),
            lot("loss", dec!(10), dec!(5500), "2025-06-01"),
        ],
    )])
}

fn sell(symbol_text: &str, quantity: Decimal, price: Decimal) -> PlannedOrder {
    PlannedOrder {
        symbol: symbol(symbol_text),
        side: Side::Sell,
        quantity,
        notional: None,
        price,
    }
}

fn view<'a>(settings: &'a TaxSettings, lots: &'a HashMap<Symbol, Vec<Lot>>) -> TaxView<'a> {
    static NONE: std::sync::LazyLock<HashMap<Symbol, String>> =
        std::sync::LazyLock::new(HashMap::new);
    TaxView {
        settings,
        lots,
        realized_this_year: Decimal::ZERO,
        today: date("2026-03-02"),
        frozen_losses: &NONE,
    }
}

#[test]
fn no_short_term_gains_holds_back_the_short_term_lot_with_its_date() {
    let settings = TaxSettings {
        no_short_term_gains: true,
        ..TaxSettings::default()
    };
    let lots = lots();
    let view = view(&settings, &lots);
    let limits = view.sell_limits(&[sell("SPY", dec!(25), dec!(500))]);
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].quantity, dec!(20));
    assert!(
        limits[0].detail.contains("long term on 2026-09-16"),
        "{}",
        limits[0].detail
    );
    let sale = view.sale(&symbol("SPY"), dec!(20), dec!(500));
    assert!(sale.closed.iter().all(|c| c.lot_id != "short-gain"));
    // The same sale in an IRA is not held back.
    let ira = TaxSettings {
        status: TaxStatus::TaxDeferred,
        ..settings.clone()
    };
    assert!(
        super::TaxView {
            settings: &ira,
            ..view
        }
        .sell_limits(&[sell("SPY", dec!(25), dec!(500))])
        .is_empty()
    );
}

#[test]
fn a_budget_takes_losses_first_then_the_cheapest_gains_and_stops_at_the_budget() {
    let settings = TaxSettings {
        lot_method: LotSelection::Fifo,
        run_gain_budget: Some(dec!(1000)),
        ..TaxSettings::default()
    };
    let mut lots = lots();
    // QQQ: one lot, a gain of $100 a share at $400.
    lots.insert(
        symbol("QQQ"),
        vec![lot("q", dec!(50), dec!(15000), "2020-01-02")],
    );
    let view = view(&settings, &lots);
    // FIFO sells SPY long-gain first ($200 a share, 40% of proceeds), then
    // the loss; QQQ gains 25% of proceeds, so it goes first: 10 shares use
    // the $1,000; SPY's first lot does not fit at all.
    let limits = view.sell_limits(&[
        sell("SPY", dec!(15), dec!(500)),
        sell("QQQ", dec!(20), dec!(400)),
    ]);
    let qqq = limits
        .iter()
        .find(|l| l.symbol == symbol("QQQ"))
        .expect("QQQ");
    assert_eq!(qqq.quantity, dec!(10));
    assert!(
        qqq.detail.contains("the run's gain budget of $1000"),
        "{}",
        qqq.detail
    );
    assert!(qqq.detail.contains("$1000 more"), "{}", qqq.detail);
    let spy = limits
        .iter()
        .find(|l| l.symbol == symbol("SPY"))
        .expect("SPY");
    assert_eq!(spy.quantity, dec!(0));
    // What is kept realizes exactly the budget.
    let sale = view.sale(&symbol("QQQ"), qqq.quantity, dec!(400));
    assert_eq!(sale.total_gain(), dec!(1000));
}

#[test]
fn losses_make_room_for_gains_and_the_year_counts_what_was_realized() {
    let settings = TaxSettings {
        lot_method: LotSelection::MinimumTax,
        annual_gain_budget: Some(dec!(3000)),
        ..TaxSettings::default()
    };
    let lots = lots();
    let mut view = view(&settings, &lots);
    view.realized_this_year = dec!(2500);
    // Minimum tax: the loss (−$500) first, then long-term at +$200 a share:
    // $500 of room plus $500 of loss is 5 shares.
    let limits = view.sell_limits(&[sell("SPY", dec!(30), dec!(500))]);
    assert_eq!(limits[0].quantity, dec!(15));
    let sale = view.sale(&symbol("SPY"), dec!(15), dec!(500));
    assert_eq!(sale.total_gain(), dec!(500));
    let summary = view.summary(&[sale]);
    assert_eq!(summary.budget_left, Some(dec!(0)));
    assert_eq!(summary.long_term, dec!(1000));
    assert_eq!(summary.short_term, dec!(-500));
}

#[test]
fn settings_validate_budgets_precisely() {
    let bad = TaxSettingsInput {
        run_gain_budget: "-1".to_owned(),
        annual_gain_budget: "1.005".to_owned(),
        ..TaxSettingsInput::default()
    }
    .validate()
    .expect_err("bad budgets");
    let fields: Vec<&str> = bad.as_slice().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["run_gain_budget", "annual_gain_budget"]);
    let good = TaxSettingsInput {
        run_gain_budget: "1000.00".to_owned(),
        ..TaxSettingsInput::default()
    }
    .validate()
    .expect("valid");
    assert_eq!(good.run_gain_budget, Some(dec!(1000)));
    assert!(TaxSettings::default().is_default());
}

#[test]
fn the_wash_sale_guard_keeps_loss_lots_and_says_why() {
    let settings = TaxSettings {
        lot_method: LotSelection::Hifo,
        ..TaxSettings::default()
    };
    let lots = lots();
    let frozen = HashMap::from([(symbol("SPY"), "wash sale: bought in acct-b".to_owned())]);
    let view = TaxView {
        frozen_losses: &frozen,
        ..view(&settings, &lots)
    };
    // HIFO would sell the loss first; the guard keeps it: 20 shares left.
    let limits = view.sell_limits(&[sell("SPY", dec!(25), dec!(500))]);
    assert_eq!(limits[0].quantity, dec!(20));
    assert_eq!(limits[0].reason, SkipReason::WashSale);
    assert!(
        limits[0]
            .detail
            .starts_with("5 shares of SPY at a loss not sold: wash sale")
    );
    let sale = view.sale(&symbol("SPY"), dec!(20), dec!(500));
    assert!(sale.closed.iter().all(|c| c.lot_id != "loss"));
    assert_eq!(sale.closed[0].lot_id, "short-gain");
    // Booking closes the lots the plan chose first.
    let (booked, _) = close(
        &settings,
        &lots[&symbol("SPY")],
        &["long-gain".to_owned()],
        dec!(12),
        dec!(500),
        date("2026-03-02"),
    );
    let ids: Vec<&str> = booked.closed.iter().map(|c| c.lot_id.as_str()).collect();
    assert_eq!(ids, ["long-gain", "loss"]);
}

#[test]
fn a_taxable_account_within_its_tolerance_is_not_traded_for_drift_alone() {
    use crate::portfolio::Weight;
    use crate::trades::{AccountSnapshot, Holding, PlanInput, PlanKind, TradeAsset, plan};
    let assets = HashMap::from([(
        symbol("SPY"),
        TradeAsset {
            symbol: symbol("SPY"),
            price: dec!(100),
            tradable: true,
            fractionable: true,
        },
    )]);
    let account = AccountSnapshot {
        cash: dec!(0),
        holdings: vec![Holding {
            symbol: symbol("SPY"),
            quantity: dec!(100),
        }],
        buys_blocked: false,
        sells_blocked: false,
        restricted: Vec::new(),
        sell_limits: Vec::new(),
        buy_blocks: Vec::new(),
    };
    let target = vec![
        Weight::cash(dec!(2)),
        Weight::asset(symbol("SPY"), dec!(98)),
    ];
    let planned = || {
        plan(&PlanInput {
            kind: PlanKind::FullRebalance,
            account: &account,
            target: &target,
            assets: &assets,
            minimum_order_notional: dec!(1),
            whole_shares_only: false,
            asset_rules: &[],
        })
    };
    let settings = |tolerance: Decimal, status: TaxStatus| TaxSettings {
        status,
        drift_tolerance: Some(tolerance),
        ..TaxSettings::default()
    };
    let mut held = planned();
    assert!(hold_within_tolerance(
        &settings(dec!(3), TaxStatus::Taxable),
        &mut held
    ));
    assert!(held.orders.is_empty());
    assert_eq!(held.skipped[0].reason, SkipReason::Tax);
    assert!(
        held.skipped[0]
            .detail
            .starts_with("within the taxable drift tolerance of 3 points (widest: "),
        "{}",
        held.skipped[0].detail
    );
    assert_eq!(held.cash_after, dec!(0));
    // At the tolerance, or in an IRA, the account trades.
    let mut traded = planned();
    assert!(!hold_within_tolerance(
        &settings(dec!(2), TaxStatus::Taxable),
        &mut traded
    ));
    assert_eq!(traded.orders.len(), 1);
    assert!(!hold_within_tolerance(
        &settings(dec!(3), TaxStatus::TaxDeferred),
        &mut traded
    ));
}

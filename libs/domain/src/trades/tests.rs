//! Table tests of trade generation: Alpaca's documented examples and the edge
//! cases of each rule.

use std::collections::HashMap;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("test symbols are well formed")
}

/// An account, its target and the market, built up fluently.
#[derive(Debug, Clone)]
struct Scenario {
    account: AccountSnapshot,
    target: Vec<Weight>,
    assets: HashMap<Symbol, TradeAsset>,
    minimum: Decimal,
    whole_shares_only: bool,
    asset_rules: Vec<AssetRule>,
}

impl Scenario {
    fn with_cash(cash: Decimal) -> Self {
        Self {
            account: AccountSnapshot {
                cash,
                holdings: Vec::new(),
                buys_blocked: false,
                sells_blocked: false,
                restricted: Vec::new(),
                sell_limits: Vec::new(),
                buy_blocks: Vec::new(),
            },
            target: Vec::new(),
            assets: HashMap::new(),
            minimum: dec!(1),
            whole_shares_only: false,
            asset_rules: Vec::new(),
        }
    }

    /// Alpaca's Balanced portfolio: cash 5, SPY 60, TLT 35.
    fn balanced(cash: Decimal) -> Self {
        Self::with_cash(cash)
            .cash_weight(dec!(5))
            .weight("SPY", dec!(60))
            .weight("TLT", dec!(35))
            .fractional("SPY", dec!(500))
            .fractional("TLT", dec!(100))
    }

    fn hold(mut self, ticker: &str, quantity: Decimal) -> Self {
        self.account.holdings.push(Holding {
            symbol: symbol(ticker),
            quantity,
        });
        self
    }

    fn weight(mut self, ticker: &str, percent: Decimal) -> Self {
        self.target.push(Weight::asset(symbol(ticker), percent));
        self
    }

    fn cash_weight(mut self, percent: Decimal) -> Self {
        self.target.push(Weight::cash(percent));
        self
    }

    fn listed(mut self, ticker: &str, price: Decimal, fractionable: bool, tradable: bool) -> Self {
        self.assets.insert(
            symbol(ticker),
            TradeAsset {
                symbol: symbol(ticker),
                price,
                tradable,
                fractionable,
            },
        );
        self
    }

    fn fractional(self, ticker: &str, price: Decimal) -> Self {
        self.listed(ticker, price, true, true)
    }

    fn whole(self, ticker: &str, price: Decimal) -> Self {
        self.listed(ticker, price, false, true)
    }

    fn untradable(self, ticker: &str, price: Decimal) -> Self {
        self.listed(ticker, price, true, false)
    }

    fn sells_blocked(mut self) -> Self {
        self.account.sells_blocked = true;
        self
    }

    fn buys_blocked(mut self) -> Self {
        self.account.buys_blocked = true;
        self
    }

    fn whole_shares_only(mut self) -> Self {
        self.whole_shares_only = true;
        self
    }

    fn minimum(mut self, minimum: Decimal) -> Self {
        self.minimum = minimum;
        self
    }

    fn plan(&self, kind: PlanKind) -> Plan {
        plan(&PlanInput {
            kind,
            account: &self.account,
            target: &self.target,
            assets: &self.assets,
            minimum_order_notional: self.minimum,
            whole_shares_only: self.whole_shares_only,
            asset_rules: &self.asset_rules,
        })
    }
}

fn liquidation(amount: Decimal) -> PlanKind {
    PlanKind::Liquidation {
        amount: Some(amount),
    }
}

const LIQUIDATE_ALL: PlanKind = PlanKind::Liquidation { amount: None };

fn order<'a>(plan: &'a Plan, ticker: &str) -> &'a PlannedOrder {
    plan.orders
        .iter()
        .find(|order| order.symbol.as_str() == ticker)
        .unwrap_or_else(|| panic!("no order for {ticker} in {plan:#?}"))
}

fn skipped<'a>(plan: &'a Plan, ticker: &str) -> &'a SkippedTrade {
    plan.skipped
        .iter()
        .find(|skipped| skipped.symbol.as_str() == ticker)
        .unwrap_or_else(|| panic!("no skip for {ticker} in {plan:#?}"))
}

fn drift_of<'a>(plan: &'a Plan, ticker: Option<&str>) -> &'a TickerDrift {
    plan.drift
        .iter()
        .find(|row| row.symbol.as_ref().map(Symbol::as_str) == ticker)
        .unwrap_or_else(|| panic!("no drift row for {ticker:?} in {plan:#?}"))
}

fn assert_near(actual: Decimal, expected: Decimal, tolerance: Decimal) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

// --- texts -----------------------------------------------------------------

#[test]
fn texts_round_trip() {
    for side in [Side::Buy, Side::Sell] {
        assert_eq!(Side::parse(side.as_str()), Some(side));
    }
    assert_eq!(Side::parse("hold"), None);
    for reason in [
        SkipReason::BelowMinimumNotional,
        SkipReason::InsufficientCash,
        SkipReason::NotTradable,
        SkipReason::Restricted,
        SkipReason::RoundsToZero,
        SkipReason::NoPrice,
    ] {
        assert_eq!(SkipReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(SkipReason::parse("bored"), None);
    assert_eq!(PlanKind::InvestCash.as_str(), "invest_cash");
    assert_eq!(LIQUIDATE_ALL.as_str(), "liquidation");
    assert_eq!(LIQUIDATION_BUFFER, dec!(0.005));
}

// --- Alpaca's examples -------------------------------------------------------

#[test]
fn balanced_example_invests_new_cash_in_two_buys() {
    let scenario = Scenario::with_cash(dec!(100000))
        .cash_weight(dec!(5))
        .weight("SPY", dec!(60))
        .weight("TLT", dec!(35))
        .fractional("SPY", dec!(417.80))
        .fractional("TLT", dec!(91.37));
    for kind in [PlanKind::FullRebalance, PlanKind::InvestCash] {
        let plan = scenario.plan(kind);
        assert_eq!(plan.orders.len(), 2, "{plan:#?}");
        assert!(plan.skipped.is_empty(), "{plan:#?}");
        let spy = order(&plan, "SPY");
        let tlt = order(&plan, "TLT");
        assert_eq!((spy.side, tlt.side), (Side::Buy, Side::Buy));
        assert_eq!(spy.notional, Some(dec!(60000.00)));
        assert_eq!(tlt.notional, Some(dec!(35000.00)));
        assert_eq!(spy.quantity, dec!(143.609382479));
        assert_near(plan.cash_after, dec!(5000), dec!(0.01));
        assert_near(
            drift_of(&plan, Some("SPY")).expected_value,
            dec!(60000),
            dec!(0.01),
        );
        assert_near(
            drift_of(&plan, Some("TLT")).expected_value,
            dec!(35000),
            dec!(0.01),
        );
        assert_eq!(plan.equity, dec!(100000));
        assert_eq!(plan.cash_before, dec!(100000));
    }
}

/// Eleven equally weighted assets, each $1,000 below target, and $10 above
/// the cash target; ZZZ, outside the target, holds the rest of the equity.
fn ten_dollars_over_eleven_assets() -> Scenario {
    let mut scenario = Scenario::with_cash(dec!(1010)).cash_weight(dec!(1));
    for number in 1..=11 {
        let ticker = format!("S{number:02}");
        scenario = scenario
            .weight(&ticker, dec!(9))
            .fractional(&ticker, dec!(8000))
            .hold(&ticker, dec!(1));
    }
    scenario.untradable("ZZZ", dec!(10990)).hold("ZZZ", dec!(1))
}

#[test]
fn ten_dollars_over_eleven_assets_buys_ten_at_the_minimum() {
    let scenario = ten_dollars_over_eleven_assets();
    for kind in [PlanKind::InvestCash, PlanKind::FullRebalance] {
        let plan = scenario.plan(kind);
        assert_eq!(plan.equity, dec!(100000));
        let buys: Vec<&PlannedOrder> = plan.orders.iter().filter(|o| o.side == Side::Buy).collect();
        assert_eq!(buys.len(), 10, "{plan:#?}");
        for buy in &buys {
            assert_eq!(buy.notional, Some(dec!(1.00)), "{buy:?}");
        }
        let skip = skipped(&plan, "S11");
        assert_eq!(skip.side, Side::Buy);
        assert_eq!(skip.reason, SkipReason::InsufficientCash);
        assert!(!skip.detail.is_empty());
        assert_eq!(plan.cash_after, dec!(1000));
    }
    // The full rebalance also wanted to sell ZZZ, which is not tradable.
    let full = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(skipped(&full, "ZZZ").reason, SkipReason::NotTradable);
    assert_eq!(skipped(&full, "ZZZ").side, Side::Sell);
}

// --- sizing --------------------------------------------------------------------

#[test]
fn non_fractionable_asset_gets_a_whole_number_of_shares() {
    let scenario = Scenario::with_cash(dec!(10000))
        .weight("AAA", dec!(50))
        .weight("BBB", dec!(50))
        .whole("AAA", dec!(333.33))
        .fractional("BBB", dec!(100));
    let plan = scenario.plan(PlanKind::FullRebalance);
    let aaa = order(&plan, "AAA");
    assert_eq!(aaa.quantity, dec!(15));
    assert_eq!(aaa.notional, None);
    assert_eq!(order(&plan, "BBB").notional, Some(dec!(5000.00)));
    assert_eq!(plan.cash_after, dec!(0.05));
}

#[test]
fn whole_shares_only_trades_fractionable_assets_in_shares() {
    let scenario = Scenario::balanced(dec!(100000)).whole_shares_only();
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(order(&plan, "SPY").quantity, dec!(120));
    assert_eq!(order(&plan, "TLT").quantity, dec!(350));
    assert!(plan.orders.iter().all(|order| order.notional.is_none()));
    assert_eq!(plan.cash_after, dec!(5000));
}

#[test]
fn leftover_buys_the_share_that_most_reduces_the_squared_gap() {
    // $1,000 over two $300 assets with equal targets ($500 each): floors give
    // one share each ($400 left); each second share reduces (500 − v)² by
    // 300·(2·200 − 300) = 30,000, so AAA (first on ties) gets it; BBB's
    // second share no longer fits in the $100 left.
    let scenario = Scenario::with_cash(dec!(1000))
        .weight("AAA", dec!(50))
        .weight("BBB", dec!(50))
        .whole("AAA", dec!(300))
        .whole("BBB", dec!(300));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(order(&plan, "AAA").quantity, dec!(2));
    assert_eq!(order(&plan, "BBB").quantity, dec!(1));
    assert_eq!(plan.cash_after, dec!(100));
}

#[test]
fn fractional_assets_absorb_what_whole_shares_leave() {
    // E = $2,000 (CCC, outside the target, is not tradable): AAA and BBB are
    // $800 short each and $600 is above the $400 cash target. Water-filling
    // gives $300 each; that is less than one $400 share of AAA, so BBB
    // absorbs AAA's $300 as well.
    let scenario = Scenario::with_cash(dec!(1000))
        .weight("AAA", dec!(40))
        .weight("BBB", dec!(40))
        .cash_weight(dec!(20))
        .whole("AAA", dec!(400))
        .fractional("BBB", dec!(10))
        .untradable("CCC", dec!(50))
        .hold("CCC", dec!(20))
        .hold("AAA", dec!(0));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(plan.equity, dec!(2000));
    assert_eq!(skipped(&plan, "AAA").reason, SkipReason::InsufficientCash);
    assert_eq!(skipped(&plan, "CCC").reason, SkipReason::NotTradable);
    assert_eq!(order(&plan, "BBB").notional, Some(dec!(600.00)));
    assert_eq!(plan.cash_after, dec!(400));
}

#[test]
fn whole_share_buy_that_rounds_to_zero_is_reported() {
    // $100 below target on a $500 share: less than half a share.
    let scenario = Scenario::with_cash(dec!(1000))
        .weight("AAA", dec!(10))
        .weight("BBB", dec!(90))
        .whole("AAA", dec!(500))
        .fractional("BBB", dec!(10));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(skipped(&plan, "AAA").reason, SkipReason::RoundsToZero);
    assert_eq!(order(&plan, "BBB").notional, Some(dec!(900.00)));
}

#[test]
fn whole_share_buy_short_of_cash_is_reported_as_such() {
    // $500 below target on a $500 share, but only $100 to spend.
    let scenario = Scenario::with_cash(dec!(100))
        .weight("AAA", dec!(100))
        .whole("AAA", dec!(500))
        .whole("BBB", dec!(400))
        .hold("BBB", dec!(1))
        .sells_blocked();
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(skipped(&plan, "AAA").reason, SkipReason::InsufficientCash);
    assert_eq!(skipped(&plan, "BBB").reason, SkipReason::Restricted);
    assert!(plan.orders.is_empty());
}

#[test]
fn notional_quantity_is_an_estimate_rounded_down() {
    let scenario = Scenario::with_cash(dec!(100))
        .weight("AAA", dec!(100))
        .fractional("AAA", dec!(3));
    let plan = scenario.plan(PlanKind::InvestCash);
    let aaa = order(&plan, "AAA");
    assert_eq!(aaa.notional, Some(dec!(100.00)));
    assert_eq!(aaa.quantity, dec!(33.333333333));
    assert_eq!(aaa.cash_amount(), dec!(100.00));
    assert_eq!(plan.cash_after, dec!(0));
}

// --- full rebalance ------------------------------------------------------------

#[test]
fn overweight_position_is_sold_before_buys() {
    let scenario = Scenario::balanced(dec!(0)).hold("SPY", dec!(200));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(plan.orders.len(), 2);
    assert_eq!(plan.orders[0].symbol.as_str(), "SPY");
    assert_eq!(plan.orders[0].side, Side::Sell);
    assert_eq!(plan.orders[0].notional, Some(dec!(40000.00)));
    assert_eq!(plan.orders[0].quantity, dec!(80));
    assert_eq!(plan.orders[1].symbol.as_str(), "TLT");
    assert_eq!(plan.orders[1].side, Side::Buy);
    assert_eq!(plan.orders[1].notional, Some(dec!(35000.00)));
    assert_eq!(plan.cash_after, dec!(5000));
}

#[test]
fn orders_list_sells_then_buys_each_by_symbol() {
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(25))
        .weight("BBB", dec!(25))
        .weight("CCC", dec!(25))
        .weight("DDD", dec!(25))
        .fractional("AAA", dec!(1))
        .fractional("BBB", dec!(1))
        .fractional("CCC", dec!(1))
        .fractional("DDD", dec!(1))
        .hold("BBB", dec!(600))
        .hold("DDD", dec!(400));
    let plan = scenario.plan(PlanKind::FullRebalance);
    let listed: Vec<(Side, &str)> = plan
        .orders
        .iter()
        .map(|order| (order.side, order.symbol.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (Side::Sell, "BBB"),
            (Side::Sell, "DDD"),
            (Side::Buy, "AAA"),
            (Side::Buy, "CCC")
        ]
    );
}

#[test]
fn whole_share_sell_takes_the_nearest_share_count() {
    // 10 shares at $100 with a $860 target: $140 over, 1.4 shares: sell 1.
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(86))
        .cash_weight(dec!(14))
        .whole("AAA", dec!(100))
        .hold("AAA", dec!(10));
    let plan = scenario.plan(PlanKind::FullRebalance);
    let aaa = order(&plan, "AAA");
    assert_eq!(
        (aaa.side, aaa.quantity, aaa.notional),
        (Side::Sell, dec!(1), None)
    );
    assert_eq!(plan.cash_after, dec!(100));
}

#[test]
fn whole_share_sell_under_half_a_share_rounds_to_zero() {
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(96))
        .cash_weight(dec!(4))
        .whole("AAA", dec!(100))
        .hold("AAA", dec!(10));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert!(plan.orders.is_empty());
    let skip = skipped(&plan, "AAA");
    assert_eq!(
        (skip.side, skip.reason),
        (Side::Sell, SkipReason::RoundsToZero)
    );
    assert_eq!(skip.notional, dec!(40.00));
}

#[test]
fn small_sell_is_below_the_minimum() {
    // $0.50 over target.
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(99.95))
        .cash_weight(dec!(0.05))
        .fractional("AAA", dec!(1))
        .hold("AAA", dec!(1000));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert!(plan.orders.is_empty());
    assert_eq!(
        skipped(&plan, "AAA").reason,
        SkipReason::BelowMinimumNotional
    );
    assert_eq!(skipped(&plan, "AAA").notional, dec!(0.50));
}

#[test]
fn dropped_fractional_position_is_closed_unless_dust() {
    let scenario = Scenario::with_cash(dec!(100))
        .cash_weight(dec!(100))
        .fractional("AAA", dec!(3))
        .fractional("BBB", dec!(3))
        .hold("AAA", dec!(0.5))
        .hold("BBB", dec!(0.123456789));
    let plan = scenario.plan(PlanKind::FullRebalance);
    let aaa = order(&plan, "AAA");
    assert_eq!((aaa.quantity, aaa.notional), (dec!(0.5), None));
    assert_eq!(
        skipped(&plan, "BBB").reason,
        SkipReason::BelowMinimumNotional
    );
    assert_eq!(plan.cash_after, dec!(101.5));
}

#[test]
fn empty_target_sells_everything() {
    let scenario = Scenario::with_cash(dec!(10))
        .fractional("AAA", dec!(3.5))
        .whole("BBB", dec!(40))
        .hold("AAA", dec!(2.718281828))
        .hold("BBB", dec!(7));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(order(&plan, "AAA").quantity, dec!(2.718281828));
    assert_eq!(order(&plan, "BBB").quantity, dec!(7));
    assert!(plan.orders.iter().all(|order| order.side == Side::Sell));
    assert_eq!(plan.cash_after, plan.equity);
    assert_eq!(drift_of(&plan, None).target_weight, dec!(100));
    assert_eq!(drift_of(&plan, None).expected_weight, dec!(100));
}

#[test]
fn no_cash_above_target_means_no_buys() {
    let scenario = Scenario::balanced(dec!(5000))
        .hold("SPY", dec!(120))
        .untradable("XYZ", dec!(100))
        .hold("XYZ", dec!(350));
    // E = 100,000 and the cash is exactly its 5% target; TLT is $35,000 short
    // and XYZ, which would fund it, is not tradable.
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert!(plan.orders.is_empty(), "{plan:#?}");
    assert_eq!(skipped(&plan, "TLT").reason, SkipReason::InsufficientCash);
    assert_eq!(skipped(&plan, "TLT").notional, dec!(35000.00));
    // Investing cash plans nothing at all.
    assert_eq!(scenario.plan(PlanKind::InvestCash).skipped, []);
}

#[test]
fn a_need_under_the_minimum_competes_for_the_minimum() {
    // BBB is $0.25 under target: it could take a $1 order, but the budget
    // serves AAA's larger need first and cannot also pay BBB's minimum.
    let scenario = Scenario::with_cash(dec!(1000.50))
        .weight("AAA", dec!(50))
        .weight("BBB", dec!(50))
        .fractional("AAA", dec!(1))
        .fractional("BBB", dec!(1))
        .hold("BBB", dec!(1000));
    let plan = scenario.plan(PlanKind::InvestCash);
    assert_eq!(skipped(&plan, "BBB").reason, SkipReason::InsufficientCash);
    assert_eq!(order(&plan, "AAA").notional, Some(dec!(1000.25)));
}

// --- restrictions ----------------------------------------------------------------

#[test]
fn sells_blocked_buys_with_cash_only() {
    let scenario = Scenario::balanced(dec!(10000))
        .hold("SPY", dec!(180))
        .sells_blocked();
    // E = 100,000: SPY $90,000 is $30,000 over, TLT $35,000 short, $5,000 to spend.
    let plan = scenario.plan(PlanKind::FullRebalance);
    let spy = skipped(&plan, "SPY");
    assert_eq!((spy.side, spy.reason), (Side::Sell, SkipReason::Restricted));
    assert_eq!(spy.notional, dec!(30000.00));
    assert_eq!(spy.quantity, dec!(60));
    assert_eq!(plan.orders.len(), 1);
    assert_eq!(order(&plan, "TLT").notional, Some(dec!(5000.00)));
    assert_eq!(plan.cash_after, dec!(5000));
}

#[test]
fn buys_blocked_still_sells() {
    let scenario = Scenario::balanced(dec!(0))
        .hold("SPY", dec!(200))
        .buys_blocked();
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(plan.orders.len(), 1);
    assert_eq!(order(&plan, "SPY").side, Side::Sell);
    let tlt = skipped(&plan, "TLT");
    assert_eq!((tlt.side, tlt.reason), (Side::Buy, SkipReason::Restricted));
    assert_eq!(plan.cash_after, dec!(40000));
}

#[test]
fn untradable_held_asset_is_kept() {
    let scenario = Scenario::balanced(dec!(95000))
        .untradable("XYZ", dec!(50))
        .hold("XYZ", dec!(100));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert!(
        plan.orders
            .iter()
            .all(|order| order.symbol.as_str() != "XYZ")
    );
    let xyz = skipped(&plan, "XYZ");
    assert_eq!(
        (xyz.side, xyz.reason),
        (Side::Sell, SkipReason::NotTradable)
    );
    assert_eq!(xyz.notional, dec!(5000.00));
    // Equity counts XYZ, so the $90,000 above the cash target cannot meet
    // both needs (60,000 and 35,000): water-filling cuts each by $2,500.
    assert_eq!(plan.equity, dec!(100000));
    assert_eq!(order(&plan, "SPY").notional, Some(dec!(57500.00)));
    assert_eq!(order(&plan, "TLT").notional, Some(dec!(32500.00)));
    assert_eq!(plan.cash_after, dec!(5000));
    let xyz_drift = drift_of(&plan, Some("XYZ"));
    assert_eq!(xyz_drift.expected_value, dec!(5000));
    assert_eq!(xyz_drift.target_weight, dec!(0));
    assert_eq!(xyz_drift.drift, dec!(5));
}

#[test]
fn untradable_target_is_not_bought() {
    let scenario = Scenario::balanced(dec!(100000)).untradable("TLT", dec!(100));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(skipped(&plan, "TLT").reason, SkipReason::NotTradable);
    assert_eq!(skipped(&plan, "TLT").side, Side::Buy);
    assert_eq!(order(&plan, "SPY").notional, Some(dec!(60000.00)));
    assert_eq!(plan.cash_after, dec!(40000));
}

// --- prices ----------------------------------------------------------------------

#[test]
fn holding_without_a_price_is_kept_out_of_equity() {
    let scenario = Scenario::balanced(dec!(100000)).hold("ABC", dec!(12.5));
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert_eq!(plan.equity, dec!(100000));
    let abc = skipped(&plan, "ABC");
    assert_eq!(
        (abc.side, abc.reason, abc.quantity, abc.notional),
        (Side::Sell, SkipReason::NoPrice, dec!(12.5), dec!(0))
    );
    assert!(
        plan.orders
            .iter()
            .all(|order| order.symbol.as_str() != "ABC")
    );
    assert!(
        plan.drift
            .iter()
            .all(|row| row.symbol != Some(symbol("ABC")))
    );
    assert_eq!(plan.orders.len(), 2);
    // Every kind of plan reports it.
    for kind in [PlanKind::InvestCash, liquidation(dec!(10)), LIQUIDATE_ALL] {
        assert_eq!(
            skipped(&scenario.plan(kind), "ABC").reason,
            SkipReason::NoPrice
        );
    }
}

#[test]
fn target_without_a_price_stays_in_cash() {
    let scenario = Scenario::with_cash(dec!(100000))
        .cash_weight(dec!(5))
        .weight("SPY", dec!(60))
        .weight("TLT", dec!(35))
        .fractional("SPY", dec!(500));
    let plan = scenario.plan(PlanKind::FullRebalance);
    let tlt = skipped(&plan, "TLT");
    assert_eq!((tlt.side, tlt.reason), (Side::Buy, SkipReason::NoPrice));
    assert_eq!(order(&plan, "SPY").notional, Some(dec!(60000.00)));
    assert_eq!(plan.cash_after, dec!(40000));
    let tlt_drift = drift_of(&plan, Some("TLT"));
    assert_eq!(tlt_drift.current_value, dec!(0));
    assert_eq!(tlt_drift.drift, dec!(-35));
}

// --- liquidations ----------------------------------------------------------------

/// The Balanced portfolio on target: $5,000 cash, SPY $60,000, TLT $35,000.
fn balanced_on_target() -> Scenario {
    Scenario::balanced(dec!(5000))
        .hold("SPY", dec!(120))
        .hold("TLT", dec!(350))
}

#[test]
fn liquidation_raises_the_amount_and_keeps_the_rest_on_target() {
    let plan = balanced_on_target().plan(liquidation(dec!(5000)));
    assert!(plan.orders.iter().all(|order| order.side == Side::Sell));
    assert!(plan.cash_after >= dec!(5000), "{plan:#?}");
    // What remains after paying out $5,000 is still 60/35/5.
    let remaining = plan.equity - dec!(5000);
    let spy = drift_of(&plan, Some("SPY")).expected_value;
    let tlt = drift_of(&plan, Some("TLT")).expected_value;
    assert_near(spy * dec!(100) / remaining, dec!(60), dec!(0.05));
    assert_near(tlt * dec!(100) / remaining, dec!(35), dec!(0.05));
    assert_near(
        (plan.cash_after - dec!(5000)) * dec!(100) / remaining,
        dec!(5),
        dec!(0.05),
    );
    // Required: 5,025 + 4,750 − 5,000 = 4,775; excesses 3,000 and 1,750, the
    // last $25 in proportion to 57,000 and 33,250.
    assert_eq!(order(&plan, "SPY").notional, Some(dec!(3015.79)));
    assert_eq!(order(&plan, "TLT").notional, Some(dec!(1759.22)));
}

#[test]
fn liquidation_sells_the_most_overweight_first() {
    let scenario = Scenario::balanced(dec!(5000))
        .hold("SPY", dec!(130))
        .hold("TLT", dec!(300));
    // E = 100,000; after $1,000 the targets are 59,400 and 34,650: SPY is
    // $5,600 over and covers the whole $1,005 + cash target difference alone.
    let plan = scenario.plan(liquidation(dec!(1000)));
    assert_eq!(plan.orders.len(), 1, "{plan:#?}");
    assert_eq!(order(&plan, "SPY").side, Side::Sell);
    assert!(plan.cash_after >= dec!(1000));
}

#[test]
fn liquidation_rounds_whole_share_sales_up() {
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(100))
        .whole("AAA", dec!(300))
        .hold("AAA", dec!(10));
    let plan = scenario.plan(liquidation(dec!(500)));
    // 502.50 needs 1.675 shares: sell 2.
    assert_eq!(order(&plan, "AAA").quantity, dec!(2));
    assert_eq!(plan.cash_after, dec!(600));
}

#[test]
fn liquidation_works_around_untradable_positions() {
    let scenario = Scenario::balanced(dec!(0))
        .hold("SPY", dec!(120))
        .hold("TLT", dec!(350))
        .untradable("XYZ", dec!(50))
        .hold("XYZ", dec!(100));
    // XYZ is $5,000 outside the target: the most overweight, but not tradable.
    let plan = scenario.plan(liquidation(dec!(3000)));
    assert_eq!(skipped(&plan, "XYZ").reason, SkipReason::NotTradable);
    assert!(
        plan.orders
            .iter()
            .all(|order| order.symbol.as_str() != "XYZ")
    );
    assert!(plan.cash_after >= dec!(3000), "{plan:#?}");
}

#[test]
fn liquidation_drops_a_small_sale_the_others_cover() {
    // After $100, BBB (0.01% of the target) is a cent over and would share
    // 2 cents of the sale: dropped, and AAA raises the whole $100.50.
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(99.99))
        .weight("BBB", dec!(0.01))
        .fractional("AAA", dec!(1))
        .fractional("BBB", dec!(1))
        .hold("AAA", dec!(9999))
        .hold("BBB", dec!(1));
    let plan = scenario.plan(liquidation(dec!(100)));
    assert_eq!(plan.orders.len(), 1, "{plan:#?}");
    assert_eq!(order(&plan, "AAA").notional, Some(dec!(100.50)));
    let bbb = skipped(&plan, "BBB");
    assert_eq!(bbb.reason, SkipReason::BelowMinimumNotional);
    assert_eq!(bbb.notional, dec!(0.02));
}

#[test]
fn liquidation_bumps_a_needed_small_sale_to_the_minimum() {
    // Only 40 cents (plus buffer) to raise: one $1 sale from the most overweight.
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(50))
        .weight("BBB", dec!(50))
        .fractional("AAA", dec!(1))
        .fractional("BBB", dec!(1))
        .hold("AAA", dec!(600))
        .hold("BBB", dec!(400.5));
    let plan = scenario.plan(liquidation(dec!(0.40)));
    assert_eq!(plan.orders.len(), 1, "{plan:#?}");
    assert_eq!(order(&plan, "AAA").notional, Some(dec!(1.00)));
    assert!(plan.cash_after >= dec!(0.40));
}

#[test]
fn liquidation_sells_a_needed_dust_position_entirely() {
    // Only a 60-cent position is sellable: it goes whole, below the minimum.
    let scenario = Scenario::with_cash(dec!(0))
        .weight("AAA", dec!(100))
        .fractional("AAA", dec!(0.6))
        .untradable("BBB", dec!(100))
        .hold("AAA", dec!(1))
        .hold("BBB", dec!(1));
    let plan = scenario.plan(liquidation(dec!(0.50)));
    let aaa = order(&plan, "AAA");
    assert_eq!((aaa.quantity, aaa.notional), (dec!(1), None));
    assert_eq!(plan.cash_after, dec!(0.6));
}

#[test]
fn liquidation_covered_by_cash_sells_nothing() {
    let scenario = Scenario::balanced(dec!(20000))
        .hold("SPY", dec!(100))
        .hold("TLT", dec!(200));
    let plan = scenario.plan(liquidation(dec!(5000)));
    assert!(plan.orders.is_empty(), "{plan:#?}");
    assert!(plan.skipped.is_empty());
}

#[test]
fn liquidation_beyond_equity_sells_everything_sellable() {
    let plan = balanced_on_target().plan(liquidation(dec!(250000)));
    assert_eq!(order(&plan, "SPY").quantity, dec!(120));
    assert_eq!(order(&plan, "TLT").quantity, dec!(350));
    assert_eq!(plan.cash_after, dec!(100000));
}

#[test]
fn liquidation_with_sells_blocked_reports_the_wanted_sales() {
    let plan = balanced_on_target()
        .sells_blocked()
        .plan(liquidation(dec!(5000)));
    assert!(plan.orders.is_empty());
    assert_eq!(skipped(&plan, "SPY").reason, SkipReason::Restricted);
    assert_eq!(skipped(&plan, "TLT").reason, SkipReason::Restricted);
    assert_eq!(skipped(&plan, "SPY").notional, dec!(3015.79));
}

#[test]
fn liquidation_of_everything_sells_every_tradable_position() {
    let scenario = balanced_on_target()
        .hold("SPY", dec!(0.123456789))
        .untradable("XYZ", dec!(50))
        .hold("XYZ", dec!(3));
    let plan = scenario.plan(LIQUIDATE_ALL);
    let spy = order(&plan, "SPY");
    assert_eq!((spy.quantity, spy.notional), (dec!(120.123456789), None));
    assert_eq!(order(&plan, "TLT").quantity, dec!(350));
    assert_eq!(skipped(&plan, "XYZ").reason, SkipReason::NotTradable);
    assert_eq!(plan.cash_after, plan.equity - dec!(150));
    assert_eq!(drift_of(&plan, None).target_weight, dec!(100));
    assert_eq!(drift_of(&plan, Some("SPY")).target_weight, dec!(0));
}

// --- drift -------------------------------------------------------------------------

#[test]
fn drift_report_lists_cash_then_symbols() {
    let scenario = balanced_on_target()
        .weight("AGG", dec!(0))
        .fractional("AGG", dec!(100))
        .hold("SPY", dec!(10));
    // E = 105,000: SPY $65,000.
    let plan = scenario.plan(PlanKind::FullRebalance);
    let symbols: Vec<Option<&str>> = plan
        .drift
        .iter()
        .map(|row| row.symbol.as_ref().map(Symbol::as_str))
        .collect();
    assert_eq!(symbols, [None, Some("AGG"), Some("SPY"), Some("TLT")]);
    let spy = drift_of(&plan, Some("SPY"));
    assert_eq!(spy.current_value, dec!(65000));
    assert_eq!(spy.current_weight, dec!(61.9048));
    assert_eq!(spy.drift, dec!(1.9048));
    assert_near(spy.expected_weight, dec!(60), dec!(0.0001));
    let cash = drift_of(&plan, None);
    assert_eq!(cash.target_weight, dec!(5));
    assert_eq!(cash.current_weight, dec!(4.7619));
    assert_eq!(cash.expected_value, plan.cash_after);
}

#[test]
fn minimum_of_zero_places_every_cent() {
    let scenario = ten_dollars_over_eleven_assets().minimum(dec!(0));
    let plan = scenario.plan(PlanKind::InvestCash);
    assert_eq!(plan.orders.len(), 11);
    assert!(
        plan.orders
            .iter()
            .all(|order| order.notional == Some(dec!(0.90)))
    );
}

#[test]
fn an_asset_minimum_order_raises_the_portfolio_minimum_for_that_asset() {
    // $10,000 all cash into Balanced: SPY wants $6,000, TLT $3,500. TLT's
    // own minimum order is $5,000: its buy is refused, SPY's is placed.
    let mut scenario = Scenario::balanced(dec!(10000));
    scenario.asset_rules = vec![AssetRule {
        symbol: symbol("TLT"),
        minimum_order_notional: Some(dec!(5000)),
        minimum_drift: None,
    }];
    let plan = scenario.plan(PlanKind::FullRebalance);
    assert!(plan.orders.iter().any(|o| o.symbol == symbol("SPY")));
    assert!(plan.orders.iter().all(|o| o.symbol != symbol("TLT")));
    let refused = plan
        .skipped
        .iter()
        .find(|s| s.symbol == symbol("TLT"))
        .expect("TLT refused");
    assert_eq!(refused.reason, SkipReason::InsufficientCash, "{refused:?}");
    assert!(
        refused.detail.contains("minimum order of $5000"),
        "{refused:?}"
    );
}

#[test]
fn a_full_rebalance_leaves_an_asset_within_its_minimum_drift_alone() {
    // $100,000 at SPY 62 / TLT 33 / cash 5: SPY is 2 points over, TLT 2
    // under. With a 3-point minimum drift on both, nothing trades.
    let base = Scenario::balanced(dec!(5000))
        .hold("SPY", dec!(124))
        .hold("TLT", dec!(330));
    let rule = |ticker: &str| AssetRule {
        symbol: symbol(ticker),
        minimum_order_notional: None,
        minimum_drift: Some(dec!(3)),
    };
    let mut both = base.clone();
    both.asset_rules = vec![rule("SPY"), rule("TLT")];
    let plan = both.plan(PlanKind::FullRebalance);
    assert!(plan.orders.is_empty(), "{:?}", plan.orders);
    let reasons: Vec<SkipReason> = plan.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [SkipReason::BelowMinimumDrift, SkipReason::BelowMinimumDrift]
    );
    assert!(
        plan.skipped[0]
            .detail
            .contains("within its minimum drift of 3"),
        "{:?}",
        plan.skipped
    );
    // Without rules the same account trades both back to target.
    let plan = base.plan(PlanKind::FullRebalance);
    assert_eq!(plan.orders.len(), 2, "{:?}", plan.orders);
    // Investing cash is not a rebalance: the minimum drift does not apply.
    let mut deposit = both.clone();
    deposit.account.cash += dec!(10000);
    let plan = deposit.plan(PlanKind::InvestCash);
    assert!(plan.orders.iter().any(|o| o.symbol == symbol("TLT")));
}

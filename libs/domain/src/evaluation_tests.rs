use chrono::{TimeZone, Weekday};
use rust_decimal_macros::dec;

use super::*;
use crate::Symbol;
use crate::calendar::sessions_between;
use crate::portfolio::{BandKind, DriftBand};

fn balanced() -> Vec<Weight> {
    vec![
        Weight::cash(dec!(5)),
        Weight::asset(Symbol::parse("SPY").expect("symbol"), dec!(60)),
        Weight::asset(Symbol::parse("TLT").expect("symbol"), dec!(35)),
    ]
}

fn bands() -> Vec<RebalanceCondition> {
    vec![
        RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Absolute,
            percent: dec!(5),
            symbol: None,
        }),
        RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Relative,
            percent: dec!(20),
            symbol: None,
        }),
    ]
}

fn prices() -> Prices {
    [("SPY".to_owned(), dec!(500)), ("TLT".to_owned(), dec!(100))]
        .into_iter()
        .collect()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 45, 0)
        .single()
        .expect("valid")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid")
}

struct Case {
    weights: Vec<Weight>,
    conditions: Vec<RebalanceCondition>,
    cooldown_days: u32,
    status: PortfolioStatus,
    changed: Option<DateTime<Utc>>,
    cash: Decimal,
    positions: Vec<(String, Decimal)>,
    restrictions: Vec<Restriction>,
    pending: Vec<PendingMovement>,
    open_run: bool,
    last_rebalanced: Option<DateTime<Utc>>,
    prices: Prices,
    rebalancing_enabled: bool,
    rebalance_to: RebalanceTo,
}

impl Case {
    /// $100,000 exactly on the Balanced target, rebalanced 30 days ago.
    fn on_target() -> Self {
        Self {
            weights: balanced(),
            conditions: bands(),
            cooldown_days: 7,
            status: PortfolioStatus::Active,
            changed: None,
            cash: dec!(5000),
            positions: vec![("SPY".to_owned(), dec!(120)), ("TLT".to_owned(), dec!(350))],
            restrictions: Vec::new(),
            pending: Vec::new(),
            open_run: false,
            last_rebalanced: Some(now() - Duration::days(30)),
            prices: prices(),
            rebalancing_enabled: true,
            rebalance_to: RebalanceTo::Target,
        }
    }

    /// Evaluates the case (leaking its inputs, so the evaluation, which
    /// borrows symbols from them, outlives the case).
    fn evaluate_on(&self, today: NaiveDate, now: DateTime<Utc>) -> Evaluation<'static> {
        let prepared: &'static PreparedTarget = Box::leak(Box::new(
            PreparedTarget::new(
                self.weights.clone(),
                self.conditions.clone(),
                self.cooldown_days,
                dec!(10),
                self.status,
            )
            .rebalancing_to(self.rebalance_to),
        ));
        let positions: &'static [(String, Decimal)] =
            Box::leak(self.positions.clone().into_boxed_slice());
        let restrictions: &'static [Restriction] =
            Box::leak(self.restrictions.clone().into_boxed_slice());
        let pending: &'static [PendingMovement] =
            Box::leak(self.pending.clone().into_boxed_slice());
        let prices: &'static Prices = Box::leak(Box::new(self.prices.clone()));
        let target = TargetView {
            target: prepared,
            target_changed_at: self.changed,
        };
        evaluate(&EvaluationInput {
            today,
            now,
            assignment: AssignmentView::Active {
                target,
                rebalancing_enabled: self.rebalancing_enabled,
            },
            account: Some(AccountView {
                cash: self.cash,
                positions,
                restrictions,
                pending,
                open_run: self.open_run,
                last_rebalanced_at: self.last_rebalanced,
            }),
            prices,
            price_notes: &NO_PRICE_NOTES,
        })
    }

    fn evaluate(&self) -> Evaluation<'static> {
        self.evaluate_on(today(), now())
    }
}

#[test]
fn on_target_is_inside_tolerance() {
    let evaluation = Case::on_target().evaluate();
    assert_eq!(evaluation.flag, Flag::InsideTolerance);
    assert_eq!(evaluation.run, None);
    assert_eq!(evaluation.equity, dec!(100000));
    assert_eq!(evaluation.tickers.len(), 3);
    assert_eq!(evaluation.max_drift, dec!(0));
}

#[test]
fn drift_outside_a_band_is_out_of_tolerance() {
    let mut case = Case::on_target();
    // SPY to $80,000 of $120,000: 66.7% is above the 55-65 band.
    case.positions[0].1 = dec!(160);
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance, "{evaluation:?}");
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
    let spy = evaluation
        .tickers
        .iter()
        .find(|t| t.symbol == Some("SPY"))
        .expect("SPY");
    assert!(spy.breached);
    assert_eq!(spy.band_lower, Some(dec!(55)));
    assert_eq!(spy.band_upper, Some(dec!(65)));
}

#[test]
fn cooldown_blocks_a_full_rebalance_but_not_invest_cash() {
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.last_rebalanced = Some(now() - Duration::days(3));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run, None);
    assert!(evaluation.run_note.contains("cooldown"));

    case.cash += dec!(20000);
    case.pending.push(PendingMovement {
        id: "dep-1".to_owned(),
        kind: CashMovementKind::Deposit,
        amount: dec!(20000),
    });
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::NewDeposit);
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::InvestCash));
}

/// A New York wall-clock moment.
fn new_york(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let time = chrono::NaiveTime::from_hms_opt(hour, minute, 0).expect("valid");
    crate::calendar::at_new_york(date, time).expect("valid")
}

#[test]
fn cooldown_ends_on_the_calendar_day_at_any_hour() {
    // Rebalanced Monday 10:05 New York with one day of cooldown: Tuesday's
    // 09:45 cycle, 23h40m later, is eligible again.
    let monday = NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid");
    let tuesday = monday.succ_opt().expect("valid");
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.cooldown_days = 1;
    case.last_rebalanced = Some(new_york(monday, 10, 5));
    let evaluation = case.evaluate_on(tuesday, new_york(tuesday, 9, 45));
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(
        evaluation.run.map(|r| r.kind),
        Some(RunKind::FullRebalance),
        "{}",
        evaluation.run_note
    );
    // Later the same Monday it is still cooling down, and says until when.
    let evaluation = case.evaluate_on(monday, new_york(monday, 15, 0));
    assert_eq!(evaluation.run, None);
    assert_eq!(
        evaluation.run_note,
        "in cooldown: eligible again on 2026-03-03"
    );
}

#[test]
fn cooldown_days_are_counted_in_new_york_dates() {
    // Rebalanced Monday 21:00 New York, which is already Tuesday in UTC:
    // with a 7-day cooldown the account is eligible again the next Monday.
    let monday = NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid");
    let sunday = NaiveDate::from_ymd_opt(2026, 3, 8).expect("valid");
    let next_monday = NaiveDate::from_ymd_opt(2026, 3, 9).expect("valid");
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.cooldown_days = 7;
    case.last_rebalanced = Some(new_york(monday, 21, 0));
    let evaluation = case.evaluate_on(sunday, new_york(sunday, 9, 45));
    assert_eq!(evaluation.run, None);
    assert_eq!(
        evaluation.run_note,
        "in cooldown: eligible again on 2026-03-09"
    );
    let evaluation = case.evaluate_on(next_monday, new_york(next_monday, 9, 45));
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
}

#[test]
fn a_target_change_overrides_cooldown() {
    let mut case = Case::on_target();
    case.last_rebalanced = Some(now() - Duration::days(1));
    case.changed = Some(now() - Duration::hours(1));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
}

#[test]
fn a_newly_assigned_account_inside_its_bands_is_not_rebalanced() {
    let mut case = Case::on_target();
    case.last_rebalanced = None;
    case.changed = Some(now() - Duration::hours(1));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::InsideTolerance, "{evaluation:?}");
    assert_eq!(evaluation.run, None);
    // Without bands, only a rebalance puts it on its target.
    case.conditions
        .retain(|c| !matches!(c, RebalanceCondition::DriftBand(_)));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
}

#[test]
fn withdrawals_deposits_and_first_investment() {
    let mut case = Case::on_target();
    case.pending.push(PendingMovement {
        id: "wd-1".to_owned(),
        kind: CashMovementKind::Withdrawal,
        amount: dec!(5000),
    });
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::NewWithdrawal);
    let run = evaluation.run.expect("run");
    assert_eq!(
        (run.kind, run.amount),
        (RunKind::Liquidation, Some(dec!(5000)))
    );
    assert_eq!(run.cash_movement_id.as_deref(), Some("wd-1"));

    let mut fresh = Case::on_target();
    fresh.positions.clear();
    fresh.cash = dec!(100000);
    fresh.last_rebalanced = None;
    fresh.pending.push(PendingMovement {
        id: "dep-1".to_owned(),
        kind: CashMovementKind::Deposit,
        amount: dec!(100000),
    });
    let evaluation = fresh.evaluate();
    assert_eq!(evaluation.flag, Flag::NewDeposit);
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
}

#[test]
fn restrictions_and_portfolio_state_need_attention() {
    let mut case = Case::on_target();
    case.restrictions.push(Restriction::PatternDayTrader);
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::NeedsAttention);
    assert!(evaluation.reason.contains("pattern_day_trader"));

    let mut leveraged = Case::on_target();
    leveraged.cash = dec!(-91000);
    let evaluation = leveraged.evaluate();
    assert_eq!(evaluation.flag, Flag::NeedsAttention);
    assert!(evaluation.reason.contains("leverage"));

    let mut adjusting = Case::on_target();
    adjusting.status = PortfolioStatus::NeedsAdjustment;
    assert_eq!(adjusting.evaluate().flag, Flag::NeedsAttention);
}

#[test]
fn missing_prices_and_holdings_are_unable_to_check() {
    let mut case = Case::on_target();
    case.prices.remove("TLT");
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::UnableToCheck);
    assert_eq!(evaluation.missing, ["price:TLT"]);

    let prepared = PreparedTarget::new(balanced(), bands(), 0, dec!(10), PortfolioStatus::Active);
    let prices = prices();
    let evaluation = evaluate(&EvaluationInput {
        today: today(),
        now: now(),
        assignment: AssignmentView::Active {
            target: TargetView {
                target: &prepared,
                target_changed_at: None,
            },
            rebalancing_enabled: true,
        },
        account: None,
        prices: &prices,
        price_notes: &NO_PRICE_NOTES,
    });
    assert_eq!(evaluation.flag, Flag::UnableToCheck);
    assert_eq!(evaluation.missing, ["holdings"]);
}

#[test]
fn unassigned_accounts() {
    let prices = prices();
    let positions = vec![("SPY".to_owned(), dec!(1))];
    let account = AccountView {
        cash: dec!(10),
        positions: &positions,
        restrictions: &[],
        pending: &[],
        open_run: false,
        last_rebalanced_at: None,
    };
    let liquidate = evaluate(&EvaluationInput {
        today: today(),
        now: now(),
        assignment: AssignmentView::Liquidate,
        account: Some(account.clone()),
        prices: &prices,
        price_notes: &NO_PRICE_NOTES,
    });
    assert_eq!(liquidate.flag, Flag::Liquidation);
    assert_eq!(
        liquidate.run.map(|r| (r.kind, r.amount)),
        Some((RunKind::Liquidation, None))
    );
    let idle = evaluate(&EvaluationInput {
        today: today(),
        now: now(),
        assignment: AssignmentView::None,
        account: Some(account),
        prices: &prices,
        price_notes: &NO_PRICE_NOTES,
    });
    assert_eq!(idle.flag, Flag::NoPortfolioAssigned);
    assert_eq!(idle.run, None);
}

#[test]
fn an_open_run_or_rebalancing_off_means_no_new_run() {
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.open_run = true;
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run, None);
    assert!(evaluation.run_note.contains("in progress"));
}

#[test]
fn rebalancing_off_is_not_monitored_but_its_drift_is_measured() {
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.rebalancing_enabled = false;
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::RebalancingOff, "{evaluation:?}");
    assert_eq!(evaluation.reason, "rebalancing is off for this account");
    assert_eq!(evaluation.run, None);
    let spy = evaluation
        .tickers
        .iter()
        .find(|t| t.symbol == Some("SPY"))
        .expect("SPY drift");
    assert!(spy.breached);
    assert!(evaluation.max_drift > dec!(5), "{evaluation:?}");
    // A calendar day, a target change or cash to invest change nothing.
    case.conditions
        .push(RebalanceCondition::Calendar(CalendarRule::Weekly(
            Weekday::Mon,
        )));
    case.changed = Some(now() - Duration::hours(1));
    case.cash += dec!(20000);
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::RebalancingOff);
    assert_eq!(evaluation.run, None);
}

#[test]
fn a_withdrawal_with_rebalancing_off_is_shown_without_a_run() {
    let mut case = Case::on_target();
    case.rebalancing_enabled = false;
    case.pending.push(PendingMovement {
        id: "wd-1".to_owned(),
        kind: CashMovementKind::Withdrawal,
        amount: dec!(2000),
    });
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::NewWithdrawal);
    assert_eq!(evaluation.reason, "withdrawal request of 2000");
    assert_eq!(evaluation.run, None);
    assert_eq!(evaluation.run_note, "rebalancing is off for this account");
}

#[test]
fn per_asset_bands_override_the_portfolio_band() {
    let mut case = Case::on_target();
    case.conditions
        .push(RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Absolute,
            percent: dec!(1),
            symbol: Some(Symbol::parse("TLT").expect("symbol")),
        }));
    // TLT 33.67%: inside 30-40 but outside 34-36.
    case.positions[1].1 = dec!(330);
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance, "{evaluation:?}");
}

/// The 2026 trading days on which `rule` fires.
fn fired_in_2026(rule: CalendarRule) -> Vec<String> {
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid");
    let end = NaiveDate::from_ymd_opt(2026, 12, 31).expect("valid");
    sessions_between(start, end)
        .into_iter()
        .filter(|session| calendar_due(rule, session.date))
        .map(|session| session.date.to_string())
        .collect()
}

#[test]
fn quarterly_calendar_fires_on_the_right_trading_days() {
    let rule = CalendarRule::Quarterly {
        first_month: 1,
        day: 1,
    };
    let fired = fired_in_2026(rule);
    // Jan 1 is a holiday: 2026's rolls back to Dec 31, 2025 and 2027's to
    // Dec 31, 2026; Apr 1, Jul 1 and Oct 1 are trading days.
    assert_eq!(
        fired,
        ["2026-04-01", "2026-07-01", "2026-10-01", "2026-12-31"]
    );
    assert!(calendar_due(
        rule,
        NaiveDate::from_ymd_opt(2025, 12, 31).expect("valid")
    ));
}

#[test]
fn calendar_clamps_and_rolls_back() {
    // Monthly on the 31st: April has 30 days; 2026-05-31 is a Sunday → Friday 29th.
    let monthly = CalendarRule::Monthly(31);
    assert!(calendar_due(
        monthly,
        NaiveDate::from_ymd_opt(2026, 4, 30).expect("valid")
    ));
    assert!(calendar_due(
        monthly,
        NaiveDate::from_ymd_opt(2026, 5, 29).expect("valid")
    ));
    assert!(!calendar_due(
        monthly,
        NaiveDate::from_ymd_opt(2026, 5, 28).expect("valid")
    ));
    // Annually on 02-29: Feb 28 in common years (2026-02-28 is a Saturday → Friday 27th).
    let leap = CalendarRule::Annually { month: 2, day: 29 };
    assert!(calendar_due(
        leap,
        NaiveDate::from_ymd_opt(2026, 2, 27).expect("valid")
    ));
    assert!(calendar_due(
        leap,
        NaiveDate::from_ymd_opt(2028, 2, 29).expect("valid")
    ));
    // Weekly on Monday: Presidents' Day 2026-02-16 rolls back to Friday 13th.
    let weekly = CalendarRule::Weekly(Weekday::Mon);
    assert!(calendar_due(
        weekly,
        NaiveDate::from_ymd_opt(2026, 2, 13).expect("valid")
    ));
    assert!(!calendar_due(
        weekly,
        NaiveDate::from_ymd_opt(2026, 2, 17).expect("valid")
    ));
    assert!(calendar_due(
        weekly,
        NaiveDate::from_ymd_opt(2026, 2, 23).expect("valid")
    ));
}

#[test]
fn calendar_day_triggers_a_full_rebalance() {
    let mut case = Case::on_target();
    case.conditions
        .push(RebalanceCondition::Calendar(CalendarRule::Monthly(2)));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.reason, "calendar rebalance day");
}

#[test]
fn a_hybrid_policy_inside_its_band_does_not_trade_on_its_review_day() {
    // Monthly reviews on the 2nd (today) with the 5-point band: on target.
    let mut case = Case::on_target();
    case.conditions
        .push(RebalanceCondition::Review(CalendarRule::Monthly(2)));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::InsideTolerance);
    assert_eq!(evaluation.run, None);
    assert_eq!(
        evaluation.reason,
        "review day (monthly on day 2): inside tolerance"
    );
}

#[test]
fn a_hybrid_policy_outside_its_band_trades_on_its_review_day_only() {
    let mut case = Case::on_target();
    case.positions[0].1 = dec!(160);
    case.conditions
        .push(RebalanceCondition::Review(CalendarRule::Monthly(2)));
    case.rebalance_to = RebalanceTo::BandEdge;
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run.map(|r| r.kind), Some(RunKind::FullRebalance));
    assert!(
        evaluation
            .reason
            .starts_with("review day (monthly on day 2): SPY 66.67% outside 55-65"),
        "{}",
        evaluation.reason
    );
    assert!(evaluation.reason.ends_with("; to the band's edge"));

    // Reviews on the 15th: out of tolerance today, but no trade until then.
    case.conditions.pop();
    case.conditions
        .push(RebalanceCondition::Review(CalendarRule::Monthly(15)));
    let evaluation = case.evaluate();
    assert_eq!(evaluation.flag, Flag::OutOfTolerance);
    assert_eq!(evaluation.run, None);
    assert_eq!(
        evaluation.run_note,
        "hybrid policy: trades only on review days, next on 2026-03-13"
    );
}

#[test]
fn the_next_due_day_is_the_first_day_the_rule_fires() {
    let rules = [
        CalendarRule::Weekly(Weekday::Mon),
        CalendarRule::Monthly(31),
        CalendarRule::Monthly(1),
        CalendarRule::Quarterly {
            first_month: 2,
            day: 30,
        },
        CalendarRule::Annually { month: 1, day: 1 },
        CalendarRule::Annually { month: 2, day: 29 },
    ];
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid");
    for rule in rules {
        for offset in 0..400 {
            let today = start + Duration::days(offset);
            let brute = (0..550)
                .map(|ahead| today + Duration::days(ahead))
                .find(|day| calendar_due(rule, *day));
            assert_eq!(next_due(rule, today), brute, "{rule:?} from {today}");
        }
    }
}

#[test]
fn a_quarter_cycle_can_start_in_any_month() {
    // March, June, September and December, on the last day of the month.
    let rule = CalendarRule::Quarterly {
        first_month: 3,
        day: 31,
    };
    let fired = fired_in_2026(rule);
    assert_eq!(
        fired,
        ["2026-03-31", "2026-06-30", "2026-09-30", "2026-12-31"]
    );
}

mod exact_path {
    use proptest::prelude::*;

    use super::*;

    const SYMBOLS: [&str; 4] = ["AAA", "BBB", "CCC", "ZZZ"];

    fn target() -> PreparedTarget {
        PreparedTarget::new(
            vec![
                Weight::cash(dec!(2.5)),
                Weight::asset(Symbol::parse("AAA").expect("symbol"), dec!(40)),
                Weight::asset(Symbol::parse("BBB").expect("symbol"), dec!(37.5)),
                Weight::asset(Symbol::parse("CCC").expect("symbol"), dec!(20)),
            ],
            vec![
                RebalanceCondition::DriftBand(DriftBand {
                    kind: BandKind::Absolute,
                    percent: dec!(3),
                    symbol: None,
                }),
                RebalanceCondition::DriftBand(DriftBand {
                    kind: BandKind::Relative,
                    percent: dec!(12.5),
                    symbol: Some(Symbol::parse("CCC").expect("symbol")),
                }),
            ],
            0,
            dec!(10),
            PortfolioStatus::Active,
        )
    }

    proptest! {
        /// The integer fast path and the Decimal path agree exactly on values,
        /// equity and breaches, and on the drift summaries to 4 places.
        #[test]
        fn integer_and_decimal_paths_agree(
            cash_cents in -1_000_000_i64..10_000_000,
            holdings in proptest::collection::vec((0_usize..4, 1_i64..100_000_000, 0_u32..7, 1_i64..500_000), 0..5),
        ) {
            let prepared = target();
            let mut positions: Vec<(String, Decimal)> = Vec::new();
            let mut prices = Prices::default();
            for (symbol, quantity, scale, price_cents) in holdings {
                let symbol = SYMBOLS[symbol];
                if positions.iter().any(|(s, _)| s == symbol) {
                    continue;
                }
                positions.push((symbol.to_owned(), Decimal::new(quantity, scale)));
                prices.insert(symbol.to_owned(), Decimal::new(price_cents, 2));
            }
            for symbol in ["AAA", "BBB", "CCC"] {
                prices.entry(symbol.to_owned()).or_insert(dec!(100));
            }
            let account = AccountView {
                cash: Decimal::new(cash_cents, 2),
                positions: &positions,
                restrictions: &[],
                pending: &[],
                open_run: false,
                last_rebalanced_at: None,
            };
            let fixed = prepared.fixed.as_ref().expect("the target fits");
            let exact = measure_exact(&account, &prepared, fixed, &prices).expect("fits").expect("priced");
            let decimal = measure_decimal(&account, &prepared, &prices).expect("priced");
            prop_assert_eq!(exact.equity, decimal.equity);
            prop_assert_eq!(exact.tickers.len(), decimal.tickers.len());
            for (a, b) in exact.tickers.iter().zip(&decimal.tickers) {
                prop_assert_eq!(a.symbol, b.symbol);
                prop_assert_eq!(a.value, b.value);
                prop_assert_eq!(a.breached, b.breached, "{:?} vs {:?}", a, b);
            }
            prop_assert!((exact.max_drift - decimal.max_drift).abs() <= dec!(0.0001));
            prop_assert!((exact.total_drift - decimal.total_drift).abs() <= dec!(0.0001));
        }
    }
}

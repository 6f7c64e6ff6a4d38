//! Backtesting a rebalancing policy on monthly market history: stocks (the
//! S&P composite with dividends reinvested), bonds (a 10-year Treasury proxy
//! priced from its yield) and cash, rebalanced when the policy's drift bands
//! or calendar say so (on a review calendar: only outside the bands, the
//! hybrid policy), to target or to the band's edge, respecting its cooldown.
//! Reports what Vanguard's *Best practices for portfolio rebalancing* (2010)
//! tabulates: rebalancing events, average equity weight, annualized return
//! and volatility; and turnover and drift. Everything in Decimal.

use rust_decimal::Decimal;

use crate::band_edge::{EdgeSlot, edge_weights};
use crate::evaluation;
use crate::portfolio::{CalendarRule, RebalanceCondition, RebalanceTo};

/// One month of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
    /// Index level (average of daily closes).
    pub stock_price: Decimal,
    /// Annualized dividend of the index.
    pub dividend: Decimal,
    /// 10-year Treasury yield, percent.
    pub long_rate: Decimal,
}

/// The three sleeves of a simulated account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sleeve {
    Stocks,
    Bonds,
    Cash,
}

/// A rebalancing policy over the sleeves.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Percent per sleeve, summing to 100.
    pub weights: Vec<(Sleeve, Decimal)>,
    /// Drift bands (a band's symbol "STOCKS" or "BONDS" overrides for that
    /// sleeve) and at most one calendar or review condition. Bands without
    /// a calendar are checked every month (the history is monthly).
    pub conditions: Vec<RebalanceCondition>,
    pub cooldown_days: u32,
    pub rebalance_to: RebalanceTo,
}

/// One simulated rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    pub year: i32,
    pub month: u32,
    pub reason: String,
    /// Traded value over account value, percent.
    pub turnover: Decimal,
}

/// What the policy did over the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub final_value: Decimal,
    pub buy_and_hold_value: Decimal,
    pub rebalances: Vec<Rebalance>,
    pub total_turnover_percent: Decimal,
    pub max_drift: Decimal,
    pub annualized_return_percent: Decimal,
    /// Standard deviation of the monthly returns × √12, percent.
    pub annualized_volatility_percent: Decimal,
    /// Stocks' share of the account at each month's end, averaged, percent.
    pub average_equity_percent: Decimal,
    pub final_equity_percent: Decimal,
}

/// Modified duration of a 10-year par bond, roughly.
const BOND_DURATION: Decimal = Decimal::from_parts(75, 0, 0, false, 1);
const TWELVE: Decimal = Decimal::from_parts(12, 0, 0, false, 0);
const SLEEVES: [Sleeve; 3] = [Sleeve::Stocks, Sleeve::Bonds, Sleeve::Cash];

/// Monthly returns of each sleeve from month `i - 1` to month `i`.
fn returns(previous: &Month, current: &Month) -> [(Sleeve, Decimal); 3] {
    let stocks = if previous.stock_price > Decimal::ZERO {
        (current.stock_price + current.dividend / TWELVE) / previous.stock_price - Decimal::ONE
    } else {
        Decimal::ZERO
    };
    let yield_before = previous.long_rate / Decimal::ONE_HUNDRED;
    let yield_after = current.long_rate / Decimal::ONE_HUNDRED;
    let bonds = yield_before / TWELVE + BOND_DURATION * (yield_before - yield_after);
    [
        (Sleeve::Stocks, stocks),
        (Sleeve::Bonds, bonds),
        (Sleeve::Cash, Decimal::ZERO),
    ]
}

fn sleeve_name(sleeve: Sleeve) -> &'static str {
    match sleeve {
        Sleeve::Stocks => "STOCKS",
        Sleeve::Bonds => "BONDS",
        Sleeve::Cash => "cash",
    }
}

/// The allowed range of `sleeve` around `target`, percent, as evaluation
/// has it; `None` without a band (cash never has one).
fn band(policy: &Policy, sleeve: Sleeve, target: Decimal) -> Option<(Decimal, Decimal)> {
    if sleeve == Sleeve::Cash {
        return None;
    }
    let (lower, upper) = evaluation::band(&policy.conditions, sleeve_name(sleeve), target);
    lower.zip(upper)
}

/// Whether a calendar rule falls in `month` (weekly and monthly rules fall
/// in every month of monthly data).
fn due_in(rule: CalendarRule, month: u32) -> bool {
    match rule {
        CalendarRule::Weekly(_) | CalendarRule::Monthly(_) => true,
        CalendarRule::Quarterly { first_month, .. } => month % 3 == first_month % 3,
        CalendarRule::Annually { month: due, .. } => due == month,
    }
}

/// Percent per sleeve after a rebalance from `weights`: the targets, or for
/// [`RebalanceTo::BandEdge`] what [`edge_weights`] makes of them (cash is
/// the sleeve that settles the difference).
fn rebalanced_weights(
    policy: &Policy,
    targets: [Decimal; 3],
    weights: [Decimal; 3],
) -> [Decimal; 3] {
    if policy.rebalance_to == RebalanceTo::Target {
        return targets;
    }
    // Cash first, then stocks and bonds.
    let order = [2, 0, 1];
    let slots: Vec<EdgeSlot> = order
        .iter()
        .map(|position| EdgeSlot {
            target: targets[*position],
            current: weights[*position],
            band: band(policy, SLEEVES[*position], targets[*position]),
        })
        .collect();
    let next = edge_weights(&slots);
    let mut result = [Decimal::ZERO; 3];
    for (position, weight) in order.iter().zip(next) {
        result[*position] = weight;
    }
    result
}

/// Simulates `policy` over `history` (consecutive months) from `initial`.
#[must_use]
pub fn simulate(history: &[Month], policy: &Policy, initial: Decimal) -> Outcome {
    let target = |sleeve: Sleeve| {
        policy
            .weights
            .iter()
            .filter(|(s, _)| *s == sleeve)
            .map(|(_, w)| *w)
            .sum::<Decimal>()
    };
    let targets = SLEEVES.map(target);
    let split = |value: Decimal, weights: [Decimal; 3]| -> [Decimal; 3] {
        weights.map(|w| value * w / Decimal::ONE_HUNDRED)
    };
    let calendar = policy.conditions.iter().find_map(|c| match c {
        RebalanceCondition::Calendar(rule) => Some(*rule),
        _ => None,
    });
    let review = policy.conditions.iter().find_map(|c| match c {
        RebalanceCondition::Review(rule) => Some(*rule),
        _ => None,
    });
    let mut holdings = split(initial, targets);
    let mut held = split(initial, targets);
    let mut rebalances = Vec::new();
    let mut turnover_total = Decimal::ZERO;
    let mut max_drift = Decimal::ZERO;
    let mut monthly_returns = Vec::with_capacity(history.len());
    let mut equity_sum = Decimal::ZERO;
    let mut equity_last = targets[0];
    let cooldown_months = i64::from(policy.cooldown_days.div_ceil(30));
    let mut last_rebalance: Option<i64> = None;
    for (index, pair) in history.windows(2).enumerate() {
        let [previous, current] = pair else { continue };
        let before: Decimal = holdings.iter().sum();
        let growth = returns(previous, current);
        for (slot, (_, r)) in holdings.iter_mut().zip(growth) {
            *slot *= Decimal::ONE + r;
        }
        for (slot, (_, r)) in held.iter_mut().zip(growth) {
            *slot *= Decimal::ONE + r;
        }
        let value: Decimal = holdings.iter().sum();
        if value <= Decimal::ZERO || before <= Decimal::ZERO {
            break;
        }
        monthly_returns.push(value / before - Decimal::ONE);
        let weights = holdings.map(|h| h * Decimal::ONE_HUNDRED / value);
        let mut breaches = Vec::new();
        for (position, sleeve) in SLEEVES.iter().enumerate() {
            let drift = (weights[position] - targets[position]).abs();
            max_drift = max_drift.max(drift);
            if let Some((low, high)) = band(policy, *sleeve, targets[position])
                && (weights[position] < low || weights[position] > high)
            {
                breaches.push(format!(
                    "{} at {}%",
                    sleeve_name(*sleeve),
                    weights[position].round_dp(2)
                ));
            }
        }
        let calendar_due = calendar.is_some_and(|rule| due_in(rule, current.month));
        let review_due = review.is_none_or(|rule| due_in(rule, current.month));
        let mut reasons = if review_due { breaches } else { Vec::new() };
        if calendar_due {
            reasons.push("calendar".to_owned());
        }
        let month_index = i64::try_from(index).unwrap_or(i64::MAX);
        let cooled = last_rebalance.is_none_or(|last| month_index - last >= cooldown_months);
        if !reasons.is_empty() && cooled {
            let rebalanced = split(value, rebalanced_weights(policy, targets, weights));
            let traded: Decimal = holdings
                .iter()
                .zip(&rebalanced)
                .map(|(a, b)| (a - b).abs())
                .sum::<Decimal>()
                / Decimal::TWO;
            let turnover = (traded * Decimal::ONE_HUNDRED / value).round_dp(4);
            turnover_total += turnover;
            holdings = rebalanced;
            last_rebalance = Some(month_index);
            rebalances.push(Rebalance {
                year: current.year,
                month: current.month,
                reason: reasons.join(", "),
                turnover,
            });
        }
        equity_last = holdings[0] * Decimal::ONE_HUNDRED / value;
        equity_sum += equity_last;
    }
    let final_value: Decimal = holdings.iter().sum();
    let years = Decimal::from(history.len().saturating_sub(1)) / TWELVE;
    let months = Decimal::from(monthly_returns.len().max(1));
    Outcome {
        final_value: final_value.round_dp(2),
        buy_and_hold_value: held.iter().sum::<Decimal>().round_dp(2),
        rebalances,
        total_turnover_percent: turnover_total.round_dp(2),
        max_drift: max_drift.round_dp(4),
        annualized_return_percent: annualized(initial, final_value, years),
        annualized_volatility_percent: annualized_volatility(&monthly_returns),
        average_equity_percent: (equity_sum / months).round_dp(2),
        final_equity_percent: equity_last.round_dp(2),
    }
}

/// Standard deviation of monthly returns (a sample's) × √12, percent.
fn annualized_volatility(returns: &[Decimal]) -> Decimal {
    if returns.len() < 2 {
        return Decimal::ZERO;
    }
    let count = Decimal::from(returns.len());
    let mean = returns.iter().sum::<Decimal>() / count;
    let variance = returns
        .iter()
        .map(|r| (r - mean) * (r - mean))
        .sum::<Decimal>()
        / (count - Decimal::ONE);
    (square_root(variance * TWELVE) * Decimal::ONE_HUNDRED).round_dp(2)
}

/// √x by Newton's method, in Decimal.
fn square_root(x: Decimal) -> Decimal {
    if x <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let mut root = if x > Decimal::ONE {
        x / Decimal::TWO
    } else {
        Decimal::ONE
    };
    for _ in 0..100 {
        let next = (root + x / root) / Decimal::TWO;
        if (next - root).abs() < Decimal::new(1, 20) {
            return next;
        }
        root = next;
    }
    root
}

/// Compound annual growth, percent, by bisection (no floating point).
fn annualized(initial: Decimal, last: Decimal, years: Decimal) -> Decimal {
    if initial <= Decimal::ZERO || last <= Decimal::ZERO || years <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let ratio = last / initial;
    let whole_years = years.trunc();
    let grows_to = |rate: Decimal| -> Decimal {
        let factor = Decimal::ONE + rate;
        let mut value = Decimal::ONE;
        let mut year = Decimal::ZERO;
        while year < whole_years {
            value *= factor;
            year += Decimal::ONE;
            if value > Decimal::from(1_000_000_000) {
                break;
            }
        }
        // The fraction of a year, linearly: close enough for a report.
        value * (Decimal::ONE + rate * (years - whole_years))
    };
    let (mut low, mut high) = (Decimal::from(-99) / Decimal::ONE_HUNDRED, Decimal::ONE);
    for _ in 0..60 {
        let middle = (low + high) / Decimal::TWO;
        if grows_to(middle) < ratio {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low * Decimal::ONE_HUNDRED).round_dp(2)
}

/// Parses the Shiller monthly CSV (Date,SP500,Dividend,Earnings,CPI,Long
/// Interest Rate,...); rows without a price or rate are skipped.
#[must_use]
pub fn parse_shiller(csv: &str) -> Vec<Month> {
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let date = fields.first()?;
            let mut parts = date.split('-');
            let year = parts.next()?.parse().ok()?;
            let month = parts.next()?.parse().ok()?;
            let number =
                |index: usize| -> Option<Decimal> { fields.get(index)?.trim().parse().ok() };
            let month = Month {
                year,
                month,
                stock_price: number(1)?,
                dividend: number(2).unwrap_or_default(),
                long_rate: number(5)?,
            };
            (month.stock_price > Decimal::ZERO && month.long_rate > Decimal::ZERO).then_some(month)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::portfolio::{BandKind, DriftBand};

    fn history() -> Vec<Month> {
        // Stocks double in a year while bonds are flat (rate unchanged, 0%).
        (0..13)
            .map(|i| Month {
                year: 2000,
                month: (i % 12) + 1,
                stock_price: dec!(100) + Decimal::from(i) * dec!(100) / dec!(12),
                dividend: dec!(0),
                long_rate: dec!(0.0000001),
            })
            .collect()
    }

    #[test]
    fn bands_trigger_rebalances_that_beat_nothing_in_a_one_way_market() {
        let policy = Policy {
            weights: vec![(Sleeve::Stocks, dec!(60)), (Sleeve::Bonds, dec!(40))],
            conditions: vec![RebalanceCondition::DriftBand(DriftBand {
                kind: BandKind::Absolute,
                percent: dec!(5),
                symbol: None,
            })],
            cooldown_days: 0,
            rebalance_to: RebalanceTo::Target,
        };
        let outcome = simulate(&history(), &policy, dec!(10000));
        assert!(!outcome.rebalances.is_empty());
        assert!(outcome.buy_and_hold_value > outcome.final_value);
        assert!(outcome.max_drift > dec!(5));
        assert!(outcome.total_turnover_percent > dec!(0));
    }

    #[test]
    fn a_long_cooldown_limits_rebalances() {
        let mut policy = Policy {
            weights: vec![(Sleeve::Stocks, dec!(60)), (Sleeve::Bonds, dec!(40))],
            conditions: vec![RebalanceCondition::Calendar(CalendarRule::Monthly(1))],
            cooldown_days: 0,
            rebalance_to: RebalanceTo::Target,
        };
        assert_eq!(
            simulate(&history(), &policy, dec!(10000)).rebalances.len(),
            12
        );
        policy.cooldown_days = 90;
        assert_eq!(
            simulate(&history(), &policy, dec!(10000)).rebalances.len(),
            4
        );
    }

    fn sixty_forty(conditions: Vec<RebalanceCondition>, rebalance_to: RebalanceTo) -> Policy {
        Policy {
            weights: vec![(Sleeve::Stocks, dec!(60)), (Sleeve::Bonds, dec!(40))],
            conditions,
            cooldown_days: 0,
            rebalance_to,
        }
    }

    fn band(percent: Decimal) -> RebalanceCondition {
        RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Absolute,
            percent,
            symbol: None,
        })
    }

    #[test]
    fn a_review_calendar_trades_only_outside_the_bands() {
        // Stocks climb 100 → 200 over the year; a 10-point band is crossed
        // in the fourth month or so. Monthly reviews trade only from then on;
        // a plain monthly calendar trades every month.
        let calendar = sixty_forty(
            vec![RebalanceCondition::Calendar(CalendarRule::Monthly(1))],
            RebalanceTo::Target,
        );
        let hybrid = sixty_forty(
            vec![
                band(dec!(10)),
                RebalanceCondition::Review(CalendarRule::Monthly(1)),
            ],
            RebalanceTo::Target,
        );
        let every_month = simulate(&history(), &calendar, dec!(10000));
        let reviewed = simulate(&history(), &hybrid, dec!(10000));
        assert_eq!(every_month.rebalances.len(), 12);
        assert!(!reviewed.rebalances.is_empty());
        assert!(reviewed.rebalances.len() < 12);
        assert!(
            reviewed
                .rebalances
                .iter()
                .all(|r| r.reason.contains("STOCKS at"))
        );
        // Quarterly reviews in March, June, September, December only.
        let quarterly = sixty_forty(
            vec![
                band(dec!(1)),
                RebalanceCondition::Review(CalendarRule::Quarterly {
                    first_month: 3,
                    day: 31,
                }),
            ],
            RebalanceTo::Target,
        );
        let months: Vec<u32> = simulate(&history(), &quarterly, dec!(10000))
            .rebalances
            .iter()
            .map(|r| r.month)
            .collect();
        assert_eq!(months, vec![3, 6, 9, 12]);
    }

    #[test]
    fn rebalancing_to_the_band_edge_trades_less_and_stays_on_the_edge() {
        let to_target = simulate(
            &history(),
            &sixty_forty(vec![band(dec!(5))], RebalanceTo::Target),
            dec!(10000),
        );
        let to_edge = simulate(
            &history(),
            &sixty_forty(vec![band(dec!(5))], RebalanceTo::BandEdge),
            dec!(10000),
        );
        assert!(to_edge.total_turnover_percent < to_target.total_turnover_percent);
        assert!(to_edge.average_equity_percent > to_target.average_equity_percent);
        // Right after each rebalance stocks sit on the 65% edge.
        assert_eq!(to_edge.final_equity_percent, dec!(65));
    }

    #[test]
    fn never_rebalancing_lets_equity_drift_and_reports_volatility() {
        let outcome = simulate(
            &history(),
            &sixty_forty(Vec::new(), RebalanceTo::Target),
            dec!(10000),
        );
        assert!(outcome.rebalances.is_empty());
        assert_eq!(outcome.final_value, outcome.buy_and_hold_value);
        assert!(outcome.final_equity_percent > dec!(70));
        assert!(outcome.average_equity_percent > dec!(60));
        assert!(outcome.annualized_volatility_percent > dec!(0));
        assert_eq!(square_root(dec!(2.25)), dec!(1.5));
    }

    #[test]
    fn parses_shiller_rows() {
        let csv = "Date,SP500,Dividend,Earnings,Consumer Price Index,Long Interest Rate\n\
                   1871-01-01,4.44,0.26,0.4,12.46,5.32\n2026-06-01,0,0,0,0,0\n";
        let months = parse_shiller(csv);
        assert_eq!(months.len(), 1);
        assert_eq!(months[0].stock_price, dec!(4.44));
        assert_eq!(months[0].long_rate, dec!(5.32));
    }
}

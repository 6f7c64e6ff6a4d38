//! Backtesting a rebalancing policy on monthly market history: stocks (the
//! S&P composite with dividends reinvested), bonds (a 10-year Treasury proxy
//! priced from its yield) and cash, rebalanced when the policy's drift bands
//! or calendar say so, respecting its cooldown. Everything in Decimal.

use rust_decimal::Decimal;

use crate::portfolio::{BandKind, CalendarRule, RebalanceCondition};

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
    /// sleeve) and at most one calendar condition.
    pub conditions: Vec<RebalanceCondition>,
    pub cooldown_days: u32,
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
}

/// Modified duration of a 10-year par bond, roughly.
const BOND_DURATION: Decimal = Decimal::from_parts(75, 0, 0, false, 1);
const TWELVE: Decimal = Decimal::from_parts(12, 0, 0, false, 0);

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

/// Whether `current` percent is outside the policy's band for `sleeve`.
fn breached(policy: &Policy, sleeve: Sleeve, target: Decimal, current: Decimal) -> bool {
    if sleeve == Sleeve::Cash {
        return false;
    }
    let band = |kind: BandKind| {
        let mut general = None;
        for condition in &policy.conditions {
            if let RebalanceCondition::DriftBand(band) = condition
                && band.kind == kind
            {
                match &band.symbol {
                    Some(symbol) if symbol.as_str() == sleeve_name(sleeve) => {
                        return Some(band.percent);
                    }
                    Some(_) => {}
                    None => general = Some(band.percent),
                }
            }
        }
        general
    };
    let drift = (current - target).abs();
    band(BandKind::Absolute).is_some_and(|width| drift > width)
        || band(BandKind::Relative)
            .is_some_and(|width| drift > target * width / Decimal::ONE_HUNDRED)
}

/// Whether a calendar condition fires in a month (weekly fires monthly on
/// monthly data).
fn calendar_month(policy: &Policy, month: u32) -> bool {
    policy.conditions.iter().any(|condition| match condition {
        RebalanceCondition::Calendar(CalendarRule::Weekly(_) | CalendarRule::Monthly(_)) => true,
        RebalanceCondition::Calendar(CalendarRule::Quarterly(_)) => matches!(month, 1 | 4 | 7 | 10),
        RebalanceCondition::Calendar(CalendarRule::Annually { month: due, .. }) => *due == month,
        RebalanceCondition::DriftBand(_) => false,
    })
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
    let sleeves = [Sleeve::Stocks, Sleeve::Bonds, Sleeve::Cash];
    let start = |value: Decimal| -> [Decimal; 3] {
        sleeves.map(|s| value * target(s) / Decimal::ONE_HUNDRED)
    };
    let mut holdings = start(initial);
    let mut held = start(initial);
    let mut rebalances = Vec::new();
    let mut turnover_total = Decimal::ZERO;
    let mut max_drift = Decimal::ZERO;
    let cooldown_months = i64::from(policy.cooldown_days.div_ceil(30));
    let mut last_rebalance: Option<i64> = None;
    for (index, pair) in history.windows(2).enumerate() {
        let [previous, current] = pair else { continue };
        let growth = returns(previous, current);
        for (slot, (_, r)) in holdings.iter_mut().zip(growth) {
            *slot *= Decimal::ONE + r;
        }
        for (slot, (_, r)) in held.iter_mut().zip(growth) {
            *slot *= Decimal::ONE + r;
        }
        let value: Decimal = holdings.iter().sum();
        if value <= Decimal::ZERO {
            break;
        }
        let weights = holdings.map(|h| h * Decimal::ONE_HUNDRED / value);
        let mut reasons = Vec::new();
        for (position, sleeve) in sleeves.iter().enumerate() {
            let drift = (weights[position] - target(*sleeve)).abs();
            max_drift = max_drift.max(drift);
            if breached(policy, *sleeve, target(*sleeve), weights[position]) {
                reasons.push(format!(
                    "{} at {}%",
                    sleeve_name(*sleeve),
                    weights[position].round_dp(2)
                ));
            }
        }
        if calendar_month(policy, current.month) {
            reasons.push("calendar".to_owned());
        }
        let month_index = i64::try_from(index).unwrap_or(i64::MAX);
        let cooled = last_rebalance.is_none_or(|last| month_index - last >= cooldown_months);
        if reasons.is_empty() || !cooled {
            continue;
        }
        let rebalanced = start(value);
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
    let final_value: Decimal = holdings.iter().sum();
    let years = Decimal::from(history.len().saturating_sub(1)) / TWELVE;
    Outcome {
        final_value: final_value.round_dp(2),
        buy_and_hold_value: held.iter().sum::<Decimal>().round_dp(2),
        rebalances,
        total_turnover_percent: turnover_total.round_dp(2),
        max_drift: max_drift.round_dp(4),
        annualized_return_percent: annualized(initial, final_value, years),
    }
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
    use crate::portfolio::DriftBand;

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

//! `SimulatePolicy`: backtests a rebalancing policy (weights over STOCKS,
//! BONDS and cash; drift bands; a calendar or review calendar; a cooldown;
//! to target or to the band's edge) on Robert Shiller's monthly S&P history,
//! embedded in the binary, and optionally a grid of policies over the same
//! weights and months, as Vanguard's study tabulates them. Pure
//! computation: it reads nothing from the database and changes nothing.

use std::sync::OnceLock;

use chrono::NaiveDate;
use rebalancer_domain::Violations;
use rebalancer_domain::backtest::{self, Month, Outcome, Policy, Sleeve};
use rebalancer_domain::decimal::parse_decimal;
use rebalancer_domain::portfolio::{
    BandKind, CalendarRule, ConditionInput, ConditionSubKind, DriftBand, RebalanceCondition,
    RebalanceTo, TargetInput, WeightInput, WeightTarget,
};
use rust_decimal::Decimal;

/// The monthly series, 1871-01 to 2026-06 (ODC PDDL).
const SHILLER_CSV: &str = include_str!("shiller.csv");

/// The history, parsed once.
fn history() -> &'static [Month] {
    static HISTORY: OnceLock<Vec<Month>> = OnceLock::new();
    HISTORY.get_or_init(|| backtest::parse_shiller(SHILLER_CSV))
}

/// A policy as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SimulationInput {
    pub weights: Vec<WeightInput>,
    pub conditions: Vec<ConditionInput>,
    pub cooldown_days: i32,
    /// `YYYY-MM`; empty means the first month with data.
    pub start_month: String,
    /// `YYYY-MM`; empty means the last month with data.
    pub end_month: String,
    /// Starting value; empty means 10000.
    pub initial_value: String,
    /// `None`: to target.
    pub rebalance_to: Option<RebalanceTo>,
    pub grid: Option<GridInput>,
}

/// A grid of policies as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct GridInput {
    /// `None` for an unknown or unspecified sub-type.
    pub monitoring: Vec<Option<ConditionSubKind>>,
    pub thresholds: Vec<String>,
    pub rebalance_to: Vec<Option<RebalanceTo>>,
    pub include_never: bool,
}

/// One policy of a grid and how it did.
#[derive(Debug, Clone)]
pub struct GridResult {
    pub label: String,
    pub conditions: Vec<RebalanceCondition>,
    pub rebalance_to: RebalanceTo,
    pub outcome: Outcome,
}

/// The requested policy's outcome and the grid's.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub outcome: Outcome,
    pub grid: Vec<GridResult>,
}

/// Policies one grid may hold at most.
const MAX_GRID: usize = 200;

/// The grid's policies, validated: label, conditions, where to.
fn grid_policies(
    grid: &GridInput,
    violations: &mut Violations,
) -> Vec<(String, Vec<RebalanceCondition>, RebalanceTo)> {
    let mut calendars = Vec::new();
    for (index, sub_kind) in grid.monitoring.iter().enumerate() {
        let rule = match sub_kind {
            Some(ConditionSubKind::Monthly) => ("monthly", CalendarRule::Monthly(31)),
            Some(ConditionSubKind::Quarterly) => (
                "quarterly",
                CalendarRule::Quarterly {
                    first_month: 3,
                    day: 31,
                },
            ),
            Some(ConditionSubKind::Annually) => {
                ("annually", CalendarRule::Annually { month: 12, day: 31 })
            }
            _ => {
                violations.add(
                    format!("grid.monitoring[{index}]"),
                    "must be monthly, quarterly or annually (the history is monthly)",
                );
                continue;
            }
        };
        calendars.push(rule);
    }
    let mut thresholds = Vec::new();
    for (index, text) in grid.thresholds.iter().enumerate() {
        match parse_decimal(text) {
            Ok(value)
                if value >= Decimal::ZERO
                    && value <= Decimal::ONE_HUNDRED
                    && value.normalize().scale() <= 4 =>
            {
                thresholds.push(value.normalize());
            }
            _ => violations.add(
                format!("grid.thresholds[{index}]"),
                format!("{text:?} must be a percent from 0 to 100 with at most 4 decimals"),
            ),
        }
    }
    let mut targets = Vec::new();
    for (index, to) in grid.rebalance_to.iter().enumerate() {
        match to {
            Some(to) => targets.push(*to),
            None => violations.add(
                format!("grid.rebalance_to[{index}]"),
                "must be REBALANCE_TO_TARGET or REBALANCE_TO_BAND_EDGE",
            ),
        }
    }
    if targets.is_empty() {
        targets.push(RebalanceTo::Target);
    }
    if !grid.monitoring.is_empty() && grid.thresholds.is_empty() {
        violations.add("grid.thresholds", "is required with grid.monitoring");
    }
    if !grid.thresholds.is_empty() && grid.monitoring.is_empty() {
        violations.add("grid.monitoring", "is required with grid.thresholds");
    }
    let combinations = calendars
        .len()
        .saturating_mul(thresholds.len())
        .saturating_mul(targets.len())
        .saturating_add(usize::from(grid.include_never));
    if combinations > MAX_GRID {
        violations.add(
            "grid",
            format!("holds {combinations} policies, at most {MAX_GRID}"),
        );
        return Vec::new();
    }
    let mut policies = Vec::new();
    let mut labels = std::collections::HashSet::new();
    if grid.include_never {
        labels.insert("never".to_owned());
        policies.push(("never".to_owned(), Vec::new(), RebalanceTo::Target));
    }
    for (name, rule) in &calendars {
        for threshold in &thresholds {
            for to in &targets {
                let (conditions, to) = if threshold.is_zero() {
                    // Every monitoring date trades: there is no band edge.
                    (
                        vec![RebalanceCondition::Calendar(*rule)],
                        RebalanceTo::Target,
                    )
                } else {
                    let band = RebalanceCondition::DriftBand(DriftBand {
                        kind: BandKind::Absolute,
                        percent: *threshold,
                        symbol: None,
                    });
                    (vec![band, RebalanceCondition::Review(*rule)], *to)
                };
                let how = match to {
                    RebalanceTo::Target => "to target",
                    RebalanceTo::BandEdge => "to band edge",
                };
                let label = format!("{name} {threshold}% {how}");
                if labels.insert(label.clone()) {
                    policies.push((label, conditions, to));
                }
            }
        }
    }
    policies
}

/// Months (inclusive) simulated when the range is shorter than this are refused.
const MIN_MONTHS: usize = 2;

fn parse_month(field: &str, text: &str, violations: &mut Violations) -> Option<(i32, u32)> {
    if text.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
        Ok(date) if text.len() == 7 => Some((
            chrono::Datelike::year(&date),
            chrono::Datelike::month(&date),
        )),
        _ => {
            violations.add(field, "must be a month as YYYY-MM");
            None
        }
    }
}

/// Validates the request and runs the backtest.
///
/// # Errors
/// [`Violations`] naming each offending field.
pub fn simulate(input: SimulationInput) -> Result<Simulation, Violations> {
    let mut violations = Violations::new();
    let start = parse_month("start_month", &input.start_month, &mut violations);
    let end = parse_month("end_month", &input.end_month, &mut violations);
    let initial = if input.initial_value.is_empty() {
        Decimal::from(10_000)
    } else {
        match parse_decimal(&input.initial_value) {
            Ok(value) if value > Decimal::ZERO && value <= Decimal::from(1_000_000_000_000_i64) => {
                value
            }
            Ok(_) => {
                violations.add(
                    "initial_value",
                    "must be greater than 0 and at most 1000000000000",
                );
                Decimal::ONE
            }
            Err(error) => {
                violations.add("initial_value", error.to_string());
                Decimal::ONE
            }
        }
    };
    let grid = input
        .grid
        .as_ref()
        .map(|grid| grid_policies(grid, &mut violations))
        .unwrap_or_default();
    let spec = TargetInput {
        weights: input.weights,
        conditions: input.conditions,
        cooldown_days: input.cooldown_days,
        rebalance_to: input.rebalance_to,
        ..TargetInput::default()
    }
    .validate();
    let spec = match spec {
        Ok(spec) => Some(spec),
        Err(problems) => {
            for problem in problems.as_slice() {
                violations.add(problem.field.clone(), problem.description.clone());
            }
            None
        }
    };
    let mut weights = Vec::new();
    if let Some(spec) = &spec {
        for (index, weight) in spec.weights.iter().enumerate() {
            let sleeve = match &weight.target {
                WeightTarget::Cash => Some(Sleeve::Cash),
                WeightTarget::Asset(symbol) if symbol.as_str() == "STOCKS" => Some(Sleeve::Stocks),
                WeightTarget::Asset(symbol) if symbol.as_str() == "BONDS" => Some(Sleeve::Bonds),
                WeightTarget::Asset(_) => {
                    violations.add(
                        format!("weights[{index}].symbol"),
                        "the simulation knows STOCKS (the S&P composite) and BONDS (a 10-year Treasury)",
                    );
                    None
                }
                WeightTarget::Portfolio(_) => {
                    violations.add(
                        format!("weights[{index}].type"),
                        "sleeves cannot be simulated",
                    );
                    None
                }
            };
            if let Some(sleeve) = sleeve {
                weights.push((sleeve, weight.percent));
            }
        }
    }
    if let Some(spec) = &spec {
        for (index, condition) in spec.conditions.iter().enumerate() {
            if matches!(
                condition,
                RebalanceCondition::Calendar(CalendarRule::Weekly(_))
                    | RebalanceCondition::Review(CalendarRule::Weekly(_))
            ) {
                violations.add(
                    format!("rebalance_conditions[{index}].sub_type"),
                    "the history is monthly: a weekly calendar cannot be simulated (use monthly)",
                );
            }
        }
    }
    let all = history();
    // Months outside the history are refused, not quietly moved to its ends.
    let first = all.first().map_or((0, 0), |x| (x.year, x.month));
    let last = all.last().map_or((0, 0), |x| (x.year, x.month));
    for (field, month) in [("start_month", start), ("end_month", end)] {
        if let Some(month) = month
            && (month < first || month > last)
        {
            violations.add(
                field,
                format!(
                    "{}-{:02} is outside the history ({}-{:02} to {}-{:02})",
                    month.0, month.1, first.0, first.1, last.0, last.1
                ),
            );
        }
    }
    let from = start.map_or(0, |(y, m)| {
        all.iter()
            .position(|x| (x.year, x.month) >= (y, m))
            .unwrap_or(all.len())
    });
    let to = end.map_or(all.len(), |(y, m)| {
        all.iter()
            .rposition(|x| (x.year, x.month) <= (y, m))
            .map_or(0, |i| i + 1)
    });
    if violations.is_empty() && (to <= from || to - from < MIN_MONTHS) {
        violations.add(
            "end_month",
            format!(
                "the range must hold at least {MIN_MONTHS} months of data ({}-{:02} to {}-{:02} is available)",
                all.first().map_or(0, |m| m.year),
                all.first().map_or(0, |m| m.month),
                all.last().map_or(0, |m| m.year),
                all.last().map_or(0, |m| m.month),
            ),
        );
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    let Some(spec) = spec else {
        return Err(violations);
    };
    let months = &all[from..to];
    let policy = Policy {
        weights: weights.clone(),
        conditions: spec.conditions,
        cooldown_days: spec.cooldown_days,
        rebalance_to: spec.rebalance_to,
    };
    let outcome = backtest::simulate(months, &policy, initial);
    let grid = grid
        .into_iter()
        .map(|(label, conditions, rebalance_to)| {
            let policy = Policy {
                weights: weights.clone(),
                conditions: conditions.clone(),
                cooldown_days: spec.cooldown_days,
                rebalance_to,
            };
            GridResult {
                label,
                conditions,
                rebalance_to,
                outcome: backtest::simulate(months, &policy, initial),
            }
        })
        .collect();
    Ok(Simulation { outcome, grid })
}

#[cfg(test)]
mod tests {
    use rebalancer_domain::portfolio::{ConditionKind, ConditionSubKind, WeightKind};

    use super::*;

    fn weight(symbol: &str, percent: &str) -> WeightInput {
        WeightInput {
            kind: Some(if symbol.is_empty() {
                WeightKind::Cash
            } else {
                WeightKind::Asset
            }),
            symbol: symbol.to_owned(),
            percent: percent.to_owned(),
            portfolio_id: String::new(),
        }
    }

    fn band(percent: &str) -> ConditionInput {
        ConditionInput {
            kind: Some(ConditionKind::DriftBand),
            sub_kind: Some(ConditionSubKind::Absolute),
            percent: percent.to_owned(),
            day: String::new(),
            symbol: String::new(),
            only_outside_bands: false,
        }
    }

    #[test]
    fn the_embedded_history_spans_a_century_and_a_half() {
        let all = history();
        assert!(all.len() > 1800, "{} months", all.len());
        assert_eq!((all[0].year, all[0].month), (1871, 1));
    }

    #[test]
    fn a_sixty_forty_policy_over_two_decades() {
        let outcome = simulate(SimulationInput {
            weights: vec![weight("STOCKS", "60"), weight("BONDS", "40")],
            conditions: vec![band("5")],
            start_month: "2000-01".into(),
            end_month: "2019-12".into(),
            ..SimulationInput::default()
        })
        .expect("valid")
        .outcome;
        assert!(!outcome.rebalances.is_empty());
        assert!(outcome.final_value > Decimal::from(10_000));
        assert!(outcome.max_drift > Decimal::from(5));
    }

    #[test]
    fn months_outside_the_history_and_weekly_calendars_are_refused() {
        let weekly = ConditionInput {
            kind: Some(ConditionKind::Calendar),
            sub_kind: Some(ConditionSubKind::Weekly),
            percent: String::new(),
            day: "monday".to_owned(),
            symbol: String::new(),
            only_outside_bands: false,
        };
        let error = simulate(SimulationInput {
            weights: vec![weight("STOCKS", "60"), weight("BONDS", "40")],
            conditions: vec![weekly],
            start_month: "1850-01".into(),
            end_month: "2099-12".into(),
            ..SimulationInput::default()
        })
        .expect_err("invalid");
        let fields: Vec<&str> = error.as_slice().iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rebalance_conditions[0].sub_type",
                "start_month",
                "end_month"
            ],
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("1850-01 is outside the history (1871-01"),
            "{error}"
        );
    }

    #[test]
    fn unknown_symbols_and_bad_months_are_named() {
        let error = simulate(SimulationInput {
            weights: vec![weight("AAPL", "100")],
            start_month: "2000-13".into(),
            ..SimulationInput::default()
        })
        .expect_err("invalid");
        let fields: Vec<&str> = error.as_slice().iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"weights[0].symbol"), "{fields:?}");
        assert!(fields.contains(&"start_month"), "{fields:?}");
    }
}

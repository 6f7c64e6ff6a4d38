//! Households: accounts of one client managed as one portfolio. The
//! household's model is met by the accounts together, and each asset is
//! placed where it costs least in tax (asset location): the most
//! tax-inefficient assets (bonds, REITs) fill the tax-deferred and
//! tax-exempt accounts first; the taxable accounts hold the rest. Each
//! account keeps its own value (no cash moves between accounts), so the
//! outcome is one target per account, which its own run then trades
//! toward with its own cash, restrictions and lots.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::Symbol;
use crate::portfolio::Weight;
use crate::tax::TaxStatus;

/// One member account as the location sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub account_id: String,
    pub tax_status: TaxStatus,
    /// Cash plus positions at current prices, withdrawals held back.
    pub value: Decimal,
}

/// The weights of each member's own target (percent of its value), in the
/// order of the members given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub account_id: String,
    pub weights: Vec<Weight>,
}

fn sheltered(status: TaxStatus) -> bool {
    status != TaxStatus::Taxable
}

/// Places the household's `model` (cash and asset weights summing to 100)
/// across `members`. Every member keeps the model's cash weight of its own
/// value. Sheltered (tax-deferred, tax-exempt) accounts take the assets of
/// `inefficient` first, in that order, up to the household's target of
/// each; what room is left in them takes the other assets in proportion;
/// taxable accounts share what remains in proportion to their values.
/// Sheltered accounts share their assets in proportion to their values too.
#[must_use]
pub fn locate(model: &[Weight], members: &[Member], inefficient: &[Symbol]) -> Vec<Location> {
    let hundred = Decimal::ONE_HUNDRED;
    let total: Decimal = members.iter().map(|m| m.value.max(Decimal::ZERO)).sum();
    let cash_percent: Decimal = model
        .iter()
        .filter(|w| w.symbol().is_none())
        .map(|w| w.percent)
        .sum();
    // Household dollars per asset.
    let mut wanted: BTreeMap<Symbol, Decimal> = BTreeMap::new();
    for weight in model {
        if let Some(symbol) = weight.symbol() {
            *wanted.entry(symbol.clone()).or_default() += total * weight.percent / hundred;
        }
    }
    let invested = (hundred - cash_percent) / hundred;
    let shelter_value: Decimal = members
        .iter()
        .filter(|m| sheltered(m.tax_status))
        .map(|m| m.value.max(Decimal::ZERO))
        .sum();
    let mut room = shelter_value * invested;
    // Sheltered dollars per asset: the inefficient first, in order.
    let mut in_shelter: BTreeMap<Symbol, Decimal> = BTreeMap::new();
    for symbol in inefficient {
        let Some(want) = wanted.get(symbol) else {
            continue;
        };
        let placed = (*want).min(room);
        if placed > Decimal::ZERO {
            in_shelter.insert(symbol.clone(), placed);
            room -= placed;
        }
    }
    // Room left takes the rest in proportion to what they still need.
    let rest: Decimal = wanted
        .iter()
        .map(|(symbol, want)| *want - in_shelter.get(symbol).copied().unwrap_or_default())
        .sum();
    if room > Decimal::ZERO && rest > Decimal::ZERO {
        let share = (room / rest).min(Decimal::ONE);
        for (symbol, want) in &wanted {
            let left = *want - in_shelter.get(symbol).copied().unwrap_or_default();
            *in_shelter.entry(symbol.clone()).or_default() += left * share;
        }
    }
    let taxable_value = total - shelter_value;
    members
        .iter()
        .map(|member| {
            let value = member.value.max(Decimal::ZERO);
            let (pool_value, pool): (Decimal, BTreeMap<Symbol, Decimal>) =
                if sheltered(member.tax_status) {
                    (shelter_value, in_shelter.clone())
                } else {
                    let remaining = wanted
                        .iter()
                        .map(|(symbol, want)| {
                            let placed = in_shelter.get(symbol).copied().unwrap_or_default();
                            (symbol.clone(), (*want - placed).max(Decimal::ZERO))
                        })
                        .collect();
                    (taxable_value, remaining)
                };
            let mut weights = Vec::new();
            let mut assets = Decimal::ZERO;
            if pool_value > Decimal::ZERO && value > Decimal::ZERO {
                for (symbol, dollars) in pool {
                    // The member's share of the pool, as a percent of its
                    // value, to the two decimals a weight takes.
                    let percent = (dollars * hundred / pool_value).round_dp(2);
                    if percent > Decimal::ZERO {
                        assets += percent;
                        weights.push(Weight::asset(symbol, percent));
                    }
                }
            }
            // Rounding never pushes the assets past 100.
            if assets > hundred
                && let Some(last) = weights.last_mut()
            {
                last.percent -= assets - hundred;
                assets = hundred;
            }
            let cash = hundred - assets;
            if cash > Decimal::ZERO {
                weights.insert(0, Weight::cash(cash));
            }
            Location {
                account_id: member.account_id.clone(),
                weights,
            }
        })
        .collect()
}

/// The most accounts one household may hold.
pub const MAX_MEMBERS: usize = 50;

/// A household as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct HouseholdInput {
    pub id: String,
    pub name: String,
    pub account_ids: Vec<String>,
    pub weights: Vec<crate::portfolio::WeightInput>,
    pub tax_inefficient_symbols: Vec<String>,
}

/// A validated household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub id: String,
    pub name: String,
    /// Unique, in the order given.
    pub account_ids: Vec<String>,
    /// Cash and assets summing to 100.
    pub weights: Vec<Weight>,
    /// Unique, each in the model.
    pub tax_inefficient_symbols: Vec<Symbol>,
}

impl HouseholdInput {
    /// # Errors
    /// One violation per problem, by field.
    pub fn validate(self) -> Result<Household, crate::Violations> {
        let mut violations = crate::Violations::new();
        if let Some(problem) = crate::ids::external_id_problem(&self.id) {
            violations.add("household_id", problem);
        }
        if self.name.chars().count() > 200 {
            violations.add("name", "must be at most 200 characters");
        }
        if self.account_ids.is_empty() || self.account_ids.len() > MAX_MEMBERS {
            violations.add(
                "account_ids",
                format!("must name 1 to {MAX_MEMBERS} accounts"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (index, id) in self.account_ids.iter().enumerate() {
            if let Some(problem) = crate::ids::external_id_problem(id) {
                violations.add(format!("account_ids[{index}]"), problem);
            } else if !seen.insert(id.as_str()) {
                violations.add(
                    format!("account_ids[{index}]"),
                    format!("duplicate account {id}"),
                );
            }
        }
        let weights = match (crate::portfolio::TargetInput {
            weights: self.weights,
            ..crate::portfolio::TargetInput::default()
        })
        .validate()
        {
            Ok(target) => {
                for (index, weight) in target.weights.iter().enumerate() {
                    if matches!(weight.target, crate::portfolio::WeightTarget::Portfolio(_)) {
                        violations.add(
                            format!("weights[{index}].type"),
                            "a household's model takes cash and assets only",
                        );
                    }
                }
                target.weights
            }
            Err(problems) => {
                for problem in problems.as_slice() {
                    violations.add(problem.field.clone(), problem.description.clone());
                }
                Vec::new()
            }
        };
        let mut inefficient = Vec::new();
        for (index, text) in self.tax_inefficient_symbols.iter().enumerate() {
            let field = format!("tax_inefficient_symbols[{index}]");
            match Symbol::parse(text) {
                Ok(symbol) if inefficient.contains(&symbol) => {
                    violations.add(field, format!("duplicate symbol {symbol}"));
                }
                Ok(symbol)
                    if !weights.is_empty()
                        && !weights.iter().any(|w| w.symbol() == Some(&symbol)) =>
                {
                    violations.add(field, format!("{symbol} is not in the household's model"));
                }
                Ok(symbol) => inefficient.push(symbol),
                Err(error) => violations.add(field, error.to_string()),
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Household {
            id: self.id,
            name: self.name,
            account_ids: self.account_ids,
            weights,
            tax_inefficient_symbols: inefficient,
        })
    }
}

#[cfg(test)]
mod tests;

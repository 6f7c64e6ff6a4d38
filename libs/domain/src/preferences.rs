//! An account's trading preferences, as advisors set them in Orion, Tamarac
//! or SMArtX: symbols the account may not buy or sell, substitutes held in
//! place of a model's asset (VOO for SPY), and a cash reserve kept on top of
//! the model's cash weight.
//!
//! Evaluation and planning see the account's own target: [`apply`] puts each
//! substitute in its model asset's slot (same weight, same band) and raises
//! the cash weight to the reserve, scaling the assets down in proportion.
//! Restrictions are left to the planner, which refuses the restricted side
//! with a reason and leaves a buy's weight in cash.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Symbol;
use crate::decimal::{DecimalError, parse_decimal};
use crate::portfolio::{
    DriftBand, RebalanceCondition, Weight, WeightTarget, parse_positive_percent, validate_amount,
};
use crate::trades::SymbolRestriction;
use crate::violation::Violations;

/// Restrictions and substitutes one account may hold at most, each.
pub const MAX_RULES: usize = 500;

/// Preferences as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct PreferencesInput {
    pub restricted: Vec<RestrictionInput>,
    pub substitutes: Vec<SubstituteInput>,
    pub cash_reserve_amount: String,
    pub cash_reserve_percent: String,
}

#[derive(Debug, Clone, Default)]
pub struct RestrictionInput {
    pub symbol: String,
    pub no_buy: bool,
    pub no_sell: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct SubstituteInput {
    pub model_symbol: String,
    pub held_symbol: String,
}

/// A symbol restricted for one account, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restricted {
    pub symbol: String,
    pub no_buy: bool,
    pub no_sell: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A model asset held as another symbol in one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitute {
    pub model_symbol: String,
    pub held_symbol: String,
}

/// Cash kept on top of the model's cash weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashReserve {
    /// Dollars, at most 2 decimals.
    Amount(Decimal),
    /// Percent of the account's value.
    Percent(Decimal),
}

/// Validated preferences; the default has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradingPreferences {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restricted: Vec<Restricted>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitutes: Vec<Substitute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_reserve: Option<CashReserve>,
}

impl TradingPreferences {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.restricted.is_empty() && self.substitutes.is_empty() && self.cash_reserve.is_none()
    }

    /// The restrictions as the planner takes them.
    #[must_use]
    pub fn symbol_restrictions(&self) -> Vec<SymbolRestriction> {
        self.restricted
            .iter()
            .filter_map(|rule| {
                Some(SymbolRestriction {
                    symbol: Symbol::parse(&rule.symbol).ok()?,
                    no_buy: rule.no_buy,
                    no_sell: rule.no_sell,
                })
            })
            .collect()
    }

    /// `conditions` with each substitute taking over its model asset's
    /// per-asset bands (a band of VOO, standing in for SPY, is SPY's).
    #[must_use]
    pub fn substitute_conditions(
        &self,
        conditions: &[RebalanceCondition],
    ) -> Vec<RebalanceCondition> {
        conditions
            .iter()
            .map(|condition| match condition {
                RebalanceCondition::DriftBand(band) => {
                    let held = band.symbol.as_ref().and_then(|symbol| {
                        self.substitutes
                            .iter()
                            .find(|s| s.model_symbol == symbol.as_str())
                            .and_then(|s| Symbol::parse(&s.held_symbol).ok())
                    });
                    match held {
                        Some(held) => RebalanceCondition::DriftBand(DriftBand {
                            symbol: Some(held),
                            ..band.clone()
                        }),
                        None => condition.clone(),
                    }
                }
                other => other.clone(),
            })
            .collect()
    }

    /// The cash reserve as a percent of `equity` (at most 100).
    #[must_use]
    pub fn reserve_percent(&self, equity: Decimal) -> Decimal {
        match self.cash_reserve {
            None => Decimal::ZERO,
            Some(CashReserve::Percent(percent)) => percent,
            Some(CashReserve::Amount(_)) if equity <= Decimal::ZERO => Decimal::ONE_HUNDRED,
            Some(CashReserve::Amount(amount)) => {
                (amount * Decimal::ONE_HUNDRED / equity).min(Decimal::ONE_HUNDRED)
            }
        }
    }

    /// The account's own target from the model's flat `weights`: substitutes
    /// in their model asset's slot, cash raised to the reserve (of `equity`).
    #[must_use]
    pub fn apply(&self, weights: &[Weight], equity: Decimal) -> Vec<Weight> {
        let mut own: Vec<Weight> = Vec::with_capacity(weights.len());
        for weight in weights {
            let target = match &weight.target {
                WeightTarget::Asset(symbol) => self
                    .substitutes
                    .iter()
                    .find(|s| s.model_symbol == symbol.as_str())
                    .and_then(|s| Symbol::parse(&s.held_symbol).ok())
                    .map_or_else(|| weight.target.clone(), WeightTarget::Asset),
                other => other.clone(),
            };
            match own.iter_mut().find(|w| w.target == target) {
                Some(existing) => existing.percent += weight.percent,
                None => own.push(Weight {
                    target,
                    percent: weight.percent,
                }),
            }
        }
        let reserve = self.reserve_percent(equity);
        let cash: Decimal = own
            .iter()
            .filter(|w| w.target == WeightTarget::Cash)
            .map(|w| w.percent)
            .sum();
        if reserve <= cash {
            return own;
        }
        let invested = Decimal::ONE_HUNDRED - cash;
        let scale = if invested > Decimal::ZERO {
            (Decimal::ONE_HUNDRED - reserve) / invested
        } else {
            Decimal::ZERO
        };
        let mut scaled: Vec<Weight> = own
            .into_iter()
            .filter(|w| w.target != WeightTarget::Cash)
            .map(|w| Weight {
                percent: w.percent * scale,
                target: w.target,
            })
            .filter(|w| w.percent > Decimal::ZERO)
            .collect();
        let assets: Decimal = scaled.iter().map(|w| w.percent).sum();
        scaled.push(Weight::cash(Decimal::ONE_HUNDRED - assets));
        scaled
    }
}

impl TradingPreferences {
    /// The target the monitor measures drift against: [`Self::apply`], with
    /// a buy-restricted asset's weight capped at what the account holds and
    /// a sell-restricted one's raised to it (a held sell-restricted symbol
    /// outside the model keeps its weight), cash taking the difference; so
    /// an account is not flagged for what it may not trade. `values` are the
    /// dollars held per symbol.
    #[must_use]
    pub fn monitored_target(
        &self,
        weights: &[Weight],
        equity: Decimal,
        values: &[(String, Decimal)],
    ) -> Vec<Weight> {
        let mut own = self.apply(weights, equity);
        if self.restricted.is_empty() || equity <= Decimal::ZERO {
            return own;
        }
        let held = |symbol: &str| -> Decimal {
            values
                .iter()
                .filter(|(held, _)| held == symbol)
                .map(|(_, value)| *value * Decimal::ONE_HUNDRED / equity)
                .sum()
        };
        // Weights pinned to what the account holds, and the rest.
        let mut pinned: Vec<Weight> = Vec::new();
        for rule in &self.restricted {
            let current = held(&rule.symbol);
            let position = own
                .iter()
                .position(|w| w.symbol().is_some_and(|s| s.as_str() == rule.symbol));
            let model = position.map_or(Decimal::ZERO, |index| own[index].percent);
            let keeps = (rule.no_buy && model > current) || (rule.no_sell && model < current);
            if !keeps {
                continue;
            }
            if let Some(index) = position {
                own.remove(index);
            }
            if current > Decimal::ZERO
                && let Ok(symbol) = Symbol::parse(&rule.symbol)
            {
                pinned.push(Weight::asset(symbol, current));
            }
        }
        let pinned_total: Decimal = pinned.iter().map(|w| w.percent).sum();
        let free_assets: Decimal = own
            .iter()
            .filter(|w| w.target != WeightTarget::Cash)
            .map(|w| w.percent)
            .sum();
        let cash_weight: Decimal = own
            .iter()
            .filter(|w| w.target == WeightTarget::Cash)
            .map(|w| w.percent)
            .sum();
        // What is pinned above the model comes out of the free assets, in
        // proportion, so the weights still add up to 100.
        let room = (Decimal::ONE_HUNDRED - pinned_total - cash_weight).max(Decimal::ZERO);
        let scale = if free_assets > room && free_assets > Decimal::ZERO {
            room / free_assets
        } else {
            Decimal::ONE
        };
        let mut result: Vec<Weight> = own
            .into_iter()
            .filter(|w| w.target != WeightTarget::Cash)
            .map(|w| Weight {
                percent: w.percent * scale,
                target: w.target,
            })
            .filter(|w| w.percent > Decimal::ZERO)
            .collect();
        result.extend(pinned);
        let assets: Decimal = result.iter().map(|w| w.percent).sum();
        let cash = (Decimal::ONE_HUNDRED - assets).max(Decimal::ZERO);
        if cash > Decimal::ZERO {
            result.push(Weight::cash(cash));
        }
        result
    }
}

impl PreferencesInput {
    /// Validates every field.
    ///
    /// # Errors
    /// [`Violations`] naming each offending field (under `prefix`).
    pub fn validate(self, prefix: &str) -> Result<TradingPreferences, Violations> {
        let mut violations = Violations::new();
        let at = |field: String| format!("{prefix}.{field}");
        if self.restricted.len() > MAX_RULES {
            violations.add(
                at("restricted_symbols".into()),
                format!("at most {MAX_RULES}"),
            );
        }
        if self.substitutes.len() > MAX_RULES {
            violations.add(at("substitutes".into()), format!("at most {MAX_RULES}"));
        }
        let mut restricted: Vec<Restricted> = Vec::new();
        for (index, rule) in self.restricted.iter().enumerate() {
            let field = |name: &str| at(format!("restricted_symbols[{index}].{name}"));
            let symbol = match Symbol::parse(&rule.symbol) {
                Ok(symbol) => symbol.to_string(),
                Err(error) => {
                    violations.add(field("symbol"), error.to_string());
                    continue;
                }
            };
            if !rule.no_buy && !rule.no_sell {
                violations.add(field("no_buy"), "set no_buy, no_sell or both");
            }
            if rule.reason.chars().count() > 500 {
                violations.add(field("reason"), "at most 500 characters");
            }
            if restricted.iter().any(|known| known.symbol == symbol) {
                violations.add(field("symbol"), format!("{symbol} is listed twice"));
                continue;
            }
            restricted.push(Restricted {
                symbol,
                no_buy: rule.no_buy,
                no_sell: rule.no_sell,
                reason: rule.reason.clone(),
            });
        }
        let mut substitutes: Vec<Substitute> = Vec::new();
        for (index, pair) in self.substitutes.iter().enumerate() {
            let field = |name: &str| at(format!("substitutes[{index}].{name}"));
            let model = Symbol::parse(&pair.model_symbol);
            let held = Symbol::parse(&pair.held_symbol);
            if let Err(error) = &model {
                violations.add(field("model_symbol"), error.to_string());
            }
            if let Err(error) = &held {
                violations.add(field("held_symbol"), error.to_string());
            }
            let (Ok(model), Ok(held)) = (model, held) else {
                continue;
            };
            let (model, held) = (model.to_string(), held.to_string());
            if model == held {
                violations.add(field("held_symbol"), "must differ from model_symbol");
                continue;
            }
            if substitutes.iter().any(|known| known.model_symbol == model) {
                violations.add(
                    field("model_symbol"),
                    format!("{model} has two substitutes"),
                );
                continue;
            }
            if substitutes
                .iter()
                .any(|known| known.model_symbol == held || known.held_symbol == model)
            {
                violations.add(
                    field("held_symbol"),
                    "substitutes may not chain (a held symbol substituted in turn)",
                );
                continue;
            }
            if restricted
                .iter()
                .any(|rule| rule.symbol == held && rule.no_buy)
            {
                violations.add(
                    field("held_symbol"),
                    format!("{held} is restricted from buying in this account"),
                );
                continue;
            }
            substitutes.push(Substitute {
                model_symbol: model,
                held_symbol: held,
            });
        }
        // "0" (or empty) is no reserve.
        let amount = Some(validate_amount(
            &at("cash_reserve_amount".into()),
            &self.cash_reserve_amount,
            Decimal::ZERO,
            &mut violations,
        ))
        .filter(|amount| !amount.is_zero());
        let percent = match parse_decimal(&self.cash_reserve_percent) {
            Ok(percent) if percent.is_zero() => None,
            Err(DecimalError::Empty) => None,
            _ => parse_positive_percent(&self.cash_reserve_percent, Decimal::ONE_HUNDRED, 4)
                .map_err(|problem| violations.add(at("cash_reserve_percent".into()), problem))
                .ok(),
        };
        let cash_reserve = match (amount, percent) {
            (Some(_), Some(_)) => {
                violations.add(
                    at("cash_reserve_percent".into()),
                    "set cash_reserve_amount or cash_reserve_percent, not both",
                );
                None
            }
            (Some(amount), None) => Some(CashReserve::Amount(amount)),
            (None, Some(percent)) => Some(CashReserve::Percent(percent)),
            (None, None) => None,
        };
        violations.into_result(TradingPreferences {
            restricted,
            substitutes,
            cash_reserve,
        })
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn asset(symbol: &str, percent: Decimal) -> Weight {
        Weight::asset(Symbol::parse(symbol).expect("symbol"), percent)
    }

    fn model() -> Vec<Weight> {
        vec![
            Weight::cash(dec!(5)),
            asset("SPY", dec!(60)),
            asset("TLT", dec!(35)),
        ]
    }

    #[test]
    fn a_substitute_takes_its_model_asset_slot() {
        let preferences = TradingPreferences {
            substitutes: vec![Substitute {
                model_symbol: "SPY".into(),
                held_symbol: "VOO".into(),
            }],
            ..TradingPreferences::default()
        };
        let own = preferences.apply(&model(), dec!(100000));
        assert_eq!(
            own,
            vec![
                Weight::cash(dec!(5)),
                asset("VOO", dec!(60)),
                asset("TLT", dec!(35))
            ]
        );
    }

    #[test]
    fn a_reserve_raises_cash_and_scales_the_assets() {
        // $10,000 of $100,000 is 10%: assets share 90 in their 60:35 ratio.
        let preferences = TradingPreferences {
            cash_reserve: Some(CashReserve::Amount(dec!(10000))),
            ..TradingPreferences::default()
        };
        let own = preferences.apply(&model(), dec!(100000));
        let total: Decimal = own.iter().map(|w| w.percent).sum();
        assert_eq!(total, dec!(100));
        let cash = own.iter().find(|w| w.symbol().is_none()).expect("cash");
        assert_eq!(cash.percent.round_dp(10), dec!(10));
        let spy = own
            .iter()
            .find(|w| w.symbol().is_some_and(|s| s.as_str() == "SPY"))
            .expect("SPY");
        assert_eq!((spy.percent * dec!(95) / dec!(90)).round_dp(10), dec!(60));
        // A reserve below the model's cash changes nothing.
        let small = TradingPreferences {
            cash_reserve: Some(CashReserve::Percent(dec!(2))),
            ..TradingPreferences::default()
        };
        assert_eq!(small.apply(&model(), dec!(100000)), model());
    }

    #[test]
    fn the_monitor_does_not_ask_for_restricted_trades() {
        let rule = |symbol: &str, no_buy: bool, no_sell: bool| Restricted {
            symbol: symbol.into(),
            no_buy,
            no_sell,
            reason: String::new(),
        };
        // SPY may not be sold and is held at 70% of a 60/35/5 model: it
        // stays at 70, TLT gives way (35 → 25), cash keeps its 5.
        let preferences = TradingPreferences {
            restricted: vec![rule("SPY", false, true)],
            ..TradingPreferences::default()
        };
        let values = vec![
            ("SPY".to_owned(), dec!(70000)),
            ("TLT".to_owned(), dec!(30000)),
        ];
        let own = preferences.monitored_target(&model(), dec!(100000), &values);
        let total: Decimal = own.iter().map(|w| w.percent).sum();
        assert_eq!(total, dec!(100));
        let of = |name: &str| {
            own.iter()
                .find(|w| w.symbol().is_some_and(|s| s.as_str() == name))
                .map(|w| w.percent)
        };
        assert_eq!(of("SPY"), Some(dec!(70)));
        assert_eq!(of("TLT"), Some(dec!(25)));
        // TLT may not be bought and is held at 10%: capped there.
        let preferences = TradingPreferences {
            restricted: vec![rule("TLT", true, false)],
            ..TradingPreferences::default()
        };
        let values = vec![
            ("SPY".to_owned(), dec!(60000)),
            ("TLT".to_owned(), dec!(10000)),
        ];
        let own = preferences.monitored_target(&model(), dec!(100000), &values);
        assert_eq!(
            own.iter()
                .find(|w| w.symbol().is_some_and(|s| s.as_str() == "TLT"))
                .map(|w| w.percent),
            Some(dec!(10))
        );
        let total: Decimal = own.iter().map(|w| w.percent).sum();
        assert_eq!(total, dec!(100));
    }

    #[test]
    fn bad_preferences_are_named_field_by_field() {
        let input = PreferencesInput {
            restricted: vec![
                RestrictionInput {
                    symbol: "TSLA".into(),
                    no_buy: true,
                    ..RestrictionInput::default()
                },
                RestrictionInput {
                    symbol: "XOM".into(),
                    ..RestrictionInput::default()
                },
            ],
            substitutes: vec![
                SubstituteInput {
                    model_symbol: "SPY".into(),
                    held_symbol: "SPY".into(),
                },
                SubstituteInput {
                    model_symbol: "QQQ".into(),
                    held_symbol: "TSLA".into(),
                },
            ],
            cash_reserve_amount: "100.001".into(),
            cash_reserve_percent: "5".into(),
        };
        let error = input.validate("preferences").expect_err("invalid");
        let fields: Vec<&str> = error.as_slice().iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "preferences.restricted_symbols[1].no_buy",
                "preferences.substitutes[0].held_symbol",
                "preferences.substitutes[1].held_symbol",
                "preferences.cash_reserve_amount",
            ]
        );
    }
}

//! Model portfolios: the raw input a client sends, the rules it must pass, and
//! the validated [`PortfolioSpec`] the rest of the system works with.
//!
//! The rules follow Alpaca's rebalancing API: weights are positive percents
//! with at most two decimals summing to exactly 100, a cash weight of 0 is
//! dropped, symbols are unique and well formed, drift bands are positive, at
//! most one calendar condition, cooldown of 0 days or more.

use std::collections::HashMap;

use chrono::Weekday;
use rust_decimal::Decimal;

use crate::decimal::{DecimalError, parse_decimal, significant_scale};
use crate::ids::external_id_problem;
use crate::symbol::Symbol;
use crate::violation::Violations;

/// Longest portfolio name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Longest cooldown, ten years.
pub const MAX_COOLDOWN_DAYS: i32 = 3650;
/// Default investable cash above which invest_cash runs.
pub const DEFAULT_INVEST_CASH_THRESHOLD: Decimal = Decimal::TEN;
/// Default notional below which an order is skipped.
pub const DEFAULT_MINIMUM_ORDER_NOTIONAL: Decimal = Decimal::ONE;

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// What a weight points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    Cash,
    Asset,
    Portfolio,
}

/// A weight as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct WeightInput {
    /// `None` when unspecified or unknown.
    pub kind: Option<WeightKind>,
    pub symbol: String,
    pub percent: String,
    pub portfolio_id: String,
}

/// Kind of rebalance condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    DriftBand,
    Calendar,
}

crate::text_enum! {
    /// Refinement of a rebalance condition.
    pub enum ConditionSubKind {
        Absolute = "absolute",
        Relative = "relative",
        Weekly = "weekly",
        Monthly = "monthly",
        Quarterly = "quarterly",
        Annually = "annually",
    }
}

/// A rebalance condition as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ConditionInput {
    pub kind: Option<ConditionKind>,
    pub sub_kind: Option<ConditionSubKind>,
    pub percent: String,
    pub day: String,
    pub symbol: String,
    /// Calendar conditions: on its days, trade only if outside the bands.
    pub only_outside_bands: bool,
}

crate::text_enum! {
    /// Who may use a portfolio.
    #[derive(Default)]
    pub enum Scope {
        #[default]
        Enterprise = "enterprise",
        Account = "account",
    }
}

crate::text_enum! {
    /// Where a rebalance takes the assets it trades.
    #[derive(Default)]
    pub enum RebalanceTo {
        /// Back to their target weights.
        #[default]
        Target = "target",
        /// Out-of-band assets to the nearest edge of their band; the others
        /// are left where they are.
        BandEdge = "band_edge",
    }
}

crate::text_enum! {
    /// How orders are sized.
    #[derive(Default)]
    pub enum OrderSizing {
        #[default]
        Notional = "notional",
        WholeShares = "whole_shares",
    }
}

/// Trading rules for one asset of a portfolio, as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct AssetRuleInput {
    pub symbol: String,
    /// Empty: the portfolio's minimum order notional.
    pub minimum_order_notional: String,
    /// Empty: any drift is traded.
    pub minimum_drift: String,
}

/// Trading rules for one asset of a portfolio (Tamarac's minimum trade and
/// trade tolerance per security).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssetRule {
    pub symbol: Symbol,
    /// Orders of the asset worth less are not placed (at least the
    /// portfolio's minimum).
    pub minimum_order_notional: Option<Decimal>,
    /// A full rebalance trades the asset only when it is at least this many
    /// percentage points from its target.
    pub minimum_drift: Option<Decimal>,
}

/// Rules one portfolio may hold at most.
pub const MAX_ASSET_RULES: usize = 1000;

/// The versioned part of a portfolio, as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct TargetInput {
    pub weights: Vec<WeightInput>,
    pub conditions: Vec<ConditionInput>,
    pub cooldown_days: i32,
    pub order_sizing: Option<OrderSizing>,
    pub invest_cash_threshold: String,
    pub minimum_order_notional: String,
    pub investment_minimum: String,
    /// `None`: to target.
    pub rebalance_to: Option<RebalanceTo>,
    pub asset_rules: Vec<AssetRuleInput>,
}

/// A whole portfolio as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct PortfolioInput {
    pub name: String,
    pub description: String,
    pub scope: Option<Scope>,
    pub account_id: String,
    pub target: TargetInput,
}

crate::text_enum! {
    /// Lifecycle of a portfolio. Only active portfolios are evaluated.
    pub enum PortfolioStatus {
        Active = "active",
        Inactive = "inactive",
        /// An asset became unusable; left only by an update that fixes the weights.
        NeedsAdjustment = "needs_adjustment",
    }
}

/// What a validated weight points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WeightTarget {
    Cash,
    Asset(Symbol),
    Portfolio(String),
}

/// A validated weight: percent in (0, 100] with at most two decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    pub target: WeightTarget,
    pub percent: Decimal,
}

impl Weight {
    #[must_use]
    pub fn cash(percent: Decimal) -> Self {
        Self {
            target: WeightTarget::Cash,
            percent,
        }
    }

    #[must_use]
    pub fn asset(symbol: Symbol, percent: Decimal) -> Self {
        Self {
            target: WeightTarget::Asset(symbol),
            percent,
        }
    }

    /// The symbol of an asset weight.
    #[must_use]
    pub fn symbol(&self) -> Option<&Symbol> {
        match &self.target {
            WeightTarget::Asset(symbol) => Some(symbol),
            WeightTarget::Cash | WeightTarget::Portfolio(_) => None,
        }
    }
}

crate::text_enum! {
    /// Absolute bands are percentage points; relative bands a percent of the target.
    pub enum BandKind {
        Absolute = "absolute",
        Relative = "relative",
    }
}

/// A drift band, for every asset or for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftBand {
    pub kind: BandKind,
    pub percent: Decimal,
    /// `None` applies to every asset; `Some` overrides the band of one asset.
    pub symbol: Option<Symbol>,
}

/// When a calendar condition fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarRule {
    Weekly(Weekday),
    /// Day of month 1..=31; short months use their last day.
    Monthly(u32),
    /// Day 1..=31 of every third month from `first_month` (1..=3): January,
    /// April, July and October for 1.
    Quarterly {
        first_month: u32,
        day: u32,
    },
    /// Month and day; 02-29 falls on 02-28 in common years.
    Annually {
        month: u32,
        day: u32,
    },
}

impl CalendarRule {
    /// The `day` text as the API shows it: "monday", "15", "03-31".
    #[must_use]
    pub fn day_text(&self) -> String {
        match self {
            Self::Weekly(weekday) => weekday_name(*weekday).to_owned(),
            Self::Monthly(day)
            | Self::Quarterly {
                first_month: 1,
                day,
            } => day.to_string(),
            Self::Quarterly { first_month, day } => format!("{first_month:02}-{day:02}"),
            Self::Annually { month, day } => format!("{month:02}-{day:02}"),
        }
    }

    /// The rule in words: "monthly on day 15", "quarterly on day 31 of
    /// Mar/Jun/Sep/Dec".
    #[must_use]
    pub fn describe(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        match self {
            Self::Weekly(weekday) => format!("weekly on {}", weekday_name(*weekday)),
            Self::Monthly(day) => format!("monthly on day {day}"),
            Self::Quarterly { first_month, day } => {
                let months: Vec<&str> = (0..4)
                    .filter_map(|quarter| {
                        let index = usize::try_from(first_month + 3 * quarter).ok()?;
                        MONTHS.get(index.checked_sub(1)?).copied()
                    })
                    .collect();
                format!("quarterly on day {day} of {}", months.join("/"))
            }
            Self::Annually { month, day } => format!("annually on {month:02}-{day:02}"),
        }
    }

    #[must_use]
    pub fn sub_kind(&self) -> ConditionSubKind {
        match self {
            Self::Weekly(_) => ConditionSubKind::Weekly,
            Self::Monthly(_) => ConditionSubKind::Monthly,
            Self::Quarterly { .. } => ConditionSubKind::Quarterly,
            Self::Annually { .. } => ConditionSubKind::Annually,
        }
    }
}

/// A validated rebalance condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceCondition {
    DriftBand(DriftBand),
    /// Rebalance on the rule's days, whatever the drift.
    Calendar(CalendarRule),
    /// Review on the rule's days and rebalance only if an asset is outside
    /// its band; bands do not trade between review days. The hybrid policy
    /// of Vanguard's *Best practices for portfolio rebalancing* (2010).
    Review(CalendarRule),
}

/// The versioned part of a portfolio, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Sum exactly 100; no zero weights; unique targets.
    pub weights: Vec<Weight>,
    pub conditions: Vec<RebalanceCondition>,
    pub cooldown_days: u32,
    pub order_sizing: OrderSizing,
    pub invest_cash_threshold: Decimal,
    pub minimum_order_notional: Decimal,
    pub investment_minimum: Decimal,
    pub rebalance_to: RebalanceTo,
    pub asset_rules: Vec<AssetRule>,
}

impl TargetSpec {
    /// Sleeves this target is built from.
    pub fn sleeve_ids(&self) -> impl Iterator<Item = &str> {
        self.weights
            .iter()
            .filter_map(|weight| match &weight.target {
                WeightTarget::Portfolio(id) => Some(id.as_str()),
                WeightTarget::Cash | WeightTarget::Asset(_) => None,
            })
    }

    /// Symbols of the asset weights.
    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.weights.iter().filter_map(Weight::symbol)
    }

    /// The same target as client input, to overlay changes on and validate again.
    #[must_use]
    pub fn to_input(&self) -> TargetInput {
        let text = |value: Decimal| value.normalize().to_string();
        TargetInput {
            weights: self
                .weights
                .iter()
                .map(|weight| {
                    let (kind, symbol, portfolio_id) = match &weight.target {
                        WeightTarget::Cash => (WeightKind::Cash, String::new(), String::new()),
                        WeightTarget::Asset(symbol) => {
                            (WeightKind::Asset, symbol.to_string(), String::new())
                        }
                        WeightTarget::Portfolio(id) => {
                            (WeightKind::Portfolio, String::new(), id.clone())
                        }
                    };
                    WeightInput {
                        kind: Some(kind),
                        symbol,
                        percent: text(weight.percent),
                        portfolio_id,
                    }
                })
                .collect(),
            conditions: self
                .conditions
                .iter()
                .map(|condition| match condition {
                    RebalanceCondition::DriftBand(band) => ConditionInput {
                        kind: Some(ConditionKind::DriftBand),
                        sub_kind: Some(match band.kind {
                            BandKind::Absolute => ConditionSubKind::Absolute,
                            BandKind::Relative => ConditionSubKind::Relative,
                        }),
                        percent: text(band.percent),
                        day: String::new(),
                        symbol: band
                            .symbol
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        only_outside_bands: false,
                    },
                    RebalanceCondition::Calendar(rule) | RebalanceCondition::Review(rule) => {
                        ConditionInput {
                            kind: Some(ConditionKind::Calendar),
                            sub_kind: Some(rule.sub_kind()),
                            percent: String::new(),
                            day: rule.day_text(),
                            symbol: String::new(),
                            only_outside_bands: matches!(condition, RebalanceCondition::Review(_)),
                        }
                    }
                })
                .collect(),
            cooldown_days: i32::try_from(self.cooldown_days).unwrap_or(i32::MAX),
            order_sizing: Some(self.order_sizing),
            invest_cash_threshold: text(self.invest_cash_threshold),
            minimum_order_notional: text(self.minimum_order_notional),
            investment_minimum: text(self.investment_minimum),
            rebalance_to: Some(self.rebalance_to),
            asset_rules: self
                .asset_rules
                .iter()
                .map(|rule| AssetRuleInput {
                    symbol: rule.symbol.to_string(),
                    minimum_order_notional: rule
                        .minimum_order_notional
                        .map(text)
                        .unwrap_or_default(),
                    minimum_drift: rule.minimum_drift.map(text).unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The calendar condition that rebalances whatever the drift, if any.
    #[must_use]
    pub fn calendar(&self) -> Option<CalendarRule> {
        self.conditions
            .iter()
            .find_map(|condition| match condition {
                RebalanceCondition::Calendar(rule) => Some(*rule),
                RebalanceCondition::DriftBand(_) | RebalanceCondition::Review(_) => None,
            })
    }

    /// The review calendar of a hybrid policy, if any.
    #[must_use]
    pub fn review(&self) -> Option<CalendarRule> {
        self.conditions
            .iter()
            .find_map(|condition| match condition {
                RebalanceCondition::Review(rule) => Some(*rule),
                RebalanceCondition::DriftBand(_) | RebalanceCondition::Calendar(_) => None,
            })
    }
}

/// A validated portfolio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioSpec {
    pub name: String,
    pub description: String,
    pub scope: Scope,
    /// Owner account for [`Scope::Account`].
    pub account_id: Option<String>,
    pub target: TargetSpec,
}

impl PortfolioInput {
    /// Checks every rule and returns the validated portfolio, or every problem.
    ///
    /// # Errors
    /// [`Violations`] naming each offending field.
    pub fn validate(self) -> Result<PortfolioSpec, Violations> {
        let mut violations = Violations::new();
        let name = validate_name(&self.name, &mut violations);
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            violations.add(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            );
        }
        let scope = self.scope.unwrap_or_default();
        let account_id = match scope {
            Scope::Enterprise => {
                if !self.account_id.is_empty() {
                    violations.add("account_id", "must be empty for an enterprise portfolio");
                }
                None
            }
            Scope::Account => {
                if let Some(problem) = external_id_problem(&self.account_id) {
                    violations.add(
                        "account_id",
                        format!("{problem} for an account-level portfolio"),
                    );
                }
                Some(self.account_id.clone())
            }
        };
        let target = self.target.validate_into(&mut violations);
        violations.into_result(PortfolioSpec {
            name,
            description: self.description,
            scope,
            account_id,
            target,
        })
    }
}

/// Checks a portfolio name; returns it trimmed.
pub fn validate_name(name: &str, violations: &mut Violations) -> String {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        violations.add("name", "is required");
    } else if trimmed.chars().count() > MAX_NAME_LEN {
        violations.add("name", format!("must be at most {MAX_NAME_LEN} characters"));
    }
    trimmed.to_owned()
}

impl TargetInput {
    /// Checks the versioned part on its own (for updates).
    ///
    /// # Errors
    /// [`Violations`] naming each offending field.
    pub fn validate(self) -> Result<TargetSpec, Violations> {
        let mut violations = Violations::new();
        let spec = self.validate_into(&mut violations);
        violations.into_result(spec)
    }

    fn validate_into(self, violations: &mut Violations) -> TargetSpec {
        let weights = validate_weights(&self.weights, violations);
        let conditions = validate_conditions(&self.conditions, &weights, violations);
        let cooldown_days = if self.cooldown_days < 0 {
            violations.add("cooldown_days", "must be 0 or more");
            0
        } else if self.cooldown_days > MAX_COOLDOWN_DAYS {
            violations.add(
                "cooldown_days",
                format!("must be at most {MAX_COOLDOWN_DAYS}"),
            );
            0
        } else {
            self.cooldown_days.unsigned_abs()
        };
        let invest_cash_threshold = validate_amount(
            "invest_cash_threshold",
            &self.invest_cash_threshold,
            DEFAULT_INVEST_CASH_THRESHOLD,
            violations,
        );
        let minimum_order_notional = validate_amount(
            "minimum_order_notional",
            &self.minimum_order_notional,
            DEFAULT_MINIMUM_ORDER_NOTIONAL,
            violations,
        );
        let investment_minimum = validate_amount(
            "investment_minimum",
            &self.investment_minimum,
            Decimal::ZERO,
            violations,
        );
        let rebalance_to = self.rebalance_to.unwrap_or_default();
        let has_bands = conditions
            .iter()
            .any(|condition| matches!(condition, RebalanceCondition::DriftBand(_)));
        if rebalance_to == RebalanceTo::BandEdge && !has_bands {
            violations.add(
                "rebalance_to",
                "band_edge needs a drift band in rebalance_conditions",
            );
        }
        let asset_rules = validate_asset_rules(&self.asset_rules, &weights, violations);
        TargetSpec {
            weights,
            conditions,
            cooldown_days,
            order_sizing: self.order_sizing.unwrap_or_default(),
            invest_cash_threshold,
            minimum_order_notional,
            investment_minimum,
            rebalance_to,
            asset_rules,
        }
    }
}

/// Per-asset rules: a known, unique asset of the target (any symbol when
/// the target has sleeves), at least one rule, amounts as the portfolio's.
fn validate_asset_rules(
    inputs: &[AssetRuleInput],
    weights: &[Weight],
    violations: &mut Violations,
) -> Vec<AssetRule> {
    if inputs.len() > MAX_ASSET_RULES {
        violations.add("asset_rules", format!("at most {MAX_ASSET_RULES}"));
        return Vec::new();
    }
    let has_sleeves = weights
        .iter()
        .any(|weight| matches!(weight.target, WeightTarget::Portfolio(_)));
    let mut rules: Vec<AssetRule> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let at = |field: &str| format!("asset_rules[{index}].{field}");
        let symbol = match Symbol::parse(&input.symbol) {
            Ok(symbol) => symbol,
            Err(error) => {
                violations.add(at("symbol"), error.to_string());
                continue;
            }
        };
        if !has_sleeves && !weights.iter().any(|w| w.symbol() == Some(&symbol)) {
            violations.add(
                at("symbol"),
                format!("{symbol} is not one of the portfolio's assets"),
            );
            continue;
        }
        if rules.iter().any(|rule| rule.symbol == symbol) {
            violations.add(at("symbol"), format!("{symbol} has two rules"));
            continue;
        }
        let minimum_order_notional = if input.minimum_order_notional.is_empty() {
            None
        } else {
            Some(validate_amount(
                &at("minimum_order_notional"),
                &input.minimum_order_notional,
                Decimal::ZERO,
                violations,
            ))
        };
        let minimum_drift = if input.minimum_drift.is_empty() {
            None
        } else {
            match parse_positive_percent(&input.minimum_drift, HUNDRED, 4) {
                Ok(percent) => Some(percent),
                Err(problem) => {
                    violations.add(at("minimum_drift"), problem);
                    None
                }
            }
        };
        if input.minimum_order_notional.is_empty() && input.minimum_drift.is_empty() {
            violations.add(
                at("minimum_order_notional"),
                "set minimum_order_notional, minimum_drift or both",
            );
            continue;
        }
        rules.push(AssetRule {
            symbol,
            minimum_order_notional,
            minimum_drift,
        });
    }
    rules
}

/// A dollar amount: empty means `default`; else 0 or more with at most 2 decimals.
pub(crate) fn validate_amount(
    field: &str,
    text: &str,
    default: Decimal,
    violations: &mut Violations,
) -> Decimal {
    if text.is_empty() {
        return default;
    }
    match parse_decimal(text) {
        Ok(amount) if amount.is_sign_negative() && !amount.is_zero() => {
            violations.add(field, "must be 0 or more");
            default
        }
        Ok(amount) if significant_scale(amount) > 2 => {
            violations.add(field, "must have at most 2 decimal places");
            default
        }
        Ok(amount) if amount > crate::account::MAX_CASH => {
            violations.add(field, "must be at most 1000000000000");
            default
        }
        Ok(amount) => amount.normalize(),
        Err(error) => {
            violations.add(field, error.to_string());
            default
        }
    }
}

/// Parses a percent that must be in (0, `max`] with at most `max_scale` decimals.
pub(crate) fn parse_positive_percent(
    text: &str,
    max: Decimal,
    max_scale: u32,
) -> Result<Decimal, String> {
    let value = parse_decimal(text).map_err(|error| match error {
        DecimalError::Empty => "is required".to_owned(),
        other => other.to_string(),
    })?;
    if value <= Decimal::ZERO {
        return Err("must be greater than 0".to_owned());
    }
    if value > max {
        return Err(format!("must be at most {max}"));
    }
    if significant_scale(value) > max_scale {
        return Err(format!("must have at most {max_scale} decimal places"));
    }
    Ok(value.normalize())
}

fn validate_weights(inputs: &[WeightInput], violations: &mut Violations) -> Vec<Weight> {
    if inputs.is_empty() {
        violations.add("weights", "at least one weight is required");
        return Vec::new();
    }
    let mut weights = Vec::with_capacity(inputs.len());
    let mut first_seen: HashMap<WeightTarget, usize> = HashMap::new();
    let mut all_percents_valid = true;
    for (index, input) in inputs.iter().enumerate() {
        let at = |field: &str| format!("weights[{index}].{field}");
        let Some(kind) = input.kind else {
            violations.add(at("type"), "is required (cash, asset or portfolio)");
            all_percents_valid = false;
            continue;
        };
        // A cash weight of 0 is allowed and dropped (Alpaca).
        if kind == WeightKind::Cash && parse_decimal(&input.percent).is_ok_and(|p| p.is_zero()) {
            if !input.symbol.is_empty() {
                violations.add(at("symbol"), "must be empty for a cash weight");
            }
            continue;
        }
        let percent = match parse_positive_percent(&input.percent, HUNDRED, 2) {
            Ok(percent) => percent,
            Err(problem) => {
                violations.add(at("percent"), problem);
                all_percents_valid = false;
                Decimal::ZERO
            }
        };
        let target = match kind {
            WeightKind::Cash => {
                if !input.symbol.is_empty() {
                    violations.add(at("symbol"), "must be empty for a cash weight");
                }
                if !input.portfolio_id.is_empty() {
                    violations.add(at("portfolio_id"), "must be empty for a cash weight");
                }
                WeightTarget::Cash
            }
            WeightKind::Asset => {
                if !input.portfolio_id.is_empty() {
                    violations.add(at("portfolio_id"), "must be empty for an asset weight");
                }
                match Symbol::parse(&input.symbol) {
                    Ok(symbol) => WeightTarget::Asset(symbol),
                    Err(error) => {
                        violations.add(at("symbol"), error.to_string());
                        continue;
                    }
                }
            }
            WeightKind::Portfolio => {
                if !input.symbol.is_empty() {
                    violations.add(at("symbol"), "must be empty for a portfolio weight");
                }
                if let Some(problem) = external_id_problem(&input.portfolio_id) {
                    violations.add(at("portfolio_id"), problem);
                    continue;
                }
                WeightTarget::Portfolio(input.portfolio_id.clone())
            }
        };
        if let Some(&earlier) = first_seen.get(&target) {
            let (field, what) = match &target {
                WeightTarget::Cash => ("type", "only one cash weight is allowed".to_owned()),
                WeightTarget::Asset(symbol) => ("symbol", format!("duplicate symbol {symbol}")),
                WeightTarget::Portfolio(id) => {
                    ("portfolio_id", format!("duplicate portfolio {id}"))
                }
            };
            violations.add(at(field), format!("{what} (also in weights[{earlier}])"));
            continue;
        }
        first_seen.insert(target.clone(), index);
        weights.push(Weight { target, percent });
    }
    if all_percents_valid && !weights.is_empty() {
        let sum: Decimal = weights.iter().map(|weight| weight.percent).sum();
        if sum != HUNDRED {
            violations.add(
                "weights",
                format!("percents sum to {}, must be exactly 100", sum.normalize()),
            );
        }
    }
    weights
}

fn validate_conditions(
    inputs: &[ConditionInput],
    weights: &[Weight],
    violations: &mut Violations,
) -> Vec<RebalanceCondition> {
    let mut conditions = Vec::with_capacity(inputs.len());
    let mut calendar_at: Option<usize> = None;
    let mut bands_seen: HashMap<(BandKind, Option<Symbol>), usize> = HashMap::new();
    let has_sleeves = weights
        .iter()
        .any(|weight| matches!(weight.target, WeightTarget::Portfolio(_)));
    for (index, input) in inputs.iter().enumerate() {
        let at = |field: &str| format!("rebalance_conditions[{index}].{field}");
        match input.kind {
            None => violations.add(at("type"), "is required (drift_band or calendar)"),
            Some(ConditionKind::DriftBand) => {
                let kind = match input.sub_kind {
                    Some(ConditionSubKind::Absolute) => BandKind::Absolute,
                    Some(ConditionSubKind::Relative) => BandKind::Relative,
                    _ => {
                        violations.add(
                            at("sub_type"),
                            "must be absolute or relative for a drift band",
                        );
                        continue;
                    }
                };
                if !input.day.is_empty() {
                    violations.add(at("day"), "must be empty for a drift band");
                }
                if input.only_outside_bands {
                    violations.add(
                        at("only_outside_bands"),
                        "is for calendar conditions (their days trade only outside the bands)",
                    );
                }
                // Relative bands are a share of the target weight and may exceed 100.
                let max = match kind {
                    BandKind::Absolute => HUNDRED,
                    BandKind::Relative => Decimal::from(1000),
                };
                let percent = match parse_positive_percent(&input.percent, max, 4) {
                    Ok(percent) => percent,
                    Err(problem) => {
                        violations.add(at("percent"), problem);
                        continue;
                    }
                };
                let symbol = if input.symbol.is_empty() {
                    None
                } else {
                    match Symbol::parse(&input.symbol) {
                        Ok(symbol) => {
                            let held = weights.iter().any(|w| w.symbol() == Some(&symbol));
                            if !held && !has_sleeves {
                                violations.add(
                                    at("symbol"),
                                    format!("{symbol} is not one of the portfolio's assets"),
                                );
                                continue;
                            }
                            Some(symbol)
                        }
                        Err(error) => {
                            violations.add(at("symbol"), error.to_string());
                            continue;
                        }
                    }
                };
                let key = (kind, symbol.clone());
                if let Some(&earlier) = bands_seen.get(&key) {
                    violations.add(
                        at("sub_type"),
                        format!("duplicate drift band (also in rebalance_conditions[{earlier}])"),
                    );
                    continue;
                }
                bands_seen.insert(key, index);
                conditions.push(RebalanceCondition::DriftBand(DriftBand {
                    kind,
                    percent,
                    symbol,
                }));
            }
            Some(ConditionKind::Calendar) => {
                if let Some(earlier) = calendar_at {
                    violations.add(
                        at("type"),
                        format!("at most one calendar condition is allowed (also in rebalance_conditions[{earlier}])"),
                    );
                    continue;
                }
                calendar_at = Some(index);
                if !input.percent.is_empty() {
                    violations.add(at("percent"), "must be empty for a calendar condition");
                }
                if !input.symbol.is_empty() {
                    violations.add(at("symbol"), "must be empty for a calendar condition");
                }
                let has_bands = inputs
                    .iter()
                    .any(|other| other.kind == Some(ConditionKind::DriftBand));
                if input.only_outside_bands && !has_bands {
                    violations.add(
                        at("only_outside_bands"),
                        "needs a drift band in rebalance_conditions to trade outside of",
                    );
                }
                match parse_calendar(input.sub_kind, &input.day) {
                    Ok(rule) if input.only_outside_bands => {
                        conditions.push(RebalanceCondition::Review(rule));
                    }
                    Ok(rule) => conditions.push(RebalanceCondition::Calendar(rule)),
                    Err((field, problem)) => violations.add(at(field), problem),
                }
            }
        }
    }
    conditions
}

/// Parses a calendar day for its sub-type; the error names the field at fault.
fn parse_calendar(
    sub_kind: Option<ConditionSubKind>,
    day: &str,
) -> Result<CalendarRule, (&'static str, String)> {
    let day_of_month = |day: &str| -> Result<u32, (&'static str, String)> {
        match day.parse::<u32>() {
            Ok(n) if (1..=31).contains(&n) && day.len() <= 2 => Ok(n),
            _ => Err((
                "day",
                format!("{day:?} must be a day of the month from 1 to 31"),
            )),
        }
    };
    match sub_kind {
        Some(ConditionSubKind::Weekly) => {
            parse_weekday(day).map(CalendarRule::Weekly).ok_or_else(|| {
                (
                    "day",
                    format!("{day:?} must be a weekday name such as \"monday\""),
                )
            })
        }
        Some(ConditionSubKind::Monthly) => day_of_month(day).map(CalendarRule::Monthly),
        Some(ConditionSubKind::Quarterly) => parse_quarter_day(day),
        Some(ConditionSubKind::Annually) => parse_month_day(day)
            .map(|(month, day)| CalendarRule::Annually { month, day })
            .ok_or_else(|| {
                (
                    "day",
                    format!("{day:?} must be a date as MM-DD, such as \"03-31\""),
                )
            }),
        _ => Err((
            "sub_type",
            "must be weekly, monthly, quarterly or annually for a calendar condition".to_owned(),
        )),
    }
}

/// "15": the 15th of January, April, July and October; "03-31": the 31st
/// (or the month's last day) of March, June, September and December. Any
/// month of the cycle names it.
fn parse_quarter_day(day: &str) -> Result<CalendarRule, (&'static str, String)> {
    let problem = || {
        (
            "day",
            format!(
                "{day:?} must be a day of the month from 1 to 31 (January, April, July, October) or MM-DD naming a month of the quarter cycle, such as \"03-31\""
            ),
        )
    };
    // Any day 1..=31 of any month: it is clamped to each month's length, so
    // "02-31" (what a February cycle on the 31st is written as) is fine.
    if let Some((month, day_of_month)) = day.split_once('-') {
        let parsed = (month.len() == 2 && day_of_month.len() == 2)
            .then(|| {
                Some((
                    month.parse::<u32>().ok()?,
                    day_of_month.parse::<u32>().ok()?,
                ))
            })
            .flatten()
            .filter(|(month, day)| (1..=12).contains(month) && (1..=31).contains(day));
        return match parsed {
            Some((month, day)) => Ok(CalendarRule::Quarterly {
                first_month: (month - 1) % 3 + 1,
                day,
            }),
            None => Err(problem()),
        };
    }
    match day.parse::<u32>() {
        Ok(n) if (1..=31).contains(&n) && day.len() <= 2 => Ok(CalendarRule::Quarterly {
            first_month: 1,
            day: n,
        }),
        _ => Err(problem()),
    }
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    let lower = text.to_ascii_lowercase();
    let weekday = match lower.as_str() {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        _ => return None,
    };
    Some(weekday)
}

/// Name of a weekday as the API writes it.
#[must_use]
pub fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn parse_month_day(text: &str) -> Option<(u32, u32)> {
    let (month, day) = text.split_once('-')?;
    if month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month: u32 = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    let longest = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return None,
    };
    (1..=longest).contains(&day).then_some((month, day))
}

/// Rebuilds a stored calendar rule from its sub-type and day text.
#[must_use]
pub fn calendar_rule(sub_kind: ConditionSubKind, day: &str) -> Option<CalendarRule> {
    parse_calendar(Some(sub_kind), day).ok()
}

#[cfg(test)]
#[path = "portfolio_tests.rs"]
mod tests;

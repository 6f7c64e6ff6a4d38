//! The account valued at the estimate prices, merged with its target: one
//! [`Line`] per priced symbol that is held or targeted, the equity, the cash
//! target. Symbols without a price are set apart here, once, so the rest of
//! the planner only ever sees positions it can value and size.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::ledger::Ledger;
use super::rounding::percent_share;
use super::{PlanInput, Side, SkipReason};
use crate::Symbol;
use crate::portfolio::WeightTarget;

/// A priced symbol, held or targeted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) symbol: Symbol,
    /// Positive.
    pub(super) price: Decimal,
    /// Zero when only targeted.
    pub(super) held: Decimal,
    /// `held × price`, exactly.
    pub(super) value: Decimal,
    /// Percent of equity the target gives this symbol (0 when not targeted).
    pub(super) target_percent: Decimal,
    pub(super) tradable: bool,
    /// Orders are sized in dollars (fractional); otherwise in whole shares.
    pub(super) sized_in_dollars: bool,
    /// The account may not buy this symbol.
    pub(super) buy_restricted: bool,
    /// The account may not sell this symbol.
    pub(super) sell_restricted: bool,
    /// Orders worth less are not placed: the portfolio's minimum, or the
    /// asset's own when larger.
    pub(super) minimum: Decimal,
    /// A full rebalance leaves the symbol alone closer to target than this
    /// many points.
    pub(super) minimum_drift: Option<Decimal>,
    /// The most shares a full rebalance may sell, and why.
    pub(super) sell_limit: Option<(Decimal, String, SkipReason)>,
    /// Why the account may not buy this symbol today (wash sale).
    pub(super) buy_blocked: Option<String>,
}

/// A held symbol without a price: kept as is, outside equity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnpricedHolding {
    pub(super) symbol: Symbol,
    pub(super) held: Decimal,
}

/// A targeted, not held symbol without a price: its weight stays in cash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnpricedTarget {
    pub(super) symbol: Symbol,
    pub(super) target_percent: Decimal,
}

/// The account, its target and the market, as one valued book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Book {
    pub(super) cash: Decimal,
    /// Cash plus the value of every line.
    pub(super) equity: Decimal,
    /// Percent of equity to keep in cash: 100 minus the asset weights, so
    /// that an empty target is all cash and unflattened sleeves stay cash.
    pub(super) cash_percent: Decimal,
    /// Sorted by symbol.
    pub(super) lines: Vec<Line>,
    pub(super) unpriced_holdings: Vec<UnpricedHolding>,
    pub(super) unpriced_targets: Vec<UnpricedTarget>,
    /// Never negative.
    pub(super) minimum: Decimal,
    pub(super) buys_blocked: bool,
    pub(super) sells_blocked: bool,
}

impl Book {
    /// Values the account; with `ignore_target` every asset's target is 0.
    pub(super) fn new(input: &PlanInput<'_>, ignore_target: bool) -> Self {
        let target_percents = if ignore_target {
            BTreeMap::new()
        } else {
            asset_percents(input)
        };
        let held = merged_holdings(input);
        let mut symbols: Vec<&Symbol> = held.keys().chain(target_percents.keys()).collect();
        symbols.sort();
        symbols.dedup();

        let mut lines = Vec::new();
        let mut unpriced_holdings = Vec::new();
        let mut unpriced_targets = Vec::new();
        for symbol in symbols {
            let quantity = held.get(symbol).copied().unwrap_or(Decimal::ZERO);
            let target_percent = target_percents
                .get(symbol)
                .copied()
                .unwrap_or(Decimal::ZERO);
            let asset = input
                .assets
                .get(symbol)
                .filter(|asset| asset.price > Decimal::ZERO);
            let restricted = |side: fn(&super::SymbolRestriction) -> bool| {
                input
                    .account
                    .restricted
                    .iter()
                    .any(|rule| &rule.symbol == symbol && side(rule))
            };
            let rule = input.asset_rules.iter().find(|rule| &rule.symbol == symbol);
            let minimum = rule
                .and_then(|rule| rule.minimum_order_notional)
                .unwrap_or(Decimal::ZERO)
                .max(input.minimum_order_notional)
                .max(Decimal::ZERO);
            let minimum_drift = rule.and_then(|rule| rule.minimum_drift);
            match asset {
                Some(asset) => lines.push(Line {
                    symbol: symbol.clone(),
                    price: asset.price,
                    held: quantity,
                    value: quantity * asset.price,
                    target_percent,
                    tradable: asset.tradable,
                    sized_in_dollars: asset.fractionable && !input.whole_shares_only,
                    buy_restricted: restricted(|rule| rule.no_buy),
                    sell_restricted: restricted(|rule| rule.no_sell),
                    minimum,
                    minimum_drift,
                    sell_limit: input
                        .account
                        .sell_limits
                        .iter()
                        .filter(|limit| &limit.symbol == symbol)
                        .min_by(|a, b| a.quantity.cmp(&b.quantity))
                        .map(|limit| {
                            (
                                limit.quantity.max(Decimal::ZERO),
                                limit.detail.clone(),
                                limit.reason,
                            )
                        }),
                    buy_blocked: input
                        .account
                        .buy_blocks
                        .iter()
                        .find(|block| &block.symbol == symbol)
                        .map(|block| block.detail.clone()),
                }),
                None if quantity > Decimal::ZERO => unpriced_holdings.push(UnpricedHolding {
                    symbol: symbol.clone(),
                    held: quantity,
                }),
                None => unpriced_targets.push(UnpricedTarget {
                    symbol: symbol.clone(),
                    target_percent,
                }),
            }
        }
        let asset_total: Decimal = target_percents.values().sum();
        let cash = input.account.cash;
        let equity = cash + lines.iter().map(|line| line.value).sum::<Decimal>();
        Self {
            cash,
            equity,
            cash_percent: (Decimal::ONE_HUNDRED - asset_total).max(Decimal::ZERO),
            lines,
            unpriced_holdings,
            unpriced_targets,
            minimum: input.minimum_order_notional.max(Decimal::ZERO),
            buys_blocked: input.account.buys_blocked,
            sells_blocked: input.account.sells_blocked,
        }
    }

    /// Dollars the target gives `line` on the current equity.
    pub(super) fn target_value(&self, line: &Line) -> Decimal {
        percent_share(self.equity, line.target_percent)
    }

    /// Dollars the target keeps in cash on the current equity.
    /// Whether a full rebalance leaves `line` alone: closer to its target
    /// than the asset's minimum drift (percentage points of equity).
    pub(super) fn within_minimum_drift(&self, line: &Line) -> Option<Decimal> {
        let minimum = line.minimum_drift?;
        if self.equity <= Decimal::ZERO {
            return None;
        }
        let drift = (line.value * Decimal::ONE_HUNDRED / self.equity - line.target_percent).abs();
        (drift < minimum).then_some(drift)
    }

    pub(super) fn cash_target(&self) -> Decimal {
        percent_share(self.equity, self.cash_percent)
    }

    /// Every plan reports the holdings it could not value.
    pub(super) fn report_unpriced_holdings(&self, ledger: &mut Ledger) {
        for holding in &self.unpriced_holdings {
            ledger.skip_unpriced(
                &holding.symbol,
                Side::Sell,
                holding.held,
                format!(
                    "no price for {}: position of {} shares kept as is and left out of equity",
                    holding.symbol,
                    holding.held.normalize()
                ),
            );
        }
    }

    /// Plans that buy report the targets they cannot buy for want of a price.
    pub(super) fn report_unpriced_targets(&self, ledger: &mut Ledger) {
        for target in &self.unpriced_targets {
            ledger.skip_unpriced(
                &target.symbol,
                Side::Buy,
                Decimal::ZERO,
                format!(
                    "no price for {}: its target weight of {}% stays in cash",
                    target.symbol,
                    target.target_percent.normalize()
                ),
            );
        }
    }
}

/// Percent per targeted symbol; repeated symbols add up.
fn asset_percents(input: &PlanInput<'_>) -> BTreeMap<Symbol, Decimal> {
    let mut percents = BTreeMap::new();
    for weight in input.target {
        if let WeightTarget::Asset(symbol) = &weight.target {
            *percents.entry(symbol.clone()).or_insert(Decimal::ZERO) += weight.percent;
        }
    }
    percents
}

/// Quantity per held symbol; repeated symbols add up, empty (or short)
/// positions are ignored since there is nothing to sell.
fn merged_holdings(input: &PlanInput<'_>) -> BTreeMap<Symbol, Decimal> {
    let mut held = BTreeMap::new();
    for holding in &input.account.holdings {
        *held.entry(holding.symbol.clone()).or_insert(Decimal::ZERO) += holding.quantity;
    }
    held.retain(|_, quantity| *quantity > Decimal::ZERO);
    held
}

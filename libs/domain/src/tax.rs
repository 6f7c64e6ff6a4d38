//! Tax-aware planning for one account: which lots each sale closes (the
//! account's lot method), what it realizes short and long term, and the
//! tax controls that hold sales back: a realized-gain budget per run and
//! per calendar year, and "no short-term gains".
//!
//! The controls apply to a taxable account's full rebalance: they become
//! sell limits ([`crate::trades::SellLimit`]) the planner honours, so a sale
//! held back also holds back the buys it would have paid for. A budget is
//! spent on the sales that realize the least gain per dollar first; losses
//! are always taken (they make room). Liquidations raise what they must,
//! whatever the budget; their lots are still chosen by the method.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Symbol;
use crate::Violations;
use crate::lots::{self, Lot, LotMethod, Sale, Term};
use crate::trades::{PlannedOrder, SellLimit, Side, SkipReason};

/// How gains of an account are taxed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxStatus {
    /// Gains are taxed when realized: the controls apply.
    #[default]
    Taxable,
    /// An IRA or 401(k): taxed on withdrawal, not on sales.
    TaxDeferred,
    /// A Roth or charity: never taxed.
    TaxExempt,
}

/// Which lots a sale closes first (specific lots are chosen per order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSelection {
    #[default]
    Fifo,
    Lifo,
    Hifo,
    MinimumTax,
}

impl LotSelection {
    #[must_use]
    pub fn method(self) -> LotMethod {
        match self {
            Self::Fifo => LotMethod::Fifo,
            Self::Lifo => LotMethod::Lifo,
            Self::Hifo => LotMethod::Hifo,
            Self::MinimumTax => LotMethod::MinimumTax,
        }
    }
}

/// An account's tax settings; the default is a taxable FIFO account
/// without controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSettings {
    #[serde(default)]
    pub status: TaxStatus,
    #[serde(default)]
    pub lot_method: LotSelection,
    /// Net realized gain one run may make, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_gain_budget: Option<Decimal>,
    /// Net realized gain the account may make in a calendar year, runs and
    /// fills already booked this year included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_gain_budget: Option<Decimal>,
    /// Sales that would realize a short-term gain wait until the lot goes
    /// long term.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_short_term_gains: bool,
    /// Percentage points: a taxable account whose every line is closer to
    /// its target than this is not traded for drift alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_tolerance: Option<Decimal>,
}

impl TaxSettings {
    #[must_use]
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Tax settings as given, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct TaxSettingsInput {
    pub status: TaxStatus,
    pub lot_method: LotSelection,
    /// Empty: none.
    pub run_gain_budget: String,
    pub annual_gain_budget: String,
    pub no_short_term_gains: bool,
    /// Empty: none.
    pub drift_tolerance: String,
}

impl TaxSettingsInput {
    /// # Errors
    /// A violation per bad budget (field names relative to the settings).
    pub fn validate(self) -> Result<TaxSettings, Violations> {
        let mut violations = Violations::new();
        let mut budget = |field: &str, text: &str| {
            if text.is_empty() {
                return None;
            }
            match crate::decimal::parse_decimal(text) {
                Ok(value)
                    if value >= Decimal::ZERO
                        && crate::decimal::significant_scale(value) <= 2
                        && value <= crate::account::MAX_CASH =>
                {
                    Some(value.normalize())
                }
                _ => {
                    violations.add(
                        field,
                        "must be a dollar amount between 0 and 1000000000000 with at most 2 decimals",
                    );
                    None
                }
            }
        };
        let run_gain_budget = budget("run_gain_budget", &self.run_gain_budget);
        let annual_gain_budget = budget("annual_gain_budget", &self.annual_gain_budget);
        let drift_tolerance = if self.drift_tolerance.is_empty() {
            None
        } else {
            match crate::decimal::parse_decimal(&self.drift_tolerance) {
                Ok(value)
                    if value > Decimal::ZERO
                        && value < Decimal::ONE_HUNDRED
                        && crate::decimal::significant_scale(value) <= 2 =>
                {
                    Some(value.normalize())
                }
                _ => {
                    violations.add(
                        "drift_tolerance",
                        "must be percentage points above 0 and below 100 with at most 2 decimals",
                    );
                    None
                }
            }
        };
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(TaxSettings {
            status: self.status,
            lot_method: self.lot_method,
            run_gain_budget,
            annual_gain_budget,
            no_short_term_gains: self.no_short_term_gains,
            drift_tolerance,
        })
    }
}

/// Holds a taxable account's full rebalance back when no line of `plan`
/// (cash included) is further from its target than the account's drift
/// tolerance: its orders become skipped trades with the reason, and the
/// expected weights stay the current ones. Whether it did.
pub fn hold_within_tolerance(settings: &TaxSettings, plan: &mut crate::trades::Plan) -> bool {
    let Some(tolerance) = settings.drift_tolerance else {
        return false;
    };
    if settings.status != TaxStatus::Taxable || plan.orders.is_empty() {
        return false;
    }
    let Some(widest) = plan
        .drift
        .iter()
        .max_by(|a, b| a.drift.abs().cmp(&b.drift.abs()))
    else {
        return false;
    };
    if widest.drift.abs() >= tolerance {
        return false;
    }
    let name = widest
        .symbol
        .as_ref()
        .map_or_else(|| "cash".to_owned(), ToString::to_string);
    let detail = format!(
        "within the taxable drift tolerance of {tolerance} points (widest: {name} at {} points): not traded for drift alone",
        widest.drift.round_dp(2)
    );
    for order in plan.orders.drain(..) {
        plan.skipped.push(crate::trades::SkippedTrade {
            notional: order
                .cash_amount()
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero),
            symbol: order.symbol,
            side: order.side,
            quantity: order.quantity,
            reason: SkipReason::Tax,
            detail: detail.clone(),
        });
    }
    for line in &mut plan.drift {
        line.expected_weight = line.current_weight;
        line.expected_value = line.current_value;
    }
    plan.cash_after = plan.cash_before;
    true
}

/// An account's lots and settings on the day of a plan.
#[derive(Debug, Clone, Copy)]
pub struct TaxView<'a> {
    pub settings: &'a TaxSettings,
    /// Open lots by symbol.
    pub lots: &'a HashMap<Symbol, Vec<Lot>>,
    /// Net gains realized so far this calendar year.
    pub realized_this_year: Decimal,
    pub today: NaiveDate,
    /// Symbols whose lots at a loss may not be sold (the wash-sale guard),
    /// with why.
    pub frozen_losses: &'a HashMap<Symbol, String>,
}

/// What one run's sales realize.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GainSummary {
    pub short_term: Decimal,
    pub long_term: Decimal,
    /// The net gain the run may still realize, when a budget applies.
    pub budget_left: Option<Decimal>,
}

/// The part of a sale one lot makes.
#[derive(Debug, Clone)]
struct Chunk {
    quantity: Decimal,
    gain: Decimal,
    proceeds: Decimal,
}

impl TaxView<'_> {
    fn controlled(&self) -> bool {
        self.settings.status == TaxStatus::Taxable
    }

    /// Lot indexes in the order a sale at `price` closes them: the method's
    /// order, less the lots "no short-term gains" and (for a `symbol`) the
    /// wash-sale guard keep.
    fn closing(&self, symbol: Option<&Symbol>, lots: &[Lot], price: Decimal) -> Vec<usize> {
        let method = self.settings.lot_method.method();
        lots::closing_order(lots, &method, price, self.today)
            .into_iter()
            .filter(|index| {
                !self.held_for_term(&lots[*index], price)
                    && !symbol
                        .is_some_and(|symbol| self.held_for_wash(symbol, &lots[*index], price))
            })
            .collect()
    }

    /// Whether the wash-sale guard keeps `lot` of `symbol` from a sale at
    /// `price` (it would realize a loss).
    fn held_for_wash(&self, symbol: &Symbol, lot: &Lot, price: Decimal) -> bool {
        self.controlled() && price < lot.cost_per_share() && self.frozen_losses.contains_key(symbol)
    }

    /// `closing`, then the lots it keeps, in the method's order.
    fn closing_all(&self, symbol: Option<&Symbol>, lots: &[Lot], price: Decimal) -> Vec<String> {
        let mut order = self.closing(symbol, lots, price);
        let rest: Vec<usize> =
            lots::closing_order(lots, &self.settings.lot_method.method(), price, self.today)
                .into_iter()
                .filter(|index| !order.contains(index))
                .collect();
        order.extend(rest);
        order
            .into_iter()
            .map(|index| lots[index].id.clone())
            .collect()
    }

    /// Whether "no short-term gains" keeps `lot` from a sale at `price`.
    fn held_for_term(&self, lot: &Lot, price: Decimal) -> bool {
        self.controlled()
            && self.settings.no_short_term_gains
            && lot.term_on(self.today) == Term::Short
            && price > lot.cost_per_share()
    }

    /// The lots a sale of `quantity` at `price` closes, and what it realizes.
    #[must_use]
    pub fn sale(&self, symbol: &Symbol, quantity: Decimal, price: Decimal) -> Sale {
        match self.lots.get(symbol) {
            Some(lots) => {
                let method = LotMethod::Specific(self.closing_all(Some(symbol), lots, price));
                lots::sell(lots, quantity, price, self.today, &method).0
            }
            None => Sale {
                closed: Vec::new(),
                uncovered: quantity,
            },
        }
    }

    /// The net gain a run may still realize: the smaller of the run's budget
    /// and what the year's budget leaves; `None` without a budget.
    #[must_use]
    pub fn budget(&self) -> Option<Decimal> {
        if !self.controlled() {
            return None;
        }
        let annual = self
            .settings
            .annual_gain_budget
            .map(|budget| (budget - self.realized_this_year).max(Decimal::ZERO));
        match (self.settings.run_gain_budget, annual) {
            (Some(run), Some(year)) => Some(run.min(year)),
            (run, year) => run.or(year),
        }
    }

    fn budget_words(&self) -> String {
        let mut words = Vec::new();
        if let Some(run) = self.settings.run_gain_budget {
            words.push(format!("the run's gain budget of ${run}"));
        }
        if let Some(year) = self.settings.annual_gain_budget {
            words.push(format!(
                "the annual gain budget of ${year} (${} realized this year)",
                self.realized_this_year.round_dp(2)
            ));
        }
        words.join(" and ")
    }

    /// The sell limits the controls put on `orders` (a plan made without
    /// them); empty when nothing binds.
    #[must_use]
    pub fn sell_limits(&self, orders: &[PlannedOrder]) -> Vec<SellLimit> {
        if !self.controlled() {
            return Vec::new();
        }
        let mut limits: BTreeMap<Symbol, (Decimal, String, SkipReason)> = BTreeMap::new();
        let mut queues: BTreeMap<Symbol, (Decimal, Vec<Chunk>)> = BTreeMap::new();
        for order in orders.iter().filter(|order| order.side == Side::Sell) {
            let Some(lots) = self.lots.get(&order.symbol) else {
                continue;
            };
            let closing = self.closing(Some(&order.symbol), lots, order.price);
            let eligible: Decimal = closing.iter().map(|index| lots[*index].quantity).sum();
            let mut wanted = order.quantity;
            let washed = lots
                .iter()
                .any(|lot| self.held_for_wash(&order.symbol, lot, order.price));
            if eligible < order.quantity && washed {
                let reason = self
                    .frozen_losses
                    .get(&order.symbol)
                    .cloned()
                    .unwrap_or_default();
                limits.insert(
                    order.symbol.clone(),
                    (
                        eligible,
                        format!(
                            "{} shares of {} at a loss not sold: {reason}",
                            (order.quantity - eligible).normalize(),
                            order.symbol
                        ),
                        SkipReason::WashSale,
                    ),
                );
                wanted = eligible;
            } else if eligible < order.quantity && self.settings.no_short_term_gains {
                let first_long = lots
                    .iter()
                    .filter(|lot| self.held_for_term(lot, order.price))
                    .map(|lot| long_term_from(lot.acquired))
                    .min();
                let left = order.quantity - eligible;
                limits.insert(
                    order.symbol.clone(),
                    (
                        eligible,
                        format!(
                            "{} shares of {} held back: they would realize a short-term gain (no short-term gains); the first goes long term on {}",
                            left.normalize(),
                            order.symbol,
                            first_long.map_or_else(String::new, |date| date.to_string())
                        ),
                        SkipReason::Tax,
                    ),
                );
                wanted = eligible;
            }
            let mut chunks = Vec::new();
            let mut left = wanted;
            for index in closing {
                if left <= Decimal::ZERO {
                    break;
                }
                let lot = &lots[index];
                let quantity = left.min(lot.quantity);
                let proceeds = quantity * order.price;
                chunks.push(Chunk {
                    quantity,
                    gain: proceeds - lot.cost_per_share() * quantity,
                    proceeds,
                });
                left -= quantity;
            }
            queues.insert(order.symbol.clone(), (Decimal::ZERO, chunks));
        }
        if let Some(budget) = self.budget() {
            let realized = spend_budget(budget, &mut queues);
            for (symbol, (accepted, chunks)) in &queues {
                let wanted: Decimal = chunks.iter().map(|chunk| chunk.quantity).sum();
                if *accepted >= wanted {
                    continue;
                }
                let left = wanted - accepted;
                let detail = format!(
                    "{} shares of {symbol} not sold: {} is spent (${} of net gains planned); the sale would realize ${} more",
                    left.normalize(),
                    self.budget_words(),
                    realized.round_dp(2),
                    held_back_gain(chunks, *accepted).round_dp(2),
                );
                let entry = limits.entry(symbol.clone()).or_insert((
                    *accepted,
                    detail.clone(),
                    SkipReason::Tax,
                ));
                if *accepted <= entry.0 {
                    *entry = (*accepted, detail, SkipReason::Tax);
                }
            }
        }
        limits
            .into_iter()
            .map(|(symbol, (quantity, detail, reason))| SellLimit {
                symbol,
                quantity,
                detail,
                reason,
            })
            .collect()
    }

    /// What `orders` realize (sales at their estimate prices).
    #[must_use]
    pub fn summary(&self, sales: &[Sale]) -> GainSummary {
        GainSummary {
            short_term: sales.iter().map(|sale| sale.gain(Term::Short)).sum(),
            long_term: sales.iter().map(|sale| sale.gain(Term::Long)).sum(),
            budget_left: self.budget().map(|budget| {
                let total: Decimal = sales.iter().map(Sale::total_gain).sum();
                (budget - total).max(Decimal::ZERO)
            }),
        }
    }
}

/// Closes `quantity` shares of `lots` sold at `price` on `sold`: the
/// `planned` lots first (those the plan chose, in its order), then as the
/// account's settings say (its lot method; for a taxable account with "no
/// short-term gains", short-term gains last). What the sale realizes and
/// the lots left.
#[must_use]
pub fn close(
    settings: &TaxSettings,
    lots: &[Lot],
    planned: &[String],
    quantity: Decimal,
    price: Decimal,
    sold: NaiveDate,
) -> (Sale, Vec<Lot>) {
    let none = HashMap::new();
    let view = TaxView {
        settings,
        lots: &none,
        realized_this_year: Decimal::ZERO,
        today: sold,
        frozen_losses: &HashMap::new(),
    };
    let rest = view.closing_all(None, lots, price);
    let mut ids: Vec<String> = planned.to_vec();
    ids.extend(rest.into_iter().filter(|id| !planned.contains(id)));
    lots::sell(lots, quantity, price, sold, &LotMethod::Specific(ids))
}

/// The day a lot bought on `acquired` is first long term.
fn long_term_from(acquired: NaiveDate) -> NaiveDate {
    let anniversary = lots::anniversary(acquired);
    anniversary.succ_opt().unwrap_or(anniversary)
}

/// The gain of the shares of `chunks` past the first `accepted`.
fn held_back_gain(chunks: &[Chunk], accepted: Decimal) -> Decimal {
    let mut skip = accepted;
    let mut gain = Decimal::ZERO;
    for chunk in chunks {
        let taken = skip.min(chunk.quantity);
        skip -= taken;
        let rest = chunk.quantity - taken;
        if rest > Decimal::ZERO {
            gain += chunk.gain * rest / chunk.quantity;
        }
    }
    gain
}

/// Accepts each symbol's chunks in order, cheapest gain per dollar first,
/// while the net gain stays within `budget`; a chunk that does not fit is
/// taken in part and ends its symbol. Returns the net gain accepted; each
/// queue's first field becomes the shares accepted.
fn spend_budget(budget: Decimal, queues: &mut BTreeMap<Symbol, (Decimal, Vec<Chunk>)>) -> Decimal {
    let mut next: BTreeMap<Symbol, usize> =
        queues.keys().map(|symbol| (symbol.clone(), 0)).collect();
    let mut realized = Decimal::ZERO;
    loop {
        let pick = next
            .iter()
            .filter_map(|(symbol, index)| {
                let chunk = queues[symbol].1.get(*index)?;
                let per_dollar = if chunk.proceeds.is_zero() {
                    Decimal::ZERO
                } else {
                    chunk.gain / chunk.proceeds
                };
                Some((per_dollar, symbol.clone()))
            })
            .min();
        let Some((_, symbol)) = pick else {
            break;
        };
        let index = next[&symbol];
        let (accepted, chunks) = queues.get_mut(&symbol).expect("queued symbol");
        let chunk = &chunks[index];
        if chunk.gain <= Decimal::ZERO || realized + chunk.gain <= budget {
            realized += chunk.gain;
            *accepted += chunk.quantity;
            next.insert(symbol, index + 1);
            continue;
        }
        let per_share = chunk.gain / chunk.quantity;
        let room = (budget - realized).max(Decimal::ZERO);
        let shares = (room / per_share)
            .round_dp_with_strategy(9, rust_decimal::RoundingStrategy::ToZero)
            .min(chunk.quantity);
        realized += shares * per_share;
        *accepted += shares;
        next.remove(&symbol);
    }
    realized
}

#[cfg(test)]
mod tests;

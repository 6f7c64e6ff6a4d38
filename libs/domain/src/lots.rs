//! Tax lots: the shares of a position as bought, each with its quantity,
//! cost basis and acquisition date, and the rules that choose which lots a
//! sale closes (FIFO, LIFO, HIFO, specific lots, or the least tax), with the
//! realized gain each closing makes, short or long term.
//!
//! A lot's basis is kept whole (dollars, not a rounded price per share), so
//! quantity and basis are conserved exactly through buys, sales, splits and
//! transfers in: what a sale closes plus what stays is what there was. A
//! partial close takes the basis in proportion, rounded to the cent, and the
//! lot keeps the rest.
//!
//! The holding period follows the US rule: a lot is long term when sold
//! more than one year after it was acquired (the day after the
//! anniversary); otherwise short term.

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

/// Dollars to the cent, halves away from zero.
fn rounding_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Shares bought together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: String,
    /// Positive.
    pub quantity: Decimal,
    /// Dollars paid for `quantity`, fees included; 0 or more.
    pub basis: Decimal,
    pub acquired: NaiveDate,
}

impl Lot {
    #[must_use]
    pub fn cost_per_share(&self) -> Decimal {
        if self.quantity.is_zero() {
            Decimal::ZERO
        } else {
            self.basis / self.quantity
        }
    }

    /// Long term when sold on `sold`.
    #[must_use]
    pub fn term_on(&self, sold: NaiveDate) -> Term {
        if sold > anniversary(self.acquired) {
            Term::Long
        } else {
            Term::Short
        }
    }
}

/// The day one year after `date` (Feb 29 → Feb 28 in a common year).
pub(crate) fn anniversary(date: NaiveDate) -> NaiveDate {
    let year = date.year() + 1;
    NaiveDate::from_ymd_opt(year, date.month(), date.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), 28))
        .unwrap_or(date)
}

crate::text_enum! {
    /// How long a lot was held when closed.
    pub enum Term {
        Short = "short",
        Long = "long",
    }
}

/// Which lots a sale closes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LotMethod {
    /// Oldest first.
    Fifo,
    /// Newest first.
    Lifo,
    /// Highest cost per share first.
    Hifo,
    /// Losses first (largest loss per share first), then long-term gains,
    /// then short-term gains, each by the smallest gain per share.
    MinimumTax,
    /// These lots, in this order, then FIFO for what they do not cover.
    Specific(Vec<String>),
}

/// What closing part or all of one lot realizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedLot {
    pub lot_id: String,
    pub acquired: NaiveDate,
    pub quantity: Decimal,
    /// The part of the lot's basis closed, to the cent.
    pub basis: Decimal,
    /// `quantity × price`, to the cent.
    pub proceeds: Decimal,
    pub term: Term,
}

impl ClosedLot {
    #[must_use]
    pub fn gain(&self) -> Decimal {
        self.proceeds - self.basis
    }
}

/// A sale's lots and what it realizes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sale {
    pub closed: Vec<ClosedLot>,
    /// Shares asked for beyond what the lots hold (nothing closes them).
    pub uncovered: Decimal,
}

impl Sale {
    /// Realized gain (negative: loss) of one term.
    #[must_use]
    pub fn gain(&self, term: Term) -> Decimal {
        self.closed
            .iter()
            .filter(|closed| closed.term == term)
            .map(ClosedLot::gain)
            .sum()
    }

    #[must_use]
    pub fn total_gain(&self) -> Decimal {
        self.closed.iter().map(ClosedLot::gain).sum()
    }
}

/// The order in which `method` closes `lots` for a sale at `price` on `sold`.
#[must_use]
pub fn closing_order(
    lots: &[Lot],
    method: &LotMethod,
    price: Decimal,
    sold: NaiveDate,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lots.len()).collect();
    let by_date = |a: &usize, b: &usize| {
        lots[*a]
            .acquired
            .cmp(&lots[*b].acquired)
            .then_with(|| lots[*a].id.cmp(&lots[*b].id))
    };
    match method {
        LotMethod::Fifo => order.sort_by(by_date),
        LotMethod::Lifo => order.sort_by(|a, b| by_date(b, a)),
        LotMethod::Hifo => order.sort_by(|a, b| {
            lots[*b]
                .cost_per_share()
                .cmp(&lots[*a].cost_per_share())
                .then_with(|| by_date(a, b))
        }),
        LotMethod::MinimumTax => order.sort_by(|a, b| {
            let rank = |index: usize| {
                let lot = &lots[index];
                let gain = price - lot.cost_per_share();
                // Losses first, then long-term gains, then short-term.
                let class = if gain < Decimal::ZERO {
                    0
                } else if lot.term_on(sold) == Term::Long {
                    1
                } else {
                    2
                };
                (class, gain)
            };
            rank(*a).cmp(&rank(*b)).then_with(|| by_date(a, b))
        }),
        LotMethod::Specific(ids) => {
            order.sort_by(by_date);
            let chosen: Vec<usize> = ids
                .iter()
                .filter_map(|id| lots.iter().position(|lot| &lot.id == id))
                .collect();
            let rest = order.into_iter().filter(|index| !chosen.contains(index));
            order = chosen.iter().copied().chain(rest).collect();
        }
    }
    order
}

/// Closes `quantity` shares of `lots` at `price` on `sold` by `method`:
/// what the sale realizes, and the lots as they stand after it.
#[must_use]
pub fn sell(
    lots: &[Lot],
    quantity: Decimal,
    price: Decimal,
    sold: NaiveDate,
    method: &LotMethod,
) -> (Sale, Vec<Lot>) {
    let mut remaining: Vec<Lot> = lots.to_vec();
    let mut sale = Sale::default();
    let mut left = quantity.max(Decimal::ZERO);
    for index in closing_order(lots, method, price, sold) {
        if left.is_zero() {
            break;
        }
        let lot = &mut remaining[index];
        let take = left.min(lot.quantity);
        if take.is_zero() {
            continue;
        }
        let basis = if take == lot.quantity {
            lot.basis
        } else {
            rounding_cents(lot.basis * take / lot.quantity)
        };
        sale.closed.push(ClosedLot {
            lot_id: lot.id.clone(),
            acquired: lot.acquired,
            quantity: take,
            basis,
            proceeds: rounding_cents(take * price),
            term: lot.term_on(sold),
        });
        lot.quantity -= take;
        lot.basis -= basis;
        left -= take;
    }
    sale.uncovered = left;
    remaining.retain(|lot| !lot.quantity.is_zero());
    (sale, remaining)
}

/// Opens a lot for a buy of `quantity` at a total cost of `basis`.
pub fn buy(
    lots: &mut Vec<Lot>,
    id: String,
    quantity: Decimal,
    basis: Decimal,
    acquired: NaiveDate,
) {
    if quantity > Decimal::ZERO {
        lots.push(Lot {
            id,
            quantity,
            basis: basis.max(Decimal::ZERO),
            acquired,
        });
    }
}

/// Adds a buy of `quantity` at a total cost of `basis` to the lot `id`
/// acquired on `acquired` (the fills of one order on one day are one lot),
/// or opens it; a lot `id` of another day gets the date in its id.
pub fn add(lots: &mut Vec<Lot>, id: &str, quantity: Decimal, basis: Decimal, acquired: NaiveDate) {
    if quantity <= Decimal::ZERO {
        return;
    }
    let dated = format!("{id}-{acquired}");
    if let Some(lot) = lots
        .iter_mut()
        .find(|lot| (lot.id == id || lot.id == dated) && lot.acquired == acquired)
    {
        lot.quantity += quantity;
        lot.basis += basis.max(Decimal::ZERO);
        return;
    }
    let taken = |candidate: &str| lots.iter().any(|lot| lot.id == candidate);
    let id = std::iter::once(id.to_owned())
        .chain(std::iter::once(dated.clone()))
        .chain((2..).map(|n| format!("{dated}-{n}")))
        .find(|candidate| !taken(candidate))
        .unwrap_or(dated);
    buy(lots, id, quantity, basis, acquired);
}

/// A split of `new` shares for every `old`: quantities scale, each lot's
/// basis and date stay (so its cost per share scales the other way).
pub fn split(lots: &mut [Lot], new: Decimal, old: Decimal) {
    if new <= Decimal::ZERO || old <= Decimal::ZERO {
        return;
    }
    for lot in lots {
        lot.quantity =
            (lot.quantity * new / old).round_dp_with_strategy(9, RoundingStrategy::ToZero);
    }
}

/// Unrealized gain of `lot` at `price`, to the cent.
#[must_use]
pub fn unrealized(lot: &Lot, price: Decimal) -> Decimal {
    rounding_cents(lot.quantity * price) - lot.basis
}

/// A lot as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct LotInput {
    pub id: String,
    pub quantity: String,
    /// Dollars paid for the quantity.
    pub cost_basis: String,
    /// YYYY-MM-DD.
    pub acquired_on: String,
}

/// The most lots one position may carry.
pub const MAX_LOTS: usize = 1000;

/// Checks the lots of a position of `quantity` shares: ids unique, each
/// quantity positive with at most 9 decimals, each basis 0 or more with at
/// most 2 decimals, dates valid, quantities summing to the position's.
/// Field names are `lots[i].field` (or `lots` for the sum).
///
/// # Errors
/// One violation per problem.
pub fn validate_lots(
    inputs: &[LotInput],
    quantity: Decimal,
) -> Result<Vec<Lot>, crate::Violations> {
    use crate::decimal::{parse_decimal, significant_scale};
    let mut violations = crate::Violations::new();
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    if inputs.len() > MAX_LOTS {
        violations.add("lots", format!("at most {MAX_LOTS} lots per position"));
        return Err(violations);
    }
    let mut lots = Vec::with_capacity(inputs.len());
    let mut ids = std::collections::HashSet::new();
    for (index, input) in inputs.iter().enumerate() {
        let at = |field: &str| format!("lots[{index}].{field}");
        if let Some(problem) = crate::ids::external_id_problem(&input.id) {
            violations.add(at("id"), problem);
        } else if !ids.insert(input.id.as_str()) {
            violations.add(at("id"), format!("duplicate lot id {}", input.id));
        }
        let lot_quantity = match parse_decimal(&input.quantity) {
            Ok(value)
                if value > Decimal::ZERO
                    && significant_scale(value) <= 9
                    && value <= crate::account::MAX_CASH =>
            {
                Some(value.normalize())
            }
            _ => {
                violations.add(
                    at("quantity"),
                    "must be a positive number of shares with at most 9 decimals",
                );
                None
            }
        };
        let basis = match parse_decimal(&input.cost_basis) {
            Ok(value)
                if value >= Decimal::ZERO
                    && significant_scale(value) <= 2
                    && value <= crate::account::MAX_CASH =>
            {
                Some(value.normalize())
            }
            _ => {
                violations.add(
                    at("cost_basis"),
                    "must be the dollars paid, 0 or more with at most 2 decimals",
                );
                None
            }
        };
        let acquired = match NaiveDate::parse_from_str(&input.acquired_on, "%Y-%m-%d") {
            Ok(date) if date.year() >= 1900 => Some(date),
            _ => {
                violations.add(
                    at("acquired_on"),
                    "must be a date, YYYY-MM-DD, from 1900 on",
                );
                None
            }
        };
        if let (Some(quantity), Some(basis), Some(acquired)) = (lot_quantity, basis, acquired) {
            lots.push(Lot {
                id: input.id.clone(),
                quantity,
                basis,
                acquired,
            });
        }
    }
    if violations.is_empty() {
        let total: Decimal = lots.iter().map(|lot| lot.quantity).sum();
        if total != quantity {
            violations.add(
                "lots",
                format!(
                    "lot quantities sum to {}, the position holds {}",
                    total.normalize(),
                    quantity.normalize()
                ),
            );
        }
    }
    if violations.is_empty() {
        Ok(lots)
    } else {
        Err(violations)
    }
}

/// `lots` made to cover exactly `quantity` shares: shares the lots do not
/// cover become one lot `uncovered_id` at `average_cost`, acquired on
/// `opened`; lots beyond the quantity are closed newest first (a transfer
/// out, not a sale).
#[must_use]
pub fn cover(
    mut lots: Vec<Lot>,
    quantity: Decimal,
    average_cost: Decimal,
    opened: NaiveDate,
    uncovered_id: &str,
) -> Vec<Lot> {
    let held: Decimal = lots.iter().map(|lot| lot.quantity).sum();
    if held < quantity {
        let missing = quantity - held;
        // The first of `uncovered_id`, `uncovered_id-2`, ... not taken.
        let taken = |id: &str| lots.iter().any(|lot| lot.id == id);
        let id = std::iter::once(uncovered_id.to_owned())
            .chain((2..).map(|n| format!("{uncovered_id}-{n}")))
            .find(|id| !taken(id))
            .unwrap_or_default();
        lots.push(Lot {
            id,
            quantity: missing,
            basis: rounding_cents(missing * average_cost).max(Decimal::ZERO),
            acquired: opened,
        });
    } else if held > quantity {
        let (_, kept) = sell(
            &lots,
            held - quantity,
            Decimal::ZERO,
            opened,
            &LotMethod::Lifo,
        );
        lots = kept;
    }
    lots
}

/// A split as an operator sent it.
#[derive(Debug, Clone, Default)]
pub struct SplitInput {
    pub symbol: String,
    pub new_shares: String,
    pub old_shares: String,
    pub effective_on: String,
}

/// A validated split: `new` shares for every `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub symbol: crate::Symbol,
    pub new: Decimal,
    pub old: Decimal,
    pub effective_on: NaiveDate,
}

impl SplitInput {
    /// # Errors
    /// A violation per bad field.
    pub fn validate(self) -> Result<Split, crate::Violations> {
        let mut violations = crate::Violations::new();
        let symbol = crate::Symbol::parse(&self.symbol)
            .map_err(|error| violations.add("symbol", error.to_string()))
            .ok();
        let mut shares = |field: &str, text: &str| match crate::decimal::parse_decimal(text) {
            Ok(value)
                if value.fract().is_zero()
                    && value >= Decimal::ONE
                    && value <= Decimal::ONE_THOUSAND =>
            {
                Some(value.normalize())
            }
            _ => {
                violations.add(field, "must be a whole number from 1 to 1000");
                None
            }
        };
        let new = shares("new_shares", &self.new_shares);
        let old = shares("old_shares", &self.old_shares);
        if let (Some(new), Some(old)) = (new, old)
            && new == old
        {
            violations.add("new_shares", "must differ from old_shares");
        }
        let effective_on = NaiveDate::parse_from_str(&self.effective_on, "%Y-%m-%d")
            .map_err(|_| violations.add("effective_on", "must be a date, YYYY-MM-DD"))
            .ok();
        match (symbol, new, old, effective_on) {
            (Some(symbol), Some(new), Some(old), Some(effective_on)) if violations.is_empty() => {
                Ok(Split {
                    symbol,
                    new,
                    old,
                    effective_on,
                })
            }
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests;

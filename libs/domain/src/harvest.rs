//! Tax-loss harvesting: a taxable position whose loss is beyond a
//! threshold is sold whole and its proceeds bought in a substitute that
//! keeps the model's exposure (VOO for IVV), so the loss offsets gains
//! while the account stays invested. The wash-sale guard decides whether
//! the sale and the buy may happen; a substitute substantially identical to
//! the security sold never qualifies.
//!
//! [`backtest`] measures what harvesting is worth on monthly index history:
//! the losses it harvests and the tax they save, against the larger gain
//! left to pay when the account is sold at the end.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::Symbol;
use crate::backtest::Month;
use crate::lots::{self, Lot, LotMethod, Term};
use crate::wash_sale::{IdenticalGroups, Window};

/// When a loss is worth harvesting: at least `loss_percent` of the cost
/// basis and at least `minimum_loss` dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarvestRule {
    pub loss_percent: Decimal,
    pub minimum_loss: Decimal,
}

/// Two securities that stand in for each other (either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarvestPair {
    pub symbol: Symbol,
    pub substitute: Symbol,
}

/// A position to sell whole and the substitute its proceeds buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Harvest {
    pub sell: Symbol,
    pub buy: Symbol,
    pub quantity: Decimal,
    pub value: Decimal,
    pub basis: Decimal,
    /// Positive dollars.
    pub loss: Decimal,
}

/// The other side of `symbol`'s pair, if any.
fn partner(pairs: &[HarvestPair], symbol: &Symbol) -> Option<Symbol> {
    pairs.iter().find_map(|pair| {
        if &pair.symbol == symbol {
            Some(pair.substitute.clone())
        } else if &pair.substitute == symbol {
            Some(pair.symbol.clone())
        } else {
            None
        }
    })
}

/// The positions of `account_id` worth harvesting today, by symbol. A
/// position qualifies when its loss passes `rule`, it has a partner that
/// is not substantially identical, and the wash-sale guard allows both the
/// loss sale and the buy.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn harvests(
    account_id: &str,
    lots: &HashMap<Symbol, Vec<Lot>>,
    price: impl Fn(&Symbol) -> Option<Decimal>,
    pairs: &[HarvestPair],
    rule: &HarvestRule,
    window: &Window,
    groups: &IdenticalGroups,
    today: NaiveDate,
) -> Vec<Harvest> {
    let mut found: Vec<Harvest> = lots
        .iter()
        .filter_map(|(symbol, held)| {
            let price = price(symbol)?;
            let buy = partner(pairs, symbol)?;
            if groups.identical(symbol, &buy) {
                return None;
            }
            let quantity: Decimal = held.iter().map(|lot| lot.quantity).sum();
            let basis: Decimal = held.iter().map(|lot| lot.basis).sum();
            let value = (quantity * price).round_dp(2);
            let loss = basis - value;
            let qualifies = loss > Decimal::ZERO
                && loss >= rule.minimum_loss
                && loss * Decimal::ONE_HUNDRED >= rule.loss_percent * basis;
            if !qualifies {
                return None;
            }
            let ids: Vec<String> = held.iter().map(|lot| lot.id.clone()).collect();
            if window
                .loss_sale_blocked(account_id, symbol, &ids, groups, today)
                .is_some()
                || window.buy_blocked(&buy, groups, today).is_some()
            {
                return None;
            }
            Some(Harvest {
                sell: symbol.clone(),
                buy,
                quantity,
                value,
                basis,
                loss,
            })
        })
        .collect();
    found.sort_by(|a, b| b.loss.cmp(&a.loss).then_with(|| a.sell.cmp(&b.sell)));
    found
}

/// What harvesting did over a backtest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HarvestOutcome {
    pub harvests: u32,
    pub short_term_losses: Decimal,
    pub long_term_losses: Decimal,
    /// Tax saved when the losses were harvested (at the rates given).
    pub tax_saved: Decimal,
    /// The extra long-term tax owed on the lower basis when the account is
    /// sold at the end.
    pub tax_owed_at_end: Decimal,
    /// Account value at the end, before tax.
    pub final_value: Decimal,
}

impl HarvestOutcome {
    /// Net tax benefit, saved less owed at the end.
    #[must_use]
    pub fn net_benefit(&self) -> Decimal {
        self.tax_saved - self.tax_owed_at_end
    }
}

/// Tax rates applied to harvested losses (they offset gains of the same
/// term) and to the gain left at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxRates {
    pub short_term: Decimal,
    pub long_term: Decimal,
}

/// Harvests a taxable account invested in the index for the months of
/// `history` (`initial` dollars in one lot on the first month, dividends
/// reinvested monthly as new lots; the substitute tracks the index
/// exactly). A harvest needs two months since the last one, so neither
/// side's 30-day window is crossed. Returns what was harvested and what it
/// was worth against liquidating at the end with and without harvesting.
#[must_use]
pub fn backtest(
    history: &[Month],
    rule: &HarvestRule,
    rates: TaxRates,
    initial: Decimal,
) -> HarvestOutcome {
    let mut outcome = HarvestOutcome::default();
    let Some(first) = history.first() else {
        return outcome;
    };
    let date = |month: &Month| NaiveDate::from_ymd_opt(month.year, month.month, 1);
    let Some(start) = date(first) else {
        return outcome;
    };
    let mut lots = vec![Lot {
        id: "0".to_owned(),
        quantity: initial / first.stock_price,
        basis: initial,
        acquired: start,
    }];
    // The same account without harvesting: its basis, for the end.
    let mut plain_basis = initial;
    let mut last_harvest: Option<usize> = None;
    for (index, month) in history.iter().enumerate().skip(1) {
        let Some(today) = date(month) else {
            continue;
        };
        let price = month.stock_price;
        let quantity: Decimal = lots.iter().map(|lot| lot.quantity).sum();
        // Dividends reinvested: a new lot.
        let dividend = (quantity * month.dividend / Decimal::from(12)).round_dp(2);
        if dividend > Decimal::ZERO {
            lots::buy(
                &mut lots,
                index.to_string(),
                dividend / price,
                dividend,
                today,
            );
            plain_basis += dividend;
        }
        let quantity: Decimal = lots.iter().map(|lot| lot.quantity).sum();
        let basis: Decimal = lots.iter().map(|lot| lot.basis).sum();
        let value = quantity * price;
        let loss = basis - value;
        let due = last_harvest.is_none_or(|last| index >= last + 2);
        if due
            && loss > rule.minimum_loss
            && loss * Decimal::ONE_HUNDRED >= rule.loss_percent * basis
        {
            let (sale, _) = lots::sell(&lots, quantity, price, today, &LotMethod::Fifo);
            let short = -sale.gain(Term::Short);
            let long = -sale.gain(Term::Long);
            outcome.short_term_losses += short;
            outcome.long_term_losses += long;
            outcome.tax_saved += short * rates.short_term + long * rates.long_term;
            outcome.harvests += 1;
            last_harvest = Some(index);
            // The proceeds buy the substitute: one lot at today's value.
            let proceeds: Decimal = sale.closed.iter().map(|c| c.proceeds).sum();
            lots = vec![Lot {
                id: format!("h{index}"),
                quantity,
                basis: proceeds,
                acquired: today,
            }];
        }
    }
    let last = history.last().unwrap_or(first);
    let quantity: Decimal = lots.iter().map(|lot| lot.quantity).sum();
    let basis: Decimal = lots.iter().map(|lot| lot.basis).sum();
    outcome.final_value = (quantity * last.stock_price).round_dp(2);
    // Harvesting lowered the basis by what it harvested (net of the
    // rounding of proceeds): that much more gain is taxed at the end.
    let lowered = (plain_basis - basis).max(Decimal::ZERO);
    outcome.tax_owed_at_end = lowered * rates.long_term;
    outcome.tax_saved = outcome.tax_saved.round_dp(2);
    outcome.tax_owed_at_end = outcome.tax_owed_at_end.round_dp(2);
    outcome
}

#[cfg(test)]
mod tests;

//! The wash-sale guard (IRC §1091): a loss on a sale is disallowed when
//! the same or a substantially identical security is bought within 30 days
//! before or after it, in any account of the same household (an IRA
//! included). So a plan does not buy a security sold at a loss in the
//! household in the last 30 days, and does not sell at a loss a security
//! bought in the household in the last 30 days. Substantially identical
//! securities are configured per tenant (share classes, the same index in
//! another wrapper).

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use crate::Symbol;

/// How many days before and after a loss sale a purchase washes it.
pub const WINDOW_DAYS: u64 = 30;

/// A sale at a loss in the household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossSale {
    pub account_id: String,
    pub symbol: Symbol,
    pub sold_on: NaiveDate,
    /// Positive dollars lost.
    pub loss: Decimal,
}

/// A purchase in the household (an open lot's acquisition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentBuy {
    pub account_id: String,
    pub symbol: Symbol,
    pub acquired: NaiveDate,
    pub lot_id: String,
}

/// Groups of substantially identical securities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdenticalGroups {
    group_of: HashMap<Symbol, usize>,
}

impl IdenticalGroups {
    /// Each group lists securities identical to one another; a symbol in
    /// two groups joins them.
    #[must_use]
    pub fn new(groups: &[Vec<Symbol>]) -> Self {
        let mut group_of: HashMap<Symbol, usize> = HashMap::new();
        for (index, group) in groups.iter().enumerate() {
            let joined = group
                .iter()
                .find_map(|symbol| group_of.get(symbol).copied());
            let id = joined.unwrap_or(index);
            for symbol in group {
                if let Some(old) = group_of.insert(symbol.clone(), id)
                    && old != id
                {
                    for value in group_of.values_mut() {
                        if *value == old {
                            *value = id;
                        }
                    }
                }
            }
        }
        Self { group_of }
    }

    /// Whether `a` and `b` are the same or substantially identical.
    #[must_use]
    pub fn identical(&self, a: &Symbol, b: &Symbol) -> bool {
        a == b
            || matches!(
                (self.group_of.get(a), self.group_of.get(b)),
                (Some(x), Some(y)) if x == y
            )
    }
}

/// What the household did in the window around a plan.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub losses: Vec<LossSale>,
    pub buys: Vec<RecentBuy>,
}

fn within(date: NaiveDate, today: NaiveDate) -> bool {
    today
        .checked_sub_days(Days::new(WINDOW_DAYS))
        .is_none_or(|start| date >= start)
        && date <= today
}

fn clear_on(date: NaiveDate) -> NaiveDate {
    date.checked_add_days(Days::new(WINDOW_DAYS + 1))
        .unwrap_or(date)
}

impl Window {
    /// Why buying `symbol` today would wash a loss, if it would.
    #[must_use]
    pub fn buy_blocked(
        &self,
        symbol: &Symbol,
        groups: &IdenticalGroups,
        today: NaiveDate,
    ) -> Option<String> {
        let sale = self
            .losses
            .iter()
            .filter(|sale| groups.identical(&sale.symbol, symbol) && within(sale.sold_on, today))
            .max_by_key(|sale| sale.sold_on)?;
        Some(format!(
            "wash sale: {} was sold at a loss of ${} in account {} on {} (30 days); {symbol} may be bought from {}",
            sale.symbol,
            sale.loss.round_dp(2),
            sale.account_id,
            sale.sold_on,
            clear_on(sale.sold_on)
        ))
    }

    /// Why selling `symbol` at a loss today from `account_id` would be
    /// washed, if it would: a purchase of it in the household in the last
    /// 30 days, other than the lots `selling` (this account's lots the sale
    /// may close).
    #[must_use]
    pub fn loss_sale_blocked(
        &self,
        account_id: &str,
        symbol: &Symbol,
        selling: &[String],
        groups: &IdenticalGroups,
        today: NaiveDate,
    ) -> Option<String> {
        let buy = self
            .buys
            .iter()
            .filter(|buy| {
                groups.identical(&buy.symbol, symbol)
                    && within(buy.acquired, today)
                    && !(buy.account_id == account_id
                        && buy.symbol == *symbol
                        && selling.contains(&buy.lot_id))
            })
            .max_by_key(|buy| buy.acquired)?;
        Some(format!(
            "wash sale: {} was bought in account {} on {} (30 days); lots of {symbol} at a loss are kept until {}",
            buy.symbol,
            buy.account_id,
            buy.acquired,
            clear_on(buy.acquired)
        ))
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn symbol(text: &str) -> Symbol {
        Symbol::parse(text).expect("symbol")
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn a_loss_in_one_account_blocks_an_identical_buy_in_another_for_thirty_days() {
        let groups = IdenticalGroups::new(&[vec![symbol("VOO"), symbol("SPY")]]);
        let window = Window {
            losses: vec![LossSale {
                account_id: "taxable".to_owned(),
                symbol: symbol("SPY"),
                sold_on: date("2026-11-20"),
                loss: dec!(250),
            }],
            buys: Vec::new(),
        };
        let blocked = window
            .buy_blocked(&symbol("VOO"), &groups, date("2026-12-01"))
            .expect("blocked");
        assert!(
            blocked.contains("may be bought from 2026-12-21"),
            "{blocked}"
        );
        assert!(
            window
                .buy_blocked(&symbol("IVV"), &groups, date("2026-12-01"))
                .is_none()
        );
        assert!(
            window
                .buy_blocked(&symbol("SPY"), &groups, date("2026-12-21"))
                .is_none()
        );
        assert!(
            window
                .buy_blocked(&symbol("SPY"), &groups, date("2026-12-20"))
                .is_some()
        );
    }

    #[test]
    fn a_recent_buy_elsewhere_blocks_a_loss_sale_but_not_the_lot_itself() {
        let groups = IdenticalGroups::new(&[
            vec![symbol("A"), symbol("B")],
            vec![symbol("B"), symbol("C")],
        ]);
        assert!(groups.identical(&symbol("A"), &symbol("C")));
        let window = Window {
            losses: Vec::new(),
            buys: vec![RecentBuy {
                account_id: "ira".to_owned(),
                symbol: symbol("A"),
                acquired: date("2026-11-25"),
                lot_id: "x".to_owned(),
            }],
        };
        let today = date("2026-12-01");
        assert!(
            window
                .loss_sale_blocked("taxable", &symbol("C"), &[], &groups, today)
                .is_some()
        );
        assert!(
            window
                .loss_sale_blocked("ira", &symbol("A"), &["x".to_owned()], &groups, today)
                .is_none()
        );
    }
}

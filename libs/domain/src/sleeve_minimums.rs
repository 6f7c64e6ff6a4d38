//! Sleeve investment minimums at rebalance time. `Assign` refuses an account
//! too small for one of its sleeves; an account that shrinks afterwards must
//! not have a sleeve *opened* below its minimum by a later rebalance either.
//!
//! The rule, as UMA platforms (SMArtX, Orion) apply model minimums: a sleeve
//! whose dollar share of the account's current value is below its minimum,
//! and which the account does not hold yet, is left unopened, and its weight
//! goes pro rata to the rest of the target (the other sleeves, assets and
//! the cash weight alike), so the account stays invested as its models say
//! rather than sitting in unplanned cash. The caller shows each unopened
//! sleeve with [`WithheldSleeve::reason`].
//!
//! A sleeve already held stays at its weight: a minimum governs opening a
//! sleeve, and selling a funded one because the market or a withdrawal made
//! the account smaller would realise gains for no client instruction. It
//! counts as held when the account holds a symbol that only this sleeve
//! brings into the target (a symbol shared with another part of the target
//! says nothing about this sleeve). A sleeve nested in an unopened sleeve
//! goes with it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::Symbol;
use crate::portfolio::{Weight, WeightTarget};

/// A sleeve below the root with an investment minimum, and what it brings
/// into the flat target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SleeveMinimum {
    pub portfolio_id: String,
    /// Percent of the account.
    pub percent: Decimal,
    pub investment_minimum: Decimal,
    /// Its part of the flat target's weights, percent of the account.
    pub weights: Vec<Weight>,
    /// The sleeves it is nested in, the root left out.
    pub within: Vec<String>,
}

/// A sleeve left unopened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldSleeve {
    pub portfolio_id: String,
    /// Percent of the account it would have had.
    pub percent: Decimal,
    pub investment_minimum: Decimal,
    /// Dollars it would have had.
    pub allotted: Decimal,
    /// The weights taken out of the target, percent of the account.
    pub weights: Vec<Weight>,
}

impl WithheldSleeve {
    /// A sentence for people.
    #[must_use]
    pub fn reason(&self) -> String {
        format!(
            "sleeve {} not opened: its {}% of the account is {}, below its investment minimum \
             of {}; its weight went pro rata to the rest of the target",
            self.portfolio_id,
            self.percent,
            self.allotted.round_dp(2),
            self.investment_minimum.round_dp(2)
        )
    }
}

/// The target a rebalance trades toward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedTarget {
    /// Cash and asset weights summing to exactly 100 (the input unchanged
    /// when nothing is withheld).
    pub weights: Vec<Weight>,
    pub withheld: Vec<WithheldSleeve>,
}

/// Decimal places of redistributed weights.
const WEIGHT_SCALE: u32 = 6;

/// Applies the sleeve minimums to a flat target for an account worth
/// `account_value`; `holds` says whether the account holds a symbol.
#[must_use]
pub fn open_sleeves(
    weights: &[Weight],
    sleeves: &[SleeveMinimum],
    account_value: Decimal,
    holds: impl Fn(&Symbol) -> bool,
) -> OpenedTarget {
    let mut outermost_first: Vec<&SleeveMinimum> = sleeves.iter().collect();
    outermost_first
        .sort_by(|a, b| (a.within.len(), &a.portfolio_id).cmp(&(b.within.len(), &b.portfolio_id)));
    let mut remaining: BTreeMap<WeightKey, Decimal> = weights
        .iter()
        .filter_map(|w| Some((key(w)?, w.percent)))
        .collect();
    let mut withheld: Vec<WithheldSleeve> = Vec::new();
    for sleeve in outermost_first {
        let inside_withheld = sleeve
            .within
            .iter()
            .any(|outer| withheld.iter().any(|w| &w.portfolio_id == outer));
        let allotted = account_value * sleeve.percent / Decimal::ONE_HUNDRED;
        if inside_withheld || allotted >= sleeve.investment_minimum || held(sleeve, weights, &holds)
        {
            continue;
        }
        for part in &sleeve.weights {
            if let Some(percent) = key(part).and_then(|k| remaining.get_mut(&k)) {
                *percent -= part.percent;
            }
        }
        withheld.push(WithheldSleeve {
            portfolio_id: sleeve.portfolio_id.clone(),
            percent: sleeve.percent,
            investment_minimum: sleeve.investment_minimum,
            allotted,
            weights: sleeve.weights.clone(),
        });
    }
    if withheld.is_empty() {
        return OpenedTarget {
            weights: weights.to_vec(),
            withheld,
        };
    }
    OpenedTarget {
        weights: redistribute(remaining),
        withheld,
    }
}

/// Cash sorts first.
type WeightKey = Option<Symbol>;

fn key(weight: &Weight) -> Option<WeightKey> {
    match &weight.target {
        WeightTarget::Cash => Some(None),
        WeightTarget::Asset(symbol) => Some(Some(symbol.clone())),
        WeightTarget::Portfolio(_) => None,
    }
}

/// Whether the account holds a symbol only `sleeve` brings into the target.
fn held(sleeve: &SleeveMinimum, weights: &[Weight], holds: impl Fn(&Symbol) -> bool) -> bool {
    sleeve.weights.iter().any(|part| {
        part.symbol().is_some_and(|symbol| {
            holds(symbol)
                && weights
                    .iter()
                    .any(|w| w.symbol() == Some(symbol) && w.percent == part.percent)
        })
    })
}

/// Scales what is left to 100, the rounding residue on the largest weight;
/// all cash when nothing is left.
fn redistribute(remaining: BTreeMap<WeightKey, Decimal>) -> Vec<Weight> {
    let left: Vec<(WeightKey, Decimal)> = remaining
        .into_iter()
        .filter(|(_, percent)| *percent > Decimal::ZERO)
        .collect();
    let total: Decimal = left.iter().map(|(_, percent)| *percent).sum();
    if total.is_zero() {
        return vec![Weight::cash(Decimal::ONE_HUNDRED)];
    }
    let mut scaled: Vec<(WeightKey, Decimal)> = left
        .into_iter()
        .map(|(key, percent)| {
            let share = (percent * Decimal::ONE_HUNDRED / total).round_dp(WEIGHT_SCALE);
            (key, share)
        })
        .collect();
    let residue = Decimal::ONE_HUNDRED - scaled.iter().map(|(_, p)| *p).sum::<Decimal>();
    if let Some(largest) = scaled
        .iter_mut()
        .reduce(|best, next| if next.1 > best.1 { next } else { best })
    {
        largest.1 += residue;
    }
    scaled
        .into_iter()
        .filter(|(_, percent)| *percent > Decimal::ZERO)
        .map(|(key, percent)| match key {
            Some(symbol) => Weight::asset(symbol, percent.normalize()),
            None => Weight::cash(percent.normalize()),
        })
        .collect()
}

#[cfg(test)]
#[path = "sleeve_minimums_tests.rs"]
mod tests;

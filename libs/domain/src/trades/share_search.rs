//! The whole-share counts that leave an account closest to its target, cash
//! counted: a branch and bound over share counts.
//!
//! The objective is the one a user measures, Σ |target $ − held $| over the
//! assets and cash. Within a buy budget `B`, buying `xᵢ` dollars of an asset
//! `nᵢ` dollars below target, with the rest left in cash above its target
//! (or spent by fractional assets, up to their own remaining needs `N`),
//! that sum is a constant minus twice
//!
//! ```text
//! V = Σᵢ min(xᵢ, nᵢ) + min(B − Σᵢ xᵢ, N)
//! ```
//!
//! so the search maximises `V`: every dollar up to an asset's need counts,
//! dollars beyond it only move the surplus from cash to the asset. Each asset
//! therefore holds at most its ceiling `⌈nᵢ/pᵢ⌉` shares (or the fewest an
//! order may buy, when the minimum order asks for more); its full shares are
//! worth what they cost, and the share that crosses the target is worth only
//! the remainder `rᵢ` it fills. That makes the upper bound of a partial
//! assignment easy: spend what is left on full shares (and the fractional
//! assets) first, then on crossing shares by remainder per dollar, the last
//! one in part: the linear relaxation of the rest.
//!
//! Counts are tried nearest to the starting plan first, so among plans of
//! equal value the one closest to the squared-gap rounding (the even spread
//! of a short budget) is kept: the search only replaces it with a strictly
//! better plan. Going down from the start, a count whose bound cannot beat the
//! best plan ends that direction, since fewer shares only lower the bound.
//! When the budget is short, many plans spend it almost to the cent and
//! proving which is best can take long: the search stops after
//! [`NODE_LIMIT`] nodes with the best plan it has, never worse than the start.

use rust_decimal::Decimal;

/// Nodes the search visits at most per plan.
pub(super) const NODE_LIMIT: usize = 4_096;

/// One asset to size in whole shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShareChoice {
    pub(super) price: Decimal,
    /// Dollars below target before buying; positive.
    pub(super) need: Decimal,
    /// Fewest shares an order may buy (the minimum order notional); 0 is
    /// always allowed.
    pub(super) fewest: Decimal,
    /// Shares the search starts from.
    pub(super) start: Decimal,
}

impl ShareChoice {
    fn full_shares(&self) -> Decimal {
        (self.need / self.price).floor()
    }

    fn ceiling(&self) -> Decimal {
        (self.need / self.price).ceil()
    }

    /// What the share crossing the target fills (0 when the need is whole).
    fn remainder(&self) -> Decimal {
        self.need - self.full_shares() * self.price
    }

    fn value(&self, shares: Decimal) -> Decimal {
        (shares * self.price).min(self.need)
    }

    /// The most shares worth holding: the ceiling, or the fewest an order
    /// may buy when that is more (beyond, shares only move a surplus).
    fn most(&self) -> Decimal {
        self.ceiling().max(self.fewest)
    }

    fn allowed(&self, shares: Decimal) -> bool {
        shares.is_zero() || (shares >= self.fewest && shares <= self.most())
    }
}

/// The outcome: shares per choice and whether they are proven best.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShareSearch {
    pub(super) shares: Vec<Decimal>,
    /// `V` of the plan found.
    pub(super) value: Decimal,
    /// The search ended within [`NODE_LIMIT`]: no plan is better.
    pub(super) proven: bool,
}

/// The share counts maximising `V` within `budget`, `sink` being what the
/// fractional assets can still take. Starts from each choice's `start`
/// (which must be allowed and fit the budget).
pub(super) fn best_shares(choices: &[ShareChoice], budget: Decimal, sink: Decimal) -> ShareSearch {
    best_shares_within(choices, budget, sink, NODE_LIMIT)
}

/// [`best_shares`] with a node limit of its own (`usize::MAX`: exhaustive).
pub(super) fn best_shares_within(
    choices: &[ShareChoice],
    budget: Decimal,
    sink: Decimal,
    node_limit: usize,
) -> ShareSearch {
    let start: Vec<Decimal> = choices.iter().map(|choice| choice.start).collect();
    let spent: Decimal = choices
        .iter()
        .map(|choice| choice.start * choice.price)
        .sum();
    let start_value = choices
        .iter()
        .map(|choice| choice.value(choice.start))
        .sum::<Decimal>()
        + (budget - spent).min(sink);
    let mut by_remainder_per_dollar: Vec<usize> = (0..choices.len())
        .filter(|index| choices[*index].remainder() > Decimal::ZERO)
        .collect();
    by_remainder_per_dollar.sort_by(|a, b| {
        let ratio = |index: &usize| choices[*index].remainder() / choices[*index].price;
        ratio(b).cmp(&ratio(a))
    });
    let mut full_after = vec![Decimal::ZERO; choices.len() + 1];
    for index in (0..choices.len()).rev() {
        let choice = &choices[index];
        full_after[index] = full_after[index + 1] + choice.full_shares() * choice.price;
    }
    let mut search = Search {
        choices,
        sink,
        by_remainder_per_dollar,
        full_after,
        node_limit,
        nodes: 0,
        current: start.clone(),
        best: start,
        best_value: start_value,
    };
    search.visit(0, budget, Decimal::ZERO);
    ShareSearch {
        proven: search.nodes <= search.node_limit,
        shares: search.best,
        value: search.best_value,
    }
}

struct Search<'a> {
    choices: &'a [ShareChoice],
    sink: Decimal,
    /// Choices with a crossing share, best remainder per dollar first.
    by_remainder_per_dollar: Vec<usize>,
    /// Dollars of full shares of the choices from each position on.
    full_after: Vec<Decimal>,
    node_limit: usize,
    nodes: usize,
    current: Vec<Decimal>,
    best: Vec<Decimal>,
    best_value: Decimal,
}

impl Search<'_> {
    /// Sizes choice `depth` and the ones after it with `left` dollars, the
    /// earlier ones having made `value`.
    fn visit(&mut self, depth: usize, left: Decimal, value: Decimal) {
        self.nodes += 1;
        if self.nodes > self.node_limit {
            return;
        }
        let Some(choice) = self.choices.get(depth) else {
            let total = value + left.min(self.sink);
            if total > self.best_value {
                self.best_value = total;
                self.best.clone_from(&self.current);
            }
            return;
        };
        let most = choice.most().min((left / choice.price).floor());
        let start = choice.start.min(most);
        // Upwards from the start (the node limit caps a long climb).
        let mut shares = start;
        while shares <= most {
            if choice.allowed(shares) {
                self.descend(depth, shares, left, value);
            }
            shares += Decimal::ONE;
        }
        // Downwards: below the full shares, one share fewer lowers the value
        // by its price and frees as much for the rest, whose bound grows by
        // at most that; so the first such count that cannot beat the best
        // plan ends the direction.
        let full = choice.full_shares();
        let mut shares = start - Decimal::ONE;
        while shares >= Decimal::ZERO && self.nodes <= self.node_limit {
            if !choice.allowed(shares) {
                shares = Decimal::ZERO;
                continue;
            }
            if !self.descend(depth, shares, left, value) && shares < full {
                break;
            }
            shares -= Decimal::ONE;
        }
    }

    /// Tries `shares` of choice `depth`; false when its bound was too low to
    /// look further.
    fn descend(&mut self, depth: usize, shares: Decimal, left: Decimal, value: Decimal) -> bool {
        let choice = &self.choices[depth];
        let cost = shares * choice.price;
        let value = value + choice.value(shares);
        let left = left - cost;
        if value + self.relaxed(depth + 1, left) <= self.best_value {
            return false;
        }
        self.current[depth] = shares;
        self.visit(depth + 1, left, value);
        true
    }

    /// The most the choices from `depth` on (and the fractional assets) can
    /// add with `left` dollars if shares could be split.
    fn relaxed(&self, depth: usize, left: Decimal) -> Decimal {
        let at_par = self.full_after[depth] + self.sink;
        if left <= at_par {
            return left;
        }
        let mut extra = left - at_par;
        let mut total = at_par;
        for index in &self.by_remainder_per_dollar {
            if *index < depth {
                continue;
            }
            let choice = &self.choices[*index];
            let remainder = choice.remainder();
            if choice.price <= extra {
                total += remainder;
                extra -= choice.price;
            } else {
                total += remainder * extra / choice.price;
                break;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests;

//! Portfolios of portfolios (sleeves): flattening a target built from other
//! portfolios into symbol weights, the effective share of each sleeve, and
//! cycle detection.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rust_decimal::Decimal;

use crate::Symbol;
use crate::portfolio::{TargetSpec, Weight, WeightTarget};
pub use crate::sleeve_minimums::SleeveMinimum;

/// A portfolio version as the resolver sees it.
#[derive(Debug, Clone)]
pub struct SleeveNode {
    pub version: i64,
    pub target: TargetSpec,
}

/// A sleeve's effective share of the whole account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SleeveShare {
    pub portfolio_id: String,
    pub version: i64,
    /// Percent of the account (products of the weights along the path, summed
    /// when a sleeve appears more than once).
    pub percent: Decimal,
    pub investment_minimum: Decimal,
}

/// A flattened target: cash and asset weights summing to exactly 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Cash first (when any), then assets by symbol.
    pub weights: Vec<Weight>,
    /// The root and every sleeve under it.
    pub sleeves: Vec<SleeveShare>,
    /// The sleeves under the root with an investment minimum, with what they
    /// contribute to `weights`: what a rebalance needs to leave one unopened
    /// ([`crate::sleeve_minimums`]).
    pub minimums: Vec<SleeveMinimum>,
}

/// Why a target cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("portfolio {0} not found")]
    Missing(String),
    #[error("sleeves form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

const MAX_DEPTH: usize = 32;

/// What one sleeve (every occurrence summed) puts into the flat target.
#[derive(Debug, Default)]
struct Contribution {
    /// Percent of the account by symbol; `None` for cash.
    parts: BTreeMap<Option<Symbol>, Decimal>,
    /// Sleeves it is nested in, the root left out.
    within: BTreeSet<String>,
}

/// The state of one flattening walk.
struct Walk<'a> {
    nodes: &'a HashMap<String, SleeveNode>,
    /// Portfolios from the root to the one being walked.
    path: Vec<String>,
    cash: Decimal,
    assets: BTreeMap<Symbol, Decimal>,
    /// (version, percent of the account, investment minimum) by portfolio.
    shares: BTreeMap<String, (i64, Decimal, Decimal)>,
    /// By sleeve, for sleeves below the root with a minimum.
    contributions: BTreeMap<String, Contribution>,
}

/// Flattens `root` using `nodes` (every portfolio reachable from it).
///
/// # Errors
/// [`ResolveError`] when a sleeve is missing or the sleeves form a cycle.
pub fn resolve(root: &str, nodes: &HashMap<String, SleeveNode>) -> Result<Resolved, ResolveError> {
    let mut walk = Walk {
        nodes,
        path: vec![root.to_owned()],
        cash: Decimal::ZERO,
        assets: BTreeMap::new(),
        shares: BTreeMap::new(),
        contributions: BTreeMap::new(),
    };
    walk.visit(root, Decimal::ONE_HUNDRED)?;
    let mut weights = Vec::with_capacity(walk.assets.len() + 1);
    if !walk.cash.is_zero() {
        weights.push(Weight::cash(walk.cash.normalize()));
    }
    weights.extend(
        walk.assets
            .into_iter()
            .map(|(symbol, percent)| Weight::asset(symbol, percent.normalize())),
    );
    let mut sleeves: Vec<SleeveShare> = walk
        .shares
        .into_iter()
        .map(
            |(portfolio_id, (version, percent, investment_minimum))| SleeveShare {
                portfolio_id,
                version,
                percent: percent.normalize(),
                investment_minimum,
            },
        )
        .collect();
    // The root first.
    sleeves.sort_by_key(|share| share.portfolio_id != root);
    let minimums = sleeves
        .iter()
        .filter_map(|share| {
            let contribution = walk.contributions.remove(&share.portfolio_id)?;
            Some(SleeveMinimum {
                portfolio_id: share.portfolio_id.clone(),
                percent: share.percent,
                investment_minimum: share.investment_minimum,
                weights: contribution
                    .parts
                    .into_iter()
                    .map(|(symbol, percent)| match symbol {
                        Some(symbol) => Weight::asset(symbol, percent.normalize()),
                        None => Weight::cash(percent.normalize()),
                    })
                    .collect(),
                within: contribution.within.into_iter().collect(),
            })
        })
        .collect();
    Ok(Resolved {
        weights,
        sleeves,
        minimums,
    })
}

impl Walk<'_> {
    fn visit(&mut self, id: &str, share: Decimal) -> Result<(), ResolveError> {
        let nodes = self.nodes;
        let node = nodes
            .get(id)
            .ok_or_else(|| ResolveError::Missing(id.to_owned()))?;
        let entry = self.shares.entry(id.to_owned()).or_insert((
            node.version,
            Decimal::ZERO,
            node.target.investment_minimum,
        ));
        entry.1 += share;
        if self.path.len() > 1 && node.target.investment_minimum > Decimal::ZERO {
            let within = self.path[1..self.path.len() - 1].iter().cloned();
            self.contributions
                .entry(id.to_owned())
                .or_default()
                .within
                .extend(within);
        }
        for weight in &node.target.weights {
            let part = share * weight.percent / Decimal::ONE_HUNDRED;
            match &weight.target {
                WeightTarget::Cash => {
                    self.cash += part;
                    self.contribute(None, part);
                }
                WeightTarget::Asset(symbol) => {
                    *self.assets.entry(symbol.clone()).or_default() += part;
                    self.contribute(Some(symbol), part);
                }
                WeightTarget::Portfolio(child) => {
                    if self.path.iter().any(|seen| seen == child) || self.path.len() > MAX_DEPTH {
                        let mut cycle = self.path.clone();
                        cycle.push(child.clone());
                        return Err(ResolveError::Cycle(cycle));
                    }
                    self.path.push(child.clone());
                    self.visit(child, part)?;
                    self.path.pop();
                }
            }
        }
        Ok(())
    }

    /// Adds a part of the flat target to every sleeve with a minimum on the
    /// current path.
    fn contribute(&mut self, symbol: Option<&Symbol>, part: Decimal) {
        for sleeve in &self.path[1..] {
            if let Some(contribution) = self.contributions.get_mut(sleeve) {
                *contribution.parts.entry(symbol.cloned()).or_default() += part;
            }
        }
    }
}

/// Every portfolio reachable from `root` through sleeve weights, `root`
/// included; `children` gives a portfolio's direct sleeves.
pub fn reachable<F>(root: &str, mut children: F) -> HashSet<String>
where
    F: FnMut(&str) -> Vec<String>,
{
    let mut seen = HashSet::from([root.to_owned()]);
    let mut queue = vec![root.to_owned()];
    while let Some(id) = queue.pop() {
        for child in children(&id) {
            if seen.insert(child.clone()) {
                queue.push(child);
            }
        }
    }
    seen
}

/// Whether `sleeve_ids` can become the sleeves of `portfolio` without a
/// cycle: none of them may reach `portfolio`.
#[must_use]
pub fn creates_cycle(portfolio: &str, descendants_of_sleeves: &HashSet<String>) -> bool {
    descendants_of_sleeves.contains(portfolio)
}

/// Checks investment minimums: each sleeve's share of `account_value` must
/// reach its minimum. Returns the refusal reasons.
#[must_use]
pub fn minimum_shortfalls(resolved: &Resolved, account_value: Decimal) -> Vec<String> {
    resolved
        .sleeves
        .iter()
        .filter(|sleeve| sleeve.investment_minimum > Decimal::ZERO)
        .filter_map(|sleeve| {
            let allotted = account_value * sleeve.percent / Decimal::ONE_HUNDRED;
            (allotted < sleeve.investment_minimum).then(|| {
                let needed =
                    (sleeve.investment_minimum * Decimal::ONE_HUNDRED / sleeve.percent).round_dp(2);
                format!(
                    "portfolio {} has an investment minimum of {} and gets {}% of the account: \
                     the account needs at least {needed}, it is worth {}",
                    sleeve.portfolio_id,
                    sleeve.investment_minimum.round_dp(2),
                    sleeve.percent,
                    account_value.round_dp(2)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::portfolio::{OrderSizing, RebalanceTo, TargetSpec};

    fn target(weights: Vec<Weight>, minimum: Decimal) -> TargetSpec {
        TargetSpec {
            weights,
            conditions: Vec::new(),
            cooldown_days: 0,
            order_sizing: OrderSizing::Notional,
            invest_cash_threshold: dec!(10),
            minimum_order_notional: dec!(1),
            investment_minimum: minimum,
            rebalance_to: RebalanceTo::Target,
            asset_rules: Vec::new(),
        }
    }

    fn asset(symbol: &str, percent: Decimal) -> Weight {
        Weight::asset(Symbol::parse(symbol).expect("symbol"), percent)
    }

    fn sleeve(id: &str, percent: Decimal) -> Weight {
        Weight {
            target: WeightTarget::Portfolio(id.to_owned()),
            percent,
        }
    }

    fn nodes() -> HashMap<String, SleeveNode> {
        HashMap::from([
            (
                "core".to_owned(),
                SleeveNode {
                    version: 3,
                    target: target(
                        vec![asset("VTI", dec!(60)), asset("VEA", dec!(40))],
                        dec!(10000),
                    ),
                },
            ),
            (
                "income".to_owned(),
                SleeveNode {
                    version: 1,
                    target: target(
                        vec![Weight::cash(dec!(10)), asset("AGG", dec!(90))],
                        dec!(0),
                    ),
                },
            ),
            (
                "growth".to_owned(),
                SleeveNode {
                    version: 2,
                    target: target(
                        vec![sleeve("core", dec!(70)), sleeve("income", dec!(30))],
                        dec!(0),
                    ),
                },
            ),
        ])
    }

    #[test]
    fn seventy_thirty_resolves_to_flat_weights() {
        let resolved = resolve("growth", &nodes()).expect("resolves");
        let flat: Vec<(String, Decimal)> = resolved
            .weights
            .iter()
            .map(|w| {
                (
                    w.symbol().map(ToString::to_string).unwrap_or_default(),
                    w.percent,
                )
            })
            .collect();
        assert_eq!(
            flat,
            [
                (String::new(), dec!(3)),
                ("AGG".to_owned(), dec!(27)),
                ("VEA".to_owned(), dec!(28)),
                ("VTI".to_owned(), dec!(42)),
            ]
        );
        let sum: Decimal = resolved.weights.iter().map(|w| w.percent).sum();
        assert_eq!(sum, dec!(100));
        assert_eq!(resolved.sleeves[0].portfolio_id, "growth");
        let core = resolved
            .sleeves
            .iter()
            .find(|s| s.portfolio_id == "core")
            .expect("core");
        assert_eq!(core.percent, dec!(70));
        assert_eq!(core.version, 3);
    }

    #[test]
    fn nested_sleeves_multiply() {
        let mut nodes = nodes();
        nodes.insert(
            "top".to_owned(),
            SleeveNode {
                version: 1,
                target: target(
                    vec![sleeve("growth", dec!(50)), asset("VTI", dec!(50))],
                    dec!(0),
                ),
            },
        );
        let resolved = resolve("top", &nodes).expect("resolves");
        let vti = resolved
            .weights
            .iter()
            .find(|w| w.symbol().is_some_and(|s| s.as_str() == "VTI"));
        assert_eq!(vti.map(|w| w.percent), Some(dec!(71)));
        let sum: Decimal = resolved.weights.iter().map(|w| w.percent).sum();
        assert_eq!(sum, dec!(100));
    }

    #[test]
    fn cycles_and_missing_sleeves_are_errors() {
        let mut nodes = nodes();
        nodes.insert(
            "core".to_owned(),
            SleeveNode {
                version: 4,
                target: target(vec![sleeve("growth", dec!(100))], dec!(0)),
            },
        );
        assert!(matches!(
            resolve("growth", &nodes),
            Err(ResolveError::Cycle(_))
        ));
        assert_eq!(
            resolve("nope", &nodes),
            Err(ResolveError::Missing("nope".to_owned()))
        );
    }

    #[test]
    fn smartx_minimum_example() {
        // A $10K-minimum model at 20% needs a $50K account.
        let nodes = HashMap::from([
            (
                "model".to_owned(),
                SleeveNode {
                    version: 1,
                    target: target(vec![asset("SPY", dec!(100))], dec!(10000)),
                },
            ),
            (
                "target".to_owned(),
                SleeveNode {
                    version: 1,
                    target: target(
                        vec![sleeve("model", dec!(20)), asset("AGG", dec!(80))],
                        dec!(0),
                    ),
                },
            ),
        ]);
        let resolved = resolve("target", &nodes).expect("resolves");
        let refusals = minimum_shortfalls(&resolved, dec!(49999.99));
        assert_eq!(refusals.len(), 1);
        assert!(
            refusals[0].contains("needs at least 50000"),
            "{}",
            refusals[0]
        );
        assert!(minimum_shortfalls(&resolved, dec!(50000)).is_empty());
    }

    #[test]
    fn reachability() {
        let nodes = nodes();
        let children = |id: &str| -> Vec<String> {
            nodes
                .get(id)
                .map(|n| n.target.sleeve_ids().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let from_growth = reachable("growth", children);
        assert_eq!(from_growth.len(), 3);
        assert!(!creates_cycle("growth", &reachable("core", |_| Vec::new())));
        assert!(creates_cycle("core", &from_growth));
    }
}

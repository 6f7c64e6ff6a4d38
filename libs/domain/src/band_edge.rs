//! Rebalancing to the band's edge: the target weights of a full rebalance
//! that moves only the assets outside their bands, each to the nearest edge
//! of its band, and leaves the others where they are (Vanguard's "rebalance
//! to the threshold", which trades less than going back to target).
//!
//! Cash settles the difference, within its own target: when the edges need
//! more cash than the account has above its target, every buy is cut in the
//! same proportion; cash still above its target afterwards (a deposit, a
//! first investment) is invested toward target, each asset below its target
//! getting a share in proportion to its gap, never past it. The weights
//! always add up to exactly 100.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use crate::Symbol;
use crate::evaluation::PreparedTarget;
use crate::portfolio::{PortfolioStatus, RebalanceCondition, Weight};

/// One asset (or cash) of an account, percent of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSlot {
    pub target: Decimal,
    pub current: Decimal,
    /// Allowed range; `None` keeps the slot where it is (cash is slot 0).
    pub band: Option<(Decimal, Decimal)>,
}

/// The weights after a rebalance to the band's edge; `slots[0]` is cash.
#[must_use]
pub fn edge_weights(slots: &[EdgeSlot]) -> Vec<Decimal> {
    let Some((cash, assets)) = slots.split_first() else {
        return Vec::new();
    };
    let mut next: Vec<Decimal> = assets
        .iter()
        .map(|slot| match slot.band {
            Some((lower, upper)) => slot.current.clamp(lower, upper),
            None => slot.current,
        })
        .collect();
    let cash_after = |next: &[Decimal]| Decimal::ONE_HUNDRED - next.iter().sum::<Decimal>();
    // Buys beyond what cash above its target and the sells pay for are cut.
    if cash_after(&next) < cash.target {
        let sells: Decimal = assets
            .iter()
            .zip(&next)
            .map(|(slot, to)| (slot.current - *to).max(Decimal::ZERO))
            .sum();
        let buys: Decimal = assets
            .iter()
            .zip(&next)
            .map(|(slot, to)| (*to - slot.current).max(Decimal::ZERO))
            .sum();
        if buys > Decimal::ZERO {
            let affordable = (cash.current - cash.target + sells).max(Decimal::ZERO);
            let share = (affordable / buys).min(Decimal::ONE);
            for (slot, to) in assets.iter().zip(next.iter_mut()) {
                if *to > slot.current {
                    *to = slot.current + (*to - slot.current) * share;
                }
            }
        }
    }
    // Cash still above its target goes toward target, by gap.
    let excess = cash_after(&next) - cash.target;
    if excess > Decimal::ZERO {
        let gaps: Vec<Decimal> = assets
            .iter()
            .zip(&next)
            .map(|(slot, to)| (slot.target - *to).max(Decimal::ZERO))
            .collect();
        let total: Decimal = gaps.iter().sum();
        if total > Decimal::ZERO {
            let share = (excess / total).min(Decimal::ONE);
            for (to, gap) in next.iter_mut().zip(gaps) {
                *to += gap * share;
            }
        }
    }
    for to in &mut next {
        *to = (*to).max(Decimal::ZERO);
    }
    let mut weights = vec![cash_after(&next).max(Decimal::ZERO)];
    weights.extend(next);
    weights
}

/// The weights of a rebalance to the band's edge of `conditions`' bands,
/// for an account holding `cash` and `values` (dollars per symbol).
/// `weights` are the flat target (cash and assets, summing to 100). Without
/// a positive equity, the target itself.
#[must_use]
pub fn band_edge_weights(
    weights: &[Weight],
    conditions: &[RebalanceCondition],
    cash: Decimal,
    values: &HashMap<Symbol, Decimal>,
) -> Vec<Weight> {
    let equity = cash + values.values().copied().sum::<Decimal>();
    if equity <= Decimal::ZERO {
        return weights.to_vec();
    }
    let percent = |value: Decimal| value * Decimal::ONE_HUNDRED / equity;
    let prepared = PreparedTarget::new(
        weights.to_vec(),
        conditions.to_vec(),
        0,
        Decimal::ZERO,
        PortfolioStatus::Active,
    );
    let cash_target: Decimal = weights
        .iter()
        .filter(|weight| weight.symbol().is_none())
        .map(|weight| weight.percent)
        .sum();
    // Target assets and held ones, in symbol order so the result is stable.
    let mut symbols: BTreeMap<Symbol, Decimal> = weights
        .iter()
        .filter_map(|weight| Some((weight.symbol()?.clone(), weight.percent)))
        .collect();
    for symbol in values.keys() {
        symbols.entry(symbol.clone()).or_insert(Decimal::ZERO);
    }
    let mut slots = vec![EdgeSlot {
        target: cash_target,
        current: percent(cash),
        band: None,
    }];
    for (symbol, target) in &symbols {
        let (lower, upper) = prepared
            .assets()
            .iter()
            .find(|asset| asset.symbol == symbol.as_str())
            .map_or_else(
                || prepared.off_target_band(),
                |asset| (asset.lower, asset.upper),
            );
        let current = percent(values.get(symbol).copied().unwrap_or_default());
        slots.push(EdgeSlot {
            target: *target,
            current,
            // No band: the asset goes to target, as a plain rebalance would.
            band: Some(lower.zip(upper).unwrap_or((*target, *target))),
        });
    }
    let next = edge_weights(&slots);
    let mut result = Vec::with_capacity(next.len());
    for (symbol, percent) in symbols.into_keys().zip(next.iter().skip(1)) {
        if *percent > Decimal::ZERO {
            result.push(Weight::asset(symbol, *percent));
        }
    }
    if next[0] > Decimal::ZERO {
        result.push(Weight::cash(next[0]));
    }
    result
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::portfolio::{BandKind, DriftBand};

    fn symbol(text: &str) -> Symbol {
        Symbol::parse(text).expect("symbol")
    }

    fn five_points() -> Vec<RebalanceCondition> {
        vec![RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Absolute,
            percent: dec!(5),
            symbol: None,
        })]
    }

    fn percent_of(weights: &[Weight], name: Option<&str>) -> Decimal {
        weights
            .iter()
            .filter(|w| w.symbol().map(Symbol::as_str) == name)
            .map(|w| w.percent)
            .sum()
    }

    #[test]
    fn a_sixty_forty_at_seventy_thirty_goes_to_sixty_five_thirty_five() {
        let weights = vec![
            Weight::asset(symbol("SPY"), dec!(60)),
            Weight::asset(symbol("AGG"), dec!(40)),
        ];
        let values = HashMap::from([(symbol("SPY"), dec!(7000)), (symbol("AGG"), dec!(3000))]);
        let edge = band_edge_weights(&weights, &five_points(), dec!(0), &values);
        assert_eq!(percent_of(&edge, Some("SPY")), dec!(65));
        assert_eq!(percent_of(&edge, Some("AGG")), dec!(35));
        assert_eq!(percent_of(&edge, None), dec!(0));
    }

    #[test]
    fn assets_inside_their_band_stay_and_cash_takes_the_difference() {
        // SPY 67% (band 55-65) goes to 65; TLT 31% stays (band 30-40): the
        // 2 points sold go to cash (2% → 4%, still under its 5% target).
        let weights = vec![
            Weight::cash(dec!(5)),
            Weight::asset(symbol("SPY"), dec!(60)),
            Weight::asset(symbol("TLT"), dec!(35)),
        ];
        let values = HashMap::from([(symbol("SPY"), dec!(6700)), (symbol("TLT"), dec!(3100))]);
        let edge = band_edge_weights(&weights, &five_points(), dec!(200), &values);
        assert_eq!(percent_of(&edge, Some("SPY")), dec!(65));
        assert_eq!(percent_of(&edge, Some("TLT")), dec!(31));
        assert_eq!(percent_of(&edge, None), dec!(4));
    }

    #[test]
    fn cash_above_its_target_is_invested_toward_target() {
        // A first investment: all cash. The edges (55, 35) leave 10 points
        // of cash over its 0 target, shared by the gaps: back to 60/40.
        let weights = vec![
            Weight::asset(symbol("SPY"), dec!(60)),
            Weight::asset(symbol("AGG"), dec!(40)),
        ];
        let edge = band_edge_weights(&weights, &five_points(), dec!(10000), &HashMap::new());
        assert_eq!(percent_of(&edge, Some("SPY")), dec!(60));
        assert_eq!(percent_of(&edge, Some("AGG")), dec!(40));
        assert_eq!(percent_of(&edge, None), dec!(0));
    }

    #[test]
    fn buys_the_cash_cannot_pay_for_are_cut() {
        // Cash 0 of a 0 target; SPY at 50 (band 55-65) wants 5 points, AGG
        // at 50 (band 35-45) gives 5: the edges pay for each other. With
        // AGG inside its band nothing pays for SPY's buy.
        let slots = [
            EdgeSlot {
                target: dec!(0),
                current: dec!(0),
                band: None,
            },
            EdgeSlot {
                target: dec!(60),
                current: dec!(50),
                band: Some((dec!(55), dec!(65))),
            },
            EdgeSlot {
                target: dec!(40),
                current: dec!(50),
                band: Some((dec!(35), dec!(45))),
            },
        ];
        assert_eq!(edge_weights(&slots), vec![dec!(0), dec!(55), dec!(45)]);
        let inside = [
            EdgeSlot {
                target: dec!(0),
                current: dec!(0),
                band: None,
            },
            EdgeSlot {
                target: dec!(60),
                current: dec!(50),
                band: Some((dec!(55), dec!(65))),
            },
            EdgeSlot {
                target: dec!(40),
                current: dec!(50),
                band: None,
            },
        ];
        assert_eq!(edge_weights(&inside), vec![dec!(0), dec!(50), dec!(50)]);
    }

    #[test]
    fn an_asset_held_off_target_beyond_its_band_is_sold_to_the_edge() {
        let weights = vec![Weight::asset(symbol("SPY"), dec!(100))];
        let values = HashMap::from([(symbol("SPY"), dec!(9000)), (symbol("XYZ"), dec!(1000))]);
        let edge = band_edge_weights(&weights, &five_points(), dec!(0), &values);
        assert_eq!(percent_of(&edge, Some("XYZ")), dec!(5));
        assert_eq!(percent_of(&edge, Some("SPY")), dec!(95));
    }
}

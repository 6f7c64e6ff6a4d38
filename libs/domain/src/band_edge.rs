//! Rebalancing to the band's edge: the target weights of a full rebalance
//! that moves only the assets outside their bands, each to the nearest edge
//! of its band, and leaves the others where they are (Vanguard's "rebalance
//! to the threshold", which trades less than going back to target).
//!
//! What those moves leave over or short — the edges do not add up to what
//! the moved assets weighed — is shared by the slots that did not move
//! (cash included) in proportion to their target weights; when every slot
//! moved, by all of them. A slot is never taken below 0; the rounding that
//! leaves goes to cash, so the weights always add up to exactly 100.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use crate::Symbol;
use crate::evaluation::PreparedTarget;
use crate::portfolio::{PortfolioStatus, RebalanceCondition, Weight};

/// One slot of the account: cash or a symbol.
#[derive(Debug, Clone)]
struct Slot {
    symbol: Option<Symbol>,
    target: Decimal,
    next: Decimal,
    moved: bool,
}

/// The weights of a rebalance to the band's edge of `conditions`' bands,
/// for an account of `equity` holding `cash` and `values` (dollars per
/// symbol). `weights` are the flat target (cash and assets, summing to 100).
/// Without a positive equity, the target itself.
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
    let mut slots = vec![Slot {
        symbol: None,
        target: cash_target,
        next: percent(cash),
        moved: false,
    }];
    // Target assets and held ones, in symbol order so the result is stable.
    let mut symbols: BTreeMap<Symbol, Decimal> = weights
        .iter()
        .filter_map(|weight| Some((weight.symbol()?.clone(), weight.percent)))
        .collect();
    for symbol in values.keys() {
        symbols.entry(symbol.clone()).or_insert(Decimal::ZERO);
    }
    for (symbol, target) in symbols {
        let current = percent(values.get(&symbol).copied().unwrap_or_default());
        let band = prepared
            .assets()
            .iter()
            .find(|asset| asset.symbol == symbol.as_str())
            .map_or_else(
                || prepared.off_target_band(),
                |asset| (asset.lower, asset.upper),
            );
        let (next, moved) = match band {
            (Some(lower), Some(upper)) if current < lower || current > upper => {
                (current.clamp(lower, upper), true)
            }
            (Some(_), Some(_)) => (current, false),
            // No band: the asset goes to target, as a plain rebalance would.
            _ => (target, current != target),
        };
        slots.push(Slot {
            symbol: Some(symbol),
            target,
            next,
            moved,
        });
    }
    share_what_is_left(&mut slots);
    slots
        .into_iter()
        .filter(|slot| slot.next > Decimal::ZERO)
        .map(|slot| match slot.symbol {
            Some(symbol) => Weight::asset(symbol, slot.next),
            None => Weight::cash(slot.next),
        })
        .collect()
}

/// Spreads `100 − Σ next` over the slots that did not move, by target.
fn share_what_is_left(slots: &mut [Slot]) {
    let left = Decimal::ONE_HUNDRED - slots.iter().map(|slot| slot.next).sum::<Decimal>();
    let kept: Decimal = slots
        .iter()
        .filter(|slot| !slot.moved)
        .map(|slot| slot.target)
        .sum();
    let everyone = kept.is_zero();
    let base: Decimal = if everyone {
        slots.iter().map(|slot| slot.target).sum()
    } else {
        kept
    };
    if base > Decimal::ZERO {
        for slot in slots.iter_mut().filter(|slot| everyone || !slot.moved) {
            slot.next = (slot.next + left * slot.target / base).max(Decimal::ZERO);
        }
    }
    let rounding = Decimal::ONE_HUNDRED - slots.iter().map(|slot| slot.next).sum::<Decimal>();
    if let Some(cash) = slots.first_mut() {
        cash.next = (cash.next + rounding).max(Decimal::ZERO);
    }
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
        // 2 points sold go to cash, the only other slot that did not move.
        let weights = vec![
            Weight::cash(dec!(5)),
            Weight::asset(symbol("SPY"), dec!(60)),
            Weight::asset(symbol("TLT"), dec!(35)),
        ];
        let values = HashMap::from([(symbol("SPY"), dec!(6700)), (symbol("TLT"), dec!(3100))]);
        let edge = band_edge_weights(&weights, &five_points(), dec!(200), &values);
        assert_eq!(percent_of(&edge, Some("SPY")), dec!(65));
        assert!(percent_of(&edge, Some("TLT")) > dec!(31));
        let total: Decimal = edge.iter().map(|w| w.percent).sum();
        assert_eq!(total, dec!(100));
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

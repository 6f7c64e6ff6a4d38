use std::collections::HashMap;

use rust_decimal_macros::dec;

use super::*;
use crate::portfolio::{OrderSizing, RebalanceTo, TargetSpec};
use crate::sleeves::{SleeveNode, resolve};

fn node(weights: Vec<Weight>, minimum: Decimal) -> SleeveNode {
    SleeveNode {
        version: 1,
        target: TargetSpec {
            weights,
            conditions: Vec::new(),
            cooldown_days: 0,
            order_sizing: OrderSizing::Notional,
            invest_cash_threshold: dec!(10),
            minimum_order_notional: dec!(1),
            investment_minimum: minimum,
            rebalance_to: RebalanceTo::Target,
            asset_rules: Vec::new(),
        },
    }
}

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("symbol")
}

fn asset(text: &str, percent: Decimal) -> Weight {
    Weight::asset(symbol(text), percent)
}

fn sleeve(id: &str, percent: Decimal) -> Weight {
    Weight {
        target: WeightTarget::Portfolio(id.to_owned()),
        percent,
    }
}

fn flat(weights: &[Weight]) -> Vec<(String, Decimal)> {
    weights
        .iter()
        .map(|w| {
            (
                w.symbol().map(ToString::to_string).unwrap_or_default(),
                w.percent,
            )
        })
        .collect()
}

/// The SMArtX example: a $10K-minimum model at 20%, next to 80% AGG.
fn smartx() -> HashMap<String, SleeveNode> {
    HashMap::from([
        (
            "model".to_owned(),
            node(vec![asset("SPY", dec!(100))], dec!(10000)),
        ),
        (
            "target".to_owned(),
            node(
                vec![sleeve("model", dec!(20)), asset("AGG", dec!(80))],
                dec!(0),
            ),
        ),
    ])
}

#[test]
fn an_account_below_the_minimum_does_not_open_the_sleeve() {
    let resolved = resolve("target", &smartx()).expect("resolves");
    // Assigned at $50K, now worth $30K: the sleeve would get $6K.
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(30000), |_| {
        false
    });
    assert_eq!(flat(&opened.weights), [("AGG".to_owned(), dec!(100))]);
    assert_eq!(opened.withheld.len(), 1);
    let withheld = &opened.withheld[0];
    assert_eq!(withheld.allotted, dec!(6000));
    assert_eq!(
        withheld.reason(),
        "sleeve model not opened: its 20% of the account is 6000, below its investment \
         minimum of 10000; its weight went pro rata to the rest of the target"
    );
    // At the minimum, the target is unchanged.
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(50000), |_| {
        false
    });
    assert_eq!(opened.weights, resolved.weights);
    assert!(opened.withheld.is_empty());
}

#[test]
fn a_held_sleeve_stays_but_a_shared_symbol_does_not_make_it_held() {
    let resolved = resolve("target", &smartx()).expect("resolves");
    let holds_spy = |s: &Symbol| s.as_str() == "SPY";
    let opened = open_sleeves(
        &resolved.weights,
        &resolved.minimums,
        dec!(30000),
        holds_spy,
    );
    assert_eq!(opened.weights, resolved.weights);
    assert!(opened.withheld.is_empty());
    // The root holds SPY itself too: holding SPY says nothing of the sleeve.
    let mut nodes = smartx();
    nodes.insert(
        "target".to_owned(),
        node(
            vec![
                sleeve("model", dec!(20)),
                asset("SPY", dec!(30)),
                asset("AGG", dec!(50)),
            ],
            dec!(0),
        ),
    );
    let resolved = resolve("target", &nodes).expect("resolves");
    let opened = open_sleeves(
        &resolved.weights,
        &resolved.minimums,
        dec!(30000),
        holds_spy,
    );
    assert_eq!(
        flat(&opened.weights),
        [
            ("AGG".to_owned(), dec!(62.5)),
            ("SPY".to_owned(), dec!(37.5))
        ]
    );
}

#[test]
fn the_weight_goes_pro_rata_to_the_other_sleeves_and_cash() {
    let nodes = HashMap::from([
        (
            "core".to_owned(),
            node(
                vec![asset("VTI", dec!(60)), asset("VEA", dec!(40))],
                dec!(10000),
            ),
        ),
        (
            "income".to_owned(),
            node(
                vec![Weight::cash(dec!(10)), asset("AGG", dec!(90))],
                dec!(0),
            ),
        ),
        (
            "growth".to_owned(),
            node(
                vec![sleeve("core", dec!(70)), sleeve("income", dec!(30))],
                dec!(0),
            ),
        ),
    ]);
    let resolved = resolve("growth", &nodes).expect("resolves");
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(10000), |_| {
        false
    });
    assert_eq!(
        flat(&opened.weights),
        [(String::new(), dec!(10)), ("AGG".to_owned(), dec!(90))]
    );
}

#[test]
fn a_sleeve_nested_in_an_unopened_sleeve_goes_with_it() {
    let nodes = HashMap::from([
        (
            "core".to_owned(),
            node(
                vec![asset("VTI", dec!(60)), asset("VEA", dec!(40))],
                dec!(1000),
            ),
        ),
        (
            "growth".to_owned(),
            node(
                vec![sleeve("core", dec!(70)), asset("AGG", dec!(30))],
                dec!(20000),
            ),
        ),
        (
            "top".to_owned(),
            node(
                vec![sleeve("growth", dec!(50)), asset("VTI", dec!(50))],
                dec!(0),
            ),
        ),
    ]);
    let resolved = resolve("top", &nodes).expect("resolves");
    let core = resolved
        .minimums
        .iter()
        .find(|m| m.portfolio_id == "core")
        .expect("core");
    assert_eq!(core.within, ["growth".to_owned()]);
    assert_eq!(core.percent, dec!(35));
    // Growth gets $15K of $30K (< $20K); core's $10.5K would clear its own
    // minimum, but it sits inside growth.
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(30000), |_| {
        false
    });
    let withheld: Vec<&str> = opened
        .withheld
        .iter()
        .map(|w| w.portfolio_id.as_str())
        .collect();
    assert_eq!(withheld, ["growth"]);
    assert_eq!(flat(&opened.weights), [("VTI".to_owned(), dec!(100))]);
}

#[test]
fn redistributed_weights_sum_to_exactly_100() {
    let nodes = HashMap::from([
        (
            "model".to_owned(),
            node(vec![asset("SPY", dec!(100))], dec!(10000)),
        ),
        (
            "target".to_owned(),
            node(
                vec![
                    sleeve("model", dec!(10)),
                    asset("AGG", dec!(30)),
                    asset("TLT", dec!(30)),
                    asset("VTI", dec!(30)),
                ],
                dec!(0),
            ),
        ),
    ]);
    let resolved = resolve("target", &nodes).expect("resolves");
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(5000), |_| false);
    let sum: Decimal = opened.weights.iter().map(|w| w.percent).sum();
    assert_eq!(sum, dec!(100));
    assert_eq!(opened.weights.len(), 3);
    // Nothing left but the sleeve: all cash.
    let only = HashMap::from([
        (
            "model".to_owned(),
            node(vec![asset("SPY", dec!(100))], dec!(10000)),
        ),
        (
            "target".to_owned(),
            node(vec![sleeve("model", dec!(100))], dec!(0)),
        ),
    ]);
    let resolved = resolve("target", &only).expect("resolves");
    let opened = open_sleeves(&resolved.weights, &resolved.minimums, dec!(5000), |_| false);
    assert_eq!(opened.weights, [Weight::cash(dec!(100))]);
}

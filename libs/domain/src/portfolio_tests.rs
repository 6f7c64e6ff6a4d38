use rust_decimal_macros::dec;

use super::*;

fn weight(kind: WeightKind, symbol: &str, percent: &str) -> WeightInput {
    WeightInput {
        kind: Some(kind),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn band(sub_kind: ConditionSubKind, percent: &str) -> ConditionInput {
    ConditionInput {
        kind: Some(ConditionKind::DriftBand),
        sub_kind: Some(sub_kind),
        percent: percent.to_owned(),
        ..ConditionInput::default()
    }
}

fn calendar(sub_kind: ConditionSubKind, day: &str) -> ConditionInput {
    ConditionInput {
        kind: Some(ConditionKind::Calendar),
        sub_kind: Some(sub_kind),
        day: day.to_owned(),
        ..ConditionInput::default()
    }
}

/// Alpaca's documentation example.
fn balanced() -> PortfolioInput {
    PortfolioInput {
        name: "Balanced".to_owned(),
        description: "A balanced portfolio of stocks and bonds".to_owned(),
        target: TargetInput {
            weights: vec![
                weight(WeightKind::Cash, "", "5"),
                weight(WeightKind::Asset, "SPY", "60"),
                weight(WeightKind::Asset, "TLT", "35"),
            ],
            conditions: vec![
                band(ConditionSubKind::Absolute, "5"),
                band(ConditionSubKind::Relative, "20"),
            ],
            cooldown_days: 7,
            ..TargetInput::default()
        },
        ..PortfolioInput::default()
    }
}

fn fields(result: Result<PortfolioSpec, Violations>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(violations) => violations.into_iter().map(|v| v.field).collect(),
    }
}

#[test]
fn balanced_is_valid_and_keeps_its_values() {
    let spec = balanced().validate().expect("valid");
    assert_eq!(spec.name, "Balanced");
    assert_eq!(spec.target.cooldown_days, 7);
    assert_eq!(spec.target.weights.len(), 3);
    assert_eq!(spec.target.weights[0], Weight::cash(dec!(5)));
    assert_eq!(
        spec.target.weights[1].symbol().map(Symbol::as_str),
        Some("SPY")
    );
    assert_eq!(spec.target.weights[1].percent, dec!(60));
    assert_eq!(spec.target.conditions.len(), 2);
    assert_eq!(spec.target.invest_cash_threshold, dec!(10));
    assert_eq!(spec.target.minimum_order_notional, dec!(1));
    assert_eq!(spec.target.order_sizing, OrderSizing::Notional);
    assert_eq!(spec.scope, Scope::Enterprise);
}

#[test]
fn three_decimals_are_refused() {
    let mut input = balanced();
    input.target.weights[1].percent = "59.995".to_owned();
    input.target.weights[2].percent = "35.005".to_owned();
    assert_eq!(
        fields(input.validate()),
        ["weights[1].percent", "weights[2].percent"]
    );
}

#[test]
fn trailing_zeros_do_not_count_as_decimals() {
    let mut input = balanced();
    input.target.weights[1].percent = "60.000".to_owned();
    let spec = input.validate().expect("valid");
    assert_eq!(spec.target.weights[1].percent.to_string(), "60");
}

#[test]
fn weights_must_sum_to_exactly_100() {
    let mut input = balanced();
    input.target.weights[2].percent = "34".to_owned();
    let result = input.validate();
    let Err(violations) = result else {
        panic!("must fail")
    };
    assert_eq!(violations.as_slice()[0].field, "weights");
    assert!(violations.as_slice()[0].description.contains("99"));
}

#[test]
fn zero_cash_is_dropped_but_zero_asset_is_refused() {
    let mut input = balanced();
    input.target.weights[0].percent = "0".to_owned();
    input.target.weights[2].percent = "40".to_owned();
    let spec = input.validate().expect("valid");
    assert_eq!(spec.target.weights.len(), 2);

    let mut input = balanced();
    input.target.weights[1].percent = "0".to_owned();
    assert_eq!(fields(input.validate()), ["weights[1].percent"]);
}

#[test]
fn negative_and_over_100_percents_are_refused() {
    let mut input = balanced();
    input.target.weights[1].percent = "-60".to_owned();
    input.target.weights[2].percent = "135".to_owned();
    assert_eq!(
        fields(input.validate()),
        ["weights[1].percent", "weights[2].percent"]
    );
}

#[test]
fn duplicates_and_malformed_symbols_are_refused() {
    let mut input = balanced();
    input
        .target
        .weights
        .push(weight(WeightKind::Asset, "spy", "1"));
    input
        .target
        .weights
        .push(weight(WeightKind::Asset, "S P Y", "1"));
    input
        .target
        .weights
        .push(weight(WeightKind::Asset, "", "1"));
    let result = input.validate();
    assert_eq!(
        fields(result.clone()),
        [
            "weights[3].symbol",
            "weights[4].symbol",
            "weights[5].symbol"
        ]
    );
    let Err(violations) = result else { panic!() };
    assert!(violations.as_slice()[0].description.contains("weights[1]"));
}

#[test]
fn cash_rules() {
    let mut input = balanced();
    input.target.weights[0].symbol = "USD".to_owned();
    input.target.weights.push(weight(WeightKind::Cash, "", "1"));
    assert_eq!(
        fields(input.validate()),
        ["weights[0].symbol", "weights[3].type"]
    );
}

#[test]
fn missing_type_and_empty_weights() {
    let mut input = balanced();
    input.target.weights[0].kind = None;
    assert_eq!(fields(input.validate()), ["weights[0].type"]);

    let mut input = balanced();
    input.target.weights.clear();
    assert_eq!(fields(input.validate()), ["weights"]);
}

#[test]
fn cooldown_bounds() {
    let mut input = balanced();
    input.target.cooldown_days = -1;
    assert_eq!(fields(input.validate()), ["cooldown_days"]);
    let mut input = balanced();
    input.target.cooldown_days = 0;
    assert!(input.validate().is_ok());
}

#[test]
fn drift_bands_must_be_positive_and_unique() {
    let mut input = balanced();
    input.target.conditions[0].percent = "0".to_owned();
    input.target.conditions[1].percent = "-20".to_owned();
    assert_eq!(
        fields(input.validate()),
        [
            "rebalance_conditions[0].percent",
            "rebalance_conditions[1].percent"
        ]
    );

    let mut input = balanced();
    input
        .target
        .conditions
        .push(band(ConditionSubKind::Absolute, "3"));
    assert_eq!(
        fields(input.validate()),
        ["rebalance_conditions[2].sub_type"]
    );

    let mut input = balanced();
    input
        .target
        .conditions
        .push(band(ConditionSubKind::Weekly, "3"));
    assert_eq!(
        fields(input.validate()),
        ["rebalance_conditions[2].sub_type"]
    );
}

#[test]
fn per_asset_band_overrides() {
    let mut input = balanced();
    let mut override_band = band(ConditionSubKind::Absolute, "2");
    override_band.symbol = "TLT".to_owned();
    input.target.conditions.push(override_band);
    let spec = input.validate().expect("valid");
    assert_eq!(spec.target.conditions.len(), 3);

    let mut input = balanced();
    let mut stray = band(ConditionSubKind::Absolute, "2");
    stray.symbol = "QQQ".to_owned();
    input.target.conditions.push(stray);
    assert_eq!(fields(input.validate()), ["rebalance_conditions[2].symbol"]);
}

#[test]
fn one_calendar_condition_with_a_valid_day() {
    let cases = [
        (ConditionSubKind::Weekly, "monday", "monday"),
        (ConditionSubKind::Weekly, "FRI", "friday"),
        (ConditionSubKind::Monthly, "15", "15"),
        (ConditionSubKind::Quarterly, "31", "31"),
        (ConditionSubKind::Quarterly, "03-31", "03-31"),
        // Any month of the cycle names it: June is March's cycle.
        (ConditionSubKind::Quarterly, "06-15", "03-15"),
        (ConditionSubKind::Quarterly, "01-15", "15"),
        // Clamped to each month's length: May's cycle on the 31st.
        (ConditionSubKind::Quarterly, "05-31", "02-31"),
        (ConditionSubKind::Quarterly, "02-31", "02-31"),
        (ConditionSubKind::Annually, "02-29", "02-29"),
    ];
    for (sub_kind, day, shown) in cases {
        let mut input = balanced();
        input.target.conditions.push(calendar(sub_kind, day));
        let spec = input.validate().expect("valid");
        assert_eq!(
            spec.target.calendar().map(|rule| rule.day_text()),
            Some(shown.to_owned())
        );
    }

    let bad = [
        (ConditionSubKind::Weekly, "saturday"),
        (ConditionSubKind::Weekly, "1"),
        (ConditionSubKind::Monthly, "0"),
        (ConditionSubKind::Monthly, "32"),
        (ConditionSubKind::Quarterly, ""),
        (ConditionSubKind::Quarterly, "13-01"),
        (ConditionSubKind::Quarterly, "03-32"),
        (ConditionSubKind::Annually, "02-30"),
        (ConditionSubKind::Annually, "13-01"),
        (ConditionSubKind::Annually, "3-1"),
    ];
    for (sub_kind, day) in bad {
        let mut input = balanced();
        input.target.conditions.push(calendar(sub_kind, day));
        assert_eq!(
            fields(input.validate()),
            ["rebalance_conditions[2].day"],
            "{day}"
        );
    }

    let mut input = balanced();
    input
        .target
        .conditions
        .push(calendar(ConditionSubKind::Monthly, "1"));
    input
        .target
        .conditions
        .push(calendar(ConditionSubKind::Weekly, "monday"));
    assert_eq!(fields(input.validate()), ["rebalance_conditions[3].type"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut input = balanced();
    input.name = "  ".to_owned();
    input.target.cooldown_days = -3;
    input.target.weights[1].percent = "59.995".to_owned();
    input
        .target
        .conditions
        .push(calendar(ConditionSubKind::Monthly, "40"));
    assert_eq!(
        fields(input.validate()),
        [
            "name",
            "weights[1].percent",
            "rebalance_conditions[2].day",
            "cooldown_days"
        ]
    );
}

#[test]
fn account_scope_needs_an_account() {
    let mut input = balanced();
    input.scope = Some(Scope::Account);
    assert_eq!(fields(input.validate()), ["account_id"]);
    let mut input = balanced();
    input.scope = Some(Scope::Account);
    input.account_id = "acct-1".to_owned();
    let spec = input.validate().expect("valid");
    assert_eq!(spec.account_id.as_deref(), Some("acct-1"));
}

#[test]
fn amounts_default_and_validate() {
    let mut input = balanced();
    input.target.invest_cash_threshold = "25.50".to_owned();
    input.target.minimum_order_notional = "-1".to_owned();
    input.target.investment_minimum = "10000.001".to_owned();
    assert_eq!(
        fields(input.validate()),
        ["minimum_order_notional", "investment_minimum"]
    );
}

#[test]
fn sleeves() {
    let input = PortfolioInput {
        name: "Growth sleeves".to_owned(),
        target: TargetInput {
            weights: vec![
                WeightInput {
                    kind: Some(WeightKind::Portfolio),
                    portfolio_id: "core".to_owned(),
                    percent: "70".to_owned(),
                    ..WeightInput::default()
                },
                WeightInput {
                    kind: Some(WeightKind::Portfolio),
                    portfolio_id: "income".to_owned(),
                    percent: "30".to_owned(),
                    ..WeightInput::default()
                },
            ],
            ..TargetInput::default()
        },
        ..PortfolioInput::default()
    };
    let spec = input.validate().expect("valid");
    assert_eq!(
        spec.target.sleeve_ids().collect::<Vec<_>>(),
        ["core", "income"]
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any split of 100.00 into positive two-decimal parts over distinct
        /// symbols is valid, and nothing else about the weights changes.
        #[test]
        fn valid_splits_pass(cents in proptest::collection::vec(1u32..5000, 1..12)) {
            let total: u32 = cents.iter().sum();
            prop_assume!(total < 10_000);
            let mut weights: Vec<WeightInput> = cents
                .iter()
                .enumerate()
                .map(|(i, c)| weight(WeightKind::Asset, &format!("S{i}"), &(Decimal::from(*c) / dec!(100)).to_string()))
                .collect();
            let rest = Decimal::from(10_000 - total) / dec!(100);
            weights.push(weight(WeightKind::Cash, "", &rest.to_string()));
            let input = PortfolioInput {
                name: "p".to_owned(),
                target: TargetInput { weights, ..TargetInput::default() },
                ..PortfolioInput::default()
            };
            let spec = input.validate().expect("valid");
            let sum: Decimal = spec.target.weights.iter().map(|w| w.percent).sum();
            prop_assert_eq!(sum, dec!(100));
        }

        /// Any weights not summing to 100 are refused on `weights`.
        #[test]
        fn wrong_sums_fail(a in 1u32..100, b in 1u32..100) {
            prop_assume!(a + b != 100);
            let input = PortfolioInput {
                name: "p".to_owned(),
                target: TargetInput {
                    weights: vec![
                        weight(WeightKind::Asset, "AAA", &a.to_string()),
                        weight(WeightKind::Asset, "BBB", &b.to_string()),
                    ],
                    ..TargetInput::default()
                },
                ..PortfolioInput::default()
            };
            prop_assert_eq!(fields(input.validate()), vec!["weights".to_owned()]);
        }
    }
}

#[test]
fn a_spec_round_trips_through_its_input() {
    let mut input = balanced();
    input
        .target
        .conditions
        .push(calendar(ConditionSubKind::Annually, "02-29"));
    let spec = input.validate().expect("valid");
    let again = spec.target.to_input().validate().expect("still valid");
    assert_eq!(again, spec.target);
}

#[test]
fn hybrid_reviews_and_band_edges_need_a_band() {
    let mut input = balanced();
    let mut review = calendar(ConditionSubKind::Monthly, "1");
    review.only_outside_bands = true;
    input.target.conditions.push(review.clone());
    input.target.rebalance_to = Some(RebalanceTo::BandEdge);
    let spec = input.validate().expect("valid");
    assert_eq!(spec.target.review(), Some(CalendarRule::Monthly(1)));
    assert_eq!(spec.target.calendar(), None);
    assert_eq!(spec.target.rebalance_to, RebalanceTo::BandEdge);
    // Round trip through the input form keeps both.
    let again = spec.target.to_input().validate().expect("valid");
    assert_eq!(again, spec.target);

    let mut no_band = balanced();
    no_band.target.conditions = vec![review];
    no_band.target.rebalance_to = Some(RebalanceTo::BandEdge);
    assert_eq!(
        fields(no_band.validate()),
        ["rebalance_conditions[0].only_outside_bands", "rebalance_to"]
    );
    let mut on_a_band = balanced();
    on_a_band.target.conditions[0].only_outside_bands = true;
    assert_eq!(
        fields(on_a_band.validate()),
        ["rebalance_conditions[0].only_outside_bands"]
    );
}

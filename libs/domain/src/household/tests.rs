use rust_decimal_macros::dec;

use super::*;

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("symbol")
}

fn member(id: &str, status: TaxStatus, value: Decimal) -> Member {
    Member {
        account_id: id.to_owned(),
        tax_status: status,
        value,
    }
}

fn percent(location: &Location, name: Option<&str>) -> Decimal {
    location
        .weights
        .iter()
        .filter(|w| w.symbol().map(Symbol::as_str) == name)
        .map(|w| w.percent)
        .sum()
}

/// $60k taxable and $40k IRA, 60% stocks 40% bonds: the bonds fill the IRA,
/// the taxable account holds only stocks.
#[test]
fn bonds_land_in_the_ira() {
    let model = vec![
        Weight::asset(symbol("SPY"), dec!(60)),
        Weight::asset(symbol("AGG"), dec!(40)),
    ];
    let members = vec![
        member("taxable", TaxStatus::Taxable, dec!(60000)),
        member("ira", TaxStatus::TaxDeferred, dec!(40000)),
    ];
    let located = locate(&model, &members, &[symbol("AGG")]);
    assert_eq!(percent(&located[0], Some("SPY")), dec!(100));
    assert_eq!(percent(&located[0], Some("AGG")), dec!(0));
    assert_eq!(percent(&located[1], Some("AGG")), dec!(100));
    assert_eq!(percent(&located[1], Some("SPY")), dec!(0));
}

/// A small IRA holds what bonds it can; the taxable account the rest; a
/// large IRA takes the bonds and a share of the stocks. The household's
/// dollars per asset always equal the model's.
#[test]
fn the_household_meets_the_model_whatever_the_sizes() {
    let model = vec![
        Weight::cash(dec!(2)),
        Weight::asset(symbol("SPY"), dec!(58)),
        Weight::asset(symbol("AGG"), dec!(30)),
        Weight::asset(symbol("VNQ"), dec!(10)),
    ];
    for (taxable, ira, roth) in [
        (dec!(90000), dec!(10000), dec!(0)),
        (dec!(20000), dec!(50000), dec!(30000)),
        (dec!(0), dec!(5000), dec!(5000)),
    ] {
        let members = vec![
            member("t", TaxStatus::Taxable, taxable),
            member("i", TaxStatus::TaxDeferred, ira),
            member("r", TaxStatus::TaxExempt, roth),
        ];
        let located = locate(&model, &members, &[symbol("AGG"), symbol("VNQ")]);
        let total = taxable + ira + roth;
        for (name, weight) in [
            (Some("SPY"), 58),
            (Some("AGG"), 30),
            (Some("VNQ"), 10),
            (None, 2),
        ] {
            let dollars: Decimal = located
                .iter()
                .zip(&members)
                .map(|(l, m)| percent(l, name) * m.value / Decimal::ONE_HUNDRED)
                .sum();
            let want = total * Decimal::from(weight) / Decimal::ONE_HUNDRED;
            // Weights take two decimals: a hundredth of a point per account.
            let tolerance = total * dec!(0.0001) * Decimal::from(members.len());
            assert!(
                (dollars - want).abs() <= tolerance,
                "{name:?}: {dollars} vs {want}"
            );
        }
        for location in &located {
            let sum: Decimal = location.weights.iter().map(|w| w.percent).sum();
            assert_eq!(sum, dec!(100), "{location:?}");
        }
        if (taxable, ira) == (dec!(90000), dec!(10000)) {
            // A small IRA is all bonds (and the model's cash).
            assert_eq!(percent(&located[1], Some("AGG")), dec!(98));
            assert_eq!(percent(&located[1], None), dec!(2));
        }
    }
}

use rust_decimal_macros::dec;

use super::*;
use crate::wash_sale::{LossSale, RecentBuy};

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("symbol")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn lot(id: &str, quantity: Decimal, basis: Decimal) -> Lot {
    Lot {
        id: id.to_owned(),
        quantity,
        basis,
        acquired: date("2026-01-05"),
    }
}

fn pairs() -> Vec<HarvestPair> {
    vec![HarvestPair {
        symbol: symbol("VOO"),
        substitute: symbol("IVV"),
    }]
}

const RULE: HarvestRule = HarvestRule {
    loss_percent: Decimal::from_parts(5, 0, 0, false, 0),
    minimum_loss: Decimal::from_parts(100, 0, 0, false, 0),
};

#[test]
fn a_position_beyond_the_threshold_is_harvested_into_its_partner() {
    let lots = HashMap::from([
        // $10,000 now worth $9,000: a 10% loss.
        (symbol("VOO"), vec![lot("a", dec!(20), dec!(10000))]),
        // 4% down: below the threshold.
        (symbol("IVV"), vec![lot("b", dec!(10), dec!(5000))]),
        // No partner.
        (symbol("TLT"), vec![lot("c", dec!(100), dec!(10000))]),
    ]);
    let prices = HashMap::from([
        (symbol("VOO"), dec!(450)),
        (symbol("IVV"), dec!(480)),
        (symbol("TLT"), dec!(80)),
    ]);
    let today = date("2026-12-01");
    let found = harvests(
        "acct",
        &lots,
        |s| prices.get(s).copied(),
        &pairs(),
        &RULE,
        &Window::default(),
        &IdenticalGroups::default(),
        today,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].sell.as_str(), found[0].buy.as_str(), found[0].loss),
        ("VOO", "IVV", dec!(1000))
    );
    // Identical securities never stand in for each other.
    let same = IdenticalGroups::new(&[vec![symbol("VOO"), symbol("IVV")]]);
    let none = harvests(
        "acct",
        &lots,
        |s| prices.get(s).copied(),
        &pairs(),
        &RULE,
        &Window::default(),
        &same,
        today,
    );
    assert!(none.is_empty());
    // A recent buy of VOO in the household, or a recent loss sale of IVV,
    // stops it.
    let bought = Window {
        losses: Vec::new(),
        buys: vec![RecentBuy {
            account_id: "ira".to_owned(),
            symbol: symbol("VOO"),
            acquired: date("2026-11-20"),
            lot_id: "x".to_owned(),
        }],
    };
    assert!(
        harvests(
            "acct",
            &lots,
            |s| prices.get(s).copied(),
            &pairs(),
            &RULE,
            &bought,
            &IdenticalGroups::default(),
            today
        )
        .is_empty()
    );
    let sold = Window {
        losses: vec![LossSale {
            account_id: "ira".to_owned(),
            symbol: symbol("IVV"),
            sold_on: date("2026-11-20"),
            loss: dec!(50),
        }],
        buys: Vec::new(),
    };
    assert!(
        harvests(
            "acct",
            &lots,
            |s| prices.get(s).copied(),
            &pairs(),
            &RULE,
            &sold,
            &IdenticalGroups::default(),
            today
        )
        .is_empty()
    );
}

fn month(year: i32, month: u32, price: Decimal) -> Month {
    Month {
        year,
        month,
        stock_price: price,
        dividend: Decimal::ZERO,
        long_rate: dec!(4),
    }
}

#[test]
fn a_dip_and_recovery_harvest_once_and_the_basis_carries_the_loss() {
    // 100 → 80 (harvest 20%) → 70 (too soon) → 60 (harvest again) → 120.
    let history = vec![
        month(2020, 1, dec!(100)),
        month(2020, 2, dec!(80)),
        month(2020, 3, dec!(70)),
        month(2020, 4, dec!(60)),
        month(2020, 5, dec!(120)),
    ];
    let rates = TaxRates {
        short_term: dec!(0.37),
        long_term: dec!(0.20),
    };
    let outcome = backtest(&history, &RULE, rates, dec!(100000));
    assert_eq!(outcome.harvests, 2);
    // $20,000 then $20,000 more (80 → 60 on 1,000 shares), all short term.
    assert_eq!(outcome.short_term_losses, dec!(40000));
    assert_eq!(outcome.long_term_losses, dec!(0));
    assert_eq!(outcome.tax_saved, dec!(14800));
    assert_eq!(outcome.tax_owed_at_end, dec!(8000));
    assert_eq!(outcome.net_benefit(), dec!(6800));
    assert_eq!(outcome.final_value, dec!(120000));
}

use proptest::prelude::*;
use rust_decimal_macros::dec;

use super::*;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn lot(id: &str, quantity: Decimal, basis: Decimal, acquired: &str) -> Lot {
    Lot {
        id: id.to_owned(),
        quantity,
        basis,
        acquired: date(acquired),
    }
}

/// Three SPY lots on 2 March 2026, SPY at $500: a long-term gain (bought
/// at $300), a short-term gain ($450) and a short-term loss ($550).
fn spy_lots() -> Vec<Lot> {
    vec![
        lot("long-gain", dec!(10), dec!(3000), "2024-01-10"),
        lot("short-gain", dec!(10), dec!(4500), "2025-09-15"),
        lot("loss", dec!(10), dec!(5500), "2025-06-01"),
    ]
}

fn closed(sale: &Sale) -> Vec<(&str, Decimal)> {
    sale.closed
        .iter()
        .map(|c| (c.lot_id.as_str(), c.quantity))
        .collect()
}

/// A method, the lots it closes, its short-term and long-term gains.
type Case = (LotMethod, Vec<(&'static str, Decimal)>, Decimal, Decimal);

#[test]
fn each_method_sells_the_lots_it_says_and_the_gains_match_by_hand() {
    let sold = date("2026-03-02");
    let cases: [Case; 5] = [
        // Oldest first: 10 × (500 − 300) long; 5 × (500 − 550) short.
        (
            LotMethod::Fifo,
            vec![("long-gain", dec!(10)), ("loss", dec!(5))],
            dec!(-250),
            dec!(2000),
        ),
        // Newest first: 10 × (500 − 450); 5 × (500 − 550).
        (
            LotMethod::Lifo,
            vec![("short-gain", dec!(10)), ("loss", dec!(5))],
            dec!(250),
            dec!(0),
        ),
        // Dearest first: 10 × −50; 5 × +50.
        (
            LotMethod::Hifo,
            vec![("loss", dec!(10)), ("short-gain", dec!(5))],
            dec!(-250),
            dec!(0),
        ),
        // Losses, then long-term gains: 10 × −50; 5 × +200 long.
        (
            LotMethod::MinimumTax,
            vec![("loss", dec!(10)), ("long-gain", dec!(5))],
            dec!(-500),
            dec!(1000),
        ),
        // The lot named, then FIFO: 10 × +50; 5 × +200 long.
        (
            LotMethod::Specific(vec!["short-gain".to_owned()]),
            vec![("short-gain", dec!(10)), ("long-gain", dec!(5))],
            dec!(500),
            dec!(1000),
        ),
    ];
    for (method, expected, short, long) in cases {
        let (sale, left) = sell(&spy_lots(), dec!(15), dec!(500), sold, &method);
        assert_eq!(closed(&sale), expected, "{method:?}");
        assert_eq!(sale.gain(Term::Short), short, "{method:?}");
        assert_eq!(sale.gain(Term::Long), long, "{method:?}");
        assert_eq!(sale.total_gain(), short + long, "{method:?}");
        assert_eq!(sale.uncovered, dec!(0));
        let held: Decimal = left.iter().map(|lot| lot.quantity).sum();
        assert_eq!(held, dec!(15), "{method:?}");
    }
}

#[test]
fn long_term_starts_the_day_after_the_anniversary() {
    let bought = lot("a", dec!(1), dec!(100), "2025-03-02");
    assert_eq!(bought.term_on(date("2026-03-02")), Term::Short);
    assert_eq!(bought.term_on(date("2026-03-03")), Term::Long);
    let leap = lot("b", dec!(1), dec!(100), "2024-02-29");
    assert_eq!(leap.term_on(date("2025-02-28")), Term::Short);
    assert_eq!(leap.term_on(date("2025-03-01")), Term::Long);
}

#[test]
fn a_partial_close_takes_its_basis_to_the_cent_and_the_lot_keeps_the_rest() {
    let lots = vec![lot("a", dec!(3), dec!(100), "2025-01-02")];
    let (sale, left) = sell(
        &lots,
        dec!(1),
        dec!(40),
        date("2025-06-02"),
        &LotMethod::Fifo,
    );
    assert_eq!(sale.closed[0].basis, dec!(33.33));
    assert_eq!(sale.closed[0].proceeds, dec!(40));
    assert_eq!(sale.closed[0].gain(), dec!(6.67));
    assert_eq!(left[0].basis, dec!(66.67));
    assert_eq!(left[0].quantity, dec!(2));
    assert_eq!(unrealized(&left[0], dec!(40)), dec!(13.33));
}

#[test]
fn a_split_scales_quantities_and_keeps_basis_and_dates() {
    let mut lots = spy_lots();
    split(&mut lots, dec!(4), dec!(1));
    assert_eq!(lots[0].quantity, dec!(40));
    assert_eq!(lots[0].basis, dec!(3000));
    assert_eq!(lots[0].cost_per_share(), dec!(75));
    assert_eq!(lots[0].acquired, date("2024-01-10"));
}

#[test]
fn selling_more_than_the_lots_hold_leaves_the_rest_uncovered() {
    let (sale, left) = sell(
        &spy_lots(),
        dec!(35),
        dec!(500),
        date("2026-03-02"),
        &LotMethod::Fifo,
    );
    assert_eq!(sale.uncovered, dec!(5));
    assert!(left.is_empty());
}

/// One step of a lot history.
#[derive(Debug, Clone)]
enum Step {
    /// A buy (or a transfer in): quantity in thousandths, basis in cents.
    Buy { milli: u32, cents: u32, day: u32 },
    /// A sale: quantity in thousandths, price in cents, method.
    Sell {
        milli: u32,
        cents: u32,
        day: u32,
        method: u8,
    },
    /// A split new-for-old.
    Split { new: u8, old: u8 },
    /// A fill of one of three orders (merged into that order's lot that day).
    Fill {
        order: u8,
        milli: u32,
        cents: u32,
        day: u32,
    },
    /// A custodian's sync to a quantity (thousandths) at an average cost
    /// (cents): shares the lots miss become a lot, extra lots are closed.
    Sync { milli: u32, cents: u32 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u32..=50_000, 0u32..=5_000_000, 0u32..=900)
            .prop_map(|(milli, cents, day)| Step::Buy { milli, cents, day }),
        3 => (1u32..=60_000, 1u32..=100_000, 0u32..=900, 0u8..5)
            .prop_map(|(milli, cents, day, method)| Step::Sell { milli, cents, day, method }),
        1 => (1u8..=4, 1u8..=3).prop_map(|(new, old)| Step::Split { new, old }),
        2 => (0u8..3, 1u32..=20_000, 0u32..=2_000_000, 0u32..=3)
            .prop_map(|(order, milli, cents, day)| Step::Fill { order, milli, cents, day }),
        1 => (0u32..=80_000, 0u32..=100_000).prop_map(|(milli, cents)| Step::Sync { milli, cents }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Through buys, transfers in, sales by every method and splits, the
    /// shares and the basis are conserved: closed plus kept is what was
    /// there, to the share and to the cent; a split keeps every basis.
    #[test]
    fn lots_conserve_quantity_and_basis(steps in prop::collection::vec(step(), 1..40)) {
        let start = date("2024-01-01");
        let mut lots: Vec<Lot> = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let quantity_before: Decimal = lots.iter().map(|l| l.quantity).sum();
            let basis_before: Decimal = lots.iter().map(|l| l.basis).sum();
            match step {
                Step::Buy { milli, cents, day } => {
                    let quantity = Decimal::new(i64::from(milli), 3);
                    let basis = Decimal::new(i64::from(cents), 2);
                    buy(&mut lots, format!("lot-{index}"), quantity, basis, start + chrono::Duration::days(i64::from(day)));
                    let quantity_after: Decimal = lots.iter().map(|l| l.quantity).sum();
                    let basis_after: Decimal = lots.iter().map(|l| l.basis).sum();
                    prop_assert_eq!(quantity_after, quantity_before + quantity);
                    prop_assert_eq!(basis_after, basis_before + basis);
                }
                Step::Sell { milli, cents, day, method } => {
                    let quantity = Decimal::new(i64::from(milli), 3);
                    let method = match method {
                        0 => LotMethod::Fifo,
                        1 => LotMethod::Lifo,
                        2 => LotMethod::Hifo,
                        3 => LotMethod::MinimumTax,
                        _ => LotMethod::Specific(lots.iter().rev().take(2).map(|l| l.id.clone()).collect()),
                    };
                    let price = Decimal::new(i64::from(cents), 2);
                    let sold = start + chrono::Duration::days(i64::from(day) + 200);
                    let (sale, kept) = sell(&lots, quantity, price, sold, &method);
                    let closed_quantity: Decimal = sale.closed.iter().map(|c| c.quantity).sum();
                    let closed_basis: Decimal = sale.closed.iter().map(|c| c.basis).sum();
                    let kept_quantity: Decimal = kept.iter().map(|l| l.quantity).sum();
                    let kept_basis: Decimal = kept.iter().map(|l| l.basis).sum();
                    prop_assert_eq!(closed_quantity + kept_quantity, quantity_before);
                    prop_assert_eq!(closed_basis + kept_basis, basis_before);
                    prop_assert_eq!(closed_quantity + sale.uncovered, quantity);
                    prop_assert!(kept.iter().all(|l| l.quantity > Decimal::ZERO && l.basis >= Decimal::ZERO));
                    prop_assert_eq!(sale.total_gain(), sale.gain(Term::Short) + sale.gain(Term::Long));
                    lots = kept;
                }
                Step::Split { new, old } => {
                    split(&mut lots, Decimal::from(new), Decimal::from(old));
                    let basis_after: Decimal = lots.iter().map(|l| l.basis).sum();
                    let quantity_after: Decimal = lots.iter().map(|l| l.quantity).sum();
                    prop_assert_eq!(basis_after, basis_before);
                    let exact = quantity_before * Decimal::from(new) / Decimal::from(old);
                    prop_assert!(quantity_after <= exact);
                    prop_assert!(exact - quantity_after < Decimal::new(1, 9) * Decimal::from(lots.len().max(1)));
                    lots.retain(|l| !l.quantity.is_zero());
                }
                Step::Fill { order, milli, cents, day } => {
                    let quantity = Decimal::new(i64::from(milli), 3);
                    let basis = Decimal::new(i64::from(cents), 2);
                    let count = lots.len();
                    add(&mut lots, &format!("order-{order}"), quantity, basis, start + chrono::Duration::days(i64::from(day)));
                    let quantity_after: Decimal = lots.iter().map(|l| l.quantity).sum();
                    let basis_after: Decimal = lots.iter().map(|l| l.basis).sum();
                    prop_assert_eq!(quantity_after, quantity_before + quantity);
                    prop_assert_eq!(basis_after, basis_before + basis);
                    prop_assert!(lots.len() <= count + 1);
                    let mut ids: Vec<&str> = lots.iter().map(|l| l.id.as_str()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), lots.len());
                }
                Step::Sync { milli, cents } => {
                    let quantity = Decimal::new(i64::from(milli), 3);
                    let cost = Decimal::new(i64::from(cents), 2);
                    lots = cover(lots, quantity, cost, start, "opening");
                    let quantity_after: Decimal = lots.iter().map(|l| l.quantity).sum();
                    let basis_after: Decimal = lots.iter().map(|l| l.basis).sum();
                    prop_assert_eq!(quantity_after, quantity);
                    if quantity >= quantity_before {
                        let missing = quantity - quantity_before;
                        prop_assert_eq!(
                            basis_after,
                            basis_before
                                + (missing * cost).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                        );
                    } else {
                        prop_assert!(basis_after <= basis_before);
                    }
                    lots.retain(|l| !l.quantity.is_zero());
                }
            }
        }
    }
}

use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;

fn choice(price: Decimal, need: Decimal, start: Decimal) -> ShareChoice {
    ShareChoice {
        price,
        need,
        fewest: Decimal::ONE,
        start,
    }
}

/// Σ |target $ − value $| over the assets, the fractional assets and cash,
/// written out independently of the search's `V`.
fn deviation(
    choices: &[ShareChoice],
    shares: &[Decimal],
    budget: Decimal,
    sink: Decimal,
) -> Decimal {
    let mut total = Decimal::ZERO;
    let mut spent = Decimal::ZERO;
    for (choice, count) in choices.iter().zip(shares) {
        let bought = *count * choice.price;
        total += (choice.need - bought).abs();
        spent += bought;
    }
    let fractional = (budget - spent).min(sink);
    total + (sink - fractional) + (budget - spent - fractional)
}

/// Every allowed combination of counts within the budget: the least
/// deviation.
fn exhaustive(choices: &[ShareChoice], budget: Decimal, sink: Decimal) -> Decimal {
    fn walk(
        choices: &[ShareChoice],
        depth: usize,
        counts: &mut Vec<Decimal>,
        left: Decimal,
        budget: Decimal,
        sink: Decimal,
        best: &mut Decimal,
    ) {
        let Some(choice) = choices.get(depth) else {
            *best = (*best).min(deviation(choices, counts, budget, sink));
            return;
        };
        // Beyond the ceiling only moves surplus from cash to the asset; a
        // few more are searched to show it.
        let mut shares = Decimal::ZERO;
        while shares * choice.price <= left && shares <= choice.ceiling() + dec!(2) {
            if shares.is_zero() || shares >= choice.fewest {
                counts.push(shares);
                walk(
                    choices,
                    depth + 1,
                    counts,
                    left - shares * choice.price,
                    budget,
                    sink,
                    best,
                );
                counts.pop();
            }
            shares += Decimal::ONE;
        }
    }
    let mut best = Decimal::MAX;
    walk(choices, 0, &mut Vec::new(), budget, budget, sink, &mut best);
    best
}

#[test]
fn buys_the_affordable_share_that_crosses_the_target() {
    // $60 short at $100, $45 short at $50, $160 to spend: a share of each,
    // both crossing their targets, leaves the account $55 from target
    // ($40 + $5 + $10 of cash); any other plan leaves $145 or more.
    let choices = [
        choice(dec!(100), dec!(60), dec!(0)),
        choice(dec!(50), dec!(45), dec!(0)),
    ];
    let found = best_shares_within(&choices, dec!(160), Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(1), dec!(1)]);
    assert!(found.proven);
}

#[test]
fn a_share_a_cent_short_is_bought_when_cash_is_over_target_anyway() {
    // The asset is 1 cent below target; the $800 share leaves it $799.99
    // over, but takes $800 off a cash surplus of $900: 0.02 closer overall.
    let choices = [choice(dec!(800), dec!(0.01), dec!(0))];
    let found = best_shares_within(&choices, dec!(900), Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(1)]);
    let stayed = deviation(&choices, &[dec!(0)], dec!(900), Decimal::ZERO);
    let bought = deviation(&choices, &found.shares, dec!(900), Decimal::ZERO);
    assert_eq!(stayed - bought, dec!(0.02));
}

#[test]
fn gives_up_cheap_shares_for_the_share_that_fills_more() {
    // 187 × $68.51 and 13 × $701.10 leave $615.84, short of a 14th $701.10
    // share that would fill $595.59: giving back two cheap shares pays for it.
    let choices = [
        choice(dec!(68.51), dec!(12831.618477), dec!(187)),
        choice(dec!(701.10), dec!(9709.892772), dec!(13)),
    ];
    let budget = dec!(22541.511249);
    let found = best_shares_within(&choices, budget, Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(185), dec!(14)]);
    assert_eq!(
        deviation(&choices, &found.shares, budget, Decimal::ZERO),
        exhaustive(&choices, budget, Decimal::ZERO)
    );
}

#[test]
fn fractional_room_makes_a_crossing_share_not_worth_it() {
    // $45 short at $50 with fractional assets able to take $100 more: the
    // share fills $45 but takes $50 from what the fractional assets would
    // have filled, so dollars go to them instead.
    let choices = [choice(dec!(50), dec!(45), dec!(0))];
    let found = best_shares_within(&choices, dec!(100), dec!(100), usize::MAX);
    assert_eq!(found.shares, vec![dec!(0)]);
}

#[test]
fn honours_the_fewest_shares_an_order_may_buy() {
    // Two $0.40 shares fill the $0.80 need, but an order must be worth $1.
    let choices = [ShareChoice {
        price: dec!(0.40),
        need: dec!(0.80),
        fewest: dec!(3),
        start: dec!(0),
    }];
    let found = best_shares_within(&choices, dec!(0.90), Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(0)]);
    let found = best_shares_within(&choices, dec!(2), Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(3)]);
}

#[test]
fn ties_keep_the_starting_plan() {
    // $100 for two assets needing $100 each at $10: every way of spending it
    // all is as close; the start (5 and 5) stays.
    let choices = [
        choice(dec!(10), dec!(100), dec!(5)),
        choice(dec!(10), dec!(100), dec!(5)),
    ];
    let found = best_shares_within(&choices, dec!(100), Decimal::ZERO, usize::MAX);
    assert_eq!(found.shares, vec![dec!(5), dec!(5)]);
    assert!(found.proven);
}

fn cents(value: u32) -> Decimal {
    Decimal::new(i64::from(value), 2)
}

fn small_case() -> impl Strategy<Value = (Vec<ShareChoice>, Decimal, Decimal)> {
    (
        prop::collection::vec((100u32..=20_000, 1u32..=60_000, 1u32..=3), 1..=3),
        1u32..=150_000,
        prop_oneof![Just(0u32), 1u32..=20_000],
    )
        .prop_map(|(assets, budget, sink)| {
            let choices = assets
                .into_iter()
                .map(|(price, need, fewest)| ShareChoice {
                    price: cents(price),
                    need: cents(need),
                    fewest: Decimal::from(fewest),
                    start: Decimal::ZERO,
                })
                .collect();
            (choices, cents(budget), cents(sink))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The exhaustive search finds the least deviation every combination of
    /// counts reaches, within the budget and the minimum order.
    #[test]
    fn the_search_finds_the_exact_optimum((choices, budget, sink) in small_case()) {
        let found = best_shares_within(&choices, budget, sink, usize::MAX);
        prop_assert!(found.proven);
        let spent: Decimal = choices.iter().zip(&found.shares).map(|(c, s)| c.price * *s).sum();
        prop_assert!(spent <= budget);
        for (choice, shares) in choices.iter().zip(&found.shares) {
            prop_assert!(choice.allowed(*shares));
        }
        prop_assert_eq!(
            deviation(&choices, &found.shares, budget, sink),
            exhaustive(&choices, budget, sink)
        );
    }

    /// With the node limit the plan is never worse than where it started.
    #[test]
    fn a_limited_search_never_loses_ground((choices, budget, sink) in small_case(), limit in 1usize..50) {
        let found = best_shares_within(&choices, budget, sink, limit);
        let start: Vec<Decimal> = choices.iter().map(|c| c.start).collect();
        prop_assert!(
            deviation(&choices, &found.shares, budget, sink)
                <= deviation(&choices, &start, budget, sink)
        );
    }
}

//! Table tests of the worker's pure decisions.

use chrono::TimeZone;
use rebalancer_domain::algo::Algorithm;
use rebalancer_domain::trades::Side;

use super::*;

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, hour, minute, 0)
        .single()
        .expect("a time")
}

fn order(id: &str, account: &str, quantity: Decimal, whole_shares: bool) -> OrderRecord {
    OrderRecord {
        id: id.to_owned(),
        run_id: format!("run-{account}"),
        account_id: account.to_owned(),
        position: 0,
        symbol: "SPY".to_owned(),
        side: Side::Buy,
        quantity,
        notional: None,
        whole_shares,
        estimated_price: Decimal::from(500),
        status: OrderStatus::Submitted,
        filled_quantity: Decimal::ZERO,
        filled_notional: Decimal::ZERO,
        filled_amount: Decimal::ZERO,
        client_order_id: String::new(),
        block_order_id: Some("block".to_owned()),
        excluded: false,
        reason: String::new(),
        created_at: at(14, 0),
        updated_at: at(14, 0),
    }
}

fn block(quantity: Decimal) -> BlockRecord {
    BlockRecord {
        id: "block".to_owned(),
        transmission_id: "t".to_owned(),
        batch_id: None,
        symbol: "SPY".to_owned(),
        side: Side::Buy,
        whole_shares: true,
        notional: false,
        algorithm: Algorithm::default(),
        status: OrderStatus::Submitted,
        quantity,
        filled_quantity: Decimal::ZERO,
        filled_notional: Decimal::ZERO,
        account_order_count: 2,
        arrival_price: Some(Decimal::from(500)),
        window_start: Some(at(14, 0)),
        window_end: Some(at(14, 30)),
        reason: String::new(),
        created_at: at(14, 0),
        completed_at: None,
        broker: "paper".to_owned(),
        trace_context: None,
    }
}

fn fill(quantity: i64, price: Decimal) -> BrokerFill {
    BrokerFill {
        id: "fill-1".to_owned(),
        quantity: Decimal::from(quantity),
        price,
        executed_at: at(14, 5),
    }
}

#[test]
fn a_fill_is_allocated_exactly_over_the_legs_orders() {
    let orders = [
        order("a", "acct-a", Decimal::from(7), true),
        order("b", "acct-b", Decimal::from(3), true),
    ];
    let members: Vec<&OrderRecord> = orders.iter().collect();
    let mut progress: BTreeMap<&str, Progress> = orders
        .iter()
        .map(|o| (o.id.as_str(), Progress::of(o)))
        .collect();
    let price = Decimal::new(50_012, 2);
    let allocations =
        allocate_fill(&fill(5, price), Leg::Whole, &members, &mut progress).expect("allocated");
    let total: Decimal = allocations.iter().map(|a| a.quantity).sum();
    assert_eq!(total, Decimal::from(5));
    assert!(allocations.iter().all(|a| a.quantity.fract().is_zero()));
    let cash: Decimal = allocations.iter().map(|a| a.amount).sum();
    assert_eq!(cash, (Decimal::from(5) * price).round_dp(2));
    assert_eq!(
        progress["a"].filled + progress["b"].filled,
        Decimal::from(5)
    );
}

#[test]
fn a_fill_beyond_what_the_orders_need_is_refused() {
    let orders = [order("a", "acct-a", Decimal::from(2), true)];
    let members: Vec<&OrderRecord> = orders.iter().collect();
    let mut progress: BTreeMap<&str, Progress> = orders
        .iter()
        .map(|o| (o.id.as_str(), Progress::of(o)))
        .collect();
    let result = allocate_fill(
        &fill(3, Decimal::from(500)),
        Leg::Whole,
        &members,
        &mut progress,
    );
    assert!(result.is_err());
}

fn facts<'a>(
    block: &'a BlockRecord,
    orders: &'a [OrderRecord],
    open: &'a [&'a OrderRecord],
    progress: &'a BTreeMap<&'a str, Progress>,
    last_slice: bool,
    now: DateTime<Utc>,
) -> SliceFacts<'a> {
    SliceFacts {
        block,
        orders,
        open,
        progress,
        block_filled_quantity: progress.values().map(|p| p.filled).sum(),
        last_price: Decimal::from(500),
        last_slice,
        in_hours: true,
        close: Some(at(21, 0)),
        window_end: at(14, 30),
        now,
        rejected: None,
    }
}

#[test]
fn a_filled_slice_ends_the_block_filled() {
    let block = block(Decimal::from(10));
    let orders = [order("a", "acct-a", Decimal::from(10), true)];
    let open: Vec<&OrderRecord> = orders.iter().collect();
    let mut progress: BTreeMap<&str, Progress> = orders
        .iter()
        .map(|o| (o.id.as_str(), Progress::of(o)))
        .collect();
    let members = open.clone();
    allocate_fill(
        &fill(10, Decimal::from(500)),
        Leg::Whole,
        &members,
        &mut progress,
    )
    .expect("allocated");
    let conclusion = conclude_slice(&facts(&block, &orders, &open, &progress, false, at(14, 5)));
    assert_eq!(conclusion.block_status, OrderStatus::Filled);
    assert_eq!(conclusion.orders.len(), 1);
    assert_eq!(conclusion.orders[0].status, OrderStatus::Filled);
    let finish = conclusion.finish.expect("the block ends");
    assert_eq!(finish.status, OrderStatus::Filled);
    assert!(conclusion.next_slice_due.is_none());
}

#[test]
fn an_unfilled_middle_slice_goes_on_and_a_last_one_sweeps_a_minute_later() {
    let block = block(Decimal::from(10));
    let orders = [order("a", "acct-a", Decimal::from(10), true)];
    let open: Vec<&OrderRecord> = orders.iter().collect();
    let progress: BTreeMap<&str, Progress> = orders
        .iter()
        .map(|o| (o.id.as_str(), Progress::of(o)))
        .collect();
    let middle = conclude_slice(&facts(&block, &orders, &open, &progress, false, at(14, 5)));
    assert!(middle.finish.is_none());
    assert!(middle.next_slice_due.is_none());
    assert_eq!(middle.block_status, OrderStatus::Submitted);
    let last = conclude_slice(&facts(&block, &orders, &open, &progress, true, at(14, 30)));
    assert!(last.finish.is_none());
    assert_eq!(last.next_slice_due, Some(at(14, 31)));
}

#[test]
fn a_last_slice_at_the_close_expires_the_rest_with_its_reason() {
    let block = block(Decimal::from(10));
    let orders = [order("a", "acct-a", Decimal::from(10), true)];
    let open: Vec<&OrderRecord> = orders.iter().collect();
    let progress: BTreeMap<&str, Progress> = orders
        .iter()
        .map(|o| (o.id.as_str(), Progress::of(o)))
        .collect();
    let conclusion = conclude_slice(&facts(&block, &orders, &open, &progress, true, at(20, 59)));
    let finish = conclusion.finish.expect("the block ends");
    assert_eq!(finish.status, OrderStatus::Expired);
    assert_eq!(
        finish.reason,
        "could not finish before the close: 10 shares of SPY unfilled"
    );
}

#[test]
fn a_slice_splits_over_the_legs_pro_rata_and_never_beyond_their_needs() {
    let needed: BTreeMap<Leg, Decimal> = [
        (Leg::Dollars, Decimal::from(1_000)),
        (Leg::Shares, Decimal::new(25, 1)),
        (Leg::Whole, Decimal::from(7)),
    ]
    .into_iter()
    .collect();
    let reference = Decimal::from(100);
    // 10 + 2.5 + 7 = 19.5 shares needed in all.
    assert_eq!(shares_needed(&needed, reference), Decimal::new(195, 1));
    let split = split_over_legs(Decimal::new(975, 2), &needed, reference);
    assert_eq!(
        split,
        vec![
            (Leg::Dollars, Decimal::from(500)),
            (Leg::Shares, Decimal::new(125, 2)),
            (Leg::Whole, Decimal::from(3)),
        ]
    );
    let everything = split_over_legs(Decimal::from(1_000), &needed, reference);
    assert_eq!(
        everything,
        vec![
            (Leg::Dollars, Decimal::from(1_000)),
            (Leg::Shares, Decimal::new(25, 1)),
            (Leg::Whole, Decimal::from(7)),
        ]
    );
    assert!(split_over_legs(Decimal::ZERO, &needed, reference).is_empty());
}

#[test]
fn missed_slices_are_spread_over_the_rest_of_the_window() {
    // Back at 14:10 with three slices missed of a window ending 14:30.
    let times = respread(at(14, 10), at(14, 30), 3);
    let minutes: Vec<Option<i64>> = times
        .iter()
        .map(|t| t.map(|t| (t - at(14, 10)).num_seconds()))
        .collect();
    assert_eq!(minutes, [Some(400), Some(800), Some(1200)]);
    // Past the window they are dropped: the slice at hand is the last.
    assert_eq!(respread(at(14, 31), at(14, 30), 2), [None, None]);
}

#[test]
fn a_twap_expires_with_its_window_unless_it_asked_to_go_on() {
    let twap = Algorithm {
        kind: rebalancer_domain::algo::AlgorithmKind::Twap,
        horizon_secs: Some(1800),
        ..Algorithm::default()
    };
    let mut block = block(Decimal::from(10));
    block.algorithm = twap;
    let order = order("o1", "a1", Decimal::from(10), true);
    let open = [&order];
    let progress: BTreeMap<&str, Progress> = BTreeMap::from([("o1", Progress::of(&order))]);
    let facts = |block: &BlockRecord| -> SliceConclusion {
        conclude_slice(&SliceFacts {
            block,
            orders: std::slice::from_ref(&order),
            open: &open,
            progress: &progress,
            block_filled_quantity: Decimal::ZERO,
            last_price: Decimal::from(500),
            last_slice: true,
            in_hours: true,
            close: Some(at(21, 0)),
            window_end: at(14, 30),
            now: at(14, 30),
            rejected: None,
        })
    };
    let ended = facts(&block);
    assert_eq!(ended.next_slice_due, None);
    let finish = ended.finish.expect("the block ends");
    assert_eq!(finish.status, OrderStatus::Expired);
    assert!(finish.reason.contains("window ended"), "{}", finish.reason);
    block.algorithm.continue_after_window = true;
    let goes_on = facts(&block);
    assert_eq!(goes_on.next_slice_due, Some(at(14, 31)));
    assert!(goes_on.finish.is_none());
}

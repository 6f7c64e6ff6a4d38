//! Table tests of fitting orders to their accounts.

use chrono::{TimeZone, Utc};
use rebalancer_domain::account::CashLimits;
use rust_decimal_macros::dec;

use super::*;

fn order(id: &str, side: Side, quantity: Decimal, notional: Option<Decimal>) -> OrderRecord {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 3, 15, 0, 0)
        .single()
        .expect("a time");
    OrderRecord {
        id: id.to_owned(),
        run_id: "run".to_owned(),
        account_id: "acct".to_owned(),
        position: 0,
        symbol: "QQQ".to_owned(),
        side,
        quantity,
        notional,
        whole_shares: notional.is_none(),
        estimated_price: dec!(100),
        status: OrderStatus::Submitted,
        filled_quantity: Decimal::ZERO,
        filled_notional: Decimal::ZERO,
        filled_amount: Decimal::ZERO,
        client_order_id: String::new(),
        block_order_id: Some("block".to_owned()),
        excluded: false,
        reason: String::new(),
        created_at: at,
        updated_at: at,
    }
}

fn room(cash: Decimal, held: Decimal, other_buys: Decimal) -> HashMap<String, AccountRoom> {
    HashMap::from([(
        "acct".to_owned(),
        AccountRoom {
            limits: CashLimits {
                cash,
                ..CashLimits::default()
            },
            held,
            other_buys,
        },
    )])
}

#[test]
fn a_sale_is_cut_to_the_shares_held_now() {
    // Planned at 100 shares; the account was upserted down to 10.
    let sell = order("o", Side::Sell, dec!(100), None);
    let caps = fit_to_accounts(
        Side::Sell,
        &[&sell],
        &room(dec!(0), dec!(10), dec!(0)),
        dec!(360),
    );
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].quantity, dec!(10));
    assert_eq!(caps[0].status, OrderStatus::Submitted);
    assert!(caps[0].reason.contains("holds now"), "{}", caps[0].reason);
}

#[test]
fn a_sale_of_shares_no_longer_held_ends() {
    let sell = order("o", Side::Sell, dec!(100), None);
    let caps = fit_to_accounts(
        Side::Sell,
        &[&sell],
        &room(dec!(0), dec!(0), dec!(0)),
        dec!(360),
    );
    assert_eq!(caps[0].status, OrderStatus::Canceled);
    assert_eq!(caps[0].quantity, dec!(0));
}

#[test]
fn a_buy_within_the_cash_is_left_alone() {
    let buy = order("o", Side::Buy, dec!(10), None);
    let caps = fit_to_accounts(
        Side::Buy,
        &[&buy],
        &room(dec!(1010), dec!(0), dec!(0)),
        dec!(100),
    );
    assert!(caps.is_empty());
}

#[test]
fn a_buy_beyond_the_cash_is_cut_with_the_buffer() {
    // $50,000 of SPY on $10,000 of cash.
    let buy = order("o", Side::Buy, dec!(0), Some(dec!(50000)));
    let caps = fit_to_accounts(
        Side::Buy,
        &[&buy],
        &room(dec!(10000), dec!(0), dec!(0)),
        dec!(100),
    );
    let notional = caps[0].notional.expect("a notional order");
    assert!(notional <= dec!(10000) / (Decimal::ONE + BUY_PRICE_BUFFER));
    assert!(notional > dec!(9900));
}

#[test]
fn buys_share_the_cash_in_proportion_to_what_they_need() {
    // This order needs $3,000, the account's other buys $1,000; $2,000 of cash.
    let buy = order("o", Side::Buy, dec!(30), None);
    let caps = fit_to_accounts(
        Side::Buy,
        &[&buy],
        &room(dec!(2000), dec!(0), dec!(1000)),
        dec!(100),
    );
    // Three quarters of the cash, less the buffer, in whole shares: 14.
    assert_eq!(caps[0].quantity, dec!(14));
}

#[test]
fn withdrawals_requested_are_not_spent() {
    let buy = order("o", Side::Buy, dec!(10), None);
    let mut rooms = room(dec!(3000), dec!(0), dec!(0));
    if let Some(room) = rooms.get_mut("acct") {
        room.limits.earmarked = dec!(3000);
    }
    let caps = fit_to_accounts(Side::Buy, &[&buy], &rooms, dec!(100));
    assert_eq!(caps[0].status, OrderStatus::Canceled);
}

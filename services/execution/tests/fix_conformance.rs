//! The FIX adapter's storage on SQLite and on PostgreSQL: execution reports
//! book an execution once by ExecID, reports the book cannot take are raised
//! as breaks (never booked), and a session's sequence numbers and sent
//! messages survive a reopen.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use hotfix_store::MessageStore;
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_execution::broker::fix::session_store::SqlMessageStore;
use rebalancer_execution::broker::fix::store::{
    Applied, BreakKind, FixExecution, FixOrder, ReportUpdate,
};
use rebalancer_execution::store::ExecutionStore;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

rebalancer_kit::store_conformance! {
    open: rebalancer_execution::store::open,
    cases: [
        reports_book_each_execution_once_and_raise_breaks,
        session_sequences_and_messages_survive_a_reopen,
    ],
}

fn order(id: &str, quantity: Decimal, notional: Option<Decimal>) -> FixOrder {
    FixOrder {
        client_order_id: id.to_owned(),
        broker_order_id: String::new(),
        symbol: "SPY".to_owned(),
        side: Side::Buy,
        quantity,
        notional,
        limit_price: None,
        status: OrderStatus::New,
        filled_quantity: Decimal::ZERO,
        reason: String::new(),
        sent_at: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
    }
}

fn fill(
    id: &str,
    exec_id: &str,
    quantity: Decimal,
    price: Decimal,
    status: OrderStatus,
) -> ReportUpdate {
    ReportUpdate {
        client_order_id: id.to_owned(),
        broker_order_id: "ORD-1".to_owned(),
        symbol: "SPY".to_owned(),
        status,
        reason: String::new(),
        execution: Some(FixExecution {
            exec_id: exec_id.to_owned(),
            client_order_id: id.to_owned(),
            quantity,
            price,
            executed_at: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 1).unwrap(),
        }),
    }
}

async fn reports_book_each_execution_once_and_raise_breaks(store: Arc<dyn ExecutionStore>) {
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 2).unwrap();
    store
        .insert_fix_order(order("c-1", dec!(10), None))
        .await
        .expect("store");
    // Inserting the same id again keeps the first.
    let again = store
        .insert_fix_order(order("c-1", dec!(99), None))
        .await
        .expect("store");
    assert_eq!(again.quantity, dec!(10));

    let first = fill(
        "c-1",
        "E-1",
        dec!(4),
        dec!(500.25),
        OrderStatus::PartiallyFilled,
    );
    assert_eq!(
        store
            .apply_fix_report(first.clone(), now)
            .await
            .expect("store"),
        Applied::Booked
    );
    // The same report again (PossDup after a resend): nothing moves.
    assert_eq!(
        store.apply_fix_report(first, now).await.expect("store"),
        Applied::Repeated
    );
    let done = fill("c-1", "E-2", dec!(6), dec!(500.5), OrderStatus::Filled);
    assert_eq!(
        store.apply_fix_report(done, now).await.expect("store"),
        Applied::Booked
    );
    let (stored, executions) = store.fix_order("c-1").await.expect("store").expect("store");
    assert_eq!(stored.status, OrderStatus::Filled);
    assert_eq!(stored.filled_quantity, dec!(10));
    assert_eq!(stored.broker_order_id, "ORD-1");
    assert_eq!(executions.len(), 2);

    // A fill beyond the order's quantity is a break, not a booking.
    let over = fill("c-1", "E-3", dec!(1), dec!(500), OrderStatus::Filled);
    assert_eq!(
        store
            .apply_fix_report(over.clone(), now)
            .await
            .expect("store"),
        Applied::Break(BreakKind::Overfill)
    );
    assert_eq!(
        store.apply_fix_report(over, now).await.expect("store"),
        Applied::Repeated
    );
    // A late, earlier status never reopens a final order.
    let mut late = fill("c-1", "E-4", dec!(0), dec!(0), OrderStatus::Submitted);
    late.execution = None;
    store.apply_fix_report(late, now).await.expect("store");
    let (stored, executions) = store.fix_order("c-1").await.expect("store").expect("store");
    assert_eq!(
        (stored.status, stored.filled_quantity, executions.len()),
        (OrderStatus::Filled, dec!(10), 2)
    );

    // An execution for an order never sent.
    let stranger = fill("nobody", "E-9", dec!(5), dec!(10), OrderStatus::Filled);
    assert_eq!(
        store.apply_fix_report(stranger, now).await.expect("store"),
        Applied::Break(BreakKind::UnknownOrder)
    );
    assert!(store.fix_order("nobody").await.expect("store").is_none());

    // A notional order is bounded by its dollars (a cent of rounding allowed).
    store
        .insert_fix_order(order("c-2", Decimal::ZERO, Some(dec!(1000))))
        .await
        .expect("store");
    let within = fill(
        "c-2",
        "E-5",
        dec!(1.998),
        dec!(500.5),
        OrderStatus::PartiallyFilled,
    );
    assert_eq!(
        store.apply_fix_report(within, now).await.expect("store"),
        Applied::Booked
    );
    let beyond = fill("c-2", "E-6", dec!(0.01), dec!(500.5), OrderStatus::Filled);
    assert_eq!(
        store.apply_fix_report(beyond, now).await.expect("store"),
        Applied::Break(BreakKind::Overfill)
    );

    let breaks = store.broker_breaks(None, 10).await.expect("store");
    let kinds: Vec<(&str, BreakKind)> = breaks.iter().map(|b| (b.id.as_str(), b.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("E-3", BreakKind::Overfill),
            ("E-6", BreakKind::Overfill),
            ("E-9", BreakKind::UnknownOrder)
        ]
    );
    assert_eq!(
        store
            .broker_breaks(Some("E-6"), 10)
            .await
            .expect("store")
            .len(),
        1
    );
    assert_eq!(store.fix_orders(None, 10).await.expect("store").len(), 2);
}

async fn session_sequences_and_messages_survive_a_reopen(store: Arc<dyn ExecutionStore>) {
    let key = "FIX.4.4:REBAL->BROKER".to_owned();
    let mut session = SqlMessageStore::open(store.clone(), key.clone())
        .await
        .expect("store");
    assert_eq!(
        (
            session.next_sender_seq_number(),
            session.next_target_seq_number()
        ),
        (1, 1)
    );
    for seq in 1..=3 {
        session.increment_sender_seq_number().await.expect("store");
        session
            .add(seq, format!("message {seq}").as_bytes())
            .await
            .expect("store");
    }
    // A number taken but its message never stored (a kill in between) is
    // taken again after a reopen.
    session.increment_sender_seq_number().await.expect("store");
    session.increment_target_seq_number().await.expect("store");
    session.set_target_seq_number(7).await.expect("store");
    let created = session.creation_time();

    let reopened = SqlMessageStore::open(store.clone(), key.clone())
        .await
        .expect("store");
    assert_eq!(reopened.next_sender_seq_number(), 4);
    assert_eq!(reopened.next_target_seq_number(), 8);
    assert_eq!(reopened.creation_time(), created);
    let slice = reopened.get_slice(2, 10).await.expect("store");
    assert_eq!(slice, vec![b"message 2".to_vec(), b"message 3".to_vec()]);

    let mut reset = reopened;
    reset.reset().await.expect("store");
    let after = SqlMessageStore::open(store, key).await.expect("store");
    assert_eq!(
        (
            after.next_sender_seq_number(),
            after.next_target_seq_number()
        ),
        (1, 1)
    );
    assert!(after.get_slice(1, 10).await.expect("store").is_empty());
}

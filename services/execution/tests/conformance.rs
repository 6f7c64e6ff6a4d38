//! The store conformance suite: every case runs against SQLite and against a
//! fresh PostgreSQL database, and both must behave the same.
//!
//! Over 500 lines: it is one list of cases, each a short scenario over the
//! store traits.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use rebalancer_domain::account::{AccountStatus, Restriction};
use rebalancer_domain::algo::Algorithm;
use rebalancer_domain::cash::{CashAction, CashMovementKind, CashMovementStatus};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, RunKind, RunStatus};
use rebalancer_execution::blocks::store::Claimable;
use rebalancer_execution::book::store::{
    AccountFilter, AccountUpsert, CashMovementFilter, HoldingsRange, NewCashMovement,
    PositionRecord,
};
use rebalancer_execution::runs::store::{OrderRecord, RunChange, RunRecord};
use rebalancer_execution::store::{
    Created, ExecutionStore, IdempotencyClaim, PageRequest, StoreError,
};
use rebalancer_kit::db::new_id;
use rust_decimal_macros::dec;

rebalancer_kit::store_conformance! {
    open: rebalancer_execution::store::open,
    cases: [
        account_upsert_round_trips_exactly,
        stale_revision_changes_nothing,
        deposits_credit_once_per_key,
        withdrawal_lifecycle_moves_cash_on_settlement,
        holdings_batches_cover_every_account_once,
        accounts_filter_by_restriction,
        runs_are_created_only_in_an_initial_status,
        run_status_moves_only_along_its_lifecycle,
        withdrawals_earmark_until_settled_or_canceled,
        runs_expire_only_while_waiting,
        crypto_runs_start_around_the_clock,
    ],
}

fn upsert(id: &str, cash: rust_decimal::Decimal, expected_revision: Option<i64>) -> AccountUpsert {
    AccountUpsert {
        id: id.to_owned(),
        status: AccountStatus::Active,
        cash,
        lots: std::collections::HashMap::new(),
        positions: vec![
            PositionRecord {
                symbol: "TLT".to_owned(),
                quantity: dec!(12.123456789),
                average_cost: dec!(91.2),
            },
            PositionRecord {
                symbol: "SPY".to_owned(),
                quantity: dec!(3),
                average_cost: dec!(512.01),
            },
            PositionRecord {
                symbol: "AGG".to_owned(),
                quantity: dec!(0),
                average_cost: dec!(0),
            },
        ],
        restrictions: vec![Restriction::TradingBlocked, Restriction::AchReturn],
        account_type: rebalancer_domain::account::AccountType::Cash,
        margin_limit: rust_decimal::Decimal::ZERO,
        expected_revision,
        now: Utc
            .with_ymd_and_hms(2026, 3, 2, 15, 0, 0)
            .single()
            .expect("valid"),
    }
}

async fn account_upsert_round_trips_exactly(store: Arc<dyn ExecutionStore>) {
    let (created, is_new) = store
        .upsert_account("firm-a", upsert("acct-1", dec!(100000.01), None))
        .await
        .expect("create");
    assert!(is_new);
    let read = store
        .get_account("firm-a", "acct-1")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, created);
    assert_eq!(read.positions.len(), 2, "zero quantity is dropped");
    assert_eq!(read.positions[0].symbol, "SPY");
    assert_eq!(read.positions[1].quantity, dec!(12.123456789));
    assert_eq!(read.cash, dec!(100000.01));
    assert_eq!(
        read.restrictions,
        [Restriction::AchReturn, Restriction::TradingBlocked]
    );

    let mut next = upsert("acct-1", dec!(5), Some(1));
    next.positions.truncate(1);
    next.restrictions.clear();
    next.now += TimeDelta::minutes(1);
    let (updated, is_new) = store.upsert_account("firm-a", next).await.expect("update");
    assert!(!is_new);
    assert_eq!(updated.revision, 2);
    let read = store
        .get_account("firm-a", "acct-1")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, updated);
    assert_eq!(read.positions.len(), 1);
    assert!(read.restrictions.is_empty());
    assert_eq!(
        store.get_account("firm-b", "acct-1").await.expect("get"),
        None
    );
}

async fn stale_revision_changes_nothing(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("firm-a", upsert("acct-1", dec!(10), None))
        .await
        .expect("create");
    let error = store
        .upsert_account("firm-a", upsert("acct-1", dec!(99), Some(7)))
        .await
        .expect_err("stale");
    assert!(matches!(error, StoreError::StaleRevision(_)), "{error:?}");
    let read = store
        .get_account("firm-a", "acct-1")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read.cash, dec!(10));
    assert_eq!(read.revision, 1);
}

fn movement(
    account: &str,
    kind: CashMovementKind,
    amount: rust_decimal::Decimal,
) -> NewCashMovement {
    NewCashMovement {
        id: new_id(),
        account_id: account.to_owned(),
        kind,
        amount,
        now: Utc
            .with_ymd_and_hms(2026, 3, 2, 15, 5, 0)
            .single()
            .expect("valid"),
        withdrawable_limit: None,
    }
}

fn claim(key: &str) -> Option<IdempotencyClaim> {
    Some(IdempotencyClaim {
        operation: "CreateCashMovement",
        key: key.to_owned(),
        fingerprint: "f".to_owned(),
    })
}

async fn deposits_credit_once_per_key(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("firm-a", upsert("acct-1", dec!(10), None))
        .await
        .expect("create");
    let first = store
        .create_cash_movement(
            "firm-a",
            movement("acct-1", CashMovementKind::Deposit, dec!(100000)),
            claim("d1"),
        )
        .await
        .expect("deposit");
    let Created::New(first) = first else {
        panic!("new")
    };
    let again = store
        .create_cash_movement(
            "firm-a",
            movement("acct-1", CashMovementKind::Deposit, dec!(100000)),
            claim("d1"),
        )
        .await
        .expect("replay");
    assert_eq!(again, Created::Replayed(first.clone()));
    let claimed = claim("d1").expect("claim");
    assert_eq!(
        store
            .claimed_cash_movement("firm-a", &claimed)
            .await
            .expect("claimed"),
        Some(first.clone())
    );
    let unclaimed = claim("d2").expect("claim");
    assert_eq!(
        store
            .claimed_cash_movement("firm-a", &unclaimed)
            .await
            .expect("unclaimed"),
        None
    );
    let reused = IdempotencyClaim {
        fingerprint: "another request".to_owned(),
        ..claimed
    };
    let mismatch = store
        .claimed_cash_movement("firm-a", &reused)
        .await
        .expect_err("key used for another request");
    assert!(
        matches!(mismatch, StoreError::IdempotencyMismatch),
        "{mismatch:?}"
    );
    let account = store
        .get_account("firm-a", "acct-1")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(account.cash, dec!(100010));
    assert_eq!(account.revision, 2);

    let missing = store
        .create_cash_movement(
            "firm-a",
            movement("nobody", CashMovementKind::Deposit, dec!(1)),
            None,
        )
        .await
        .expect_err("unknown account");
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
}

async fn withdrawal_lifecycle_moves_cash_on_settlement(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("firm-a", upsert("acct-1", dec!(1000), None))
        .await
        .expect("create");
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 16, 0, 0)
        .single()
        .expect("valid");
    let big = store
        .create_cash_movement(
            "firm-a",
            movement("acct-1", CashMovementKind::Withdrawal, dec!(5000)),
            None,
        )
        .await
        .expect("withdrawal")
        .into_inner();
    assert_eq!(
        store
            .get_account("firm-a", "acct-1")
            .await
            .expect("get")
            .expect("found")
            .cash,
        dec!(1000)
    );
    let acknowledged = store
        .apply_cash_action(
            "firm-a",
            &big.id,
            CashAction::Acknowledge,
            Some("run-1".to_owned()),
            now,
        )
        .await
        .expect("acknowledge");
    assert_eq!(acknowledged.status, CashMovementStatus::Acknowledged);
    assert_eq!(acknowledged.run_id.as_deref(), Some("run-1"));
    let short = store
        .apply_cash_action("firm-a", &big.id, CashAction::Settle, None, now)
        .await
        .expect_err("not enough cash");
    assert!(
        matches!(short, StoreError::FailedPrecondition(_)),
        "{short:?}"
    );

    let small = store
        .create_cash_movement(
            "firm-a",
            movement("acct-1", CashMovementKind::Withdrawal, dec!(400.25)),
            None,
        )
        .await
        .expect("withdrawal")
        .into_inner();
    let settled = store
        .apply_cash_action("firm-a", &small.id, CashAction::Settle, None, now)
        .await
        .expect("settle");
    assert_eq!(settled.status, CashMovementStatus::Settled);
    assert_eq!(
        store
            .get_account("firm-a", "acct-1")
            .await
            .expect("get")
            .expect("found")
            .cash,
        dec!(599.75)
    );
    let again = store
        .apply_cash_action("firm-a", &small.id, CashAction::Cancel, None, now)
        .await
        .expect_err("already settled");
    assert!(matches!(again, StoreError::FailedPrecondition(_)));

    let pending = store
        .list_cash_movements(
            "firm-a",
            &CashMovementFilter {
                status: Some(CashMovementStatus::Acknowledged),
                ..CashMovementFilter::default()
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, big.id);
}

async fn holdings_batches_cover_every_account_once(store: Arc<dyn ExecutionStore>) {
    for index in 0..25 {
        let id = format!("acct-{index:03}");
        store
            .upsert_account("firm-a", upsert(&id, dec!(100), None))
            .await
            .expect("create");
        if index % 5 == 0 {
            store
                .create_cash_movement(
                    "firm-a",
                    movement(&id, CashMovementKind::Deposit, dec!(50)),
                    None,
                )
                .await
                .expect("deposit");
        }
    }
    store
        .upsert_account("firm-b", upsert("acct-000", dec!(1), None))
        .await
        .expect("other tenant");
    let mut range = HoldingsRange::default();
    let mut seen = Vec::new();
    loop {
        let batch = store
            .holdings_batch("firm-a", &range, 10)
            .await
            .expect("batch");
        let Some(last) = batch.last() else { break };
        range.after = Some(last.account.id.clone());
        for record in &batch {
            assert_eq!(record.account.positions.len(), 2, "{}", record.account.id);
            let expected_pending =
                usize::from(record.account.id.ends_with('0') || record.account.id.ends_with('5'));
            assert_eq!(
                record.pending.len(),
                expected_pending,
                "{}",
                record.account.id
            );
            seen.push(record.account.id.clone());
        }
    }
    let expected: Vec<String> = (0..25).map(|index| format!("acct-{index:03}")).collect();
    assert_eq!(seen, expected);

    let some = store
        .holdings_batch(
            "firm-a",
            &HoldingsRange {
                account_ids: vec![
                    "acct-007".to_owned(),
                    "acct-003".to_owned(),
                    "missing".to_owned(),
                ],
                ..HoldingsRange::default()
            },
            10,
        )
        .await
        .expect("by ids");
    let ids: Vec<&str> = some.iter().map(|r| r.account.id.as_str()).collect();
    assert_eq!(ids, ["acct-003", "acct-007"]);
}

async fn accounts_filter_by_restriction(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("firm-a", upsert("acct-1", dec!(1), None))
        .await
        .expect("create");
    let mut clean = upsert("acct-2", dec!(1), None);
    clean.restrictions.clear();
    store.upsert_account("firm-a", clean).await.expect("create");
    let blocked = store
        .list_accounts(
            "firm-a",
            &AccountFilter {
                restriction: Some(Restriction::TradingBlocked),
                ..AccountFilter::default()
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].id, "acct-1");
    let all = store
        .list_accounts(
            "firm-a",
            &AccountFilter::default(),
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].positions.len(), 2);
}

fn run(account_id: &str, status: RunStatus) -> RunRecord {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 3, 15, 0, 0)
        .single()
        .expect("a time");
    RunRecord {
        id: new_id(),
        account_id: account_id.to_owned(),
        kind: RunKind::FullRebalance,
        status,
        initiated_from: InitiatedFrom::Api,
        reason: String::new(),
        amount: None,
        portfolio_id: None,
        portfolio_version: None,
        approval_mode: ApprovalMode::Manual,
        batch_id: None,
        cash_movement_id: None,
        transmission_id: None,
        cancel_requested: false,
        equity: dec!(1000),
        cash_before: dec!(1000),
        minimum_order_notional: dec!(1),
        weights: Vec::new(),
        algorithm: Algorithm::default(),
        drift: Vec::new(),
        skipped: Vec::new(),
        adjustments: Vec::new(),
        approved_by: None,
        revision: 1,
        created_at: now,
        updated_at: now,
        approved_at: None,
        started_at: None,
        completed_at: None,
        canceled_at: None,
        expires_at: None,
        broker: None,
        trace_context: None,
        tax: None,
        orders: Vec::new(),
    }
}

async fn runs_are_created_only_in_an_initial_status(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("t1", upsert("acct-r", dec!(1000), None))
        .await
        .expect("account");
    let error = store
        .create_run("t1", run("acct-r", RunStatus::InProgress), None)
        .await
        .expect_err("not an initial status");
    assert!(
        matches!(error, StoreError::FailedPrecondition(_)),
        "{error:?}"
    );
    assert!(
        store
            .open_run_id("t1", "acct-r")
            .await
            .expect("read")
            .is_none()
    );
    let created = store
        .create_run("t1", run("acct-r", RunStatus::Proposed), None)
        .await
        .expect("proposed");
    assert_eq!(created.into_inner().status, RunStatus::Proposed);
}

async fn run_status_moves_only_along_its_lifecycle(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("t1", upsert("acct-l", dec!(1000), None))
        .await
        .expect("account");
    let proposed = store
        .create_run("t1", run("acct-l", RunStatus::Proposed), None)
        .await
        .expect("proposed")
        .into_inner();
    let now = proposed.created_at + TimeDelta::minutes(1);
    let to = |status| RunChange {
        status: Some(status),
        ..RunChange::default()
    };
    // PROPOSED cannot jump to IN_PROGRESS; nothing changes.
    let error = store
        .update_run("t1", &proposed.id, None, to(RunStatus::InProgress), now)
        .await
        .expect_err("not a transition");
    assert!(
        matches!(error, StoreError::FailedPrecondition(_)),
        "{error:?}"
    );
    let unchanged = store
        .get_run("t1", &proposed.id)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(
        (unchanged.status, unchanged.revision),
        (RunStatus::Proposed, proposed.revision)
    );
    // A stale etag is refused before the transition is looked at.
    let error = store
        .update_run(
            "t1",
            &proposed.id,
            Some(proposed.revision + 5),
            to(RunStatus::Queued),
            now,
        )
        .await
        .expect_err("stale etag");
    assert!(matches!(error, StoreError::StaleRevision(_)), "{error:?}");
    let queued = store
        .update_run(
            "t1",
            &proposed.id,
            Some(proposed.revision),
            to(RunStatus::Queued),
            now,
        )
        .await
        .expect("queued");
    assert_eq!(queued.status, RunStatus::Queued);
    let canceled = store
        .update_run("t1", &proposed.id, None, to(RunStatus::Canceled), now)
        .await
        .expect("canceled");
    assert_eq!(canceled.status, RunStatus::Canceled);
    // A terminal run never moves again.
    let error = store
        .update_run("t1", &proposed.id, None, to(RunStatus::Queued), now)
        .await
        .expect_err("terminal");
    assert!(
        matches!(error, StoreError::FailedPrecondition(_)),
        "{error:?}"
    );
}

async fn withdrawals_earmark_until_settled_or_canceled(store: Arc<dyn ExecutionStore>) {
    store
        .upsert_account("firm-e", upsert("acct-e", dec!(1000), None))
        .await
        .expect("create");
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 16, 0, 0)
        .single()
        .expect("valid");
    let earmarked = |store: Arc<dyn ExecutionStore>| async move {
        store
            .get_account("firm-e", "acct-e")
            .await
            .expect("get")
            .expect("found")
            .earmarked
    };
    let mut limited = movement("acct-e", CashMovementKind::Withdrawal, dec!(700));
    limited.withdrawable_limit = Some(dec!(1500));
    let first = store
        .create_cash_movement("firm-e", limited, None)
        .await
        .expect("within the limit")
        .into_inner();
    assert_eq!(earmarked(store.clone()).await, dec!(700));
    // 700 requested already: 900 more exceeds 1500.
    let mut over = movement("acct-e", CashMovementKind::Withdrawal, dec!(900));
    over.withdrawable_limit = Some(dec!(1500));
    let refused = store
        .create_cash_movement("firm-e", over, None)
        .await
        .expect_err("above what is left");
    assert!(
        matches!(refused, StoreError::FailedPrecondition(_)),
        "{refused:?}"
    );
    assert_eq!(earmarked(store.clone()).await, dec!(700));
    let second = store
        .create_cash_movement(
            "firm-e",
            movement("acct-e", CashMovementKind::Withdrawal, dec!(200)),
            None,
        )
        .await
        .expect("withdrawal")
        .into_inner();
    assert_eq!(earmarked(store.clone()).await, dec!(900));
    store
        .apply_cash_action("firm-e", &first.id, CashAction::Settle, None, now)
        .await
        .expect("settle");
    assert_eq!(earmarked(store.clone()).await, dec!(200));
    store
        .apply_cash_action("firm-e", &second.id, CashAction::Cancel, None, now)
        .await
        .expect("cancel");
    let account = store
        .get_account("firm-e", "acct-e")
        .await
        .expect("get")
        .expect("found");
    assert_eq!((account.cash, account.earmarked), (dec!(300), dec!(0)));
}

async fn runs_expire_only_while_waiting(store: Arc<dyn ExecutionStore>) {
    for account in ["acct-x1", "acct-x2", "acct-x3"] {
        store
            .upsert_account("t-x", upsert(account, dec!(1000), None))
            .await
            .expect("account");
    }
    let at = |minute: u32| {
        Utc.with_ymd_and_hms(2026, 3, 3, 15, minute, 0)
            .single()
            .expect("a time")
    };
    let mut due = run("acct-x1", RunStatus::Proposed);
    due.expires_at = Some(at(10));
    let mut later = run("acct-x2", RunStatus::Queued);
    later.expires_at = Some(at(30));
    let mut queued = run("acct-x3", RunStatus::Queued);
    queued.expires_at = Some(at(10));
    for record in [due.clone(), later.clone(), queued.clone()] {
        store.create_run("t-x", record, None).await.expect("run");
    }
    // A queued run past its expiry is never started.
    let claimed = store
        .claim_queued_runs("transmission-x", at(20), 100, false, Claimable::All)
        .await
        .expect("claim");
    let claimed: Vec<&str> = claimed.iter().map(|(_, run)| run.id.as_str()).collect();
    assert_eq!(claimed, [later.id.as_str()]);
    let expired = store.expire_runs(at(20), 100).await.expect("expire");
    let mut ids: Vec<&str> = expired.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![due.id.as_str(), queued.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for id in [&due.id, &queued.id] {
        let ended = store.get_run("t-x", id).await.expect("get").expect("run");
        assert_eq!(ended.status, RunStatus::Timeout);
        assert!(ended.reason.contains("expired"), "{}", ended.reason);
    }
    // The started run is past its expiry too, but it is no longer waiting.
    assert!(
        store
            .expire_runs(at(40), 100)
            .await
            .expect("expire")
            .is_empty()
    );
    let started = store
        .get_run("t-x", &later.id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(started.status, RunStatus::InProgress);
}

fn buy(run: &RunRecord, position: i32, symbol: &str) -> OrderRecord {
    OrderRecord {
        id: new_id(),
        run_id: run.id.clone(),
        account_id: run.account_id.clone(),
        position,
        symbol: symbol.to_owned(),
        side: rebalancer_domain::trades::Side::Buy,
        quantity: dec!(0.5),
        notional: Some(dec!(100)),
        whole_shares: false,
        estimated_price: dec!(200),
        status: rebalancer_domain::run::OrderStatus::New,
        filled_quantity: dec!(0),
        filled_notional: dec!(0),
        filled_amount: dec!(0),
        client_order_id: format!("{}-{position}", run.id),
        block_order_id: None,
        excluded: false,
        reason: String::new(),
        created_at: run.created_at,
        updated_at: run.created_at,
    }
}

async fn crypto_runs_start_around_the_clock(store: Arc<dyn ExecutionStore>) {
    for account in ["acct-c1", "acct-c2", "acct-c3"] {
        store
            .upsert_account("t-c", upsert(account, dec!(1000), None))
            .await
            .expect("account");
    }
    let mut crypto = run("acct-c1", RunStatus::Queued);
    crypto.orders = vec![buy(&crypto, 0, "BTC/USD"), buy(&crypto, 1, "USDC/USD")];
    let mut mixed = run("acct-c2", RunStatus::Queued);
    mixed.orders = vec![buy(&mixed, 0, "BTC/USD"), buy(&mixed, 1, "SPY")];
    let mut extended = run("acct-c3", RunStatus::Queued);
    extended.algorithm.extended_hours = true;
    extended.orders = vec![buy(&extended, 0, "SPY")];
    for record in [crypto.clone(), mixed.clone(), extended.clone()] {
        store.create_run("t-c", record, None).await.expect("run");
    }
    let now = Utc
        .with_ymd_and_hms(2026, 3, 8, 16, 0, 0)
        .single()
        .expect("a Sunday");
    // The exchange closed: crypto alone.
    let claimed = store
        .claim_queued_runs("tx-1", now, 100, false, Claimable::AroundTheClock)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|(_, run)| run.id.as_str()).collect();
    assert_eq!(ids, [crypto.id.as_str()]);
    // Extended hours: runs that trade in them, and crypto.
    let claimed = store
        .claim_queued_runs(
            "tx-2",
            now,
            100,
            false,
            Claimable::ExtendedHoursOrAroundTheClock,
        )
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|(_, run)| run.id.as_str()).collect();
    assert_eq!(ids, [extended.id.as_str()]);
    let claimed = store
        .claim_queued_runs("tx-3", now, 100, false, Claimable::All)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|(_, run)| run.id.as_str()).collect();
    assert_eq!(ids, [mixed.id.as_str()]);
}

//! The store conformance suite: every case runs against SQLite and against a
//! fresh PostgreSQL database, and both must behave the same.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rebalancer_domain::evaluation::Flag;
use rebalancer_kit::db::new_id;
use rebalancer_kit::idempotency::{Created, IdempotencyClaim};
use rebalancer_monitor::store::{
    CycleState, CycleTrigger, EvaluationRecord, MonitorStore, NewCycle, ShardCounts, ShardFailure,
    TickerRecord,
};
use rust_decimal_macros::dec;

rebalancer_kit::store_conformance! {
    open: rebalancer_monitor::store::open,
    cases: [
        cycle_round_trips_with_idempotency,
        scheduled_cycle_is_one_per_day,
        shards_are_claimed_once_and_leases_expire,
        failed_shards_retry_after_a_back_off_and_can_fail_the_cycle,
        evaluations_upsert_list_count_and_complete_the_cycle,
        latest_evaluation_reaches_back_past_many_cycles,
    ],
}

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0)
        .single()
        .expect("valid")
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid")
}

fn new_cycle(trigger: CycleTrigger, shards: usize) -> NewCycle {
    NewCycle {
        trace_context: None,
        id: new_id(),
        trading_date: day(),
        trigger,
        dry_run: false,
        portfolio_id: None,
        account_ids: Vec::new(),
        shards: (0..shards)
            .map(|i| {
                (
                    (i > 0).then(|| format!("acct-{:03}", i * 10)),
                    (i + 1 < shards).then(|| format!("acct-{:03}", (i + 1) * 10 + 1)),
                )
            })
            .collect(),
        now: at(14, 45),
    }
}

async fn cycle_round_trips_with_idempotency(store: Arc<dyn MonitorStore>) {
    let mut cycle = new_cycle(CycleTrigger::OnDemand, 2);
    cycle.dry_run = true;
    cycle.account_ids = vec!["acct-001".to_owned(), "acct-002".to_owned()];
    let claim = IdempotencyClaim {
        operation: "EvaluateNow",
        key: "evaluate-1".to_owned(),
        fingerprint: "f1".to_owned(),
    };
    let created = store
        .create_cycle("firm-a", cycle.clone(), Some(claim.clone()))
        .await
        .expect("create");
    let Created::New(created) = created else {
        panic!("first create is new")
    };
    assert_eq!(created.state, CycleState::Pending);
    assert_eq!(created.shards_total, 2);
    assert_eq!(created.account_ids, cycle.account_ids);
    assert!(created.dry_run);
    let read = store
        .get_cycle("firm-a", &created.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, created);
    assert_eq!(
        store.get_cycle("firm-b", &created.id).await.expect("get"),
        None
    );

    // The same key replays; a different request under it is refused.
    let mut again = new_cycle(CycleTrigger::OnDemand, 1);
    again.dry_run = true;
    let replayed = store
        .create_cycle("firm-a", again.clone(), Some(claim.clone()))
        .await
        .expect("replay");
    assert_eq!(replayed, Created::Replayed(created.clone()));
    let mismatch = IdempotencyClaim {
        fingerprint: "f2".to_owned(),
        ..claim.clone()
    };
    assert!(
        store
            .create_cycle("firm-a", again.clone(), Some(mismatch))
            .await
            .is_err()
    );
    // Keys are per tenant.
    let other = store
        .create_cycle("firm-b", again, Some(claim))
        .await
        .expect("other tenant");
    assert!(matches!(other, Created::New(_)));

    let listed = store.list_cycles("firm-a", None, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
}

async fn scheduled_cycle_is_one_per_day(store: Arc<dyn MonitorStore>) {
    assert_eq!(
        store.scheduled_cycle("firm-a", day()).await.expect("read"),
        None
    );
    let first = store
        .create_cycle("firm-a", new_cycle(CycleTrigger::Scheduled, 1), None)
        .await
        .expect("create")
        .into_inner();
    let second = store
        .create_cycle("firm-a", new_cycle(CycleTrigger::Scheduled, 3), None)
        .await
        .expect("create again");
    assert_eq!(second, Created::Replayed(first.clone()));
    assert_eq!(
        store.scheduled_cycle("firm-a", day()).await.expect("read"),
        Some(first.clone())
    );
    // On-demand cycles and other tenants are not limited.
    for tenant in ["firm-a", "firm-b"] {
        let created = store
            .create_cycle(tenant, new_cycle(CycleTrigger::OnDemand, 1), None)
            .await
            .expect("on demand");
        assert!(matches!(created, Created::New(_)));
    }
    let scheduled_b = store
        .create_cycle("firm-b", new_cycle(CycleTrigger::Scheduled, 1), None)
        .await
        .expect("firm-b");
    assert!(matches!(scheduled_b, Created::New(_)));
    let listed = store.list_cycles("firm-a", None, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed[0].id > listed[1].id, "newest first");
    let page = store
        .list_cycles("firm-a", Some(&listed[0].id), 10)
        .await
        .expect("page");
    assert_eq!(page, listed[1..].to_vec());
}

async fn shards_are_claimed_once_and_leases_expire(store: Arc<dyn MonitorStore>) {
    let cycle = store
        .create_cycle("firm-a", new_cycle(CycleTrigger::OnDemand, 3), None)
        .await
        .expect("create")
        .into_inner();
    let now = at(14, 46);
    let lease = now + Duration::minutes(10);
    let mut claimed = Vec::new();
    for owner in ["a", "b", "a"] {
        let (tenant, shard) = store
            .claim_shard(owner, now, lease)
            .await
            .expect("claim")
            .expect("a shard is open");
        assert_eq!(tenant, "firm-a");
        assert_eq!(shard.attempts, 1);
        claimed.push((owner, shard));
    }
    let sequences: Vec<i32> = claimed.iter().map(|(_, s)| s.sequence).collect();
    assert_eq!(sequences, vec![0, 1, 2]);
    assert_eq!(claimed[0].1.after_account, None);
    assert_eq!(claimed[0].1.before_account.as_deref(), Some("acct-011"));
    assert_eq!(claimed[2].1.before_account, None);
    assert_eq!(
        store.claim_shard("c", now, lease).await.expect("claim"),
        None
    );
    let running = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(running.state, CycleState::Running);
    assert_eq!(running.started_at, Some(now));

    // Shard 0 finishes; shard 1's replica dies and its lease runs out.
    let counts = ShardCounts {
        evaluated: 5,
        runs_created: 2,
        errors: 1,
    };
    assert!(
        store
            .finish_shard("firm-a", &claimed[0].1, "a", counts, now)
            .await
            .expect("finish")
    );
    let later = lease + Duration::seconds(1);
    let (_, retaken) = store
        .claim_shard("c", later, later + Duration::minutes(10))
        .await
        .expect("claim")
        .expect("expired shard");
    assert_eq!(retaken.sequence, 1);
    assert_eq!(retaken.attempts, 2);
    // The first holder can no longer finish it; the new one can.
    assert!(
        !store
            .finish_shard("firm-a", &claimed[1].1, "b", counts, later)
            .await
            .expect("stale")
    );
    assert!(
        store
            .finish_shard("firm-a", &retaken, "c", counts, later)
            .await
            .expect("finish")
    );
    let (_, last) = store
        .claim_shard("d", later, later + Duration::minutes(10))
        .await
        .expect("claim")
        .expect("shard 2 expired too");
    assert_eq!(last.sequence, 2);
    assert!(
        store
            .finish_shard("firm-a", &last, "d", counts, later)
            .await
            .expect("finish")
    );
    let done = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(done.state, CycleState::Completed);
    assert_eq!(
        (
            done.shards_done,
            done.accounts_evaluated,
            done.runs_created,
            done.errors
        ),
        (3, 15, 6, 3)
    );
    assert_eq!(done.completed_at, Some(later));
    assert_eq!(
        store.claim_shard("e", later, later).await.expect("claim"),
        None
    );
}

fn evaluation(
    cycle_id: &str,
    account: usize,
    flag: Flag,
    portfolio: Option<&str>,
) -> EvaluationRecord {
    EvaluationRecord {
        cycle_id: cycle_id.to_owned(),
        account_id: format!("acct-{account:04}"),
        flag,
        reason: format!("{} for test", flag.as_str()),
        portfolio_id: portfolio.map(str::to_owned),
        portfolio_version: portfolio.map(|_| 3),
        equity: dec!(10000.25),
        cash: dec!(100.05),
        max_drift: dec!(6.125),
        total_drift: dec!(12.25),
        tickers: vec![TickerRecord {
            symbol: Some("AAPL".to_owned()),
            target_weight: dec!(50),
            band_lower: Some(dec!(45)),
            band_upper: Some(dec!(55)),
            breached: true,
            value: dec!(5612.64),
        }],
        missing: vec!["QQQ".to_owned()],
        run_id: None,
        run_type: None,
        run_note: String::new(),
        evaluated_at: at(14, 47),
    }
}

async fn evaluations_upsert_list_count_and_complete_the_cycle(store: Arc<dyn MonitorStore>) {
    let cycle = store
        .create_cycle("firm-a", new_cycle(CycleTrigger::OnDemand, 1), None)
        .await
        .expect("create")
        .into_inner();
    let flags = [
        Flag::OutOfTolerance,
        Flag::InsideTolerance,
        Flag::NewDeposit,
        Flag::NoPortfolioAssigned,
    ];
    let records: Vec<EvaluationRecord> = (1..=1000)
        .map(|i| {
            let flag = flags[i % flags.len()];
            let portfolio = match flag {
                Flag::NoPortfolioAssigned => None,
                _ if i % 2 == 0 => Some("pf-even"),
                _ => Some("pf-odd"),
            };
            evaluation(&cycle.id, i, flag, portfolio)
        })
        .collect();
    store
        .write_evaluations("firm-a", &records)
        .await
        .expect("write");
    // A retried shard rewrites its evaluations.
    let mut changed = records[0].clone();
    changed.flag = Flag::NeedsAttention;
    changed.run_id = Some("run-1".to_owned());
    changed.run_type = Some("full_rebalance".to_owned());
    store
        .write_evaluations("firm-a", &[changed.clone()])
        .await
        .expect("rewrite");
    let read = store
        .get_evaluation("firm-a", "acct-0001", Some(&cycle.id))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, changed);
    assert_eq!(
        store
            .get_evaluation("firm-a", "acct-0001", None)
            .await
            .expect("latest"),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_evaluation("firm-b", "acct-0001", None)
            .await
            .expect("other tenant"),
        None
    );

    let out = store
        .list_evaluations("firm-a", &cycle.id, &[Flag::OutOfTolerance], None, None, 10)
        .await
        .expect("list");
    assert_eq!(out.len(), 10);
    assert!(out.iter().all(|e| e.flag == Flag::OutOfTolerance));
    assert!(out.windows(2).all(|w| w[0].account_id < w[1].account_id));
    let next = store
        .list_evaluations(
            "firm-a",
            &cycle.id,
            &[Flag::OutOfTolerance],
            None,
            Some(&out[9].account_id),
            1000,
        )
        .await
        .expect("next page");
    assert_eq!(out.len() + next.len(), 250);
    let odd = store
        .list_evaluations("firm-a", &cycle.id, &[], Some("pf-odd"), None, 1000)
        .await
        .expect("one portfolio");
    assert!(
        odd.iter()
            .all(|e| e.portfolio_id.as_deref() == Some("pf-odd"))
    );

    let counts = store
        .flag_counts("firm-a", &cycle.id, None)
        .await
        .expect("counts");
    let total: i64 = counts.iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, 1000);
    assert!(counts.contains(&(None, Flag::NoPortfolioAssigned, 250)));

    let marks = store
        .account_boundaries("firm-a", &cycle.id, 300)
        .await
        .expect("marks");
    assert_eq!(
        marks,
        vec![
            (300, "acct-0300".to_owned()),
            (301, "acct-0301".to_owned()),
            (600, "acct-0600".to_owned()),
            (601, "acct-0601".to_owned()),
            (900, "acct-0900".to_owned()),
            (901, "acct-0901".to_owned()),
        ]
    );

    let now = at(14, 50);
    let (_, shard) = store
        .claim_shard("a", now, now + Duration::minutes(1))
        .await
        .expect("claim")
        .expect("open");
    let counts = ShardCounts {
        evaluated: 1000,
        runs_created: 0,
        errors: 0,
    };
    assert!(
        store
            .finish_shard("firm-a", &shard, "a", counts, now)
            .await
            .expect("finish")
    );
    let done = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(done.state, CycleState::Completed);
    assert_eq!(done.status_counts.get("no_portfolio_assigned"), Some(&250));
    assert_eq!(done.status_counts.get("needs_attention"), Some(&1));
    assert_eq!(done.status_counts.values().sum::<i64>(), 1000);
    assert_eq!(
        store
            .latest_completed_cycle("firm-a")
            .await
            .expect("latest")
            .map(|c| c.id),
        Some(cycle.id)
    );
}

/// An account's latest evaluation is found however many newer cycles passed
/// it by (the store probes cycles newest first, a page at a time).
async fn latest_evaluation_reaches_back_past_many_cycles(store: Arc<dyn MonitorStore>) {
    let mut ids = Vec::new();
    for _ in 0..150 {
        let cycle = store
            .create_cycle("firm-a", new_cycle(CycleTrigger::OnDemand, 1), None)
            .await
            .expect("create")
            .into_inner();
        ids.push(cycle.id);
    }
    ids.sort();
    let (oldest, newest) = (ids[0].clone(), ids[ids.len() - 1].clone());
    let mut records = vec![evaluation(&oldest, 1, Flag::OutOfTolerance, Some("pf"))];
    records.extend(
        ids.iter()
            .map(|id| evaluation(id, 2, Flag::InsideTolerance, Some("pf"))),
    );
    for record in &records {
        store
            .write_evaluations("firm-a", std::slice::from_ref(record))
            .await
            .expect("write");
    }
    let latest = |account: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .get_evaluation("firm-a", account, None)
                .await
                .expect("latest")
                .map(|e| e.cycle_id)
        }
    };
    assert_eq!(latest("acct-0001").await, Some(oldest));
    assert_eq!(latest("acct-0002").await, Some(newest));
    assert_eq!(latest("acct-0003").await, None);
}

async fn failed_shards_retry_after_a_back_off_and_can_fail_the_cycle(store: Arc<dyn MonitorStore>) {
    let cycle = store
        .create_cycle("firm-a", new_cycle(CycleTrigger::OnDemand, 2), None)
        .await
        .expect("create")
        .into_inner();
    let now = at(14, 46);
    let lease = now + Duration::minutes(10);
    let (_, first) = store
        .claim_shard("a", now, lease)
        .await
        .expect("claim")
        .expect("shard 0");
    let failure = ShardFailure {
        error: "shard 0 attempt 1 of 5: target unreachable",
        retry_at: now + Duration::minutes(2),
        give_up: false,
    };
    store
        .fail_shard("firm-a", &first, "a", failure, now)
        .await
        .expect("fail");
    let running = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(running.state, CycleState::Running);
    assert_eq!(running.error, "shard 0 attempt 1 of 5: target unreachable");
    // Not before the back-off: the other shard is claimed instead.
    let (_, second) = store
        .claim_shard("b", now + Duration::minutes(1), lease)
        .await
        .expect("claim")
        .expect("shard 1");
    assert_eq!(second.sequence, 1);
    assert_eq!(
        store
            .claim_shard("b", now + Duration::minutes(1), lease)
            .await
            .expect("claim"),
        None
    );
    let (_, again) = store
        .claim_shard("b", now + Duration::minutes(3), lease)
        .await
        .expect("claim")
        .expect("shard 0 again");
    assert_eq!((again.sequence, again.attempts), (0, 2));
    // Out of attempts: the cycle fails and nothing is left to claim; the
    // other shard finishing later does not complete it.
    let failure = ShardFailure {
        error: "shard 0 attempt 2 of 2: target unreachable",
        retry_at: now + Duration::minutes(5),
        give_up: true,
    };
    store
        .fail_shard("firm-a", &again, "b", failure, now + Duration::minutes(3))
        .await
        .expect("fail");
    assert_eq!(
        store
            .claim_shard("c", now + Duration::hours(2), lease)
            .await
            .expect("claim"),
        None
    );
    let counts = ShardCounts {
        evaluated: 1,
        runs_created: 0,
        errors: 0,
    };
    store
        .finish_shard("firm-a", &second, "b", counts, now + Duration::minutes(4))
        .await
        .expect("finish");
    let failed = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(failed.state, CycleState::Failed);
    assert_eq!(failed.error, "shard 0 attempt 2 of 2: target unreachable");
    assert_eq!(failed.completed_at, Some(now + Duration::minutes(3)));
}

//! A cycle whose peers cannot be reached does not stay RUNNING forever: each
//! failed attempt of a shard puts the error on the cycle (what `GetCycle`
//! and `WatchCycle` show) and retries after a back-off; after five attempts
//! (about a quarter of an hour) the cycle FAILS with the error.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rebalancer_kit::SimClock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions, new_id};
use rebalancer_monitor::store::{CycleState, CycleTrigger, NewCycle};
use rebalancer_monitor::{Monitor, MonitorConfig};
use rebalancer_proto::client::{ClientOptions, lazy_channel};

#[tokio::test]
async fn a_cycle_with_an_unreachable_peer_fails_in_bounded_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = rebalancer_monitor::store::open(
        &DatabaseUrl::Sqlite(dir.path().join("monitor.db")),
        &PoolOptions::default(),
    )
    .await
    .expect("store");
    let start = Utc
        .with_ymd_and_hms(2026, 3, 3, 15, 0, 0)
        .single()
        .expect("time");
    let clock = SimClock::manual(start);
    // Nothing listens on port 1: every call is refused at once.
    let nowhere = lazy_channel(&ClientOptions::new("http://127.0.0.1:1")).expect("channel");
    let monitor = Monitor::new(
        store.clone(),
        Arc::new(clock.clone()),
        nowhere.clone(),
        nowhere,
        MonitorConfig {
            tenants: Vec::new(),
            ..MonitorConfig::default()
        },
    );
    let cycle = store
        .create_cycle(
            "firm-a",
            NewCycle {
                trace_context: None,
                id: new_id(),
                trading_date: NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
                trigger: CycleTrigger::OnDemand,
                dry_run: false,
                portfolio_id: None,
                account_ids: Vec::new(),
                shards: vec![(None, None)],
                now: start,
            },
            None,
        )
        .await
        .expect("cycle")
        .into_inner();

    monitor.tick("replica-1").await.expect("tick");
    let first = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("cycle");
    assert_eq!(first.state, CycleState::Running);
    assert!(first.error.contains("attempt 1 of 5"), "{first:?}");

    let mut minutes = 0;
    let failed = loop {
        clock.advance(Duration::minutes(1));
        minutes += 1;
        monitor.tick("replica-1").await.expect("tick");
        let current = store
            .get_cycle("firm-a", &cycle.id)
            .await
            .expect("get")
            .expect("cycle");
        if current.state != CycleState::Running {
            break current;
        }
        assert!(minutes < 60, "still running after an hour: {current:?}");
    };
    assert_eq!(failed.state, CycleState::Failed, "{failed:?}");
    assert!(failed.error.contains("attempt 5 of 5"), "{failed:?}");
    assert!(failed.completed_at.is_some());
    assert!(
        (10..=20).contains(&minutes),
        "failed after {minutes} minutes"
    );
    // Nothing is left to claim: the cycle stays failed.
    clock.advance(Duration::hours(1));
    monitor.tick("replica-1").await.expect("tick");
    let later = store
        .get_cycle("firm-a", &cycle.id)
        .await
        .expect("get")
        .expect("cycle");
    assert_eq!(later.state, CycleState::Failed);
}

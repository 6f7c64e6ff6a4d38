//! The monitor's events on both backends: a cycle's state changes and the
//! accounts it flags are recorded by the database itself, once each; a
//! retried shard that rewrites an evaluation flags the account again only
//! when its status changed; dry runs flag nothing.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rebalancer_domain::evaluation::Flag;
use rebalancer_kit::Clock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions, new_id};
use rebalancer_kit::events::{EventLog, EventQuery};
use rebalancer_monitor::store::{CycleTrigger, EvaluationRecord, MonitorStore, NewCycle};
use rust_decimal::Decimal;

fn flagged(cycle_id: &str, account: &str, flag: Flag) -> EvaluationRecord {
    EvaluationRecord {
        cycle_id: cycle_id.to_owned(),
        account_id: account.to_owned(),
        flag,
        reason: flag.as_str().to_owned(),
        portfolio_id: Some("pf-1".to_owned()),
        portfolio_version: Some(1),
        equity: Decimal::ONE_HUNDRED,
        cash: Decimal::ONE,
        max_drift: Decimal::ZERO,
        total_drift: Decimal::ZERO,
        tickers: Vec::new(),
        missing: Vec::new(),
        run_id: None,
        run_type: None,
        run_note: String::new(),
        evaluated_at: Utc
            .with_ymd_and_hms(2026, 3, 2, 14, 47, 0)
            .single()
            .expect("time"),
    }
}

async fn cycle(store: &Arc<dyn MonitorStore>, dry_run: bool) -> String {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 14, 45, 0)
        .single()
        .expect("time");
    store
        .create_cycle(
            "firm-a",
            NewCycle {
                id: new_id(),
                trading_date: now.date_naive(),
                trigger: CycleTrigger::OnDemand,
                dry_run,
                portfolio_id: None,
                account_ids: Vec::new(),
                shards: vec![(None, None)],
                now,
                trace_context: None,
            },
            None,
        )
        .await
        .expect("cycle")
        .into_inner()
        .id
}

async fn flags_once(url: DatabaseUrl) {
    let (store, events) =
        rebalancer_monitor::store::open_with_events(&url, &PoolOptions::default())
            .await
            .expect("open");
    let clock: Arc<dyn Clock> = Arc::new(rebalancer_kit::SimClock::manual(Utc::now()));
    let log = EventLog::new(events, clock, "monitor");
    let real = cycle(&store, false).await;
    let dry = cycle(&store, true).await;
    let first = [
        flagged(&real, "acct-1", Flag::OutOfTolerance),
        flagged(&real, "acct-2", Flag::InsideTolerance),
    ];
    store
        .write_evaluations("firm-a", &first)
        .await
        .expect("write");
    // The shard is retried: the same evaluations, then one that changed.
    store
        .write_evaluations("firm-a", &first)
        .await
        .expect("rewrite");
    store
        .write_evaluations("firm-a", &[flagged(&real, "acct-1", Flag::NeedsAttention)])
        .await
        .expect("changed");
    store
        .write_evaluations("firm-a", &[flagged(&dry, "acct-1", Flag::OutOfTolerance)])
        .await
        .expect("dry run");
    log.sequence().await.expect("sequence");
    let events = log
        .store()
        .read_events(&EventQuery {
            tenant: Some("firm-a".to_owned()),
            after: 0,
            types: vec!["EVENT_TYPE_ACCOUNT_FLAGGED".to_owned()],
            limit: 100,
        })
        .await
        .expect("read");
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.object_id.as_str(),
                e.account_id.as_str(),
                e.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                real.as_str(),
                "acct-1",
                "EVALUATION_STATUS_OUT_OF_TOLERANCE"
            ),
            (real.as_str(), "acct-1", "EVALUATION_STATUS_NEEDS_ATTENTION"),
        ]
    );
    let cycles = log
        .store()
        .read_events(&EventQuery {
            tenant: Some("firm-a".to_owned()),
            after: 0,
            types: vec!["EVENT_TYPE_CYCLE_STATE_CHANGED".to_owned()],
            limit: 100,
        })
        .await
        .expect("read");
    assert_eq!(cycles.len(), 2, "both cycles opened: {cycles:?}");
    assert!(
        cycles.iter().any(|e| e.detail == "on_demand dry run"),
        "{cycles:?}"
    );
}

#[tokio::test]
async fn flags_once_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    flags_once(DatabaseUrl::Sqlite(dir.path().join("monitor.db"))).await;
}

#[tokio::test]
async fn flags_once_postgres() {
    let Some(database) = rebalancer_kit::testing::TestDatabase::create().await else {
        return;
    };
    flags_once(DatabaseUrl::parse(&database.url).expect("url")).await;
}

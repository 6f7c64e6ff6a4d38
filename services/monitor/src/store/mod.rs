//! Storage of the Monitor service: cycles, their shards (claimed by replicas
//! with leases), and each account's evaluation. One trait, one SQL
//! implementation generic over PostgreSQL and SQLite, and the migrations of each.

mod migrations;
mod sql;
mod tickers;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::evaluation::Flag;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
pub use rebalancer_kit::error::StoreError;
use rebalancer_kit::events::{EventStore, SqlEvents};
pub use rebalancer_kit::idempotency::{Created, IdempotencyClaim};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use sql::SqlStore;

rebalancer_kit::text_enum! {
    /// Lifecycle of a cycle.
    pub enum CycleState {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
    }
}

rebalancer_kit::text_enum! {
    /// What started a cycle.
    pub enum CycleTrigger {
        Scheduled = "scheduled",
        OnDemand = "on_demand",
    }
}

/// A cycle as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRecord {
    pub id: String,
    pub trading_date: NaiveDate,
    pub trigger: CycleTrigger,
    pub state: CycleState,
    pub dry_run: bool,
    pub portfolio_id: Option<String>,
    pub account_ids: Vec<String>,
    pub shards_total: i64,
    pub shards_done: i64,
    pub accounts_evaluated: i64,
    pub runs_created: i64,
    pub errors: i64,
    pub status_counts: BTreeMap<String, i64>,
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The W3C traceparent of the request or schedule that started it.
    pub trace_context: Option<String>,
}

/// A cycle to create, with its shards' account ranges.
#[derive(Debug, Clone)]
pub struct NewCycle {
    pub id: String,
    pub trading_date: NaiveDate,
    pub trigger: CycleTrigger,
    pub dry_run: bool,
    pub portfolio_id: Option<String>,
    pub account_ids: Vec<String>,
    /// (after, before) of each shard; `None` is an open end.
    pub shards: Vec<(Option<String>, Option<String>)>,
    pub now: DateTime<Utc>,
    /// The W3C traceparent of the request or schedule starting it.
    pub trace_context: Option<String>,
}

/// A claimed shard: accounts strictly between its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecord {
    pub cycle_id: String,
    pub sequence: i32,
    pub after_account: Option<String>,
    pub before_account: Option<String>,
    pub attempts: i32,
}

/// Why and how a shard's attempt failed.
#[derive(Debug, Clone, Copy)]
pub struct ShardFailure<'a> {
    pub error: &'a str,
    /// When the shard may be claimed again.
    pub retry_at: DateTime<Utc>,
    /// Out of attempts: the cycle fails.
    pub give_up: bool,
}

/// A ticker as stored with an evaluation: its value against its band (its
/// weight and drift follow from the value and the account's equity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerRecord {
    pub symbol: Option<String>,
    pub target_weight: Decimal,
    pub band_lower: Option<Decimal>,
    pub band_upper: Option<Decimal>,
    pub breached: bool,
    pub value: Decimal,
}

/// One account's evaluation in one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationRecord {
    pub cycle_id: String,
    pub account_id: String,
    pub flag: Flag,
    pub reason: String,
    pub portfolio_id: Option<String>,
    pub portfolio_version: Option<i64>,
    pub equity: Decimal,
    pub cash: Decimal,
    pub max_drift: Decimal,
    pub total_drift: Decimal,
    pub tickers: Vec<TickerRecord>,
    pub missing: Vec<String>,
    pub run_id: Option<String>,
    pub run_type: Option<String>,
    pub run_note: String,
    pub evaluated_at: DateTime<Utc>,
}

/// Counts a shard adds to its cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCounts {
    pub evaluated: i64,
    pub runs_created: i64,
    pub errors: i64,
}

/// What the Monitor service keeps.
#[tonic::async_trait]
pub trait MonitorStore: Send + Sync + Debug {
    /// Creates a cycle and its shards; a scheduled cycle for a tenant and day
    /// that already has one returns `Replayed` with the existing cycle.
    async fn create_cycle(
        &self,
        tenant: &str,
        cycle: NewCycle,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<CycleRecord>, StoreError>;

    async fn get_cycle(&self, tenant: &str, id: &str) -> Result<Option<CycleRecord>, StoreError>;

    /// Cycles newest first.
    async fn list_cycles(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CycleRecord>, StoreError>;

    /// The scheduled cycle of a tenant's trading day, if it was started.
    async fn scheduled_cycle(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Option<CycleRecord>, StoreError>;

    /// The newest completed cycle over all accounts (not one scoped to a
    /// portfolio or a list of accounts).
    async fn latest_completed_cycle(&self, tenant: &str)
    -> Result<Option<CycleRecord>, StoreError>;

    /// Claims one open shard of any tenant (skipping those other replicas
    /// hold) until `lease_until`; marks its cycle running.
    async fn claim_shard(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<(String, ShardRecord)>, StoreError>;

    /// Stores (or replaces, on a retried shard) evaluations.
    async fn write_evaluations(
        &self,
        tenant: &str,
        evaluations: &[EvaluationRecord],
    ) -> Result<(), StoreError>;

    /// Marks a shard done (only if `owner` still holds it) and adds its
    /// counts to the cycle; completes the cycle with its last shard.
    async fn finish_shard(
        &self,
        tenant: &str,
        shard: &ShardRecord,
        owner: &str,
        counts: ShardCounts,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// A shard's attempt failed: its lease (if `owner` still holds it) ends
    /// at `failure.retry_at` and the cycle shows the error; with
    /// `failure.give_up`, the cycle fails instead (its open shards closed).
    async fn fail_shard(
        &self,
        tenant: &str,
        shard: &ShardRecord,
        owner: &str,
        failure: ShardFailure<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// One account's evaluation in a cycle, or its latest.
    async fn get_evaluation(
        &self,
        tenant: &str,
        account_id: &str,
        cycle_id: Option<&str>,
    ) -> Result<Option<EvaluationRecord>, StoreError>;

    /// Evaluations of a cycle with one of `flags` (all when empty), in account
    /// order, optionally of one portfolio.
    async fn list_evaluations(
        &self,
        tenant: &str,
        cycle_id: &str,
        flags: &[Flag],
        portfolio_id: Option<&str>,
        after_account: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EvaluationRecord>, StoreError>;

    /// Accounts of a cycle counted by portfolio and flag.
    async fn flag_counts(
        &self,
        tenant: &str,
        cycle_id: &str,
        portfolio_id: Option<&str>,
    ) -> Result<Vec<(Option<String>, Flag, i64)>, StoreError>;

    /// The accounts at positions k·every and k·every + 1 (k ≥ 1) of a cycle's
    /// evaluations in account order, with their positions: shard boundaries.
    async fn account_boundaries(
        &self,
        tenant: &str,
        cycle_id: &str,
        every: i64,
    ) -> Result<Vec<(i64, String)>, StoreError>;
}

/// Opens the store at `url`, applying migrations.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open(url: &DatabaseUrl, pool: &PoolOptions) -> anyhow::Result<Arc<dyn MonitorStore>> {
    Ok(open_with_events(url, pool).await?.0)
}

/// Opens the store at `url`, applying migrations, with the event outbox of
/// the same database.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open_with_events(
    url: &DatabaseUrl,
    pool: &PoolOptions,
) -> anyhow::Result<(Arc<dyn MonitorStore>, Arc<dyn EventStore>)> {
    match url {
        DatabaseUrl::Postgres(url) => {
            let pool = rebalancer_kit::db::connect_postgres(url, pool).await?;
            migrations::postgres().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
        DatabaseUrl::Sqlite(path) => {
            let pool = rebalancer_kit::db::connect_sqlite(path, pool).await?;
            migrations::sqlite().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
    }
}

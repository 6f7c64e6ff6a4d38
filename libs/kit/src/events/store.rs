//! The event outbox in SQL, once for both backends. Triggers of each
//! service's migrations insert rows without an id; [`EventStore::sequence_events`]
//! gives them ids one transaction at a time (PostgreSQL's advisory lock,
//! SQLite's single writer), so ids follow commit order and a reader that has
//! seen id `n` never finds a later-committed event below it.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use sqlx::{Pool, QueryBuilder, Row};

use crate::db::Backend;
use crate::error::StoreError;

/// Events given ids in one pass at most.
const SEQUENCE_BATCH: i64 = 10_000;

/// Advisory lock key of the sequencer (PostgreSQL).
const SEQUENCER_LOCK: i64 = 0x6576_656e_7473;

const EVENT_COLUMNS: &str = "seq, tenant_id, event_type, object_id, account_id, status, previous_status, \
     parent_id, detail, source, occurred_at";

/// One event with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub seq: i64,
    pub tenant_id: String,
    /// The `EventType` value's name, e.g. `EVENT_TYPE_RUN_CREATED`.
    pub event_type: String,
    pub object_id: String,
    pub account_id: String,
    pub status: String,
    pub previous_status: String,
    pub parent_id: String,
    pub detail: String,
    pub source: String,
    pub occurred_at: DateTime<Utc>,
}

/// An event just given its id: what changed, and whether this service
/// recorded it (not gathered from another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    pub event_type: String,
    pub status: String,
    pub gathered: bool,
}

/// Connections of the database's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// One tenant's, or every tenant's (`None`: the export to other services).
    pub tenant: Option<String>,
    /// Ids strictly after this one.
    pub after: i64,
    /// Only these types (empty: all).
    pub types: Vec<String>,
    pub limit: i64,
}

/// The event outbox of a service's database.
#[tonic::async_trait]
pub trait EventStore: Send + Sync + Debug {
    /// Gives ids, in insertion order, to the events recorded and committed
    /// since the last pass, stamping `now` on those without a time of their
    /// own. Returns them.
    async fn sequence_events(&self, now: DateTime<Utc>) -> Result<Vec<Sequenced>, StoreError>;

    /// The connections of the pool of the database the events are in (the
    /// service's own).
    fn pool_usage(&self) -> PoolUsage;

    /// Events with ids after `query.after`, oldest first.
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;

    /// The oldest id kept, `None` when none is.
    async fn oldest_event(&self) -> Result<Option<i64>, StoreError>;

    /// Deletes events given ids before `before`, but never the newest (ids
    /// continue from it). Returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The last id of `source` gathered into this outbox (0: none yet).
    async fn source_position(&self, source: &str) -> Result<i64, StoreError>;

    /// Adds `events` of `source` (their ids as `source_seq`) and moves its
    /// position to `through`, in one transaction: a gathering interrupted
    /// anywhere neither loses nor repeats an event.
    async fn gather_events(
        &self,
        source: &str,
        events: &[EventRecord],
        through: i64,
    ) -> Result<(), StoreError>;
}

/// The outbox over a pool.
#[derive(Debug, Clone)]
pub struct SqlEvents<DB: sqlx::Database> {
    pool: Pool<DB>,
}

impl<DB: sqlx::Database> SqlEvents<DB> {
    #[must_use]
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }
}

#[crate::sql_row]
fn event_from_row<R>(row: &R) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        seq: row.try_get("seq")?,
        tenant_id: row.try_get("tenant_id")?,
        event_type: row.try_get("event_type")?,
        object_id: row.try_get("object_id")?,
        account_id: row.try_get("account_id")?,
        status: row.try_get("status")?,
        previous_status: row.try_get("previous_status")?,
        parent_id: row.try_get("parent_id")?,
        detail: row.try_get("detail")?,
        source: row.try_get("source")?,
        occurred_at: row.try_get("occurred_at")?,
    })
}

#[crate::sql_store]
#[tonic::async_trait]
impl EventStore for SqlEvents<DB> {
    async fn sequence_events(&self, now: DateTime<Utc>) -> Result<Vec<Sequenced>, StoreError> {
        // A read first: watchers call this often, and most passes find
        // nothing to do without taking the write lock.
        let pending = sqlx::query("SELECT id FROM events WHERE seq IS NULL LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if pending.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if <DB as Backend>::NAME == "postgres" {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SEQUENCER_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query(
            "WITH pending AS ( \
                 SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n \
                 FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT $2) AS oldest \
             ), top AS (SELECT COALESCE(MAX(seq), 0) AS seq FROM events) \
             UPDATE events SET seq = top.seq + pending.n, sequenced_at = $1, \
                 occurred_at = COALESCE(events.occurred_at, $1) \
             FROM pending, top WHERE events.id = pending.id \
             RETURNING events.event_type, events.status, events.source_seq",
        )
        .bind(now)
        .bind(SEQUENCE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        done.iter()
            .map(|row| {
                Ok(Sequenced {
                    event_type: row.try_get("event_type")?,
                    status: row.try_get("status")?,
                    gathered: row.try_get::<Option<i64>, _>("source_seq")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    fn pool_usage(&self) -> PoolUsage {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolUsage {
            open: self.pool.size(),
            idle,
        }
    }

    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let mut sql =
            QueryBuilder::<DB>::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > "));
        sql.push_bind(query.after);
        if let Some(tenant) = &query.tenant {
            sql.push(" AND tenant_id = ").push_bind(tenant.clone());
        }
        if !query.types.is_empty() {
            sql.push(" AND event_type IN (");
            let mut types = sql.separated(", ");
            for event_type in &query.types {
                types.push_bind(event_type.clone());
            }
            sql.push(")");
        }
        sql.push(" ORDER BY seq LIMIT ").push_bind(query.limit);
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| event_from_row(row).map_err(StoreError::from))
            .collect()
    }

    async fn oldest_event(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(seq) AS oldest FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("oldest")?)
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Only a prefix of ids, up to the first one sequenced since
        // `before` (replicas' clocks may disagree a little), and never the
        // newest: a resume finds either every event after its id or a
        // refusal, never a hole.
        let done = sqlx::query(
            "DELETE FROM events WHERE seq < COALESCE( \
                 (SELECT MIN(seq) FROM events WHERE sequenced_at >= $1), \
                 (SELECT MAX(seq) FROM events)) \
             RETURNING seq",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?
        .len();
        Ok(done as u64)
    }

    async fn source_position(&self, source: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM event_sources WHERE source = $1")
            .bind(source.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("last_seq")?,
            None => 0,
        })
    }

    async fn gather_events(
        &self,
        source: &str,
        events: &[EventRecord],
        through: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for chunk in events.chunks(500) {
            let mut sql = QueryBuilder::<DB>::new(
                "INSERT INTO events (tenant_id, event_type, object_id, account_id, status, \
                 previous_status, parent_id, detail, source, source_seq, occurred_at) ",
            );
            sql.push_values(chunk, |mut row, event| {
                row.push_bind(event.tenant_id.clone())
                    .push_bind(event.event_type.clone())
                    .push_bind(event.object_id.clone())
                    .push_bind(event.account_id.clone())
                    .push_bind(event.status.clone())
                    .push_bind(event.previous_status.clone())
                    .push_bind(event.parent_id.clone())
                    .push_bind(event.detail.clone())
                    .push_bind(source.to_owned())
                    .push_bind(event.seq)
                    .push_bind(event.occurred_at);
            });
            sql.push(" ON CONFLICT DO NOTHING");
            sql.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO event_sources (source, last_seq) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET last_seq = excluded.last_seq \
             WHERE excluded.last_seq > event_sources.last_seq",
        )
        .bind(source.to_owned())
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

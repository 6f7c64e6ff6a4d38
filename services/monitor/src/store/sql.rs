//! The Monitor store in SQL, written once for both backends.
//!
//! Over 500 lines: one trait impl (cycles, shards with leases, evaluations in
//! bulk, flagged listings) that Rust does not let split across files.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::evaluation::Flag;
use rebalancer_kit::db::{DbErrorKind, Dec, claimed_id, classify, insert_claim};
use sqlx::{Database, Pool, QueryBuilder, Row};

use super::tickers;
use super::{
    Created, CycleRecord, CycleState, CycleTrigger, EvaluationRecord, IdempotencyClaim,
    MonitorStore, NewCycle, ShardCounts, ShardFailure, ShardRecord, StoreError,
};

/// The Monitor store over a PostgreSQL or SQLite pool.
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    #[must_use]
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    #[must_use]
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

const CYCLE_COLUMNS: &str = "id, trading_date, trigger_kind, state, dry_run, portfolio_id, account_ids_json, \
     shards_total, shards_done, accounts_evaluated, runs_created, errors, status_counts_json, error, created_at, \
     started_at, completed_at, trace_context";

const EVALUATION_COLUMNS: &str = "cycle_id, account_id, status, reason, portfolio_id, portfolio_version, equity, \
     cash, max_drift, total_drift, tickers_json, tickers, missing_json, run_id, run_type, run_note, evaluated_at";

/// Cycles probed per query when looking for an account's latest evaluation,
/// and how many such pages at most: an account not evaluated in the newest
/// 1,024 cycles (years of daily cycles) has no latest evaluation.
const LATEST_CYCLES_PAGE: i64 = 64;
const LATEST_CYCLES_PAGES: usize = 16;

/// Rows per multi-row insert (18 parameters each, far below both engines' limits).
const INSERT_CHUNK: usize = 400;

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode: {error}")))
}

fn unjson<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("cannot decode {text:?}: {error}")))
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// The cycle created under a claimed key, if any.
    async fn replay_cycle(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<CycleRecord>, StoreError> {
        match claimed_id::<DB>(&self.pool, tenant, claim).await? {
            Some(id) => self.get_cycle(tenant, &id).await,
            None => Ok(None),
        }
    }
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl MonitorStore for SqlStore<DB> {
    async fn create_cycle(
        &self,
        tenant: &str,
        cycle: NewCycle,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<CycleRecord>, StoreError> {
        if let Some(claim) = &claim
            && let Some(existing) = self.replay_cycle(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &cycle.id, cycle.now).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_cycle(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        let shards_total = i64::try_from(cycle.shards.len()).unwrap_or(i64::MAX);
        let inserted = sqlx::query(
            "INSERT INTO cycles (tenant_id, id, trading_date, trigger_kind, state, dry_run, portfolio_id, \
             account_ids_json, shards_total, shards_done, created_at, trace_context) VALUES ($1, $2, $3, $4, 'pending', \
             $5, $6, $7, $8, 0, $9, $10)",
        )
        .bind(tenant.to_owned())
        .bind(cycle.id.clone())
        .bind(cycle.trading_date.to_string())
        .bind(cycle.trigger.as_str().to_owned())
        .bind(cycle.dry_run)
        .bind(cycle.portfolio_id.clone())
        .bind(json(&cycle.account_ids)?)
        .bind(shards_total)
        .bind(cycle.now)
        .bind(cycle.trace_context.clone())
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && cycle.trigger == CycleTrigger::Scheduled
            {
                let sql = format!(
                    "SELECT {CYCLE_COLUMNS} FROM cycles WHERE tenant_id = $1 AND trading_date = $2 \
                     AND trigger_kind = 'scheduled'"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.to_owned())
                    .bind(cycle.trading_date.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                return Ok(Created::Replayed(cycle_from_row(&row)?));
            }
            return Err(error.into());
        }
        for (sequence, (after, before)) in (0_i32..).zip(&cycle.shards) {
            sqlx::query(
                "INSERT INTO shards (tenant_id, cycle_id, sequence, after_account, before_account, status) \
                 VALUES ($1, $2, $3, $4, $5, 'pending')",
            )
            .bind(tenant.to_owned())
            .bind(cycle.id.clone())
            .bind(sequence)
            .bind(after.clone())
            .bind(before.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_cycle(tenant, &cycle.id)
            .await?
            .map(Created::New)
            .ok_or_else(|| StoreError::Corrupt(format!("cycle {} vanished", cycle.id)))
    }

    async fn get_cycle(&self, tenant: &str, id: &str) -> Result<Option<CycleRecord>, StoreError> {
        let sql = format!("SELECT {CYCLE_COLUMNS} FROM cycles WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cycle_from_row).transpose()
    }

    async fn list_cycles(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CycleRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = after {
            query.push(" AND id < ").push_bind(after.to_owned());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(cycle_from_row).collect()
    }

    async fn scheduled_cycle(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Option<CycleRecord>, StoreError> {
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles WHERE tenant_id = $1 AND trading_date = $2 \
             AND trigger_kind = 'scheduled'"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(date.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cycle_from_row).transpose()
    }

    async fn latest_completed_cycle(
        &self,
        tenant: &str,
    ) -> Result<Option<CycleRecord>, StoreError> {
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles WHERE tenant_id = $1 AND state = 'completed' \
             AND portfolio_id IS NULL AND account_ids_json = '[]' ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cycle_from_row).transpose()
    }

    async fn claim_shard(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<(String, ShardRecord)>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let sql = format!(
            "UPDATE shards SET status = 'claimed', lease_owner = $1, lease_until = $3, attempts = attempts + 1 \
             WHERE (tenant_id, cycle_id, sequence) IN (SELECT tenant_id, cycle_id, sequence FROM shards \
             WHERE status = 'pending' OR (status = 'claimed' AND lease_until < $2) \
             ORDER BY cycle_id, sequence LIMIT 1 {}) \
             RETURNING tenant_id, cycle_id, sequence, after_account, before_account, attempts",
            DB::SKIP_LOCKED
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.to_owned())
            .bind(now)
            .bind(lease_until)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let tenant: String = row.try_get("tenant_id")?;
        let shard = ShardRecord {
            cycle_id: row.try_get("cycle_id")?,
            sequence: row.try_get("sequence")?,
            after_account: row.try_get("after_account")?,
            before_account: row.try_get("before_account")?,
            attempts: row.try_get("attempts")?,
        };
        sqlx::query(
            "UPDATE cycles SET state = 'running', started_at = $3 WHERE tenant_id = $1 AND id = $2 AND state = 'pending'",
        )
        .bind(tenant.clone())
        .bind(shard.cycle_id.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((tenant, shard)))
    }

    async fn write_evaluations(
        &self,
        tenant: &str,
        evaluations: &[EvaluationRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for chunk in evaluations.chunks(INSERT_CHUNK) {
            let mut query = QueryBuilder::<DB>::new(format!(
                "INSERT INTO evaluations (tenant_id, {EVALUATION_COLUMNS}) "
            ));
            let mut failed = None;
            query.push_values(chunk, |mut row, evaluation| {
                let missing = json(&evaluation.missing);
                if let Err(error) = &missing {
                    failed = Some(error.to_string());
                }
                row.push_bind(tenant.to_owned())
                    .push_bind(evaluation.cycle_id.clone())
                    .push_bind(evaluation.account_id.clone())
                    .push_bind(evaluation.flag.as_str().to_owned())
                    .push_bind(evaluation.reason.clone())
                    .push_bind(evaluation.portfolio_id.clone())
                    .push_bind(evaluation.portfolio_version)
                    .push_bind(Dec(evaluation.equity))
                    .push_bind(Dec(evaluation.cash))
                    .push_bind(Dec(evaluation.max_drift))
                    .push_bind(Dec(evaluation.total_drift))
                    .push_bind(String::new())
                    .push_bind(tickers::encode(&evaluation.tickers))
                    .push_bind(missing.unwrap_or_default())
                    .push_bind(evaluation.run_id.clone())
                    .push_bind(evaluation.run_type.clone())
                    .push_bind(evaluation.run_note.clone())
                    .push_bind(evaluation.evaluated_at);
            });
            if let Some(error) = failed {
                return Err(StoreError::Corrupt(error));
            }
            query.push(
                " ON CONFLICT (tenant_id, cycle_id, account_id) DO UPDATE SET status = excluded.status, \
                 reason = excluded.reason, portfolio_id = excluded.portfolio_id, \
                 portfolio_version = excluded.portfolio_version, equity = excluded.equity, cash = excluded.cash, \
                 max_drift = excluded.max_drift, total_drift = excluded.total_drift, \
                 tickers_json = excluded.tickers_json, tickers = excluded.tickers, missing_json = excluded.missing_json, \
                 run_id = excluded.run_id, run_type = excluded.run_type, run_note = excluded.run_note, \
                 evaluated_at = excluded.evaluated_at",
            );
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_shard(
        &self,
        tenant: &str,
        shard: &ShardRecord,
        owner: &str,
        counts: ShardCounts,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let done = sqlx::query(
            "UPDATE shards SET status = 'done', lease_owner = NULL WHERE tenant_id = $1 AND cycle_id = $2 \
             AND sequence = $3 AND status = 'claimed' AND lease_owner = $4 RETURNING sequence",
        )
        .bind(tenant.to_owned())
        .bind(shard.cycle_id.clone())
        .bind(shard.sequence)
        .bind(owner.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            // Another replica took the shard over after our lease ended.
            return Ok(false);
        }
        let row = sqlx::query(
            "UPDATE cycles SET shards_done = shards_done + 1, accounts_evaluated = accounts_evaluated + $3, \
             runs_created = runs_created + $4, errors = errors + $5 WHERE tenant_id = $1 AND id = $2 \
             RETURNING shards_done, shards_total",
        )
        .bind(tenant.to_owned())
        .bind(shard.cycle_id.clone())
        .bind(counts.evaluated)
        .bind(counts.runs_created)
        .bind(counts.errors)
        .fetch_one(&mut *tx)
        .await?;
        let shards_done: i64 = row.try_get("shards_done")?;
        let shards_total: i64 = row.try_get("shards_total")?;
        if shards_done >= shards_total {
            let rows = sqlx::query(
                "SELECT status, COUNT(*) AS n FROM evaluations WHERE tenant_id = $1 AND cycle_id = $2 GROUP BY status",
            )
            .bind(tenant.to_owned())
            .bind(shard.cycle_id.clone())
            .fetch_all(&mut *tx)
            .await?;
            let mut counts = BTreeMap::new();
            for row in &rows {
                let status: String = row.try_get("status")?;
                let n: i64 = row.try_get("n")?;
                counts.insert(status, n);
            }
            sqlx::query(
                "UPDATE cycles SET state = 'completed', completed_at = $3, status_counts_json = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND state <> 'failed'",
            )
            .bind(tenant.to_owned())
            .bind(shard.cycle_id.clone())
            .bind(now)
            .bind(json(&counts)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_shard(
        &self,
        tenant: &str,
        shard: &ShardRecord,
        owner: &str,
        failure: ShardFailure<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // Retried once the lease (shortened to the back-off) ends.
        sqlx::query(
            "UPDATE shards SET lease_owner = NULL, lease_until = $5 WHERE tenant_id = $1 AND cycle_id = $2 \
             AND sequence = $3 AND lease_owner = $4 AND status = 'claimed'",
        )
        .bind(tenant.to_owned())
        .bind(shard.cycle_id.clone())
        .bind(shard.sequence)
        .bind(owner.to_owned())
        .bind(failure.retry_at)
        .execute(&mut *tx)
        .await?;
        if failure.give_up {
            sqlx::query(
                "UPDATE shards SET status = 'done', lease_owner = NULL WHERE tenant_id = $1 AND cycle_id = $2 \
                 AND status IN ('pending', 'claimed')",
            )
            .bind(tenant.to_owned())
            .bind(shard.cycle_id.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE cycles SET state = 'failed', error = $3, completed_at = $4 WHERE tenant_id = $1 \
                 AND id = $2 AND state IN ('pending', 'running')",
            )
            .bind(tenant.to_owned())
            .bind(shard.cycle_id.clone())
            .bind(failure.error.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("UPDATE cycles SET error = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_owned())
                .bind(shard.cycle_id.clone())
                .bind(failure.error.to_owned())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_evaluation(
        &self,
        tenant: &str,
        account_id: &str,
        cycle_id: Option<&str>,
    ) -> Result<Option<EvaluationRecord>, StoreError> {
        let of_account = || {
            let mut query = QueryBuilder::<DB>::new(format!(
                "SELECT {EVALUATION_COLUMNS} FROM evaluations WHERE tenant_id = "
            ));
            query.push_bind(tenant.to_owned());
            query
                .push(" AND account_id = ")
                .push_bind(account_id.to_owned());
            query
        };
        if let Some(cycle_id) = cycle_id {
            let mut query = of_account();
            query
                .push(" AND cycle_id = ")
                .push_bind(cycle_id.to_owned());
            let row = query.build().fetch_optional(&self.pool).await?;
            return row.as_ref().map(evaluation_from_row).transpose();
        }
        // The latest: cycles newest first (ids are time-ordered), a page at a
        // time, one primary-key probe per cycle. No index by account: it cost
        // a third of every evaluation's insert, a million a day.
        let mut before: Option<String> = None;
        for _ in 0..LATEST_CYCLES_PAGES {
            let mut cycles = QueryBuilder::<DB>::new("SELECT id FROM cycles WHERE tenant_id = ");
            cycles.push_bind(tenant.to_owned());
            if let Some(before) = &before {
                cycles.push(" AND id < ").push_bind(before.clone());
            }
            cycles
                .push(" ORDER BY id DESC LIMIT ")
                .push_bind(LATEST_CYCLES_PAGE);
            let ids: Vec<String> = cycles
                .build()
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let Some(oldest) = ids.last().cloned() else {
                return Ok(None);
            };
            let mut query = of_account();
            query.push(" AND cycle_id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            query.push(") ORDER BY cycle_id DESC LIMIT 1");
            if let Some(row) = query.build().fetch_optional(&self.pool).await? {
                return evaluation_from_row(&row).map(Some);
            }
            before = Some(oldest);
        }
        Ok(None)
    }

    async fn list_evaluations(
        &self,
        tenant: &str,
        cycle_id: &str,
        flags: &[Flag],
        portfolio_id: Option<&str>,
        after_account: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EvaluationRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {EVALUATION_COLUMNS} FROM evaluations WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        query
            .push(" AND cycle_id = ")
            .push_bind(cycle_id.to_owned());
        if !flags.is_empty() {
            query.push(" AND status IN (");
            let mut list = query.separated(", ");
            for flag in flags {
                list.push_bind(flag.as_str().to_owned());
            }
            query.push(")");
        }
        if let Some(portfolio_id) = portfolio_id {
            query
                .push(" AND portfolio_id = ")
                .push_bind(portfolio_id.to_owned());
        }
        if let Some(after) = after_account {
            query.push(" AND account_id > ").push_bind(after.to_owned());
        }
        query
            .push(" ORDER BY account_id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(evaluation_from_row).collect()
    }

    async fn flag_counts(
        &self,
        tenant: &str,
        cycle_id: &str,
        portfolio_id: Option<&str>,
    ) -> Result<Vec<(Option<String>, Flag, i64)>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT portfolio_id, status, COUNT(*) AS n FROM evaluations WHERE tenant_id = ",
        );
        query.push_bind(tenant.to_owned());
        query
            .push(" AND cycle_id = ")
            .push_bind(cycle_id.to_owned());
        if let Some(portfolio_id) = portfolio_id {
            query
                .push(" AND portfolio_id = ")
                .push_bind(portfolio_id.to_owned());
        }
        query.push(" GROUP BY portfolio_id, status ORDER BY portfolio_id, status");
        let rows = query.build().fetch_all(&self.pool).await?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: String = row.try_get("status")?;
            let flag = Flag::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("flag {status:?}")))?;
            counts.push((row.try_get("portfolio_id")?, flag, row.try_get("n")?));
        }
        Ok(counts)
    }

    async fn account_boundaries(
        &self,
        tenant: &str,
        cycle_id: &str,
        every: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT n, account_id FROM (SELECT account_id, ROW_NUMBER() OVER (ORDER BY account_id) AS n \
             FROM evaluations WHERE tenant_id = $1 AND cycle_id = $2) numbered \
             WHERE n > $3 - 1 AND (n % $3 = 0 OR n % $3 = 1) AND n > 1 ORDER BY n",
        )
        .bind(tenant.to_owned())
        .bind(cycle_id.to_owned())
        .bind(every.max(2))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("n")?, row.try_get("account_id")?)))
            .collect()
    }
}

#[rebalancer_kit::sql_row]
fn cycle_from_row<R>(row: &R) -> Result<CycleRecord, StoreError> {
    let trading_date: String = row.try_get("trading_date")?;
    let trigger: String = row.try_get("trigger_kind")?;
    let state: String = row.try_get("state")?;
    let account_ids: String = row.try_get("account_ids_json")?;
    let counts: String = row.try_get("status_counts_json")?;
    Ok(CycleRecord {
        id: row.try_get("id")?,
        trading_date: NaiveDate::parse_from_str(&trading_date, "%Y-%m-%d")
            .map_err(|_| StoreError::Corrupt(format!("trading date {trading_date:?}")))?,
        trigger: CycleTrigger::parse(&trigger)
            .ok_or_else(|| StoreError::Corrupt(format!("trigger {trigger:?}")))?,
        state: CycleState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?,
        dry_run: row.try_get("dry_run")?,
        portfolio_id: row.try_get("portfolio_id")?,
        account_ids: unjson(&account_ids)?,
        shards_total: row.try_get("shards_total")?,
        shards_done: row.try_get("shards_done")?,
        accounts_evaluated: row.try_get("accounts_evaluated")?,
        runs_created: row.try_get("runs_created")?,
        errors: row.try_get("errors")?,
        status_counts: unjson(&counts)?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        trace_context: row.try_get("trace_context")?,
    })
}

#[rebalancer_kit::sql_row]
fn evaluation_from_row<R>(row: &R) -> Result<EvaluationRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let equity: Dec = row.try_get("equity")?;
    let cash: Dec = row.try_get("cash")?;
    let max_drift: Dec = row.try_get("max_drift")?;
    let total_drift: Dec = row.try_get("total_drift")?;
    let tickers_json: String = row.try_get("tickers_json")?;
    let tickers: String = row.try_get("tickers")?;
    let missing: String = row.try_get("missing_json")?;
    Ok(EvaluationRecord {
        cycle_id: row.try_get("cycle_id")?,
        account_id: row.try_get("account_id")?,
        flag: Flag::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("flag {status:?}")))?,
        reason: row.try_get("reason")?,
        portfolio_id: row.try_get("portfolio_id")?,
        portfolio_version: row.try_get("portfolio_version")?,
        equity: equity.0,
        cash: cash.0,
        max_drift: max_drift.0,
        total_drift: total_drift.0,
        // Rows from before the compact form keep their JSON.
        tickers: if tickers_json.is_empty() {
            tickers::decode(&tickers)?
        } else {
            unjson(&tickers_json)?
        },
        missing: unjson(&missing)?,
        run_id: row.try_get("run_id")?,
        run_type: row.try_get("run_type")?,
        run_note: row.try_get("run_note")?,
        evaluated_at: row.try_get("evaluated_at")?,
    })
}

//! Batches in SQL: rebalance requests with their runs, counts and errors.

use chrono::{DateTime, Utc};
use rebalancer_domain::run::RunStatus;
use rebalancer_kit::db::{DbErrorKind, claimed_id, classify, insert_claim};
use sqlx::{QueryBuilder, Row};

use crate::runs::sql::{json, moving_to, parsed, unjson};
use crate::runs::store::{BatchRecord, BatchStatus, BatchStore};
use crate::store::{Created, IdempotencyClaim, PageRequest, SqlStore, StoreError};
use rebalancer_domain::run::{InitiatedFrom, RunKind};

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl BatchStore for SqlStore<DB> {
    async fn create_batch(
        &self,
        tenant: &str,
        batch: BatchRecord,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<BatchRecord>, StoreError> {
        if let Some(claim) = &claim
            && let Some(existing) = self.replay_batch(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &batch.id, batch.created_at).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_batch(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        sqlx::query(
            "INSERT INTO batches (tenant_id, id, portfolio_id, kind, status, algorithm_json, initiated_from, \
             created_by, reason, account_errors_json, revision, created_at, transmitted_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(tenant.to_owned())
        .bind(batch.id.clone())
        .bind(batch.portfolio_id.clone())
        .bind(batch.kind.as_str().to_owned())
        .bind(batch.status.as_str().to_owned())
        .bind(json(&batch.algorithm)?)
        .bind(batch.initiated_from.as_str().to_owned())
        .bind(batch.created_by.clone())
        .bind(batch.reason.clone())
        .bind(json(&batch.account_errors)?)
        .bind(batch.revision)
        .bind(batch.created_at)
        .bind(batch.transmitted_at)
        .bind(batch.completed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(batch))
    }

    async fn get_batch(&self, tenant: &str, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    async fn list_batches(
        &self,
        tenant: &str,
        portfolio_id: Option<&str>,
        status: Option<BatchStatus>,
        page: &PageRequest,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(portfolio_id) = portfolio_id {
            query
                .push(" AND portfolio_id = ")
                .push_bind(portfolio_id.to_owned());
        }
        if let Some(status) = status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(batch_from_row).collect()
    }

    async fn update_batch(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<i64>,
        status: Option<BatchStatus>,
        algorithm: Option<rebalancer_domain::algo::Algorithm>,
        now: DateTime<Utc>,
    ) -> Result<BatchRecord, StoreError> {
        let mut query = QueryBuilder::<DB>::new("UPDATE batches SET revision = revision + 1");
        if let Some(status) = status {
            query
                .push(", status = ")
                .push_bind(status.as_str().to_owned());
            match status {
                BatchStatus::InProgress => {
                    query.push(", transmitted_at = ").push_bind(now);
                }
                BatchStatus::Completed | BatchStatus::Canceled => {
                    query.push(", completed_at = ").push_bind(now);
                }
                BatchStatus::Proposed => {}
            }
        }
        if let Some(algorithm) = &algorithm {
            query
                .push(", algorithm_json = ")
                .push_bind(json(algorithm)?);
        }
        query
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned());
        query.push(" AND id = ").push_bind(id.to_owned());
        if let Some(revision) = expected_revision {
            query.push(" AND revision = ").push_bind(revision);
        }
        query.push(format!(" RETURNING {BATCH_COLUMNS}"));
        let row = query.build().fetch_optional(self.pool()).await?;
        match row {
            Some(row) => batch_from_row(&row),
            None => Err(match self.get_batch(tenant, id).await? {
                None => StoreError::NotFound(format!("batch {id} not found")),
                Some(current) => StoreError::StaleRevision(format!(
                    "batch {id} changed since etag r{} (now r{})",
                    expected_revision.unwrap_or_default(),
                    current.revision
                )),
            }),
        }
    }

    async fn batch_counts(
        &self,
        tenant: &str,
        batch_id: &str,
    ) -> Result<Vec<(RunStatus, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM runs WHERE tenant_id = $1 AND batch_id = $2 GROUP BY status",
        )
        .bind(tenant.to_owned())
        .bind(batch_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: String = row.try_get("status")?;
            counts.push((
                parsed(RunStatus::parse(&status), "run status", &status)?,
                row.try_get("n")?,
            ));
        }
        Ok(counts)
    }

    async fn set_batch_errors(
        &self,
        tenant: &str,
        id: &str,
        errors: &[String],
    ) -> Result<BatchRecord, StoreError> {
        let sql = format!(
            "UPDATE batches SET account_errors_json = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {BATCH_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .bind(json(&errors)?)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("batch {id} not found")))?;
        batch_from_row(&row)
    }

    async fn queue_batch_runs(
        &self,
        tenant: &str,
        batch_id: &str,
        algorithm: &rebalancer_domain::algo::Algorithm,
        approved_by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE runs SET status = 'queued', algorithm_json = $3, approved_by = $4, approved_at = $5, \
             updated_at = $5, revision = revision + 1 WHERE tenant_id = $1 AND batch_id = $2 \
             AND {} RETURNING id",
            moving_to(RunStatus::Queued)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(batch_id.to_owned())
            .bind(json(algorithm)?)
            .bind(approved_by.to_owned())
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_batch(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<BatchRecord>, StoreError> {
        match claimed_id::<DB>(self.pool(), tenant, claim).await? {
            Some(id) => self.get_batch(tenant, &id).await,
            None => Ok(None),
        }
    }
}

#[rebalancer_kit::sql_row]
fn batch_from_row<R>(row: &R) -> Result<BatchRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let initiated: String = row.try_get("initiated_from")?;
    let algorithm: String = row.try_get("algorithm_json")?;
    let errors: String = row.try_get("account_errors_json")?;
    Ok(BatchRecord {
        id: row.try_get("id")?,
        portfolio_id: row.try_get("portfolio_id")?,
        kind: parsed(RunKind::parse(&kind), "run kind", &kind)?,
        status: parsed(BatchStatus::parse(&status), "batch status", &status)?,
        algorithm: unjson(&algorithm)?,
        initiated_from: parsed(
            InitiatedFrom::parse(&initiated),
            "initiated from",
            &initiated,
        )?,
        created_by: row.try_get("created_by")?,
        reason: row.try_get("reason")?,
        account_errors: unjson(&errors)?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        transmitted_at: row.try_get("transmitted_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

const BATCH_COLUMNS: &str = "id, portfolio_id, kind, status, algorithm_json, initiated_from, created_by, reason, \
     account_errors_json, revision, created_at, transmitted_at, completed_at";

//! Assignments of accounts to targets.

use chrono::{DateTime, Utc};
use rebalancer_kit::db::{DbErrorKind, claimed_id, classify, insert_claim};
use sqlx::{QueryBuilder, Row};

use super::SqlStore;
use crate::store::{
    ApprovalMode, AssignmentChange, AssignmentFilter, AssignmentRecord, AssignmentStatus,
    AssignmentStore, AuditEntry, Created, IdempotencyClaim, NewAssignment, StoreError,
};

const ASSIGNMENT_COLUMNS: &str = "id, account_id, portfolio_id, rebalancing_enabled, approval_mode, status, \
     revision, created_at, updated_at, target_changed_at";

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl AssignmentStore for SqlStore<DB> {
    async fn assign(
        &self,
        tenant: &str,
        assignment: NewAssignment,
        claim: Option<IdempotencyClaim>,
        audit: AuditEntry,
    ) -> Result<Created<AssignmentRecord>, StoreError> {
        if let Some(claim) = &claim
            && let Some(existing) = self.replay_assignment(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let current = self
            .assignment_of_account(tenant, &assignment.account_id)
            .await?;
        if let Some(current) = &current
            && current.status == AssignmentStatus::Active
        {
            // A retry overlapping the first call can find the assignment
            // that call just made: it gets that call's answer.
            if let Some(claim) = &claim
                && let Some(existing) = self.replay_assignment(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(StoreError::Conflict(format!(
                "account {} already has an active assignment ({}) to portfolio {}",
                assignment.account_id,
                current.id,
                current.portfolio_id.as_deref().unwrap_or("")
            )));
        }
        let id = current
            .as_ref()
            .map_or_else(|| assignment.id.clone(), |c| c.id.clone());
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &id, assignment.now).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_assignment(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        let written = if current.is_some() {
            // Reactivate the account's unassigned row (only if still unassigned).
            let sql = format!(
                "UPDATE assignments SET portfolio_id = $3, rebalancing_enabled = $4, approval_mode = $5, \
                 status = 'active', revision = revision + 1, updated_at = $6, target_changed_at = $6 \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'unassigned' RETURNING {ASSIGNMENT_COLUMNS}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_owned())
                .bind(id.clone())
                .bind(assignment.portfolio_id.clone())
                .bind(assignment.rebalancing_enabled)
                .bind(assignment.approval_mode.as_str().to_owned())
                .bind(assignment.now)
                .fetch_optional(&mut *tx)
                .await
        } else {
            let sql = format!(
                "INSERT INTO assignments (tenant_id, id, account_id, portfolio_id, rebalancing_enabled, approval_mode, \
                 status, revision, created_at, updated_at, target_changed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', 1, $7, $7, $7) RETURNING {ASSIGNMENT_COLUMNS}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_owned())
                .bind(id.clone())
                .bind(assignment.account_id.clone())
                .bind(assignment.portfolio_id.clone())
                .bind(assignment.rebalancing_enabled)
                .bind(assignment.approval_mode.as_str().to_owned())
                .bind(assignment.now)
                .fetch_optional(&mut *tx)
                .await
        };
        let row = match written {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Err(StoreError::Conflict(format!(
                    "account {} was assigned concurrently",
                    assignment.account_id
                )));
            }
            Err(error) if classify(&error) == DbErrorKind::UniqueViolation => {
                return Err(StoreError::Conflict(format!(
                    "account {} already has an active assignment",
                    assignment.account_id
                )));
            }
            Err(error) if classify(&error) == DbErrorKind::ForeignKeyViolation => {
                return Err(StoreError::NotFound(format!(
                    "portfolio {} not found",
                    assignment.portfolio_id
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let record = assignment_from_row(&row)?;
        Self::insert_audit(
            &mut tx,
            tenant,
            "assignment",
            &record.id,
            &audit,
            assignment.now,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn get_assignment(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AssignmentRecord>, StoreError> {
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(assignment_from_row).transpose()
    }

    async fn assignment_of_account(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Option<AssignmentRecord>, StoreError> {
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE tenant_id = $1 AND account_id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(account_id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(assignment_from_row).transpose()
    }

    async fn list_assignments(
        &self,
        tenant: &str,
        filter: &AssignmentFilter,
        after_account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = after_account_id {
            query.push(" AND account_id > ").push_bind(after.to_owned());
        }
        if let Some(before) = &filter.before_account_id {
            query.push(" AND account_id < ").push_bind(before.clone());
        }
        if let Some(account_id) = &filter.account_id {
            query
                .push(" AND account_id = ")
                .push_bind(account_id.clone());
        }
        if !filter.account_ids.is_empty() {
            query.push(" AND account_id IN (");
            let mut ids = query.separated(", ");
            for id in &filter.account_ids {
                ids.push_bind(id.clone());
            }
            query.push(")");
        }
        if let Some(portfolio_id) = &filter.portfolio_id {
            query
                .push(" AND portfolio_id = ")
                .push_bind(portfolio_id.clone());
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        if filter.monitored_only {
            query
                .push(" AND (status = 'active' OR rebalancing_enabled = ")
                .push_bind(true)
                .push(")");
        }
        query
            .push(" ORDER BY account_id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(assignment_from_row).collect()
    }

    async fn update_assignment(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: i64,
        change: AssignmentChange,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<AssignmentRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let mut query = QueryBuilder::<DB>::new(
            "UPDATE assignments SET revision = revision + 1, updated_at = ",
        );
        query.push_bind(now);
        if let Some(portfolio_id) = &change.portfolio_id {
            query
                .push(", portfolio_id = ")
                .push_bind(portfolio_id.clone());
        }
        if let Some(enabled) = change.rebalancing_enabled {
            query.push(", rebalancing_enabled = ").push_bind(enabled);
        }
        if let Some(mode) = change.approval_mode {
            query
                .push(", approval_mode = ")
                .push_bind(mode.as_str().to_owned());
        }
        if let Some(status) = change.status {
            query
                .push(", status = ")
                .push_bind(status.as_str().to_owned());
        }
        if change.target_changed {
            query.push(", target_changed_at = ").push_bind(now);
        }
        query
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND id = ")
            .push_bind(id.to_owned())
            .push(" AND revision = ")
            .push_bind(expected_revision)
            .push(format!(" RETURNING {ASSIGNMENT_COLUMNS}"));
        let row = match query.build().fetch_optional(&mut *tx).await {
            Ok(row) => row,
            Err(error) if classify(&error) == DbErrorKind::ForeignKeyViolation => {
                return Err(StoreError::NotFound("portfolio not found".to_owned()));
            }
            Err(error) => return Err(error.into()),
        };
        let Some(row) = row else {
            drop(tx);
            return Err(match self.get_assignment(tenant, id).await? {
                None => StoreError::NotFound(format!("assignment {id} not found")),
                Some(current) => StoreError::StaleRevision(format!(
                    "assignment {id} changed since etag r{expected_revision} (now r{})",
                    current.revision
                )),
            });
        };
        let record = assignment_from_row(&row)?;
        Self::insert_audit(&mut tx, tenant, "assignment", id, &audit, now).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn count_active_assignments(
        &self,
        tenant: &str,
        portfolio_id: &str,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM assignments WHERE tenant_id = $1 AND portfolio_id = $2 AND status = 'active'",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_assignment(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<AssignmentRecord>, StoreError> {
        match claimed_id::<DB>(self.pool(), tenant, claim).await? {
            Some(id) => self.get_assignment(tenant, &id).await,
            None => Ok(None),
        }
    }
}

#[rebalancer_kit::sql_row]
fn assignment_from_row<R>(row: &R) -> Result<AssignmentRecord, StoreError> {
    let mode: String = row.try_get("approval_mode")?;
    let status: String = row.try_get("status")?;
    Ok(AssignmentRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        portfolio_id: row.try_get("portfolio_id")?,
        rebalancing_enabled: row.try_get("rebalancing_enabled")?,
        approval_mode: ApprovalMode::parse(&mode)
            .ok_or_else(|| StoreError::Corrupt(format!("approval mode {mode:?}")))?,
        status: AssignmentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("assignment status {status:?}")))?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        target_changed_at: row.try_get("target_changed_at")?,
    })
}

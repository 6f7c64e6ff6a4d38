//! The Target store in SQL, written once for both backends: the SQL is the
//! common subset of PostgreSQL and SQLite; decimals go through
//! [`Dec`](rebalancer_kit::db::Dec) (NUMERIC on PostgreSQL, TEXT on SQLite).

mod assignments;
mod audit;
mod portfolio_rows;
mod portfolios;
mod tenants;

use chrono::{DateTime, Utc};
use rebalancer_kit::db::new_id;
use sqlx::{Database, Pool};

use crate::store::{AuditEntry, StoreError};

/// The Target store over a PostgreSQL or SQLite pool.
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

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Appends one event to the audit trail, inside the change's transaction.
    pub(crate) async fn insert_audit(
        conn: &mut DB::Connection,
        tenant: &str,
        resource_type: &str,
        resource_id: &str,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, id, resource_type, resource_id, action, actor, request_id, \
             occurred_at, details_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.to_owned())
        .bind(new_id())
        .bind(resource_type.to_owned())
        .bind(resource_id.to_owned())
        .bind(audit.action.to_owned())
        .bind(audit.actor.clone())
        .bind(audit.request_id.clone())
        .bind(now)
        .bind(audit.details.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

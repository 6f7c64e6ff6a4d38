//! The tenant registry.

use chrono::{DateTime, Utc};
use rebalancer_kit::db::{DbErrorKind, classify};
use sqlx::Row;

use super::SqlStore;
use crate::store::{AuditEntry, Created, StoreError, TenantRecord, TenantSettings, TenantStore};

const TENANT_COLUMNS: &str = "tenant_id, display_name, monitor_enabled, monitor_run_at, four_eyes, \
     revision, created_at, updated_at, updated_by";

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl TenantStore for SqlStore<DB> {
    async fn create_tenant(
        &self,
        tenant_id: &str,
        settings: TenantSettings,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<Created<TenantRecord>, StoreError> {
        let same = |existing: TenantRecord| {
            if existing.settings == settings {
                Ok(Created::Replayed(existing))
            } else {
                Err(StoreError::Conflict(format!(
                    "tenant {tenant_id} is already registered with other settings"
                )))
            }
        };
        if let Some(existing) = self.get_tenant(tenant_id).await? {
            return same(existing);
        }
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let sql = format!(
            "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7) \
             RETURNING {TENANT_COLUMNS}"
        );
        let written = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_owned())
            .bind(settings.display_name.clone())
            .bind(settings.monitor_enabled)
            .bind(settings.monitor_run_at.clone())
            .bind(settings.four_eyes)
            .bind(now)
            .bind(audit.actor.clone())
            .fetch_one(&mut *tx)
            .await;
        let row = match written {
            Ok(row) => row,
            Err(error) if classify(&error) == DbErrorKind::UniqueViolation => {
                drop(tx);
                let existing = self.get_tenant(tenant_id).await?.ok_or_else(|| {
                    StoreError::Conflict(format!("tenant {tenant_id} was registered concurrently"))
                })?;
                return same(existing);
            }
            Err(error) => return Err(error.into()),
        };
        let record = tenant_from_row(&row)?;
        Self::insert_audit(&mut tx, tenant_id, "tenant", tenant_id, &audit, now).await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn get_tenant(&self, tenant_id: &str) -> Result<Option<TenantRecord>, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        monitor_enabled_only: bool,
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let filter = if monitor_enabled_only {
            " AND monitor_enabled"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant_id > $1{filter} \
             ORDER BY tenant_id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or_default().to_owned())
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn put_tenant(
        &self,
        tenant_id: &str,
        settings: TenantSettings,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<TenantRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let current: Option<i64> = sqlx::query("SELECT revision FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("revision"))
            .transpose()?;
        if let Some(expected) = expected_revision
            && expected != current.unwrap_or(0)
        {
            return Err(StoreError::StaleRevision(format!(
                "tenant {tenant_id} changed since etag r{expected} (now r{})",
                current.unwrap_or(0)
            )));
        }
        let sql = if current.is_some() {
            format!(
                "UPDATE tenants SET display_name = $2, monitor_enabled = $3, monitor_run_at = $4, \
                 four_eyes = $5, revision = revision + 1, updated_at = $6, updated_by = $7 \
                 WHERE tenant_id = $1 RETURNING {TENANT_COLUMNS}"
            )
        } else {
            format!(
                "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7) \
                 RETURNING {TENANT_COLUMNS}"
            )
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_owned())
            .bind(settings.display_name.clone())
            .bind(settings.monitor_enabled)
            .bind(settings.monitor_run_at.clone())
            .bind(settings.four_eyes)
            .bind(now)
            .bind(audit.actor.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| match classify(&error) {
                DbErrorKind::UniqueViolation => StoreError::StaleRevision(format!(
                    "tenant {tenant_id} was registered concurrently"
                )),
                _ => error.into(),
            })?;
        let record = tenant_from_row(&row)?;
        Self::insert_audit(&mut tx, tenant_id, "tenant", tenant_id, &audit, now).await?;
        tx.commit().await?;
        Ok(record)
    }
}

#[rebalancer_kit::sql_row]
fn tenant_from_row<R>(row: &R) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        tenant_id: row.try_get("tenant_id")?,
        settings: TenantSettings {
            display_name: row.try_get("display_name")?,
            monitor_enabled: row.try_get("monitor_enabled")?,
            monitor_run_at: row.try_get("monitor_run_at")?,
            four_eyes: row.try_get("four_eyes")?,
        },
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

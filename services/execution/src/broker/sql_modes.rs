//! Tenants' trading modes (migration 0010).

use sqlx::Row;

use crate::broker::brokers::{TradingMode, TradingModeRecord, TradingModeStore};
use crate::store::SqlStore;
use crate::store::StoreError;

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl TradingModeStore for SqlStore<DB> {
    async fn trading_mode(&self, tenant: &str) -> Result<Option<TradingModeRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT mode, changed_by, changed_at FROM trading_modes WHERE tenant_id = $1",
        )
        .bind(tenant.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mode: String = row.try_get("mode")?;
        Ok(Some(TradingModeRecord {
            mode: TradingMode::parse(&mode)
                .ok_or_else(|| StoreError::Corrupt(format!("trading mode {mode:?}")))?,
            changed_by: row.try_get("changed_by")?,
            changed_at: row.try_get("changed_at")?,
        }))
    }

    async fn set_trading_mode(
        &self,
        tenant: &str,
        record: TradingModeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trading_modes (tenant_id, mode, changed_by, changed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET mode = excluded.mode, changed_by = excluded.changed_by, \
             changed_at = excluded.changed_at",
        )
        .bind(tenant.to_owned())
        .bind(record.mode.as_str().to_owned())
        .bind(record.changed_by)
        .bind(record.changed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

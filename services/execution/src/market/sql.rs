//! Asset flag overrides, and the tenants to notify of asset changes.

use sqlx::Row;

use crate::market::store::{AssetOverride, AssetStore};
use crate::store::SqlStore;
use crate::store::StoreError;

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl AssetStore for SqlStore<DB> {
    async fn asset_overrides(&self) -> Result<Vec<AssetOverride>, StoreError> {
        let rows = sqlx::query(
            "SELECT symbol, active, tradable, fractionable, reason, actor, updated_at FROM asset_overrides ORDER BY symbol",
        )
        .fetch_all(self.pool())
        .await?;
        let mut overrides = Vec::with_capacity(rows.len());
        for row in &rows {
            overrides.push(AssetOverride {
                symbol: row.try_get("symbol")?,
                active: row.try_get("active")?,
                tradable: row.try_get("tradable")?,
                fractionable: row.try_get("fractionable")?,
                reason: row.try_get("reason")?,
                actor: row.try_get("actor")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        Ok(overrides)
    }

    async fn put_asset_override(&self, asset: AssetOverride) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO asset_overrides (symbol, active, tradable, fractionable, reason, actor, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (symbol) DO UPDATE SET active = excluded.active, tradable = excluded.tradable, \
             fractionable = excluded.fractionable, reason = excluded.reason, actor = excluded.actor, \
             updated_at = excluded.updated_at",
        )
        .bind(asset.symbol)
        .bind(asset.active)
        .bind(asset.tradable)
        .bind(asset.fractionable)
        .bind(asset.reason)
        .bind(asset.actor)
        .bind(asset.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT tenant_id FROM accounts ORDER BY tenant_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get("tenant_id")?))
            .collect()
    }
}

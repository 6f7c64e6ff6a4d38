//! The order book in SQL, as users read it.

use rebalancer_domain::trades::Side;
use rebalancer_kit::db::Dec;
use sqlx::{QueryBuilder, Row};

use crate::blocks::sql::{BLOCK_COLUMNS, CHILD_COLUMNS};
use crate::blocks::sql_rows::{block_from_row, child_from_row};
use crate::blocks::store::{
    AllocationRecord, BlockFilter, BlockRecord, ChildOrderRecord, FillRecord, OrderBook,
    OrderFilter,
};
use crate::runs::sql::{ORDER_COLUMNS, order_from_row};
use crate::runs::store::OrderRecord;
use crate::store::{PageRequest, SqlStore, StoreError};

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl OrderBook for SqlStore<DB> {
    async fn get_order(&self, tenant: &str, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn list_orders(
        &self,
        tenant: &str,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(run_id) = &filter.run_id {
            query.push(" AND run_id = ").push_bind(run_id.clone());
        }
        if let Some(account_id) = &filter.account_id {
            query
                .push(" AND account_id = ")
                .push_bind(account_id.clone());
        }
        if let Some(block) = &filter.block_order_id {
            query
                .push(" AND block_order_id = ")
                .push_bind(block.clone());
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn list_blocks(
        &self,
        tenant: &str,
        filter: &BlockFilter,
        page: &PageRequest,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {BLOCK_COLUMNS} FROM block_orders WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(batch_id) = &filter.batch_id {
            query.push(" AND batch_id = ").push_bind(batch_id.clone());
        }
        if let Some(transmission_id) = &filter.transmission_id {
            query
                .push(" AND transmission_id = ")
                .push_bind(transmission_id.clone());
        }
        if let Some(symbol) = &filter.symbol {
            query.push(" AND symbol = ").push_bind(symbol.clone());
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(block_from_row).collect()
    }

    async fn list_child_orders(
        &self,
        tenant: &str,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ChildOrderRecord>, StoreError> {
        let sql = format!(
            "SELECT {CHILD_COLUMNS} FROM child_orders WHERE tenant_id = $1 AND block_order_id = $2 AND id > $3 \
             ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(block_id.to_owned())
            .bind(page.after.clone().unwrap_or_default())
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(child_from_row).collect()
    }

    async fn list_fills(
        &self,
        tenant: &str,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<FillRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, child_order_id, block_order_id, quantity, price, executed_at, crossed FROM fills \
             WHERE tenant_id = $1 AND block_order_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(tenant.to_owned())
        .bind(block_id.to_owned())
        .bind(page.after.clone().unwrap_or_default())
        .bind(i64::from(page.limit))
        .fetch_all(self.pool())
        .await?;
        let mut fills = Vec::with_capacity(rows.len());
        for row in &rows {
            let quantity: Dec = row.try_get("quantity")?;
            let price: Dec = row.try_get("price")?;
            fills.push(FillRecord {
                id: row.try_get("id")?,
                child_order_id: row.try_get("child_order_id")?,
                block_order_id: row.try_get("block_order_id")?,
                quantity: quantity.0,
                price: price.0,
                executed_at: row.try_get("executed_at")?,
                crossed: row.try_get("crossed")?,
            });
        }
        Ok(fills)
    }

    async fn list_allocations(
        &self,
        tenant: &str,
        block_id: Option<&str>,
        order_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<AllocationRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT a.fill_id, a.order_id, a.account_id, a.symbol, a.side, a.quantity, a.price, a.amount \
             FROM allocations a LEFT JOIN fills f ON f.tenant_id = a.tenant_id AND f.id = a.fill_id WHERE a.tenant_id = ",
        );
        query.push_bind(tenant.to_owned());
        if let Some(block_id) = block_id {
            // The block's fills, and its average-price corrections.
            query
                .push(" AND (f.block_order_id = ")
                .push_bind(block_id.to_owned())
                .push(" OR a.fill_id = ")
                .push_bind(super::sql_settle::average_price_fill_id(block_id))
                .push(")");
        }
        if let Some(order_id) = order_id {
            query
                .push(" AND a.order_id = ")
                .push_bind(order_id.to_owned());
        }
        if let Some(after) = &page.after {
            let (fill, order) = after.split_once('/').unwrap_or((after.as_str(), ""));
            query
                .push(" AND (a.fill_id > ")
                .push_bind(fill.to_owned())
                .push(" OR (a.fill_id = ")
                .push_bind(fill.to_owned())
                .push(" AND a.order_id > ")
                .push_bind(order.to_owned())
                .push("))");
        }
        query
            .push(" ORDER BY a.fill_id, a.order_id LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        let mut allocations = Vec::with_capacity(rows.len());
        for row in &rows {
            let quantity: Dec = row.try_get("quantity")?;
            let price: Dec = row.try_get("price")?;
            // Rows written before the column existed moved their value to the cent.
            let amount: Option<Dec> = row.try_get("amount")?;
            let side: String = row.try_get("side")?;
            allocations.push(AllocationRecord {
                fill_id: row.try_get("fill_id")?,
                order_id: row.try_get("order_id")?,
                account_id: row.try_get("account_id")?,
                symbol: row.try_get("symbol")?,
                side: Side::parse(&side)
                    .ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
                quantity: quantity.0,
                price: price.0,
                amount: amount.map_or_else(|| (quantity.0 * price.0).round_dp(2), |a| a.0),
            });
        }
        Ok(allocations)
    }
}

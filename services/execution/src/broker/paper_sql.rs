//! The paper broker's book.

use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::Dec;
use sqlx::Row;

use crate::broker::paper_store::{PaperBook, PaperFill, PaperOrder};
use crate::store::SqlStore;
use crate::store::StoreError;

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl PaperBook for SqlStore<DB> {
    async fn paper_order(&self, client_order_id: &str) -> Result<Option<PaperOrder>, StoreError> {
        let row = sqlx::query(
            "SELECT client_order_id, broker_order_id, symbol, side, quantity, limit_price, status, filled_quantity, \
             reason, submitted_at FROM paper_orders WHERE client_order_id = $1",
        )
        .bind(client_order_id.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let side: String = row.try_get("side")?;
        let status: String = row.try_get("status")?;
        let quantity: Dec = row.try_get("quantity")?;
        let limit: Option<Dec> = row.try_get("limit_price")?;
        let filled: Dec = row.try_get("filled_quantity")?;
        let fill_rows = sqlx::query(
            "SELECT id, quantity, price, executed_at FROM paper_fills WHERE client_order_id = $1 ORDER BY id",
        )
        .bind(client_order_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut fills = Vec::with_capacity(fill_rows.len());
        for fill in &fill_rows {
            let quantity: Dec = fill.try_get("quantity")?;
            let price: Dec = fill.try_get("price")?;
            fills.push(PaperFill {
                id: fill.try_get("id")?,
                quantity: quantity.0,
                price: price.0,
                executed_at: fill.try_get("executed_at")?,
            });
        }
        Ok(Some(PaperOrder {
            client_order_id: row.try_get("client_order_id")?,
            broker_order_id: row.try_get("broker_order_id")?,
            symbol: row.try_get("symbol")?,
            side: Side::parse(&side)
                .ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
            quantity: quantity.0,
            limit_price: limit.map(|l| l.0),
            status: OrderStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
            filled_quantity: filled.0,
            reason: row.try_get("reason")?,
            submitted_at: row.try_get("submitted_at")?,
            fills,
        }))
    }

    async fn insert_paper_order(&self, order: PaperOrder) -> Result<PaperOrder, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let inserted = sqlx::query(
            "INSERT INTO paper_orders (client_order_id, broker_order_id, symbol, side, quantity, limit_price, status, \
             filled_quantity, reason, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (client_order_id) DO NOTHING RETURNING client_order_id",
        )
        .bind(order.client_order_id.clone())
        .bind(order.broker_order_id.clone())
        .bind(order.symbol.clone())
        .bind(order.side.as_str().to_owned())
        .bind(Dec(order.quantity))
        .bind(order.limit_price.map(Dec))
        .bind(order.status.as_str().to_owned())
        .bind(Dec(order.filled_quantity))
        .bind(order.reason.clone())
        .bind(order.submitted_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            drop(tx);
            return self
                .paper_order(&order.client_order_id)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("paper order {} vanished", order.client_order_id))
                });
        }
        for fill in &order.fills {
            sqlx::query(
                "INSERT INTO paper_fills (id, client_order_id, quantity, price, executed_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(fill.id.clone())
            .bind(order.client_order_id.clone())
            .bind(Dec(fill.quantity))
            .bind(Dec(fill.price))
            .bind(fill.executed_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(order)
    }

    async fn paper_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PaperOrder>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_order_id FROM paper_orders WHERE client_order_id > $1 ORDER BY client_order_id LIMIT $2",
        )
        .bind(after.unwrap_or_default().to_owned())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            let client_order_id: String = row.try_get("client_order_id")?;
            if let Some(order) = self.paper_order(&client_order_id).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }
}

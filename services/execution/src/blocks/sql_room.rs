//! What the accounts of a block can trade now (cash limits, shares held,
//! other open buys), and cutting orders to it: the reads and writes behind
//! [`super::fit`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rebalancer_domain::account::CashLimits;
use rebalancer_kit::db::Dec;
use sqlx::{QueryBuilder, Row};

use super::sql::{CHUNK, OPEN_ORDER};
use crate::blocks::fit::buy_value;
use crate::blocks::store::{AccountRoom, OrderCap};
use crate::runs::sql::{ORDER_COLUMNS, order_from_row};
use crate::store::{SqlStore, StoreError};

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Three range reads per chunk of accounts: cash limits, shares of
    /// `symbol`, open buy orders in other blocks.
    pub(super) async fn select_rooms(
        &self,
        tenant: &str,
        block_id: &str,
        symbol: &str,
        account_ids: &[String],
    ) -> Result<HashMap<String, AccountRoom>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut rooms: HashMap<String, AccountRoom> = HashMap::new();
        for chunk in account_ids.chunks(CHUNK) {
            let mut query = QueryBuilder::<DB>::new(
                "SELECT id, cash, margin_limit, earmarked FROM accounts WHERE tenant_id = ",
            );
            query.push_bind(tenant.to_owned()).push(" AND id IN (");
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(id.clone());
            }
            query.push(")");
            for row in query.build().fetch_all(&mut *conn).await? {
                let cash: Dec = row.try_get("cash")?;
                let margin_limit: Dec = row.try_get("margin_limit")?;
                let earmarked: Dec = row.try_get("earmarked")?;
                rooms.insert(
                    row.try_get("id")?,
                    AccountRoom {
                        limits: CashLimits {
                            cash: cash.0,
                            margin_limit: margin_limit.0,
                            earmarked: earmarked.0,
                        },
                        ..AccountRoom::default()
                    },
                );
            }
            let mut query = QueryBuilder::<DB>::new(
                "SELECT account_id, quantity FROM positions WHERE tenant_id = ",
            );
            query
                .push_bind(tenant.to_owned())
                .push(" AND symbol = ")
                .push_bind(symbol.to_owned())
                .push(" AND account_id IN (");
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(id.clone());
            }
            query.push(")");
            for row in query.build().fetch_all(&mut *conn).await? {
                let account_id: String = row.try_get("account_id")?;
                let quantity: Dec = row.try_get("quantity")?;
                if let Some(room) = rooms.get_mut(&account_id) {
                    room.held = quantity.0;
                }
            }
            let mut query = QueryBuilder::<DB>::new(format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE side = 'buy' AND NOT excluded AND status IN {OPEN_ORDER} \
                 AND block_order_id IS NOT NULL AND tenant_id = "
            ));
            query
                .push_bind(tenant.to_owned())
                .push(" AND block_order_id <> ")
                .push_bind(block_id.to_owned())
                .push(" AND account_id IN (");
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(id.clone());
            }
            query.push(")");
            for row in query.build().fetch_all(&mut *conn).await? {
                let order = order_from_row(&row)?;
                if let Some(room) = rooms.get_mut(&order.account_id) {
                    room.other_buys += buy_value(&order, order.estimated_price);
                }
            }
        }
        Ok(rooms)
    }

    /// Writes the cuts: quantity, notional, reason, and CANCELED for orders
    /// left with nothing to trade; orders that ended meanwhile are left alone.
    pub(super) async fn write_caps(
        &self,
        tenant: &str,
        caps: &[OrderCap],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for cap in caps {
            let sql = format!(
                "UPDATE orders SET quantity = $3, notional = $4, status = $5, reason = $6, updated_at = $7 \
                 WHERE tenant_id = $1 AND id = $2 AND status IN {OPEN_ORDER}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_owned())
                .bind(cap.order_id.clone())
                .bind(Dec(cap.quantity))
                .bind(cap.notional.map(Dec))
                .bind(cap.status.as_str().to_owned())
                .bind(cap.reason.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

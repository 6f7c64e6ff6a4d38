//! The statements block storage shares: inserting slices, fills and
//! allocations, updating orders, ending a block, loading runs, and decoding
//! rows.

use std::collections::HashMap;

use super::sql::{CHUNK, OPEN_ORDER};
use crate::blocks::store::{
    AllocationRecord, BlockFinish, BlockRecord, ChildOrderRecord, FillRecord, OrderProgress,
    SliceRecord, SliceStatus,
};
use crate::runs::sql::{ORDER_COLUMNS, RUN_COLUMNS, order_from_row, run_from_row};
use crate::runs::store::{OrderRecord, RunRecord};
use crate::store::SqlStore;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::Dec;
use sqlx::QueryBuilder;

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    pub(super) async fn insert_slice(
        conn: &mut DB::Connection,
        tenant: &str,
        slice: &SliceRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO slices (tenant_id, id, block_order_id, sequence, due_at, status, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant.to_owned())
        .bind(slice.id.clone())
        .bind(slice.block_order_id.clone())
        .bind(slice.sequence)
        .bind(slice.due_at)
        .bind(slice.status.as_str().to_owned())
        .bind(slice.attempts)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Ends a block: its status and reason, its open orders, its open slices.
    pub(super) async fn end_block(
        conn: &mut DB::Connection,
        tenant: &str,
        block_id: &str,
        finish: &BlockFinish,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ended = sqlx::query(
            "UPDATE block_orders SET status = $3, reason = $4, completed_at = $5 \
             WHERE tenant_id = $1 AND id = $2 AND completed_at IS NULL RETURNING id",
        )
        .bind(tenant.to_owned())
        .bind(block_id.to_owned())
        .bind(finish.status.as_str().to_owned())
        .bind(finish.reason.clone())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        let sql = format!(
            "UPDATE orders SET status = $3, reason = $4, updated_at = $5 WHERE tenant_id = $1 \
             AND block_order_id = $2 AND status IN {OPEN_ORDER}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(block_id.to_owned())
            .bind(finish.order_status.as_str().to_owned())
            .bind(finish.reason.clone())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE slices SET status = 'canceled', lease_owner = NULL WHERE tenant_id = $1 AND block_order_id = $2 \
             AND status IN ('pending', 'claimed')",
        )
        .bind(tenant.to_owned())
        .bind(block_id.to_owned())
        .execute(&mut *conn)
        .await?;
        if ended {
            Self::settle_at_average_price(conn, tenant, block_id, now).await?;
        }
        Ok(())
    }

    pub(super) async fn insert_fills(
        conn: &mut DB::Connection,
        tenant: &str,
        fills: &[FillRecord],
    ) -> Result<(), StoreError> {
        for chunk in fills.chunks(CHUNK) {
            let mut query = QueryBuilder::<DB>::new(
                "INSERT INTO fills (tenant_id, id, child_order_id, block_order_id, quantity, price, executed_at, \
                 crossed) ",
            );
            query.push_values(chunk, |mut row, fill| {
                row.push_bind(tenant.to_owned())
                    .push_bind(fill.id.clone())
                    .push_bind(fill.child_order_id.clone())
                    .push_bind(fill.block_order_id.clone())
                    .push_bind(Dec(fill.quantity))
                    .push_bind(Dec(fill.price))
                    .push_bind(fill.executed_at)
                    .push_bind(fill.crossed);
            });
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub(super) async fn insert_allocations(
        conn: &mut DB::Connection,
        tenant: &str,
        allocations: &[AllocationRecord],
    ) -> Result<(), StoreError> {
        for chunk in allocations.chunks(CHUNK) {
            let mut query = QueryBuilder::<DB>::new(
                "INSERT INTO allocations (tenant_id, fill_id, order_id, account_id, symbol, side, quantity, price, \
                 amount) ",
            );
            query.push_values(chunk, |mut row, allocation| {
                row.push_bind(tenant.to_owned())
                    .push_bind(allocation.fill_id.clone())
                    .push_bind(allocation.order_id.clone())
                    .push_bind(allocation.account_id.clone())
                    .push_bind(allocation.symbol.clone())
                    .push_bind(allocation.side.as_str().to_owned())
                    .push_bind(Dec(allocation.quantity))
                    .push_bind(Dec(allocation.price))
                    .push_bind(Dec(allocation.amount));
            });
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Writes the progress of account orders, joined to a `VALUES` list (one
    /// statement per chunk, a hash join on PostgreSQL); an order that ended
    /// meanwhile (its run canceled) keeps its status.
    pub(super) async fn update_orders(
        conn: &mut DB::Connection,
        tenant: &str,
        orders: &[OrderProgress],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in orders.chunks(CHUNK) {
            let mut query = QueryBuilder::<DB>::new(format!(
                "UPDATE orders SET quantity = v.column2, filled_quantity = v.column3, filled_notional = v.column4, \
                 filled_amount = v.column5, status = CASE WHEN orders.status IN {OPEN_ORDER} THEN v.column6 \
                 ELSE orders.status END, updated_at = "
            ));
            query.push_bind(now).push(" FROM (");
            query.push_values(chunk, |mut row, order| {
                row.push_bind(order.order_id.clone())
                    .push_bind(Dec(order.quantity))
                    .push_bind(Dec(order.filled_quantity))
                    .push_bind(Dec(order.filled_notional))
                    .push_bind(Dec(order.filled_amount))
                    .push_bind(order.status.as_str().to_owned());
            });
            query
                .push(") AS v WHERE orders.tenant_id = ")
                .push_bind(tenant.to_owned())
                .push(" AND orders.id = v.column1");
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Runs with their orders, two queries per chunk of ids, in id order.
    pub(crate) async fn load_runs(
        conn: &mut DB::Connection,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut query = QueryBuilder::<DB>::new(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = "
            ));
            query.push_bind(tenant.to_owned()).push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            query.push(") ORDER BY id");
            let rows = query.build().fetch_all(&mut *conn).await?;
            let mut chunk_runs = rows
                .iter()
                .map(run_from_row)
                .collect::<Result<Vec<RunRecord>, _>>()?;
            let mut query = QueryBuilder::<DB>::new(format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = "
            ));
            query.push_bind(tenant.to_owned()).push(" AND run_id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            query.push(") ORDER BY run_id, position");
            let mut orders: HashMap<String, Vec<OrderRecord>> = HashMap::new();
            for row in query.build().fetch_all(&mut *conn).await? {
                let order = order_from_row(&row)?;
                orders.entry(order.run_id.clone()).or_default().push(order);
            }
            for run in &mut chunk_runs {
                run.orders = orders.remove(&run.id).unwrap_or_default();
            }
            runs.extend(chunk_runs);
        }
        Ok(runs)
    }
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode: {error}")))
}

#[rebalancer_kit::sql_row]
pub(super) fn block_from_row<R>(row: &R) -> Result<BlockRecord, StoreError> {
    let side: String = row.try_get("side")?;
    let status: String = row.try_get("status")?;
    let algorithm: String = row.try_get("algorithm_json")?;
    let quantity: Dec = row.try_get("quantity")?;
    let filled: Dec = row.try_get("filled_quantity")?;
    let notional: Dec = row.try_get("filled_notional")?;
    let arrival: Option<Dec> = row.try_get("arrival_price")?;
    Ok(BlockRecord {
        id: row.try_get("id")?,
        transmission_id: row.try_get("transmission_id")?,
        batch_id: row.try_get("batch_id")?,
        symbol: row.try_get("symbol")?,
        side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
        whole_shares: row.try_get("whole_shares")?,
        notional: row.try_get("notional")?,
        algorithm: serde_json::from_str(&algorithm)
            .map_err(|error| StoreError::Corrupt(format!("algorithm {algorithm:?}: {error}")))?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        quantity: quantity.0,
        filled_quantity: filled.0,
        filled_notional: notional.0,
        account_order_count: row.try_get("account_order_count")?,
        arrival_price: arrival.map(|a| a.0),
        window_start: row.try_get("window_start")?,
        window_end: row.try_get("window_end")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        broker: row.try_get("broker")?,
        trace_context: row.try_get("trace_context")?,
    })
}

#[rebalancer_kit::sql_row]
pub(super) fn slice_from_row<R>(row: &R) -> Result<SliceRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(SliceRecord {
        id: row.try_get("id")?,
        block_order_id: row.try_get("block_order_id")?,
        sequence: row.try_get("sequence")?,
        due_at: row.try_get("due_at")?,
        status: SliceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("slice status {status:?}")))?,
        attempts: row.try_get("attempts")?,
    })
}

#[rebalancer_kit::sql_row]
pub(super) fn child_from_row<R>(row: &R) -> Result<ChildOrderRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let quantity: Dec = row.try_get("quantity")?;
    let limit: Option<Dec> = row.try_get("limit_price")?;
    let filled: Dec = row.try_get("filled_quantity")?;
    let average: Option<Dec> = row.try_get("average_fill_price")?;
    Ok(ChildOrderRecord {
        id: row.try_get("id")?,
        block_order_id: row.try_get("block_order_id")?,
        slice_id: row.try_get("slice_id")?,
        client_order_id: row.try_get("client_order_id")?,
        broker_order_id: row.try_get("broker_order_id")?,
        quantity: quantity.0,
        limit_price: limit.map(|l| l.0),
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        filled_quantity: filled.0,
        average_fill_price: average.map(|a| a.0),
        reason: row.try_get("reason")?,
        due_at: row.try_get("due_at")?,
        submitted_at: row.try_get("submitted_at")?,
    })
}

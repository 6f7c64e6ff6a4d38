//! The FIX adapter's tables (migration 0008), on both backends.

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::Dec;
use rust_decimal::Decimal;
use sqlx::Row;

use crate::broker::fix::store::{
    Applied, BreakKind, BrokerBreak, FixBook, FixExecution, FixOrder, ReportUpdate, SessionState,
};
use crate::store::SqlStore;
use crate::store::StoreError;

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What a notional order may spend beyond its dollars before it is an
/// overfill: the cent a broker's rounding of shares times price can add.
const NOTIONAL_SLACK: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

const ORDER_COLUMNS: &str = "client_order_id, broker_order_id, symbol, side, quantity, notional, \
     limit_price, status, filled_quantity, reason, sent_at";

#[rebalancer_kit::sql_row]
fn order_of<R>(row: &R) -> Result<FixOrder, StoreError> {
    let side: String = row.try_get("side")?;
    let status: String = row.try_get("status")?;
    let quantity: Dec = row.try_get("quantity")?;
    let notional: Option<Dec> = row.try_get("notional")?;
    let limit: Option<Dec> = row.try_get("limit_price")?;
    let filled: Dec = row.try_get("filled_quantity")?;
    Ok(FixOrder {
        client_order_id: row.try_get("client_order_id")?,
        broker_order_id: row.try_get("broker_order_id")?,
        symbol: row.try_get("symbol")?,
        side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
        quantity: quantity.0,
        notional: notional.map(|n| n.0),
        limit_price: limit.map(|l| l.0),
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        filled_quantity: filled.0,
        reason: row.try_get("reason")?,
        sent_at: row.try_get("sent_at")?,
    })
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl FixBook for SqlStore<DB> {
    async fn fix_session(&self, key: &str, now: DateTime<Utc>) -> Result<SessionState, StoreError> {
        sqlx::query(
            "INSERT INTO fix_sessions (session_key, next_sender_seq, next_target_seq, created_at) \
             VALUES ($1, 1, 1, $2) ON CONFLICT (session_key) DO NOTHING",
        )
        .bind(key.to_owned())
        .bind(now)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT next_sender_seq, next_target_seq, created_at FROM fix_sessions WHERE session_key = $1",
        )
        .bind(key.to_owned())
        .fetch_one(self.pool())
        .await?;
        Ok(SessionState {
            next_sender_seq: seq(row.try_get("next_sender_seq")?),
            next_target_seq: seq(row.try_get("next_target_seq")?),
            created_at: row.try_get("created_at")?,
        })
    }

    async fn set_fix_target_seq(&self, key: &str, next_target_seq: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE fix_sessions SET next_target_seq = $2 WHERE session_key = $1")
            .bind(key.to_owned())
            .bind(to_db(next_target_seq))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn reset_fix_session(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM fix_messages WHERE session_key = $1")
            .bind(key.to_owned())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE fix_sessions SET next_sender_seq = 1, next_target_seq = 1, created_at = $2 \
             WHERE session_key = $1",
        )
        .bind(key.to_owned())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_fix_message(&self, key: &str, seq: u64, body: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO fix_messages (session_key, seq, body) VALUES ($1, $2, $3) \
             ON CONFLICT (session_key, seq) DO UPDATE SET body = excluded.body",
        )
        .bind(key.to_owned())
        .bind(to_db(seq))
        .bind(body.to_vec())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE fix_sessions SET next_sender_seq = $2 WHERE session_key = $1 AND next_sender_seq < $2",
        )
        .bind(key.to_owned())
        .bind(to_db(seq + 1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fix_messages(
        &self,
        key: &str,
        begin: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM fix_messages WHERE session_key = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(key.to_owned())
        .bind(to_db(begin))
        .bind(to_db(end))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| row.try_get::<Vec<u8>, _>("body").map_err(StoreError::from))
            .collect()
    }

    async fn fix_order(
        &self,
        client_order_id: &str,
    ) -> Result<Option<(FixOrder, Vec<FixExecution>)>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM fix_orders WHERE client_order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(client_order_id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let order = order_of(&row)?;
        let rows = sqlx::query(
            "SELECT exec_id, client_order_id, quantity, price, executed_at FROM fix_executions \
             WHERE client_order_id = $1 ORDER BY executed_at, exec_id",
        )
        .bind(client_order_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut executions = Vec::with_capacity(rows.len());
        for row in &rows {
            let quantity: Dec = row.try_get("quantity")?;
            let price: Dec = row.try_get("price")?;
            executions.push(FixExecution {
                exec_id: row.try_get("exec_id")?,
                client_order_id: row.try_get("client_order_id")?,
                quantity: quantity.0,
                price: price.0,
                executed_at: row.try_get("executed_at")?,
            });
        }
        Ok(Some((order, executions)))
    }

    async fn insert_fix_order(&self, order: FixOrder) -> Result<FixOrder, StoreError> {
        sqlx::query(
            "INSERT INTO fix_orders (client_order_id, broker_order_id, symbol, side, quantity, notional, \
             limit_price, status, filled_quantity, reason, sent_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (client_order_id) DO NOTHING",
        )
        .bind(order.client_order_id.clone())
        .bind(order.broker_order_id.clone())
        .bind(order.symbol.clone())
        .bind(order.side.as_str().to_owned())
        .bind(Dec(order.quantity))
        .bind(order.notional.map(Dec))
        .bind(order.limit_price.map(Dec))
        .bind(order.status.as_str().to_owned())
        .bind(Dec(order.filled_quantity))
        .bind(order.reason.clone())
        .bind(order.sent_at)
        .execute(self.pool())
        .await?;
        self.fix_order(&order.client_order_id)
            .await?
            .map(|(order, _)| order)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("fix order {} vanished", order.client_order_id))
            })
    }

    async fn apply_fix_report(
        &self,
        update: ReportUpdate,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM fix_orders WHERE client_order_id = $1 {}",
            DB::FOR_UPDATE
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(update.client_order_id.clone())
            .fetch_optional(&mut *tx)
            .await?;
        let order = row.as_ref().map(order_of).transpose()?;
        let mut filled = order.as_ref().map_or(Decimal::ZERO, |o| o.filled_quantity);
        // The dollars a notional order has spent so far.
        let mut spent = Decimal::ZERO;
        if order.as_ref().is_some_and(|o| o.notional.is_some()) {
            let rows = sqlx::query(
                "SELECT quantity, price FROM fix_executions WHERE client_order_id = $1",
            )
            .bind(update.client_order_id.clone())
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let quantity: Dec = row.try_get("quantity")?;
                let price: Dec = row.try_get("price")?;
                spent += quantity.0 * price.0;
            }
        }
        if let Some(execution) = &update.execution {
            let known = sqlx::query("SELECT exec_id FROM fix_executions WHERE exec_id = $1")
                .bind(execution.exec_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
            let raised = sqlx::query("SELECT id FROM broker_breaks WHERE id = $1")
                .bind(execution.exec_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
            if known.is_some() || raised.is_some() {
                return Ok(Applied::Repeated);
            }
            let problem = match &order {
                None => Some((
                    BreakKind::UnknownOrder,
                    format!(
                        "execution {} for ClOrdID {} that this service never sent",
                        execution.exec_id, update.client_order_id
                    ),
                )),
                Some(order)
                    if order.notional.is_some_and(|notional| {
                        spent + execution.quantity * execution.price > notional + NOTIONAL_SLACK
                    }) =>
                {
                    Some((
                        BreakKind::Overfill,
                        format!(
                            "execution {} of {} at {} would take order {} to ${} of ${}",
                            execution.exec_id,
                            execution.quantity,
                            execution.price,
                            order.client_order_id,
                            (spent + execution.quantity * execution.price).round_dp(2),
                            order.notional.unwrap_or_default()
                        ),
                    ))
                }
                Some(order)
                    if order.notional.is_none() && filled + execution.quantity > order.quantity =>
                {
                    Some((
                        BreakKind::Overfill,
                        format!(
                            "execution {} of {} would take order {} to {} of {}",
                            execution.exec_id,
                            execution.quantity,
                            order.client_order_id,
                            filled + execution.quantity,
                            order.quantity
                        ),
                    ))
                }
                Some(_) => None,
            };
            if let Some((kind, detail)) = problem {
                sqlx::query(
                    "INSERT INTO broker_breaks (id, kind, client_order_id, symbol, quantity, price, detail, raised_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(execution.exec_id.clone())
                .bind(kind.as_str().to_owned())
                .bind(update.client_order_id.clone())
                .bind(update.symbol.clone())
                .bind(Dec(execution.quantity))
                .bind(Dec(execution.price))
                .bind(detail)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Applied::Break(kind));
            }
            sqlx::query(
                "INSERT INTO fix_executions (exec_id, client_order_id, quantity, price, executed_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(execution.exec_id.clone())
            .bind(update.client_order_id.clone())
            .bind(Dec(execution.quantity))
            .bind(Dec(execution.price))
            .bind(execution.executed_at)
            .execute(&mut *tx)
            .await?;
            filled += execution.quantity;
        }
        let Some(order) = order else {
            // A report without an execution for an unknown order: nothing to book.
            return Ok(Applied::Break(BreakKind::UnknownOrder));
        };
        // A terminal status is never left for an earlier one (reports can
        // come back out of order after a resend).
        let status = if order.status.is_terminal() && !update.status.is_terminal() {
            order.status
        } else {
            update.status
        };
        let broker_order_id = if update.broker_order_id.is_empty() {
            order.broker_order_id
        } else {
            update.broker_order_id
        };
        let reason = if update.reason.is_empty() {
            order.reason
        } else {
            update.reason
        };
        sqlx::query(
            "UPDATE fix_orders SET broker_order_id = $2, status = $3, filled_quantity = $4, reason = $5, \
             updated_at = $6 WHERE client_order_id = $1",
        )
        .bind(update.client_order_id.clone())
        .bind(broker_order_id)
        .bind(status.as_str().to_owned())
        .bind(Dec(filled))
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Applied::Booked)
    }

    async fn fix_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(FixOrder, Vec<FixExecution>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_order_id FROM fix_orders WHERE client_order_id > $1 ORDER BY client_order_id LIMIT $2",
        )
        .bind(after.unwrap_or_default().to_owned())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("client_order_id")?;
            if let Some(order) = self.fix_order(&id).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    async fn broker_breaks(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BrokerBreak>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, client_order_id, symbol, quantity, price, detail, raised_at FROM broker_breaks \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or_default().to_owned())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut breaks = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: String = row.try_get("kind")?;
            let quantity: Dec = row.try_get("quantity")?;
            let price: Dec = row.try_get("price")?;
            breaks.push(BrokerBreak {
                id: row.try_get("id")?,
                kind: BreakKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("break kind {kind:?}")))?,
                client_order_id: row.try_get("client_order_id")?,
                symbol: row.try_get("symbol")?,
                quantity: quantity.0,
                price: price.0,
                detail: row.try_get("detail")?,
                raised_at: row.try_get("raised_at")?,
            });
        }
        Ok(breaks)
    }
}

//! Settling a block when it ends: every account order sized in shares is
//! moved to the average price of the block's orders sized in shares
//! (`rebalancer_domain::average_price`), by one correcting allocation per
//! order (no shares, its cash difference, fill id `avg-<block id>`) booked
//! like any other; and reasons written on orders that hit a break while
//! booking.
//!
//! Orders sized in dollars keep their dollars exact: every fill of their leg
//! is split over them pro rata to the dollars each still needs, so they
//! already share one price (to a billionth of a share). Whole shares split
//! by largest remainder are what drifts apart, and what this settles.

use chrono::{DateTime, Utc};
use rebalancer_domain::average_price::{Filled, at_average_price};
use rebalancer_kit::db::Dec;
use rust_decimal::Decimal;

use crate::blocks::decide::is_notional;
use crate::blocks::store::AllocationRecord;
use crate::runs::sql::{ORDER_COLUMNS, order_from_row};
use crate::store::{SqlStore, StoreError};

/// The fill id of a block's average-price corrections.
#[must_use]
pub fn average_price_fill_id(block_id: &str) -> String {
    format!("avg-{block_id}")
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Moves every filled order of an ended block to the block's average
    /// price; the corrections sum to zero, so the block's cash is unchanged.
    pub(super) async fn settle_at_average_price(
        conn: &mut DB::Connection,
        tenant: &str,
        block_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND block_order_id = $2 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(block_id.to_owned())
            .fetch_all(&mut *conn)
            .await?;
        let orders: Vec<_> = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|order| order.filled_quantity > Decimal::ZERO && !is_notional(order))
            .collect();
        if orders.len() < 2 {
            return Ok(());
        }
        let filled: Vec<Filled> = orders
            .iter()
            .map(|order| Filled {
                quantity: order.filled_quantity,
                amount: order.filled_amount,
            })
            .collect();
        let amounts = at_average_price(&filled);
        let shares: Decimal = filled.iter().map(|f| f.quantity).sum();
        let total: Decimal = filled.iter().map(|f| f.amount).sum();
        let average = (total / shares).round_dp(6);
        let fill_id = average_price_fill_id(block_id);
        let mut corrections = Vec::new();
        for (order, amount) in orders.iter().zip(amounts) {
            if amount == order.filled_amount {
                continue;
            }
            corrections.push(AllocationRecord {
                fill_id: fill_id.clone(),
                order_id: order.id.clone(),
                account_id: order.account_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                quantity: Decimal::ZERO,
                price: average,
                amount: amount - order.filled_amount,
            });
            sqlx::query(
                "UPDATE orders SET filled_amount = $3, filled_notional = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.to_owned())
            .bind(order.id.clone())
            .bind(Dec(amount))
            .bind(Dec(order.filled_quantity * total / shares))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        if corrections.is_empty() {
            return Ok(());
        }
        Self::insert_allocations(conn, tenant, &corrections).await?;
        let breaks = Self::book_allocations(conn, tenant, &corrections, now).await?;
        Self::set_order_reasons(conn, tenant, &breaks, now).await
    }

    /// Writes a reason on orders (breaks found while booking).
    pub(super) async fn set_order_reasons(
        conn: &mut DB::Connection,
        tenant: &str,
        reasons: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for (order_id, reason) in reasons {
            sqlx::query(
                "UPDATE orders SET reason = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.to_owned())
            .bind(order_id.clone())
            .bind(reason.clone())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

//! Block orders, slices (claimed with leases, `SKIP LOCKED` on PostgreSQL),
//! child orders, fills and allocations, recorded exactly once per slice.
//! A slice's outcome touches every account of its block: its allocations,
//! account cash, positions and orders are written a few hundred rows per
//! statement, not one statement per row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::{OrderStatus, RunStatus};
use rebalancer_kit::db::{DbErrorKind, Dec, classify};
use sqlx::{QueryBuilder, Row};

use crate::blocks::sql_rows::{block_from_row, encode, slice_from_row};
use crate::blocks::store::{
    AccountRoom, BlockFilter, BlockFinish, BlockRecord, BlockStart, BlockStore, Claimable,
    ClaimedSlice, NewBlock, OrderBook, OrderCap, RunCompletion, SliceOutcome, SliceRecord,
};
use crate::runs::sql::moving_to;
use crate::runs::store::{OrderRecord, RunRecord};
use crate::store::SqlStore;
use crate::store::{PageRequest, StoreError};

pub(super) const BLOCK_COLUMNS: &str = "id, transmission_id, batch_id, symbol, side, whole_shares, notional, algorithm_json, status, \
     quantity, filled_quantity, filled_notional, account_order_count, arrival_price, window_start, window_end, \
     reason, created_at, completed_at, broker, trace_context";

const SLICE_COLUMNS: &str = "id, block_order_id, sequence, due_at, status, attempts";

pub(super) const CHILD_COLUMNS: &str = "id, block_order_id, slice_id, client_order_id, broker_order_id, quantity, limit_price, \
     status, filled_quantity, average_fill_price, reason, due_at, submitted_at";

pub(super) const OPEN_ORDER: &str = "('new', 'submitted', 'partially_filled')";

/// Rows per multi-row statement: well under the bind limits of both
/// backends (32,766 for SQLite, 65,535 for PostgreSQL) with ten binds a row.
pub(crate) const CHUNK: usize = 1000;

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl BlockStore for SqlStore<DB> {
    async fn claim_queued_runs(
        &self,
        transmission_id: &str,
        now: DateTime<Utc>,
        limit: u32,
        gathering: bool,
        claimable: Claimable,
    ) -> Result<Vec<(String, RunRecord)>, StoreError> {
        // A run trades crypto alone when none of its orders is for a symbol
        // that is not a pair (crypto pairs, and only they, have a '/').
        const CRYPTO_ONLY: &str = "NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = runs.tenant_id \
             AND o.run_id = runs.id AND o.symbol NOT LIKE '%/%')";
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        // Expired runs are left to the expiry sweep, never started.
        let sql = format!(
            "UPDATE runs SET status = 'in_progress', transmission_id = $1, started_at = $2, updated_at = $2, \
             revision = revision + 1 WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM runs \
             WHERE {} AND (expires_at IS NULL OR expires_at > $2){}{} ORDER BY tenant_id, id LIMIT $3 {}) \
             RETURNING tenant_id, id",
            moving_to(RunStatus::InProgress),
            match claimable {
                Claimable::All => String::new(),
                Claimable::ExtendedHoursOrAroundTheClock => {
                    format!(" AND (extended_hours OR {CRYPTO_ONLY})")
                }
                Claimable::AroundTheClock => format!(" AND {CRYPTO_ONLY}"),
            },
            if gathering {
                " AND NOT (batch_id IS NULL AND initiated_from = 'system')"
            } else {
                ""
            },
            DB::SKIP_LOCKED
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(transmission_id.to_owned())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in &rows {
            by_tenant
                .entry(row.try_get("tenant_id")?)
                .or_default()
                .push(row.try_get("id")?);
        }
        let mut runs = Vec::with_capacity(rows.len());
        for (tenant, ids) in by_tenant {
            for run in Self::load_runs(&mut tx, &tenant, &ids).await? {
                runs.push((tenant.clone(), run));
            }
        }
        tx.commit().await?;
        Ok(runs)
    }

    async fn queued_system_runs(
        &self,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(updated_at) AS oldest, MAX(updated_at) AS newest FROM runs \
             WHERE status = 'queued' AND batch_id IS NULL AND initiated_from = 'system'",
        )
        .fetch_one(self.pool())
        .await?;
        let oldest: Option<DateTime<Utc>> = row.try_get("oldest")?;
        let newest: Option<DateTime<Utc>> = row.try_get("newest")?;
        Ok(oldest.zip(newest))
    }

    async fn create_blocks(
        &self,
        tenant: &str,
        blocks: &[NewBlock],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for new in blocks {
            let block = &new.block;
            sqlx::query(
                "INSERT INTO block_orders (tenant_id, id, transmission_id, batch_id, symbol, side, whole_shares, \
                 notional, algorithm_json, status, quantity, filled_quantity, filled_notional, account_order_count, \
                 arrival_price, window_start, window_end, reason, created_at, completed_at, broker, trace_context) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $21, $22)",
            )
            .bind(tenant.to_owned())
            .bind(block.id.clone())
            .bind(block.transmission_id.clone())
            .bind(block.batch_id.clone())
            .bind(block.symbol.clone())
            .bind(block.side.as_str().to_owned())
            .bind(block.whole_shares)
            .bind(block.notional)
            .bind(encode(&block.algorithm)?)
            .bind(block.status.as_str().to_owned())
            .bind(Dec(block.quantity))
            .bind(Dec(block.filled_quantity))
            .bind(Dec(block.filled_notional))
            .bind(block.account_order_count)
            .bind(block.arrival_price.map(Dec))
            .bind(block.window_start)
            .bind(block.window_end)
            .bind(block.reason.clone())
            .bind(block.created_at)
            .bind(block.completed_at)
            .bind(block.broker.clone())
            .bind(block.trace_context.clone())
            .execute(&mut *tx)
            .await?;
            for chunk in new.order_ids.chunks(CHUNK) {
                // Only orders no block has taken: another worker may have
                // grouped the same transmission after a crash.
                let mut link = QueryBuilder::<DB>::new("UPDATE orders SET block_order_id = ");
                link.push_bind(block.id.clone())
                    .push(", status = CASE WHEN status = 'new' THEN 'submitted' ELSE status END WHERE tenant_id = ")
                    .push_bind(tenant.to_owned())
                    .push(" AND block_order_id IS NULL AND id IN (");
                let mut ids = link.separated(", ");
                for id in chunk {
                    ids.push_bind(id.clone());
                }
                link.push(") RETURNING id");
                let linked = link.build().fetch_all(&mut *tx).await?;
                if linked.len() != chunk.len() {
                    return Ok(false);
                }
            }
            Self::insert_fills(&mut tx, tenant, &new.fills).await?;
            Self::insert_allocations(&mut tx, tenant, &new.allocations).await?;
            let breaks = Self::book_allocations(&mut tx, tenant, &new.allocations, now).await?;
            Self::update_orders(&mut tx, tenant, &new.orders, now).await?;
            Self::set_order_reasons(&mut tx, tenant, &breaks, now).await?;
        }
        // The transmission's runs record where their orders went (one
        // broker per transmission: the tenant's mode when it was grouped).
        if let Some(first) = blocks.first() {
            sqlx::query(
                "UPDATE runs SET broker = $3 WHERE tenant_id = $1 AND transmission_id = $2 AND broker IS NULL",
            )
            .bind(tenant.to_owned())
            .bind(first.block.transmission_id.clone())
            .bind(first.block.broker.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn start_block(&self, tenant: &str, start: BlockStart) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let started = sqlx::query(
            "UPDATE block_orders SET status = CASE WHEN status = 'new' THEN 'submitted' ELSE status END, \
             arrival_price = $3, window_start = $4, window_end = $5, quantity = $6 \
             WHERE tenant_id = $1 AND id = $2 AND window_start IS NULL RETURNING id",
        )
        .bind(tenant.to_owned())
        .bind(start.block_id.clone())
        .bind(Dec(start.arrival_price))
        .bind(start.window_start)
        .bind(start.window_end)
        .bind(Dec(start.quantity))
        .fetch_optional(&mut *tx)
        .await?;
        if started.is_none() {
            // Another worker started it first.
            return Ok(());
        }
        for chunk in start.order_quantities.chunks(CHUNK) {
            let mut query =
                QueryBuilder::<DB>::new("UPDATE orders SET quantity = v.column2 FROM (");
            query.push_values(chunk, |mut row, (order_id, quantity)| {
                row.push_bind(order_id.clone()).push_bind(Dec(*quantity));
            });
            query
                .push(") AS v WHERE orders.tenant_id = ")
                .push_bind(tenant.to_owned())
                .push(" AND orders.id = v.column1");
            query.build().execute(&mut *tx).await?;
        }
        for slice in &start.slices {
            Self::insert_slice(&mut tx, tenant, slice).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due_slices(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedSlice>, StoreError> {
        // Only the earliest unfinished slice of a block may be claimed, so a
        // block is worked by one worker at a time and in order.
        let sql = format!(
            "UPDATE slices SET status = 'claimed', lease_owner = $1, lease_until = $3, attempts = attempts + 1 \
             WHERE (tenant_id, id) IN (SELECT s.tenant_id, s.id FROM slices s WHERE s.due_at <= $2 \
             AND (s.status = 'pending' OR (s.status = 'claimed' AND s.lease_until < $2)) \
             AND s.sequence = (SELECT MIN(o.sequence) FROM slices o WHERE o.tenant_id = s.tenant_id \
             AND o.block_order_id = s.block_order_id AND o.status IN ('pending', 'claimed')) \
             ORDER BY s.due_at LIMIT $4 {}) RETURNING tenant_id, {SLICE_COLUMNS}",
            DB::SKIP_LOCKED
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.to_owned())
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            claimed.push(ClaimedSlice {
                tenant: row.try_get("tenant_id")?,
                slice: slice_from_row(row)?,
            });
        }
        Ok(claimed)
    }

    async fn get_block(&self, tenant: &str, id: &str) -> Result<Option<BlockRecord>, StoreError> {
        let sql =
            format!("SELECT {BLOCK_COLUMNS} FROM block_orders WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(block_from_row).transpose()
    }

    async fn block_orders(
        &self,
        tenant: &str,
        block_id: &str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Self::select_orders(&mut conn, tenant, "block_order_id", block_id).await
    }

    async fn open_slices(
        &self,
        tenant: &str,
        block_id: &str,
    ) -> Result<Vec<SliceRecord>, StoreError> {
        let sql = format!(
            "SELECT {SLICE_COLUMNS} FROM slices WHERE tenant_id = $1 AND block_order_id = $2 \
             AND status IN ('pending', 'claimed') ORDER BY sequence"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(block_id.to_owned())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(slice_from_row).collect()
    }

    async fn record_slice(
        &self,
        tenant: &str,
        outcome: SliceOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for child in &outcome.children {
            let inserted = sqlx::query(
                "INSERT INTO child_orders (tenant_id, id, block_order_id, slice_id, client_order_id, broker_order_id, \
                 quantity, limit_price, status, filled_quantity, average_fill_price, reason, due_at, submitted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(tenant.to_owned())
            .bind(child.id.clone())
            .bind(child.block_order_id.clone())
            .bind(child.slice_id.clone())
            .bind(child.client_order_id.clone())
            .bind(child.broker_order_id.clone())
            .bind(Dec(child.quantity))
            .bind(child.limit_price.map(Dec))
            .bind(child.status.as_str().to_owned())
            .bind(Dec(child.filled_quantity))
            .bind(child.average_fill_price.map(Dec))
            .bind(child.reason.clone())
            .bind(child.due_at)
            .bind(child.submitted_at)
            .execute(&mut *tx)
            .await;
            if let Err(error) = inserted {
                if classify(&error) == DbErrorKind::UniqueViolation {
                    // Another worker recorded this slice: nothing to add.
                    return Ok(false);
                }
                return Err(error.into());
            }
        }
        Self::insert_fills(&mut tx, tenant, &outcome.fills).await?;
        Self::insert_allocations(&mut tx, tenant, &outcome.allocations).await?;
        let breaks = Self::book_allocations(&mut tx, tenant, &outcome.allocations, now).await?;
        Self::update_orders(&mut tx, tenant, &outcome.orders, now).await?;
        Self::set_order_reasons(&mut tx, tenant, &breaks, now).await?;
        // A block ended meanwhile (canceled) keeps its status; its fills count.
        sqlx::query(
            "UPDATE block_orders SET quantity = $3, filled_quantity = $4, filled_notional = $5, \
             status = CASE WHEN completed_at IS NULL THEN $6 ELSE status END WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_owned())
        .bind(outcome.block_id.clone())
        .bind(Dec(outcome.block_quantity))
        .bind(Dec(outcome.block_filled_quantity))
        .bind(Dec(outcome.block_filled_notional))
        .bind(outcome.block_status.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE slices SET status = 'done', lease_owner = NULL WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_owned())
            .bind(outcome.slice_id.clone())
            .execute(&mut *tx)
            .await?;
        for slice in &outcome.new_slices {
            Self::insert_slice(&mut tx, tenant, slice).await?;
        }
        if let Some(finish) = &outcome.finish {
            Self::end_block(&mut tx, tenant, &outcome.block_id, finish, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_block(
        &self,
        tenant: &str,
        block_id: &str,
        status: OrderStatus,
        order_status: OrderStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let finish = BlockFinish {
            status,
            order_status,
            reason: reason.to_owned(),
        };
        Self::end_block(&mut tx, tenant, block_id, &finish, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn transmission_blocks(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        self.list_blocks(
            tenant,
            &BlockFilter {
                transmission_id: Some(transmission_id.to_owned()),
                ..BlockFilter::default()
            },
            &PageRequest {
                after: None,
                limit: 100_000,
            },
        )
        .await
    }

    async fn transmission_runs(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE tenant_id = $1 AND transmission_id = $2 ORDER BY id",
        )
        .bind(tenant.to_owned())
        .bind(transmission_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<Vec<String>, _>>()?;
        Self::load_runs(&mut conn, tenant, &ids).await
    }

    async fn finished_runs(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let sql = format!(
            "SELECT r.id FROM runs r WHERE r.tenant_id = $1 AND r.transmission_id = $2 AND r.status = 'in_progress' \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = r.tenant_id AND o.run_id = r.id \
             AND NOT o.excluded AND o.status IN {OPEN_ORDER}) ORDER BY r.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(transmission_id.to_owned())
            .fetch_all(&mut *conn)
            .await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<Vec<String>, _>>()?;
        Self::load_runs(&mut conn, tenant, &ids).await
    }

    async fn reschedule_slices(
        &self,
        tenant: &str,
        moves: &[(String, Option<DateTime<Utc>>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for (slice_id, due_at) in moves {
            let query = match due_at {
                Some(due_at) => sqlx::query(
                    "UPDATE slices SET due_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
                )
                .bind(tenant.to_owned())
                .bind(slice_id.clone())
                .bind(*due_at),
                None => sqlx::query(
                    "UPDATE slices SET status = 'canceled' WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
                )
                .bind(tenant.to_owned())
                .bind(slice_id.clone()),
            };
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn account_room(
        &self,
        tenant: &str,
        block_id: &str,
        symbol: &str,
        account_ids: &[String],
    ) -> Result<std::collections::HashMap<String, AccountRoom>, StoreError> {
        self.select_rooms(tenant, block_id, symbol, account_ids)
            .await
    }

    async fn cap_orders(
        &self,
        tenant: &str,
        caps: &[OrderCap],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_caps(tenant, caps, now).await
    }

    async fn open_transmissions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT tenant_id, transmission_id FROM runs WHERE status = 'in_progress' \
             AND transmission_id IS NOT NULL ORDER BY tenant_id, transmission_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("tenant_id")?, row.try_get("transmission_id")?)))
            .collect()
    }

    async fn complete_runs(
        &self,
        tenant: &str,
        completions: &[RunCompletion],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for completion in completions {
            // Runs end from IN_PROGRESS; the update matches only statuses the
            // lifecycle lets move to the new one.
            if let Err(error) = RunStatus::InProgress.transition(completion.status) {
                tracing::error!(run_id = %completion.run_id, %error, "run completion skipped");
                continue;
            }
            let sql = format!(
                "UPDATE runs SET status = $3, reason = $4, completed_at = $5, updated_at = $5, \
                 revision = revision + 1 WHERE tenant_id = $1 AND id = $2 AND {} \
                 RETURNING account_id",
                moving_to(completion.status)
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_owned())
                .bind(completion.run_id.clone())
                .bind(completion.status.as_str().to_owned())
                .bind(completion.reason.clone())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row
                && completion.rebalanced
            {
                let account_id: String = row.try_get("account_id")?;
                sqlx::query(
                    "UPDATE accounts SET last_rebalanced_at = $3 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.to_owned())
                .bind(account_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

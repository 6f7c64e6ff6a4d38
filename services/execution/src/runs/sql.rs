//! Runs and their orders in SQL (batches are in `sql_batches.rs`).
//!
//! Over 500 lines: the run row has some thirty columns, written and decoded
//! here once for both backends.

use chrono::{DateTime, Utc};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::{DbErrorKind, Dec, classify, find_claimed, insert_claim};
use sqlx::{QueryBuilder, Row};

use crate::runs::store::RunStore;
use crate::runs::store::{OrderRecord, RunChange, RunFilter, RunRecord};
use crate::store::SqlStore;
use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

pub(crate) const RUN_COLUMNS: &str = "id, account_id, kind, status, initiated_from, reason, amount, portfolio_id, \
     portfolio_version, approval_mode, batch_id, cash_movement_id, transmission_id, cancel_requested, equity, \
     cash_before, minimum_order_notional, weights_json, algorithm_json, drift_json, skipped_json, adjustments_json, \
     approved_by, revision, created_at, updated_at, approved_at, started_at, completed_at, canceled_at, expires_at, \
     broker, trace_context, tax_json";

pub(crate) const ORDER_COLUMNS: &str = "id, run_id, account_id, position, symbol, side, quantity, notional, \
     whole_shares, estimated_price, status, filled_quantity, filled_notional, filled_amount, client_order_id, \
     block_order_id, excluded, reason, created_at, updated_at";

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode: {error}")))
}

pub(crate) fn unjson<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("cannot decode {text:?}: {error}")))
}

pub(crate) fn parsed<T>(value: Option<T>, what: &str, text: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?}")))
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl RunStore for SqlStore<DB> {
    async fn open_run_id(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM runs WHERE tenant_id = $1 AND account_id = $2 \
             AND status IN ('proposed', 'queued', 'in_progress')",
        )
        .bind(tenant.to_owned())
        .bind(account_id.to_owned())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.try_get("id").map_err(StoreError::from))
            .transpose()
    }

    async fn create_run(
        &self,
        tenant: &str,
        run: RunRecord,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<RunRecord>, StoreError> {
        if !run.status.is_initial() {
            return Err(StoreError::FailedPrecondition(format!(
                "a run cannot be created {}",
                run.status
            )));
        }
        if let Some(claim) = &claim
            && let Some(existing) = self.replay_run(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &run.id, run.created_at).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_run(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        let inserted = sqlx::query(
            "INSERT INTO runs (tenant_id, id, account_id, kind, status, initiated_from, reason, amount, portfolio_id, \
             portfolio_version, approval_mode, batch_id, cash_movement_id, transmission_id, cancel_requested, equity, \
             cash_before, minimum_order_notional, weights_json, algorithm_json, drift_json, skipped_json, \
             adjustments_json, approved_by, revision, created_at, updated_at, approved_at, started_at, completed_at, \
             canceled_at, expires_at, extended_hours, trace_context, tax_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, \
             $30, $31, $32, $33, $34, $35)",
        )
        .bind(tenant.to_owned())
        .bind(run.id.clone())
        .bind(run.account_id.clone())
        .bind(run.kind.as_str().to_owned())
        .bind(run.status.as_str().to_owned())
        .bind(run.initiated_from.as_str().to_owned())
        .bind(run.reason.clone())
        .bind(run.amount.map(Dec))
        .bind(run.portfolio_id.clone())
        .bind(run.portfolio_version)
        .bind(run.approval_mode.as_str().to_owned())
        .bind(run.batch_id.clone())
        .bind(run.cash_movement_id.clone())
        .bind(run.transmission_id.clone())
        .bind(run.cancel_requested)
        .bind(Dec(run.equity))
        .bind(Dec(run.cash_before))
        .bind(Dec(run.minimum_order_notional))
        .bind(json(&run.weights)?)
        .bind(json(&run.algorithm)?)
        .bind(json(&run.drift)?)
        .bind(json(&run.skipped)?)
        .bind(json(&run.adjustments)?)
        .bind(run.approved_by.clone())
        .bind(run.revision)
        .bind(run.created_at)
        .bind(run.updated_at)
        .bind(run.approved_at)
        .bind(run.started_at)
        .bind(run.completed_at)
        .bind(run.canceled_at)
        .bind(run.expires_at)
        .bind(run.algorithm.extended_hours)
        .bind(run.trace_context.clone())
        .bind(match &run.tax {
            Some(tax) => json(tax)?,
            None => String::new(),
        })
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if classify(&error) == DbErrorKind::UniqueViolation => {
                return Err(StoreError::Conflict(format!(
                    "account {} already has a run that has not ended",
                    run.account_id
                )));
            }
            Err(error) if classify(&error) == DbErrorKind::ForeignKeyViolation => {
                return Err(StoreError::NotFound(format!(
                    "account {} not found",
                    run.account_id
                )));
            }
            Err(error) => return Err(error.into()),
        }
        for order in &run.orders {
            Self::insert_order(&mut tx, tenant, order).await?;
        }
        tx.commit().await?;
        Ok(Created::New(run))
    }

    async fn expire_runs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let sql = format!(
            "UPDATE runs SET status = 'timeout', completed_at = $1, updated_at = $1, revision = revision + 1, \
             reason = CASE status WHEN 'proposed' THEN 'expired: not approved in time, the plan is stale' \
             ELSE 'expired: not started in time, the plan is stale' END \
             WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM runs WHERE {} AND expires_at <= $1 \
             ORDER BY tenant_id, id LIMIT $2 {}) RETURNING tenant_id, id",
            moving_to(RunStatus::Timeout),
            DB::SKIP_LOCKED
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let tenant: String = row.try_get("tenant_id")?;
            let id: String = row.try_get("id")?;
            sqlx::query(
                "UPDATE orders SET status = 'expired', reason = 'the run expired', updated_at = $3 \
                 WHERE tenant_id = $1 AND run_id = $2",
            )
            .bind(tenant.clone())
            .bind(id.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            expired.push((tenant, id));
        }
        tx.commit().await?;
        Ok(expired)
    }

    async fn get_run(&self, tenant: &str, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Self::select_run(&mut conn, tenant, id).await
    }

    async fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut query =
            QueryBuilder::<DB>::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = "));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(account_id) = &filter.account_id {
            query
                .push(" AND account_id = ")
                .push_bind(account_id.clone());
        }
        if !filter.statuses.is_empty() {
            query.push(" AND status IN (");
            let mut statuses = query.separated(", ");
            for status in &filter.statuses {
                statuses.push_bind(status.as_str().to_owned());
            }
            query.push(")");
        }
        if let Some(kind) = filter.kind {
            query
                .push(" AND kind = ")
                .push_bind(kind.as_str().to_owned());
        }
        if let Some(batch_id) = &filter.batch_id {
            query.push(" AND batch_id = ").push_bind(batch_id.clone());
        }
        if let Some(after) = filter.created_after {
            query.push(" AND created_at >= ").push_bind(after);
        }
        if let Some(before) = filter.created_before {
            query.push(" AND created_at < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(&mut *conn).await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut run = run_from_row(row)?;
            run.orders = Self::select_orders(&mut conn, tenant, "run_id", &run.id).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    async fn update_run(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<i64>,
        change: RunChange,
        now: DateTime<Utc>,
    ) -> Result<RunRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        // The run is locked, its etag checked, then a status change checked
        // against the run's lifecycle: the update below cannot miss.
        let sql = format!(
            "SELECT status, revision FROM runs WHERE tenant_id = $1 AND id = $2 {}",
            DB::FOR_UPDATE
        );
        let current = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!("run {id} not found")));
        };
        let revision: i64 = current.try_get("revision")?;
        if let Some(expected) = expected_revision
            && expected != revision
        {
            return Err(StoreError::StaleRevision(format!(
                "run {id} changed since etag r{expected} (now r{revision})"
            )));
        }
        let mut checked_from = None;
        if let Some(to) = change.status {
            let status: String = current.try_get("status")?;
            let from = parsed(RunStatus::parse(&status), "run status", &status)?;
            from.transition(to)
                .map_err(|error| StoreError::FailedPrecondition(format!("run {id}: {error}")))?;
            checked_from = Some(from);
        }
        let mut query =
            QueryBuilder::<DB>::new("UPDATE runs SET revision = revision + 1, updated_at = ");
        query.push_bind(now);
        if let Some(status) = change.status {
            query
                .push(", status = ")
                .push_bind(status.as_str().to_owned());
        }
        if let Some(reason) = &change.reason {
            query.push(", reason = ").push_bind(reason.clone());
        }
        if let Some(approved_by) = &change.approved_by {
            query
                .push(", approved_by = ")
                .push_bind(approved_by.clone());
        }
        if let Some(at) = change.approved_at {
            query.push(", approved_at = ").push_bind(at);
        }
        if let Some(at) = change.canceled_at {
            query.push(", canceled_at = ").push_bind(at);
        }
        if let Some(at) = change.completed_at {
            query.push(", completed_at = ").push_bind(at);
        }
        if let Some(flag) = change.cancel_requested {
            query.push(", cancel_requested = ").push_bind(flag);
        }
        if let Some(algorithm) = &change.algorithm {
            query
                .push(", algorithm_json = ")
                .push_bind(json(algorithm)?);
        }
        if let Some(skipped) = &change.skipped {
            query.push(", skipped_json = ").push_bind(json(skipped)?);
        }
        if let Some(adjustments) = &change.adjustments {
            query
                .push(", adjustments_json = ")
                .push_bind(json(adjustments)?);
        }
        if let Some(tax) = &change.tax {
            let text = match tax {
                Some(tax) => json(tax)?,
                None => String::new(),
            };
            query.push(", tax_json = ").push_bind(text);
        }
        query
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned());
        query.push(" AND id = ").push_bind(id.to_owned());
        if let Some(revision) = expected_revision {
            query.push(" AND revision = ").push_bind(revision);
        }
        if let Some(from) = checked_from {
            query
                .push(" AND status = ")
                .push_bind(from.as_str().to_owned());
        }
        query.push(" RETURNING id");
        let updated = query.build().fetch_optional(&mut *tx).await?;
        if updated.is_none() {
            drop(tx);
            return Err(match self.get_run(tenant, id).await? {
                None => StoreError::NotFound(format!("run {id} not found")),
                Some(current) => StoreError::StaleRevision(format!(
                    "run {id} changed since etag r{} (now r{})",
                    expected_revision.unwrap_or_default(),
                    current.revision
                )),
            });
        }
        for edit in &change.order_edits {
            sqlx::query(
                "UPDATE orders SET quantity = $4, notional = $5, excluded = $6, updated_at = $7 \
                 WHERE tenant_id = $1 AND run_id = $2 AND id = $3",
            )
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .bind(edit.order_id.clone())
            .bind(Dec(edit.quantity))
            .bind(edit.notional.map(Dec))
            .bind(edit.excluded)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (order_id, status, reason) in &change.order_statuses {
            sqlx::query(
                "UPDATE orders SET status = $4, reason = $5, updated_at = $6 \
                 WHERE tenant_id = $1 AND run_id = $2 AND id = $3",
            )
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .bind(order_id.clone())
            .bind(status.as_str().to_owned())
            .bind(reason.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let run = Self::select_run(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("run {id} vanished")))?;
        tx.commit().await?;
        Ok(run)
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_run(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<RunRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        match find_claimed::<DB>(&mut conn, tenant, claim).await? {
            Some(id) => Self::select_run(&mut conn, tenant, &id).await,
            None => Ok(None),
        }
    }

    pub(crate) async fn insert_order(
        conn: &mut DB::Connection,
        tenant: &str,
        order: &OrderRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orders (tenant_id, id, run_id, account_id, position, symbol, side, quantity, notional, \
             whole_shares, estimated_price, status, filled_quantity, filled_notional, filled_amount, \
             client_order_id, block_order_id, excluded, reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(tenant.to_owned())
        .bind(order.id.clone())
        .bind(order.run_id.clone())
        .bind(order.account_id.clone())
        .bind(order.position)
        .bind(order.symbol.clone())
        .bind(order.side.as_str().to_owned())
        .bind(Dec(order.quantity))
        .bind(order.notional.map(Dec))
        .bind(order.whole_shares)
        .bind(Dec(order.estimated_price))
        .bind(order.status.as_str().to_owned())
        .bind(Dec(order.filled_quantity))
        .bind(Dec(order.filled_notional))
        .bind(Dec(order.filled_amount))
        .bind(order.client_order_id.clone())
        .bind(order.block_order_id.clone())
        .bind(order.excluded)
        .bind(order.reason.clone())
        .bind(order.created_at)
        .bind(order.updated_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn select_run(
        conn: &mut DB::Connection,
        tenant: &str,
        id: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut run = run_from_row(&row)?;
        run.orders = Self::select_orders(conn, tenant, "run_id", id).await?;
        Ok(Some(run))
    }

    /// Orders whose `column` (run_id or block_order_id) is `value`.
    pub(crate) async fn select_orders(
        conn: &mut DB::Connection,
        tenant: &str,
        column: &'static str,
        value: &str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND {column} = $2 ORDER BY run_id, position"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(value.to_owned())
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(order_from_row).collect()
    }
}

/// `status IN (...)`: the statuses a run may move to `to` from, per the
/// domain's lifecycle table ([`RunStatus::sources`]), for bulk updates.
pub(crate) fn moving_to(to: RunStatus) -> String {
    let sources: Vec<String> = RunStatus::sources(to)
        .iter()
        .map(|status| format!("'{status}'"))
        .collect();
    if sources.is_empty() {
        return "FALSE".to_owned();
    }
    format!("status IN ({})", sources.join(", "))
}

#[rebalancer_kit::sql_row]
pub(crate) fn run_from_row<R>(row: &R) -> Result<RunRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let initiated: String = row.try_get("initiated_from")?;
    let mode: String = row.try_get("approval_mode")?;
    let amount: Option<Dec> = row.try_get("amount")?;
    let equity: Dec = row.try_get("equity")?;
    let cash_before: Dec = row.try_get("cash_before")?;
    let minimum: Dec = row.try_get("minimum_order_notional")?;
    let weights: String = row.try_get("weights_json")?;
    let algorithm: String = row.try_get("algorithm_json")?;
    let drift: String = row.try_get("drift_json")?;
    let skipped: String = row.try_get("skipped_json")?;
    let adjustments: String = row.try_get("adjustments_json")?;
    let tax: String = row.try_get("tax_json")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        kind: parsed(RunKind::parse(&kind), "run kind", &kind)?,
        status: parsed(RunStatus::parse(&status), "run status", &status)?,
        initiated_from: parsed(
            InitiatedFrom::parse(&initiated),
            "initiated from",
            &initiated,
        )?,
        reason: row.try_get("reason")?,
        amount: amount.map(|a| a.0),
        portfolio_id: row.try_get("portfolio_id")?,
        portfolio_version: row.try_get("portfolio_version")?,
        approval_mode: parsed(ApprovalMode::parse(&mode), "approval mode", &mode)?,
        batch_id: row.try_get("batch_id")?,
        cash_movement_id: row.try_get("cash_movement_id")?,
        transmission_id: row.try_get("transmission_id")?,
        cancel_requested: row.try_get("cancel_requested")?,
        equity: equity.0,
        cash_before: cash_before.0,
        minimum_order_notional: minimum.0,
        weights: unjson(&weights)?,
        algorithm: unjson(&algorithm)?,
        drift: unjson(&drift)?,
        skipped: unjson(&skipped)?,
        adjustments: unjson(&adjustments)?,
        approved_by: row.try_get("approved_by")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        approved_at: row.try_get("approved_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        canceled_at: row.try_get("canceled_at")?,
        expires_at: row.try_get("expires_at")?,
        broker: row.try_get("broker")?,
        trace_context: row.try_get("trace_context")?,
        tax: if tax.is_empty() {
            None
        } else {
            Some(unjson(&tax)?)
        },
        orders: Vec::new(),
    })
}

#[rebalancer_kit::sql_row]
pub(crate) fn order_from_row<R>(row: &R) -> Result<OrderRecord, StoreError> {
    let side: String = row.try_get("side")?;
    let status: String = row.try_get("status")?;
    let quantity: Dec = row.try_get("quantity")?;
    let notional: Option<Dec> = row.try_get("notional")?;
    let price: Dec = row.try_get("estimated_price")?;
    let filled: Dec = row.try_get("filled_quantity")?;
    let filled_notional: Dec = row.try_get("filled_notional")?;
    // Rows written before the column existed moved their value to the cent.
    let filled_amount: Option<Dec> = row.try_get("filled_amount")?;
    Ok(OrderRecord {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        account_id: row.try_get("account_id")?,
        position: row.try_get("position")?,
        symbol: row.try_get("symbol")?,
        side: parsed(Side::parse(&side), "order side", &side)?,
        quantity: quantity.0,
        notional: notional.map(|n| n.0),
        whole_shares: row.try_get("whole_shares")?,
        estimated_price: price.0,
        status: parsed(OrderStatus::parse(&status), "order status", &status)?,
        filled_quantity: filled.0,
        filled_notional: filled_notional.0,
        filled_amount: filled_amount.map_or_else(|| filled_notional.0.round_dp(2), |a| a.0),
        client_order_id: row.try_get("client_order_id")?,
        block_order_id: row.try_get("block_order_id")?,
        excluded: row.try_get("excluded")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

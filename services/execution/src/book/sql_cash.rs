//! Deposits and withdrawal requests, and the cash they move.

use chrono::{DateTime, Utc};
use rebalancer_domain::cash::{self, CashAction, CashMovementKind, CashMovementStatus};
use rebalancer_kit::db::{DbErrorKind, Dec, classify, find_claimed, insert_claim};
use rebalancer_kit::wire::money_text;
use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row};

use crate::book::store::{CashMovementFilter, CashMovementRecord, CashStore, NewCashMovement};
use crate::store::SqlStore;
use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

const MOVEMENT_COLUMNS: &str =
    "id, account_id, kind, amount, status, run_id, created_at, acknowledged_at, settled_at";

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl CashStore for SqlStore<DB> {
    async fn create_cash_movement(
        &self,
        tenant: &str,
        movement: NewCashMovement,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<CashMovementRecord>, StoreError> {
        if let Some(claim) = &claim
            && let Some(existing) = self.replay_movement(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &movement.id, movement.now).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_movement(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        let Some((cash, earmarked)) =
            Self::lock_account(&mut tx, tenant, &movement.account_id, movement.now).await?
        else {
            return Err(StoreError::NotFound(format!(
                "account {} not found",
                movement.account_id
            )));
        };
        let withdrawal = movement.kind == CashMovementKind::Withdrawal;
        if withdrawal
            && let Some(limit) = movement.withdrawable_limit
            && earmarked + movement.amount > limit
        {
            return Err(StoreError::FailedPrecondition(format!(
                "withdrawal of {} exceeds what account {} can pay out: {} (its value {} less {} already requested)",
                money_text(movement.amount),
                movement.account_id,
                money_text((limit - earmarked).max(Decimal::ZERO)),
                money_text(limit),
                money_text(earmarked)
            )));
        }
        sqlx::query(
            "INSERT INTO cash_movements (tenant_id, id, account_id, kind, amount, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(tenant.to_owned())
        .bind(movement.id.clone())
        .bind(movement.account_id.clone())
        .bind(movement.kind.as_str().to_owned())
        .bind(Dec(movement.amount))
        .bind(movement.now)
        .execute(&mut *tx)
        .await?;
        let delta = cash::cash_on_record(movement.kind, movement.amount);
        if !delta.is_zero() {
            Self::set_cash(&mut tx, tenant, &movement.account_id, cash + delta).await?;
        }
        if withdrawal {
            Self::set_earmarked(
                &mut tx,
                tenant,
                &movement.account_id,
                earmarked + movement.amount,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Created::New(CashMovementRecord {
            id: movement.id,
            account_id: movement.account_id,
            kind: movement.kind,
            amount: movement.amount,
            status: CashMovementStatus::Pending,
            run_id: None,
            created_at: movement.now,
            acknowledged_at: None,
            settled_at: None,
        }))
    }

    async fn claimed_cash_movement(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<CashMovementRecord>, StoreError> {
        self.replay_movement(tenant, claim).await
    }

    async fn get_cash_movement(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<CashMovementRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Self::select_movement(&mut conn, tenant, id).await
    }

    async fn list_cash_movements(
        &self,
        tenant: &str,
        filter: &CashMovementFilter,
        page: &PageRequest,
    ) -> Result<Vec<CashMovementRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {MOVEMENT_COLUMNS} FROM cash_movements WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(account_id) = &filter.account_id {
            query
                .push(" AND account_id = ")
                .push_bind(account_id.clone());
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        if let Some(kind) = filter.kind {
            query
                .push(" AND kind = ")
                .push_bind(kind.as_str().to_owned());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(movement_from_row).collect()
    }

    async fn apply_cash_action(
        &self,
        tenant: &str,
        id: &str,
        action: CashAction,
        run_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CashMovementRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let Some(mut movement) = Self::select_movement(&mut tx, tenant, id).await? else {
            return Err(StoreError::NotFound(format!(
                "cash movement {id} not found"
            )));
        };
        let outcome = cash::transition(movement.kind, movement.status, action, movement.amount)
            .map_err(StoreError::FailedPrecondition)?;
        if outcome.status == movement.status {
            return Ok(movement);
        }
        // A withdrawal's earmark ends when it is paid out or canceled.
        let releases = movement.kind == CashMovementKind::Withdrawal
            && matches!(
                outcome.status,
                CashMovementStatus::Settled | CashMovementStatus::Canceled
            );
        if !outcome.cash_delta.is_zero() || releases {
            let Some((cash, earmarked)) =
                Self::lock_account(&mut tx, tenant, &movement.account_id, now).await?
            else {
                return Err(StoreError::Corrupt(format!(
                    "account {} of movement {id} is gone",
                    movement.account_id
                )));
            };
            let remaining = cash + outcome.cash_delta;
            if remaining < Decimal::ZERO {
                return Err(StoreError::FailedPrecondition(format!(
                    "account {} holds {cash} in cash, less than the {} to pay out; a liquidation must raise it first",
                    movement.account_id, movement.amount
                )));
            }
            if !outcome.cash_delta.is_zero() {
                Self::set_cash(&mut tx, tenant, &movement.account_id, remaining).await?;
            }
            if releases {
                let left = (earmarked - movement.amount).max(Decimal::ZERO);
                Self::set_earmarked(&mut tx, tenant, &movement.account_id, left).await?;
            }
        }
        movement.status = outcome.status;
        match action {
            CashAction::Acknowledge => {
                movement.acknowledged_at = Some(now);
                movement.run_id = run_id.or(movement.run_id);
            }
            CashAction::Settle => movement.settled_at = Some(now),
            CashAction::Cancel => {}
        }
        sqlx::query(
            "UPDATE cash_movements SET status = $3, run_id = $4, acknowledged_at = $5, settled_at = $6 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_owned())
        .bind(id.to_owned())
        .bind(movement.status.as_str().to_owned())
        .bind(movement.run_id.clone())
        .bind(movement.acknowledged_at)
        .bind(movement.settled_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(movement)
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_movement(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<CashMovementRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        match find_claimed::<DB>(&mut conn, tenant, claim).await? {
            Some(id) => Self::select_movement(&mut conn, tenant, &id).await,
            None => Ok(None),
        }
    }

    async fn select_movement(
        conn: &mut DB::Connection,
        tenant: &str,
        id: &str,
    ) -> Result<Option<CashMovementRecord>, StoreError> {
        let sql = format!(
            "SELECT {MOVEMENT_COLUMNS} FROM cash_movements WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(movement_from_row).transpose()
    }

    /// Movements still to act on of the accounts from `first` to `last`, in
    /// account order: pending ones, and acknowledged withdrawals (kept by the
    /// caller only while the cash does not cover them: their run ended
    /// without raising it all).
    pub(crate) async fn pending_movements(
        conn: &mut DB::Connection,
        tenant: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<CashMovementRecord>, StoreError> {
        let sql = format!(
            "SELECT {MOVEMENT_COLUMNS} FROM cash_movements WHERE tenant_id = $1 \
             AND (status = 'pending' OR (kind = 'withdrawal' AND status = 'acknowledged')) \
             AND account_id >= $2 AND account_id <= $3 ORDER BY account_id, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(first.to_owned())
            .bind(last.to_owned())
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(movement_from_row).collect()
    }

    /// Takes the account's row lock (a write first, so SQLite takes its write
    /// lock too) and returns its cash and earmarked cash; `None` when the
    /// account does not exist.
    pub(crate) async fn lock_account(
        conn: &mut DB::Connection,
        tenant: &str,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Decimal, Decimal)>, StoreError> {
        let row = sqlx::query(
            "UPDATE accounts SET revision = revision + 1, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 RETURNING cash, earmarked",
        )
        .bind(tenant.to_owned())
        .bind(account_id.to_owned())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => {
                let cash: Dec = row.try_get("cash")?;
                let earmarked: Dec = row.try_get("earmarked")?;
                Ok(Some((cash.0, earmarked.0)))
            }
            None => Ok(None),
        }
    }

    /// Sets the earmarked cash of an account locked by [`Self::lock_account`].
    pub(crate) async fn set_earmarked(
        conn: &mut DB::Connection,
        tenant: &str,
        account_id: &str,
        earmarked: Decimal,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET earmarked = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_owned())
            .bind(account_id.to_owned())
            .bind(Dec(earmarked))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Sets the cash of an account locked by [`Self::lock_account`].
    pub(crate) async fn set_cash(
        conn: &mut DB::Connection,
        tenant: &str,
        account_id: &str,
        cash: Decimal,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET cash = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_owned())
            .bind(account_id.to_owned())
            .bind(Dec(cash))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[rebalancer_kit::sql_row]
fn movement_from_row<R>(row: &R) -> Result<CashMovementRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let amount: Dec = row.try_get("amount")?;
    Ok(CashMovementRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        kind: CashMovementKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("movement kind {kind:?}")))?,
        amount: amount.0,
        status: CashMovementStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("movement status {status:?}")))?,
        run_id: row.try_get("run_id")?,
        created_at: row.try_get("created_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        settled_at: row.try_get("settled_at")?,
    })
}

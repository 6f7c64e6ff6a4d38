//! Splits applied to the book: every position of the symbol and its lots
//! scaled by new/old shares in one transaction, once per idempotency key.

use chrono::{DateTime, Utc};
use rebalancer_domain::lots::{self, Lot, Split};
use rebalancer_kit::db::{DbErrorKind, Dec, classify, find_claimed, insert_claim, new_id};
use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row};

use crate::book::sql_lots::OPENING_LOT;
use crate::store::{Created, IdempotencyClaim, SqlStore, StoreError};

/// Accounts per statement.
const CHUNK: usize = 500;

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_split(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let Some(id) = find_claimed::<DB>(&mut conn, tenant, claim).await? else {
            return Ok(None);
        };
        let accounts: Option<i64> =
            sqlx::query_scalar("SELECT accounts FROM splits WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_owned())
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(accounts)
    }

    /// Scales every position of the split's symbol and its lots; the
    /// number of accounts changed.
    ///
    /// # Errors
    /// `FailedPrecondition` while orders in the symbol are open.
    pub(crate) async fn split_book(
        &self,
        tenant: &str,
        split: &Split,
        claim: &IdempotencyClaim,
        now: DateTime<Utc>,
    ) -> Result<Created<i64>, StoreError> {
        if let Some(accounts) = self.replay_split(tenant, claim).await? {
            return Ok(Created::Replayed(accounts));
        }
        let symbol = split.symbol.as_str();
        let id = new_id();
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Err(error) = insert_claim::<DB>(&mut tx, tenant, claim, &id, now).await {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(accounts) = self.replay_split(tenant, claim).await?
            {
                return Ok(Created::Replayed(accounts));
            }
            return Err(error.into());
        }
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE tenant_id = $1 AND symbol = $2 \
             AND status IN ('new', 'submitted', 'partially_filled') AND NOT excluded LIMIT 1",
        )
        .bind(tenant.to_owned())
        .bind(symbol.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(order) = open {
            return Err(StoreError::FailedPrecondition(format!(
                "order {order} in {symbol} is open: split after it ends"
            )));
        }
        let rows = sqlx::query(
            "SELECT p.account_id, p.quantity, p.average_cost, a.created_at FROM positions p \
             JOIN accounts a ON a.tenant_id = p.tenant_id AND a.id = p.account_id \
             WHERE p.tenant_id = $1 AND p.symbol = $2 ORDER BY p.account_id",
        )
        .bind(tenant.to_owned())
        .bind(symbol.to_owned())
        .fetch_all(&mut *tx)
        .await?;
        let mut held = Vec::with_capacity(rows.len());
        for row in &rows {
            let quantity: Dec = row.try_get("quantity")?;
            let cost: Dec = row.try_get("average_cost")?;
            let created_at: DateTime<Utc> = row.try_get("created_at")?;
            held.push((
                row.try_get::<String, _>("account_id")?,
                quantity.0,
                cost.0,
                created_at,
            ));
        }
        for chunk in held.chunks(CHUNK) {
            let accounts: Vec<&str> = chunk.iter().map(|(id, ..)| id.as_str()).collect();
            let mut stored = Self::read_lots(&mut *tx, tenant, &accounts, Some(symbol)).await?;
            let mut positions = Vec::with_capacity(chunk.len());
            let mut changed: Vec<(String, String, Lot)> = Vec::new();
            for (account_id, quantity, cost, created_at) in chunk {
                let mut open = lots::cover(
                    stored
                        .remove(&(account_id.clone(), symbol.to_owned()))
                        .unwrap_or_default(),
                    *quantity,
                    *cost,
                    rebalancer_domain::calendar::exchange_date(*created_at),
                    OPENING_LOT,
                );
                lots::split(&mut open, split.new, split.old);
                let scaled: Decimal = open.iter().map(|lot| lot.quantity).sum();
                let average = (*cost * split.old / split.new).round_dp(9);
                positions.push((account_id.clone(), scaled, average));
                changed.extend(
                    open.into_iter()
                        .map(|lot| (account_id.clone(), symbol.to_owned(), lot)),
                );
            }
            let mut upsert = QueryBuilder::<DB>::new(
                "INSERT INTO positions (tenant_id, account_id, symbol, quantity, average_cost) ",
            );
            upsert.push_values(&positions, |mut row, (account_id, quantity, cost)| {
                row.push_bind(tenant.to_owned())
                    .push_bind(account_id.clone())
                    .push_bind(symbol.to_owned())
                    .push_bind(Dec(*quantity))
                    .push_bind(Dec(*cost));
            });
            upsert.push(
                " ON CONFLICT (tenant_id, account_id, symbol) DO UPDATE SET quantity = excluded.quantity, \
                 average_cost = excluded.average_cost",
            );
            upsert.build().execute(&mut *tx).await?;
            Self::change_lots(&mut *tx, tenant, symbol, &changed, &[]).await?;
            let mut bump = QueryBuilder::<DB>::new(
                "UPDATE accounts SET revision = revision + 1, updated_at = ",
            );
            bump.push_bind(now)
                .push(" WHERE tenant_id = ")
                .push_bind(tenant.to_owned())
                .push(" AND id IN (");
            let mut ids = bump.separated(", ");
            for id in &accounts {
                ids.push_bind((*id).to_owned());
            }
            bump.push(")");
            bump.build().execute(&mut *tx).await?;
        }
        let count = i64::try_from(held.len()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO splits (tenant_id, id, symbol, new_shares, old_shares, effective_on, accounts, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.to_owned())
        .bind(id)
        .bind(symbol.to_owned())
        .bind(Dec(split.new))
        .bind(Dec(split.old))
        .bind(split.effective_on.to_string())
        .bind(count)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(count))
    }
}

//! Accounts: cash, positions, restrictions.

use chrono::{DateTime, Utc};
use rebalancer_domain::account::{AccountStatus, AccountType, Restriction};
use rebalancer_domain::preferences::TradingPreferences;
use rebalancer_kit::db::Dec;
use sqlx::{QueryBuilder, Row};

use crate::book::sql_lots::{OPENING_LOT, parse_tax};
use crate::book::store::{
    AccountFilter, AccountRecord, AccountStore, AccountUpsert, HoldingsRange, HoldingsRecord,
    PositionRecord, still_to_raise,
};
use crate::store::SqlStore;
use crate::store::{PageRequest, StoreError};

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl AccountStore for SqlStore<DB> {
    async fn upsert_account(
        &self,
        tenant: &str,
        upsert: AccountUpsert,
    ) -> Result<(AccountRecord, bool), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let current = sqlx::query("SELECT revision, created_at, last_rebalanced_at, earmarked, restrictions, preferences, tax, household_id FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_owned())
            .bind(upsert.id.clone())
            .fetch_optional(&mut *tx)
            .await?;
        let restrictions = restrictions_text(&upsert.restrictions);
        let mut preferences = TradingPreferences::default();
        let mut tax = rebalancer_domain::tax::TaxSettings::default();
        let mut household_id = None;
        let (revision, created_at, last_rebalanced_at, earmarked, created) = match current {
            None => {
                if upsert.expected_revision.is_some() {
                    return Err(StoreError::NotFound(format!(
                        "account {} not found",
                        upsert.id
                    )));
                }
                let inserted = sqlx::query(
                    "INSERT INTO accounts (tenant_id, id, status, cash, restrictions, revision, created_at, updated_at, \
                     account_type, margin_limit) VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7, $8)",
                )
                .bind(tenant.to_owned())
                .bind(upsert.id.clone())
                .bind(upsert.status.as_str().to_owned())
                .bind(Dec(upsert.cash))
                .bind(restrictions)
                .bind(upsert.now)
                .bind(upsert.account_type.as_str().to_owned())
                .bind(Dec(upsert.margin_limit))
                .execute(&mut *tx)
                .await;
                if let Err(error) = inserted {
                    if rebalancer_kit::db::classify(&error)
                        == rebalancer_kit::db::DbErrorKind::UniqueViolation
                    {
                        return Err(StoreError::StaleRevision(format!(
                            "account {} was created concurrently",
                            upsert.id
                        )));
                    }
                    return Err(error.into());
                }
                (1, upsert.now, None, rust_decimal::Decimal::ZERO, true)
            }
            Some(row) => {
                let revision: i64 = row.try_get("revision")?;
                let created_at: DateTime<Utc> = row.try_get("created_at")?;
                let last_rebalanced_at: Option<DateTime<Utc>> =
                    row.try_get("last_rebalanced_at")?;
                let earmarked: Dec = row.try_get("earmarked")?;
                let stored: String = row.try_get("preferences")?;
                preferences = parse_preferences(&stored)?;
                let stored: String = row.try_get("tax")?;
                tax = parse_tax(&stored)?;
                household_id = row.try_get("household_id")?;
                // Reconciliation's restriction stays until a statement agrees.
                let held: String = row.try_get("restrictions")?;
                let restrictions = if parse_restrictions(&held)?.contains(&Restriction::BrokerBreak)
                {
                    let mut kept = upsert.restrictions.clone();
                    kept.push(Restriction::BrokerBreak);
                    restrictions_text(&kept)
                } else {
                    restrictions
                };
                if let Some(expected) = upsert.expected_revision
                    && expected != revision
                {
                    return Err(StoreError::StaleRevision(format!(
                        "account {} changed since etag r{expected} (now r{revision})",
                        upsert.id
                    )));
                }
                let updated = sqlx::query(
                    "UPDATE accounts SET status = $3, cash = $4, restrictions = $5, revision = revision + 1, updated_at = $6, \
                     account_type = $8, margin_limit = $9 WHERE tenant_id = $1 AND id = $2 AND revision = $7 RETURNING revision",
                )
                .bind(tenant.to_owned())
                .bind(upsert.id.clone())
                .bind(upsert.status.as_str().to_owned())
                .bind(Dec(upsert.cash))
                .bind(restrictions)
                .bind(upsert.now)
                .bind(revision)
                .bind(upsert.account_type.as_str().to_owned())
                .bind(Dec(upsert.margin_limit))
                .fetch_optional(&mut *tx)
                .await?;
                if updated.is_none() {
                    return Err(StoreError::StaleRevision(format!(
                        "account {} changed concurrently",
                        upsert.id
                    )));
                }
                sqlx::query("DELETE FROM positions WHERE tenant_id = $1 AND account_id = $2")
                    .bind(tenant.to_owned())
                    .bind(upsert.id.clone())
                    .execute(&mut *tx)
                    .await?;
                (
                    revision + 1,
                    created_at,
                    last_rebalanced_at,
                    earmarked.0,
                    false,
                )
            }
        };
        let mut positions: Vec<PositionRecord> = upsert
            .positions
            .into_iter()
            .filter(|p| !p.quantity.is_zero())
            .collect();
        positions.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        // Lots follow the positions: given ones replace, others are kept
        // and covered to the new quantity.
        let mut stored = Self::read_lots(&mut *tx, tenant, &[upsert.id.as_str()], None).await?;
        let opened = rebalancer_domain::calendar::exchange_date(upsert.now);
        let mut lots = Vec::new();
        for position in &positions {
            let given = upsert
                .lots
                .get(&position.symbol)
                .filter(|lots| !lots.is_empty());
            let kept = match given {
                Some(given) => given.clone(),
                None => rebalancer_domain::lots::cover(
                    stored
                        .remove(&(upsert.id.clone(), position.symbol.clone()))
                        .unwrap_or_default(),
                    position.quantity,
                    position.average_cost,
                    opened,
                    OPENING_LOT,
                ),
            };
            lots.extend(
                kept.into_iter()
                    .map(|lot| (upsert.id.clone(), position.symbol.clone(), lot)),
            );
        }
        Self::replace_lots(&mut *tx, tenant, None, &[upsert.id.as_str()], &lots).await?;
        for position in &positions {
            sqlx::query(
                "INSERT INTO positions (tenant_id, account_id, symbol, quantity, average_cost) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant.to_owned())
            .bind(upsert.id.clone())
            .bind(position.symbol.clone())
            .bind(Dec(position.quantity))
            .bind(Dec(position.average_cost))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut restrictions = upsert.restrictions;
        restrictions.sort();
        restrictions.dedup();
        Ok((
            AccountRecord {
                id: upsert.id,
                status: upsert.status,
                cash: upsert.cash,
                positions,
                restrictions,
                revision,
                created_at,
                updated_at: upsert.now,
                last_rebalanced_at,
                account_type: upsert.account_type,
                margin_limit: upsert.margin_limit,
                earmarked,
                preferences,
                tax,
                household_id,
            },
            created,
        ))
    }

    async fn get_account(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let filter = AccountFilter::default();
        let mut accounts = self
            .select_accounts(tenant, &filter, Some(id), None, 1)
            .await?;
        Ok(accounts.pop())
    }

    async fn set_preferences(
        &self,
        tenant: &str,
        id: &str,
        preferences: &TradingPreferences,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AccountRecord, StoreError> {
        let text = if preferences.is_empty() {
            String::new()
        } else {
            serde_json::to_string(preferences)
                .map_err(|error| StoreError::Corrupt(format!("preferences: {error}")))?
        };
        self.set_account_text(
            tenant,
            id,
            AccountText::Preferences,
            text,
            expected_revision,
            now,
        )
        .await
    }

    async fn list_accounts(
        &self,
        tenant: &str,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        self.select_accounts(tenant, filter, None, page.after.as_deref(), page.limit)
            .await
    }

    async fn holdings_batch(
        &self,
        tenant: &str,
        range: &HoldingsRange,
        limit: u32,
    ) -> Result<Vec<HoldingsRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let accounts =
            Self::select_range(&mut conn, tenant, &AccountFilter::default(), range, limit).await?;
        let (Some(first), Some(last)) = (accounts.first(), accounts.last()) else {
            return Ok(Vec::new());
        };
        let pending = Self::pending_movements(&mut conn, tenant, &first.id, &last.id).await?;
        let open_runs: std::collections::HashMap<String, String> = sqlx::query(
            "SELECT account_id, id FROM runs WHERE tenant_id = $1 AND account_id >= $2 AND account_id <= $3 \
             AND status IN ('proposed', 'queued', 'in_progress')",
        )
        .bind(tenant.to_owned())
        .bind(first.id.clone())
        .bind(last.id.clone())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("account_id")?, row.try_get("id")?)))
        .collect::<Result<_, StoreError>>()?;
        let mut pending = pending.into_iter().peekable();
        let mut batch = Vec::with_capacity(accounts.len());
        for account in accounts {
            let mut mine = Vec::new();
            while let Some(movement) = pending.next_if(|m| m.account_id <= account.id) {
                if movement.account_id == account.id && still_to_raise(&movement, &account) {
                    mine.push(movement);
                }
            }
            let open_run_id = open_runs.get(&account.id).cloned();
            batch.push(HoldingsRecord {
                account,
                pending: mine,
                open_run_id,
            });
        }
        Ok(batch)
    }
}

/// An account's settings stored as JSON text, set by their own RPC.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccountText {
    Preferences,
    Tax,
}

impl AccountText {
    fn column(self) -> &'static str {
        match self {
            Self::Preferences => "preferences",
            Self::Tax => "tax",
        }
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Replaces one settings column of an account (a new revision); the
    /// account as it is now.
    pub(crate) async fn set_account_text(
        &self,
        tenant: &str,
        id: &str,
        column: AccountText,
        text: String,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AccountRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM accounts WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_owned())
                .bind(id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(revision) = current else {
            return Err(StoreError::NotFound(format!("account {id} not found")));
        };
        if let Some(expected) = expected_revision
            && expected != revision
        {
            return Err(StoreError::StaleRevision(format!(
                "account {id} changed since etag r{expected} (now r{revision})"
            )));
        }
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE accounts SET {} = $3, revision = revision + 1, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND revision = $5 RETURNING revision",
            column.column()
        )))
        .bind(tenant.to_owned())
        .bind(id.to_owned())
        .bind(text)
        .bind(now)
        .bind(revision)
        .fetch_optional(&mut *tx)
        .await?;
        if updated.is_none() {
            return Err(StoreError::StaleRevision(format!(
                "account {id} changed concurrently"
            )));
        }
        tx.commit().await?;
        self.get_account(tenant, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {id} not found")))
    }

    /// Accounts in id order, with their positions (one range query for all
    /// the positions of the page).
    async fn select_accounts(
        &self,
        tenant: &str,
        filter: &AccountFilter,
        id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let range = HoldingsRange {
            after: after.map(str::to_owned),
            before: None,
            account_ids: id.map(|id| vec![id.to_owned()]).unwrap_or_default(),
        };
        let mut conn = self.pool().acquire().await?;
        Self::select_range(&mut conn, tenant, filter, &range, limit).await
    }

    pub(crate) async fn select_range(
        conn: &mut DB::Connection,
        tenant: &str,
        filter: &AccountFilter,
        range: &HoldingsRange,
        limit: u32,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT id, status, cash, restrictions, revision, created_at, updated_at, last_rebalanced_at, \
             account_type, margin_limit, earmarked, preferences, tax, household_id FROM accounts WHERE tenant_id = ",
        );
        query.push_bind(tenant.to_owned());
        if !range.account_ids.is_empty() {
            query.push(" AND id IN (");
            let mut ids = query.separated(", ");
            for id in &range.account_ids {
                ids.push_bind(id.clone());
            }
            query.push(")");
        }
        if let Some(after) = &range.after {
            query.push(" AND id > ").push_bind(after.clone());
        }
        if let Some(before) = &range.before {
            query.push(" AND id < ").push_bind(before.clone());
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        if let Some(restriction) = filter.restriction {
            // Stored as a sorted comma list: match a whole name.
            query
                .push(" AND (',' || restrictions || ',') LIKE ")
                .push_bind(format!("%,{},%", restriction.as_str()));
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&mut *conn).await?;
        let mut accounts = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: String = row.try_get("status")?;
            let cash: Dec = row.try_get("cash")?;
            let restrictions: String = row.try_get("restrictions")?;
            let account_type: String = row.try_get("account_type")?;
            let margin_limit: Dec = row.try_get("margin_limit")?;
            let earmarked: Dec = row.try_get("earmarked")?;
            let preferences: String = row.try_get("preferences")?;
            let tax: String = row.try_get("tax")?;
            accounts.push(AccountRecord {
                id: row.try_get("id")?,
                status: AccountStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("account status {status:?}")))?,
                cash: cash.0,
                positions: Vec::new(),
                restrictions: parse_restrictions(&restrictions)?,
                revision: row.try_get("revision")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                last_rebalanced_at: row.try_get("last_rebalanced_at")?,
                account_type: AccountType::parse(&account_type)
                    .ok_or_else(|| StoreError::Corrupt(format!("account type {account_type:?}")))?,
                margin_limit: margin_limit.0,
                earmarked: earmarked.0,
                preferences: parse_preferences(&preferences)?,
                tax: parse_tax(&tax)?,
                household_id: row.try_get("household_id")?,
            });
        }
        let (Some(first), Some(last)) = (accounts.first(), accounts.last()) else {
            return Ok(accounts);
        };
        let position_rows = sqlx::query(
            "SELECT account_id, symbol, quantity, average_cost FROM positions \
             WHERE tenant_id = $1 AND account_id >= $2 AND account_id <= $3 ORDER BY account_id, symbol",
        )
        .bind(tenant.to_owned())
        .bind(first.id.clone())
        .bind(last.id.clone())
        .fetch_all(&mut *conn)
        .await?;
        let mut index = 0;
        // By position, not by name: ten million rows in a monitor cycle.
        for row in &position_rows {
            let account_id: &str = row.try_get(0)?;
            while index < accounts.len() && accounts[index].id.as_str() < account_id {
                index += 1;
            }
            let Some(account) = accounts.get_mut(index).filter(|a| a.id == account_id) else {
                continue;
            };
            let quantity: Dec = row.try_get(2)?;
            let average_cost: Dec = row.try_get(3)?;
            account.positions.push(PositionRecord {
                symbol: row.try_get(1)?,
                quantity: quantity.0,
                average_cost: average_cost.0,
            });
        }
        Ok(accounts)
    }
}

/// Restrictions as stored: sorted names joined by commas.
/// Stored preferences: '' is none.
fn parse_preferences(text: &str) -> Result<TradingPreferences, StoreError> {
    if text.is_empty() {
        return Ok(TradingPreferences::default());
    }
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("preferences: {error}")))
}

fn restrictions_text(restrictions: &[Restriction]) -> String {
    let mut names: Vec<&str> = restrictions.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn parse_restrictions(text: &str) -> Result<Vec<Restriction>, StoreError> {
    let mut restrictions = Vec::new();
    for name in text.split(',').filter(|name| !name.is_empty()) {
        restrictions.push(
            Restriction::parse(name)
                .ok_or_else(|| StoreError::Corrupt(format!("restriction {name:?}")))?,
        );
    }
    restrictions.sort();
    Ok(restrictions)
}

//! Tax lots in storage: an account's open lots per position, the lots its
//! sales closed (realized gains), and its tax settings. Lots change with
//! the position, in the same transaction: on upsert and when fills are
//! booked.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::lots::{ClosedLot, Lot};
use rebalancer_domain::tax::TaxSettings;
use rebalancer_kit::db::Dec;
use sqlx::{QueryBuilder, Row};

use crate::book::sql_accounts::AccountText;
use crate::book::store::{AccountRecord, LotStore, RealizedLot};
use crate::store::{SqlStore, StoreError};

/// The id a position's shares not covered by lots are read under.
pub(crate) const OPENING_LOT: &str = "opening";

/// Stored tax settings: '' is the default.
pub(crate) fn parse_tax(text: &str) -> Result<TaxSettings, StoreError> {
    if text.is_empty() {
        return Ok(TaxSettings::default());
    }
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("tax settings: {error}")))
}

fn tax_text(settings: &TaxSettings) -> Result<String, StoreError> {
    if settings.is_default() {
        return Ok(String::new());
    }
    serde_json::to_string(settings)
        .map_err(|error| StoreError::Corrupt(format!("tax settings: {error}")))
}

fn date(text: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("lot date {text:?}")))
}

/// A sale's closed lots as realized-gain rows.
#[derive(Debug, Clone)]
pub(crate) struct Realized<'a> {
    pub account_id: &'a str,
    pub symbol: &'a str,
    pub order_id: &'a str,
    pub fill_id: &'a str,
    pub sold_on: NaiveDate,
    pub closed: &'a ClosedLot,
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Open lots of `accounts` (of `symbol` only, when given), by account
    /// and symbol, each in acquisition order.
    pub(crate) async fn read_lots(
        conn: &mut DB::Connection,
        tenant: &str,
        accounts: &[&str],
        symbol: Option<&str>,
    ) -> Result<HashMap<(String, String), Vec<Lot>>, StoreError> {
        let mut lots: HashMap<(String, String), Vec<Lot>> = HashMap::new();
        if accounts.is_empty() {
            return Ok(lots);
        }
        let mut query = QueryBuilder::<DB>::new(
            "SELECT account_id, symbol, lot_id, quantity, basis, acquired FROM tax_lots WHERE tenant_id = ",
        );
        query.push_bind(tenant.to_owned());
        if let Some(symbol) = symbol {
            query.push(" AND symbol = ").push_bind(symbol.to_owned());
        }
        query.push(" AND account_id IN (");
        let mut ids = query.separated(", ");
        for id in accounts {
            ids.push_bind((*id).to_owned());
        }
        query.push(") ORDER BY account_id, symbol, acquired, lot_id");
        for row in query.build().fetch_all(&mut *conn).await? {
            let quantity: Dec = row.try_get("quantity")?;
            let basis: Dec = row.try_get("basis")?;
            let acquired: String = row.try_get("acquired")?;
            lots.entry((row.try_get("account_id")?, row.try_get("symbol")?))
                .or_default()
                .push(Lot {
                    id: row.try_get("lot_id")?,
                    quantity: quantity.0,
                    basis: basis.0,
                    acquired: date(&acquired)?,
                });
        }
        Ok(lots)
    }

    /// Replaces the lots of `symbol` in each of `accounts` with the given
    /// ones (an account missing from `lots` ends with none).
    pub(crate) async fn replace_lots(
        conn: &mut DB::Connection,
        tenant: &str,
        symbol: Option<&str>,
        accounts: &[&str],
        lots: &[(String, String, Lot)],
    ) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let mut delete = QueryBuilder::<DB>::new("DELETE FROM tax_lots WHERE tenant_id = ");
        delete.push_bind(tenant.to_owned());
        if let Some(symbol) = symbol {
            delete.push(" AND symbol = ").push_bind(symbol.to_owned());
        }
        delete.push(" AND account_id IN (");
        let mut ids = delete.separated(", ");
        for id in accounts {
            ids.push_bind((*id).to_owned());
        }
        delete.push(")");
        delete.build().execute(&mut *conn).await?;
        Self::upsert_lots(conn, tenant, lots).await
    }

    /// Inserts or updates lots as (account, symbol, lot).
    async fn upsert_lots(
        conn: &mut DB::Connection,
        tenant: &str,
        lots: &[(String, String, Lot)],
    ) -> Result<(), StoreError> {
        // Seven binds a row: well under SQLite's 32,766.
        for chunk in lots.chunks(1000) {
            let mut upsert = QueryBuilder::<DB>::new(
                "INSERT INTO tax_lots (tenant_id, account_id, symbol, lot_id, quantity, basis, acquired) ",
            );
            upsert.push_values(chunk, |mut row, (account_id, symbol, lot)| {
                row.push_bind(tenant.to_owned())
                    .push_bind(account_id.clone())
                    .push_bind(symbol.clone())
                    .push_bind(lot.id.clone())
                    .push_bind(Dec(lot.quantity))
                    .push_bind(Dec(lot.basis))
                    .push_bind(lot.acquired.to_string());
            });
            upsert.push(
                " ON CONFLICT (tenant_id, account_id, symbol, lot_id) DO UPDATE SET \
                 quantity = excluded.quantity, basis = excluded.basis, acquired = excluded.acquired",
            );
            upsert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The lots each of `orders` was planned to close, by order id (from
    /// its run's tax estimate).
    pub(crate) async fn planned_lots(
        conn: &mut DB::Connection,
        tenant: &str,
        orders: &[&str],
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let mut planned = HashMap::new();
        if orders.is_empty() {
            return Ok(planned);
        }
        let mut query = QueryBuilder::<DB>::new("SELECT tax_json FROM runs WHERE tenant_id = ");
        query
            .push_bind(tenant.to_owned())
            .push(" AND tax_json <> '' AND id IN (SELECT run_id FROM orders WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND id IN (");
        let mut ids = query.separated(", ");
        for id in orders {
            ids.push_bind((*id).to_owned());
        }
        query.push("))");
        for row in query.build().fetch_all(&mut *conn).await? {
            let text: String = row.try_get("tax_json")?;
            let tax: crate::runs::store::RunTax = serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("run tax: {error}")))?;
            for order in tax.orders {
                planned.insert(
                    order.order_id,
                    order.lots.into_iter().map(|lot| lot.lot_id).collect(),
                );
            }
        }
        Ok(planned)
    }

    /// Writes the lots of `symbol` that changed (inserted or updated) and
    /// deletes those closed, as (account, lot id).
    pub(crate) async fn change_lots(
        conn: &mut DB::Connection,
        tenant: &str,
        symbol: &str,
        changed: &[(String, String, Lot)],
        gone: &[(String, String)],
    ) -> Result<(), StoreError> {
        Self::upsert_lots(conn, tenant, changed).await?;
        for chunk in gone.chunks(400) {
            let mut delete = QueryBuilder::<DB>::new("DELETE FROM tax_lots WHERE tenant_id = ");
            delete
                .push_bind(tenant.to_owned())
                .push(" AND symbol = ")
                .push_bind(symbol.to_owned())
                .push(" AND (");
            for (index, (account_id, lot_id)) in chunk.iter().enumerate() {
                if index > 0 {
                    delete.push(" OR ");
                }
                delete
                    .push("(account_id = ")
                    .push_bind(account_id.clone())
                    .push(" AND lot_id = ")
                    .push_bind(lot_id.clone())
                    .push(")");
            }
            delete.push(")");
            delete.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Records what sales closed.
    pub(crate) async fn insert_realized(
        conn: &mut DB::Connection,
        tenant: &str,
        rows: &[Realized<'_>],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(1000) {
            let mut insert = QueryBuilder::<DB>::new(
                "INSERT INTO realized_lots (tenant_id, account_id, symbol, order_id, fill_id, lot_id, acquired, \
                 sold_on, quantity, basis, proceeds, term) ",
            );
            insert.push_values(chunk, |mut row, realized| {
                row.push_bind(tenant.to_owned())
                    .push_bind(realized.account_id.to_owned())
                    .push_bind(realized.symbol.to_owned())
                    .push_bind(realized.order_id.to_owned())
                    .push_bind(realized.fill_id.to_owned())
                    .push_bind(realized.closed.lot_id.clone())
                    .push_bind(realized.closed.acquired.to_string())
                    .push_bind(realized.sold_on.to_string())
                    .push_bind(Dec(realized.closed.quantity))
                    .push_bind(Dec(realized.closed.basis))
                    .push_bind(Dec(realized.closed.proceeds))
                    .push_bind(realized.closed.term.as_str().to_owned());
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl LotStore for SqlStore<DB> {
    async fn account_lots(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<HashMap<String, Vec<Lot>>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let lots = Self::read_lots(&mut conn, tenant, &[account_id], None).await?;
        Ok(lots
            .into_iter()
            .map(|((_, symbol), lots)| (symbol, lots))
            .collect())
    }

    async fn realized(
        &self,
        tenant: &str,
        account_id: &str,
        since: NaiveDate,
        limit: u32,
    ) -> Result<Vec<RealizedLot>, StoreError> {
        let rows = sqlx::query(
            "SELECT symbol, order_id, lot_id, acquired, sold_on, quantity, basis, proceeds, term FROM realized_lots \
             WHERE tenant_id = $1 AND account_id = $2 AND sold_on >= $3 ORDER BY sold_on, order_id, lot_id LIMIT $4",
        )
        .bind(tenant.to_owned())
        .bind(account_id.to_owned())
        .bind(since.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut realized = Vec::with_capacity(rows.len());
        for row in &rows {
            let quantity: Dec = row.try_get("quantity")?;
            let basis: Dec = row.try_get("basis")?;
            let proceeds: Dec = row.try_get("proceeds")?;
            let acquired: String = row.try_get("acquired")?;
            let sold_on: String = row.try_get("sold_on")?;
            realized.push(RealizedLot {
                symbol: row.try_get("symbol")?,
                order_id: row.try_get("order_id")?,
                lot_id: row.try_get("lot_id")?,
                acquired: date(&acquired)?,
                sold_on: date(&sold_on)?,
                quantity: quantity.0,
                basis: basis.0,
                proceeds: proceeds.0,
                term: row.try_get("term")?,
            });
        }
        Ok(realized)
    }

    async fn apply_split(
        &self,
        tenant: &str,
        split: &rebalancer_domain::lots::Split,
        claim: &crate::store::IdempotencyClaim,
        now: DateTime<Utc>,
    ) -> Result<crate::store::Created<i64>, StoreError> {
        self.split_book(tenant, split, claim, now).await
    }

    async fn set_tax_settings(
        &self,
        tenant: &str,
        id: &str,
        settings: &TaxSettings,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AccountRecord, StoreError> {
        let text = tax_text(settings)?;
        self.set_account_text(tenant, id, AccountText::Tax, text, expected_revision, now)
            .await
    }
}

//! Households, identical securities and the wash-sale window in SQL.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::Symbol;
use rebalancer_domain::household::Household;
use rebalancer_domain::portfolio::Weight;
use rebalancer_kit::db::Dec;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row};

use crate::book::households::{BuyRow, HouseholdRecord, HouseholdStore, LossRow};
use crate::store::{PageRequest, SqlStore, StoreError};

/// A model weight as stored; `symbol` `None` is cash.
#[derive(Debug, Serialize, Deserialize)]
struct StoredWeight {
    symbol: Option<String>,
    percent: Decimal,
}

fn weights_json(weights: &[Weight]) -> Result<String, StoreError> {
    let stored: Vec<StoredWeight> = weights
        .iter()
        .map(|w| StoredWeight {
            symbol: w.symbol().map(ToString::to_string),
            percent: w.percent,
        })
        .collect();
    serde_json::to_string(&stored).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn weights_from(text: &str) -> Result<Vec<Weight>, StoreError> {
    let stored: Vec<StoredWeight> =
        serde_json::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    stored
        .into_iter()
        .map(|w| match w.symbol {
            None => Ok(Weight::cash(w.percent)),
            Some(symbol) => Symbol::parse(&symbol)
                .map(|symbol| Weight::asset(symbol, w.percent))
                .map_err(|_| StoreError::Corrupt(format!("household symbol {symbol:?}"))),
        })
        .collect()
}

fn date(text: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("date {text:?}")))
}

const HOUSEHOLD_COLUMNS: &str =
    "id, name, weights_json, inefficient, revision, created_at, updated_at";

#[rebalancer_kit::sql_row]
fn household_from_row<R>(row: &R) -> Result<HouseholdRecord, StoreError> {
    let weights: String = row.try_get("weights_json")?;
    let inefficient: String = row.try_get("inefficient")?;
    Ok(HouseholdRecord {
        household: Household {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            account_ids: Vec::new(),
            weights: weights_from(&weights)?,
            tax_inefficient_symbols: inefficient
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| Symbol::parse(s).map_err(|_| StoreError::Corrupt(format!("symbol {s:?}"))))
                .collect::<Result<_, _>>()?,
        },
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Member account ids of each of `households`, in id order.
    async fn members(
        conn: &mut DB::Connection,
        tenant: &str,
        households: &mut [HouseholdRecord],
    ) -> Result<(), StoreError> {
        if households.is_empty() {
            return Ok(());
        }
        let mut query =
            QueryBuilder::<DB>::new("SELECT household_id, id FROM accounts WHERE tenant_id = ");
        query
            .push_bind(tenant.to_owned())
            .push(" AND household_id IN (");
        let mut ids = query.separated(", ");
        for record in households.iter() {
            ids.push_bind(record.household.id.clone());
        }
        query.push(") ORDER BY id");
        let mut by_household: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in query.build().fetch_all(&mut *conn).await? {
            by_household
                .entry(row.try_get("household_id")?)
                .or_default()
                .push(row.try_get("id")?);
        }
        for record in households {
            record.household.account_ids = by_household
                .remove(&record.household.id)
                .unwrap_or_default();
        }
        Ok(())
    }
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl HouseholdStore for SqlStore<DB> {
    async fn upsert_household(
        &self,
        tenant: &str,
        household: &Household,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(HouseholdRecord, bool), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let current: Option<(i64, DateTime<Utc>)> = sqlx::query(
            "SELECT revision, created_at FROM households WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_owned())
        .bind(household.id.clone())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| Ok::<_, StoreError>((row.try_get("revision")?, row.try_get("created_at")?)))
        .transpose()?;
        match (current, expected_revision) {
            (None, Some(_)) => {
                return Err(StoreError::NotFound(format!(
                    "household {} not found",
                    household.id
                )));
            }
            (Some((revision, _)), Some(expected)) if revision != expected => {
                return Err(StoreError::StaleRevision(format!(
                    "household {} changed since etag r{expected} (now r{revision})",
                    household.id
                )));
            }
            _ => {}
        }
        // Every member is in the book and in no other household.
        let mut query =
            QueryBuilder::<DB>::new("SELECT id, household_id FROM accounts WHERE tenant_id = ");
        query.push_bind(tenant.to_owned()).push(" AND id IN (");
        let mut ids = query.separated(", ");
        for id in &household.account_ids {
            ids.push_bind(id.clone());
        }
        query.push(")");
        let mut found: BTreeMap<String, Option<String>> = BTreeMap::new();
        for row in query.build().fetch_all(&mut *tx).await? {
            found.insert(row.try_get("id")?, row.try_get("household_id")?);
        }
        for id in &household.account_ids {
            match found.get(id) {
                None => return Err(StoreError::NotFound(format!("account {id} not found"))),
                Some(Some(other)) if other != &household.id => {
                    return Err(StoreError::FailedPrecondition(format!(
                        "account {id} is in household {other}"
                    )));
                }
                Some(_) => {}
            }
        }
        let weights = weights_json(&household.weights)?;
        let inefficient = household
            .tax_inefficient_symbols
            .iter()
            .map(Symbol::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let (revision, created_at, created) = match current {
            None => {
                sqlx::query(
                    "INSERT INTO households (tenant_id, id, name, weights_json, inefficient, revision, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
                )
                .bind(tenant.to_owned())
                .bind(household.id.clone())
                .bind(household.name.clone())
                .bind(weights)
                .bind(inefficient)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                (1, now, true)
            }
            Some((revision, created_at)) => {
                let updated = sqlx::query(
                    "UPDATE households SET name = $3, weights_json = $4, inefficient = $5, revision = revision + 1, \
                     updated_at = $6 WHERE tenant_id = $1 AND id = $2 AND revision = $7 RETURNING revision",
                )
                .bind(tenant.to_owned())
                .bind(household.id.clone())
                .bind(household.name.clone())
                .bind(weights)
                .bind(inefficient)
                .bind(now)
                .bind(revision)
                .fetch_optional(&mut *tx)
                .await?;
                if updated.is_none() {
                    return Err(StoreError::StaleRevision(format!(
                        "household {} changed concurrently",
                        household.id
                    )));
                }
                (revision + 1, created_at, false)
            }
        };
        sqlx::query(
            "UPDATE accounts SET household_id = NULL WHERE tenant_id = $1 AND household_id = $2",
        )
        .bind(tenant.to_owned())
        .bind(household.id.clone())
        .execute(&mut *tx)
        .await?;
        let mut join = QueryBuilder::<DB>::new("UPDATE accounts SET household_id = ");
        join.push_bind(household.id.clone())
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND id IN (");
        let mut ids = join.separated(", ");
        for id in &household.account_ids {
            ids.push_bind(id.clone());
        }
        join.push(")");
        join.build().execute(&mut *tx).await?;
        tx.commit().await?;
        let mut members = household.account_ids.clone();
        members.sort();
        Ok((
            HouseholdRecord {
                household: Household {
                    account_ids: members,
                    ..household.clone()
                },
                revision,
                created_at,
                updated_at: now,
            },
            created,
        ))
    }

    async fn get_household(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<HouseholdRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let sql =
            format!("SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut records = vec![household_from_row(&row)?];
        Self::members(&mut conn, tenant, &mut records).await?;
        Ok(records.pop())
    }

    async fn list_households(
        &self,
        tenant: &str,
        page: &PageRequest,
    ) -> Result<Vec<HouseholdRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id > ").push_bind(after.clone());
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit));
        let mut records = query
            .build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(household_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Self::members(&mut conn, tenant, &mut records).await?;
        Ok(records)
    }

    async fn set_identical_securities(
        &self,
        tenant: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM identical_securities WHERE tenant_id = $1")
            .bind(tenant.to_owned())
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(String, i64)> = groups
            .iter()
            .enumerate()
            .flat_map(|(index, group)| {
                let number = i64::try_from(index).unwrap_or(i64::MAX);
                group.iter().map(move |symbol| (symbol.clone(), number))
            })
            .collect();
        for chunk in rows.chunks(1000) {
            let mut insert = QueryBuilder::<DB>::new(
                "INSERT INTO identical_securities (tenant_id, symbol, group_no) ",
            );
            insert.push_values(chunk, |mut row, (symbol, number)| {
                row.push_bind(tenant.to_owned())
                    .push_bind(symbol.clone())
                    .push_bind(*number);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn identical_securities(&self, tenant: &str) -> Result<Vec<Vec<String>>, StoreError> {
        let rows = sqlx::query(
            "SELECT symbol, group_no FROM identical_securities WHERE tenant_id = $1 ORDER BY group_no, symbol",
        )
        .bind(tenant.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut groups: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for row in &rows {
            let number: i64 = row.try_get("group_no")?;
            groups
                .entry(number)
                .or_default()
                .push(row.try_get("symbol")?);
        }
        let mut groups: Vec<Vec<String>> = groups.into_values().collect();
        groups.sort();
        Ok(groups)
    }

    async fn wash_window(
        &self,
        tenant: &str,
        accounts: &[String],
        since: NaiveDate,
    ) -> Result<(Vec<LossRow>, Vec<BuyRow>), StoreError> {
        if accounts.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut conn = self.pool().acquire().await?;
        let mut query = QueryBuilder::<DB>::new(
            "SELECT account_id, symbol, lot_id, acquired, sold_on, basis, proceeds FROM realized_lots WHERE tenant_id = ",
        );
        query
            .push_bind(tenant.to_owned())
            .push(" AND sold_on >= ")
            .push_bind(since.to_string())
            .push(" AND account_id IN (");
        let mut ids = query.separated(", ");
        for id in accounts {
            ids.push_bind(id.clone());
        }
        query.push(")");
        let mut losses = Vec::new();
        let mut buys = Vec::new();
        for row in query.build().fetch_all(&mut *conn).await? {
            // A lot bought in the window and sold since was a purchase too.
            let acquired: String = row.try_get("acquired")?;
            let acquired = date(&acquired)?;
            if acquired >= since {
                buys.push(BuyRow {
                    account_id: row.try_get("account_id")?,
                    symbol: row.try_get("symbol")?,
                    lot_id: row.try_get("lot_id")?,
                    acquired,
                });
            }
            let basis: Dec = row.try_get("basis")?;
            let proceeds: Dec = row.try_get("proceeds")?;
            if proceeds.0 < basis.0 {
                let sold_on: String = row.try_get("sold_on")?;
                losses.push(LossRow {
                    account_id: row.try_get("account_id")?,
                    symbol: row.try_get("symbol")?,
                    sold_on: date(&sold_on)?,
                    loss: basis.0 - proceeds.0,
                });
            }
        }
        let mut query = QueryBuilder::<DB>::new(
            "SELECT account_id, symbol, lot_id, acquired FROM tax_lots WHERE tenant_id = ",
        );
        query
            .push_bind(tenant.to_owned())
            .push(" AND acquired >= ")
            .push_bind(since.to_string())
            .push(" AND account_id IN (");
        let mut ids = query.separated(", ");
        for id in accounts {
            ids.push_bind(id.clone());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            let acquired: String = row.try_get("acquired")?;
            buys.push(BuyRow {
                account_id: row.try_get("account_id")?,
                symbol: row.try_get("symbol")?,
                lot_id: row.try_get("lot_id")?,
                acquired: date(&acquired)?,
            });
        }
        Ok((losses, buys))
    }
}

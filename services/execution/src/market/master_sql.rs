//! The asset master, uploaded quotes and calendar overrides in SQL. Bulk
//! writes go in multi-row statements of [`ROWS_PER_STATEMENT`] rows inside
//! one transaction, so a universe of 10,000 symbols is a handful of round trips.

use chrono::{NaiveDate, NaiveTime};
use rebalancer_domain::calendar_days::{CalendarDay, DayHours};
use rebalancer_kit::db::Dec;
use sqlx::{QueryBuilder, Row};

use crate::market::store::{MasterStore, StoredCalendarDay};
use crate::market::{Asset, Quote};
use crate::store::{SqlStore, StoreError};

/// Rows per INSERT (14 binds each stays under SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 1000;

const ASSET_COLUMNS: &str = "symbol, name, asset_class, exchange, currency, active, tradable, fractionable, \
     marginable, min_order_size, lot_size, average_daily_volume, source, updated_at";

fn push_assets<'q, DB>(query: &mut QueryBuilder<DB>, chunk: &'q [Asset])
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Dec: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Dec>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<chrono::DateTime<chrono::Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query.push_values(chunk, |mut row, asset| {
        row.push_bind(asset.symbol.clone())
            .push_bind(asset.name.clone())
            .push_bind(asset.asset_class.clone())
            .push_bind(asset.exchange.clone())
            .push_bind(asset.currency.clone())
            .push_bind(asset.active)
            .push_bind(asset.tradable)
            .push_bind(asset.fractionable)
            .push_bind(asset.marginable)
            .push_bind(Dec(asset.min_order_size))
            .push_bind(Dec(asset.lot_size))
            .push_bind(asset.average_daily_volume.map(Dec))
            .push_bind(asset.source.clone())
            .push_bind(asset.updated_at);
    });
}

fn hhmm(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl MasterStore for SqlStore<DB> {
    async fn master_assets(&self) -> Result<Vec<Asset>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets ORDER BY symbol"
        )))
        .fetch_all(self.pool())
        .await?;
        let mut assets = Vec::with_capacity(rows.len());
        for row in &rows {
            let fractionable: bool = row.try_get("fractionable")?;
            let min_order_size: Dec = row.try_get("min_order_size")?;
            let lot_size: Dec = row.try_get("lot_size")?;
            let volume: Option<Dec> = row.try_get("average_daily_volume")?;
            assets.push(Asset {
                symbol: row.try_get("symbol")?,
                name: row.try_get("name")?,
                exchange: row.try_get("exchange")?,
                asset_class: row.try_get("asset_class")?,
                active: row.try_get("active")?,
                tradable: row.try_get("tradable")?,
                fractionable,
                min_increment: Asset::step(fractionable, lot_size.0),
                currency: row.try_get("currency")?,
                marginable: row.try_get("marginable")?,
                min_order_size: min_order_size.0,
                lot_size: lot_size.0,
                average_daily_volume: volume.map(|v| v.0),
                source: row.try_get("source")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        Ok(assets)
    }

    async fn seed_assets(&self, assets: &[Asset]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for chunk in assets.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<DB>::new(format!("INSERT INTO assets ({ASSET_COLUMNS}) "));
            push_assets(&mut query, chunk);
            query.push(" ON CONFLICT (symbol) DO NOTHING");
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_assets(&self, assets: &[Asset]) -> Result<usize, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let mut existing = 0;
        for chunk in assets.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<DB>::new("SELECT symbol FROM assets WHERE symbol IN (");
            let mut symbols = query.separated(", ");
            for asset in chunk {
                symbols.push_bind(asset.symbol.clone());
            }
            query.push(")");
            existing += query.build().fetch_all(&mut *tx).await?.len();
        }
        for chunk in assets.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<DB>::new(format!("INSERT INTO assets ({ASSET_COLUMNS}) "));
            push_assets(&mut query, chunk);
            query.push(
                " ON CONFLICT (symbol) DO UPDATE SET name = excluded.name, asset_class = excluded.asset_class, \
                 exchange = excluded.exchange, currency = excluded.currency, active = excluded.active, \
                 tradable = excluded.tradable, fractionable = excluded.fractionable, \
                 marginable = excluded.marginable, min_order_size = excluded.min_order_size, \
                 lot_size = excluded.lot_size, average_daily_volume = excluded.average_daily_volume, \
                 source = excluded.source, updated_at = excluded.updated_at",
            );
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(assets.len() - existing)
    }

    async fn master_quotes(&self) -> Result<Vec<Quote>, StoreError> {
        let rows =
            sqlx::query("SELECT symbol, last, bid, ask, quoted_at FROM quotes ORDER BY symbol")
                .fetch_all(self.pool())
                .await?;
        let mut quotes = Vec::with_capacity(rows.len());
        for row in &rows {
            let last: Dec = row.try_get("last")?;
            let bid: Dec = row.try_get("bid")?;
            let ask: Dec = row.try_get("ask")?;
            quotes.push(Quote {
                symbol: row.try_get("symbol")?,
                last: last.0,
                bid: bid.0,
                ask: ask.0,
                timestamp: row.try_get("quoted_at")?,
            });
        }
        Ok(quotes)
    }

    async fn upsert_quotes(&self, quotes: &[Quote]) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        let mut stored = Vec::with_capacity(quotes.len());
        for chunk in quotes.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<DB>::new("INSERT INTO quotes (symbol, last, bid, ask, quoted_at) ");
            query.push_values(chunk, |mut row, quote| {
                row.push_bind(quote.symbol.clone())
                    .push_bind(Dec(quote.last))
                    .push_bind(Dec(quote.bid))
                    .push_bind(Dec(quote.ask))
                    .push_bind(quote.timestamp);
            });
            query.push(
                " ON CONFLICT (symbol) DO UPDATE SET last = excluded.last, bid = excluded.bid, \
                 ask = excluded.ask, quoted_at = excluded.quoted_at \
                 WHERE excluded.quoted_at >= quotes.quoted_at RETURNING symbol",
            );
            for row in query.build().fetch_all(&mut *tx).await? {
                stored.push(row.try_get("symbol")?);
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn calendar_days(&self) -> Result<Vec<StoredCalendarDay>, StoreError> {
        let rows = sqlx::query(
            "SELECT calendar, day, kind, open_time, close_time, name, actor, updated_at \
             FROM calendar_days ORDER BY calendar, day",
        )
        .fetch_all(self.pool())
        .await?;
        let mut days = Vec::with_capacity(rows.len());
        for row in &rows {
            let day: String = row.try_get("day")?;
            let kind: String = row.try_get("kind")?;
            let open: Option<String> = row.try_get("open_time")?;
            let close: Option<String> = row.try_get("close_time")?;
            let corrupt = || StoreError::Corrupt(format!("calendar day {day:?} {kind:?}"));
            let time = |text: Option<String>| {
                text.and_then(|text| NaiveTime::parse_from_str(&text, "%H:%M").ok())
            };
            let hours = match kind.as_str() {
                "closed" => DayHours::Closed,
                "session" => DayHours::Session {
                    open: time(open).ok_or_else(corrupt)?,
                    close: time(close).ok_or_else(corrupt)?,
                },
                _ => return Err(corrupt()),
            };
            days.push(StoredCalendarDay {
                calendar: row.try_get("calendar")?,
                day: CalendarDay {
                    date: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|_| corrupt())?,
                    hours,
                    name: row.try_get("name")?,
                },
                actor: row.try_get("actor")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        Ok(days)
    }

    async fn put_calendar_days(&self, days: &[StoredCalendarDay]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        for stored in days {
            let (kind, open, close) = match stored.day.hours {
                DayHours::Closed => ("closed", None, None),
                DayHours::Session { open, close } => {
                    ("session", Some(hhmm(open)), Some(hhmm(close)))
                }
            };
            sqlx::query(
                "INSERT INTO calendar_days (calendar, day, kind, open_time, close_time, name, actor, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (calendar, day) DO UPDATE SET kind = excluded.kind, open_time = excluded.open_time, \
                 close_time = excluded.close_time, name = excluded.name, actor = excluded.actor, \
                 updated_at = excluded.updated_at",
            )
            .bind(stored.calendar.clone())
            .bind(stored.day.date.format("%Y-%m-%d").to_string())
            .bind(kind.to_owned())
            .bind(open)
            .bind(close)
            .bind(stored.day.name.clone())
            .bind(stored.actor.clone())
            .bind(stored.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_calendar_day(
        &self,
        calendar: &str,
        date: NaiveDate,
    ) -> Result<bool, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM calendar_days WHERE calendar = $1 AND day = $2 RETURNING day")
                .bind(calendar.to_owned())
                .bind(date.format("%Y-%m-%d").to_string())
                .fetch_optional(self.pool())
                .await?;
        Ok(deleted.is_some())
    }
}

//! Booking fills to accounts: the one place where a fill changes an
//! account's cash and positions (average cost kept per position). The
//! arithmetic is `rebalancer_domain::booking`; this reads and writes the rows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rebalancer_domain::booking::{self, Booking, Position};
use rebalancer_domain::lots::{self, Lot};
use rebalancer_domain::trades::Side;
use rebalancer_kit::db::Dec;
use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row};

use crate::blocks::sql::CHUNK;
use crate::blocks::store::AllocationRecord;
use crate::book::sql_lots::{OPENING_LOT, Realized, parse_tax};
use crate::store::{SqlStore, StoreError};

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// Moves allocations into the account book: cash by each allocation's
    /// amount, positions by its quantity, the average cost on buys. Accounts
    /// are locked (revision bumped) in id order, a chunk at a time.
    ///
    /// A sale of shares the account no longer holds (its position was
    /// lowered after the order was sized) is a break: only the shares held
    /// are paid for, and the break is returned as (order id, what happened)
    /// for the order's reason.
    pub(crate) async fn book_allocations(
        conn: &mut DB::Connection,
        tenant: &str,
        allocations: &[AllocationRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut breaks = Vec::new();
        let mut by_symbol: BTreeMap<&str, BTreeMap<&str, Vec<&AllocationRecord>>> = BTreeMap::new();
        for allocation in allocations {
            by_symbol
                .entry(allocation.symbol.as_str())
                .or_default()
                .entry(allocation.account_id.as_str())
                .or_default()
                .push(allocation);
        }
        for (symbol, by_account) in by_symbol {
            let accounts: Vec<&str> = by_account.keys().copied().collect();
            for chunk in accounts.chunks(CHUNK) {
                let mut lock = QueryBuilder::<DB>::new(
                    "UPDATE accounts SET revision = revision + 1, updated_at = ",
                );
                lock.push_bind(now)
                    .push(" WHERE tenant_id = ")
                    .push_bind(tenant.to_owned())
                    .push(" AND id IN (");
                let mut ids = lock.separated(", ");
                for id in chunk {
                    ids.push_bind((*id).to_owned());
                }
                lock.push(") RETURNING id, cash, tax, created_at");
                let mut cash: HashMap<String, Decimal> = HashMap::new();
                let mut settings = HashMap::new();
                for row in lock.build().fetch_all(&mut *conn).await? {
                    let balance: Dec = row.try_get("cash")?;
                    let id: String = row.try_get("id")?;
                    let tax: String = row.try_get("tax")?;
                    let created_at: DateTime<Utc> = row.try_get("created_at")?;
                    cash.insert(id.clone(), balance.0);
                    settings.insert(id, (parse_tax(&tax)?, created_at));
                }
                let mut stored_lots = Self::read_lots(conn, tenant, chunk, Some(symbol)).await?;
                let sells: Vec<&str> = chunk
                    .iter()
                    .flat_map(|account| by_account[account].iter())
                    .filter(|allocation| allocation.side == Side::Sell)
                    .map(|allocation| allocation.order_id.as_str())
                    .collect();
                let planned = Self::planned_lots(conn, tenant, &sells).await?;
                let today = rebalancer_domain::calendar::exchange_date(now);
                let mut new_lots: Vec<(String, String, Lot)> = Vec::new();
                let mut gone_lots: Vec<(String, String)> = Vec::new();
                let mut realized = Vec::new();
                let mut read = QueryBuilder::<DB>::new(
                    "SELECT account_id, quantity, average_cost FROM positions WHERE tenant_id = ",
                );
                read.push_bind(tenant.to_owned())
                    .push(" AND symbol = ")
                    .push_bind(symbol.to_owned())
                    .push(" AND account_id IN (");
                let mut ids = read.separated(", ");
                for id in chunk {
                    ids.push_bind((*id).to_owned());
                }
                read.push(")");
                let mut held: HashMap<String, (Decimal, Decimal)> = HashMap::new();
                for row in read.build().fetch_all(&mut *conn).await? {
                    let quantity: Dec = row.try_get("quantity")?;
                    let cost: Dec = row.try_get("average_cost")?;
                    held.insert(row.try_get("account_id")?, (quantity.0, cost.0));
                }
                let mut balances = Vec::with_capacity(chunk.len());
                let mut positions = Vec::with_capacity(chunk.len());
                let mut closed = Vec::new();
                for account_id in chunk {
                    let Some(mut balance) = cash.get(*account_id).copied() else {
                        return Err(StoreError::Corrupt(format!(
                            "account {account_id} of an allocation is gone"
                        )));
                    };
                    let (quantity, average_cost) = held
                        .get(*account_id)
                        .copied()
                        .unwrap_or((Decimal::ZERO, Decimal::ZERO));
                    let bookings: Vec<Booking> = by_account[account_id]
                        .iter()
                        .map(|allocation| Booking {
                            side: allocation.side,
                            quantity: allocation.quantity,
                            price: allocation.price,
                            amount: allocation.amount,
                        })
                        .collect();
                    let booked = booking::book(
                        balance,
                        Position {
                            quantity,
                            average_cost,
                        },
                        &bookings,
                    );
                    if booked.oversold > Decimal::ZERO {
                        let order_id = by_account[account_id]
                            .first()
                            .map(|a| a.order_id.clone())
                            .unwrap_or_default();
                        let problem = format!(
                            "break: sold {} more {symbol} than account {account_id} held; {} of proceeds not credited",
                            booked.oversold, booked.unbooked
                        );
                        tracing::error!(%tenant, %account_id, %symbol, oversold = %booked.oversold, unbooked = %booked.unbooked, "fill for shares not held");
                        breaks.push((order_id, problem));
                    }
                    balance = booked.cash;
                    let (quantity, cost) = (booked.position.quantity, booked.position.average_cost);
                    // Lots: buys open one each, sales close them by the
                    // account's method; they end covering the position.
                    let (tax, created_at) = &settings[*account_id];
                    let stored = stored_lots
                        .remove(&((*account_id).to_owned(), symbol.to_owned()))
                        .unwrap_or_default();
                    let before: HashMap<String, (Decimal, Decimal)> = stored
                        .iter()
                        .map(|lot| (lot.id.clone(), (lot.quantity, lot.basis)))
                        .collect();
                    let mut open = lots::cover(
                        stored,
                        held.get(*account_id).map_or(Decimal::ZERO, |held| held.0),
                        average_cost,
                        rebalancer_domain::calendar::exchange_date(*created_at),
                        OPENING_LOT,
                    );
                    for allocation in &by_account[account_id] {
                        match allocation.side {
                            // The fills of one order on one day are one lot.
                            Side::Buy => lots::add(
                                &mut open,
                                &allocation.order_id,
                                allocation.quantity,
                                allocation.amount,
                                today,
                            ),
                            Side::Sell => {
                                let (sale, left) = rebalancer_domain::tax::close(
                                    tax,
                                    &open,
                                    planned
                                        .get(&allocation.order_id)
                                        .map_or(&[][..], Vec::as_slice),
                                    allocation.quantity,
                                    allocation.price,
                                    today,
                                );
                                open = left;
                                realized.extend(
                                    sale.closed.into_iter().map(|closed| (allocation, closed)),
                                );
                            }
                        }
                    }
                    let open = lots::cover(open, quantity, cost, today, OPENING_LOT);
                    // Only what changed is written.
                    for id in before.keys() {
                        if !open.iter().any(|lot| &lot.id == id) {
                            gone_lots.push(((*account_id).to_owned(), id.clone()));
                        }
                    }
                    new_lots.extend(
                        open.into_iter()
                            .filter(|lot| before.get(&lot.id) != Some(&(lot.quantity, lot.basis)))
                            .map(|lot| ((*account_id).to_owned(), symbol.to_owned(), lot)),
                    );
                    balances.push(((*account_id).to_owned(), balance));
                    if quantity.is_zero() {
                        closed.push((*account_id).to_owned());
                    } else {
                        positions.push(((*account_id).to_owned(), quantity, cost));
                    }
                }
                let mut write =
                    QueryBuilder::<DB>::new("UPDATE accounts SET cash = v.column2 FROM (");
                write.push_values(&balances, |mut row, (account_id, balance)| {
                    row.push_bind(account_id.clone()).push_bind(Dec(*balance));
                });
                write
                    .push(") AS v WHERE accounts.tenant_id = ")
                    .push_bind(tenant.to_owned())
                    .push(" AND accounts.id = v.column1");
                write.build().execute(&mut *conn).await?;
                if !positions.is_empty() {
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
                    upsert.build().execute(&mut *conn).await?;
                }
                if !closed.is_empty() {
                    let mut delete =
                        QueryBuilder::<DB>::new("DELETE FROM positions WHERE tenant_id = ");
                    delete
                        .push_bind(tenant.to_owned())
                        .push(" AND symbol = ")
                        .push_bind(symbol.to_owned())
                        .push(" AND account_id IN (");
                    let mut ids = delete.separated(", ");
                    for account_id in &closed {
                        ids.push_bind(account_id.clone());
                    }
                    delete.push(")");
                    delete.build().execute(&mut *conn).await?;
                }
                Self::change_lots(conn, tenant, symbol, &new_lots, &gone_lots).await?;
                let rows: Vec<Realized<'_>> = realized
                    .iter()
                    .map(|(allocation, closed)| Realized {
                        account_id: &allocation.account_id,
                        symbol: &allocation.symbol,
                        order_id: &allocation.order_id,
                        fill_id: &allocation.fill_id,
                        sold_on: today,
                        closed,
                    })
                    .collect();
                Self::insert_realized(conn, tenant, &rows).await?;
            }
        }
        Ok(breaks)
    }
}

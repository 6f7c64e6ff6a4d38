//! Reconciliations and their breaks (migration 0009), on both backends.

use std::collections::{BTreeMap, BTreeSet};

use rebalancer_domain::account::Restriction;
use rebalancer_kit::db::{DbErrorKind, Dec, classify, find_claimed, insert_claim, new_id};
use sqlx::{QueryBuilder, Row};

use crate::book::reconcile_store::{
    BreakFilter, BreakRecord, NewReconciliation, ReconciliationRecord, ReconciliationStore,
};
use crate::store::SqlStore;
use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

const RECONCILIATION_COLUMNS: &str =
    "id, as_of, source, lines, accounts_checked, breaks_raised, breaks_cleared, created_at";
const BREAK_COLUMNS: &str = "id, reconciliation_id, account_id, symbol, book_quantity, \
     broker_quantity, detail, raised_at, cleared_at, cleared_by";

#[rebalancer_kit::sql_row]
fn reconciliation_of<R>(row: &R) -> Result<ReconciliationRecord, StoreError> {
    Ok(ReconciliationRecord {
        id: row.try_get("id")?,
        as_of: row.try_get("as_of")?,
        source: row.try_get("source")?,
        lines: row.try_get::<i64, _>("lines")?,
        accounts_checked: row.try_get::<i64, _>("accounts_checked")?,
        breaks_raised: row.try_get::<i64, _>("breaks_raised")?,
        breaks_cleared: row.try_get::<i64, _>("breaks_cleared")?,
        created_at: row.try_get("created_at")?,
    })
}

#[rebalancer_kit::sql_row]
fn break_of<R>(row: &R) -> Result<BreakRecord, StoreError> {
    let symbol: String = row.try_get("symbol")?;
    let book: Option<Dec> = row.try_get("book_quantity")?;
    let broker: Dec = row.try_get("broker_quantity")?;
    Ok(BreakRecord {
        id: row.try_get("id")?,
        reconciliation_id: row.try_get("reconciliation_id")?,
        account_id: row.try_get("account_id")?,
        symbol: (!symbol.is_empty()).then_some(symbol),
        book_quantity: book.map(|b| b.0),
        broker_quantity: broker.0,
        detail: row.try_get("detail")?,
        raised_at: row.try_get("raised_at")?,
        cleared_at: row.try_get("cleared_at")?,
        cleared_by: row.try_get("cleared_by")?,
    })
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    async fn replay_reconciliation(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<ReconciliationRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let Some(id) = find_claimed::<DB>(&mut conn, tenant, claim).await? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {RECONCILIATION_COLUMNS} FROM reconciliations WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(reconciliation_of).transpose()
    }
}

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl ReconciliationStore for SqlStore<DB> {
    async fn record_reconciliation(
        &self,
        tenant: &str,
        reconciliation: NewReconciliation,
        claim: IdempotencyClaim,
    ) -> Result<Created<ReconciliationRecord>, StoreError> {
        if let Some(existing) = self.replay_reconciliation(tenant, &claim).await? {
            return Ok(Created::Replayed(existing));
        }
        let now = reconciliation.now;
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Err(error) =
            insert_claim::<DB>(&mut tx, tenant, &claim, &reconciliation.id, now).await
        {
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay_reconciliation(tenant, &claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        // What each named account still had open, by symbol ('' for cash).
        let mut open: BTreeMap<(String, String), BreakRecord> = BTreeMap::new();
        for account in &reconciliation.accounts {
            let sql = format!(
                "SELECT {BREAK_COLUMNS} FROM reconciliation_breaks \
                 WHERE tenant_id = $1 AND account_id = $2 AND cleared_at IS NULL"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_owned())
                .bind(account.clone())
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let found = break_of(row)?;
                let key = (
                    found.account_id.clone(),
                    found.symbol.clone().unwrap_or_default(),
                );
                open.insert(key, found);
            }
        }
        // A difference already open with the same quantities stays open;
        // every other open break is cleared, every new difference raised.
        let mut raised = 0_i64;
        let mut with_breaks: BTreeSet<&str> = BTreeSet::new();
        for difference in &reconciliation.differences {
            with_breaks.insert(&difference.account_id);
            let key = (
                difference.account_id.clone(),
                difference.symbol.clone().unwrap_or_default(),
            );
            if let Some(existing) = open.get(&key)
                && existing.book_quantity == difference.book
                && existing.broker_quantity == difference.broker
            {
                sqlx::query(
                    "UPDATE reconciliation_breaks SET last_seen_by = $3 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.to_owned())
                .bind(existing.id.clone())
                .bind(reconciliation.id.clone())
                .execute(&mut *tx)
                .await?;
                open.remove(&key);
                continue;
            }
            sqlx::query(
                "INSERT INTO reconciliation_breaks (tenant_id, id, reconciliation_id, last_seen_by, account_id, \
                 symbol, book_quantity, broker_quantity, detail, raised_at) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant.to_owned())
            .bind(new_id())
            .bind(reconciliation.id.clone())
            .bind(difference.account_id.clone())
            .bind(key.1.clone())
            .bind(difference.book.map(Dec))
            .bind(Dec(difference.broker))
            .bind(difference.detail())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            raised += 1;
        }
        let cleared = i64::try_from(open.len()).unwrap_or(i64::MAX);
        for stale in open.values() {
            sqlx::query(
                "UPDATE reconciliation_breaks SET cleared_at = $3, cleared_by = $4 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.to_owned())
            .bind(stale.id.clone())
            .bind(now)
            .bind(reconciliation.id.clone())
            .execute(&mut *tx)
            .await?;
        }
        // The restriction follows the breaks, on the accounts the book has.
        let mut checked = 0_i64;
        for account in &reconciliation.accounts {
            let row =
                sqlx::query("SELECT restrictions FROM accounts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_owned())
                    .bind(account.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else { continue };
            checked += 1;
            let text: String = row.try_get("restrictions")?;
            let mut names: BTreeSet<&str> = text.split(',').filter(|n| !n.is_empty()).collect();
            let had = names.contains(Restriction::BrokerBreak.as_str());
            let has = with_breaks.contains(account.as_str());
            if had == has {
                continue;
            }
            if has {
                names.insert(Restriction::BrokerBreak.as_str());
            } else {
                names.remove(Restriction::BrokerBreak.as_str());
            }
            let joined: Vec<&str> = names.into_iter().collect();
            sqlx::query(
                "UPDATE accounts SET restrictions = $3, revision = revision + 1, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.to_owned())
            .bind(account.clone())
            .bind(joined.join(","))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let record = ReconciliationRecord {
            id: reconciliation.id.clone(),
            as_of: reconciliation.as_of,
            source: reconciliation.source.clone(),
            lines: reconciliation.lines,
            accounts_checked: checked,
            breaks_raised: raised,
            breaks_cleared: cleared,
            created_at: now,
        };
        sqlx::query(
            "INSERT INTO reconciliations (tenant_id, id, as_of, source, lines, accounts_checked, breaks_raised, \
             breaks_cleared, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.to_owned())
        .bind(record.id.clone())
        .bind(record.as_of)
        .bind(record.source.clone())
        .bind(record.lines)
        .bind(record.accounts_checked)
        .bind(record.breaks_raised)
        .bind(record.breaks_cleared)
        .bind(record.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn breaks_of(
        &self,
        tenant: &str,
        reconciliation_id: &str,
    ) -> Result<Vec<BreakRecord>, StoreError> {
        let sql = format!(
            "SELECT {BREAK_COLUMNS} FROM reconciliation_breaks WHERE tenant_id = $1 AND last_seen_by = $2 \
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(reconciliation_id.to_owned())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(break_of).collect()
    }

    async fn list_breaks(
        &self,
        tenant: &str,
        filter: &BreakFilter,
        page: &PageRequest,
    ) -> Result<Vec<BreakRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {BREAK_COLUMNS} FROM reconciliation_breaks WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(account) = &filter.account_id {
            query.push(" AND account_id = ").push_bind(account.clone());
        }
        if !filter.include_cleared {
            query.push(" AND cleared_at IS NULL");
        }
        if let Some(after) = &page.after {
            query.push(" AND id > ").push_bind(after.clone());
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(break_of).collect()
    }
}

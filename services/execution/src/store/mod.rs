//! Storage of the Execution service as a whole: [`ExecutionStore`] gathers
//! the storage traits of the feature folders (each declared in its
//! `store.rs`, implemented in its `sql*.rs` once for PostgreSQL and SQLite),
//! [`open`] connects and applies the migrations. Every method is scoped by
//! tenant.

mod migrations;
mod sql;

use std::sync::Arc;

use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
pub use rebalancer_kit::error::StoreError;
use rebalancer_kit::events::{EventStore, SqlEvents};
pub use rebalancer_kit::idempotency::{Created, IdempotencyClaim};
pub use rebalancer_kit::page::PageRequest;

use crate::blocks::store::{BlockStore, OrderBook};
use crate::book::households::HouseholdStore;
use crate::book::reconcile_store::ReconciliationStore;
use crate::book::store::{AccountStore, CashStore, LotStore};
use crate::broker::brokers::TradingModeStore;
use crate::broker::fix::store::FixBook;
use crate::broker::paper_store::PaperBook;
use crate::market::store::{AssetStore, MasterStore};
use crate::runs::store::{BatchStore, RunStore};
pub use sql::SqlStore;

/// Everything the Execution service keeps.
pub trait ExecutionStore:
    AccountStore
    + LotStore
    + HouseholdStore
    + CashStore
    + AssetStore
    + MasterStore
    + RunStore
    + BatchStore
    + BlockStore
    + OrderBook
    + PaperBook
    + FixBook
    + ReconciliationStore
    + TradingModeStore
{
}

impl<T> ExecutionStore for T where
    T: AccountStore
        + LotStore
        + HouseholdStore
        + CashStore
        + AssetStore
        + MasterStore
        + RunStore
        + BatchStore
        + BlockStore
        + OrderBook
        + PaperBook
        + FixBook
        + ReconciliationStore
        + TradingModeStore
{
}

/// Opens the store at `url`, applying migrations.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open(
    url: &DatabaseUrl,
    pool: &PoolOptions,
) -> anyhow::Result<Arc<dyn ExecutionStore>> {
    Ok(open_with_events(url, pool).await?.0)
}

/// Opens the store at `url`, applying migrations, with the event outbox of
/// the same database.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open_with_events(
    url: &DatabaseUrl,
    pool: &PoolOptions,
) -> anyhow::Result<(Arc<dyn ExecutionStore>, Arc<dyn EventStore>)> {
    match url {
        DatabaseUrl::Postgres(url) => {
            let pool = rebalancer_kit::db::connect_postgres(url, pool).await?;
            migrations::postgres().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
        DatabaseUrl::Sqlite(path) => {
            let pool = rebalancer_kit::db::connect_sqlite(path, pool).await?;
            migrations::sqlite().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
    }
}

//! Storage of the Execution service: one trait, one SQL implementation
//! generic over PostgreSQL and SQLite, and the migrations of each. Every
//! method is scoped by tenant.

mod migrations;
mod sql;

use std::fmt::Debug;
use std::sync::Arc;

use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
pub use rebalancer_kit::idempotency::{Created, IdempotencyClaim};

use crate::blocks::store::{BlockStore, OrderBook};
use crate::book::store::{AccountStore, CashStore};
use crate::broker::paper_store::PaperBook;
use crate::market::store::AssetStore;
use crate::runs::store::{BatchStore, RunStore};
pub use sql::SqlStore;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    /// The expected revision did not match.
    #[error("{0}")]
    StaleRevision(String),
    #[error("{0}")]
    NotFound(String),
    /// The state forbids the change.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("idempotency key was already used for a different request")]
    IdempotencyMismatch,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// A page request: items strictly after `after` in the listing order, at most `limit`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

/// Everything the Execution service keeps.
pub trait ExecutionStore:
    AccountStore + CashStore + AssetStore + RunStore + BatchStore + BlockStore + OrderBook + PaperBook
{
}

impl<T> ExecutionStore for T where
    T: AccountStore
        + CashStore
        + AssetStore
        + RunStore
        + BatchStore
        + BlockStore
        + OrderBook
        + PaperBook
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
    match url {
        DatabaseUrl::Postgres(url) => {
            let pool = rebalancer_kit::db::connect_postgres(url, pool).await?;
            migrations::postgres().run(&pool).await?;
            Ok(Arc::new(SqlStore::new(pool)))
        }
        DatabaseUrl::Sqlite(path) => {
            let pool = rebalancer_kit::db::connect_sqlite(path, pool).await?;
            migrations::sqlite().run(&pool).await?;
            Ok(Arc::new(SqlStore::new(pool)))
        }
    }
}

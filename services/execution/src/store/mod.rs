//! Storage of the Execution service: one trait, one SQL implementation
//! generic over PostgreSQL and SQLite, and the migrations of each. Every
//! method is scoped by tenant.

pub mod blocks;
mod migrations;
pub mod runs;
mod sql;

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rebalancer_domain::account::{AccountStatus, Restriction};
use rebalancer_domain::cash::{CashAction, CashMovementKind, CashMovementStatus};
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
pub use rebalancer_kit::idempotency::{Created, IdempotencyClaim};
use rust_decimal::Decimal;

pub use blocks::{BlockStore, PaperBook};
pub use runs::RunStore;
pub use sql::SqlStore;

/// A holding of one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRecord {
    pub symbol: String,
    /// Always positive; a position sold out is removed.
    pub quantity: Decimal,
    pub average_cost: Decimal,
}

/// An account of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub status: AccountStatus,
    pub cash: Decimal,
    /// Sorted by symbol.
    pub positions: Vec<PositionRecord>,
    /// Set by the platform; sorted, without computed ones.
    pub restrictions: Vec<Restriction>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_rebalanced_at: Option<DateTime<Utc>>,
}

/// The whole state of an account, as the platform or a broker sync sends it.
#[derive(Debug, Clone)]
pub struct AccountUpsert {
    pub id: String,
    pub status: AccountStatus,
    pub cash: Decimal,
    pub positions: Vec<PositionRecord>,
    pub restrictions: Vec<Restriction>,
    /// When set, the current revision must match.
    pub expected_revision: Option<i64>,
    pub now: DateTime<Utc>,
}

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

/// Filters of `ListAccounts`.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub status: Option<AccountStatus>,
    pub restriction: Option<Restriction>,
}

/// A page request: items strictly after `after` in the listing order, at most `limit`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

/// A deposit or withdrawal request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashMovementRecord {
    pub id: String,
    pub account_id: String,
    pub kind: CashMovementKind,
    pub amount: Decimal,
    pub status: CashMovementStatus,
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// A movement to record.
#[derive(Debug, Clone)]
pub struct NewCashMovement {
    pub id: String,
    pub account_id: String,
    pub kind: CashMovementKind,
    pub amount: Decimal,
    pub now: DateTime<Utc>,
}

/// Filters of `ListCashMovements`.
#[derive(Debug, Clone, Default)]
pub struct CashMovementFilter {
    pub account_id: Option<String>,
    pub status: Option<CashMovementStatus>,
    pub kind: Option<CashMovementKind>,
}

/// An override of an asset's flags; `None` keeps the feed's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetOverride {
    pub symbol: String,
    pub active: Option<bool>,
    pub tradable: Option<bool>,
    pub fractionable: Option<bool>,
    pub reason: String,
    pub actor: String,
    pub updated_at: DateTime<Utc>,
}

/// Accounts: cash, positions, restrictions.
#[tonic::async_trait]
pub trait AccountStore: Send + Sync + Debug {
    /// Creates or replaces an account's state; returns it and whether it is new.
    async fn upsert_account(
        &self,
        tenant: &str,
        upsert: AccountUpsert,
    ) -> Result<(AccountRecord, bool), StoreError>;

    async fn get_account(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError>;

    /// Accounts in id order.
    async fn list_accounts(
        &self,
        tenant: &str,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRecord>, StoreError>;

    /// One batch of holdings in account id order: accounts with their
    /// positions and pending cash movements, in three range queries.
    async fn holdings_batch(
        &self,
        tenant: &str,
        range: &HoldingsRange,
        limit: u32,
    ) -> Result<Vec<HoldingsRecord>, StoreError>;
}

/// Which accounts a holdings batch covers.
#[derive(Debug, Clone, Default)]
pub struct HoldingsRange {
    /// Strictly after this account id.
    pub after: Option<String>,
    /// Strictly before this account id.
    pub before: Option<String>,
    /// Only these accounts (empty: all).
    pub account_ids: Vec<String>,
}

/// An account with its pending cash movements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingsRecord {
    pub account: AccountRecord,
    pub pending: Vec<CashMovementRecord>,
    /// The account's run that has not ended, if any.
    pub open_run_id: Option<String>,
}

/// Deposits and withdrawal requests.
#[tonic::async_trait]
pub trait CashStore: Send + Sync + Debug {
    /// Records a movement (a deposit credits the account at once).
    async fn create_cash_movement(
        &self,
        tenant: &str,
        movement: NewCashMovement,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<CashMovementRecord>, StoreError>;

    async fn get_cash_movement(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<CashMovementRecord>, StoreError>;

    /// Movements newest first.
    async fn list_cash_movements(
        &self,
        tenant: &str,
        filter: &CashMovementFilter,
        page: &PageRequest,
    ) -> Result<Vec<CashMovementRecord>, StoreError>;

    /// Acknowledges, settles or cancels a movement, moving cash as the rules say.
    async fn apply_cash_action(
        &self,
        tenant: &str,
        id: &str,
        action: CashAction,
        run_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CashMovementRecord, StoreError>;
}

/// Asset flag overrides (not tenant data: the market is shared).
#[tonic::async_trait]
pub trait AssetStore: Send + Sync + Debug {
    async fn asset_overrides(&self) -> Result<Vec<AssetOverride>, StoreError>;

    async fn put_asset_override(&self, asset: AssetOverride) -> Result<(), StoreError>;

    /// Every tenant with accounts, to notify of asset changes.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;
}

/// Everything the Execution service keeps.
pub trait ExecutionStore:
    AccountStore + CashStore + AssetStore + RunStore + BlockStore + PaperBook
{
}

impl<T: AccountStore + CashStore + AssetStore + RunStore + BlockStore + PaperBook> ExecutionStore
    for T
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

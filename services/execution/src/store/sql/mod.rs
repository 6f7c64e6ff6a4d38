//! The Execution store in SQL, written once for both backends; one file per
//! part of the store.

mod accounts;
mod assets;
mod blocks;
mod cash;
mod paper;
mod runs;

use rebalancer_kit::db::ClaimError;
use sqlx::{Database, Pool};

use super::StoreError;

/// The Execution store over a PostgreSQL or SQLite pool.
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    #[must_use]
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    #[must_use]
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl From<ClaimError> for StoreError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Mismatch => Self::IdempotencyMismatch,
            ClaimError::Database(error) => Self::Database(error),
        }
    }
}

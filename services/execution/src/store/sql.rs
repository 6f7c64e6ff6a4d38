//! The Execution store in SQL, written once for both backends (`#[sql_store]`
//! impl blocks in each feature folder's `sql*.rs`). This file holds the pool.

use sqlx::{Database, Pool};

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

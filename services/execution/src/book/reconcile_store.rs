//! What reconciliation keeps: each statement compared with the book and the
//! breaks it found, open until a later statement agrees with the book.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::reconcile::Difference;
use rust_decimal::Decimal;

use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

/// A statement to record with what it found.
#[derive(Debug, Clone)]
pub struct NewReconciliation {
    pub id: String,
    pub as_of: DateTime<Utc>,
    pub source: String,
    pub lines: i64,
    /// Every account the statement names (known to the book or not): their
    /// earlier open breaks are cleared, and the new differences raised.
    pub accounts: Vec<String>,
    pub differences: Vec<Difference>,
    pub now: DateTime<Utc>,
}

/// A recorded reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationRecord {
    pub id: String,
    pub as_of: DateTime<Utc>,
    pub source: String,
    pub lines: i64,
    pub accounts_checked: i64,
    pub breaks_raised: i64,
    pub breaks_cleared: i64,
    pub created_at: DateTime<Utc>,
}

/// A difference between the broker and the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakRecord {
    pub id: String,
    pub reconciliation_id: String,
    pub account_id: String,
    /// `None` for cash.
    pub symbol: Option<String>,
    /// `None` when the book has no such account.
    pub book_quantity: Option<Decimal>,
    pub broker_quantity: Decimal,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub cleared_by: Option<String>,
}

/// Which breaks to list.
#[derive(Debug, Clone, Default)]
pub struct BreakFilter {
    pub account_id: Option<String>,
    pub include_cleared: bool,
}

/// Reconciliations and their breaks.
#[tonic::async_trait]
pub trait ReconciliationStore: Send + Sync + Debug {
    /// Records a reconciliation in one transaction: the open breaks of the
    /// accounts it names are cleared, its differences raised as breaks, and
    /// the `broker_break` restriction set on the book's accounts with a
    /// break and lifted from those without. A replayed key returns the first.
    async fn record_reconciliation(
        &self,
        tenant: &str,
        reconciliation: NewReconciliation,
        claim: IdempotencyClaim,
    ) -> Result<Created<ReconciliationRecord>, StoreError>;

    /// The differences one reconciliation found: the breaks it raised and
    /// those still open that it found again.
    async fn breaks_of(
        &self,
        tenant: &str,
        reconciliation_id: &str,
    ) -> Result<Vec<BreakRecord>, StoreError>;

    /// Breaks by id (oldest first: ids are time-ordered).
    async fn list_breaks(
        &self,
        tenant: &str,
        filter: &BreakFilter,
        page: &PageRequest,
    ) -> Result<Vec<BreakRecord>, StoreError>;
}

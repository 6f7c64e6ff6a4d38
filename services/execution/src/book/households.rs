//! Households in storage: accounts managed as one portfolio, the tenant's
//! substantially identical securities, and what the household did in the
//! wash-sale window.

use std::fmt::Debug;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::household::Household;
use rust_decimal::Decimal;

use crate::store::{PageRequest, StoreError};

/// A household as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdRecord {
    pub household: Household,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sale at a loss, lot by lot, in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossRow {
    pub account_id: String,
    pub symbol: String,
    pub sold_on: NaiveDate,
    /// Positive.
    pub loss: Decimal,
}

/// An open lot acquired in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRow {
    pub account_id: String,
    pub symbol: String,
    pub lot_id: String,
    pub acquired: NaiveDate,
}

#[tonic::async_trait]
pub trait HouseholdStore: Send + Sync + Debug {
    /// Creates or replaces a household and its membership; returns it and
    /// whether it is new.
    ///
    /// # Errors
    /// `NotFound` for an account not in the book, `FailedPrecondition` for
    /// one in another household, `StaleRevision` for a stale etag.
    async fn upsert_household(
        &self,
        tenant: &str,
        household: &Household,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(HouseholdRecord, bool), StoreError>;

    async fn get_household(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<HouseholdRecord>, StoreError>;

    /// Households in id order.
    async fn list_households(
        &self,
        tenant: &str,
        page: &PageRequest,
    ) -> Result<Vec<HouseholdRecord>, StoreError>;

    /// Replaces the tenant's groups of substantially identical securities.
    async fn set_identical_securities(
        &self,
        tenant: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StoreError>;

    /// The groups, each sorted, in the order of their first symbol.
    async fn identical_securities(&self, tenant: &str) -> Result<Vec<Vec<String>>, StoreError>;

    /// Loss sales and open lots of `accounts` on `since` or later.
    async fn wash_window(
        &self,
        tenant: &str,
        accounts: &[String],
        since: NaiveDate,
    ) -> Result<(Vec<LossRow>, Vec<BuyRow>), StoreError>;
}

//! Asset flag overrides in storage: the operator's word over the feed's.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

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

/// Asset flag overrides (not tenant data: the market is shared).
#[tonic::async_trait]
pub trait AssetStore: Send + Sync + Debug {
    async fn asset_overrides(&self) -> Result<Vec<AssetOverride>, StoreError>;

    async fn put_asset_override(&self, asset: AssetOverride) -> Result<(), StoreError>;

    /// Every tenant with accounts, to notify of asset changes.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;
}

/// An operator's calendar day as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCalendarDay {
    pub calendar: String,
    pub day: rebalancer_domain::calendar_days::CalendarDay,
    pub actor: String,
    pub updated_at: DateTime<Utc>,
}

/// The asset master, uploaded quotes and calendar overrides (shared by all
/// tenants, like the market).
#[tonic::async_trait]
pub trait MasterStore: Send + Sync + Debug {
    async fn master_assets(&self) -> Result<Vec<crate::market::Asset>, StoreError>;

    /// Adds assets a feed lists, leaving those already in the master alone.
    async fn seed_assets(&self, assets: &[crate::market::Asset]) -> Result<(), StoreError>;

    /// Creates or replaces assets, in one transaction; answers how many were new.
    async fn upsert_assets(&self, assets: &[crate::market::Asset]) -> Result<usize, StoreError>;

    async fn master_quotes(&self) -> Result<Vec<crate::market::Quote>, StoreError>;

    /// Stores quotes, in one transaction; a quote never replaces a newer
    /// one. Answers the symbols whose quote was stored.
    async fn upsert_quotes(
        &self,
        quotes: &[crate::market::Quote],
    ) -> Result<Vec<String>, StoreError>;

    async fn calendar_days(&self) -> Result<Vec<StoredCalendarDay>, StoreError>;

    async fn put_calendar_days(&self, days: &[StoredCalendarDay]) -> Result<(), StoreError>;

    /// Whether there was such a day.
    async fn delete_calendar_day(
        &self,
        calendar: &str,
        date: chrono::NaiveDate,
    ) -> Result<bool, StoreError>;
}

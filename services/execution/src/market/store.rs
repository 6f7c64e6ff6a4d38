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

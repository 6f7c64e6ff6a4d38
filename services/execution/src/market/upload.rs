//! Bulk uploads of the platform's market data: the asset master and quotes.

use rebalancer_kit::RequestContext;

use crate::Execution;
use crate::error::ExecutionError;
use crate::market::{Asset, Quote};

/// What an asset upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetsUpserted {
    pub created: usize,
    pub updated: usize,
}

impl Execution {
    /// Creates or replaces assets of the master. Assets that became unusable
    /// (inactive, not tradable, not fractionable) are reported to the Target
    /// service of every tenant, as an operator's change is.
    ///
    /// # Errors
    /// Storage failures (nothing is changed then).
    #[tracing::instrument(name = "upsert_assets", skip_all, fields(assets = assets.len()))]
    pub async fn upsert_assets(
        &self,
        context: &RequestContext,
        assets: Vec<Asset>,
    ) -> Result<AssetsUpserted, ExecutionError> {
        let symbols: Vec<String> = assets.iter().map(|a| a.symbol.clone()).collect();
        let before = self.assets_by_symbol(&symbols).await?;
        let count = assets.len();
        let created = self.master.upsert_assets(assets).await?;
        let after = self.assets_by_symbol(&symbols).await?;
        for (symbol, now) in &after {
            let Some(was) = before.get(symbol) else {
                continue;
            };
            let degraded = (was.active && !now.active)
                || (was.tradable && !now.tradable)
                || (was.fractionable && !now.fractionable);
            if degraded {
                self.report_asset(context, now, "changed by an asset master upload")
                    .await?;
            }
        }
        tracing::info!(created, updated = count - created, "assets upserted");
        Ok(AssetsUpserted {
            created,
            updated: count - created,
        })
    }

    /// Stores quotes of known assets; answers the symbols whose quote was
    /// older than the one held.
    ///
    /// # Errors
    /// Storage failures (nothing is changed then).
    #[tracing::instrument(name = "upsert_quotes", skip_all, fields(quotes = quotes.len()))]
    pub async fn upsert_quotes(&self, quotes: Vec<Quote>) -> Result<Vec<String>, ExecutionError> {
        let count = quotes.len();
        let older = self.master.upsert_quotes(quotes).await?;
        tracing::info!(
            stored = count - older.len(),
            ignored_older = older.len(),
            "quotes upserted"
        );
        Ok(older)
    }

    /// Whether the asset master lists `symbol`.
    #[must_use]
    pub fn knows_asset(&self, symbol: &str) -> bool {
        self.master.knows(symbol)
    }

    /// Reloads the asset master when it misses one of `symbols` (another
    /// replica may have just loaded them).
    pub async fn ensure_assets_known(&self, symbols: &[String]) {
        self.master.ensure_known(symbols).await;
    }
}

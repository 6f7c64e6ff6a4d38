//! Market data as the service exposes it: the feed's assets with operator
//! overrides applied, prices of usable assets only, the calendar and clock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rebalancer_domain::calendar;
use rebalancer_kit::RequestContext;
use rebalancer_proto::client::CallContext;
use rebalancer_proto::target::ReportAssetStatusRequest;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rust_decimal::Decimal;

use crate::Execution;
use crate::error::ExecutionError;
use crate::market::store::AssetOverride;
use crate::market::{Asset, Quote, QuoteProblem};

/// New flags for an asset; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssetFlags {
    pub active: Option<bool>,
    pub tradable: Option<bool>,
    pub fractionable: Option<bool>,
}

/// The market clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockView {
    pub now: DateTime<Utc>,
    pub is_open: bool,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
    pub speed: u32,
}

fn apply_override(mut asset: Asset, overrides: &HashMap<String, AssetOverride>) -> Asset {
    if let Some(flags) = overrides.get(&asset.symbol) {
        asset.active = flags.active.unwrap_or(asset.active);
        asset.tradable = flags.tradable.unwrap_or(asset.tradable);
        asset.fractionable = flags.fractionable.unwrap_or(asset.fractionable);
        asset.min_increment = Asset::step(asset.fractionable, asset.lot_size);
    }
    asset
}

impl Execution {
    async fn overrides(&self) -> Result<HashMap<String, AssetOverride>, ExecutionError> {
        Ok(self
            .store
            .asset_overrides()
            .await?
            .into_iter()
            .map(|flags| (flags.symbol.clone(), flags))
            .collect())
    }

    /// Every asset, sorted by symbol, overrides applied.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn assets(&self) -> Result<Vec<Asset>, ExecutionError> {
        let overrides = self.overrides().await?;
        let mut assets: Vec<Asset> = self
            .market
            .assets()
            .await
            .into_iter()
            .map(|asset| apply_override(asset, &overrides))
            .collect();
        assets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        Ok(assets)
    }

    /// One asset, overrides applied.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn asset(&self, symbol: &str) -> Result<Option<Asset>, ExecutionError> {
        let Some(asset) = self.market.asset(symbol).await else {
            return Ok(None);
        };
        Ok(Some(apply_override(asset, &self.overrides().await?)))
    }

    /// Assets by symbol (unknown symbols are absent).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn assets_by_symbol(
        &self,
        symbols: &[String],
    ) -> Result<HashMap<String, Asset>, ExecutionError> {
        let overrides = self.overrides().await?;
        let mut assets = HashMap::new();
        for symbol in symbols {
            if let Some(asset) = self.market.asset(symbol).await {
                assets.insert(symbol.clone(), apply_override(asset, &overrides));
            }
        }
        Ok(assets)
    }

    /// Quotes now of active assets, no older than the service's limit; the
    /// rest are reported missing, each with why.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn quotes(
        &self,
        symbols: &[String],
    ) -> Result<(Vec<Quote>, Vec<(String, QuoteProblem)>), ExecutionError> {
        let assets = self.assets_by_symbol(symbols).await?;
        let mut quotes = Vec::new();
        let mut missing = Vec::new();
        for symbol in symbols {
            match self.master.usable_quote(assets.get(symbol), symbol).await {
                Ok(quote) => quotes.push(quote),
                Err(problem) => missing.push((symbol.clone(), problem)),
            }
        }
        Ok((quotes, missing))
    }

    /// Last prices of the symbols that have a usable quote.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn prices(
        &self,
        symbols: &[String],
    ) -> Result<HashMap<String, Decimal>, ExecutionError> {
        let (quotes, _) = self.quotes(symbols).await?;
        Ok(quotes
            .into_iter()
            .map(|quote| (quote.symbol, quote.last))
            .collect())
    }

    /// Changes an asset's flags; when it becomes unusable, the Target
    /// service of every tenant is told so its portfolios need adjustment.
    ///
    /// # Errors
    /// `NotFound` for an unknown symbol.
    #[tracing::instrument(name = "update_asset", skip_all, fields(symbol = %symbol))]
    pub async fn update_asset(
        &self,
        context: &RequestContext,
        symbol: &str,
        flags: AssetFlags,
        reason: &str,
    ) -> Result<Asset, ExecutionError> {
        let before = self
            .asset(symbol)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("asset {symbol} not found")))?;
        let current = self.overrides().await?.remove(symbol);
        let merged = AssetOverride {
            symbol: symbol.to_owned(),
            active: flags.active.or(current.as_ref().and_then(|c| c.active)),
            tradable: flags.tradable.or(current.as_ref().and_then(|c| c.tradable)),
            fractionable: flags
                .fractionable
                .or(current.as_ref().and_then(|c| c.fractionable)),
            reason: reason.to_owned(),
            actor: context.actor.clone(),
            updated_at: self.clock.now(),
        };
        self.store.put_asset_override(merged).await?;
        let after = self
            .asset(symbol)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("asset {symbol} not found")))?;
        let degraded = (before.active && !after.active)
            || (before.tradable && !after.tradable)
            || (before.fractionable && !after.fractionable);
        if degraded {
            self.report_asset(context, &after, reason).await?;
        }
        tracing::info!(
            active = after.active,
            tradable = after.tradable,
            fractionable = after.fractionable,
            "asset updated"
        );
        Ok(after)
    }

    pub(super) async fn report_asset(
        &self,
        context: &RequestContext,
        asset: &Asset,
        reason: &str,
    ) -> Result<(), ExecutionError> {
        let Some(channel) = &self.target else {
            return Ok(());
        };
        let mut client = PortfolioServiceClient::new(channel.clone());
        let mut tenants = self.store.tenants().await?;
        if !tenants.contains(&context.tenant) {
            tenants.push(context.tenant.clone());
        }
        for tenant in tenants {
            let call = CallContext {
                tenant,
                ..context.call()
            };
            let request = call.request(ReportAssetStatusRequest {
                symbol: asset.symbol.clone(),
                active: asset.active,
                tradable: asset.tradable,
                fractionable: asset.fractionable,
                reason: reason.to_owned(),
            });
            if let Err(status) = client.report_asset_status(request).await {
                tracing::warn!(tenant = %call.tenant, %status, "could not report asset status to the target service");
            }
        }
        Ok(())
    }

    /// The market clock now.
    #[must_use]
    pub fn clock_view(&self) -> ClockView {
        let now = self.clock.now();
        let session = calendar::current_or_next_session(now);
        let is_open = session.contains(now);
        let next_open = if now < session.open {
            session.open
        } else {
            calendar::current_or_next_session(session.close).open
        };
        ClockView {
            now,
            is_open,
            next_open,
            next_close: session.close,
            speed: self.market.speed(),
        }
    }

    #[must_use]
    pub fn market(&self) -> &std::sync::Arc<dyn crate::market::MarketData> {
        &self.market
    }
}

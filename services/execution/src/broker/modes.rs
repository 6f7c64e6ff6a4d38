//! Paper before live: each tenant's trading mode, read when its runs are
//! grouped into blocks and set by the firm over gRPC.

use rebalancer_kit::RequestContext;

use crate::Execution;
use crate::broker::brokers::{TradingMode, TradingModeRecord};
use crate::error::ExecutionError;

/// A tenant's mode as it applies now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingModeView {
    pub mode: TradingMode,
    /// The broker this mode sends orders to.
    pub broker: &'static str,
    /// The live broker the service has, if any.
    pub live_broker: Option<&'static str>,
    /// The firm's choice; `None` while it trades in the service's default.
    pub chosen: Option<TradingModeRecord>,
}

impl Execution {
    /// The tenant's mode: its choice, or the service's default.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn trading_mode(&self, tenant: &str) -> Result<TradingModeView, ExecutionError> {
        let chosen = self.store.trading_mode(tenant).await?;
        let mode = chosen
            .as_ref()
            .map_or(self.brokers.default_mode(), |record| record.mode);
        Ok(TradingModeView {
            mode,
            broker: self.brokers.name_for(mode),
            live_broker: self.brokers.live(),
            chosen,
        })
    }

    /// Sets where the tenant's next blocks go; blocks already made keep
    /// their broker.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` for live when the service has no live broker.
    pub async fn set_trading_mode(
        &self,
        context: &RequestContext,
        mode: TradingMode,
    ) -> Result<TradingModeView, ExecutionError> {
        if mode == TradingMode::Live && self.brokers.live().is_none() {
            return Err(ExecutionError::FailedPrecondition(
                "this service has no live broker (start it with --broker fix): only paper trading"
                    .to_owned(),
            ));
        }
        self.store
            .set_trading_mode(
                &context.tenant,
                TradingModeRecord {
                    mode,
                    changed_by: context.actor.clone(),
                    changed_at: self.clock.now(),
                },
            )
            .await?;
        tracing::info!(tenant = %context.tenant, mode = mode.as_str(), "trading mode set");
        self.trading_mode(&context.tenant).await
    }
}

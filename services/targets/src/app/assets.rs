//! Symbols of a portfolio checked against the Execution service's market
//! data: known, active, tradable, and fractionable when orders are notional.

use rebalancer_domain::Violations;
use rebalancer_domain::portfolio::{OrderSizing, TargetSpec, WeightTarget};
use rebalancer_kit::RequestContext;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::execution::ListAssetsRequest;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;

use super::Target;
use crate::error::TargetError;

impl Target {
    /// Checks every asset weight of `target`; violations name `{field}[i].symbol`.
    pub(crate) async fn check_assets(
        &self,
        context: &RequestContext,
        target: &TargetSpec,
        field: &str,
    ) -> Result<(), TargetError> {
        let symbols: Vec<String> = target.symbols().map(ToString::to_string).collect();
        if symbols.is_empty() {
            return Ok(());
        }
        let Some(channel) = &self.execution else {
            tracing::warn!(
                "no execution service configured: symbols are not checked against market data"
            );
            return Ok(());
        };
        let call = context.call();
        let response = retry_idempotent(Retry::default(), "ListAssets", |deadline| {
            let mut client = MarketDataServiceClient::new(channel.clone());
            let request = call.request_within(
                ListAssetsRequest {
                    page_size: 1000,
                    symbols: symbols.clone(),
                    ..ListAssetsRequest::default()
                },
                deadline,
            );
            async move { client.list_assets(request).await }
        })
        .await
        .map_err(|status| {
            TargetError::Unavailable(format!(
                "cannot check symbols against market data: {}",
                status.message()
            ))
        })?
        .into_inner();
        let mut violations = Violations::new();
        for (index, weight) in target.weights.iter().enumerate() {
            let WeightTarget::Asset(symbol) = &weight.target else {
                continue;
            };
            let at = format!("{field}[{index}].symbol");
            let Some(asset) = response
                .assets
                .iter()
                .find(|asset| asset.symbol == symbol.as_str())
            else {
                violations.add(at, format!("{symbol} is not a known asset"));
                continue;
            };
            if !asset.active {
                violations.add(at, format!("{symbol} is not active"));
            } else if !asset.tradable {
                violations.add(at, format!("{symbol} is not tradable"));
            } else if !asset.fractionable && target.order_sizing == OrderSizing::Notional {
                violations.add(
                    at,
                    format!("{symbol} is not fractionable: use ORDER_SIZING_WHOLE_SHARES or another asset"),
                );
            }
        }
        violations.into_result(()).map_err(TargetError::from)
    }
}

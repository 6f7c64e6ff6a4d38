//! The paper broker: fills against the simulated market's current minute
//! bar, with slippage that grows with participation, partial fills when an
//! order exceeds a share of the bar's volume, and rejections for untradable
//! symbols and for orders outside market hours (unless extended hours are
//! allowed). Its book lives in the execution database, so a resubmitted
//! client order id returns the same order and fills even after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_domain::trading_hours::TradingHours;
use rebalancer_kit::Clock;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;

use super::{
    Broker, BrokerError, BrokerFill, BrokerHoldings, BrokerOrder, BrokerPosition, OrderRequest,
};
use crate::broker::paper_store::{PaperFill, PaperOrder};
use crate::market::MarketData;
use crate::store::ExecutionStore;

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
/// Largest share of a minute bar's volume one order can take.
pub const MAX_BAR_SHARE: Decimal = Decimal::from_parts(25, 0, 0, false, 2);
/// Slippage at zero participation, and per percent of participation, in bps.
const BASE_SLIPPAGE_BPS: Decimal = Decimal::ONE;
const SLIPPAGE_BPS_PER_PERCENT: Decimal = Decimal::from_parts(2, 0, 0, false, 1);
/// Volume assumed per minute outside regular hours, as a share of a day.
const EXTENDED_MINUTE_SHARE: Decimal = Decimal::from_parts(5, 0, 0, false, 5);

/// The paper broker.
#[derive(Debug, Clone)]
pub struct PaperBroker {
    store: Arc<dyn ExecutionStore>,
    market: Arc<dyn MarketData>,
    clock: Arc<dyn Clock>,
}

impl PaperBroker {
    #[must_use]
    pub fn new(
        store: Arc<dyn ExecutionStore>,
        market: Arc<dyn MarketData>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            market,
            clock,
        }
    }

    /// Decides the fate of a new order: rejection, or a fill (possibly partial, possibly none).
    async fn execute(&self, request: &OrderRequest, now: DateTime<Utc>) -> PaperOrder {
        let mut order = PaperOrder {
            client_order_id: request.client_order_id.clone(),
            broker_order_id: new_id(),
            symbol: request.symbol.clone(),
            side: request.side,
            quantity: request.quantity,
            limit_price: request.limit_price,
            status: OrderStatus::Rejected,
            filled_quantity: Decimal::ZERO,
            reason: String::new(),
            submitted_at: now,
            fills: Vec::new(),
        };
        if request.quantity <= Decimal::ZERO && request.notional.is_none_or(|n| n <= Decimal::ZERO)
        {
            order.reason = "quantity must be positive".to_owned();
            return order;
        }
        let tradable = self.usable(&request.symbol).await;
        if !tradable {
            order.reason = format!("{} is not tradable", request.symbol);
            return order;
        }
        let hours = TradingHours::of(&request.symbol);
        let in_session = hours.open_session(now).is_some();
        let open_for_order = in_session || (request.extended_hours && hours.in_extended_hours(now));
        if !open_for_order {
            order.reason = "the market is closed".to_owned();
            return order;
        }
        let Some(quote) = self.market.quote(&request.symbol).await else {
            order.reason = format!("no price for {}", request.symbol);
            return order;
        };
        // Liquidity: the minute's volume in session, a share of the daily
        // volume outside it; no limit for an asset whose volume is unknown.
        let bar_volume = match self.market.minute_bar(&request.symbol, now).await {
            Some(bar) if in_session => Some(bar.volume),
            _ => self
                .market
                .average_daily_volume(&request.symbol)
                .await
                .map(|volume| volume * EXTENDED_MINUTE_SHARE),
        };
        let available = bar_volume.map(|volume| volume * MAX_BAR_SHARE);
        let step = if request.whole_shares {
            Decimal::ONE
        } else {
            rebalancer_domain::allocation::FRACTIONAL_STEP
        };
        let touch = match request.side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        };
        // A notional order asks for the shares its dollars buy at the touch.
        let wanted = match request.notional {
            Some(notional) if touch > Decimal::ZERO => notional / touch,
            _ => request.quantity,
        };
        let within = |shares: Decimal| available.map_or(shares, |available| shares.min(available));
        let first_guess = (within(wanted) / step).floor() * step;
        let participation = match bar_volume {
            Some(volume) if volume > Decimal::ZERO => first_guess / volume * Decimal::ONE_HUNDRED,
            Some(_) => Decimal::ONE_HUNDRED,
            None => Decimal::ZERO,
        };
        let slippage = (BASE_SLIPPAGE_BPS + SLIPPAGE_BPS_PER_PERCENT * participation) / BPS;
        let price = match request.side {
            Side::Buy => touch * (Decimal::ONE + slippage),
            Side::Sell => touch * (Decimal::ONE - slippage),
        }
        .round_dp(4);
        // Dollars are spent at the fill price, never beyond the notional.
        let quantity = match request.notional {
            Some(notional) if price > Decimal::ZERO => {
                (within(notional / price) / step).floor() * step
            }
            _ => first_guess,
        };
        order.quantity = match request.notional {
            Some(notional) if price > Decimal::ZERO => ((notional / price) / step).floor() * step,
            _ => request.quantity,
        };
        let within_limit = match (request.limit_price, request.side) {
            (Some(limit), Side::Buy) => price <= limit,
            (Some(limit), Side::Sell) => price >= limit,
            (None, _) => true,
        };
        if !within_limit {
            order.status = OrderStatus::Canceled;
            order.reason = format!("price {price} is beyond the limit");
            return order;
        }
        if quantity <= Decimal::ZERO {
            order.status = OrderStatus::Canceled;
            order.reason = "no liquidity in this minute".to_owned();
            return order;
        }
        order.filled_quantity = quantity;
        order.fills.push(PaperFill {
            id: new_id(),
            quantity,
            price,
            executed_at: now,
        });
        if quantity < order.quantity {
            order.status = OrderStatus::PartiallyFilled;
            order.reason = format!(
                "filled {quantity} of {}: the rest exceeds the bar's liquidity",
                order.quantity
            );
        } else {
            order.status = OrderStatus::Filled;
        }
        order
    }

    async fn usable(&self, symbol: &str) -> bool {
        let overrides = self.store.asset_overrides().await.unwrap_or_default();
        let Some(asset) = self.market.asset(symbol).await else {
            return false;
        };
        let flags = overrides.iter().find(|o| o.symbol == symbol);
        let active = flags.and_then(|f| f.active).unwrap_or(asset.active);
        let tradable = flags.and_then(|f| f.tradable).unwrap_or(asset.tradable);
        active && tradable
    }
}

fn to_broker(order: PaperOrder) -> BrokerOrder {
    BrokerOrder {
        client_order_id: order.client_order_id,
        broker_order_id: order.broker_order_id,
        status: order.status,
        filled_quantity: order.filled_quantity,
        fills: order
            .fills
            .into_iter()
            .map(|fill| BrokerFill {
                id: fill.id,
                quantity: fill.quantity,
                price: fill.price,
                executed_at: fill.executed_at,
            })
            .collect(),
        reason: order.reason,
    }
}

#[tonic::async_trait]
impl Broker for PaperBroker {
    async fn submit(&self, request: OrderRequest) -> Result<BrokerOrder, BrokerError> {
        let existing = self
            .store
            .paper_order(&request.client_order_id)
            .await
            .map_err(|error| BrokerError::Unavailable(error.to_string()))?;
        if let Some(order) = existing {
            // A retry after a crash or a lost lease: the order already made.
            tracing::info!(client_order_id = %request.client_order_id, "client order id seen before: the existing order is returned");
            return Ok(to_broker(order));
        }
        let order = self.execute(&request, self.clock.now()).await;
        let stored = self
            .store
            .insert_paper_order(order)
            .await
            .map_err(|error| BrokerError::Unavailable(error.to_string()))?;
        Ok(to_broker(stored))
    }

    async fn order(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        Ok(self
            .store
            .paper_order(client_order_id)
            .await
            .map_err(unavailable)?
            .map(to_broker))
    }

    async fn cancel(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        // Paper orders are immediate-or-cancel: every one is done when it is
        // made; what a partial fill left is canceled already.
        let order = self.order(client_order_id).await?;
        Ok(order.map(|mut order| {
            if order.status == OrderStatus::PartiallyFilled {
                order.status = OrderStatus::Canceled;
            }
            order
        }))
    }

    async fn reports(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BrokerOrder>, BrokerError> {
        let orders = self
            .store
            .paper_orders(after, limit)
            .await
            .map_err(unavailable)?;
        Ok(orders.into_iter().map(to_broker).collect())
    }

    async fn holdings(&self) -> Result<BrokerHoldings, BrokerError> {
        const PAGE: u32 = 1000;
        let mut by_symbol: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut cash_change = Decimal::ZERO;
        let mut after: Option<String> = None;
        loop {
            let orders = self
                .store
                .paper_orders(after.as_deref(), PAGE)
                .await
                .map_err(unavailable)?;
            for order in &orders {
                for fill in &order.fills {
                    let value = fill.quantity * fill.price;
                    let position = by_symbol.entry(order.symbol.clone()).or_default();
                    match order.side {
                        Side::Buy => {
                            *position += fill.quantity;
                            cash_change -= value;
                        }
                        Side::Sell => {
                            *position -= fill.quantity;
                            cash_change += value;
                        }
                    }
                }
            }
            if orders.len() < PAGE as usize {
                break;
            }
            after = orders.last().map(|order| order.client_order_id.clone());
        }
        Ok(BrokerHoldings {
            positions: by_symbol
                .into_iter()
                .filter(|(_, quantity)| !quantity.is_zero())
                .map(|(symbol, quantity)| BrokerPosition { symbol, quantity })
                .collect(),
            cash_change,
        })
    }
}

fn unavailable(error: crate::store::StoreError) -> BrokerError {
    BrokerError::Unavailable(error.to_string())
}

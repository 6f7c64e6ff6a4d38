//! The broker port: submit (idempotent by client order id), read and cancel
//! orders. Child orders are immediate-or-cancel: what does not fill at once is
//! canceled and the algorithm sizes the next slice from what remains.
//! The embedded adapter is the [`paper::PaperBroker`].

pub mod paper;
mod paper_sql;
pub mod paper_store;

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

/// An order to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Deterministic: resubmitting the same id returns the order already made.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    /// Shares; for a notional order, the most shares it may take.
    pub quantity: Decimal,
    /// Dollars to trade (fractional shares), instead of a share quantity.
    pub notional: Option<Decimal>,
    /// Buy no higher, sell no lower.
    pub limit_price: Option<Decimal>,
    pub extended_hours: bool,
    /// Fill in whole shares only.
    pub whole_shares: bool,
}

/// An execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFill {
    pub id: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub executed_at: DateTime<Utc>,
}

/// An order as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerOrder {
    pub client_order_id: String,
    pub broker_order_id: String,
    pub status: OrderStatus,
    pub filled_quantity: Decimal,
    pub fills: Vec<BrokerFill>,
    /// Why it was rejected or not (fully) filled.
    pub reason: String,
}

impl BrokerOrder {
    /// Average price of the fills.
    #[must_use]
    pub fn average_price(&self) -> Option<Decimal> {
        let quantity: Decimal = self.fills.iter().map(|fill| fill.quantity).sum();
        (quantity > Decimal::ZERO).then(|| {
            self.fills
                .iter()
                .map(|fill| fill.quantity * fill.price)
                .sum::<Decimal>()
                / quantity
        })
    }
}

/// Broker failures (not rejections, which are orders with status REJECTED).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// A broker.
#[tonic::async_trait]
pub trait Broker: Send + Sync + Debug {
    async fn submit(&self, request: OrderRequest) -> Result<BrokerOrder, BrokerError>;

    async fn order(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError>;
}

//! The broker port: submit (idempotent by client order id), read and cancel
//! orders, the execution reports since a point, and the firm's positions and
//! cash as the broker holds them (for reconciliation). Child orders are
//! immediate-or-cancel: what does not fill at once is canceled and the
//! algorithm sizes the next slice from what remains.
//!
//! Adapters are chosen by configuration ([`BrokerConfig`]) and built by
//! [`connect`]: the [`paper::PaperBroker`] always, and a live broker (FIX)
//! when configured; each tenant trades paper or live ([`brokers`]). Adding an
//! adapter touches this folder (and the `--broker` choice of the stack
//! builder in `services/server`): `runs/` and `blocks/` only call the
//! [`Broker`] trait.

pub mod brokers;
pub mod fix;
pub mod modes;
pub mod paper;
mod paper_sql;
pub mod paper_store;
mod sql_modes;

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_kit::Clock;
use rust_decimal::Decimal;

use crate::market::MarketData;
use crate::store::ExecutionStore;

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

/// A position as the broker holds it for the firm (all accounts together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPosition {
    pub symbol: String,
    /// Negative when the firm is short.
    pub quantity: Decimal,
}

/// What the broker holds for the firm: positions by symbol and the cash the
/// trades moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerHoldings {
    /// Sorted by symbol, without zero positions.
    pub positions: Vec<BrokerPosition>,
    /// Sale proceeds less purchase costs of every fill.
    pub cash_change: Decimal,
}

/// A broker: where child orders go and where the truth about them lives.
#[tonic::async_trait]
pub trait Broker: Send + Sync + Debug {
    /// Sends an order; a client order id sent before returns that order,
    /// never a second one.
    async fn submit(&self, request: OrderRequest) -> Result<BrokerOrder, BrokerError>;

    /// The order's current state, if the broker knows the id.
    async fn order(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError>;

    /// Cancels what is left of an order; returns its state afterwards (an
    /// order already done is returned as it is).
    async fn cancel(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError>;

    /// Orders with their executions, by client order id after `after`, at
    /// most `limit`: the execution reports, for an audit or a reconciliation.
    async fn reports(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BrokerOrder>, BrokerError>;

    /// The firm's positions and cash movement at the broker.
    async fn holdings(&self) -> Result<BrokerHoldings, BrokerError>;

    /// Whether orders can be sent now: `Err` says why not (a session
    /// logged out). A broker without a session is always ready.
    fn session_ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Which live broker the service trades through, beside the paper broker.
#[derive(Debug, Clone, Default)]
pub enum BrokerConfig {
    /// None: every tenant trades paper (fills against the market data,
    /// booked in the service's database).
    #[default]
    Paper,
    /// A FIX 4.4 session with a real broker; tenants that never chose a
    /// mode trade in `default_mode`.
    Fix {
        config: Box<fix::config::FixConfig>,
        default_mode: brokers::TradingMode,
    },
}

/// Builds the paper broker and the configured live one (a FIX session
/// starts connecting).
///
/// # Errors
/// When the adapter cannot start (its stored session state unreadable).
pub async fn connect(
    config: BrokerConfig,
    store: Arc<dyn ExecutionStore>,
    market: Arc<dyn MarketData>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<brokers::Brokers> {
    let paper: Arc<dyn Broker> = Arc::new(paper::PaperBroker::new(
        store.clone(),
        market,
        clock.clone(),
    ));
    Ok(match config {
        BrokerConfig::Paper => brokers::Brokers::paper_only(paper),
        BrokerConfig::Fix {
            config,
            default_mode,
        } => {
            let fix: Arc<dyn Broker> =
                Arc::new(fix::FixBroker::start(*config, store, clock).await?);
            brokers::Brokers::with_live(paper, "fix", fix, default_mode)
        }
    })
}

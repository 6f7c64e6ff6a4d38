//! The paper broker's own book of orders and fills, in the service's database.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

use crate::store::StoreError;

/// An order in the paper broker's book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperOrder {
    pub client_order_id: String,
    pub broker_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: OrderStatus,
    pub filled_quantity: Decimal,
    pub reason: String,
    pub submitted_at: DateTime<Utc>,
    pub fills: Vec<PaperFill>,
}

/// An execution in the paper broker's book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperFill {
    pub id: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub executed_at: DateTime<Utc>,
}

/// The paper broker's book (shared by all tenants, like a real broker's).
#[tonic::async_trait]
pub trait PaperBook: Send + Sync + Debug {
    async fn paper_order(&self, client_order_id: &str) -> Result<Option<PaperOrder>, StoreError>;

    /// Stores an order and its fills; when the client order id exists, keeps
    /// and returns the existing one.
    async fn insert_paper_order(&self, order: PaperOrder) -> Result<PaperOrder, StoreError>;

    /// Orders with their fills, by client order id after `after` (an audit of
    /// what the broker received, as a broker's order listing gives it).
    async fn paper_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PaperOrder>, StoreError>;
}

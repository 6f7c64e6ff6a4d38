//! What the FIX adapter keeps in the service's database: the session's
//! sequence numbers and sent messages (so a restart resumes the session and
//! can answer resend requests), the orders it sent and their executions by
//! ExecID, and the breaks it raised.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

use crate::store::StoreError;

/// A FIX session's persisted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    pub next_sender_seq: u64,
    pub next_target_seq: u64,
    pub created_at: DateTime<Utc>,
}

/// An order sent over FIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixOrder {
    pub client_order_id: String,
    /// Empty until the broker acknowledges the order.
    pub broker_order_id: String,
    pub symbol: String,
    pub side: Side,
    /// Shares; for a notional order, the most shares it may take.
    pub quantity: Decimal,
    pub notional: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    /// `New` until the broker acknowledges it.
    pub status: OrderStatus,
    pub filled_quantity: Decimal,
    pub reason: String,
    pub sent_at: DateTime<Utc>,
}

/// One execution (a fill), identified by the broker's ExecID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixExecution {
    pub exec_id: String,
    pub client_order_id: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub executed_at: DateTime<Utc>,
}

/// What an execution report says about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUpdate {
    pub client_order_id: String,
    pub broker_order_id: String,
    pub symbol: String,
    pub status: OrderStatus,
    pub reason: String,
    /// The report's execution, when it carries one (LastQty > 0).
    pub execution: Option<FixExecution>,
}

/// Why a report could not be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// A report for a ClOrdID this service never sent.
    UnknownOrder,
    /// A fill that takes the order beyond its quantity.
    Overfill,
}

impl BreakKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownOrder => "unknown_order",
            Self::Overfill => "overfill",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unknown_order" => Some(Self::UnknownOrder),
            "overfill" => Some(Self::Overfill),
            _ => None,
        }
    }
}

/// A break: what the broker reported that the book did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerBreak {
    /// The ExecID of the report (a repeated report raises it once).
    pub id: String,
    pub kind: BreakKind,
    pub client_order_id: String,
    pub symbol: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved (and its execution, if any, was booked).
    Booked,
    /// The execution was booked before: nothing changed.
    Repeated,
    /// Raised as a break, not booked.
    Break(BreakKind),
}

/// The FIX adapter's storage.
#[tonic::async_trait]
pub trait FixBook: Send + Sync + Debug {
    /// The session's state, created with both sequence numbers at 1 if new.
    async fn fix_session(&self, key: &str, now: DateTime<Utc>) -> Result<SessionState, StoreError>;

    /// The next sequence number expected from the counterparty.
    async fn set_fix_target_seq(&self, key: &str, next_target_seq: u64) -> Result<(), StoreError>;

    /// Starts the session again: sequence numbers at 1, messages dropped.
    async fn reset_fix_session(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Stores a sent message and, in the same transaction, moves the next
    /// sender sequence number past it: a number is taken exactly when its
    /// message is stored (a crash between the two never skips or reuses one).
    async fn add_fix_message(&self, key: &str, seq: u64, body: &[u8]) -> Result<(), StoreError>;

    /// Sent messages with sequence numbers from `begin` to `end`, in order.
    async fn fix_messages(
        &self,
        key: &str,
        begin: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The order and its executions.
    async fn fix_order(
        &self,
        client_order_id: &str,
    ) -> Result<Option<(FixOrder, Vec<FixExecution>)>, StoreError>;

    /// Records an order about to be sent; an order already recorded under
    /// the id is kept and returned.
    async fn insert_fix_order(&self, order: FixOrder) -> Result<FixOrder, StoreError>;

    /// Applies an execution report in one transaction: books its execution
    /// once (by ExecID) and moves the order, or raises a break.
    async fn apply_fix_report(
        &self,
        update: ReportUpdate,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;

    /// Orders by client order id after `after`, at most `limit`, with their
    /// executions.
    async fn fix_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(FixOrder, Vec<FixExecution>)>, StoreError>;

    /// Breaks, oldest first, after the break id `after`.
    async fn broker_breaks(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BrokerBreak>, StoreError>;
}

//! Stored shapes of runs, their orders, and batches, and the storage traits
//! for them.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::algo::Algorithm;
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

/// A target weight a run trades toward; `symbol` `None` is cash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetWeight {
    pub symbol: Option<String>,
    pub percent: Decimal,
}

/// What a run's sales are estimated to realize, lot by lot, when planned
/// (prices are the estimates the orders were sized at).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTax {
    /// The account's tax status and lot method when planned.
    pub status: String,
    pub lot_method: String,
    pub short_term_gain: Decimal,
    pub long_term_gain: Decimal,
    /// The net gain the account's budgets still allowed after this plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_left: Option<Decimal>,
    pub orders: Vec<OrderTax>,
}

/// The lots one sale is estimated to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTax {
    pub order_id: String,
    pub lots: Vec<LotClose>,
}

/// Part or all of one lot closed by a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotClose {
    pub lot_id: String,
    /// YYYY-MM-DD.
    pub acquired: String,
    pub quantity: Decimal,
    pub basis: Decimal,
    pub proceeds: Decimal,
    /// "short" or "long".
    pub term: String,
}

/// A ticker's weight before and after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub symbol: Option<String>,
    pub target_weight: Decimal,
    pub current_weight: Decimal,
    pub drift: Decimal,
    pub expected_weight: Decimal,
    pub current_value: Decimal,
    pub expected_value: Decimal,
}

/// A trade the plan wanted but did not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipEntry {
    pub symbol: String,
    pub side: String,
    pub quantity: Decimal,
    pub notional: Decimal,
    /// `below_minimum_notional`, `insufficient_cash`, `not_tradable`,
    /// `restricted`, `rounds_to_zero`, `no_price`, `excluded`,
    /// `below_investment_minimum` (a sleeve not opened).
    pub reason: String,
    pub detail: String,
}

/// An edit or decision recorded on a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentEntry {
    pub actor: String,
    pub at: DateTime<Utc>,
    pub order_id: Option<String>,
    pub action: String,
    pub details: String,
}

/// An account order within a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: String,
    pub run_id: String,
    pub account_id: String,
    pub position: i32,
    pub symbol: String,
    pub side: Side,
    /// Shares asked for (for notional orders, the estimate until the block sizes it).
    pub quantity: Decimal,
    pub notional: Option<Decimal>,
    pub whole_shares: bool,
    pub estimated_price: Decimal,
    pub status: OrderStatus,
    pub filled_quantity: Decimal,
    /// Exact value of the fills (quantity × price).
    pub filled_notional: Decimal,
    /// Cash moved so far, to the cent.
    pub filled_amount: Decimal,
    pub client_order_id: String,
    pub block_order_id: Option<String>,
    pub excluded: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A run with its orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub account_id: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub initiated_from: InitiatedFrom,
    pub reason: String,
    pub amount: Option<Decimal>,
    pub portfolio_id: Option<String>,
    pub portfolio_version: Option<i64>,
    pub approval_mode: ApprovalMode,
    pub batch_id: Option<String>,
    pub cash_movement_id: Option<String>,
    pub transmission_id: Option<String>,
    pub cancel_requested: bool,
    pub equity: Decimal,
    pub cash_before: Decimal,
    pub minimum_order_notional: Decimal,
    pub weights: Vec<TargetWeight>,
    pub algorithm: Algorithm,
    pub drift: Vec<DriftEntry>,
    pub skipped: Vec<SkipEntry>,
    pub adjustments: Vec<AdjustmentEntry>,
    pub approved_by: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    /// Still proposed or queued at this time, the run ends TIMEOUT.
    pub expires_at: Option<DateTime<Utc>>,
    /// The broker its blocks were sent to, once transmitted.
    pub broker: Option<String>,
    /// The W3C traceparent of the request that created it: the worker's
    /// transmission continues that trace.
    pub trace_context: Option<String>,
    /// Estimated lots and gains of its sales; `None` for a run without sales
    /// or planned before lots.
    pub tax: Option<RunTax>,
    pub orders: Vec<OrderRecord>,
}

/// Filters of `ListRuns`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub account_id: Option<String>,
    pub statuses: Vec<RunStatus>,
    pub kind: Option<RunKind>,
    pub batch_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// An edit of one order of a proposed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEdit {
    pub order_id: String,
    pub quantity: Decimal,
    pub notional: Option<Decimal>,
    pub excluded: bool,
}

/// A change to a run; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct RunChange {
    pub status: Option<RunStatus>,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancel_requested: Option<bool>,
    pub algorithm: Option<Algorithm>,
    pub skipped: Option<Vec<SkipEntry>>,
    pub adjustments: Option<Vec<AdjustmentEntry>>,
    pub order_edits: Vec<OrderEdit>,
    /// Orders whose status changes (with a reason).
    pub order_statuses: Vec<(String, OrderStatus, String)>,
    /// The tax estimate made again (`Some(None)`: no sales left).
    pub tax: Option<Option<RunTax>>,
}

rebalancer_kit::text_enum! {
    /// Lifecycle of a batch.
    pub enum BatchStatus {
        Proposed = "proposed",
        InProgress = "in_progress",
        Completed = "completed",
        Canceled = "canceled",
    }
}

/// A rebalance request over many accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub id: String,
    pub portfolio_id: Option<String>,
    pub kind: RunKind,
    pub status: BatchStatus,
    pub algorithm: Algorithm,
    pub initiated_from: InitiatedFrom,
    pub created_by: String,
    pub reason: String,
    pub account_errors: Vec<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub transmitted_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Runs of a batch counted by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub by_status: Vec<(RunStatus, i64)>,
}

/// Runs and their orders, and batches of runs.
#[tonic::async_trait]
pub trait RunStore: Send + Sync + Debug {
    /// The account's run that has not ended, if any.
    async fn open_run_id(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Stores a planned run with its orders; `Conflict` when the account
    /// already has a run that has not ended.
    async fn create_run(
        &self,
        tenant: &str,
        run: RunRecord,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<RunRecord>, StoreError>;

    async fn get_run(&self, tenant: &str, id: &str) -> Result<Option<RunRecord>, StoreError>;

    /// Runs newest first.
    async fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Applies a change to a run whose revision is `expected_revision` (any when `None`).
    async fn update_run(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<i64>,
        change: RunChange,
        now: DateTime<Utc>,
    ) -> Result<RunRecord, StoreError>;

    /// Ends TIMEOUT every run still proposed or queued at its expiry (at
    /// most `limit`), its orders expired; returns the runs as (tenant, id).
    async fn expire_runs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;
}

/// Batches: many accounts' runs proposed, reviewed and transmitted together.
#[tonic::async_trait]
pub trait BatchStore: Send + Sync + Debug {
    /// Stores a batch (its runs are stored with `create_run`).
    async fn create_batch(
        &self,
        tenant: &str,
        batch: BatchRecord,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<BatchRecord>, StoreError>;

    async fn get_batch(&self, tenant: &str, id: &str) -> Result<Option<BatchRecord>, StoreError>;

    /// Batches newest first.
    async fn list_batches(
        &self,
        tenant: &str,
        portfolio_id: Option<&str>,
        status: Option<BatchStatus>,
        page: &PageRequest,
    ) -> Result<Vec<BatchRecord>, StoreError>;

    /// Changes a batch whose revision is `expected_revision` (any when `None`).
    async fn update_batch(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: Option<i64>,
        status: Option<BatchStatus>,
        algorithm: Option<Algorithm>,
        now: DateTime<Utc>,
    ) -> Result<BatchRecord, StoreError>;

    /// Records the accounts that could not get a run.
    async fn set_batch_errors(
        &self,
        tenant: &str,
        id: &str,
        errors: &[String],
    ) -> Result<BatchRecord, StoreError>;

    /// Runs of a batch counted by status.
    async fn batch_counts(
        &self,
        tenant: &str,
        batch_id: &str,
    ) -> Result<Vec<(RunStatus, i64)>, StoreError>;

    /// Queues every proposed run of a batch at once (so the worker transmits
    /// them together), with `algorithm`; returns how many.
    async fn queue_batch_runs(
        &self,
        tenant: &str,
        batch_id: &str,
        algorithm: &Algorithm,
        approved_by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

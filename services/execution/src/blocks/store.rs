//! Stored shapes of block orders, their slices (durable timers), child
//! orders, fills and allocations, and the storage traits the execution
//! worker ([`BlockStore`]) and the order queries ([`OrderBook`]) use.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use rebalancer_domain::algo::Algorithm;
use rebalancer_domain::run::{OrderStatus, RunStatus};
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

use crate::runs::store::{OrderRecord, RunRecord};
use crate::store::{PageRequest, StoreError};

/// Orders of one symbol and side across the accounts of a transmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    pub id: String,
    pub transmission_id: String,
    pub batch_id: Option<String>,
    pub symbol: String,
    pub side: Side,
    /// Every account order of the block trades whole shares.
    pub whole_shares: bool,
    /// Worked in dollars: every account order is notional (fractional shares).
    pub notional: bool,
    pub algorithm: Algorithm,
    pub status: OrderStatus,
    pub quantity: Decimal,
    pub filled_quantity: Decimal,
    pub filled_notional: Decimal,
    pub account_order_count: i64,
    pub arrival_price: Option<Decimal>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The broker its child orders go to (`paper`, or the live one's name),
    /// fixed when the block is made.
    pub broker: String,
    /// The W3C traceparent of the transmission that made it: its slices,
    /// child orders and fills continue that trace.
    pub trace_context: Option<String>,
}

rebalancer_kit::text_enum! {
    /// Lifecycle of a slice.
    pub enum SliceStatus {
        Pending = "pending",
        /// Held by a worker until its lease ends.
        Claimed = "claimed",
        Done = "done",
        Canceled = "canceled",
    }
}

/// A durable timer: when to send the next part of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRecord {
    pub id: String,
    pub block_order_id: String,
    pub sequence: i32,
    pub due_at: DateTime<Utc>,
    pub status: SliceStatus,
    pub attempts: i32,
}

/// One slice sent to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOrderRecord {
    pub id: String,
    pub block_order_id: String,
    pub slice_id: String,
    pub client_order_id: String,
    pub broker_order_id: String,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: OrderStatus,
    pub filled_quantity: Decimal,
    pub average_fill_price: Option<Decimal>,
    pub reason: String,
    pub due_at: DateTime<Utc>,
    pub submitted_at: DateTime<Utc>,
}

/// An execution reported by the broker, or a cross.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecord {
    pub id: String,
    /// Empty for a cross.
    pub child_order_id: String,
    pub block_order_id: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub executed_at: DateTime<Utc>,
    /// Crossed internally against the other side (netting across accounts).
    pub crossed: bool,
}

/// The share of a fill given to one account order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRecord {
    pub fill_id: String,
    pub order_id: String,
    pub account_id: String,
    pub symbol: String,
    pub side: Side,
    pub quantity: Decimal,
    pub price: Decimal,
    /// Cash moved, to the cent: paid on buys, received on sells.
    pub amount: Decimal,
}

/// A block to create, with the account orders it is made of and, when its
/// transmission nets across accounts, the part of them crossed internally.
#[derive(Debug, Clone)]
pub struct NewBlock {
    pub block: BlockRecord,
    pub order_ids: Vec<String>,
    /// The cross fill (at most one), its allocations and the orders' progress.
    pub fills: Vec<FillRecord>,
    pub allocations: Vec<AllocationRecord>,
    pub orders: Vec<OrderProgress>,
}

/// A block's working phase starting: its arrival price, window, the share
/// quantities of its orders (notional orders sized now), and its slices.
#[derive(Debug, Clone)]
pub struct BlockStart {
    pub block_id: String,
    pub arrival_price: Decimal,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub quantity: Decimal,
    pub order_quantities: Vec<(String, Decimal)>,
    pub slices: Vec<SliceRecord>,
}

/// Progress of an account order after a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderProgress {
    pub order_id: String,
    /// Shares: as asked, or a notional order's estimate (its fills, plus what
    /// its remaining dollars buy at the last price).
    pub quantity: Decimal,
    pub filled_quantity: Decimal,
    pub filled_notional: Decimal,
    /// Cash moved so far, to the cent.
    pub filled_amount: Decimal,
    pub status: OrderStatus,
}

/// How a block ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFinish {
    pub status: OrderStatus,
    /// Status of its account orders still open.
    pub order_status: OrderStatus,
    pub reason: String,
}

/// Everything one slice produced, recorded in one transaction.
#[derive(Debug, Clone)]
pub struct SliceOutcome {
    pub slice_id: String,
    pub block_id: String,
    /// The child orders sent, one per leg of the block (none when the slice
    /// had nothing to send).
    pub children: Vec<ChildOrderRecord>,
    pub fills: Vec<FillRecord>,
    pub allocations: Vec<AllocationRecord>,
    pub orders: Vec<OrderProgress>,
    pub block_quantity: Decimal,
    pub block_filled_quantity: Decimal,
    pub block_filled_notional: Decimal,
    pub block_status: OrderStatus,
    /// Slices to add (a follow-up when the last slice left a remainder).
    pub new_slices: Vec<SliceRecord>,
    /// Set when the block ends with this slice.
    pub finish: Option<BlockFinish>,
}

/// What an account of a block can trade now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountRoom {
    pub limits: rebalancer_domain::account::CashLimits,
    /// Shares of the block's symbol held now.
    pub held: Decimal,
    /// What the account's open buy orders in other blocks still need, in
    /// dollars at their planned prices.
    pub other_buys: Decimal,
}

/// An account order cut to what its account can trade now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCap {
    pub order_id: String,
    /// Shares (fills so far plus what it may still trade).
    pub quantity: Decimal,
    /// Dollars, for notional orders.
    pub notional: Option<Decimal>,
    /// CANCELED when nothing is left that it may trade.
    pub status: OrderStatus,
    pub reason: String,
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCompletion {
    pub run_id: String,
    pub status: RunStatus,
    pub reason: String,
    /// A completed full rebalance: stamps the account's last rebalance.
    pub rebalanced: bool,
}

/// A slice claimed by a worker.
#[derive(Debug, Clone)]
pub struct ClaimedSlice {
    pub tenant: String,
    pub slice: SliceRecord,
}

/// Filters of `ListOrders`.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub run_id: Option<String>,
    pub account_id: Option<String>,
    pub block_order_id: Option<String>,
    pub status: Option<OrderStatus>,
}

/// Filters of `ListBlockOrders`.
#[derive(Debug, Clone, Default)]
pub struct BlockFilter {
    pub batch_id: Option<String>,
    pub transmission_id: Option<String>,
    pub symbol: Option<String>,
    pub status: Option<OrderStatus>,
}

/// Which queued runs may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimable {
    /// Regular hours: every run.
    All,
    /// The exchange's extended hours: runs whose algorithm trades in them,
    /// and runs that trade crypto alone.
    ExtendedHoursOrAroundTheClock,
    /// The exchange closed: runs that trade crypto alone.
    AroundTheClock,
}

/// Block orders and everything under them.
#[tonic::async_trait]
pub trait BlockStore: Send + Sync + Debug {
    /// Claims up to `limit` queued runs of any tenant (skipping rows other
    /// workers hold) and marks them in progress under `transmission_id`.
    /// With `gathering`, the runs the monitor opened one by one (system
    /// runs outside any batch) stay queued.
    async fn claim_queued_runs(
        &self,
        transmission_id: &str,
        now: DateTime<Utc>,
        limit: u32,
        gathering: bool,
        claimable: Claimable,
    ) -> Result<Vec<(String, RunRecord)>, StoreError>;

    /// When the oldest and the newest queued system runs outside any batch
    /// were queued, if there are any.
    async fn queued_system_runs(
        &self,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError>;

    /// Stores the blocks of a transmission, links their account orders and
    /// books their crosses, in one transaction; `false` (and nothing stored)
    /// when an order already joined a block (another worker grouped them).
    async fn create_blocks(
        &self,
        tenant: &str,
        blocks: &[NewBlock],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Starts a block's working phase: sizes its orders and schedules its slices.
    async fn start_block(&self, tenant: &str, start: BlockStart) -> Result<(), StoreError>;

    /// Claims due slices (one per block at a time) for `owner` until `lease_until`.
    async fn claim_due_slices(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedSlice>, StoreError>;

    async fn get_block(&self, tenant: &str, id: &str) -> Result<Option<BlockRecord>, StoreError>;

    /// The account orders of a block.
    async fn block_orders(
        &self,
        tenant: &str,
        block_id: &str,
    ) -> Result<Vec<OrderRecord>, StoreError>;

    /// Slices of a block not yet done (pending or claimed).
    async fn open_slices(
        &self,
        tenant: &str,
        block_id: &str,
    ) -> Result<Vec<SliceRecord>, StoreError>;

    /// Moves pending slices to new due times; `None` cancels one.
    async fn reschedule_slices(
        &self,
        tenant: &str,
        moves: &[(String, Option<DateTime<Utc>>)],
    ) -> Result<(), StoreError>;

    /// Records a slice's outcome exactly once, ending the block when the
    /// outcome says so: `false` when its child orders were already recorded
    /// (another worker took the slice over after its lease ended).
    async fn record_slice(
        &self,
        tenant: &str,
        outcome: SliceOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Ends a block: its unfilled account orders end with `order_status`, its
    /// open slices are canceled.
    async fn finish_block(
        &self,
        tenant: &str,
        block_id: &str,
        status: OrderStatus,
        order_status: OrderStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn transmission_blocks(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<BlockRecord>, StoreError>;

    async fn transmission_runs(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Runs of a transmission still in progress whose orders have all ended
    /// (excluded ones aside): the runs to complete.
    async fn finished_runs(
        &self,
        tenant: &str,
        transmission_id: &str,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// What the given accounts can trade now in a block of `symbol`: cash
    /// limits, shares held, and their open buy orders in other blocks.
    async fn account_room(
        &self,
        tenant: &str,
        block_id: &str,
        symbol: &str,
        account_ids: &[String],
    ) -> Result<std::collections::HashMap<String, AccountRoom>, StoreError>;

    /// Cuts account orders to what their accounts can trade (still-open
    /// orders only).
    async fn cap_orders(
        &self,
        tenant: &str,
        caps: &[OrderCap],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Transmissions with runs still in progress (any tenant).
    async fn open_transmissions(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Ends runs still in progress, in one transaction.
    async fn complete_runs(
        &self,
        tenant: &str,
        completions: &[RunCompletion],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The order book as users read it: account orders, blocks, child orders,
/// fills and allocations.
#[tonic::async_trait]
pub trait OrderBook: Send + Sync + Debug {
    async fn get_order(&self, tenant: &str, id: &str) -> Result<Option<OrderRecord>, StoreError>;

    /// Orders newest first.
    async fn list_orders(
        &self,
        tenant: &str,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Vec<OrderRecord>, StoreError>;

    /// Blocks newest first.
    async fn list_blocks(
        &self,
        tenant: &str,
        filter: &BlockFilter,
        page: &PageRequest,
    ) -> Result<Vec<BlockRecord>, StoreError>;

    async fn list_child_orders(
        &self,
        tenant: &str,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ChildOrderRecord>, StoreError>;

    async fn list_fills(
        &self,
        tenant: &str,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<FillRecord>, StoreError>;

    async fn list_allocations(
        &self,
        tenant: &str,
        block_id: Option<&str>,
        order_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<AllocationRecord>, StoreError>;
}

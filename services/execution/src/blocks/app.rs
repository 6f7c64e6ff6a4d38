//! The order book as users read it: account orders, block orders with their
//! execution quality, child orders, fills and allocations; and canceling the
//! rest of a block.

use chrono::Duration;
use rebalancer_domain::quality::{self, Execution as Trade, MarketBar, Quality};
use rebalancer_domain::run::OrderStatus;
use rebalancer_kit::RequestContext;
use rust_decimal::Decimal;

use crate::Execution;
use crate::blocks::store::{
    AllocationRecord, BlockFilter, BlockRecord, ChildOrderRecord, FillRecord, OrderFilter,
};
use crate::error::ExecutionError;
use crate::runs::store::OrderRecord;
use crate::store::PageRequest;

/// A block with its execution quality.
#[derive(Debug, Clone)]
pub struct BlockView {
    pub block: BlockRecord,
    pub quality: Quality,
}

const ALL: PageRequest = PageRequest {
    after: None,
    limit: 100_000,
};

/// Reads of a block and its fills before [`Execution::get_block_with_fills`]
/// settles for two that disagree (a worker storing slices nonstop).
const CONSISTENT_READ_ATTEMPTS: usize = 3;

impl Execution {
    /// One account order.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_order(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<OrderRecord, ExecutionError> {
        self.store
            .get_order(&context.tenant, id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("order {id} not found")))
    }

    /// Account orders newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_orders(
        &self,
        context: &RequestContext,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Vec<OrderRecord>, ExecutionError> {
        Ok(self
            .store
            .list_orders(&context.tenant, filter, page)
            .await?)
    }

    /// Measures a block against the market over its working window.
    async fn measure(
        &self,
        context: &RequestContext,
        block: BlockRecord,
    ) -> Result<BlockView, ExecutionError> {
        let fills = self
            .store
            .list_fills(&context.tenant, &block.id, &ALL)
            .await?;
        Ok(self.measure_fills(block, &fills).await)
    }

    /// Measures a block whose fills are already read.
    async fn measure_fills(&self, block: BlockRecord, fills: &[FillRecord]) -> BlockView {
        let trades: Vec<Trade> = fills
            .iter()
            .map(|fill| Trade {
                quantity: fill.quantity,
                price: fill.price,
                crossed: fill.crossed,
            })
            .collect();
        let bars = match block.window_start {
            Some(start) => {
                let last_fill = fills.iter().map(|f| f.executed_at).max();
                let end = block
                    .window_end
                    .into_iter()
                    .chain(last_fill)
                    .max()
                    .unwrap_or(start)
                    .max(start + Duration::minutes(1));
                self.market
                    .bars(&block.symbol, start, end + Duration::minutes(1), 1)
                    .await
                    .into_iter()
                    .filter(|bar| bar.start < end)
                    .map(|bar| MarketBar {
                        vwap: bar.vwap,
                        close: bar.close,
                        volume: bar.volume,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let quality = quality::measure(
            block.side,
            block.quantity,
            block.arrival_price,
            &trades,
            &bars,
        );
        BlockView { block, quality }
    }

    /// One block with its quality.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_block(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<BlockView, ExecutionError> {
        let block = self
            .store
            .get_block(&context.tenant, id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("block order {id} not found")))?;
        self.measure(context, block).await
    }

    /// One block with its quality and every fill recorded for it, read so
    /// the two agree: the fills sum to the block's filled quantity (a slice
    /// stores both in one transaction). A slice stored between the two reads
    /// makes them read again, [`CONSISTENT_READ_ATTEMPTS`] times at most.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_block_with_fills(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<(BlockView, Vec<FillRecord>), ExecutionError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let block = self
                .store
                .get_block(&context.tenant, id)
                .await?
                .ok_or_else(|| ExecutionError::NotFound(format!("block order {id} not found")))?;
            let fills = self.store.list_fills(&context.tenant, id, &ALL).await?;
            let filled: Decimal = fills.iter().map(|fill| fill.quantity).sum();
            if filled == block.filled_quantity || attempts == CONSISTENT_READ_ATTEMPTS {
                let view = self.measure_fills(block, &fills).await;
                return Ok((view, fills));
            }
        }
    }

    /// Blocks newest first (those of a run: the blocks its orders joined).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_blocks(
        &self,
        context: &RequestContext,
        filter: &BlockFilter,
        run_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<BlockView>, ExecutionError> {
        let blocks = match run_id {
            Some(run_id) => {
                let run = self.get_run(context, run_id).await?;
                let mut ids: Vec<String> = run
                    .orders
                    .iter()
                    .filter_map(|o| o.block_order_id.clone())
                    .collect();
                ids.sort();
                ids.dedup();
                let mut blocks = Vec::new();
                for id in ids.iter().rev() {
                    if let Some(block) = self.store.get_block(&context.tenant, id).await? {
                        blocks.push(block);
                    }
                }
                blocks
            }
            None => {
                self.store
                    .list_blocks(&context.tenant, filter, page)
                    .await?
            }
        };
        let mut views = Vec::with_capacity(blocks.len());
        for block in blocks {
            views.push(self.measure(context, block).await?);
        }
        Ok(views)
    }

    /// Child orders of a block.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_child_orders(
        &self,
        context: &RequestContext,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ChildOrderRecord>, ExecutionError> {
        Ok(self
            .store
            .list_child_orders(&context.tenant, block_id, page)
            .await?)
    }

    /// Fills of a block.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_fills(
        &self,
        context: &RequestContext,
        block_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<FillRecord>, ExecutionError> {
        Ok(self
            .store
            .list_fills(&context.tenant, block_id, page)
            .await?)
    }

    /// Allocations of a block or of one account order.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_allocations(
        &self,
        context: &RequestContext,
        block_id: Option<&str>,
        order_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<AllocationRecord>, ExecutionError> {
        Ok(self
            .store
            .list_allocations(&context.tenant, block_id, order_id, page)
            .await?)
    }

    /// Quality over a block, a run's blocks or a batch's blocks: figures
    /// weighted by filled notional.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn execution_quality(
        &self,
        context: &RequestContext,
        block_id: Option<&str>,
        run_id: Option<&str>,
        batch_id: Option<&str>,
    ) -> Result<(Quality, Vec<BlockView>), ExecutionError> {
        let views = match (block_id, run_id, batch_id) {
            (Some(id), _, _) => vec![self.get_block(context, id).await?],
            (None, Some(run_id), _) => {
                self.list_blocks(context, &BlockFilter::default(), Some(run_id), &ALL)
                    .await?
            }
            (None, None, Some(batch_id)) => {
                let filter = BlockFilter {
                    batch_id: Some(batch_id.to_owned()),
                    ..BlockFilter::default()
                };
                self.list_blocks(context, &filter, None, &ALL).await?
            }
            (None, None, None) => Vec::new(),
        };
        Ok((summarize(&views), views))
    }

    /// Cancels what a block has not filled; its runs end COMPLETED_ADJUSTED.
    ///
    /// # Errors
    /// `NotFound`, `FailedPrecondition` (already ended).
    pub async fn cancel_block(
        &self,
        context: &RequestContext,
        id: &str,
        reason: &str,
    ) -> Result<BlockView, ExecutionError> {
        let view = self.get_block(context, id).await?;
        if view.block.status.is_terminal() {
            return Err(ExecutionError::FailedPrecondition(format!(
                "block order {id} already ended"
            )));
        }
        let reason = if reason.is_empty() {
            format!("canceled by {}", context.actor)
        } else {
            reason.to_owned()
        };
        self.store
            .finish_block(
                &context.tenant,
                id,
                OrderStatus::Canceled,
                OrderStatus::Canceled,
                &reason,
                self.clock.now(),
            )
            .await?;
        for order in self.store.block_orders(&context.tenant, id).await? {
            self.notify(&order.run_id);
        }
        self.get_block(context, id).await
    }
}

/// Notional-weighted figures over several blocks.
fn summarize(views: &[BlockView]) -> Quality {
    let weight = |view: &BlockView| view.quality.filled_notional;
    let total: Decimal = views.iter().map(weight).sum();
    let weighted = |pick: fn(&Quality) -> Option<Decimal>| -> Option<Decimal> {
        let parts: Vec<(Decimal, Decimal)> = views
            .iter()
            .filter_map(|view| pick(&view.quality).map(|value| (value, weight(view))))
            .collect();
        let covered: Decimal = parts.iter().map(|(_, w)| *w).sum();
        (covered > Decimal::ZERO)
            .then(|| (parts.iter().map(|(v, w)| v * w).sum::<Decimal>() / covered).round_dp(2))
    };
    let requested: Decimal = views.iter().map(|v| v.block.quantity).sum();
    let filled: Decimal = views.iter().map(|v| v.quality.filled_quantity).sum();
    Quality {
        arrival_price: None,
        average_fill_price: None,
        interval_vwap: None,
        interval_twap: None,
        slippage_vs_arrival_bps: weighted(|q| q.slippage_vs_arrival_bps),
        slippage_vs_vwap_bps: weighted(|q| q.slippage_vs_vwap_bps),
        slippage_vs_twap_bps: weighted(|q| q.slippage_vs_twap_bps),
        participation_percent: weighted(|q| q.participation_percent),
        filled_percent: (requested > Decimal::ZERO)
            .then(|| (filled / requested * Decimal::ONE_HUNDRED).round_dp(4)),
        filled_quantity: filled,
        filled_notional: total,
        crossed_quantity: views.iter().map(|v| v.quality.crossed_quantity).sum(),
    }
}

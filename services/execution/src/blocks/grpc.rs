//! `rebalancer.execution.v1.OrderService`.

use std::collections::HashSet;
use std::time::Duration;

use rebalancer_kit::RequestContext;
use rebalancer_kit::error::invalid_field;
use rebalancer_kit::page::Page;
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::order_service_server::OrderService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::blocks::BlockView;
use crate::blocks::convert::{
    allocation_to_wire, block_to_wire, break_to_wire, child_to_wire, fill_to_wire, quality_to_wire,
    trading_mode_to_wire,
};
use crate::blocks::store::{BlockFilter, FillRecord, OrderFilter};
use crate::broker::brokers::TradingMode;
use crate::grpc::{ExecutionApi, required};
use crate::runs::convert::{order_status_from_wire, order_to_wire};

/// How often a block watcher re-reads.
const WATCH_POLL: Duration = Duration::from_millis(500);

type WatchStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::WatchBlockOrderResponse, Status>> + Send>,
>;

fn status_filter(value: i32) -> Result<Option<rebalancer_domain::run::OrderStatus>, Status> {
    match value {
        0 => Ok(None),
        value => Ok(Some(order_status_from_wire(value).ok_or_else(|| {
            invalid_field("status", "is not a known order status")
        })?)),
    }
}

#[tonic::async_trait]
impl OrderService for ExecutionApi {
    type WatchBlockOrderStream = WatchStream;

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("order_id", &message.order_id)?;
        let order = self
            .execution
            .get_order(&context, &message.order_id)
            .await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(order_to_wire(&order)),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let filter = OrderFilter {
            run_id: Some(message.run_id).filter(|id| !id.is_empty()),
            account_id: Some(message.account_id).filter(|id| !id.is_empty()),
            block_order_id: Some(message.block_order_id).filter(|id| !id.is_empty()),
            status: status_filter(message.status)?,
        };
        let orders = self
            .execution
            .list_orders(&context, &filter, &page.fetch())
            .await?;
        let (orders, next_page_token) = page.finish(orders, |order| order.id.clone());
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(order_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn get_block_order(
        &self,
        request: Request<pb::GetBlockOrderRequest>,
    ) -> Result<Response<pb::GetBlockOrderResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("block_order_id", &message.block_order_id)?;
        let view = self
            .execution
            .get_block(&context, &message.block_order_id)
            .await?;
        Ok(Response::new(pb::GetBlockOrderResponse {
            block_order: Some(block_to_wire(&view)),
        }))
    }

    async fn list_block_orders(
        &self,
        request: Request<pb::ListBlockOrdersRequest>,
    ) -> Result<Response<pb::ListBlockOrdersResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let filter = BlockFilter {
            batch_id: Some(message.batch_id).filter(|id| !id.is_empty()),
            transmission_id: None,
            symbol: Some(message.symbol).filter(|s| !s.is_empty()),
            status: status_filter(message.status)?,
        };
        let run = Some(message.run_id.as_str()).filter(|id| !id.is_empty());
        let views = self
            .execution
            .list_blocks(&context, &filter, run, &page.fetch())
            .await?;
        let (views, next_page_token) = page.finish(views, |view| view.block.id.clone());
        Ok(Response::new(pb::ListBlockOrdersResponse {
            block_orders: views.iter().map(block_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn list_child_orders(
        &self,
        request: Request<pb::ListChildOrdersRequest>,
    ) -> Result<Response<pb::ListChildOrdersResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("block_order_id", &message.block_order_id)?;
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let children = self
            .execution
            .list_child_orders(&context, &message.block_order_id, &page.fetch())
            .await?;
        let (children, next_page_token) = page.finish(children, |child| child.id.clone());
        Ok(Response::new(pb::ListChildOrdersResponse {
            child_orders: children.iter().map(child_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn list_fills(
        &self,
        request: Request<pb::ListFillsRequest>,
    ) -> Result<Response<pb::ListFillsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("block_order_id", &message.block_order_id)?;
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let fills = self
            .execution
            .list_fills(&context, &message.block_order_id, &page.fetch())
            .await?;
        let (fills, next_page_token) = page.finish(fills, |fill| fill.id.clone());
        Ok(Response::new(pb::ListFillsResponse {
            fills: fills.iter().map(fill_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn list_allocations(
        &self,
        request: Request<pb::ListAllocationsRequest>,
    ) -> Result<Response<pb::ListAllocationsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        if message.block_order_id.is_empty() == message.order_id.is_empty() {
            return Err(invalid_field(
                "block_order_id",
                "give either block_order_id or order_id",
            ));
        }
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let allocations = self
            .execution
            .list_allocations(
                &context,
                Some(message.block_order_id.as_str()).filter(|id| !id.is_empty()),
                Some(message.order_id.as_str()).filter(|id| !id.is_empty()),
                &page.fetch(),
            )
            .await?;
        let (allocations, next_page_token) =
            page.finish(allocations, |a| format!("{}/{}", a.fill_id, a.order_id));
        Ok(Response::new(pb::ListAllocationsResponse {
            allocations: allocations.iter().map(allocation_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn get_execution_quality(
        &self,
        request: Request<pb::GetExecutionQualityRequest>,
    ) -> Result<Response<pb::GetExecutionQualityResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let given = [&message.block_order_id, &message.run_id, &message.batch_id]
            .iter()
            .filter(|id| !id.is_empty())
            .count();
        if given != 1 {
            return Err(invalid_field(
                "block_order_id",
                "give exactly one of block_order_id, run_id, batch_id",
            ));
        }
        let some = |id: &str| Some(id.to_owned()).filter(|id| !id.is_empty());
        let block = some(&message.block_order_id);
        let run = some(&message.run_id);
        let batch = some(&message.batch_id);
        let (quality, views) = self
            .execution
            .execution_quality(&context, block.as_deref(), run.as_deref(), batch.as_deref())
            .await?;
        Ok(Response::new(pb::GetExecutionQualityResponse {
            quality: Some(quality_to_wire(&quality)),
            block_count: i64::try_from(views.len()).unwrap_or(i64::MAX),
            block_orders: views.iter().map(block_to_wire).collect(),
        }))
    }

    async fn cancel_block_order(
        &self,
        request: Request<pb::CancelBlockOrderRequest>,
    ) -> Result<Response<pb::CancelBlockOrderResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("block_order_id", &message.block_order_id)?;
        let view = self
            .execution
            .cancel_block(&context, &message.block_order_id, &message.reason)
            .await?;
        Ok(Response::new(pb::CancelBlockOrderResponse {
            block_order: Some(block_to_wire(&view)),
        }))
    }

    async fn watch_block_order(
        &self,
        request: Request<pb::WatchBlockOrderRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("block_order_id", &message.block_order_id)?;
        let (first, fills) = self
            .execution
            .get_block_with_fills(&context, &message.block_order_id)
            .await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let execution = self.execution.clone();
        let mut changes = execution.subscribe();
        tokio::spawn(async move {
            // Fills the first update already counts are not news.
            let mut sent_fills: HashSet<String> = fills.into_iter().map(|fill| fill.id).collect();
            let mut last = first.block.clone();
            let message = pb::WatchBlockOrderResponse {
                block_order: Some(block_to_wire(&first)),
                fill: None,
            };
            if sender.send(Ok(message)).await.is_err() {
                return;
            }
            while !last.status.is_terminal() {
                let _ = tokio::time::timeout(WATCH_POLL, changes.recv()).await;
                let (view, fills) = match execution.get_block_with_fills(&context, &last.id).await {
                    Ok(read) => read,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                if view.block == last {
                    continue;
                }
                for message in block_updates(&view, fills, &mut sent_fills) {
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                last = view.block;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_broker_breaks(
        &self,
        request: Request<pb::ListBrokerBreaksRequest>,
    ) -> Result<Response<pb::ListBrokerBreaksResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let fetch = page.fetch();
        let breaks = self
            .execution
            .store()
            .broker_breaks(fetch.after.as_deref(), fetch.limit)
            .await
            .map_err(crate::error::ExecutionError::from)?;
        let (breaks, next_page_token) = page.finish(breaks, |found| found.id.clone());
        Ok(Response::new(pb::ListBrokerBreaksResponse {
            breaks: breaks.iter().map(break_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn get_trading_mode(
        &self,
        request: Request<pb::GetTradingModeRequest>,
    ) -> Result<Response<pb::GetTradingModeResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let view = self.execution.trading_mode(&context.tenant).await?;
        Ok(Response::new(pb::GetTradingModeResponse {
            state: Some(trading_mode_to_wire(&view)),
        }))
    }

    async fn set_trading_mode(
        &self,
        request: Request<pb::SetTradingModeRequest>,
    ) -> Result<Response<pb::SetTradingModeResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let mode = match pb::TradingMode::try_from(request.get_ref().mode) {
            Ok(pb::TradingMode::Paper) => TradingMode::Paper,
            Ok(pb::TradingMode::Live) => TradingMode::Live,
            Ok(pb::TradingMode::Unspecified) | Err(_) => {
                return Err(invalid_field(
                    "mode",
                    "must be TRADING_MODE_PAPER or TRADING_MODE_LIVE",
                ));
            }
        };
        let view = self.execution.set_trading_mode(&context, mode).await?;
        Ok(Response::new(pb::SetTradingModeResponse {
            state: Some(trading_mode_to_wire(&view)),
        }))
    }
}

/// The updates a changed block makes: one per fill not sent yet, oldest
/// first, each with the block as read now; one without a fill when the
/// change was no fill (a status, a cancel).
fn block_updates(
    view: &BlockView,
    fills: Vec<FillRecord>,
    sent_fills: &mut HashSet<String>,
) -> Vec<pb::WatchBlockOrderResponse> {
    let mut new_fills: Vec<FillRecord> = fills
        .into_iter()
        .filter(|fill| !sent_fills.contains(&fill.id))
        .collect();
    new_fills.sort_by(|a, b| (a.executed_at, &a.id).cmp(&(b.executed_at, &b.id)));
    let block_order = block_to_wire(view);
    if new_fills.is_empty() {
        return vec![pb::WatchBlockOrderResponse {
            block_order: Some(block_order),
            fill: None,
        }];
    }
    new_fills
        .into_iter()
        .map(|fill| {
            sent_fills.insert(fill.id.clone());
            pb::WatchBlockOrderResponse {
                block_order: Some(block_order.clone()),
                fill: Some(fill_to_wire(&fill)),
            }
        })
        .collect()
}

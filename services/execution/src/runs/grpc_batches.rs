//! `rebalancer.execution.v1.BatchService`.

use std::time::Duration;

use rebalancer_kit::RequestContext;
use rebalancer_kit::idempotency::required_claim;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::enum_filter;
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::batch_service_server::BatchService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::grpc::{ExecutionApi, required};
use crate::runs::BatchInput;
use crate::runs::convert::{
    adjustment_input, algorithm_input, batch_status_from_wire, batch_to_wire, initiated_from_wire,
    run_kind_from_wire, run_to_wire, ticker_to_wire,
};

/// How often a batch watcher re-reads.
const WATCH_POLL: Duration = Duration::from_millis(500);

type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchBatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl BatchService for ExecutionApi {
    type WatchBatchStream = WatchStream;

    async fn create_batch(
        &self,
        request: Request<pb::CreateBatchRequest>,
    ) -> Result<Response<pb::CreateBatchResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim("CreateBatch", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear()
        })?;
        let input = BatchInput {
            portfolio_id: message.portfolio_id.clone(),
            account_ids: message.account_ids.clone(),
            kind: run_kind_from_wire(message.r#type),
            algorithm: algorithm_input(message.algorithm.as_ref()),
            reason: message.reason.clone(),
            initiated_from: initiated_from_wire(message.initiated_from),
        };
        let view = self
            .execution
            .create_batch(&context, input, claim)
            .await?
            .into_inner();
        Ok(Response::new(pb::CreateBatchResponse {
            batch: Some(batch_to_wire(&view)),
        }))
    }

    async fn get_batch(
        &self,
        request: Request<pb::GetBatchRequest>,
    ) -> Result<Response<pb::GetBatchResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let view = self
            .execution
            .get_batch(&context, &message.batch_id)
            .await?;
        Ok(Response::new(pb::GetBatchResponse {
            batch: Some(batch_to_wire(&view)),
        }))
    }

    async fn list_batches(
        &self,
        request: Request<pb::ListBatchesRequest>,
    ) -> Result<Response<pb::ListBatchesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let status = enum_filter(
            "status",
            message.status,
            batch_status_from_wire,
            "batch status",
        )?;
        let portfolio = Some(message.portfolio_id.as_str()).filter(|id| !id.is_empty());
        let views = self
            .execution
            .list_batches(&context, portfolio, status, &page.fetch())
            .await?;
        let (views, next_page_token) = page.finish(views, |view| view.batch.id.clone());
        Ok(Response::new(pb::ListBatchesResponse {
            batches: views.iter().map(batch_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn get_batch_trades(
        &self,
        request: Request<pb::GetBatchTradesRequest>,
    ) -> Result<Response<pb::GetBatchTradesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let (tickers, runs) = self
            .execution
            .batch_trades(&context, &message.batch_id, &page.fetch())
            .await?;
        let (runs, next_page_token) = page.finish(runs, |run| run.id.clone());
        Ok(Response::new(pb::GetBatchTradesResponse {
            tickers: tickers.iter().map(ticker_to_wire).collect(),
            runs: runs.iter().map(run_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn adjust_batch(
        &self,
        request: Request<pb::AdjustBatchRequest>,
    ) -> Result<Response<pb::AdjustBatchResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let adjustments = message.adjustments.iter().map(adjustment_input).collect();
        let view = self
            .execution
            .adjust_batch(
                &context,
                &message.batch_id,
                &message.etag,
                &message.exclude_account_ids,
                adjustments,
            )
            .await?;
        Ok(Response::new(pb::AdjustBatchResponse {
            batch: Some(batch_to_wire(&view)),
        }))
    }

    async fn transmit_batch(
        &self,
        request: Request<pb::TransmitBatchRequest>,
    ) -> Result<Response<pb::TransmitBatchResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let algorithm = message.algorithm.as_ref().map(|a| algorithm_input(Some(a)));
        let view = self
            .execution
            .transmit_batch(&context, &message.batch_id, &message.etag, algorithm)
            .await?;
        Ok(Response::new(pb::TransmitBatchResponse {
            batch: Some(batch_to_wire(&view)),
        }))
    }

    async fn cancel_batch(
        &self,
        request: Request<pb::CancelBatchRequest>,
    ) -> Result<Response<pb::CancelBatchResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let view = self
            .execution
            .cancel_batch(&context, &message.batch_id, &message.etag, &message.reason)
            .await?;
        Ok(Response::new(pb::CancelBatchResponse {
            batch: Some(batch_to_wire(&view)),
        }))
    }

    async fn watch_batch(
        &self,
        request: Request<pb::WatchBatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("batch_id", &message.batch_id)?;
        let first = self
            .execution
            .get_batch(&context, &message.batch_id)
            .await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let execution = self.execution.clone();
        let mut changes = execution.subscribe();
        tokio::spawn(async move {
            let mut last = batch_to_wire(&first);
            if sender
                .send(Ok(pb::WatchBatchResponse {
                    batch: Some(last.clone()),
                }))
                .await
                .is_err()
            {
                return;
            }
            let terminal = |batch: &pb::Batch| {
                batch.status == i32::from(pb::BatchStatus::Completed)
                    || batch.status == i32::from(pb::BatchStatus::Canceled)
            };
            while !terminal(&last) {
                let _ = tokio::time::timeout(WATCH_POLL, changes.recv()).await;
                let current = match execution.get_batch(&context, &first.batch.id).await {
                    Ok(view) => batch_to_wire(&view),
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                if current != last {
                    if sender
                        .send(Ok(pb::WatchBatchResponse {
                            batch: Some(current.clone()),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = current;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

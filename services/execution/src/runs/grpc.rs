//! `rebalancer.execution.v1.RunService`.

use std::collections::HashMap;
use std::time::Duration;

use rebalancer_kit::RequestContext;
use rebalancer_kit::error::invalid_field;
use rebalancer_kit::idempotency::required_claim;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::{datetime, decimal_text, money_text, timestamp};
use rebalancer_kit::wire::{enum_filter, id_filter};
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::run_service_server::RunService;
use rust_decimal::Decimal;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::grpc::{ExecutionApi, required};
use crate::runs::convert::{
    adjustment_input, drift_to_wire, run_kind_from_wire, run_spec_input, run_status_from_wire,
    run_to_wire, skipped_to_wire,
};
use crate::runs::store::{RunFilter, RunRecord};

/// How often a watcher re-reads when no change was announced (other replicas).
const WATCH_POLL: Duration = Duration::from_millis(500);

type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;

/// A planned, unstored run as `PreviewRun` answers it.
fn preview_to_wire(run: &RunRecord) -> pb::PreviewRunResponse {
    let wire = run_to_wire(run);
    let cash_after = run
        .drift
        .iter()
        .find(|d| d.symbol.is_none())
        .map(|d| money_text(d.expected_value))
        .unwrap_or_default();
    pb::PreviewRunResponse {
        orders: wire.orders,
        skipped_orders: run.skipped.iter().map(skipped_to_wire).collect(),
        tax: wire.tax,
        drift: run.drift.iter().map(drift_to_wire).collect(),
        equity: money_text(run.equity),
        cash_before: money_text(run.cash_before),
        cash_after,
        weights: wire.weights,
    }
}

fn spec_of(spec: Option<pb::RunSpec>) -> Result<pb::RunSpec, Status> {
    spec.ok_or_else(|| invalid_field("spec", "is required (account_id, type, ...)"))
}

#[tonic::async_trait]
impl RunService for ExecutionApi {
    type WatchRunStream = WatchStream;

    async fn create_run(
        &self,
        request: Request<pb::CreateRunRequest>,
    ) -> Result<Response<pb::CreateRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim("CreateRun", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear()
        })?;
        let spec = spec_of(message.spec)?;
        let run = self
            .execution
            .create_run(&context, run_spec_input(&spec), claim, None)
            .await?
            .into_inner();
        Ok(Response::new(pb::CreateRunResponse {
            run: Some(run_to_wire(&run)),
        }))
    }

    async fn preview_run(
        &self,
        request: Request<pb::PreviewRunRequest>,
    ) -> Result<Response<pb::PreviewRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let spec = spec_of(request.into_inner().spec)?;
        let run = self
            .execution
            .preview_run(&context, run_spec_input(&spec))
            .await?;
        Ok(Response::new(preview_to_wire(&run)))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("run_id", &message.run_id)?;
        let run = self.execution.get_run(&context, &message.run_id).await?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(run_to_wire(&run)),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let mut statuses = Vec::new();
        for (index, value) in message.statuses.iter().enumerate() {
            statuses.push(run_status_from_wire(*value).ok_or_else(|| {
                invalid_field(&format!("statuses[{index}]"), "is not a known run status")
            })?);
        }
        let kind = enum_filter("type", message.r#type, run_kind_from_wire, "run type")?;
        let filter = RunFilter {
            account_id: id_filter("account_id", message.account_id)?,
            statuses,
            kind,
            batch_id: id_filter("batch_id", message.batch_id)?,
            created_after: message.created_after.as_ref().and_then(datetime),
            created_before: message.created_before.as_ref().and_then(datetime),
        };
        let runs = self
            .execution
            .list_runs(&context, &filter, &page.fetch())
            .await?;
        let (runs, next_page_token) = page.finish(runs, |run| run.id.clone());
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(run_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn approve_run(
        &self,
        request: Request<pb::ApproveRunRequest>,
    ) -> Result<Response<pb::ApproveRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("run_id", &message.run_id)?;
        let run = self
            .execution
            .approve_run(&context, &message.run_id, &message.etag)
            .await?;
        Ok(Response::new(pb::ApproveRunResponse {
            run: Some(run_to_wire(&run)),
        }))
    }

    async fn adjust_run(
        &self,
        request: Request<pb::AdjustRunRequest>,
    ) -> Result<Response<pb::AdjustRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("run_id", &message.run_id)?;
        if message.adjustments.is_empty() && !message.exclude_account {
            return Err(invalid_field(
                "adjustments",
                "give adjustments or exclude the account",
            ));
        }
        let adjustments = message.adjustments.iter().map(adjustment_input).collect();
        let run = self
            .execution
            .adjust_run(
                &context,
                &message.run_id,
                &message.etag,
                adjustments,
                message.exclude_account,
            )
            .await?;
        Ok(Response::new(pb::AdjustRunResponse {
            run: Some(run_to_wire(&run)),
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("run_id", &message.run_id)?;
        let run = self
            .execution
            .cancel_run(&context, &message.run_id, &message.etag, &message.reason)
            .await?;
        Ok(Response::new(pb::CancelRunResponse {
            run: Some(run_to_wire(&run)),
        }))
    }

    async fn preview_household_rebalance(
        &self,
        request: Request<pb::PreviewHouseholdRebalanceRequest>,
    ) -> Result<Response<pb::PreviewHouseholdRebalanceResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("household_id", &message.household_id)?;
        let plans = self
            .execution
            .preview_household_rebalance(&context, &message.household_id, message.allow_wash_sales)
            .await?;
        let gain = |term: fn(&crate::runs::store::RunTax) -> Decimal| -> Decimal {
            plans
                .iter()
                .filter_map(|run| run.tax.as_ref())
                .map(term)
                .sum()
        };
        Ok(Response::new(pb::PreviewHouseholdRebalanceResponse {
            short_term_gain: money_text(gain(|tax| tax.short_term_gain)),
            long_term_gain: money_text(gain(|tax| tax.long_term_gain)),
            plans: plans
                .iter()
                .map(|run| pb::HouseholdPlan {
                    account_id: run.account_id.clone(),
                    preview: Some(preview_to_wire(run)),
                })
                .collect(),
        }))
    }

    async fn create_household_rebalance(
        &self,
        request: Request<pb::CreateHouseholdRebalanceRequest>,
    ) -> Result<Response<pb::CreateHouseholdRebalanceResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim(
            "CreateHouseholdRebalance",
            &message.idempotency_key,
            &message,
            |m| m.idempotency_key.clear(),
        )?;
        required("household_id", &message.household_id)?;
        let approval_mode = match message.approval_mode {
            0 => None,
            value => Some(
                crate::runs::convert::approval_mode_from_wire(value).ok_or_else(|| {
                    invalid_field("approval_mode", "is not a known approval mode")
                })?,
            ),
        };
        let runs = self
            .execution
            .create_household_rebalance(
                &context,
                &message.household_id,
                &claim,
                approval_mode,
                message.allow_wash_sales,
            )
            .await?;
        Ok(Response::new(pb::CreateHouseholdRebalanceResponse {
            runs: runs.iter().map(run_to_wire).collect(),
        }))
    }

    async fn watch_run(
        &self,
        request: Request<pb::WatchRunRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("run_id", &message.run_id)?;
        let first = self.execution.get_run(&context, &message.run_id).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let execution = self.execution.clone();
        let mut changes = execution.subscribe();
        tokio::spawn(async move {
            let snapshot = event(pb::RunEventType::Snapshot, &first, None, &execution);
            if sender.send(Ok(snapshot)).await.is_err() {
                return;
            }
            let mut last = first;
            while !last.status.is_terminal() {
                // Wake on a change announced in this process, or poll.
                let _ = tokio::time::timeout(WATCH_POLL, async {
                    while let Ok(id) = changes.recv().await {
                        if id == last.id {
                            break;
                        }
                    }
                })
                .await;
                let current = match execution.get_run(&context, &last.id).await {
                    Ok(run) => run,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                for update in diff(&last, &current, &execution) {
                    if sender.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
                last = current;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

fn event(
    kind: pb::RunEventType,
    run: &RunRecord,
    fill: Option<(&str, Decimal, Decimal)>,
    execution: &crate::Execution,
) -> pb::WatchRunResponse {
    pb::WatchRunResponse {
        event_type: kind.into(),
        run: Some(run_to_wire(run)),
        order_id: fill.map(|(id, _, _)| id.to_owned()).unwrap_or_default(),
        fill_quantity: fill
            .map(|(_, quantity, _)| decimal_text(quantity))
            .unwrap_or_default(),
        fill_price: fill
            .map(|(_, _, price)| decimal_text(price.round_dp(4)))
            .unwrap_or_default(),
        at: Some(timestamp(execution.clock().now())),
    }
}

/// Events between two reads of a run: fills, order changes, status change.
fn diff(
    before: &RunRecord,
    after: &RunRecord,
    execution: &crate::Execution,
) -> Vec<pb::WatchRunResponse> {
    let mut events = Vec::new();
    let earlier: HashMap<&str, _> = before.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    for order in &after.orders {
        let Some(previous) = earlier.get(order.id.as_str()) else {
            continue;
        };
        let filled = order.filled_quantity - previous.filled_quantity;
        if filled > Decimal::ZERO {
            let notional = order.filled_notional - previous.filled_notional;
            events.push(event(
                pb::RunEventType::Fill,
                after,
                Some((&order.id, filled, notional / filled)),
                execution,
            ));
        } else if order.status != previous.status {
            let mut update = event(pb::RunEventType::OrderUpdated, after, None, execution);
            update.order_id.clone_from(&order.id);
            events.push(update);
        }
    }
    if after.status != before.status {
        events.push(event(
            pb::RunEventType::StatusChanged,
            after,
            None,
            execution,
        ));
    }
    events
}

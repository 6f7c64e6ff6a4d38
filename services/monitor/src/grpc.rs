//! `rebalancer.monitor.v1.MonitorService`: read the request context, convert
//! wire types, call [`Monitor`](crate::app::Monitor), convert back.

use std::time::Duration;

use rebalancer_kit::RequestContext;
use rebalancer_kit::error::invalid_field;
use rebalancer_kit::idempotency::claim;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::{
    check_rebalance_to, condition_input, condition_sub_kind, condition_to_wire, decimal_text,
    money_text, rebalance_to_input, rebalance_to_wire, required, weight_input,
};
use rebalancer_proto::monitor as pb;
use rebalancer_proto::monitor::monitor_service_server::MonitorService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::app::{EvaluateNowInput, Monitor};
use crate::convert::{counts_to_wire, cycle_to_wire, evaluation_to_wire, flag_from_wire};
use crate::simulate::{self, GridInput, SimulationInput};
use crate::store::CycleState;

/// How often a watched cycle is re-read.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// `rebalancer.monitor.v1.MonitorService`.
#[derive(Debug, Clone)]
pub struct MonitorApi {
    monitor: Monitor,
}

impl MonitorApi {
    #[must_use]
    pub fn new(monitor: Monitor) -> Self {
        Self { monitor }
    }
}

type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchCycleResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MonitorService for MonitorApi {
    async fn evaluate_now(
        &self,
        request: Request<pb::EvaluateNowRequest>,
    ) -> Result<Response<pb::EvaluateNowResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = claim("EvaluateNow", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear()
        })?;
        let cycle = self
            .monitor
            .evaluate_now(
                &context,
                EvaluateNowInput {
                    portfolio_id: message.portfolio_id,
                    account_ids: message.account_ids,
                    dry_run: message.dry_run,
                },
                claim,
            )
            .await?;
        Ok(Response::new(pb::EvaluateNowResponse {
            cycle: Some(cycle_to_wire(&cycle)),
        }))
    }

    async fn get_evaluation(
        &self,
        request: Request<pb::GetEvaluationRequest>,
    ) -> Result<Response<pb::GetEvaluationResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("account_id", &message.account_id)?;
        let cycle_id = Some(message.cycle_id.as_str()).filter(|id| !id.is_empty());
        let evaluation = self
            .monitor
            .get_evaluation(&context, &message.account_id, cycle_id)
            .await?;
        Ok(Response::new(pb::GetEvaluationResponse {
            evaluation: Some(evaluation_to_wire(&evaluation)),
        }))
    }

    async fn list_flagged(
        &self,
        request: Request<pb::ListFlaggedRequest>,
    ) -> Result<Response<pb::ListFlaggedResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let mut flags = Vec::with_capacity(message.statuses.len());
        for (index, value) in message.statuses.iter().enumerate() {
            let flag = flag_from_wire(*value).ok_or_else(|| {
                invalid_field(&format!("statuses[{index}]"), "is not a known status")
            })?;
            flags.push(flag);
        }
        let cycle_id = Some(message.cycle_id.as_str()).filter(|id| !id.is_empty());
        let portfolio_id = Some(message.portfolio_id.as_str()).filter(|id| !id.is_empty());
        let flagged = self
            .monitor
            .list_flagged(
                &context,
                cycle_id,
                &flags,
                portfolio_id,
                page.after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        let (evaluations, next_page_token) =
            page.finish(flagged.evaluations, |e| e.account_id.clone());
        Ok(Response::new(pb::ListFlaggedResponse {
            cycle_id: flagged.cycle_id,
            groups: flagged
                .groups
                .into_iter()
                .map(|(portfolio_id, counts)| pb::PortfolioGroup {
                    portfolio_name: portfolio_id
                        .as_ref()
                        .and_then(|id| flagged.names.get(id))
                        .cloned()
                        .unwrap_or_default(),
                    portfolio_id: portfolio_id.unwrap_or_default(),
                    total: counts.iter().map(|(_, count)| count).sum(),
                    status_counts: counts_to_wire(counts),
                })
                .collect(),
            evaluations: evaluations.iter().map(evaluation_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn get_cycle(
        &self,
        request: Request<pb::GetCycleRequest>,
    ) -> Result<Response<pb::GetCycleResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("cycle_id", &message.cycle_id)?;
        let cycle = self.monitor.get_cycle(&context, &message.cycle_id).await?;
        Ok(Response::new(pb::GetCycleResponse {
            cycle: Some(cycle_to_wire(&cycle)),
        }))
    }

    async fn list_cycles(
        &self,
        request: Request<pb::ListCyclesRequest>,
    ) -> Result<Response<pb::ListCyclesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let cycles = self
            .monitor
            .list_cycles(&context, page.after.as_deref(), page.fetch_limit())
            .await?;
        let (cycles, next_page_token) = page.finish(cycles, |c| c.id.clone());
        Ok(Response::new(pb::ListCyclesResponse {
            cycles: cycles.iter().map(cycle_to_wire).collect(),
            next_page_token,
        }))
    }

    type WatchCycleStream = WatchStream;

    async fn watch_cycle(
        &self,
        request: Request<pb::WatchCycleRequest>,
    ) -> Result<Response<Self::WatchCycleStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("cycle_id", &message.cycle_id)?;
        let first = self.monitor.get_cycle(&context, &message.cycle_id).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let monitor = self.monitor.clone();
        tokio::spawn(async move {
            let mut last = first;
            if sender
                .send(Ok(pb::WatchCycleResponse {
                    cycle: Some(cycle_to_wire(&last)),
                }))
                .await
                .is_err()
            {
                return;
            }
            while !matches!(last.state, CycleState::Completed | CycleState::Failed) {
                tokio::time::sleep(WATCH_POLL).await;
                let current = match monitor.get_cycle(&context, &last.id).await {
                    Ok(cycle) => cycle,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                };
                if current != last {
                    let update = pb::WatchCycleResponse {
                        cycle: Some(cycle_to_wire(&current)),
                    };
                    if sender.send(Ok(update)).await.is_err() {
                        return;
                    }
                    last = current;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn simulate_policy(
        &self,
        request: Request<pb::SimulatePolicyRequest>,
    ) -> Result<Response<pb::SimulatePolicyResponse>, Status> {
        let _context = RequestContext::of(&request)?;
        let message = request.into_inner();
        check_rebalance_to("rebalance_to", message.rebalance_to)?;
        let input = SimulationInput {
            weights: message.weights.iter().map(weight_input).collect(),
            conditions: message
                .rebalance_conditions
                .iter()
                .map(condition_input)
                .collect(),
            cooldown_days: message.cooldown_days,
            start_month: message.start_month,
            end_month: message.end_month,
            initial_value: message.initial_value,
            rebalance_to: rebalance_to_input(message.rebalance_to),
            grid: message.grid.map(|grid| GridInput {
                monitoring: grid
                    .monitoring
                    .iter()
                    .map(|value| condition_sub_kind(*value))
                    .collect(),
                thresholds: grid.thresholds,
                rebalance_to: grid
                    .rebalance_to
                    .iter()
                    .map(|value| rebalance_to_input(*value))
                    .collect(),
                include_never: grid.include_never,
            }),
        };
        // A century and a half of months takes a few milliseconds; keep it
        // off the request threads anyway.
        let simulation = tokio::task::spawn_blocking(move || simulate::simulate(input))
            .await
            .map_err(|_| Status::internal("simulation failed"))?
            .map_err(|violations| rebalancer_kit::error::invalid_argument(&violations))?;
        let outcome = simulation.outcome;
        Ok(Response::new(pb::SimulatePolicyResponse {
            final_value: money_text(outcome.final_value),
            buy_and_hold_value: money_text(outcome.buy_and_hold_value),
            rebalance_count: i64::try_from(outcome.rebalances.len()).unwrap_or(i64::MAX),
            total_turnover_percent: decimal_text(outcome.total_turnover_percent),
            max_drift: decimal_text(outcome.max_drift),
            annualized_return_percent: decimal_text(outcome.annualized_return_percent),
            rebalances: outcome
                .rebalances
                .iter()
                .map(|r| pb::SimulatedRebalance {
                    month: format!("{}-{:02}", r.year, r.month),
                    reason: r.reason.clone(),
                    turnover: decimal_text(r.turnover),
                })
                .collect(),
            annualized_volatility_percent: decimal_text(outcome.annualized_volatility_percent),
            average_equity_percent: decimal_text(outcome.average_equity_percent),
            final_equity_percent: decimal_text(outcome.final_equity_percent),
            grid_results: simulation
                .grid
                .iter()
                .map(|result| {
                    let outcome = &result.outcome;
                    pb::PolicyResult {
                        label: result.label.clone(),
                        rebalance_conditions: result
                            .conditions
                            .iter()
                            .map(condition_to_wire)
                            .collect(),
                        rebalance_to: rebalance_to_wire(result.rebalance_to),
                        rebalance_count: i64::try_from(outcome.rebalances.len())
                            .unwrap_or(i64::MAX),
                        total_turnover_percent: decimal_text(outcome.total_turnover_percent),
                        average_equity_percent: decimal_text(outcome.average_equity_percent),
                        final_equity_percent: decimal_text(outcome.final_equity_percent),
                        annualized_return_percent: decimal_text(outcome.annualized_return_percent),
                        annualized_volatility_percent: decimal_text(
                            outcome.annualized_volatility_percent,
                        ),
                        max_drift: decimal_text(outcome.max_drift),
                        final_value: money_text(outcome.final_value),
                    }
                })
                .collect(),
        }))
    }
}

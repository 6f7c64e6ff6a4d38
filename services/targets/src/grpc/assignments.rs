//! `rebalancer.target.v1.AssignmentService`.

use rebalancer_kit::RequestContext;
use rebalancer_kit::error::invalid_field;
use rebalancer_kit::idempotency::claim;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::required;
use rebalancer_proto::target as pb;
use rebalancer_proto::target::assignment_service_server::AssignmentService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::app::{AssignInput, AssignmentUpdate, Target, TargetCache};
use crate::convert::{
    approval_mode_from_wire, assignment_to_wire, audit_to_wire, resolved_assignment_to_wire,
    resolved_assignment_without_target,
};
use crate::store::{AssignmentFilter, AssignmentStatus};

/// Assignments per streamed message by default, and at most.
const DEFAULT_BATCH: u32 = 1000;
const MAX_BATCH: u32 = 10_000;

/// `rebalancer.target.v1.AssignmentService`.
#[derive(Debug, Clone)]
pub struct AssignmentApi {
    target: Target,
}

impl AssignmentApi {
    #[must_use]
    pub fn new(target: Target) -> Self {
        Self { target }
    }
}

fn assignment_status_from_wire(value: i32) -> Result<Option<AssignmentStatus>, Status> {
    match pb::AssignmentStatus::try_from(value) {
        Ok(pb::AssignmentStatus::Unspecified) => Ok(None),
        Ok(pb::AssignmentStatus::Active) => Ok(Some(AssignmentStatus::Active)),
        Ok(pb::AssignmentStatus::Unassigned) => Ok(Some(AssignmentStatus::Unassigned)),
        Err(_) => Err(invalid_field("status", "is not a known assignment status")),
    }
}

type AssignmentStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::StreamAssignmentsResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl AssignmentService for AssignmentApi {
    type StreamAssignmentsStream = AssignmentStream;

    async fn assign(
        &self,
        request: Request<pb::AssignRequest>,
    ) -> Result<Response<pb::AssignResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = claim("Assign", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear()
        })?;
        if message.approval_mode != 0 && approval_mode_from_wire(message.approval_mode).is_none() {
            return Err(invalid_field(
                "approval_mode",
                "is not a known approval mode",
            ));
        }
        let input = AssignInput {
            account_id: message.account_id,
            portfolio_id: message.portfolio_id,
            rebalancing_enabled: message.rebalancing_enabled,
            approval_mode: approval_mode_from_wire(message.approval_mode).unwrap_or_default(),
        };
        let created = self.target.assign(&context, input, claim).await?;
        Ok(Response::new(pb::AssignResponse {
            assignment: Some(assignment_to_wire(&created.into_inner())),
        }))
    }

    async fn get_assignment(
        &self,
        request: Request<pb::GetAssignmentRequest>,
    ) -> Result<Response<pb::GetAssignmentResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let record = self
            .target
            .get_assignment(&context, &message.assignment_id, &message.account_id)
            .await?;
        Ok(Response::new(pb::GetAssignmentResponse {
            assignment: Some(assignment_to_wire(&record)),
        }))
    }

    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Result<Response<pb::ListAssignmentsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let filter = AssignmentFilter {
            account_id: Some(message.account_id).filter(|id| !id.is_empty()),
            portfolio_id: Some(message.portfolio_id).filter(|id| !id.is_empty()),
            status: assignment_status_from_wire(message.status)?,
            ..AssignmentFilter::default()
        };
        let records = self
            .target
            .list_assignments(&context, &filter, page.after.as_deref(), page.fetch_limit())
            .await?;
        let (records, next_page_token) = page.finish(records, |record| record.account_id.clone());
        Ok(Response::new(pb::ListAssignmentsResponse {
            assignments: records.iter().map(assignment_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn update_assignment(
        &self,
        request: Request<pb::UpdateAssignmentRequest>,
    ) -> Result<Response<pb::UpdateAssignmentResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("assignment_id", &message.assignment_id)?;
        let approval_mode =
            match message.approval_mode {
                None => None,
                Some(value) => Some(approval_mode_from_wire(value).ok_or_else(|| {
                    invalid_field("approval_mode", "is not a known approval mode")
                })?),
            };
        if message.portfolio_id.as_deref() == Some("") {
            return Err(invalid_field(
                "portfolio_id",
                "must not be empty (use Unassign to remove the target)",
            ));
        }
        let update = AssignmentUpdate {
            portfolio_id: message.portfolio_id,
            rebalancing_enabled: message.rebalancing_enabled,
            approval_mode,
        };
        let record = self
            .target
            .update_assignment(&context, &message.assignment_id, &message.etag, update)
            .await?;
        Ok(Response::new(pb::UpdateAssignmentResponse {
            assignment: Some(assignment_to_wire(&record)),
        }))
    }

    async fn unassign(
        &self,
        request: Request<pb::UnassignRequest>,
    ) -> Result<Response<pb::UnassignResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("assignment_id", &message.assignment_id)?;
        let record = self
            .target
            .unassign(
                &context,
                &message.assignment_id,
                &message.etag,
                message.keep_rebalancing_enabled,
            )
            .await?;
        Ok(Response::new(pb::UnassignResponse {
            assignment: Some(assignment_to_wire(&record)),
        }))
    }

    async fn stream_assignments(
        &self,
        request: Request<pb::StreamAssignmentsRequest>,
    ) -> Result<Response<AssignmentStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let batch = match message.batch_size {
            0 => DEFAULT_BATCH,
            n if n < 0 => return Err(invalid_field("batch_size", "must be 0 or more")),
            n => n.unsigned_abs().min(MAX_BATCH),
        };
        let mut explicit = message.account_ids;
        explicit.sort();
        explicit.dedup();
        let filter = AssignmentFilter {
            portfolio_id: Some(message.portfolio_id).filter(|id| !id.is_empty()),
            before_account_id: Some(message.before_account_id).filter(|id| !id.is_empty()),
            monitored_only: !message.include_unmonitored,
            ..AssignmentFilter::default()
        };
        let start = Some(message.after_account_id).filter(|id| !id.is_empty());
        let omit_repeated_targets = message.omit_repeated_targets;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let target = self.target.clone();
        tokio::spawn(async move {
            // Each portfolio is resolved once per stream; batches are read one
            // at a time, so memory stays flat however many assignments there are.
            let mut cache = TargetCache::new();
            let mut sent_targets = std::collections::HashSet::new();
            let mut after = start;
            loop {
                let mut batch_filter = filter.clone();
                if !explicit.is_empty() {
                    let end = explicit.len().min(batch as usize);
                    batch_filter.account_ids = explicit.drain(..end).collect();
                }
                let listing_all = batch_filter.account_ids.is_empty();
                let result = target
                    .resolved_batch(&context, &batch_filter, after.as_deref(), batch, &mut cache)
                    .await;
                let resolved = match result {
                    Ok(resolved) => resolved,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let done = if listing_all {
                    resolved.len() < batch as usize
                } else {
                    explicit.is_empty()
                };
                if listing_all && let Some(last) = resolved.last() {
                    after = Some(last.assignment.account_id.clone());
                }
                if !resolved.is_empty() {
                    let message = pb::StreamAssignmentsResponse {
                        assignments: resolved
                            .iter()
                            .map(|resolved| {
                                let repeated = omit_repeated_targets
                                    && resolved.target.as_ref().is_some_and(|target| {
                                        !sent_targets.insert((
                                            target.portfolio.id.clone(),
                                            target.portfolio.version,
                                        ))
                                    });
                                if repeated {
                                    resolved_assignment_without_target(resolved)
                                } else {
                                    resolved_assignment_to_wire(resolved)
                                }
                            })
                            .collect(),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_assignment_events(
        &self,
        request: Request<pb::ListAssignmentEventsRequest>,
    ) -> Result<Response<pb::ListAssignmentEventsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let events = self
            .target
            .assignment_events(
                &context,
                &message.assignment_id,
                &message.account_id,
                &page.fetch(),
            )
            .await?;
        let (events, next_page_token) = page.finish(events, |event| event.id.clone());
        Ok(Response::new(pb::ListAssignmentEventsResponse {
            events: events.iter().map(audit_to_wire).collect(),
            next_page_token,
        }))
    }
}

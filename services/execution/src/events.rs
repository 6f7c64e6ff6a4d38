//! The tenant's event stream, `rebalancer.events.v1.EventService`: this
//! service's own events (runs, batches, block orders, cash movements) and
//! those it gathers from the Target (portfolios, assignments) and the
//! Monitor (cycles, flagged accounts), in one order of ids.

use std::sync::Arc;

use rebalancer_kit::RequestContext;
use rebalancer_kit::events::{self, EventLog, EventSource};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::events as pb;
use rebalancer_proto::events::event_service_server::EventService;
use rebalancer_proto::monitor::event_export_service_client::EventExportServiceClient as MonitorExport;
use rebalancer_proto::target::event_export_service_client::EventExportServiceClient as TargetExport;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Service calls are not a tenant's: the export reads every tenant.
const SERVICE_TENANT: &str = "default";

/// The `WatchEvents` handler.
#[derive(Debug, Clone)]
pub struct EventApi {
    events: EventLog,
}

impl EventApi {
    #[must_use]
    pub fn new(events: EventLog) -> Self {
        Self { events }
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = ReceiverStream<Result<pb::WatchEventsResponse, Status>>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let context = RequestContext::of(&request)?;
        let query = events::watch_query(&context.tenant, request.get_ref())?;
        let receiver = events::watch(self.events.clone(), query).await?;
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The Target's events, through its export.
#[derive(Debug)]
pub struct TargetEvents(pub TracedChannel);

#[tonic::async_trait]
impl EventSource for TargetEvents {
    fn name(&self) -> &'static str {
        "target"
    }

    async fn export(
        &self,
        after_id: String,
        page_size: i32,
    ) -> Result<(Vec<pb::Event>, String), Status> {
        let request = rebalancer_proto::target::ExportEventsRequest {
            after_id,
            page_size,
        };
        let response = TargetExport::new(self.0.clone())
            .export_events(CallContext::tenant(SERVICE_TENANT).request(request))
            .await?
            .into_inner();
        Ok((response.events, response.oldest_id))
    }
}

/// The Monitor's events, through its export.
#[derive(Debug)]
pub struct MonitorEvents(pub TracedChannel);

#[tonic::async_trait]
impl EventSource for MonitorEvents {
    fn name(&self) -> &'static str {
        "monitor"
    }

    async fn export(
        &self,
        after_id: String,
        page_size: i32,
    ) -> Result<(Vec<pb::Event>, String), Status> {
        let request = rebalancer_proto::monitor::ExportEventsRequest {
            after_id,
            page_size,
        };
        let response = MonitorExport::new(self.0.clone())
            .export_events(CallContext::tenant(SERVICE_TENANT).request(request))
            .await?
            .into_inner();
        Ok((response.events, response.oldest_id))
    }
}

/// The sources this service gathers from: the peers it has.
#[must_use]
pub fn sources(
    target: Option<&TracedChannel>,
    monitor: Option<&TracedChannel>,
) -> Vec<Arc<dyn EventSource>> {
    let mut sources: Vec<Arc<dyn EventSource>> = Vec::new();
    if let Some(channel) = target {
        sources.push(Arc::new(TargetEvents(channel.clone())));
    }
    if let Some(channel) = monitor {
        sources.push(Arc::new(MonitorEvents(channel.clone())));
    }
    sources
}

//! `EventExportService`: this service's events, for the execution service
//! that gathers them into the tenant's stream.

use rebalancer_kit::RequestContext;
use rebalancer_kit::events::{self, EventLog};
use rebalancer_proto::target::event_export_service_server::EventExportService;
use rebalancer_proto::target::{ExportEventsRequest, ExportEventsResponse};
use tonic::{Request, Response, Status};

/// The export handler over the service's event log.
#[derive(Debug, Clone)]
pub struct EventExportApi {
    events: EventLog,
}

impl EventExportApi {
    #[must_use]
    pub fn new(events: EventLog) -> Self {
        Self { events }
    }
}

#[tonic::async_trait]
impl EventExportService for EventExportApi {
    async fn export_events(
        &self,
        request: Request<ExportEventsRequest>,
    ) -> Result<Response<ExportEventsResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let (events, oldest_id) =
            events::export(&self.events, &message.after_id, message.page_size).await?;
        Ok(Response::new(ExportEventsResponse { events, oldest_id }))
    }
}

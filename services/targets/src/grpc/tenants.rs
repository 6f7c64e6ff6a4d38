//! `rebalancer.target.v1.TenantService`.

use rebalancer_kit::RequestContext;
use rebalancer_kit::page::Page;
use rebalancer_proto::target as pb;
use rebalancer_proto::target::tenant_service_server::TenantService;
use tonic::{Request, Response, Status};

use crate::app::{Target, TenantPatch};
use rebalancer_kit::wire::timestamp;

use crate::convert::etag;
use crate::store::{TenantRecord, TenantSettings};

/// `rebalancer.target.v1.TenantService`.
#[derive(Debug, Clone)]
pub struct TenantApi {
    target: Target,
}

impl TenantApi {
    #[must_use]
    pub fn new(target: Target) -> Self {
        Self { target }
    }
}

fn tenant_to_wire(tenant_id: &str, record: Option<&TenantRecord>) -> pb::Tenant {
    let settings = record
        .map(|record| record.settings.clone())
        .unwrap_or_default();
    pb::Tenant {
        tenant_id: tenant_id.to_owned(),
        display_name: settings.display_name,
        monitor_enabled: settings.monitor_enabled,
        monitor_run_at: settings.monitor_run_at,
        four_eyes: settings.four_eyes,
        created_at: record.map(|record| timestamp(record.created_at)),
        updated_at: record.map(|record| timestamp(record.updated_at)),
        updated_by: record
            .map(|record| record.updated_by.clone())
            .unwrap_or_default(),
        etag: etag(record.map_or(0, |record| record.revision)),
    }
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let settings = TenantSettings {
            display_name: message.display_name,
            monitor_enabled: message.monitor_enabled,
            monitor_run_at: message.monitor_run_at,
            four_eyes: message.four_eyes,
        };
        let record = self
            .target
            .create_tenant(&context, &message.tenant_id, settings)
            .await?
            .into_inner();
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant_to_wire(&record.tenant_id, Some(&record))),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let view = self.target.get_tenant(&context).await?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant_to_wire(&view.tenant_id, view.record.as_ref())),
            registered: view.record.is_some(),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let records = self
            .target
            .list_tenants(
                page.after.as_deref(),
                page.fetch_limit(),
                message.monitor_enabled_only,
            )
            .await?;
        let (records, next_page_token) = page.finish(records, |record| record.tenant_id.clone());
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: records
                .iter()
                .map(|record| tenant_to_wire(&record.tenant_id, Some(record)))
                .collect(),
            next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let patch = TenantPatch {
            display_name: message.display_name,
            monitor_enabled: message.monitor_enabled,
            monitor_run_at: message.monitor_run_at,
            four_eyes: message.four_eyes,
        };
        let record = self
            .target
            .update_tenant(&context, &message.etag, patch)
            .await?;
        Ok(Response::new(pb::UpdateTenantResponse {
            tenant: Some(tenant_to_wire(&record.tenant_id, Some(&record))),
        }))
    }
}

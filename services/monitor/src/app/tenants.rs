//! Which tenants the daily cycle evaluates, and when: those listed in the
//! configuration (at the default time) and those registered in the Target
//! service's tenant registry with the monitor enabled (at their own time),
//! read again every minute so a firm registered today is evaluated at its
//! next cycle without a restart. If the registry cannot be read, the last
//! list read is kept.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, Utc};
use rebalancer_kit::RequestContext;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::target as pb;
use rebalancer_proto::target::tenant_service_client::TenantServiceClient;

use super::Monitor;
use crate::error::MonitorError;

/// How long a registry read is used.
const REGISTRY_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Tenants per page read.
const PAGE: i32 = 500;

/// The registry's scheduled tenants as last read.
#[derive(Debug, Default)]
pub(super) struct RegistryCache {
    read_at: Option<DateTime<Utc>>,
    tenants: BTreeMap<String, Option<NaiveTime>>,
}

impl Monitor {
    /// Each scheduled tenant and the New York time of its daily cycle.
    pub(super) async fn scheduled_tenants(&self) -> Vec<(String, NaiveTime)> {
        let now = self.clock.now();
        let stale = {
            let cache = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.read_at.is_none_or(|at| now - at >= REGISTRY_TTL)
        };
        if stale {
            match self.read_registry().await {
                Ok(tenants) => {
                    let mut cache = self
                        .registry
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    cache.read_at = Some(now);
                    cache.tenants = tenants;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the tenant registry; keeping the last list");
                    // Try again at the next tick but one minute on, not at every tick.
                    self.registry
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .read_at = Some(now);
                }
            }
        }
        let mut scheduled: BTreeMap<String, NaiveTime> = self
            .config
            .tenants
            .iter()
            .map(|tenant| (tenant.clone(), self.config.run_at))
            .collect();
        let cache = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (tenant, run_at) in &cache.tenants {
            scheduled.insert(tenant.clone(), run_at.unwrap_or(self.config.run_at));
        }
        scheduled.into_iter().collect()
    }

    async fn read_registry(&self) -> Result<BTreeMap<String, Option<NaiveTime>>, MonitorError> {
        // The registry is not any one tenant's: the call names the system.
        let context = RequestContext::system("system");
        let mut tenants = BTreeMap::new();
        let mut page_token = String::new();
        let call = context.call();
        loop {
            let page = retry_idempotent(Retry::default(), "ListTenants", |deadline| {
                let mut client = TenantServiceClient::new(self.target.clone());
                let request = call.request_within(
                    pb::ListTenantsRequest {
                        page_size: PAGE,
                        page_token: page_token.clone(),
                        monitor_enabled_only: true,
                    },
                    deadline,
                );
                async move { client.list_tenants(request).await }
            })
            .await
            .map_err(|status| {
                MonitorError::Unavailable(format!("tenant registry: {}", status.message()))
            })?
            .into_inner();
            for tenant in page.tenants {
                let run_at = NaiveTime::parse_from_str(&tenant.monitor_run_at, "%H:%M").ok();
                tenants.insert(tenant.tenant_id, run_at);
            }
            if page.next_page_token.is_empty() {
                return Ok(tenants);
            }
            page_token = page.next_page_token;
        }
    }
}

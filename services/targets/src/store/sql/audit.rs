//! The audit trail.

use sqlx::{QueryBuilder, Row};

use super::SqlStore;
use crate::store::{AuditRecord, AuditStore, PageRequest, StoreError};

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl AuditStore for SqlStore<DB> {
    async fn list_events(
        &self,
        tenant: &str,
        resource_type: &str,
        resource_ids: &[String],
        page: &PageRequest,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT id, resource_type, resource_id, action, actor, request_id, occurred_at, details_json \
             FROM audit_events WHERE tenant_id = ",
        );
        query.push_bind(tenant.to_owned());
        query
            .push(" AND resource_type = ")
            .push_bind(resource_type.to_owned());
        if !resource_ids.is_empty() {
            query.push(" AND resource_id IN (");
            let mut ids = query.separated(", ");
            for id in resource_ids {
                ids.push_bind(id.clone());
            }
            query.push(")");
        }
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(self.pool()).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            events.push(AuditRecord {
                id: row.try_get("id")?,
                resource_type: row.try_get("resource_type")?,
                resource_id: row.try_get("resource_id")?,
                action: row.try_get("action")?,
                actor: row.try_get("actor")?,
                request_id: row.try_get("request_id")?,
                occurred_at: row.try_get("occurred_at")?,
                details_json: row.try_get("details_json")?,
            });
        }
        Ok(events)
    }
}

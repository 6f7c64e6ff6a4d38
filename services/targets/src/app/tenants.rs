//! The tenant registry: who exists and their settings (monitor schedule,
//! four-eyes rule). Registering and listing are the platform's; a tenant's
//! admins read and change their own settings.

use chrono::NaiveTime;
use rebalancer_domain::Violations;
use rebalancer_kit::RequestContext;
use rebalancer_kit::context::tenant_problem;
use rebalancer_kit::idempotency::Created;

use super::Target;
use super::portfolios::parse_etag;
use crate::error::TargetError;
use crate::store::{AuditEntry, TenantRecord, TenantSettings};

/// Longest display name.
const MAX_DISPLAY_NAME: usize = 200;

/// A change to a tenant's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub display_name: Option<String>,
    pub monitor_enabled: Option<bool>,
    pub monitor_run_at: Option<String>,
    pub four_eyes: Option<bool>,
}

/// A tenant's settings, registered or the defaults.
#[derive(Debug, Clone)]
pub struct TenantView {
    pub tenant_id: String,
    pub record: Option<TenantRecord>,
}

impl TenantView {
    #[must_use]
    pub fn settings(&self) -> TenantSettings {
        self.record
            .as_ref()
            .map(|record| record.settings.clone())
            .unwrap_or_default()
    }
}

fn check_settings(settings: &TenantSettings, violations: &mut Violations) {
    if settings.display_name.chars().count() > MAX_DISPLAY_NAME {
        violations.add("display_name", "is longer than 200 characters");
    }
    if settings.display_name.chars().any(char::is_control) {
        violations.add("display_name", "contains control characters");
    }
    if !settings.monitor_run_at.is_empty()
        && NaiveTime::parse_from_str(&settings.monitor_run_at, "%H:%M").is_err()
    {
        violations.add("monitor_run_at", "is not a New York time as HH:MM");
    }
}

fn audit(context: &RequestContext, action: &'static str, settings: &TenantSettings) -> AuditEntry {
    AuditEntry {
        actor: context.actor.clone(),
        request_id: context.request_id.clone(),
        action,
        details: serde_json::json!({
            "display_name": settings.display_name,
            "monitor_enabled": settings.monitor_enabled,
            "monitor_run_at": settings.monitor_run_at,
            "four_eyes": settings.four_eyes,
        }),
    }
}

impl Target {
    /// Registers a tenant.
    ///
    /// # Errors
    /// `Invalid`, `AlreadyExists` when registered with other settings.
    #[tracing::instrument(name = "create_tenant", skip_all, fields(tenant = %context.tenant, new_tenant = %tenant_id))]
    pub async fn create_tenant(
        &self,
        context: &RequestContext,
        tenant_id: &str,
        settings: TenantSettings,
    ) -> Result<Created<TenantRecord>, TargetError> {
        let mut violations = Violations::new();
        if let Some(problem) = tenant_problem(tenant_id) {
            violations.add("tenant_id", problem);
        }
        check_settings(&settings, &mut violations);
        violations.into_result(())?;
        let audit = audit(context, "registered", &settings);
        Ok(self
            .store
            .create_tenant(tenant_id, settings, self.clock.now(), audit)
            .await?)
    }

    /// The caller's own tenant.
    ///
    /// # Errors
    /// Only on storage failures.
    pub async fn get_tenant(&self, context: &RequestContext) -> Result<TenantView, TargetError> {
        Ok(TenantView {
            tenant_id: context.tenant.clone(),
            record: self.store.get_tenant(&context.tenant).await?,
        })
    }

    /// Registered tenants by id.
    ///
    /// # Errors
    /// Only on storage failures.
    pub async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        monitor_enabled_only: bool,
    ) -> Result<Vec<TenantRecord>, TargetError> {
        Ok(self
            .store
            .list_tenants(after, limit, monitor_enabled_only)
            .await?)
    }

    /// Changes the caller's own tenant's settings, registering it if needed.
    ///
    /// # Errors
    /// `Invalid`, `Aborted` when the etag is stale.
    #[tracing::instrument(name = "update_tenant", skip_all, fields(tenant = %context.tenant))]
    pub async fn update_tenant(
        &self,
        context: &RequestContext,
        etag: &str,
        patch: TenantPatch,
    ) -> Result<TenantRecord, TargetError> {
        let expected = if etag.is_empty() {
            None
        } else {
            Some(parse_etag("etag", etag)?)
        };
        let current = self.get_tenant(context).await?;
        let mut settings = current.settings();
        if let Some(name) = patch.display_name {
            settings.display_name = name;
        }
        if let Some(enabled) = patch.monitor_enabled {
            settings.monitor_enabled = enabled;
        }
        if let Some(run_at) = patch.monitor_run_at {
            settings.monitor_run_at = run_at;
        }
        if let Some(four_eyes) = patch.four_eyes {
            settings.four_eyes = four_eyes;
        }
        let mut violations = Violations::new();
        check_settings(&settings, &mut violations);
        violations.into_result(())?;
        let audit = audit(context, "settings_updated", &settings);
        Ok(self
            .store
            .put_tenant(&context.tenant, settings, expected, self.clock.now(), audit)
            .await?)
    }
}

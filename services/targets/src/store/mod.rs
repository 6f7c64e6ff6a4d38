//! Storage of the Target service: traits per part (portfolios, assignments,
//! audit), one SQL implementation generic over the two backends (PostgreSQL
//! and SQLite), and the migrations of each. Every method is scoped by
//! tenant; every unique key includes it.

mod migrations;
mod sql;

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rebalancer_domain::portfolio::{PortfolioSpec, PortfolioStatus, Scope, TargetSpec};
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
pub use rebalancer_kit::error::StoreError;
use rebalancer_kit::events::{EventStore, SqlEvents};
pub use rebalancer_kit::idempotency::{Created, IdempotencyClaim};
pub use rebalancer_kit::page::PageRequest;

pub use sql::SqlStore;

/// A portfolio as stored, at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: PortfolioStatus,
    pub status_reason: String,
    pub scope: Scope,
    pub account_id: Option<String>,
    /// Bumped on every change; the etag.
    pub revision: i64,
    /// Version of `target` (the current one unless a past version was asked for).
    pub version: i64,
    pub current_version: i64,
    pub target: TargetSpec,
    pub version_created_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A portfolio to create.
#[derive(Debug, Clone)]
pub struct NewPortfolio {
    pub id: String,
    pub spec: PortfolioSpec,
    pub now: DateTime<Utc>,
}

/// A change to a portfolio; `None` leaves a part as it is.
#[derive(Debug, Clone)]
pub struct PortfolioUpdate {
    pub id: String,
    /// The revision the change was based on (optimistic concurrency).
    pub expected_revision: i64,
    pub name: Option<String>,
    pub description: Option<String>,
    /// New weights and conditions: a new version.
    pub target: Option<TargetSpec>,
    pub status: Option<(PortfolioStatus, String)>,
    /// Portfolios whose assignments become due for evaluation (with a new version).
    pub due_portfolios: Vec<String>,
    pub now: DateTime<Utc>,
}

/// An immutable version of a portfolio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub portfolio_id: String,
    pub version: i64,
    pub target: TargetSpec,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Filters of `ListPortfolios`.
#[derive(Debug, Clone, Default)]
pub struct PortfolioFilter {
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    pub status: Option<PortfolioStatus>,
    /// Held in the current version's weights.
    pub symbol: Option<String>,
    pub scope: Option<Scope>,
    pub account_id: Option<String>,
}

/// Who did a change, for the audit trail.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub request_id: Option<String>,
    pub action: &'static str,
    /// JSON describing the change.
    pub details: serde_json::Value,
}

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub action: String,
    pub actor: String,
    pub request_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub details_json: String,
}

rebalancer_kit::text_enum! {
    /// Whether runs wait for an advisor.
    #[derive(Default)]
    pub enum ApprovalMode {
        #[default]
        Auto = "auto",
        Manual = "manual",
    }
}

rebalancer_kit::text_enum! {
    /// Lifecycle of an assignment.
    pub enum AssignmentStatus {
        Active = "active",
        Unassigned = "unassigned",
    }
}

/// An assignment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRecord {
    pub id: String,
    pub account_id: String,
    pub portfolio_id: Option<String>,
    pub rebalancing_enabled: bool,
    pub approval_mode: ApprovalMode,
    pub status: AssignmentStatus,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub target_changed_at: Option<DateTime<Utc>>,
}

/// An assignment to create (or an unassigned one to reactivate).
#[derive(Debug, Clone)]
pub struct NewAssignment {
    pub id: String,
    pub account_id: String,
    pub portfolio_id: String,
    pub rebalancing_enabled: bool,
    pub approval_mode: ApprovalMode,
    pub now: DateTime<Utc>,
}

/// A change to an assignment; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct AssignmentChange {
    /// `Some(None)` removes the target (unassign).
    pub portfolio_id: Option<Option<String>>,
    pub rebalancing_enabled: Option<bool>,
    pub approval_mode: Option<ApprovalMode>,
    pub status: Option<AssignmentStatus>,
    /// Marks the assignment due for evaluation.
    pub target_changed: bool,
}

/// Filters of `ListAssignments` and the bulk stream.
#[derive(Debug, Clone, Default)]
pub struct AssignmentFilter {
    pub account_id: Option<String>,
    pub portfolio_id: Option<String>,
    pub status: Option<AssignmentStatus>,
    /// Only these accounts.
    pub account_ids: Vec<String>,
    /// Strictly before this account id (a shard's end).
    pub before_account_id: Option<String>,
    /// Leave out unassigned accounts with rebalancing off.
    pub monitored_only: bool,
}

/// Model portfolios and their versions.
#[tonic::async_trait]
pub trait PortfolioStore: Send + Sync + Debug {
    /// Creates a portfolio at version 1, with its audit event; with a claim,
    /// a repeated key returns the first portfolio instead.
    async fn create_portfolio(
        &self,
        tenant: &str,
        portfolio: NewPortfolio,
        claim: Option<IdempotencyClaim>,
        audit: AuditEntry,
    ) -> Result<Created<PortfolioRecord>, StoreError>;

    /// A portfolio at its current version, or at `version`.
    async fn get_portfolio(
        &self,
        tenant: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<PortfolioRecord>, StoreError>;

    /// Portfolios newest first.
    async fn list_portfolios(
        &self,
        tenant: &str,
        filter: &PortfolioFilter,
        page: &PageRequest,
    ) -> Result<Vec<PortfolioRecord>, StoreError>;

    /// Applies a change (a new version when the target changes) and marks the
    /// assignments of `due_portfolios` due, in one transaction.
    async fn update_portfolio(
        &self,
        tenant: &str,
        update: PortfolioUpdate,
        audit: AuditEntry,
    ) -> Result<PortfolioRecord, StoreError>;

    /// Versions newest first; `after` is a version number.
    async fn list_versions(
        &self,
        tenant: &str,
        portfolio_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, StoreError>;

    /// Portfolios (not inactive) whose current version uses `portfolio_id` as a sleeve.
    async fn parents(&self, tenant: &str, portfolio_id: &str) -> Result<Vec<String>, StoreError>;

    /// Active portfolios whose current version holds `symbol` directly.
    async fn portfolios_holding(
        &self,
        tenant: &str,
        symbol: &str,
    ) -> Result<Vec<String>, StoreError>;
}

/// Assignments of accounts to targets.
#[tonic::async_trait]
pub trait AssignmentStore: Send + Sync + Debug {
    /// Assigns an account; reactivates its unassigned row if it has one.
    /// `Conflict` when the account already has an active assignment.
    async fn assign(
        &self,
        tenant: &str,
        assignment: NewAssignment,
        claim: Option<IdempotencyClaim>,
        audit: AuditEntry,
    ) -> Result<Created<AssignmentRecord>, StoreError>;

    async fn get_assignment(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AssignmentRecord>, StoreError>;

    async fn assignment_of_account(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Option<AssignmentRecord>, StoreError>;

    /// Assignments in account id order, after `after_account_id`.
    async fn list_assignments(
        &self,
        tenant: &str,
        filter: &AssignmentFilter,
        after_account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AssignmentRecord>, StoreError>;

    /// Changes an assignment whose revision is `expected_revision`.
    async fn update_assignment(
        &self,
        tenant: &str,
        id: &str,
        expected_revision: i64,
        change: AssignmentChange,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<AssignmentRecord, StoreError>;

    /// Active assignments to a portfolio.
    async fn count_active_assignments(
        &self,
        tenant: &str,
        portfolio_id: &str,
    ) -> Result<i64, StoreError>;
}

/// The audit trail.
#[tonic::async_trait]
pub trait AuditStore: Send + Sync + Debug {
    /// Events newest first, of one resource type (and one resource, or one account's).
    async fn list_events(
        &self,
        tenant: &str,
        resource_type: &str,
        resource_ids: &[String],
        page: &PageRequest,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// A tenant's settings in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantSettings {
    pub display_name: String,
    pub monitor_enabled: bool,
    /// "HH:MM" New York time; empty for the Monitor's default.
    pub monitor_run_at: String,
    pub four_eyes: bool,
}

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: String,
    pub settings: TenantSettings,
    /// Bumped on every change; the etag.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// The tenant registry. Not scoped by tenant: it is the list of tenants.
#[tonic::async_trait]
pub trait TenantStore: Send + Sync + Debug {
    /// Registers a tenant, with its audit event: `Replayed` when it exists
    /// with the same settings, `Conflict` when it exists with others.
    async fn create_tenant(
        &self,
        tenant_id: &str,
        settings: TenantSettings,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<Created<TenantRecord>, StoreError>;

    async fn get_tenant(&self, tenant_id: &str) -> Result<Option<TenantRecord>, StoreError>;

    /// Tenants by id, after `after`.
    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        monitor_enabled_only: bool,
    ) -> Result<Vec<TenantRecord>, StoreError>;

    /// Writes a tenant's settings (registering it if needed) when its
    /// revision is `expected_revision` (any with `None`; 0 for "not
    /// registered"), with its audit event; `StaleRevision` otherwise.
    async fn put_tenant(
        &self,
        tenant_id: &str,
        settings: TenantSettings,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<TenantRecord, StoreError>;
}

/// Everything the Target service keeps.
pub trait TargetStore: PortfolioStore + AssignmentStore + AuditStore + TenantStore {}

impl<T: PortfolioStore + AssignmentStore + AuditStore + TenantStore> TargetStore for T {}

/// Opens the store at `url`, applying migrations.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open(url: &DatabaseUrl, pool: &PoolOptions) -> anyhow::Result<Arc<dyn TargetStore>> {
    Ok(open_with_events(url, pool).await?.0)
}

/// Opens the store at `url`, applying migrations, with the event outbox of
/// the same database.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn open_with_events(
    url: &DatabaseUrl,
    pool: &PoolOptions,
) -> anyhow::Result<(Arc<dyn TargetStore>, Arc<dyn EventStore>)> {
    match url {
        DatabaseUrl::Postgres(url) => {
            let pool = rebalancer_kit::db::connect_postgres(url, pool).await?;
            migrations::postgres().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
        DatabaseUrl::Sqlite(path) => {
            let pool = rebalancer_kit::db::connect_sqlite(path, pool).await?;
            migrations::sqlite().run(&pool).await?;
            Ok((
                Arc::new(SqlStore::new(pool.clone())),
                Arc::new(SqlEvents::new(pool)),
            ))
        }
    }
}

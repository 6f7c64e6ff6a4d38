//! Assignment operations: assign (with sleeve minimums checked against the
//! account's value), read, list, update, unassign, the audit trail, and the
//! resolved batches of the bulk stream.

use std::str::FromStr;
use std::sync::Arc;

use rebalancer_domain::Violations;
use rebalancer_domain::ids::external_id_problem;
use rebalancer_domain::portfolio::{PortfolioStatus, Scope};
use rebalancer_domain::sleeves::minimum_shortfalls;
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::execution::GetAccountRequest;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rust_decimal::Decimal;
use serde_json::json;

use super::portfolios::parse_etag;
use super::{ResolvedTarget, Target, TargetCache};
use crate::error::TargetError;
use crate::store::{
    ApprovalMode, AssignmentChange, AssignmentFilter, AssignmentRecord, AssignmentStatus,
    AuditEntry, AuditRecord, Created, IdempotencyClaim, NewAssignment, PageRequest,
};

/// An assignment request.
#[derive(Debug, Clone)]
pub struct AssignInput {
    pub account_id: String,
    pub portfolio_id: String,
    pub rebalancing_enabled: bool,
    pub approval_mode: ApprovalMode,
}

/// Changes to an assignment; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AssignmentUpdate {
    pub portfolio_id: Option<String>,
    pub rebalancing_enabled: Option<bool>,
    pub approval_mode: Option<ApprovalMode>,
}

/// An assignment with its target flattened (none when unassigned).
#[derive(Debug, Clone)]
pub struct ResolvedAssignment {
    pub assignment: AssignmentRecord,
    pub target: Option<Arc<ResolvedTarget>>,
}

fn audit(context: &RequestContext, action: &'static str, details: serde_json::Value) -> AuditEntry {
    AuditEntry {
        actor: context.actor.clone(),
        request_id: context.request_id.clone(),
        action,
        details,
    }
}

impl Target {
    /// Checks that `portfolio_id` can be the target of `account_id` and
    /// returns it resolved: active, owned by the account if account-level, and
    /// every sleeve's investment minimum met by the account's value.
    async fn check_target(
        &self,
        context: &RequestContext,
        account_id: &str,
        portfolio_id: &str,
    ) -> Result<ResolvedTarget, TargetError> {
        let target = self.resolve(context, portfolio_id, None).await?;
        let portfolio = &target.portfolio;
        match portfolio.status {
            PortfolioStatus::Active => {}
            PortfolioStatus::Inactive => {
                return Err(TargetError::FailedPrecondition(format!(
                    "portfolio {portfolio_id} is inactive"
                )));
            }
            PortfolioStatus::NeedsAdjustment => {
                return Err(TargetError::FailedPrecondition(format!(
                    "portfolio {portfolio_id} needs adjustment: {}",
                    portfolio.status_reason
                )));
            }
        }
        if portfolio.scope == Scope::Account && portfolio.account_id.as_deref() != Some(account_id)
        {
            return Err(TargetError::FailedPrecondition(format!(
                "portfolio {portfolio_id} is the private target of account {}",
                portfolio.account_id.as_deref().unwrap_or("")
            )));
        }
        if target
            .resolved
            .sleeves
            .iter()
            .any(|sleeve| sleeve.investment_minimum > Decimal::ZERO)
        {
            let value = self.account_value(context, account_id).await?;
            let shortfalls = minimum_shortfalls(&target.resolved, value);
            if !shortfalls.is_empty() {
                return Err(TargetError::FailedPrecondition(format!(
                    "account {account_id} is below an investment minimum: {}",
                    shortfalls.join("; ")
                )));
            }
        }
        Ok(target)
    }

    /// The account's value from the Execution service's book (0 when unknown).
    async fn account_value(
        &self,
        context: &RequestContext,
        account_id: &str,
    ) -> Result<Decimal, TargetError> {
        let Some(channel) = &self.execution else {
            return Err(TargetError::Unavailable(
                "no execution service configured to read the account's value".to_owned(),
            ));
        };
        let call = context.call();
        let answer = retry_idempotent(Retry::default(), "GetAccount", |deadline| {
            let mut client = AccountServiceClient::new(channel.clone());
            let request = call.request_within(
                GetAccountRequest {
                    account_id: account_id.to_owned(),
                },
                deadline,
            );
            async move { client.get_account(request).await }
        })
        .await;
        match answer {
            Ok(response) => {
                let equity = response
                    .into_inner()
                    .account
                    .map(|a| a.equity)
                    .unwrap_or_default();
                Decimal::from_str(&equity).map_err(|_| {
                    TargetError::Unavailable(format!(
                        "account {account_id} has no value ({equity:?})"
                    ))
                })
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(Decimal::ZERO),
            Err(status) => Err(TargetError::Unavailable(format!(
                "cannot read the value of account {account_id}: {}",
                status.message()
            ))),
        }
    }

    /// Assigns an account to a target.
    ///
    /// # Errors
    /// `Invalid`, `NotFound` (portfolio), `AlreadyExists` (account already
    /// assigned), `FailedPrecondition` (inactive target, minimum not met).
    #[tracing::instrument(name = "assign", skip_all, fields(tenant = %context.tenant, account_id = %input.account_id))]
    pub async fn assign(
        &self,
        context: &RequestContext,
        input: AssignInput,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<AssignmentRecord>, TargetError> {
        let mut violations = Violations::new();
        if let Some(problem) = external_id_problem(&input.account_id) {
            violations.add("account_id", problem);
        }
        if input.portfolio_id.is_empty() {
            violations.add("portfolio_id", "is required");
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        if claim.is_none()
            && let Some(current) = self
                .store
                .assignment_of_account(&context.tenant, &input.account_id)
                .await?
            && current.status == AssignmentStatus::Active
        {
            return Err(TargetError::AlreadyExists(format!(
                "account {} already has an active assignment ({})",
                input.account_id, current.id
            )));
        }
        self.check_target(context, &input.account_id, &input.portfolio_id)
            .await?;
        let details = json!({
            "account_id": input.account_id,
            "portfolio_id": input.portfolio_id,
            "rebalancing_enabled": input.rebalancing_enabled,
            "approval_mode": input.approval_mode.as_str(),
        });
        let assignment = NewAssignment {
            id: new_id(),
            account_id: input.account_id,
            portfolio_id: input.portfolio_id,
            rebalancing_enabled: input.rebalancing_enabled,
            approval_mode: input.approval_mode,
            now: self.clock.now(),
        };
        let created = self
            .store
            .assign(
                &context.tenant,
                assignment,
                claim,
                audit(context, "assigned", details),
            )
            .await?;
        if let Created::New(record) = &created {
            tracing::info!(assignment_id = %record.id, "account assigned");
        }
        Ok(created)
    }

    /// Makes `portfolio_id`, an account-level target, the target of
    /// `account_id`: its active assignment is switched to it (keeping its
    /// settings; only when `switch`, the portfolio's first creation), an
    /// account without one is assigned with `defaults`; nothing changes when
    /// it follows the portfolio already. So a repeated create finishes what
    /// a failed one started, and never undoes a later reassignment.
    ///
    /// # Errors
    /// As [`Target::assign`] and [`Target::update_assignment`].
    pub async fn assign_account_target(
        &self,
        context: &RequestContext,
        account_id: &str,
        portfolio_id: &str,
        defaults: (bool, ApprovalMode),
        switch: bool,
    ) -> Result<AssignmentRecord, TargetError> {
        let current = self
            .store
            .assignment_of_account(&context.tenant, account_id)
            .await?
            .filter(|current| current.status == AssignmentStatus::Active);
        match current {
            Some(current) if current.portfolio_id.as_deref() == Some(portfolio_id) => Ok(current),
            Some(current) if !switch => Ok(current),
            Some(current) => {
                let update = AssignmentUpdate {
                    portfolio_id: Some(portfolio_id.to_owned()),
                    ..AssignmentUpdate::default()
                };
                let etag = format!("r{}", current.revision);
                self.update_assignment(context, &current.id, &etag, update)
                    .await
            }
            None => {
                let (rebalancing_enabled, approval_mode) = defaults;
                let input = AssignInput {
                    account_id: account_id.to_owned(),
                    portfolio_id: portfolio_id.to_owned(),
                    rebalancing_enabled,
                    approval_mode,
                };
                Ok(self.assign(context, input, None).await?.into_inner())
            }
        }
    }

    /// An assignment by id or by account.
    ///
    /// # Errors
    /// `Invalid` without either, `NotFound`.
    pub async fn get_assignment(
        &self,
        context: &RequestContext,
        assignment_id: &str,
        account_id: &str,
    ) -> Result<AssignmentRecord, TargetError> {
        let found = match (assignment_id.is_empty(), account_id.is_empty()) {
            (false, _) => {
                self.store
                    .get_assignment(&context.tenant, assignment_id)
                    .await?
            }
            (true, false) => {
                self.store
                    .assignment_of_account(&context.tenant, account_id)
                    .await?
            }
            (true, true) => {
                return Err(Violations::one(
                    "assignment_id",
                    "either assignment_id or account_id is required",
                )
                .into());
            }
        };
        found.ok_or_else(|| {
            TargetError::NotFound(if assignment_id.is_empty() {
                format!("account {account_id} has no assignment")
            } else {
                format!("assignment {assignment_id} not found")
            })
        })
    }

    /// Assignments in account order.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_assignments(
        &self,
        context: &RequestContext,
        filter: &AssignmentFilter,
        after_account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AssignmentRecord>, TargetError> {
        Ok(self
            .store
            .list_assignments(&context.tenant, filter, after_account_id, limit)
            .await?)
    }

    /// Changes the target (checked as for an assignment), toggles rebalancing
    /// or changes the approval mode.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `Aborted`, `FailedPrecondition`.
    #[tracing::instrument(name = "update_assignment", skip_all, fields(tenant = %context.tenant, assignment_id = %id))]
    pub async fn update_assignment(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        update: AssignmentUpdate,
    ) -> Result<AssignmentRecord, TargetError> {
        let expected_revision = parse_etag("etag", etag)?;
        let current = self.get_assignment(context, id, "").await?;
        let new_target = update
            .portfolio_id
            .clone()
            .filter(|portfolio_id| current.portfolio_id.as_deref() != Some(portfolio_id.as_str()));
        if let Some(portfolio_id) = &new_target {
            self.check_target(context, &current.account_id, portfolio_id)
                .await?;
        }
        let reassigning = new_target.is_some() && current.status == AssignmentStatus::Unassigned;
        let change = AssignmentChange {
            portfolio_id: new_target.clone().map(Some),
            rebalancing_enabled: update.rebalancing_enabled,
            approval_mode: update.approval_mode,
            status: reassigning.then_some(AssignmentStatus::Active),
            target_changed: new_target.is_some(),
        };
        let details = json!({
            "portfolio_id": new_target,
            "rebalancing_enabled": update.rebalancing_enabled,
            "approval_mode": update.approval_mode.map(ApprovalMode::as_str),
        });
        Ok(self
            .store
            .update_assignment(
                &context.tenant,
                id,
                expected_revision,
                change,
                self.clock.now(),
                audit(context, "updated", details),
            )
            .await?)
    }

    /// Removes an account's target. With rebalancing kept on, the account
    /// then targets 100% cash (the monitor liquidates it); with it off, the
    /// account is no longer monitored.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `Aborted`, `FailedPrecondition` when already unassigned.
    #[tracing::instrument(name = "unassign", skip_all, fields(tenant = %context.tenant, assignment_id = %id))]
    pub async fn unassign(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        keep_rebalancing_enabled: bool,
    ) -> Result<AssignmentRecord, TargetError> {
        let expected_revision = parse_etag("etag", etag)?;
        let current = self.get_assignment(context, id, "").await?;
        if current.status == AssignmentStatus::Unassigned {
            return Err(TargetError::FailedPrecondition(format!(
                "assignment {id} is already unassigned"
            )));
        }
        let change = AssignmentChange {
            portfolio_id: Some(None),
            rebalancing_enabled: Some(keep_rebalancing_enabled),
            approval_mode: None,
            status: Some(AssignmentStatus::Unassigned),
            target_changed: true,
        };
        let details = json!({
            "portfolio_id": current.portfolio_id,
            "rebalancing_enabled": keep_rebalancing_enabled,
        });
        Ok(self
            .store
            .update_assignment(
                &context.tenant,
                id,
                expected_revision,
                change,
                self.clock.now(),
                audit(context, "unassigned", details),
            )
            .await?)
    }

    /// One batch of the bulk stream: assignments in account order with their
    /// targets resolved (each portfolio resolved once per stream, via `cache`).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn resolved_batch(
        &self,
        context: &RequestContext,
        filter: &AssignmentFilter,
        after_account_id: Option<&str>,
        limit: u32,
        cache: &mut TargetCache,
    ) -> Result<Vec<ResolvedAssignment>, TargetError> {
        let records = self
            .store
            .list_assignments(&context.tenant, filter, after_account_id, limit)
            .await?;
        let mut batch = Vec::with_capacity(records.len());
        for assignment in records {
            let target = match &assignment.portfolio_id {
                Some(portfolio_id) if assignment.status == AssignmentStatus::Active => {
                    match cache.get(portfolio_id) {
                        Some(target) => Some(target.clone()),
                        None => match self.resolve(context, portfolio_id, None).await {
                            Ok(target) => {
                                let target = Arc::new(target);
                                cache.insert(portfolio_id.clone(), target.clone());
                                Some(target)
                            }
                            Err(error) => {
                                tracing::warn!(%portfolio_id, %error, "cannot resolve target");
                                None
                            }
                        },
                    }
                }
                _ => None,
            };
            batch.push(ResolvedAssignment { assignment, target });
        }
        Ok(batch)
    }

    /// The audit trail of assignments (of one, or of one account's).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn assignment_events(
        &self,
        context: &RequestContext,
        assignment_id: &str,
        account_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<AuditRecord>, TargetError> {
        let mut ids = Vec::new();
        if !assignment_id.is_empty() {
            ids.push(assignment_id.to_owned());
        } else if !account_id.is_empty() {
            match self
                .store
                .assignment_of_account(&context.tenant, account_id)
                .await?
            {
                Some(assignment) => ids.push(assignment.id),
                None => return Ok(Vec::new()),
            }
        }
        Ok(self
            .store
            .list_events(&context.tenant, "assignment", &ids, page)
            .await?)
    }
}

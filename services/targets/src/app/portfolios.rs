//! Portfolio operations: create, read, list, update (new versions), status
//! changes, deactivation, versions, asset reports and the audit trail.
//!
//! Over 500 lines: each operation is short, but there are a dozen of them on
//! one aggregate (a portfolio and its versions).

use rebalancer_domain::Violations;
use rebalancer_domain::portfolio::{
    AssetRuleInput, ConditionInput, OrderSizing, PortfolioInput, PortfolioStatus, RebalanceTo,
    Scope, TargetSpec, WeightInput, WeightTarget, validate_name,
};
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use serde_json::json;

use super::Target;
use crate::error::TargetError;
use crate::store::{
    AuditEntry, AuditRecord, Created, IdempotencyClaim, NewPortfolio, PageRequest, PortfolioFilter,
    PortfolioRecord, PortfolioUpdate, VersionRecord,
};

/// Changes to a portfolio as a client sent them; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PortfolioPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub weights: Option<Vec<WeightInput>>,
    pub conditions: Option<Vec<ConditionInput>>,
    pub cooldown_days: Option<i32>,
    pub order_sizing: Option<Option<OrderSizing>>,
    pub invest_cash_threshold: Option<String>,
    pub minimum_order_notional: Option<String>,
    pub investment_minimum: Option<String>,
    pub rebalance_to: Option<Option<RebalanceTo>>,
    pub asset_rules: Option<Vec<AssetRuleInput>>,
}

impl PortfolioPatch {
    fn changes_target(&self) -> bool {
        self.weights.is_some()
            || self.conditions.is_some()
            || self.cooldown_days.is_some()
            || self.order_sizing.is_some()
            || self.invest_cash_threshold.is_some()
            || self.minimum_order_notional.is_some()
            || self.investment_minimum.is_some()
            || self.rebalance_to.is_some()
            || self.asset_rules.is_some()
    }
}

/// Field path prefix of the portfolio in `UpdatePortfolioRequest`.
const UPDATE_PREFIX: &str = "portfolio";

fn audit(context: &RequestContext, action: &'static str, details: serde_json::Value) -> AuditEntry {
    AuditEntry {
        actor: context.actor.clone(),
        request_id: context.request_id.clone(),
        action,
        details,
    }
}

/// Parses an etag `r<revision>`; `field` names it in the violation.
pub(crate) fn parse_etag(field: &str, etag: &str) -> Result<i64, TargetError> {
    if etag.is_empty() {
        return Err(Violations::one(field, "is required (send back the etag you read)").into());
    }
    etag.strip_prefix('r')
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| Violations::one(field, "is not an etag returned by this API").into())
}

impl Target {
    /// Validates and creates a portfolio, ACTIVE at version 1.
    ///
    /// # Errors
    /// `Invalid` for bad input, `AlreadyExists` for a taken name,
    /// `Unavailable` when symbols cannot be checked.
    #[tracing::instrument(name = "create_portfolio", skip_all, fields(tenant = %context.tenant))]
    pub async fn create_portfolio(
        &self,
        context: &RequestContext,
        input: PortfolioInput,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<PortfolioRecord>, TargetError> {
        let spec = input.validate()?;
        self.check_sleeves(context, None, &spec.target, "weights")
            .await?;
        self.check_assets(context, &spec.target, "weights").await?;
        let audit = audit(
            context,
            "created",
            json!({ "name": spec.name, "version": 1 }),
        );
        let portfolio = NewPortfolio {
            id: new_id(),
            spec,
            now: self.clock.now(),
        };
        let created = self
            .store
            .create_portfolio(&context.tenant, portfolio, claim, audit)
            .await?;
        if let Created::New(record) = &created {
            tracing::info!(portfolio_id = %record.id, name = %record.name, "portfolio created");
        }
        Ok(created)
    }

    /// A portfolio at its current version or at `version`.
    ///
    /// # Errors
    /// `NotFound` when the portfolio or the version does not exist.
    #[tracing::instrument(name = "get_portfolio", skip_all, fields(tenant = %context.tenant, portfolio_id = %id))]
    pub async fn get_portfolio(
        &self,
        context: &RequestContext,
        id: &str,
        version: Option<i64>,
    ) -> Result<PortfolioRecord, TargetError> {
        self.store
            .get_portfolio(&context.tenant, id, version)
            .await?
            .ok_or_else(|| match version {
                Some(version) => {
                    TargetError::NotFound(format!("portfolio {id} has no version {version}"))
                }
                None => TargetError::NotFound(format!("portfolio {id} not found")),
            })
    }

    /// Portfolios newest first.
    ///
    /// # Errors
    /// Only storage failures.
    #[tracing::instrument(name = "list_portfolios", skip_all, fields(tenant = %context.tenant))]
    pub async fn list_portfolios(
        &self,
        context: &RequestContext,
        filter: &PortfolioFilter,
        page: &PageRequest,
    ) -> Result<Vec<PortfolioRecord>, TargetError> {
        Ok(self
            .store
            .list_portfolios(&context.tenant, filter, page)
            .await?)
    }

    /// Applies a patch. Changing weights or conditions makes a new version,
    /// returns a portfolio needing adjustment to ACTIVE once its assets are
    /// usable again, and makes every assignment to it (or to a portfolio using
    /// it as a sleeve) due for evaluation even inside cooldown.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `Aborted` for a stale etag, `AlreadyExists` for a taken name.
    #[tracing::instrument(name = "update_portfolio", skip_all, fields(tenant = %context.tenant, portfolio_id = %id))]
    pub async fn update_portfolio(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        patch: PortfolioPatch,
    ) -> Result<PortfolioRecord, TargetError> {
        let expected_revision = parse_etag("portfolio.etag", etag)?;
        let current = self.get_portfolio(context, id, None).await?;
        let mut violations = Violations::new();
        let name = patch
            .name
            .as_deref()
            .map(|name| validate_name(name, &mut violations));
        if let Some(description) = &patch.description
            && description.chars().count() > rebalancer_domain::portfolio::MAX_DESCRIPTION_LEN
        {
            violations.add("description", "is too long");
        }
        let target = if patch.changes_target() {
            let mut input = current.target.to_input();
            if let Some(weights) = patch.weights.clone() {
                input.weights = weights;
            }
            if let Some(conditions) = patch.conditions.clone() {
                input.conditions = conditions;
            }
            if let Some(cooldown_days) = patch.cooldown_days {
                input.cooldown_days = cooldown_days;
            }
            if let Some(order_sizing) = patch.order_sizing {
                input.order_sizing = order_sizing;
            }
            if let Some(threshold) = patch.invest_cash_threshold.clone() {
                input.invest_cash_threshold = threshold;
            }
            if let Some(minimum) = patch.minimum_order_notional.clone() {
                input.minimum_order_notional = minimum;
            }
            if let Some(minimum) = patch.investment_minimum.clone() {
                input.investment_minimum = minimum;
            }
            if let Some(rebalance_to) = patch.rebalance_to {
                input.rebalance_to = rebalance_to;
            }
            if let Some(rules) = patch.asset_rules.clone() {
                input.asset_rules = rules;
            }
            match input.validate() {
                Ok(target) => Some(target),
                Err(problems) => {
                    for violation in problems {
                        violations.add(violation.field, violation.description);
                    }
                    None
                }
            }
        } else {
            None
        };
        if !violations.is_empty() {
            let mut prefixed = Violations::new();
            prefixed.extend_prefixed(UPDATE_PREFIX, violations);
            return Err(prefixed.into());
        }
        // A new version only when the target really changes.
        let target = target.filter(|target| *target != current.target);
        if let Some(target) = &target {
            self.check_sleeves(context, Some(id), target, "portfolio.weights")
                .await?;
            self.check_assets(context, target, "portfolio.weights")
                .await?;
        }
        let name = name.filter(|name| *name != current.name);
        let description = patch.description.filter(|d| *d != current.description);
        if target.is_none() && name.is_none() && description.is_none() {
            if current.revision != expected_revision {
                return Err(TargetError::Aborted(format!(
                    "portfolio {id} changed since etag r{expected_revision} (now r{})",
                    current.revision
                )));
            }
            return Ok(current);
        }
        let status = (target.is_some() && current.status == PortfolioStatus::NeedsAdjustment)
            .then(|| (PortfolioStatus::Active, "weights updated".to_owned()));
        let due_portfolios = if target.is_some() {
            let mut due = vec![id.to_owned()];
            due.extend(self.ancestors(context, id).await?);
            due
        } else {
            Vec::new()
        };
        let details = json!({
            "name": name,
            "description_changed": description.is_some(),
            "new_version": target.as_ref().map(|_| current.current_version + 1),
            "status": status.as_ref().map(|(status, _)| status.as_str()),
        });
        let action = if target.is_some() {
            "weights_updated"
        } else {
            "updated"
        };
        let update = PortfolioUpdate {
            id: id.to_owned(),
            expected_revision,
            name,
            description,
            target,
            status,
            due_portfolios,
            now: self.clock.now(),
        };
        let updated = self
            .store
            .update_portfolio(&context.tenant, update, audit(context, action, details))
            .await?;
        tracing::info!(
            version = updated.version,
            revision = updated.revision,
            "portfolio updated"
        );
        Ok(updated)
    }

    /// Moves a portfolio between ACTIVE and INACTIVE. Leaving
    /// NEEDS_ADJUSTMENT takes an update that fixes the weights; deactivating
    /// is refused while active assignments or active portfolios use it.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `Aborted`, `FailedPrecondition`.
    #[tracing::instrument(name = "set_portfolio_status", skip_all, fields(tenant = %context.tenant, portfolio_id = %id))]
    pub async fn set_portfolio_status(
        &self,
        context: &RequestContext,
        id: &str,
        etag: &str,
        status: PortfolioStatus,
        reason: &str,
    ) -> Result<PortfolioRecord, TargetError> {
        let expected_revision = parse_etag("etag", etag)?;
        let current = self.get_portfolio(context, id, None).await?;
        match (current.status, status) {
            (_, PortfolioStatus::NeedsAdjustment) => {
                return Err(Violations::one(
                    "status",
                    "NEEDS_ADJUSTMENT is entered only when an asset is reported unusable",
                )
                .into());
            }
            (PortfolioStatus::NeedsAdjustment, PortfolioStatus::Active) => {
                return Err(TargetError::FailedPrecondition(format!(
                    "portfolio {id} needs adjustment ({}): update its weights to make it active again",
                    current.status_reason
                )));
            }
            (from, to) if from == to => {
                if current.revision != expected_revision {
                    return Err(TargetError::Aborted(format!(
                        "portfolio {id} changed since etag r{expected_revision} (now r{})",
                        current.revision
                    )));
                }
                return Ok(current);
            }
            (_, PortfolioStatus::Inactive) => self.check_unreferenced(context, id).await?,
            (_, PortfolioStatus::Active) => {}
        }
        let update = PortfolioUpdate {
            id: id.to_owned(),
            expected_revision,
            name: None,
            description: None,
            target: None,
            status: Some((status, reason.to_owned())),
            due_portfolios: Vec::new(),
            now: self.clock.now(),
        };
        let action = match status {
            PortfolioStatus::Active => "activated",
            PortfolioStatus::Inactive => "deactivated",
            PortfolioStatus::NeedsAdjustment => "needs_adjustment",
        };
        let details =
            json!({ "from": current.status.as_str(), "to": status.as_str(), "reason": reason });
        Ok(self
            .store
            .update_portfolio(&context.tenant, update, audit(context, action, details))
            .await?)
    }

    /// Refuses while active assignments or active portfolios reference `id`.
    async fn check_unreferenced(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<(), TargetError> {
        let assignments = self
            .store
            .count_active_assignments(&context.tenant, id)
            .await?;
        if assignments > 0 {
            return Err(TargetError::FailedPrecondition(format!(
                "portfolio {id} has {assignments} active assignment(s): unassign or move them first"
            )));
        }
        let parents = self.store.parents(&context.tenant, id).await?;
        if !parents.is_empty() {
            return Err(TargetError::FailedPrecondition(format!(
                "portfolio {id} is a sleeve of active portfolio(s) {}: remove it from them first",
                parents.join(", ")
            )));
        }
        Ok(())
    }

    /// Versions newest first.
    ///
    /// # Errors
    /// `NotFound` for an unknown portfolio.
    pub async fn list_versions(
        &self,
        context: &RequestContext,
        id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, TargetError> {
        self.get_portfolio(context, id, None).await?;
        Ok(self
            .store
            .list_versions(&context.tenant, id, after, limit)
            .await?)
    }

    /// An asset became inactive, untradable or not fractionable: portfolios
    /// holding it (fractionable: only notional ones) need adjustment, and so
    /// do the portfolios using those as sleeves. Returns the affected ids.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "report_asset_status", skip_all, fields(tenant = %context.tenant, symbol = %symbol))]
    pub async fn report_asset_status(
        &self,
        context: &RequestContext,
        symbol: &str,
        usable: bool,
        fractionable: bool,
        reason: &str,
    ) -> Result<Vec<String>, TargetError> {
        if usable && fractionable {
            return Ok(Vec::new());
        }
        let mut affected = Vec::new();
        for id in self
            .store
            .portfolios_holding(&context.tenant, symbol)
            .await?
        {
            let Some(portfolio) = self.store.get_portfolio(&context.tenant, &id, None).await?
            else {
                continue;
            };
            if usable && portfolio.target.order_sizing == OrderSizing::WholeShares {
                continue;
            }
            let why = if usable {
                format!("{symbol} is no longer fractionable: {reason}")
            } else {
                format!("{symbol} is no longer tradable: {reason}")
            };
            affected.extend(
                self.mark_needs_adjustment(context, &portfolio, &why)
                    .await?,
            );
            for ancestor in self.ancestors(context, &id).await? {
                if let Some(parent) = self
                    .store
                    .get_portfolio(&context.tenant, &ancestor, None)
                    .await?
                {
                    let why = format!("sleeve {id} needs adjustment: {why}");
                    affected.extend(self.mark_needs_adjustment(context, &parent, &why).await?);
                }
            }
        }
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    async fn mark_needs_adjustment(
        &self,
        context: &RequestContext,
        portfolio: &PortfolioRecord,
        reason: &str,
    ) -> Result<Option<String>, TargetError> {
        if portfolio.status != PortfolioStatus::Active {
            return Ok(None);
        }
        let update = PortfolioUpdate {
            id: portfolio.id.clone(),
            expected_revision: portfolio.revision,
            name: None,
            description: None,
            target: None,
            status: Some((PortfolioStatus::NeedsAdjustment, reason.to_owned())),
            due_portfolios: Vec::new(),
            now: self.clock.now(),
        };
        let details = json!({ "reason": reason });
        self.store
            .update_portfolio(
                &context.tenant,
                update,
                audit(context, "needs_adjustment", details),
            )
            .await?;
        tracing::warn!(portfolio_id = %portfolio.id, %reason, "portfolio needs adjustment");
        Ok(Some(portfolio.id.clone()))
    }

    /// The audit trail of portfolios (of one, when `id` is given).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn portfolio_events(
        &self,
        context: &RequestContext,
        id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<AuditRecord>, TargetError> {
        let ids: Vec<String> = id.map(str::to_owned).into_iter().collect();
        Ok(self
            .store
            .list_events(&context.tenant, "portfolio", &ids, page)
            .await?)
    }

    /// Sleeves must exist, be enterprise models, not be inactive, and not lead
    /// back to `portfolio_id` (a cycle).
    async fn check_sleeves(
        &self,
        context: &RequestContext,
        portfolio_id: Option<&str>,
        target: &TargetSpec,
        field: &str,
    ) -> Result<(), TargetError> {
        let mut violations = Violations::new();
        for (index, weight) in target.weights.iter().enumerate() {
            let WeightTarget::Portfolio(sleeve_id) = &weight.target else {
                continue;
            };
            let at = format!("{field}[{index}].portfolio_id");
            if Some(sleeve_id.as_str()) == portfolio_id {
                violations.add(at, "a portfolio cannot be its own sleeve");
                continue;
            }
            match self
                .store
                .get_portfolio(&context.tenant, sleeve_id, None)
                .await?
            {
                None => violations.add(at, format!("portfolio {sleeve_id} not found")),
                Some(sleeve) if sleeve.scope != Scope::Enterprise => {
                    violations.add(
                        at,
                        format!("portfolio {sleeve_id} is an account-level target, not a model"),
                    );
                }
                Some(sleeve) if sleeve.status == PortfolioStatus::Inactive => {
                    violations.add(at, format!("portfolio {sleeve_id} is inactive"));
                }
                Some(_) => {
                    if let Some(portfolio_id) = portfolio_id {
                        let below = self
                            .descendants(context, std::slice::from_ref(sleeve_id))
                            .await?;
                        if below.contains(portfolio_id) {
                            violations.add(
                                at,
                                format!("portfolio {sleeve_id} contains {portfolio_id}: a cycle"),
                            );
                        }
                    }
                }
            }
        }
        violations.into_result(()).map_err(TargetError::from)
    }
}

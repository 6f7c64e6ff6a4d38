//! `rebalancer.target.v1.PortfolioService`.

use rebalancer_domain::Violations;
use rebalancer_domain::portfolio::{PortfolioStatus, Scope};
use rebalancer_kit::RequestContext;
use rebalancer_kit::error::{invalid_argument, invalid_field};
use rebalancer_kit::idempotency::{Created, claim};
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::{
    check_rebalance_to, condition_input, condition_to_wire, decimal_text, money_text,
    rebalance_to_input, rebalance_to_wire, required, weight_input, weight_to_wire,
};
use rebalancer_proto::target as pb;
use rebalancer_proto::target::portfolio_service_server::PortfolioService;
use tonic::{Request, Response, Status};

use crate::app::{PortfolioPatch, Target};
use crate::convert::{
    approval_mode_from_wire, asset_rule_input, assignment_to_wire, audit_to_wire,
    order_sizing_from_wire, portfolio_input, portfolio_to_wire, scope_from_wire, status_from_wire,
    version_to_wire,
};
use crate::store::PortfolioFilter;

/// `rebalancer.target.v1.PortfolioService`.
#[derive(Debug, Clone)]
pub struct PortfolioApi {
    target: Target,
}

impl PortfolioApi {
    #[must_use]
    pub fn new(target: Target) -> Self {
        Self { target }
    }
}

/// Fields an update may change, as the mask names them (snake or camel case).
const UPDATABLE: &[(&str, &str)] = &[
    ("name", "name"),
    ("description", "description"),
    ("weights", "weights"),
    ("rebalance_conditions", "rebalanceConditions"),
    ("cooldown_days", "cooldownDays"),
    ("order_sizing", "orderSizing"),
    ("invest_cash_threshold", "investCashThreshold"),
    ("minimum_order_notional", "minimumOrderNotional"),
    ("investment_minimum", "investmentMinimum"),
    ("rebalance_to", "rebalanceTo"),
    ("asset_rules", "assetRules"),
];

/// The patch an update asks for: the masked fields, or (AIP-134) every
/// field set in the message when the mask is empty.
fn patch(
    portfolio: &pb::Portfolio,
    mask: Option<&prost_types::FieldMask>,
) -> Result<PortfolioPatch, Status> {
    let mut fields: Vec<&str> = Vec::new();
    match mask.filter(|mask| !mask.paths.is_empty()) {
        Some(mask) => {
            for path in &mask.paths {
                let Some((snake, _)) = UPDATABLE
                    .iter()
                    .find(|(snake, camel)| path == snake || path == camel)
                else {
                    return Err(invalid_field(
                        "update_mask",
                        format!("{path:?} is not an updatable field"),
                    ));
                };
                fields.push(snake);
            }
        }
        None => {
            let set = [
                ("name", !portfolio.name.is_empty()),
                ("description", !portfolio.description.is_empty()),
                ("weights", !portfolio.weights.is_empty()),
                (
                    "rebalance_conditions",
                    !portfolio.rebalance_conditions.is_empty(),
                ),
                ("cooldown_days", portfolio.cooldown_days != 0),
                ("order_sizing", portfolio.order_sizing != 0),
                (
                    "invest_cash_threshold",
                    !portfolio.invest_cash_threshold.is_empty(),
                ),
                (
                    "minimum_order_notional",
                    !portfolio.minimum_order_notional.is_empty(),
                ),
                (
                    "investment_minimum",
                    !portfolio.investment_minimum.is_empty(),
                ),
                ("rebalance_to", portfolio.rebalance_to != 0),
                ("asset_rules", !portfolio.asset_rules.is_empty()),
            ];
            fields.extend(
                set.iter()
                    .filter(|(_, is_set)| *is_set)
                    .map(|(name, _)| *name),
            );
            if fields.is_empty() {
                return Err(invalid_field(
                    "update_mask",
                    "nothing to update: set fields or list them in update_mask",
                ));
            }
        }
    }
    let has = |name: &str| fields.contains(&name);
    Ok(PortfolioPatch {
        name: has("name").then(|| portfolio.name.clone()),
        description: has("description").then(|| portfolio.description.clone()),
        weights: has("weights").then(|| portfolio.weights.iter().map(weight_input).collect()),
        conditions: has("rebalance_conditions").then(|| {
            portfolio
                .rebalance_conditions
                .iter()
                .map(condition_input)
                .collect()
        }),
        cooldown_days: has("cooldown_days").then_some(portfolio.cooldown_days),
        order_sizing: has("order_sizing").then(|| order_sizing_from_wire(portfolio.order_sizing)),
        invest_cash_threshold: has("invest_cash_threshold")
            .then(|| portfolio.invest_cash_threshold.clone()),
        minimum_order_notional: has("minimum_order_notional")
            .then(|| portfolio.minimum_order_notional.clone()),
        investment_minimum: has("investment_minimum").then(|| portfolio.investment_minimum.clone()),
        rebalance_to: has("rebalance_to").then(|| rebalance_to_input(portfolio.rebalance_to)),
        asset_rules: has("asset_rules")
            .then(|| portfolio.asset_rules.iter().map(asset_rule_input).collect()),
    })
}

#[tonic::async_trait]
impl PortfolioService for PortfolioApi {
    async fn create_portfolio(
        &self,
        request: Request<pb::CreatePortfolioRequest>,
    ) -> Result<Response<pb::CreatePortfolioResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = claim("CreatePortfolio", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear();
        })?;
        let approval_mode = approval_mode_from_wire(message.approval_mode);
        if message.approval_mode != 0 && approval_mode.is_none() {
            return Err(invalid_field(
                "approval_mode",
                "is not a known approval mode",
            ));
        }
        check_rebalance_to("rebalance_to", message.rebalance_to)?;
        let created = self
            .target
            .create_portfolio(&context, portfolio_input(&message), claim)
            .await?;
        // A replay finishes an assignment a failed first try left undone,
        // but never switches an account reassigned since.
        let first = matches!(created, Created::New(_));
        let created = created.into_inner();
        // An account-level target is the account's target from the start.
        let assignment = match (&created.scope, &created.account_id) {
            (Scope::Account, Some(account_id)) => Some(
                self.target
                    .assign_account_target(
                        &context,
                        account_id,
                        &created.id,
                        (
                            message.rebalancing_enabled,
                            approval_mode.unwrap_or_default(),
                        ),
                        first,
                    )
                    .await?,
            ),
            _ => None,
        };
        Ok(Response::new(pb::CreatePortfolioResponse {
            portfolio: Some(portfolio_to_wire(&created)),
            assignment: assignment.as_ref().map(assignment_to_wire),
        }))
    }

    async fn get_portfolio(
        &self,
        request: Request<pb::GetPortfolioRequest>,
    ) -> Result<Response<pb::GetPortfolioResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("portfolio_id", &message.portfolio_id)?;
        let version = match message.version {
            0 => None,
            n if n < 0 => return Err(invalid_field("version", "must be 0 or more")),
            n => Some(n),
        };
        let record = self
            .target
            .get_portfolio(&context, &message.portfolio_id, version)
            .await?;
        Ok(Response::new(pb::GetPortfolioResponse {
            portfolio: Some(portfolio_to_wire(&record)),
        }))
    }

    async fn list_portfolios(
        &self,
        request: Request<pb::ListPortfoliosRequest>,
    ) -> Result<Response<pb::ListPortfoliosResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let status =
            status_from_wire("status", message.status).map_err(|v| invalid_argument(&v))?;
        let symbol = if message.symbol.is_empty() {
            None
        } else {
            Some(
                rebalancer_domain::Symbol::parse(&message.symbol)
                    .map_err(|error| invalid_field("symbol", error.to_string()))?
                    .to_string(),
            )
        };
        let filter = PortfolioFilter {
            name_contains: Some(message.name).filter(|name| !name.is_empty()),
            status,
            symbol,
            scope: scope_from_wire(message.scope),
            account_id: Some(message.account_id).filter(|id| !id.is_empty()),
        };
        let records = self
            .target
            .list_portfolios(&context, &filter, &page.fetch())
            .await?;
        let (records, next_page_token) = page.finish(records, |record| record.id.clone());
        Ok(Response::new(pb::ListPortfoliosResponse {
            portfolios: records.iter().map(portfolio_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn update_portfolio(
        &self,
        request: Request<pb::UpdatePortfolioRequest>,
    ) -> Result<Response<pb::UpdatePortfolioResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let portfolio = message.portfolio.ok_or_else(|| {
            invalid_field(
                "portfolio",
                "is required (with its id, etag and the new values)",
            )
        })?;
        required("portfolio.id", &portfolio.id)?;
        check_rebalance_to("portfolio.rebalance_to", portfolio.rebalance_to)?;
        let patch = patch(&portfolio, message.update_mask.as_ref())?;
        let record = self
            .target
            .update_portfolio(&context, &portfolio.id, &portfolio.etag, patch)
            .await?;
        Ok(Response::new(pb::UpdatePortfolioResponse {
            portfolio: Some(portfolio_to_wire(&record)),
        }))
    }

    async fn set_portfolio_status(
        &self,
        request: Request<pb::SetPortfolioStatusRequest>,
    ) -> Result<Response<pb::SetPortfolioStatusResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("portfolio_id", &message.portfolio_id)?;
        let status = status_from_wire("status", message.status)
            .map_err(|v| invalid_argument(&v))?
            .ok_or_else(|| {
                invalid_field(
                    "status",
                    "is required (PORTFOLIO_STATUS_ACTIVE or PORTFOLIO_STATUS_INACTIVE)",
                )
            })?;
        let record = self
            .target
            .set_portfolio_status(
                &context,
                &message.portfolio_id,
                &message.etag,
                status,
                &message.reason,
            )
            .await?;
        Ok(Response::new(pb::SetPortfolioStatusResponse {
            portfolio: Some(portfolio_to_wire(&record)),
        }))
    }

    async fn delete_portfolio(
        &self,
        request: Request<pb::DeletePortfolioRequest>,
    ) -> Result<Response<pb::DeletePortfolioResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("portfolio_id", &message.portfolio_id)?;
        let record = self
            .target
            .set_portfolio_status(
                &context,
                &message.portfolio_id,
                &message.etag,
                PortfolioStatus::Inactive,
                "deleted",
            )
            .await?;
        Ok(Response::new(pb::DeletePortfolioResponse {
            portfolio: Some(portfolio_to_wire(&record)),
        }))
    }

    async fn list_portfolio_versions(
        &self,
        request: Request<pb::ListPortfolioVersionsRequest>,
    ) -> Result<Response<pb::ListPortfolioVersionsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("portfolio_id", &message.portfolio_id)?;
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let after_version =
            match &page.after {
                Some(token) => Some(token.parse::<i64>().map_err(|_| {
                    invalid_field("page_token", "is not a token returned by this API")
                })?),
                None => None,
            };
        let versions = self
            .target
            .list_versions(
                &context,
                &message.portfolio_id,
                after_version,
                page.fetch_limit(),
            )
            .await?;
        let (versions, next_page_token) = page.finish(versions, |v| v.version.to_string());
        Ok(Response::new(pb::ListPortfolioVersionsResponse {
            versions: versions.iter().map(version_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn resolve_portfolio(
        &self,
        request: Request<pb::ResolvePortfolioRequest>,
    ) -> Result<Response<pb::ResolvePortfolioResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("portfolio_id", &message.portfolio_id)?;
        let version = match message.version {
            0 => None,
            n if n < 0 => return Err(invalid_field("version", "must be 0 or more")),
            n => Some(n),
        };
        let target = self
            .target
            .resolve(&context, &message.portfolio_id, version)
            .await?;
        Ok(Response::new(pb::ResolvePortfolioResponse {
            portfolio_id: target.portfolio.id.clone(),
            version: target.portfolio.version,
            weights: target.resolved.weights.iter().map(weight_to_wire).collect(),
            rebalance_conditions: target
                .portfolio
                .target
                .conditions
                .iter()
                .map(condition_to_wire)
                .collect(),
            rebalance_to: rebalance_to_wire(target.portfolio.target.rebalance_to),
            sleeves: target
                .resolved
                .sleeves
                .iter()
                .map(|sleeve| pb::SleeveShare {
                    portfolio_id: sleeve.portfolio_id.clone(),
                    version: sleeve.version,
                    percent: decimal_text(sleeve.percent),
                    investment_minimum: money_text(sleeve.investment_minimum),
                })
                .collect(),
        }))
    }

    async fn report_asset_status(
        &self,
        request: Request<pb::ReportAssetStatusRequest>,
    ) -> Result<Response<pb::ReportAssetStatusResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let symbol = rebalancer_domain::Symbol::parse(&message.symbol)
            .map_err(|error| invalid_argument(&Violations::one("symbol", error.to_string())))?;
        let usable = message.active && message.tradable;
        let affected_portfolio_ids = self
            .target
            .report_asset_status(
                &context,
                symbol.as_str(),
                usable,
                message.fractionable,
                &message.reason,
            )
            .await?;
        Ok(Response::new(pb::ReportAssetStatusResponse {
            affected_portfolio_ids,
        }))
    }

    async fn list_portfolio_events(
        &self,
        request: Request<pb::ListPortfolioEventsRequest>,
    ) -> Result<Response<pb::ListPortfolioEventsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let id = Some(message.portfolio_id.as_str()).filter(|id| !id.is_empty());
        let events = self
            .target
            .portfolio_events(&context, id, &page.fetch())
            .await?;
        let (events, next_page_token) = page.finish(events, |event| event.id.clone());
        Ok(Response::new(pb::ListPortfolioEventsResponse {
            events: events.iter().map(audit_to_wire).collect(),
            next_page_token,
        }))
    }
}

//! Wire ↔ domain conversions of the Target service's own types.

use rebalancer_domain::Violations;
use rebalancer_domain::portfolio::Weight;
use rebalancer_domain::portfolio::{
    AssetRule, AssetRuleInput, OrderSizing, PortfolioInput, PortfolioStatus, Scope, TargetInput,
};
use rebalancer_domain::sleeves::SleeveMinimum;
use rebalancer_kit::wire::{
    condition_input, condition_to_wire, decimal_text, money_text, rebalance_to_input,
    rebalance_to_wire, timestamp, weight_input, weight_to_wire,
};
use rebalancer_proto::common;
use rebalancer_proto::target as pb;
use rust_decimal::Decimal;

use crate::app::ResolvedAssignment;
use crate::store::{
    ApprovalMode, AssignmentRecord, AssignmentStatus, AuditRecord, PortfolioRecord, VersionRecord,
};

/// A per-asset rule as sent.
#[must_use]
pub fn asset_rule_input(rule: &pb::AssetTradeRule) -> AssetRuleInput {
    AssetRuleInput {
        symbol: rule.symbol.clone(),
        minimum_order_notional: rule.minimum_order_notional.clone(),
        minimum_drift: rule.minimum_drift.clone(),
    }
}

/// A stored per-asset rule on the wire.
#[must_use]
pub fn asset_rule_to_wire(rule: &AssetRule) -> pb::AssetTradeRule {
    pb::AssetTradeRule {
        symbol: rule.symbol.to_string(),
        minimum_order_notional: rule
            .minimum_order_notional
            .map(money_text)
            .unwrap_or_default(),
        minimum_drift: rule.minimum_drift.map(decimal_text).unwrap_or_default(),
    }
}

/// A create request as domain input, for validation.
#[must_use]
pub fn portfolio_input(request: &pb::CreatePortfolioRequest) -> PortfolioInput {
    PortfolioInput {
        name: request.name.clone(),
        description: request.description.clone(),
        scope: scope_from_wire(request.scope),
        account_id: request.account_id.clone(),
        target: TargetInput {
            weights: request.weights.iter().map(weight_input).collect(),
            conditions: request
                .rebalance_conditions
                .iter()
                .map(condition_input)
                .collect(),
            cooldown_days: request.cooldown_days,
            order_sizing: order_sizing_from_wire(request.order_sizing),
            invest_cash_threshold: request.invest_cash_threshold.clone(),
            minimum_order_notional: request.minimum_order_notional.clone(),
            rebalance_to: rebalance_to_input(request.rebalance_to),
            asset_rules: request.asset_rules.iter().map(asset_rule_input).collect(),
            investment_minimum: request.investment_minimum.clone(),
        },
    }
}

/// `None` for unspecified (the default applies).
#[must_use]
pub fn scope_from_wire(value: i32) -> Option<Scope> {
    match pb::PortfolioScope::try_from(value) {
        Ok(pb::PortfolioScope::Enterprise) => Some(Scope::Enterprise),
        Ok(pb::PortfolioScope::Account) => Some(Scope::Account),
        Ok(pb::PortfolioScope::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn order_sizing_from_wire(value: i32) -> Option<OrderSizing> {
    match pb::OrderSizing::try_from(value) {
        Ok(pb::OrderSizing::Notional) => Some(OrderSizing::Notional),
        Ok(pb::OrderSizing::WholeShares) => Some(OrderSizing::WholeShares),
        Ok(pb::OrderSizing::Unspecified) | Err(_) => None,
    }
}

/// `None` for unspecified.
///
/// # Errors
/// A violation on `field` for a value this version does not know.
pub fn status_from_wire(field: &str, value: i32) -> Result<Option<PortfolioStatus>, Violations> {
    match pb::PortfolioStatus::try_from(value) {
        Ok(pb::PortfolioStatus::Unspecified) => Ok(None),
        Ok(pb::PortfolioStatus::Active) => Ok(Some(PortfolioStatus::Active)),
        Ok(pb::PortfolioStatus::Inactive) => Ok(Some(PortfolioStatus::Inactive)),
        Ok(pb::PortfolioStatus::NeedsAdjustment) => Ok(Some(PortfolioStatus::NeedsAdjustment)),
        Err(_) => Err(Violations::one(field, "is not a known portfolio status")),
    }
}

#[must_use]
pub fn status_to_wire(status: PortfolioStatus) -> pb::PortfolioStatus {
    match status {
        PortfolioStatus::Active => pb::PortfolioStatus::Active,
        PortfolioStatus::Inactive => pb::PortfolioStatus::Inactive,
        PortfolioStatus::NeedsAdjustment => pb::PortfolioStatus::NeedsAdjustment,
    }
}

#[must_use]
pub fn scope_to_wire(scope: Scope) -> pb::PortfolioScope {
    match scope {
        Scope::Enterprise => pb::PortfolioScope::Enterprise,
        Scope::Account => pb::PortfolioScope::Account,
    }
}

#[must_use]
pub fn order_sizing_to_wire(sizing: OrderSizing) -> pb::OrderSizing {
    match sizing {
        OrderSizing::Notional => pb::OrderSizing::Notional,
        OrderSizing::WholeShares => pb::OrderSizing::WholeShares,
    }
}

/// The etag of a revision.
#[must_use]
pub fn etag(revision: i64) -> String {
    format!("r{revision}")
}

/// A stored portfolio on the wire.
#[must_use]
pub fn portfolio_to_wire(record: &PortfolioRecord) -> pb::Portfolio {
    let target = &record.target;
    pb::Portfolio {
        id: record.id.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        status: status_to_wire(record.status).into(),
        cooldown_days: i32::try_from(target.cooldown_days).unwrap_or(i32::MAX),
        weights: target.weights.iter().map(weight_to_wire).collect(),
        rebalance_conditions: target.conditions.iter().map(condition_to_wire).collect(),
        version: record.version,
        etag: etag(record.revision),
        scope: scope_to_wire(record.scope).into(),
        account_id: record.account_id.clone().unwrap_or_default(),
        order_sizing: order_sizing_to_wire(target.order_sizing).into(),
        invest_cash_threshold: money_text(target.invest_cash_threshold),
        minimum_order_notional: money_text(target.minimum_order_notional),
        investment_minimum: money_text(target.investment_minimum),
        status_reason: record.status_reason.clone(),
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
        version_created_at: Some(timestamp(record.version_created_at)),
        rebalance_to: rebalance_to_wire(target.rebalance_to),
        asset_rules: target.asset_rules.iter().map(asset_rule_to_wire).collect(),
    }
}

/// `None` for unspecified (the default applies).
#[must_use]
pub fn approval_mode_from_wire(value: i32) -> Option<ApprovalMode> {
    match common::ApprovalMode::try_from(value) {
        Ok(common::ApprovalMode::Auto) => Some(ApprovalMode::Auto),
        Ok(common::ApprovalMode::Manual) => Some(ApprovalMode::Manual),
        Ok(common::ApprovalMode::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn approval_mode_to_wire(mode: ApprovalMode) -> common::ApprovalMode {
    match mode {
        ApprovalMode::Auto => common::ApprovalMode::Auto,
        ApprovalMode::Manual => common::ApprovalMode::Manual,
    }
}

#[must_use]
pub fn assignment_status_to_wire(status: AssignmentStatus) -> pb::AssignmentStatus {
    match status {
        AssignmentStatus::Active => pb::AssignmentStatus::Active,
        AssignmentStatus::Unassigned => pb::AssignmentStatus::Unassigned,
    }
}

#[must_use]
pub fn assignment_to_wire(record: &AssignmentRecord) -> pb::Assignment {
    pb::Assignment {
        id: record.id.clone(),
        account_id: record.account_id.clone(),
        portfolio_id: record.portfolio_id.clone().unwrap_or_default(),
        rebalancing_enabled: record.rebalancing_enabled,
        approval_mode: approval_mode_to_wire(record.approval_mode).into(),
        status: assignment_status_to_wire(record.status).into(),
        etag: etag(record.revision),
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
        target_changed_at: record.target_changed_at.map(timestamp),
    }
}

/// A resolved assignment whose target an earlier message of the stream
/// carried: its portfolio id, version and status only.
#[must_use]
pub fn resolved_assignment_without_target(resolved: &ResolvedAssignment) -> pb::ResolvedAssignment {
    pb::ResolvedAssignment {
        target_omitted: true,
        ..resolved_head(resolved)
    }
}

/// The assignment's own fields and its portfolio's identity.
fn resolved_head(resolved: &ResolvedAssignment) -> pb::ResolvedAssignment {
    let assignment = &resolved.assignment;
    let mut message = pb::ResolvedAssignment {
        assignment_id: assignment.id.clone(),
        account_id: assignment.account_id.clone(),
        status: assignment_status_to_wire(assignment.status).into(),
        rebalancing_enabled: assignment.rebalancing_enabled,
        approval_mode: approval_mode_to_wire(assignment.approval_mode).into(),
        target_changed_at: assignment.target_changed_at.map(timestamp),
        ..pb::ResolvedAssignment::default()
    };
    if let Some(target) = &resolved.target {
        message.portfolio_id = target.portfolio.id.clone();
        message.portfolio_version = target.portfolio.version;
        message.portfolio_status = status_to_wire(target.portfolio.status).into();
    }
    message
}

/// An assignment with its flattened target, as the monitor streams it.
#[must_use]
pub fn resolved_assignment_to_wire(resolved: &ResolvedAssignment) -> pb::ResolvedAssignment {
    let mut message = resolved_head(resolved);
    match &resolved.target {
        Some(target) => {
            let portfolio = &target.portfolio;
            message.weights = target.resolved.weights.iter().map(weight_to_wire).collect();
            message.rebalance_conditions = portfolio
                .target
                .conditions
                .iter()
                .map(condition_to_wire)
                .collect();
            message.cooldown_days =
                i32::try_from(portfolio.target.cooldown_days).unwrap_or(i32::MAX);
            message.order_sizing = order_sizing_to_wire(portfolio.target.order_sizing).into();
            message.invest_cash_threshold = money_text(portfolio.target.invest_cash_threshold);
            message.minimum_order_notional = money_text(portfolio.target.minimum_order_notional);
            message.rebalance_to = rebalance_to_wire(portfolio.target.rebalance_to);
            message.asset_rules = portfolio
                .target
                .asset_rules
                .iter()
                .map(asset_rule_to_wire)
                .collect();
            message.sleeve_minimums = target
                .resolved
                .minimums
                .iter()
                .map(sleeve_minimum_to_wire)
                .collect();
        }
        None => {
            // Unassigned (or unresolvable): the account targets 100% cash.
            message.portfolio_id = resolved.assignment.portfolio_id.clone().unwrap_or_default();
            message.weights = vec![weight_to_wire(&Weight::cash(Decimal::ONE_HUNDRED))];
            message.invest_cash_threshold =
                money_text(rebalancer_domain::portfolio::DEFAULT_INVEST_CASH_THRESHOLD);
            message.minimum_order_notional =
                money_text(rebalancer_domain::portfolio::DEFAULT_MINIMUM_ORDER_NOTIONAL);
        }
    }
    message
}

fn sleeve_minimum_to_wire(sleeve: &SleeveMinimum) -> pb::SleeveMinimum {
    pb::SleeveMinimum {
        portfolio_id: sleeve.portfolio_id.clone(),
        percent: decimal_text(sleeve.percent),
        investment_minimum: money_text(sleeve.investment_minimum),
        weights: sleeve.weights.iter().map(weight_to_wire).collect(),
        within: sleeve.within.clone(),
    }
}

#[must_use]
pub fn version_to_wire(record: &VersionRecord) -> pb::PortfolioVersion {
    let target = &record.target;
    pb::PortfolioVersion {
        portfolio_id: record.portfolio_id.clone(),
        version: record.version,
        weights: target.weights.iter().map(weight_to_wire).collect(),
        rebalance_conditions: target.conditions.iter().map(condition_to_wire).collect(),
        cooldown_days: i32::try_from(target.cooldown_days).unwrap_or(i32::MAX),
        order_sizing: order_sizing_to_wire(target.order_sizing).into(),
        invest_cash_threshold: money_text(target.invest_cash_threshold),
        minimum_order_notional: money_text(target.minimum_order_notional),
        investment_minimum: money_text(target.investment_minimum),
        created_at: Some(timestamp(record.created_at)),
        created_by: record.created_by.clone(),
        rebalance_to: rebalance_to_wire(target.rebalance_to),
        asset_rules: target.asset_rules.iter().map(asset_rule_to_wire).collect(),
    }
}

#[must_use]
pub fn audit_to_wire(record: &AuditRecord) -> common::AuditEvent {
    common::AuditEvent {
        id: record.id.clone(),
        resource_type: record.resource_type.clone(),
        resource_id: record.resource_id.clone(),
        action: record.action.clone(),
        actor: record.actor.clone(),
        request_id: record.request_id.clone().unwrap_or_default(),
        occurred_at: Some(timestamp(record.occurred_at)),
        details_json: record.details_json.clone(),
    }
}

//! The target a run trades toward: the account's assignment read from the
//! Target service (resolved weights, approval mode, minimums), or a portfolio
//! (and version) the spec names, checked to be still the account's.
//!
//! The account's assignment is read from Target once for the run, and its
//! resolved target is that version's target because its identity is checked
//! on the same response. Nothing is cached across runs, so nothing can go
//! stale (a portfolio's version does not pin its sleeves' versions, so a
//! cache keyed by version could serve old sleeve weights).
//!
//! A sleeve whose share of the account's value is below its investment
//! minimum is not opened ([`TargetInfo::open_sleeves`]; the rule is
//! `rebalancer_domain::sleeve_minimums`): its buys are shown as skipped.

use std::collections::HashMap;

use rebalancer_domain::Symbol;
use rebalancer_domain::decimal::parse_decimal;
use rebalancer_domain::portfolio::{AssetRule, RebalanceCondition, RebalanceTo, Weight};
use rebalancer_domain::run::ApprovalMode;
use rebalancer_domain::sleeve_minimums::{self, SleeveMinimum};
use rebalancer_domain::trades::Holding;
use rebalancer_kit::RequestContext;
use rebalancer_kit::wire::{asset_rule_from_wire, condition_from_wire, rebalance_to_input};
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::{AssignmentStatus, ResolvedAssignment, StreamAssignmentsRequest};
use rust_decimal::Decimal;

use crate::Execution;
use crate::error::ExecutionError;
use crate::runs::store::SkipEntry;

/// The target a run trades toward.
#[derive(Debug, Clone)]
pub(super) struct TargetInfo {
    pub(super) weights: Vec<Weight>,
    pub(super) portfolio_id: Option<String>,
    pub(super) portfolio_version: Option<i64>,
    pub(super) approval_mode: ApprovalMode,
    pub(super) minimum_order_notional: Option<Decimal>,
    pub(super) whole_shares_only: bool,
    /// Sleeves with an investment minimum (assignments only).
    pub(super) sleeve_minimums: Vec<SleeveMinimum>,
    /// The portfolio's conditions when full rebalances go to the band's
    /// edge rather than to target.
    pub(super) band_edge: Option<Vec<RebalanceCondition>>,
    /// Per-asset minimum orders and minimum drifts.
    pub(super) asset_rules: Vec<AssetRule>,
}

impl TargetInfo {
    /// The target for an account worth `account_value` holding `holdings`:
    /// sleeves below their investment minimum and not held yet are left
    /// unopened, their weight spread pro rata over the rest, and each of
    /// their symbols is reported as a skipped buy with the reason.
    pub(super) fn open_sleeves(
        mut self,
        account_value: Decimal,
        holdings: &[Holding],
        prices: &HashMap<String, Decimal>,
    ) -> (Self, Vec<SkipEntry>) {
        if self.sleeve_minimums.is_empty() {
            return (self, Vec::new());
        }
        let opened = sleeve_minimums::open_sleeves(
            &self.weights,
            &self.sleeve_minimums,
            account_value,
            |symbol| holdings.iter().any(|h| &h.symbol == symbol),
        );
        let mut skipped = Vec::new();
        for sleeve in &opened.withheld {
            for part in &sleeve.weights {
                let Some(symbol) = part.symbol() else {
                    continue;
                };
                let notional = (account_value * part.percent / Decimal::ONE_HUNDRED).round_dp(2);
                let quantity = prices
                    .get(symbol.as_str())
                    .filter(|price| !price.is_zero())
                    .map_or(Decimal::ZERO, |price| (notional / price).round_dp(6));
                skipped.push(SkipEntry {
                    symbol: symbol.to_string(),
                    side: "buy".to_owned(),
                    quantity,
                    notional,
                    reason: "below_investment_minimum".to_owned(),
                    detail: sleeve.reason(),
                });
            }
        }
        self.weights = opened.weights;
        (self, skipped)
    }
}

/// The portfolio a spec says its caller evaluated.
#[derive(Debug)]
pub(super) struct NamedPortfolio {
    pub(super) id: String,
    /// `None`: whatever version is current.
    pub(super) version: Option<i64>,
}

impl NamedPortfolio {
    /// Whether a streamed assignment follows this portfolio (at this version).
    fn is_followed_by(&self, assignment: &ResolvedAssignment) -> bool {
        assignment.status == i32::from(AssignmentStatus::Active)
            && assignment.portfolio_id == self.id
            && self
                .version
                .is_none_or(|version| version == assignment.portfolio_version)
    }
}

impl std::fmt::Display for NamedPortfolio {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(version) => write!(formatter, "portfolio {} version {version}", self.id),
            None => write!(formatter, "portfolio {}", self.id),
        }
    }
}

impl Execution {
    /// The account's target from the Target service (resolved flat weights);
    /// `None` when the account has no assignment.
    pub(super) async fn assigned_target(
        &self,
        context: &RequestContext,
        account_id: &str,
    ) -> Result<Option<TargetInfo>, ExecutionError> {
        let mut targets = self
            .assigned_targets(context, &[account_id.to_owned()])
            .await?;
        match targets.remove(account_id) {
            Some(target) => target.map(Some),
            None => Ok(None),
        }
    }

    /// The target the caller already read, or the account's assignment now.
    pub(super) async fn known_or_assigned(
        &self,
        context: &RequestContext,
        account_id: &str,
        known_target: Option<Option<TargetInfo>>,
    ) -> Result<Option<TargetInfo>, ExecutionError> {
        match known_target {
            Some(known) => Ok(known),
            None => self.assigned_target(context, account_id).await,
        }
    }

    /// The targets of many accounts from the Target service, in one stream;
    /// accounts without an assignment are absent. A target that cannot be
    /// used (its portfolio needs adjustment) is an error of that account only.
    pub(super) async fn assigned_targets(
        &self,
        context: &RequestContext,
        account_ids: &[String],
    ) -> Result<HashMap<String, Result<TargetInfo, ExecutionError>>, ExecutionError> {
        let assignments = self.resolved_assignments(context, account_ids).await?;
        Ok(assignments
            .into_iter()
            .map(|assignment| (assignment.account_id.clone(), target_info(assignment)))
            .collect())
    }

    /// The account's target when it still follows the portfolio (and
    /// version) the spec names; `FailedPrecondition` naming both when it
    /// follows another, another version, or none.
    pub(super) async fn named_target(
        &self,
        context: &RequestContext,
        account_id: &str,
        named: &NamedPortfolio,
    ) -> Result<TargetInfo, ExecutionError> {
        let current = self
            .resolved_assignments(context, &[account_id.to_owned()])
            .await?
            .into_iter()
            .find(|assignment| assignment.account_id == account_id);
        match current {
            Some(assignment) if named.is_followed_by(&assignment) => target_info(assignment),
            current => {
                let following = match current {
                    Some(assignment)
                        if assignment.status == i32::from(AssignmentStatus::Active)
                            && !assignment.portfolio_id.is_empty() =>
                    {
                        format!(
                            "portfolio {} version {}",
                            assignment.portfolio_id, assignment.portfolio_version
                        )
                    }
                    _ => "no portfolio".to_owned(),
                };
                Err(ExecutionError::FailedPrecondition(format!(
                    "account {account_id} follows {following} now, not {named} named by the run spec"
                )))
            }
        }
    }

    /// The assignments of many accounts as Target resolves them now, in one
    /// stream; accounts without an assignment are absent.
    pub(super) async fn resolved_assignments(
        &self,
        context: &RequestContext,
        account_ids: &[String],
    ) -> Result<Vec<ResolvedAssignment>, ExecutionError> {
        let mut assignments = Vec::new();
        let Some(channel) = &self.target else {
            return Ok(assignments);
        };
        if account_ids.is_empty() {
            return Ok(assignments);
        }
        let unavailable = |status: tonic::Status| {
            ExecutionError::Unavailable(format!(
                "cannot read the account's target: {}",
                status.message()
            ))
        };
        let call = context.call();
        let mut stream = retry_idempotent(Retry::default(), "StreamAssignments", |_| {
            let mut client = AssignmentServiceClient::new(channel.clone());
            let request = call.request(StreamAssignmentsRequest {
                account_ids: account_ids.to_vec(),
                include_unmonitored: true,
                ..StreamAssignmentsRequest::default()
            });
            async move { client.stream_assignments(request).await }
        })
        .await
        .map_err(unavailable)?
        .into_inner();
        while let Some(message) = stream.message().await.map_err(unavailable)? {
            assignments.extend(message.assignments);
        }
        Ok(assignments)
    }
}

/// A resolved assignment as the target a run trades toward.
pub(super) fn target_info(
    assignment: rebalancer_proto::target::ResolvedAssignment,
) -> Result<TargetInfo, ExecutionError> {
    if assignment.portfolio_status
        == i32::from(rebalancer_proto::target::PortfolioStatus::NeedsAdjustment)
    {
        return Err(ExecutionError::FailedPrecondition(format!(
            "portfolio {} of account {} needs adjustment",
            assignment.portfolio_id, assignment.account_id
        )));
    }
    let weights = weights_from_wire(&assignment.weights)?;
    let mut sleeve_minimums = Vec::with_capacity(assignment.sleeve_minimums.len());
    for sleeve in &assignment.sleeve_minimums {
        let (Some(percent), Some(investment_minimum)) = (
            percent_text(&sleeve.percent),
            percent_text(&sleeve.investment_minimum),
        ) else {
            return Err(ExecutionError::Unavailable(format!(
                "sleeve {} of the target is malformed",
                sleeve.portfolio_id
            )));
        };
        sleeve_minimums.push(SleeveMinimum {
            portfolio_id: sleeve.portfolio_id.clone(),
            percent,
            investment_minimum,
            weights: weights_from_wire(&sleeve.weights)?,
            within: sleeve.within.clone(),
        });
    }
    let assigned =
        assignment.status == i32::from(rebalancer_proto::target::AssignmentStatus::Active);
    Ok(TargetInfo {
        weights,
        portfolio_id: Some(assignment.portfolio_id).filter(|id| assigned && !id.is_empty()),
        portfolio_version: assigned.then_some(assignment.portfolio_version),
        approval_mode: if assignment.approval_mode
            == i32::from(rebalancer_proto::common::ApprovalMode::Manual)
        {
            ApprovalMode::Manual
        } else {
            ApprovalMode::Auto
        },
        minimum_order_notional: percent_text(&assignment.minimum_order_notional),
        whole_shares_only: assignment.order_sizing
            == i32::from(rebalancer_proto::target::OrderSizing::WholeShares),
        sleeve_minimums,
        asset_rules: assignment
            .asset_rules
            .iter()
            .filter_map(asset_rule_from_wire)
            .collect(),
        band_edge: (rebalance_to_input(assignment.rebalance_to) == Some(RebalanceTo::BandEdge))
            .then(|| {
                assignment
                    .rebalance_conditions
                    .iter()
                    .filter_map(condition_from_wire)
                    .collect()
            }),
    })
}

fn weights_from_wire(
    wire: &[rebalancer_proto::common::Weight],
) -> Result<Vec<Weight>, ExecutionError> {
    let mut weights = Vec::with_capacity(wire.len());
    for weight in wire {
        let percent = percent_text(&weight.percent).ok_or_else(|| {
            ExecutionError::Unavailable(format!(
                "target weight {:?} is not a number",
                weight.percent
            ))
        })?;
        if weight.symbol.is_empty() {
            weights.push(Weight::cash(percent));
        } else {
            let symbol = Symbol::parse(&weight.symbol).map_err(|_| {
                ExecutionError::Unavailable(format!(
                    "target symbol {:?} is malformed",
                    weight.symbol
                ))
            })?;
            weights.push(Weight::asset(symbol, percent));
        }
    }
    Ok(weights)
}

fn percent_text(value: &str) -> Option<Decimal> {
    parse_decimal(value).ok()
}

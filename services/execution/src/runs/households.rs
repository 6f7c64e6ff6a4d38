//! A household's rebalance: each member account planned toward its located
//! target (asset location across the household), with its own cash,
//! restrictions and lots; the wash-sale guard looks across the household.

use rebalancer_domain::portfolio::{Weight, WeightInput, WeightKind};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, RunKind};
use rebalancer_kit::RequestContext;

use crate::Execution;
use crate::error::ExecutionError;
use crate::runs::RunSpecInput;
use crate::runs::store::RunRecord;
use crate::store::IdempotencyClaim;

fn weight_input(weight: &Weight) -> WeightInput {
    WeightInput {
        kind: Some(if weight.symbol().is_some() {
            WeightKind::Asset
        } else {
            WeightKind::Cash
        }),
        symbol: weight.symbol().map(ToString::to_string).unwrap_or_default(),
        percent: weight.percent.to_string(),
        portfolio_id: String::new(),
    }
}

impl Execution {
    /// Each member's spec: a full rebalance toward its located target.
    async fn household_specs(
        &self,
        context: &RequestContext,
        household_id: &str,
        approval_mode: Option<ApprovalMode>,
        allow_wash_sales: bool,
    ) -> Result<Vec<RunSpecInput>, ExecutionError> {
        let view = self.household(context, household_id).await?;
        Ok(view
            .members
            .iter()
            .map(|member| RunSpecInput {
                account_id: member.account_id.clone(),
                kind: Some(RunKind::FullRebalance),
                weights: member.located.iter().map(weight_input).collect(),
                initiated_from: Some(InitiatedFrom::Api),
                approval_mode,
                reason: format!("household {household_id}: rebalance with asset location"),
                allow_wash_sales,
                ..RunSpecInput::default()
            })
            .collect())
    }

    /// Plans every member's run without storing anything.
    ///
    /// # Errors
    /// `NotFound` for an unknown household; as [`Execution::preview_run`].
    #[tracing::instrument(name = "preview_household_rebalance", skip_all, fields(tenant = %context.tenant, household_id = %household_id))]
    pub async fn preview_household_rebalance(
        &self,
        context: &RequestContext,
        household_id: &str,
        allow_wash_sales: bool,
    ) -> Result<Vec<RunRecord>, ExecutionError> {
        let specs = self
            .household_specs(context, household_id, None, allow_wash_sales)
            .await?;
        let mut plans = Vec::with_capacity(specs.len());
        for spec in specs {
            plans.push(self.plan_run(context, spec, None, None).await?);
        }
        Ok(plans)
    }

    /// Creates every member's run, each under its own claim derived from
    /// `claim` (a retry replays those created and creates the rest).
    ///
    /// # Errors
    /// As [`Execution::create_run`].
    #[tracing::instrument(name = "create_household_rebalance", skip_all, fields(tenant = %context.tenant, household_id = %household_id))]
    pub async fn create_household_rebalance(
        &self,
        context: &RequestContext,
        household_id: &str,
        claim: &IdempotencyClaim,
        approval_mode: Option<ApprovalMode>,
        allow_wash_sales: bool,
    ) -> Result<Vec<RunRecord>, ExecutionError> {
        let specs = self
            .household_specs(context, household_id, approval_mode, allow_wash_sales)
            .await?;
        let mut runs = Vec::with_capacity(specs.len());
        for spec in specs {
            let member_claim = IdempotencyClaim {
                operation: claim.operation,
                key: format!("{}/{}", claim.key, spec.account_id),
                fingerprint: claim.fingerprint.clone(),
            };
            let run = self
                .create_run_with_target(context, spec, Some(member_claim), None, None)
                .await?
                .into_inner();
            runs.push(run);
        }
        Ok(runs)
    }
}

//! Planning a run: the account from the book, prices and asset flags from
//! market data, the target from the Target service (or one-off weights),
//! then the domain's trade generation. Nothing here writes.
//!
//! The target comes from [`super::targets`]: a spec that names the portfolio
//! (and version) its caller evaluated is planned only while the account
//! still follows exactly that.

use std::collections::{HashMap, HashSet};

use chrono::TimeDelta;
use rebalancer_domain::Violations;
use rebalancer_domain::band_edge::band_edge_weights;
use rebalancer_domain::calendar;
use rebalancer_domain::decimal::{parse_decimal, significant_scale};
use rebalancer_domain::ids::external_id_problem;
use rebalancer_domain::portfolio::{TargetInput, Weight, WeightTarget};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::tax::TaxView;
use rebalancer_domain::trades::{self, AccountSnapshot, Holding, PlanInput, PlanKind, TradeAsset};
use rebalancer_domain::{Symbol, account};
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;

use super::app::RunSpecInput;
use super::targets::{NamedPortfolio, TargetInfo};
use crate::Execution;
use crate::error::ExecutionError;
use crate::runs::store::{
    AdjustmentEntry, DriftEntry, OrderRecord, RunRecord, SkipEntry, TargetWeight,
};

const SPEC: &str = "spec";
/// The latest a caller may let a plan live.
const MAX_EXPIRY: TimeDelta = TimeDelta::days(7);

impl Execution {
    /// Plans a run without storing it.
    ///
    /// `known_target` is the account's assignment when the caller already
    /// read it (`Some(None)`: it has none); `None` reads it now. A spec that
    /// names a portfolio always reads the assignment now, to check it.
    pub(super) async fn plan_run(
        &self,
        context: &RequestContext,
        spec: RunSpecInput,
        batch_id: Option<String>,
        known_target: Option<Option<TargetInfo>>,
    ) -> Result<RunRecord, ExecutionError> {
        let mut violations = Violations::new();
        let at = |field: &str| format!("{SPEC}.{field}");
        if let Some(problem) = external_id_problem(&spec.account_id) {
            violations.add(at("account_id"), problem);
        }
        let named = if spec.portfolio_id.is_empty() {
            None
        } else {
            if let Some(problem) = external_id_problem(&spec.portfolio_id) {
                violations.add(at("portfolio_id"), problem);
            }
            if !spec.weights.is_empty() {
                violations.add(
                    at("portfolio_id"),
                    "cannot be combined with one-off weights",
                );
            }
            Some(NamedPortfolio {
                id: spec.portfolio_id.clone(),
                version: (spec.portfolio_version > 0).then_some(spec.portfolio_version),
            })
        };
        if spec.portfolio_version < 0 {
            violations.add(at("portfolio_version"), "must be 0 or more");
        } else if spec.portfolio_version > 0 && named.is_none() {
            violations.add(at("portfolio_version"), "needs a portfolio_id");
        }
        let Some(kind) = spec.kind else {
            violations.add(
                at("type"),
                "is required (full_rebalance, invest_cash or liquidation)",
            );
            return Err(violations.into());
        };
        let amount = if spec.amount.is_empty() {
            None
        } else {
            match rebalancer_domain::cash::parse_amount(&spec.amount) {
                Ok(amount) if kind == RunKind::Liquidation => Some(amount),
                Ok(_) => {
                    violations.add(at("amount"), "is only for liquidations");
                    None
                }
                Err(problem) => {
                    violations.add(at("amount"), problem);
                    None
                }
            }
        };
        let minimum = if spec.minimum_order_notional.is_empty() {
            None
        } else {
            match parse_decimal(&spec.minimum_order_notional) {
                Ok(value)
                    if value >= Decimal::ZERO
                        && significant_scale(value) <= 2
                        && value <= rebalancer_domain::account::MAX_CASH =>
                {
                    Some(value)
                }
                _ => {
                    violations.add(
                        at("minimum_order_notional"),
                        "must be between 0 and 1000000000000 with at most 2 decimals",
                    );
                    None
                }
            }
        };
        let manual = if spec.weights.is_empty() {
            None
        } else {
            let input = TargetInput {
                weights: spec.weights.clone(),
                ..TargetInput::default()
            };
            match input.validate() {
                Ok(target) => {
                    for (index, weight) in target.weights.iter().enumerate() {
                        if matches!(weight.target, WeightTarget::Portfolio(_)) {
                            violations.add(
                                at(&format!("weights[{index}].type")),
                                "one-off weights take cash and assets only",
                            );
                        }
                    }
                    Some(target.weights)
                }
                Err(problems) => {
                    violations.extend_prefixed(SPEC, problems);
                    None
                }
            }
        };
        let now = self.clock.now();
        let expires_at = match spec.expires_at {
            None => None,
            Some(Err(())) => {
                violations.add(at("expires_at"), "is not a valid time");
                None
            }
            Some(Ok(expires)) if expires <= now => {
                violations.add(at("expires_at"), "must be in the future");
                None
            }
            Some(Ok(expires)) if expires > now + MAX_EXPIRY => {
                violations.add(at("expires_at"), "must be within 7 days");
                None
            }
            Some(Ok(expires)) => Some(expires),
        };
        let algorithm = spec.algorithm.clone().validate(&at("algorithm"));
        let algorithm = match algorithm {
            Ok(algorithm) => Some(algorithm),
            Err(problems) => {
                for violation in problems {
                    violations.add(violation.field, violation.description);
                }
                None
            }
        };
        if !violations.is_empty() {
            return Err(violations.into());
        }
        let algorithm = algorithm.unwrap_or_default();
        // By default a plan lives until the close of the day it can trade.
        let expires_at = expires_at.unwrap_or_else(|| {
            if algorithm.extended_hours {
                calendar::extended_or_next_session(now).close + calendar::AFTER_HOURS
            } else {
                calendar::close_of_trading_day(now)
            }
        });
        let account_record = self
            .store
            .get_account(&context.tenant, &spec.account_id)
            .await?
            .ok_or_else(|| {
                ExecutionError::NotFound(format!("account {} not found", spec.account_id))
            })?;
        if account_record.status == account::AccountStatus::Closed {
            return Err(ExecutionError::FailedPrecondition(format!(
                "account {} is closed",
                spec.account_id
            )));
        }
        // As the monitor does: a pattern day trader is not rebalanced (a
        // rebalance may sell what was bought today); raising cash is allowed.
        if kind != RunKind::Liquidation
            && account_record
                .restrictions
                .contains(&account::Restriction::PatternDayTrader)
        {
            return Err(ExecutionError::FailedPrecondition(format!(
                "account {} is flagged pattern day trader: only liquidations may run until the flag is cleared",
                spec.account_id
            )));
        }
        let mut amount = amount;
        let mut limits = account_record.limits();
        let cash_movement_id = Some(spec.cash_movement_id.clone()).filter(|id| !id.is_empty());
        if let Some(movement_id) = &cash_movement_id {
            let movement = self
                .store
                .get_cash_movement(&context.tenant, movement_id)
                .await?
                .ok_or_else(|| {
                    ExecutionError::NotFound(format!("cash movement {movement_id} not found"))
                })?;
            if movement.account_id != spec.account_id {
                return Err(
                    Violations::one(at("cash_movement_id"), "belongs to another account").into(),
                );
            }
            if kind == RunKind::Liquidation && amount.is_none() {
                amount = Some(movement.amount);
            }
            // The cash this run raises is for this withdrawal: what is held
            // back for it is what the plan may count on.
            limits = super::checks::limits_for_run(&account_record, Some(&movement));
        }
        // A spec naming a portfolio has the assignment read, and checked, now.
        let known_target = match (&manual, &named) {
            (None, Some(named)) => Some(Some(
                self.named_target(context, &spec.account_id, named).await?,
            )),
            _ => known_target,
        };
        let target = match manual {
            Some(weights) => TargetInfo {
                weights,
                portfolio_id: None,
                portfolio_version: None,
                approval_mode: ApprovalMode::Auto,
                minimum_order_notional: None,
                whole_shares_only: false,
                sleeve_minimums: Vec::new(),
                band_edge: None,
                asset_rules: Vec::new(),
            },
            None => match self
                .known_or_assigned(context, &spec.account_id, known_target)
                .await?
            {
                Some(target) => target,
                None if kind == RunKind::Liquidation => TargetInfo {
                    weights: vec![Weight::cash(Decimal::ONE_HUNDRED)],
                    portfolio_id: None,
                    portfolio_version: None,
                    approval_mode: ApprovalMode::Auto,
                    minimum_order_notional: None,
                    whole_shares_only: false,
                    sleeve_minimums: Vec::new(),
                    band_edge: None,
                    asset_rules: Vec::new(),
                },
                None => {
                    return Err(ExecutionError::FailedPrecondition(format!(
                        "account {} has no target: assign it to a portfolio or pass one-off weights",
                        spec.account_id
                    )));
                }
            },
        };
        let minimum_order_notional = minimum
            .or(target.minimum_order_notional)
            .unwrap_or(rebalancer_domain::portfolio::DEFAULT_MINIMUM_ORDER_NOTIONAL);

        // Market view of every symbol involved.
        let mut symbols: Vec<String> = account_record
            .positions
            .iter()
            .map(|p| p.symbol.clone())
            .collect();
        symbols.extend(
            target
                .weights
                .iter()
                .filter_map(|w| w.symbol().map(ToString::to_string)),
        );
        // Substitutes may take a model asset's place: price them too.
        symbols.extend(
            account_record
                .preferences
                .substitutes
                .iter()
                .map(|pair| pair.held_symbol.clone()),
        );
        let unique: HashSet<String> = symbols.drain(..).collect();
        let symbols: Vec<String> = unique.into_iter().collect();
        let assets = self.assets_by_symbol(&symbols).await?;
        let prices = self.prices(&symbols).await?;
        let mut trade_assets = HashMap::new();
        for (symbol, asset) in &assets {
            let (Some(price), Ok(parsed)) = (prices.get(symbol), Symbol::parse(symbol)) else {
                continue;
            };
            trade_assets.insert(
                parsed.clone(),
                TradeAsset {
                    symbol: parsed,
                    price: *price,
                    tradable: asset.active && asset.tradable,
                    fractionable: asset.fractionable,
                },
            );
        }
        let holdings: Vec<Holding> = account_record
            .positions
            .iter()
            .filter_map(|p| {
                Symbol::parse(&p.symbol).ok().map(|symbol| Holding {
                    symbol,
                    quantity: p.quantity,
                })
            })
            .collect();
        // Cash held back for withdrawals is neither invested nor drift.
        let cash = limits.free_cash();
        let valuation = rebalancer_domain::holdings::value(
            cash,
            account_record
                .positions
                .iter()
                .map(|p| (p.symbol.as_str(), p.quantity)),
            &prices,
        );
        let (mut target, unopened_sleeves) =
            target.open_sleeves(valuation.equity, &holdings, &prices);
        // The account's own target: substitutes in their model asset's slot,
        // cash at least the reserve.
        let preferences = &account_record.preferences;
        if !preferences.is_empty() {
            target.weights = preferences.apply(&target.weights, valuation.equity);
        }
        // To the band's edge: only what is outside its band moves, to the edge.
        if let (RunKind::FullRebalance, Some(conditions)) = (kind, &target.band_edge) {
            let values: HashMap<Symbol, Decimal> = valuation
                .positions
                .iter()
                .filter_map(|position| {
                    Some((Symbol::parse(&position.symbol).ok()?, position.value?))
                })
                .collect();
            let conditions = preferences.substitute_conditions(conditions);
            target.weights = band_edge_weights(&target.weights, &conditions, cash, &values);
        }
        let mut snapshot = AccountSnapshot {
            cash,
            holdings,
            buys_blocked: account_record.restrictions.iter().any(|r| r.blocks_buys())
                || valuation.leverage_exceeded(),
            sells_blocked: account_record.restrictions.iter().any(|r| r.blocks_sells()),
            restricted: preferences.symbol_restrictions(),
            sell_limits: Vec::new(),
            buy_blocks: Vec::new(),
        };
        // The wash-sale guard: across the household, unless overridden.
        let today = calendar::exchange_date(now);
        let wash = if spec.allow_wash_sales {
            None
        } else {
            Some(self.wash_guard(context, &account_record, today).await?)
        };
        if let Some(wash) = &wash
            && kind != RunKind::Liquidation
        {
            snapshot.buy_blocks = wash.buy_blocks(trade_assets.keys());
        }
        let plan_kind = match kind {
            RunKind::FullRebalance => PlanKind::FullRebalance,
            RunKind::InvestCash => PlanKind::InvestCash,
            RunKind::Liquidation => PlanKind::Liquidation { amount },
        };
        let plan_with = |snapshot: &AccountSnapshot| {
            trades::plan(&PlanInput {
                kind: plan_kind,
                account: snapshot,
                target: &target.weights,
                assets: &trade_assets,
                minimum_order_notional,
                whole_shares_only: target.whole_shares_only,
                asset_rules: &target.asset_rules,
            })
        };
        let mut plan = plan_with(&snapshot);
        // Sales close lots: read them, hold back what the tax controls
        // refuse (and the buys it would pay for), estimate the gains.
        let sells = plan.orders.iter().any(|o| o.side == trades::Side::Sell);
        let tax_inputs = if sells || !account_record.tax.is_default() {
            Some(self.tax_inputs(context, &account_record, today).await?)
        } else {
            None
        };
        let frozen_losses = match (&wash, &tax_inputs) {
            (Some(wash), Some(inputs)) if kind == RunKind::FullRebalance => {
                wash.frozen_losses(&account_record.id, &inputs.lots, |symbol| {
                    trade_assets.get(symbol).map(|asset| asset.price)
                })
            }
            _ => HashMap::new(),
        };
        let tax_view = tax_inputs.as_ref().map(|inputs| TaxView {
            settings: &account_record.tax,
            lots: &inputs.lots,
            realized_this_year: inputs.realized_this_year,
            today: inputs.today,
            frozen_losses: &frozen_losses,
        });
        if let (RunKind::FullRebalance, Some(view)) = (kind, &tax_view) {
            let limits = view.sell_limits(&plan.orders);
            if !limits.is_empty() {
                snapshot.sell_limits = limits;
                plan = plan_with(&snapshot);
            }
        }
        // Drift alone does not pay a taxable account's tax.
        if kind == RunKind::FullRebalance {
            rebalancer_domain::tax::hold_within_tolerance(&account_record.tax, &mut plan);
        }

        let id = new_id();
        let approval_mode = spec.approval_mode.unwrap_or(target.approval_mode);
        let orders: Vec<OrderRecord> = plan
            .orders
            .iter()
            .enumerate()
            .map(|(position, order)| {
                let whole_shares =
                    order.notional.is_none() && order.quantity.fract().is_zero() && {
                        let fractional = trade_assets
                            .get(&order.symbol)
                            .is_some_and(|a| a.fractionable);
                        !fractional || target.whole_shares_only
                    };
                OrderRecord {
                    id: new_id(),
                    run_id: id.clone(),
                    account_id: spec.account_id.clone(),
                    position: i32::try_from(position).unwrap_or(i32::MAX),
                    symbol: order.symbol.to_string(),
                    side: order.side,
                    quantity: order.quantity,
                    notional: order.notional,
                    whole_shares,
                    estimated_price: order.price,
                    status: OrderStatus::New,
                    filled_quantity: Decimal::ZERO,
                    filled_notional: Decimal::ZERO,
                    filled_amount: Decimal::ZERO,
                    client_order_id: format!("{id}-{position}"),
                    block_order_id: None,
                    excluded: false,
                    reason: String::new(),
                    created_at: now,
                    updated_at: now,
                }
            })
            .collect();
        let tax = tax_view
            .as_ref()
            .and_then(|view| super::tax::run_tax(&account_record, view, &plan.orders, &orders));
        let status = if orders.is_empty() {
            if plan.skipped.is_empty() {
                RunStatus::CompletedSuccess
            } else {
                RunStatus::CompletedAdjusted
            }
        } else if approval_mode == ApprovalMode::Manual {
            RunStatus::Proposed
        } else {
            RunStatus::Queued
        };
        let reason = if spec.reason.is_empty() {
            match kind {
                RunKind::FullRebalance => "rebalance to target".to_owned(),
                RunKind::InvestCash => "invest cash above the cash target".to_owned(),
                RunKind::Liquidation => match amount {
                    Some(amount) => format!("raise {amount} for a withdrawal"),
                    None => "liquidate everything".to_owned(),
                },
            }
        } else {
            spec.reason.clone()
        };
        let reason = if spec.allow_wash_sales {
            format!("{reason} (wash-sale guard overridden)")
        } else {
            reason
        };
        let run = RunRecord {
            id,
            account_id: spec.account_id.clone(),
            kind,
            status,
            initiated_from: spec.initiated_from.unwrap_or(InitiatedFrom::Api),
            reason,
            amount,
            portfolio_id: target.portfolio_id.clone(),
            portfolio_version: target.portfolio_version,
            approval_mode,
            batch_id,
            cash_movement_id,
            transmission_id: None,
            cancel_requested: false,
            equity: plan.equity,
            cash_before: plan.cash_before,
            minimum_order_notional,
            weights: target
                .weights
                .iter()
                .map(|w| TargetWeight {
                    symbol: w.symbol().map(ToString::to_string),
                    percent: w.percent,
                })
                .collect(),
            algorithm,
            drift: plan
                .drift
                .iter()
                .map(|d| DriftEntry {
                    symbol: d.symbol.as_ref().map(ToString::to_string),
                    target_weight: d.target_weight,
                    current_weight: d.current_weight,
                    drift: d.drift,
                    expected_weight: d.expected_weight,
                    current_value: d.current_value,
                    expected_value: d.expected_value,
                })
                .collect(),
            skipped: unopened_sleeves
                .into_iter()
                .chain(plan.skipped.iter().map(skip_entry))
                .collect(),
            adjustments: vec![AdjustmentEntry {
                actor: context.actor.clone(),
                at: now,
                order_id: None,
                action: "created".to_owned(),
                details: format!(
                    "{} order(s), {} skipped",
                    plan.orders.len(),
                    plan.skipped.len()
                ),
            }],
            approved_by: None,
            revision: 1,
            created_at: now,
            updated_at: now,
            approved_at: None,
            started_at: None,
            completed_at: status.is_terminal().then_some(now),
            canceled_at: None,
            expires_at: Some(expires_at),
            broker: None,
            trace_context: rebalancer_kit::trace::current_traceparent(),
            tax,
            orders,
        };
        Ok(run)
    }
}

fn skip_entry(skipped: &trades::SkippedTrade) -> SkipEntry {
    let reason = match skipped.reason {
        trades::SkipReason::BelowMinimumNotional => "below_minimum_notional",
        trades::SkipReason::BelowMinimumDrift => "below_minimum_drift",
        trades::SkipReason::InsufficientCash => "insufficient_cash",
        trades::SkipReason::NotTradable => "not_tradable",
        trades::SkipReason::Restricted => "restricted",
        trades::SkipReason::RoundsToZero => "rounds_to_zero",
        trades::SkipReason::NoPrice => "no_price",
        trades::SkipReason::Tax => "tax",
        trades::SkipReason::WashSale => "wash_sale",
    };
    SkipEntry {
        symbol: skipped.symbol.to_string(),
        side: skipped.side.as_str().to_owned(),
        quantity: skipped.quantity,
        notional: skipped.notional,
        reason: reason.to_owned(),
        detail: skipped.detail.clone(),
    }
}

//! Conversions between the Monitor's stored records and its wire types.

use rebalancer_domain::evaluation::{Flag, weight_of};
use rebalancer_domain::run::RunKind;
use rebalancer_kit::wire::{decimal_text, money_text, timestamp};
use rebalancer_proto::common::RunType;
use rebalancer_proto::monitor as pb;
use rust_decimal::Decimal;

use crate::store::{CycleRecord, CycleState, CycleTrigger, EvaluationRecord, TickerRecord};

#[must_use]
pub fn flag_to_wire(flag: Flag) -> pb::EvaluationStatus {
    match flag {
        Flag::OutOfTolerance => pb::EvaluationStatus::OutOfTolerance,
        Flag::InsideTolerance => pb::EvaluationStatus::InsideTolerance,
        Flag::UnableToCheck => pb::EvaluationStatus::UnableToCheck,
        Flag::NeedsAttention => pb::EvaluationStatus::NeedsAttention,
        Flag::NewDeposit => pb::EvaluationStatus::NewDeposit,
        Flag::NewWithdrawal => pb::EvaluationStatus::NewWithdrawal,
        Flag::Liquidation => pb::EvaluationStatus::Liquidation,
        Flag::NoPortfolioAssigned => pb::EvaluationStatus::NoPortfolioAssigned,
        Flag::RebalancingOff => pb::EvaluationStatus::RebalancingOff,
    }
}

/// `None` for unspecified or unknown values.
#[must_use]
pub fn flag_from_wire(value: i32) -> Option<Flag> {
    match pb::EvaluationStatus::try_from(value).ok()? {
        pb::EvaluationStatus::Unspecified => None,
        pb::EvaluationStatus::OutOfTolerance => Some(Flag::OutOfTolerance),
        pb::EvaluationStatus::InsideTolerance => Some(Flag::InsideTolerance),
        pb::EvaluationStatus::UnableToCheck => Some(Flag::UnableToCheck),
        pb::EvaluationStatus::NeedsAttention => Some(Flag::NeedsAttention),
        pb::EvaluationStatus::NewDeposit => Some(Flag::NewDeposit),
        pb::EvaluationStatus::NewWithdrawal => Some(Flag::NewWithdrawal),
        pb::EvaluationStatus::Liquidation => Some(Flag::Liquidation),
        pb::EvaluationStatus::NoPortfolioAssigned => Some(Flag::NoPortfolioAssigned),
        pb::EvaluationStatus::RebalancingOff => Some(Flag::RebalancingOff),
    }
}

fn state_to_wire(state: CycleState) -> pb::CycleState {
    match state {
        CycleState::Pending => pb::CycleState::Pending,
        CycleState::Running => pb::CycleState::Running,
        CycleState::Completed => pb::CycleState::Completed,
        CycleState::Failed => pb::CycleState::Failed,
    }
}

fn trigger_to_wire(trigger: CycleTrigger) -> pb::CycleTrigger {
    match trigger {
        CycleTrigger::Scheduled => pb::CycleTrigger::Scheduled,
        CycleTrigger::OnDemand => pb::CycleTrigger::OnDemand,
    }
}

/// Counts by flag, in the order of [`Flag::ALL`].
#[must_use]
pub fn counts_to_wire(counts: impl IntoIterator<Item = (Flag, i64)>) -> Vec<pb::StatusCount> {
    let mut counts: Vec<(Flag, i64)> = counts.into_iter().collect();
    counts.sort_by_key(|(flag, _)| Flag::ALL.iter().position(|f| f == flag));
    counts
        .into_iter()
        .map(|(flag, count)| pb::StatusCount {
            status: flag_to_wire(flag).into(),
            count,
        })
        .collect()
}

#[must_use]
pub fn cycle_to_wire(cycle: &CycleRecord) -> pb::Cycle {
    pb::Cycle {
        id: cycle.id.clone(),
        trading_date: cycle.trading_date.to_string(),
        trigger: trigger_to_wire(cycle.trigger).into(),
        state: state_to_wire(cycle.state).into(),
        dry_run: cycle.dry_run,
        portfolio_id: cycle.portfolio_id.clone().unwrap_or_default(),
        account_ids_count: i64::try_from(cycle.account_ids.len()).unwrap_or(i64::MAX),
        shards_total: cycle.shards_total,
        shards_done: cycle.shards_done,
        accounts_evaluated: cycle.accounts_evaluated,
        status_counts: counts_to_wire(
            cycle
                .status_counts
                .iter()
                .filter_map(|(name, count)| Flag::parse(name).map(|flag| (flag, *count))),
        ),
        runs_created: cycle.runs_created,
        errors: cycle.errors,
        created_at: Some(timestamp(cycle.created_at)),
        started_at: cycle.started_at.map(timestamp),
        completed_at: cycle.completed_at.map(timestamp),
        error: cycle.error.clone(),
    }
}

fn ticker_to_wire(ticker: &TickerRecord, equity: Decimal) -> pb::TickerDrift {
    let current = weight_of(ticker.value, equity);
    pb::TickerDrift {
        symbol: ticker.symbol.clone().unwrap_or_default(),
        current_weight: decimal_text(current),
        target_weight: decimal_text(ticker.target_weight),
        drift: decimal_text(current - ticker.target_weight),
        band_lower: ticker.band_lower.map(decimal_text).unwrap_or_default(),
        band_upper: ticker.band_upper.map(decimal_text).unwrap_or_default(),
        breached: ticker.breached,
        market_value: money_text(ticker.value),
    }
}

#[must_use]
pub fn evaluation_to_wire(evaluation: &EvaluationRecord) -> pb::Evaluation {
    let run_type = match evaluation.run_type.as_deref().and_then(RunKind::parse) {
        Some(RunKind::FullRebalance) => RunType::FullRebalance,
        Some(RunKind::InvestCash) => RunType::InvestCash,
        Some(RunKind::Liquidation) => RunType::Liquidation,
        None => RunType::Unspecified,
    };
    pb::Evaluation {
        account_id: evaluation.account_id.clone(),
        cycle_id: evaluation.cycle_id.clone(),
        status: flag_to_wire(evaluation.flag).into(),
        reason: evaluation.reason.clone(),
        portfolio_id: evaluation.portfolio_id.clone().unwrap_or_default(),
        portfolio_version: evaluation.portfolio_version.unwrap_or_default(),
        equity: money_text(evaluation.equity),
        cash: money_text(evaluation.cash),
        max_drift: decimal_text(evaluation.max_drift),
        total_drift: decimal_text(evaluation.total_drift),
        tickers: evaluation
            .tickers
            .iter()
            .map(|t| ticker_to_wire(t, evaluation.equity))
            .collect(),
        missing: evaluation.missing.clone(),
        run_id: evaluation.run_id.clone().unwrap_or_default(),
        run_type: run_type.into(),
        run_note: evaluation.run_note.clone(),
        evaluated_at: Some(timestamp(evaluation.evaluated_at)),
    }
}

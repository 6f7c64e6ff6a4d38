//! Wire ↔ domain conversions of runs, batches, orders, blocks and algorithms.

use rebalancer_domain::algo::{Algorithm, AlgorithmInput, AlgorithmKind};
use rebalancer_domain::run::{ApprovalMode, InitiatedFrom, OrderStatus, RunKind, RunStatus};
use rebalancer_domain::trades::Side;
use rebalancer_kit::wire::{datetime, decimal_text, money_text, timestamp, weight_input};
use rebalancer_proto::common;
use rebalancer_proto::execution as pb;
use rust_decimal::Decimal;

use crate::book::convert::{lot_method_to_wire, tax_status_to_wire, term_to_wire};
use crate::runs::store::{
    BatchStatus, DriftEntry, LotClose, OrderRecord, RunRecord, RunTax, SkipEntry,
};
use crate::runs::{BatchView, OrderAdjustmentInput, RunSpecInput, TickerTotal};

#[must_use]
pub fn run_kind_from_wire(value: i32) -> Option<RunKind> {
    match common::RunType::try_from(value) {
        Ok(common::RunType::FullRebalance) => Some(RunKind::FullRebalance),
        Ok(common::RunType::InvestCash) => Some(RunKind::InvestCash),
        Ok(common::RunType::Liquidation) => Some(RunKind::Liquidation),
        Ok(common::RunType::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn run_kind_to_wire(kind: RunKind) -> common::RunType {
    match kind {
        RunKind::FullRebalance => common::RunType::FullRebalance,
        RunKind::InvestCash => common::RunType::InvestCash,
        RunKind::Liquidation => common::RunType::Liquidation,
    }
}

#[must_use]
pub fn initiated_from_wire(value: i32) -> Option<InitiatedFrom> {
    match common::InitiatedFrom::try_from(value) {
        Ok(common::InitiatedFrom::System) => Some(InitiatedFrom::System),
        Ok(common::InitiatedFrom::Api) => Some(InitiatedFrom::Api),
        Ok(common::InitiatedFrom::User) => Some(InitiatedFrom::User),
        Ok(common::InitiatedFrom::Unspecified) | Err(_) => None,
    }
}

fn initiated_to_wire(value: InitiatedFrom) -> common::InitiatedFrom {
    match value {
        InitiatedFrom::System => common::InitiatedFrom::System,
        InitiatedFrom::Api => common::InitiatedFrom::Api,
        InitiatedFrom::User => common::InitiatedFrom::User,
    }
}

#[must_use]
pub fn approval_mode_from_wire(value: i32) -> Option<ApprovalMode> {
    match common::ApprovalMode::try_from(value) {
        Ok(common::ApprovalMode::Auto) => Some(ApprovalMode::Auto),
        Ok(common::ApprovalMode::Manual) => Some(ApprovalMode::Manual),
        Ok(common::ApprovalMode::Unspecified) | Err(_) => None,
    }
}

fn approval_mode_to_wire(mode: ApprovalMode) -> common::ApprovalMode {
    match mode {
        ApprovalMode::Auto => common::ApprovalMode::Auto,
        ApprovalMode::Manual => common::ApprovalMode::Manual,
    }
}

#[must_use]
pub fn run_status_to_wire(status: RunStatus) -> pb::RunStatus {
    match status {
        RunStatus::Proposed => pb::RunStatus::Proposed,
        RunStatus::Queued => pb::RunStatus::Queued,
        RunStatus::InProgress => pb::RunStatus::InProgress,
        RunStatus::CompletedSuccess => pb::RunStatus::CompletedSuccess,
        RunStatus::CompletedAdjusted => pb::RunStatus::CompletedAdjusted,
        RunStatus::Error => pb::RunStatus::Error,
        RunStatus::Timeout => pb::RunStatus::Timeout,
        RunStatus::Canceled => pb::RunStatus::Canceled,
        RunStatus::CanceledMidRun => pb::RunStatus::CanceledMidRun,
    }
}

#[must_use]
pub fn run_status_from_wire(value: i32) -> Option<RunStatus> {
    match pb::RunStatus::try_from(value) {
        Ok(pb::RunStatus::Proposed) => Some(RunStatus::Proposed),
        Ok(pb::RunStatus::Queued) => Some(RunStatus::Queued),
        Ok(pb::RunStatus::InProgress) => Some(RunStatus::InProgress),
        Ok(pb::RunStatus::CompletedSuccess) => Some(RunStatus::CompletedSuccess),
        Ok(pb::RunStatus::CompletedAdjusted) => Some(RunStatus::CompletedAdjusted),
        Ok(pb::RunStatus::Error) => Some(RunStatus::Error),
        Ok(pb::RunStatus::Timeout) => Some(RunStatus::Timeout),
        Ok(pb::RunStatus::Canceled) => Some(RunStatus::Canceled),
        Ok(pb::RunStatus::CanceledMidRun) => Some(RunStatus::CanceledMidRun),
        Ok(pb::RunStatus::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn order_status_to_wire(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::New => pb::OrderStatus::New,
        OrderStatus::Submitted => pb::OrderStatus::Submitted,
        OrderStatus::PartiallyFilled => pb::OrderStatus::PartiallyFilled,
        OrderStatus::Filled => pb::OrderStatus::Filled,
        OrderStatus::Canceled => pb::OrderStatus::Canceled,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
        OrderStatus::Expired => pb::OrderStatus::Expired,
    }
}

#[must_use]
pub fn order_status_from_wire(value: i32) -> Option<OrderStatus> {
    match pb::OrderStatus::try_from(value) {
        Ok(pb::OrderStatus::New) => Some(OrderStatus::New),
        Ok(pb::OrderStatus::Submitted) => Some(OrderStatus::Submitted),
        Ok(pb::OrderStatus::PartiallyFilled) => Some(OrderStatus::PartiallyFilled),
        Ok(pb::OrderStatus::Filled) => Some(OrderStatus::Filled),
        Ok(pb::OrderStatus::Canceled) => Some(OrderStatus::Canceled),
        Ok(pb::OrderStatus::Rejected) => Some(OrderStatus::Rejected),
        Ok(pb::OrderStatus::Expired) => Some(OrderStatus::Expired),
        Ok(pb::OrderStatus::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn side_to_wire(side: Side) -> pb::OrderSide {
    match side {
        Side::Buy => pb::OrderSide::Buy,
        Side::Sell => pb::OrderSide::Sell,
    }
}

/// An algorithm as sent, for validation.
#[must_use]
pub fn algorithm_input(algorithm: Option<&pb::ExecutionAlgorithm>) -> AlgorithmInput {
    let Some(algorithm) = algorithm else {
        return AlgorithmInput::default();
    };
    let kind = match pb::AlgorithmType::try_from(algorithm.r#type) {
        Ok(pb::AlgorithmType::Market) => Some(AlgorithmKind::Market),
        Ok(pb::AlgorithmType::Twap) => Some(AlgorithmKind::Twap),
        Ok(pb::AlgorithmType::Vwap) => Some(AlgorithmKind::Vwap),
        Ok(pb::AlgorithmType::Unspecified) | Err(_) => None,
    };
    AlgorithmInput {
        kind,
        unknown_kind: pb::AlgorithmType::try_from(algorithm.r#type)
            .is_err()
            .then_some(algorithm.r#type),
        start: algorithm.start_time.as_ref().and_then(datetime),
        end: algorithm.end_time.as_ref().and_then(datetime),
        horizon_secs: algorithm.horizon.as_ref().map(|d| d.seconds),
        slice_interval_secs: algorithm.slice_interval.as_ref().map(|d| d.seconds),
        randomization_percent: algorithm.randomization_percent.clone(),
        max_participation_percent: algorithm.max_participation_percent.clone(),
        limit_prices: algorithm
            .limit_prices
            .iter()
            .map(|limit| (limit.symbol.clone(), limit.price.clone()))
            .collect(),
        extended_hours: algorithm.extended_hours,
        net_across_accounts: algorithm.net_across_accounts,
        seed: algorithm.seed,
        continue_after_window: algorithm.continue_after_window,
    }
}

#[must_use]
pub fn algorithm_to_wire(algorithm: &Algorithm) -> pb::ExecutionAlgorithm {
    pb::ExecutionAlgorithm {
        r#type: match algorithm.kind {
            AlgorithmKind::Market => pb::AlgorithmType::Market,
            AlgorithmKind::Twap => pb::AlgorithmType::Twap,
            AlgorithmKind::Vwap => pb::AlgorithmType::Vwap,
        }
        .into(),
        start_time: algorithm.start.map(timestamp),
        end_time: algorithm.end.map(timestamp),
        horizon: algorithm
            .horizon_secs
            .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        slice_interval: Some(prost_types::Duration {
            seconds: algorithm.slice_interval_secs,
            nanos: 0,
        }),
        randomization_percent: decimal_text(algorithm.randomization_percent),
        max_participation_percent: decimal_text(algorithm.max_participation_percent),
        limit_prices: algorithm
            .limit_prices
            .iter()
            .map(|(symbol, price)| pb::LimitPrice {
                symbol: symbol.clone(),
                price: decimal_text(*price),
            })
            .collect(),
        extended_hours: algorithm.extended_hours,
        net_across_accounts: algorithm.net_across_accounts,
        seed: algorithm.seed,
        continue_after_window: algorithm.continue_after_window,
    }
}

/// A run spec as sent, for planning.
#[must_use]
pub fn run_spec_input(spec: &pb::RunSpec) -> RunSpecInput {
    RunSpecInput {
        account_id: spec.account_id.clone(),
        kind: run_kind_from_wire(spec.r#type),
        amount: spec.amount.clone(),
        weights: spec.weights.iter().map(weight_input).collect(),
        initiated_from: initiated_from_wire(spec.initiated_from),
        approval_mode: approval_mode_from_wire(spec.approval_mode),
        algorithm: algorithm_input(spec.algorithm.as_ref()),
        reason: spec.reason.clone(),
        minimum_order_notional: spec.minimum_order_notional.clone(),
        cash_movement_id: spec.cash_movement_id.clone(),
        portfolio_id: spec.portfolio_id.clone(),
        portfolio_version: spec.portfolio_version,
        expires_at: spec.expires_at.as_ref().map(|at| datetime(at).ok_or(())),
        allow_wash_sales: spec.allow_wash_sales,
    }
}

#[must_use]
pub fn adjustment_input(adjustment: &pb::OrderAdjustment) -> OrderAdjustmentInput {
    OrderAdjustmentInput {
        order_id: adjustment.order_id.clone(),
        quantity: adjustment.quantity.clone(),
        notional: adjustment.notional.clone(),
        exclude: adjustment.exclude,
        lot_ids: adjustment.lot_ids.clone(),
    }
}

#[must_use]
pub fn order_to_wire(order: &OrderRecord) -> pb::Order {
    pb::Order {
        id: order.id.clone(),
        run_id: order.run_id.clone(),
        account_id: order.account_id.clone(),
        symbol: order.symbol.clone(),
        side: side_to_wire(order.side).into(),
        quantity: decimal_text(order.quantity),
        notional: order.notional.map(money_text).unwrap_or_default(),
        status: order_status_to_wire(order.status).into(),
        filled_quantity: decimal_text(order.filled_quantity),
        filled_avg_price: if order.filled_quantity > Decimal::ZERO {
            decimal_text((order.filled_notional / order.filled_quantity).round_dp(4))
        } else {
            String::new()
        },
        client_order_id: order.client_order_id.clone(),
        block_order_id: order.block_order_id.clone().unwrap_or_default(),
        excluded: order.excluded,
        reason: order.reason.clone(),
        estimated_price: decimal_text(order.estimated_price),
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
        tax_lots: Vec::new(),
        estimated_gain: String::new(),
    }
}

/// An order of `run` with the lots its sale is estimated to close.
#[must_use]
pub fn run_order_to_wire(run: &RunRecord, order: &OrderRecord) -> pb::Order {
    let mut wire = order_to_wire(order);
    if let Some(lots) = run
        .tax
        .as_ref()
        .and_then(|tax| tax.orders.iter().find(|o| o.order_id == order.id))
    {
        wire.tax_lots = lots.lots.iter().map(closed_lot_to_wire).collect();
        wire.estimated_gain = money_text(lots.lots.iter().map(|l| l.proceeds - l.basis).sum());
    }
    wire
}

fn closed_lot_to_wire(lot: &LotClose) -> pb::ClosedLot {
    pb::ClosedLot {
        lot_id: lot.lot_id.clone(),
        acquired_on: lot.acquired.clone(),
        quantity: decimal_text(lot.quantity),
        cost_basis: money_text(lot.basis),
        proceeds: money_text(lot.proceeds),
        gain: money_text(lot.proceeds - lot.basis),
        term: term_to_wire(&lot.term).into(),
    }
}

#[must_use]
pub fn tax_to_wire(tax: &RunTax) -> pb::TaxImpact {
    pb::TaxImpact {
        tax_status: tax_status_to_wire(&tax.status).into(),
        lot_method: lot_method_to_wire(&tax.lot_method).into(),
        short_term_gain: money_text(tax.short_term_gain),
        long_term_gain: money_text(tax.long_term_gain),
        total_gain: money_text(tax.short_term_gain + tax.long_term_gain),
        budget_left: tax.budget_left.map(money_text).unwrap_or_default(),
    }
}

fn skip_reason_to_wire(reason: &str) -> pb::SkipReason {
    match reason {
        "below_minimum_notional" => pb::SkipReason::BelowMinimumNotional,
        "insufficient_cash" => pb::SkipReason::InsufficientCash,
        "not_tradable" => pb::SkipReason::NotTradable,
        "restricted" => pb::SkipReason::Restricted,
        "rounds_to_zero" => pb::SkipReason::RoundsToZero,
        "no_price" => pb::SkipReason::NoPrice,
        "excluded" => pb::SkipReason::Excluded,
        "below_investment_minimum" => pb::SkipReason::BelowInvestmentMinimum,
        "below_minimum_drift" => pb::SkipReason::BelowMinimumDrift,
        "tax" => pb::SkipReason::Tax,
        "wash_sale" => pb::SkipReason::WashSale,
        _ => pb::SkipReason::Unspecified,
    }
}

#[must_use]
pub fn skipped_to_wire(skipped: &SkipEntry) -> pb::SkippedOrder {
    pb::SkippedOrder {
        symbol: skipped.symbol.clone(),
        side: side_to_wire(Side::parse(&skipped.side).unwrap_or(Side::Buy)).into(),
        quantity: decimal_text(skipped.quantity),
        notional: money_text(skipped.notional),
        reason: skip_reason_to_wire(&skipped.reason).into(),
        detail: skipped.detail.clone(),
    }
}

#[must_use]
pub fn drift_to_wire(drift: &DriftEntry) -> pb::TickerDrift {
    pb::TickerDrift {
        symbol: drift.symbol.clone().unwrap_or_default(),
        target_weight: decimal_text(drift.target_weight),
        current_weight: decimal_text(drift.current_weight),
        drift: decimal_text(drift.drift),
        expected_weight: decimal_text(drift.expected_weight),
        current_value: money_text(drift.current_value),
        expected_value: money_text(drift.expected_value),
    }
}

#[must_use]
pub fn run_to_wire(run: &RunRecord) -> pb::Run {
    pb::Run {
        id: run.id.clone(),
        account_id: run.account_id.clone(),
        r#type: run_kind_to_wire(run.kind).into(),
        status: run_status_to_wire(run.status).into(),
        initiated_from: initiated_to_wire(run.initiated_from).into(),
        reason: run.reason.clone(),
        amount: run.amount.map(money_text).unwrap_or_default(),
        weights: run
            .weights
            .iter()
            .map(|w| common::Weight {
                r#type: if w.symbol.is_some() {
                    common::WeightType::Asset
                } else {
                    common::WeightType::Cash
                }
                .into(),
                symbol: w.symbol.clone().unwrap_or_default(),
                percent: decimal_text(w.percent),
                portfolio_id: String::new(),
            })
            .collect(),
        portfolio_id: run.portfolio_id.clone().unwrap_or_default(),
        portfolio_version: run.portfolio_version.unwrap_or_default(),
        approval_mode: approval_mode_to_wire(run.approval_mode).into(),
        algorithm: Some(algorithm_to_wire(&run.algorithm)),
        orders: run
            .orders
            .iter()
            .filter(|o| !o.excluded)
            .map(|order| run_order_to_wire(run, order))
            .collect(),
        skipped_orders: run.skipped.iter().map(skipped_to_wire).collect(),
        tax: run.tax.as_ref().map(tax_to_wire),
        drift: run.drift.iter().map(drift_to_wire).collect(),
        batch_id: run.batch_id.clone().unwrap_or_default(),
        etag: format!("r{}", run.revision),
        adjustments: run
            .adjustments
            .iter()
            .map(|a| pb::RunAdjustment {
                actor: a.actor.clone(),
                at: Some(timestamp(a.at)),
                order_id: a.order_id.clone().unwrap_or_default(),
                action: a.action.clone(),
                details: a.details.clone(),
            })
            .collect(),
        approved_by: run.approved_by.clone().unwrap_or_default(),
        cash_movement_id: run.cash_movement_id.clone().unwrap_or_default(),
        equity: money_text(run.equity),
        created_at: Some(timestamp(run.created_at)),
        updated_at: Some(timestamp(run.updated_at)),
        approved_at: run.approved_at.map(timestamp),
        started_at: run.started_at.map(timestamp),
        completed_at: run.completed_at.map(timestamp),
        expires_at: run.expires_at.map(timestamp),
        broker: run.broker.clone().unwrap_or_default(),
        canceled_at: run.canceled_at.map(timestamp),
        failed_orders: run
            .orders
            .iter()
            .filter(|o| {
                matches!(
                    o.status,
                    OrderStatus::Rejected | OrderStatus::Canceled | OrderStatus::Expired
                )
            })
            .map(order_to_wire)
            .collect(),
    }
}

#[must_use]
pub fn batch_status_from_wire(value: i32) -> Option<BatchStatus> {
    match pb::BatchStatus::try_from(value) {
        Ok(pb::BatchStatus::Proposed) => Some(BatchStatus::Proposed),
        Ok(pb::BatchStatus::InProgress) => Some(BatchStatus::InProgress),
        Ok(pb::BatchStatus::Completed) => Some(BatchStatus::Completed),
        Ok(pb::BatchStatus::Canceled) => Some(BatchStatus::Canceled),
        Ok(pb::BatchStatus::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn batch_to_wire(view: &BatchView) -> pb::Batch {
    let batch = &view.batch;
    let count = |wanted: &[RunStatus]| -> i64 {
        view.counts
            .iter()
            .filter(|(status, _)| wanted.contains(status))
            .map(|(_, n)| *n)
            .sum()
    };
    pb::Batch {
        id: batch.id.clone(),
        portfolio_id: batch.portfolio_id.clone().unwrap_or_default(),
        r#type: run_kind_to_wire(batch.kind).into(),
        status: match batch.status {
            BatchStatus::Proposed => pb::BatchStatus::Proposed,
            BatchStatus::InProgress => pb::BatchStatus::InProgress,
            BatchStatus::Completed => pb::BatchStatus::Completed,
            BatchStatus::Canceled => pb::BatchStatus::Canceled,
        }
        .into(),
        algorithm: Some(algorithm_to_wire(&batch.algorithm)),
        counts: Some(pb::BatchCounts {
            total: view.counts.iter().map(|(_, n)| *n).sum(),
            proposed: count(&[RunStatus::Proposed]),
            queued: count(&[RunStatus::Queued]),
            in_progress: count(&[RunStatus::InProgress]),
            completed_success: count(&[RunStatus::CompletedSuccess]),
            completed_adjusted: count(&[RunStatus::CompletedAdjusted]),
            failed: count(&[RunStatus::Error, RunStatus::Timeout]),
            canceled: count(&[RunStatus::Canceled, RunStatus::CanceledMidRun]),
        }),
        initiated_from: initiated_to_wire(batch.initiated_from).into(),
        created_by: batch.created_by.clone(),
        reason: batch.reason.clone(),
        etag: format!("r{}", batch.revision),
        account_errors: batch.account_errors.clone(),
        created_at: Some(timestamp(batch.created_at)),
        transmitted_at: batch.transmitted_at.map(timestamp),
        completed_at: batch.completed_at.map(timestamp),
    }
}

#[must_use]
pub fn ticker_to_wire(total: &TickerTotal) -> pb::TickerTrades {
    pb::TickerTrades {
        symbol: total.symbol.clone(),
        side: side_to_wire(total.side).into(),
        quantity: decimal_text(total.quantity),
        notional: money_text(total.notional),
        account_count: total.accounts,
    }
}

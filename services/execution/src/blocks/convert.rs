//! Wire conversions of block orders, child orders, fills, allocations and execution quality.

use rebalancer_kit::wire::{decimal_text, money_text, timestamp};
use rebalancer_proto::execution as pb;
use rust_decimal::Decimal;

use crate::blocks::BlockView;
use crate::blocks::store::{AllocationRecord, ChildOrderRecord, FillRecord};
use crate::broker::brokers::TradingMode;
use crate::broker::fix::store::{BreakKind, BrokerBreak};
use crate::broker::modes::TradingModeView;
use crate::runs::convert::{algorithm_to_wire, order_status_to_wire, side_to_wire};
use rebalancer_domain::quality::Quality;

fn optional(value: Option<Decimal>) -> String {
    value.map(decimal_text).unwrap_or_default()
}

#[must_use]
pub fn quality_to_wire(quality: &Quality) -> pb::ExecutionQuality {
    pb::ExecutionQuality {
        arrival_price: optional(quality.arrival_price),
        average_fill_price: optional(quality.average_fill_price),
        interval_vwap: optional(quality.interval_vwap),
        interval_twap: optional(quality.interval_twap),
        slippage_vs_arrival_bps: optional(quality.slippage_vs_arrival_bps),
        slippage_vs_vwap_bps: optional(quality.slippage_vs_vwap_bps),
        slippage_vs_twap_bps: optional(quality.slippage_vs_twap_bps),
        participation_percent: optional(quality.participation_percent),
        filled_percent: optional(quality.filled_percent),
        filled_notional: money_text(quality.filled_notional),
        crossed_quantity: decimal_text(quality.crossed_quantity),
    }
}

#[must_use]
pub fn block_to_wire(view: &BlockView) -> pb::BlockOrder {
    let block = &view.block;
    pb::BlockOrder {
        id: block.id.clone(),
        symbol: block.symbol.clone(),
        side: side_to_wire(block.side).into(),
        algorithm: Some(algorithm_to_wire(&block.algorithm)),
        status: order_status_to_wire(block.status).into(),
        quantity: decimal_text(block.quantity),
        filled_quantity: decimal_text(block.filled_quantity),
        average_fill_price: optional(view.quality.average_fill_price),
        account_order_count: block.account_order_count,
        batch_id: block.batch_id.clone().unwrap_or_default(),
        window_start: block.window_start.map(timestamp),
        window_end: block.window_end.map(timestamp),
        quality: Some(quality_to_wire(&view.quality)),
        reason: block.reason.clone(),
        created_at: Some(timestamp(block.created_at)),
        completed_at: block.completed_at.map(timestamp),
        broker: block.broker.clone(),
    }
}

#[must_use]
pub fn child_to_wire(child: &ChildOrderRecord) -> pb::ChildOrder {
    pb::ChildOrder {
        id: child.id.clone(),
        block_order_id: child.block_order_id.clone(),
        client_order_id: child.client_order_id.clone(),
        broker_order_id: child.broker_order_id.clone(),
        quantity: decimal_text(child.quantity),
        limit_price: optional(child.limit_price),
        status: order_status_to_wire(child.status).into(),
        filled_quantity: decimal_text(child.filled_quantity),
        average_fill_price: optional(child.average_fill_price),
        due_at: Some(timestamp(child.due_at)),
        submitted_at: Some(timestamp(child.submitted_at)),
        reason: child.reason.clone(),
    }
}

#[must_use]
pub fn fill_to_wire(fill: &FillRecord) -> pb::Fill {
    pb::Fill {
        id: fill.id.clone(),
        child_order_id: fill.child_order_id.clone(),
        block_order_id: fill.block_order_id.clone(),
        quantity: decimal_text(fill.quantity),
        price: decimal_text(fill.price),
        executed_at: Some(timestamp(fill.executed_at)),
        crossed: fill.crossed,
    }
}

#[must_use]
pub fn trading_mode_to_wire(view: &TradingModeView) -> pb::TradingModeState {
    pb::TradingModeState {
        mode: match view.mode {
            TradingMode::Paper => pb::TradingMode::Paper,
            TradingMode::Live => pb::TradingMode::Live,
        }
        .into(),
        broker: view.broker.to_owned(),
        live_broker: view.live_broker.unwrap_or_default().to_owned(),
        chosen: view.chosen.is_some(),
        changed_by: view
            .chosen
            .as_ref()
            .map(|record| record.changed_by.clone())
            .unwrap_or_default(),
        changed_at: view
            .chosen
            .as_ref()
            .map(|record| timestamp(record.changed_at)),
    }
}

#[must_use]
pub fn break_to_wire(found: &BrokerBreak) -> pb::BrokerBreak {
    pb::BrokerBreak {
        id: found.id.clone(),
        kind: match found.kind {
            BreakKind::UnknownOrder => pb::BrokerBreakKind::UnknownOrder,
            BreakKind::Overfill => pb::BrokerBreakKind::Overfill,
        }
        .into(),
        client_order_id: found.client_order_id.clone(),
        symbol: found.symbol.clone(),
        quantity: decimal_text(found.quantity),
        price: decimal_text(found.price),
        detail: found.detail.clone(),
        raised_at: Some(timestamp(found.raised_at)),
    }
}

#[must_use]
pub fn allocation_to_wire(allocation: &AllocationRecord) -> pb::Allocation {
    pb::Allocation {
        fill_id: allocation.fill_id.clone(),
        order_id: allocation.order_id.clone(),
        account_id: allocation.account_id.clone(),
        quantity: decimal_text(allocation.quantity),
        price: decimal_text(allocation.price),
        amount: money_text(allocation.amount),
    }
}

//! What the monitor reads from the other services, parsed once into the
//! shapes the evaluation takes. Targets are parsed once per portfolio
//! version, not once per account.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use rebalancer_domain::Symbol;
use rebalancer_domain::account::Restriction;
use rebalancer_domain::cash::CashMovementKind;
use rebalancer_domain::evaluation::{PendingMovement, PreparedTarget};
use rebalancer_domain::portfolio::{PortfolioStatus, Weight};
use rebalancer_domain::preferences::TradingPreferences;
use rebalancer_kit::wire::{condition_from_wire, datetime, preferences_input, rebalance_to_input};
use rebalancer_proto::{execution as exec, target};
use rust_decimal::Decimal;

/// A resolved target, parsed.
#[derive(Debug, Clone)]
pub struct ParsedTarget {
    pub portfolio_id: String,
    pub version: i64,
    /// Weights, bands and calendar, prepared for many evaluations.
    pub prepared: PreparedTarget,
}

/// What an account is assigned to.
#[derive(Debug, Clone)]
pub enum Assigned {
    None,
    Liquidate,
    Active {
        target: Arc<ParsedTarget>,
        rebalancing_enabled: bool,
        target_changed_at: Option<DateTime<Utc>>,
    },
}

/// Parsed targets by portfolio and version.
pub type TargetCache = HashMap<(String, i64), Arc<ParsedTarget>>;

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or(Decimal::ZERO)
}

/// Parses a streamed assignment (its target through `cache`). `None` when
/// the stream left the target out (`target_omitted`) without having sent it
/// earlier: the stream broke its contract.
#[must_use]
pub fn assignment(
    resolved: &target::ResolvedAssignment,
    cache: &mut TargetCache,
) -> Option<Assigned> {
    let active = resolved.status == i32::from(target::AssignmentStatus::Active);
    if !active {
        return Some(if resolved.rebalancing_enabled {
            Assigned::Liquidate
        } else {
            Assigned::None
        });
    }
    let key = (resolved.portfolio_id.clone(), resolved.portfolio_version);
    let parsed = match cache.get(&key) {
        Some(parsed) => Arc::clone(parsed),
        None if resolved.target_omitted => return None,
        None => Arc::clone(
            cache
                .entry(key)
                .or_insert_with(|| Arc::new(parse_target(resolved))),
        ),
    };
    Some(Assigned::Active {
        target: parsed,
        rebalancing_enabled: resolved.rebalancing_enabled,
        target_changed_at: resolved.target_changed_at.as_ref().and_then(datetime),
    })
}

fn parse_target(resolved: &target::ResolvedAssignment) -> ParsedTarget {
    let weights = resolved
        .weights
        .iter()
        .filter_map(|weight| {
            let percent = decimal(&weight.percent);
            if weight.symbol.is_empty() {
                Some(Weight::cash(percent))
            } else {
                Symbol::parse(&weight.symbol)
                    .ok()
                    .map(|symbol| Weight::asset(symbol, percent))
            }
        })
        .collect();
    let conditions = resolved
        .rebalance_conditions
        .iter()
        .filter_map(condition_from_wire)
        .collect();
    let status = match target::PortfolioStatus::try_from(resolved.portfolio_status) {
        Ok(target::PortfolioStatus::Active) => PortfolioStatus::Active,
        Ok(target::PortfolioStatus::NeedsAdjustment) => PortfolioStatus::NeedsAdjustment,
        _ => PortfolioStatus::Inactive,
    };
    ParsedTarget {
        portfolio_id: resolved.portfolio_id.clone(),
        version: resolved.portfolio_version,
        prepared: PreparedTarget::new(
            weights,
            conditions,
            u32::try_from(resolved.cooldown_days).unwrap_or(0),
            decimal(&resolved.invest_cash_threshold),
            status,
        )
        .rebalancing_to(rebalance_to_input(resolved.rebalance_to).unwrap_or_default()),
    }
}

/// An account's holdings, parsed.
#[derive(Debug, Clone)]
pub struct ParsedHoldings {
    pub cash: Decimal,
    pub positions: Vec<(String, Decimal)>,
    pub restrictions: Vec<Restriction>,
    pub pending: Vec<PendingMovement>,
    /// Pending deposits' ids, acknowledged once acted on.
    pub deposits: Vec<String>,
    pub open_run: bool,
    pub last_rebalanced_at: Option<DateTime<Utc>>,
    /// Restricted symbols, substitutes, cash reserve; `None` for none.
    pub preferences: Option<TradingPreferences>,
    /// The account's own target, made once from its assignment's.
    pub own_target: OnceLock<PreparedTarget>,
}

/// Parses streamed holdings.
#[must_use]
pub fn holdings(wire: &exec::Holdings) -> ParsedHoldings {
    let mut pending = Vec::new();
    let mut deposits = Vec::new();
    for movement in &wire.pending_cash_movements {
        let kind = match exec::CashMovementType::try_from(movement.r#type) {
            Ok(exec::CashMovementType::Deposit) => CashMovementKind::Deposit,
            Ok(exec::CashMovementType::Withdrawal) => CashMovementKind::Withdrawal,
            _ => continue,
        };
        if kind == CashMovementKind::Deposit {
            deposits.push(movement.id.clone());
        }
        pending.push(PendingMovement {
            id: movement.id.clone(),
            kind,
            amount: decimal(&movement.amount),
        });
    }
    let restrictions = wire
        .restrictions
        .iter()
        .filter_map(|value| match exec::Restriction::try_from(*value) {
            Ok(exec::Restriction::PatternDayTrader) => Some(Restriction::PatternDayTrader),
            Ok(exec::Restriction::AchReturn) => Some(Restriction::AchReturn),
            Ok(exec::Restriction::TradingBlocked) => Some(Restriction::TradingBlocked),
            Ok(exec::Restriction::LiquidationOnly) => Some(Restriction::LiquidationOnly),
            Ok(exec::Restriction::LeverageExceeded) => Some(Restriction::LeverageExceeded),
            Ok(exec::Restriction::BrokerBreak) => Some(Restriction::BrokerBreak),
            _ => None,
        })
        .collect();
    ParsedHoldings {
        // Cash held back for withdrawals is neither invested nor drift.
        cash: decimal(&wire.cash) - decimal(&wire.earmarked_cash),
        positions: wire
            .positions
            .iter()
            .map(|p| (p.symbol.clone(), decimal(&p.quantity)))
            .collect(),
        restrictions,
        pending,
        deposits,
        open_run: !wire.open_run_id.is_empty(),
        last_rebalanced_at: wire.last_rebalanced_at.as_ref().and_then(datetime),
        // Validated when they were set; anything unreadable is left out.
        preferences: wire
            .preferences
            .as_ref()
            .and_then(|wire| preferences_input(wire).validate("preferences").ok())
            .filter(|preferences| !preferences.is_empty()),
        own_target: OnceLock::new(),
    }
}

//! Wire ↔ domain conversions of the account book: accounts, positions,
//! restrictions, cash movements and streamed holdings.

use rebalancer_domain::account::{AccountStatus, AccountType, Restriction};
use rebalancer_domain::cash::{CashMovementKind, CashMovementStatus};
use rebalancer_domain::holdings::Valuation;
use rebalancer_kit::wire::{decimal_text, money_text, preferences_to_wire, timestamp};
use rebalancer_proto::execution as pb;
use rust_decimal::Decimal;

use chrono::NaiveDate;
use rebalancer_domain::lots::{self, Lot, LotInput, Term};
use rebalancer_domain::tax::{LotSelection, TaxSettings, TaxSettingsInput, TaxStatus};

use crate::book::reconcile_store::{BreakRecord, ReconciliationRecord};
use crate::book::store::{CashMovementRecord, HoldingsRecord};
use crate::book::{AccountView, YearGains};

#[must_use]
pub fn account_status_from_wire(value: i32) -> Option<AccountStatus> {
    match pb::AccountStatus::try_from(value) {
        Ok(pb::AccountStatus::Active) => Some(AccountStatus::Active),
        Ok(pb::AccountStatus::Closed) => Some(AccountStatus::Closed),
        Ok(pb::AccountStatus::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn account_status_to_wire(status: AccountStatus) -> pb::AccountStatus {
    match status {
        AccountStatus::Active => pb::AccountStatus::Active,
        AccountStatus::Closed => pb::AccountStatus::Closed,
    }
}

/// `None` for an unknown value; unspecified is a cash account.
#[must_use]
pub fn account_type_from_wire(value: i32) -> Option<AccountType> {
    match pb::AccountType::try_from(value) {
        Ok(pb::AccountType::Unspecified | pb::AccountType::Cash) => Some(AccountType::Cash),
        Ok(pb::AccountType::Margin) => Some(AccountType::Margin),
        Err(_) => None,
    }
}

#[must_use]
pub fn account_type_to_wire(account_type: AccountType) -> pb::AccountType {
    match account_type {
        AccountType::Cash => pb::AccountType::Cash,
        AccountType::Margin => pb::AccountType::Margin,
    }
}

#[must_use]
pub fn restriction_from_wire(value: i32) -> Option<Restriction> {
    match pb::Restriction::try_from(value) {
        Ok(pb::Restriction::PatternDayTrader) => Some(Restriction::PatternDayTrader),
        Ok(pb::Restriction::AchReturn) => Some(Restriction::AchReturn),
        Ok(pb::Restriction::TradingBlocked) => Some(Restriction::TradingBlocked),
        Ok(pb::Restriction::LiquidationOnly) => Some(Restriction::LiquidationOnly),
        Ok(pb::Restriction::LeverageExceeded) => Some(Restriction::LeverageExceeded),
        Ok(pb::Restriction::BrokerBreak) => Some(Restriction::BrokerBreak),
        Ok(pb::Restriction::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn restriction_to_wire(restriction: Restriction) -> pb::Restriction {
    match restriction {
        Restriction::PatternDayTrader => pb::Restriction::PatternDayTrader,
        Restriction::AchReturn => pb::Restriction::AchReturn,
        Restriction::TradingBlocked => pb::Restriction::TradingBlocked,
        Restriction::LiquidationOnly => pb::Restriction::LiquidationOnly,
        Restriction::BrokerBreak => pb::Restriction::BrokerBreak,
        Restriction::LeverageExceeded => pb::Restriction::LeverageExceeded,
    }
}

#[must_use]
pub fn movement_kind_from_wire(value: i32) -> Option<CashMovementKind> {
    match pb::CashMovementType::try_from(value) {
        Ok(pb::CashMovementType::Deposit) => Some(CashMovementKind::Deposit),
        Ok(pb::CashMovementType::Withdrawal) => Some(CashMovementKind::Withdrawal),
        Ok(pb::CashMovementType::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn movement_status_from_wire(value: i32) -> Option<CashMovementStatus> {
    match pb::CashMovementStatus::try_from(value) {
        Ok(pb::CashMovementStatus::Pending) => Some(CashMovementStatus::Pending),
        Ok(pb::CashMovementStatus::Acknowledged) => Some(CashMovementStatus::Acknowledged),
        Ok(pb::CashMovementStatus::Settled) => Some(CashMovementStatus::Settled),
        Ok(pb::CashMovementStatus::Canceled) => Some(CashMovementStatus::Canceled),
        Ok(pb::CashMovementStatus::Unspecified) | Err(_) => None,
    }
}

#[must_use]
pub fn movement_to_wire(movement: &CashMovementRecord) -> pb::CashMovement {
    pb::CashMovement {
        id: movement.id.clone(),
        account_id: movement.account_id.clone(),
        r#type: match movement.kind {
            CashMovementKind::Deposit => pb::CashMovementType::Deposit,
            CashMovementKind::Withdrawal => pb::CashMovementType::Withdrawal,
        }
        .into(),
        amount: money_text(movement.amount),
        status: match movement.status {
            CashMovementStatus::Pending => pb::CashMovementStatus::Pending,
            CashMovementStatus::Acknowledged => pb::CashMovementStatus::Acknowledged,
            CashMovementStatus::Settled => pb::CashMovementStatus::Settled,
            CashMovementStatus::Canceled => pb::CashMovementStatus::Canceled,
        }
        .into(),
        run_id: movement.run_id.clone().unwrap_or_default(),
        created_at: Some(timestamp(movement.created_at)),
        acknowledged_at: movement.acknowledged_at.map(timestamp),
        settled_at: movement.settled_at.map(timestamp),
    }
}

fn optional_text(value: Option<Decimal>, format: fn(Decimal) -> String) -> String {
    value.map(format).unwrap_or_default()
}

fn positions_to_wire(view: &AccountView) -> Vec<pb::Position> {
    view.record
        .positions
        .iter()
        .zip(&view.valuation.positions)
        .map(|(position, valued)| pb::Position {
            symbol: position.symbol.clone(),
            quantity: decimal_text(position.quantity),
            average_cost: decimal_text(position.average_cost),
            price: optional_text(valued.price, decimal_text),
            market_value: optional_text(valued.value, money_text),
            weight: optional_text(valued.weight.map(|w| w.round_dp(4)), decimal_text),
            lots: view
                .lots
                .get(&position.symbol)
                .map(|lots| {
                    lots.iter()
                        .map(|lot| lot_to_wire(lot, valued.price, view.today))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

fn lot_to_wire(lot: &Lot, price: Option<Decimal>, today: NaiveDate) -> pb::TaxLot {
    pb::TaxLot {
        id: lot.id.clone(),
        quantity: decimal_text(lot.quantity),
        cost_basis: money_text(lot.basis),
        acquired_on: lot.acquired.to_string(),
        market_value: optional_text(
            price.map(|price| (lot.quantity * price).round_dp(2)),
            money_text,
        ),
        unrealized_gain: optional_text(price.map(|price| lots::unrealized(lot, price)), money_text),
        term: term_to_wire(lot.term_on(today).as_str()).into(),
    }
}

/// "short" or "long" as stored.
#[must_use]
pub fn term_to_wire(term: &str) -> pb::HoldingTerm {
    match Term::parse(term) {
        Some(Term::Short) => pb::HoldingTerm::Short,
        Some(Term::Long) => pb::HoldingTerm::Long,
        None => pb::HoldingTerm::Unspecified,
    }
}

#[must_use]
pub fn tax_status_of(status: TaxStatus) -> &'static str {
    match status {
        TaxStatus::Taxable => "taxable",
        TaxStatus::TaxDeferred => "tax_deferred",
        TaxStatus::TaxExempt => "tax_exempt",
    }
}

fn lot_selection_of(method: LotSelection) -> &'static str {
    match method {
        LotSelection::Fifo => "fifo",
        LotSelection::Lifo => "lifo",
        LotSelection::Hifo => "hifo",
        LotSelection::MinimumTax => "minimum_tax",
    }
}

/// The texts a run's tax estimate stores.
#[must_use]
pub fn tax_texts(settings: &TaxSettings) -> (&'static str, &'static str) {
    (
        tax_status_of(settings.status),
        lot_selection_of(settings.lot_method),
    )
}

#[must_use]
pub fn tax_status_to_wire(status: &str) -> pb::TaxStatus {
    match status {
        "taxable" => pb::TaxStatus::Taxable,
        "tax_deferred" => pb::TaxStatus::TaxDeferred,
        "tax_exempt" => pb::TaxStatus::TaxExempt,
        _ => pb::TaxStatus::Unspecified,
    }
}

#[must_use]
pub fn lot_method_to_wire(method: &str) -> pb::LotMethod {
    match method {
        "fifo" => pb::LotMethod::Fifo,
        "lifo" => pb::LotMethod::Lifo,
        "hifo" => pb::LotMethod::Hifo,
        "minimum_tax" => pb::LotMethod::MinimumTax,
        _ => pb::LotMethod::Unspecified,
    }
}

#[must_use]
pub fn tax_settings_to_wire(settings: &TaxSettings) -> pb::TaxSettings {
    let (status, method) = tax_texts(settings);
    pb::TaxSettings {
        status: tax_status_to_wire(status).into(),
        lot_method: lot_method_to_wire(method).into(),
        run_gain_budget: optional_text(settings.run_gain_budget, money_text),
        annual_gain_budget: optional_text(settings.annual_gain_budget, money_text),
        no_short_term_gains: settings.no_short_term_gains,
        drift_tolerance: optional_text(settings.drift_tolerance, decimal_text),
    }
}

/// Tax settings as sent; an unknown status or method is a violation.
///
/// # Errors
/// Field violations relative to the settings.
pub fn tax_settings_input(
    settings: Option<&pb::TaxSettings>,
) -> Result<TaxSettingsInput, rebalancer_domain::Violations> {
    let settings = settings.cloned().unwrap_or_default();
    let mut violations = rebalancer_domain::Violations::new();
    let status = match pb::TaxStatus::try_from(settings.status) {
        Ok(pb::TaxStatus::Unspecified | pb::TaxStatus::Taxable) => TaxStatus::Taxable,
        Ok(pb::TaxStatus::TaxDeferred) => TaxStatus::TaxDeferred,
        Ok(pb::TaxStatus::TaxExempt) => TaxStatus::TaxExempt,
        Err(_) => {
            violations.add("status", "is not a known tax status");
            TaxStatus::Taxable
        }
    };
    let lot_method = match pb::LotMethod::try_from(settings.lot_method) {
        Ok(pb::LotMethod::Unspecified | pb::LotMethod::Fifo) => LotSelection::Fifo,
        Ok(pb::LotMethod::Lifo) => LotSelection::Lifo,
        Ok(pb::LotMethod::Hifo) => LotSelection::Hifo,
        Ok(pb::LotMethod::MinimumTax) => LotSelection::MinimumTax,
        Err(_) => {
            violations.add("lot_method", "is not a known lot method");
            LotSelection::Fifo
        }
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(TaxSettingsInput {
        status,
        lot_method,
        run_gain_budget: settings.run_gain_budget,
        annual_gain_budget: settings.annual_gain_budget,
        no_short_term_gains: settings.no_short_term_gains,
        drift_tolerance: settings.drift_tolerance,
    })
}

/// Lots as sent with a position.
#[must_use]
pub fn lots_input(position: &pb::Position) -> Vec<LotInput> {
    position
        .lots
        .iter()
        .map(|lot| LotInput {
            id: lot.id.clone(),
            quantity: lot.quantity.clone(),
            cost_basis: lot.cost_basis.clone(),
            acquired_on: lot.acquired_on.clone(),
        })
        .collect()
}

fn realized_to_wire(gains: &YearGains) -> pb::RealizedGains {
    pb::RealizedGains {
        year: gains.year,
        short_term_gain: money_text(gains.short_term),
        long_term_gain: money_text(gains.long_term),
        total_gain: money_text(gains.short_term + gains.long_term),
    }
}

/// Restrictions set by the platform plus the computed leverage one.
fn restrictions_to_wire(view: &AccountView) -> Vec<i32> {
    let mut restrictions: Vec<i32> = view
        .record
        .restrictions
        .iter()
        .map(|r| restriction_to_wire(*r).into())
        .collect();
    if view.valuation.leverage_exceeded() {
        restrictions.push(pb::Restriction::LeverageExceeded.into());
    }
    restrictions
}

fn leverage_text(valuation: &Valuation) -> String {
    rebalancer_domain::account::leverage(valuation.positions_value, valuation.equity)
        .map(|ratio| decimal_text(ratio.round_dp(4)))
        .unwrap_or_default()
}

#[must_use]
pub fn account_to_wire(view: &AccountView) -> pb::Account {
    pb::Account {
        id: view.record.id.clone(),
        status: account_status_to_wire(view.record.status).into(),
        cash: money_text(view.record.cash),
        positions: positions_to_wire(view),
        restrictions: restrictions_to_wire(view),
        equity: money_text(view.valuation.equity),
        leverage: leverage_text(&view.valuation),
        etag: format!("r{}", view.record.revision),
        created_at: Some(timestamp(view.record.created_at)),
        updated_at: Some(timestamp(view.record.updated_at)),
        r#type: account_type_to_wire(view.record.account_type).into(),
        margin_limit: money_text(view.record.margin_limit),
        earmarked_cash: money_text(view.record.earmarked),
        buying_power: money_text(view.record.limits().buying_power()),
        withdrawable: money_text(
            (view.valuation.equity - view.record.earmarked).max(Decimal::ZERO),
        ),
        preferences: Some(preferences_to_wire(&view.record.preferences)),
        tax_settings: Some(tax_settings_to_wire(&view.record.tax)),
        realized_gains: view.realized.as_ref().map(realized_to_wire),
        household_id: view.record.household_id.clone().unwrap_or_default(),
    }
}

#[must_use]
pub fn holdings_to_wire(
    view: &AccountView,
    open_run_id: Option<&str>,
    as_of: chrono::DateTime<chrono::Utc>,
) -> pb::Holdings {
    pb::Holdings {
        account_id: view.record.id.clone(),
        status: account_status_to_wire(view.record.status).into(),
        cash: money_text(view.record.cash),
        positions: positions_to_wire(view),
        restrictions: restrictions_to_wire(view),
        pending_cash_movements: view.pending.iter().map(movement_to_wire).collect(),
        open_run_id: open_run_id.unwrap_or_default().to_owned(),
        as_of: Some(timestamp(as_of)),
        last_rebalanced_at: view.record.last_rebalanced_at.map(timestamp),
        earmarked_cash: money_text(view.record.limits().held_back()),
        preferences: Some(preferences_to_wire(&view.record.preferences)),
    }
}

/// Holdings as streamed to the monitor: quantities without valuation (prices
/// come from `GetQuotes`, once per symbol rather than once per position).
#[must_use]
pub fn stream_holdings_to_wire(
    record: &HoldingsRecord,
    as_of: chrono::DateTime<chrono::Utc>,
) -> pb::Holdings {
    let account = &record.account;
    pb::Holdings {
        account_id: account.id.clone(),
        status: account_status_to_wire(account.status).into(),
        cash: money_text(account.cash),
        positions: account
            .positions
            .iter()
            .map(|position| pb::Position {
                symbol: position.symbol.clone(),
                quantity: decimal_text(position.quantity),
                ..pb::Position::default()
            })
            .collect(),
        restrictions: account
            .restrictions
            .iter()
            .map(|r| restriction_to_wire(*r).into())
            .collect(),
        pending_cash_movements: record.pending.iter().map(movement_to_wire).collect(),
        open_run_id: record.open_run_id.clone().unwrap_or_default(),
        as_of: Some(timestamp(as_of)),
        last_rebalanced_at: account.last_rebalanced_at.map(timestamp),
        earmarked_cash: money_text(account.limits().held_back()),
        // Most accounts have none: nothing to send.
        preferences: (!account.preferences.is_empty())
            .then(|| preferences_to_wire(&account.preferences)),
    }
}

#[must_use]
pub fn reconciliation_to_wire(record: &ReconciliationRecord) -> pb::Reconciliation {
    let count = |value: i64| i32::try_from(value).unwrap_or(i32::MAX);
    pb::Reconciliation {
        id: record.id.clone(),
        as_of: Some(timestamp(record.as_of)),
        source: record.source.clone(),
        lines: count(record.lines),
        accounts_checked: count(record.accounts_checked),
        breaks_raised: count(record.breaks_raised),
        breaks_cleared: count(record.breaks_cleared),
        created_at: Some(timestamp(record.created_at)),
    }
}

#[must_use]
pub fn reconciliation_break_to_wire(found: &BreakRecord) -> pb::ReconciliationBreak {
    pb::ReconciliationBreak {
        id: found.id.clone(),
        reconciliation_id: found.reconciliation_id.clone(),
        account_id: found.account_id.clone(),
        symbol: found.symbol.clone().unwrap_or_default(),
        book_quantity: found.book_quantity.map(decimal_text).unwrap_or_default(),
        broker_quantity: decimal_text(found.broker_quantity),
        detail: found.detail.clone(),
        raised_at: Some(timestamp(found.raised_at)),
        cleared_at: found.cleared_at.map(timestamp),
        cleared_by_reconciliation_id: found.cleared_by.clone().unwrap_or_default(),
    }
}

//! What a plan decides, as it decides it: orders placed, trades refused and
//! why. The ledger also turns itself into the final [`Plan`], in the order the
//! API promises, with the cash and drift the orders lead to.

use rust_decimal::Decimal;

use super::book::{Book, Line};
use super::drift::drift_report;
use super::rounding::quantity_for;
use super::{Plan, PlannedOrder, Side, SkipReason, SkippedTrade};
use crate::Symbol;

/// Why a wanted trade is not placed, and how big it would have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) reason: SkipReason,
    /// Dollars the trade would have moved, to the cent.
    pub(super) notional: Decimal,
    pub(super) detail: String,
}

impl Refusal {
    pub(super) fn new(reason: SkipReason, notional: Decimal, detail: String) -> Self {
        Self {
            reason,
            notional,
            detail,
        }
    }

    /// The order would be worth less than the minimum order notional.
    pub(super) fn below_minimum(line: &Line, notional: Decimal, minimum: Decimal) -> Self {
        Self::new(
            SkipReason::BelowMinimumNotional,
            notional,
            format!(
                "${notional} of {} is below the minimum order of ${minimum}",
                line.symbol
            ),
        )
    }
}

/// Orders and refusals so far.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    orders: Vec<PlannedOrder>,
    skipped: Vec<SkippedTrade>,
}

impl Ledger {
    pub(super) fn place(&mut self, order: PlannedOrder) {
        self.orders.push(order);
    }

    /// Places the order, or records why it could not be.
    pub(super) fn place_or_refuse(
        &mut self,
        line: &Line,
        side: Side,
        sized: Result<PlannedOrder, Refusal>,
    ) {
        match sized {
            Ok(order) => self.place(order),
            Err(refusal) => self.refuse(line, side, refusal),
        }
    }

    /// Records a wanted trade that is not placed.
    pub(super) fn refuse(&mut self, line: &Line, side: Side, refusal: Refusal) {
        let estimate = quantity_for(refusal.notional, line.price);
        let quantity = match side {
            Side::Sell => estimate.min(line.held),
            Side::Buy => estimate,
        };
        self.skipped.push(SkippedTrade {
            symbol: line.symbol.clone(),
            side,
            quantity,
            notional: refusal.notional,
            reason: refusal.reason,
            detail: refusal.detail,
        });
    }

    /// Records a symbol that cannot be traded for want of a price.
    pub(super) fn skip_unpriced(
        &mut self,
        symbol: &Symbol,
        side: Side,
        quantity: Decimal,
        detail: String,
    ) {
        self.skipped.push(SkippedTrade {
            symbol: symbol.clone(),
            side,
            quantity,
            notional: Decimal::ZERO,
            reason: SkipReason::NoPrice,
            detail,
        });
    }

    /// Dollars the sells placed so far raise.
    pub(super) fn proceeds(&self) -> Decimal {
        self.side_total(Side::Sell)
    }

    fn side_total(&self, side: Side) -> Decimal {
        self.orders
            .iter()
            .filter(|order| order.side == side)
            .map(PlannedOrder::cash_amount)
            .sum()
    }

    /// The plan: sells then buys, each by symbol, and what they lead to.
    pub(super) fn into_plan(mut self, book: &Book) -> Plan {
        let sort_key = |side: Side, symbol: &Symbol| (side == Side::Buy, symbol.clone());
        self.orders
            .sort_by_key(|order| sort_key(order.side, &order.symbol));
        self.skipped
            .sort_by_key(|skipped| sort_key(skipped.side, &skipped.symbol));
        let cash_after = book.cash + self.side_total(Side::Sell) - self.side_total(Side::Buy);
        let drift = drift_report(book, &self.orders, cash_after);
        Plan {
            orders: self.orders,
            skipped: self.skipped,
            equity: book.equity,
            cash_before: book.cash,
            cash_after,
            drift,
        }
    }
}

/// A notional order for `notional` dollars; refused when the dollars do not
/// buy a billionth of a share.
pub(super) fn notional_order(
    line: &Line,
    side: Side,
    notional: Decimal,
) -> Result<PlannedOrder, Refusal> {
    let estimate = quantity_for(notional, line.price);
    let quantity = match side {
        Side::Sell => estimate.min(line.held),
        Side::Buy => estimate,
    };
    if quantity <= Decimal::ZERO {
        return Err(Refusal::new(
            SkipReason::RoundsToZero,
            notional,
            format!(
                "${notional} of {} at ${} is less than the smallest fraction of a share",
                line.symbol, line.price
            ),
        ));
    }
    Ok(PlannedOrder {
        symbol: line.symbol.clone(),
        side,
        quantity,
        notional: Some(notional),
        price: line.price,
    })
}

/// An order for an exact number of shares.
pub(super) fn quantity_order(line: &Line, side: Side, quantity: Decimal) -> PlannedOrder {
    PlannedOrder {
        symbol: line.symbol.clone(),
        side,
        quantity,
        notional: None,
        price: line.price,
    }
}

/// Sells the whole position by its exact quantity, so no dust is left behind.
pub(super) fn close_position(line: &Line) -> PlannedOrder {
    quantity_order(line, Side::Sell, line.held)
}

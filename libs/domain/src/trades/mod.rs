//! Trade generation: from an account snapshot, a target and market prices to
//! the orders that bring the account back to its target, following the
//! semantics of Alpaca's rebalancing API.
//!
//! [`plan`] is a pure function. It values the account at the prices it is
//! given (the *estimate prices*), decides which trades it wants, and then
//! explains every wanted trade it could not place in [`Plan::skipped`], so an
//! operator can always tell why an account is still off target.
//!
//! Three kinds of plan exist ([`PlanKind`]):
//!
//! - a full rebalance sells what is overweight, then spends the proceeds and
//!   the cash above the cash target on what is underweight;
//! - investing cash only buys, with the cash above the cash target;
//! - a liquidation only sells, to raise an amount (plus
//!   [`LIQUIDATION_BUFFER`]) while keeping what remains near its target, or
//!   everything.
//!
//! When the cash cannot meet every need, the budget is shared by
//! water-filling (see `waterfill`): the most underweight positions are served
//! first, which minimises the remaining squared drift. Money is rounded to
//! cents in the direction that keeps the plan's promise: buys never spend more
//! than the budget, liquidation sells never raise less than asked.
//!
//! Assets that are not fractionable (or every asset, with
//! [`PlanInput::whole_shares_only`]) trade in whole shares, rounded to the
//! share counts that leave the account closest to its target as a user
//! measures it, Σ |target $ − value $| over the assets and cash, within the
//! budget: a branch and bound (see `share_search`) started from a rounding
//! that keeps the squared gaps small (see `whole_shares`), so that ties keep
//! a short budget evenly spread. Fractional assets absorb what that rounding
//! leaves.
//!
//! Everything is [`Decimal`]; nothing here reads a clock or does I/O.

mod book;
mod buys;
mod drift;
mod ledger;
mod liquidation;
mod rebalance;
mod rounding;
mod share_search;
mod tax_limits;
mod waterfill;
mod whole_shares;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::Symbol;
use crate::portfolio::{AssetRule, Weight};

use book::Book;
use ledger::Ledger;

/// Extra share of a withdrawal that a liquidation raises (0.5%), so that
/// prices moving between planning and execution do not leave the withdrawal
/// short.
pub const LIQUIDATION_BUFFER: Decimal = Decimal::from_parts(5, 0, 0, false, 3);

crate::text_enum! {
    /// Direction of an order.
    pub enum Side {
        Buy = "buy",
        Sell = "sell",
    }
}

/// What the market says about a symbol at planning time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeAsset {
    pub symbol: Symbol,
    /// Estimate price every value and order of the plan is computed at.
    pub price: Decimal,
    /// Whether orders may be placed at all; untradable positions are kept.
    pub tradable: bool,
    /// Whether the broker accepts fractional (notional) orders.
    pub fractionable: bool,
}

/// A position of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub symbol: Symbol,
    /// Positive, up to 9 decimals.
    pub quantity: Decimal,
}

/// The account as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub cash: Decimal,
    pub holdings: Vec<Holding>,
    /// The account may not buy (for example a pattern day trader flag).
    pub buys_blocked: bool,
    /// The account may not sell.
    pub sells_blocked: bool,
    /// Symbols this account may not buy or sell (an advisor's or client's
    /// restriction); a symbol listed twice takes both.
    pub restricted: Vec<SymbolRestriction>,
    /// The most shares of a symbol a full rebalance may sell (a tax
    /// control: a gain budget, no short-term gains); what it leaves is
    /// skipped with [`SkipReason::Tax`] and this detail.
    pub sell_limits: Vec<SellLimit>,
    /// Symbols this account may not buy today, and why (the wash-sale
    /// guard): skipped with [`SkipReason::WashSale`], the weight left in
    /// cash.
    pub buy_blocks: Vec<BuyBlock>,
}

/// A symbol one account may not buy today, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyBlock {
    pub symbol: Symbol,
    pub detail: String,
}

/// A cap on one symbol's sales, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellLimit {
    pub symbol: Symbol,
    /// 0 or more shares.
    pub quantity: Decimal,
    /// A sentence for people: why no more is sold.
    pub detail: String,
    /// [`SkipReason::Tax`] or [`SkipReason::WashSale`].
    pub reason: SkipReason,
}

/// A symbol one account may not buy, sell, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolRestriction {
    pub symbol: Symbol,
    pub no_buy: bool,
    pub no_sell: bool,
}

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Sell the overweight, buy the underweight.
    FullRebalance,
    /// Only buy, with the cash above the cash target.
    InvestCash,
    /// Only sell, to raise `amount` (or everything when `None`).
    Liquidation { amount: Option<Decimal> },
}

impl PlanKind {
    /// The kind text stored and logged.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullRebalance => "full_rebalance",
            Self::InvestCash => "invest_cash",
            Self::Liquidation { .. } => "liquidation",
        }
    }
}

/// Everything [`plan`] needs, borrowed from the caller.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub kind: PlanKind,
    pub account: &'a AccountSnapshot,
    /// Cash and asset weights summing to 100; empty means 100% cash. Sleeve
    /// (portfolio) weights must be flattened first: any left are treated as
    /// uninvested cash.
    pub target: &'a [Weight],
    /// Market information; a held or targeted symbol missing here has no price.
    pub assets: &'a HashMap<Symbol, TradeAsset>,
    /// Orders worth less are not placed (Alpaca's default is $1).
    pub minimum_order_notional: Decimal,
    /// Trade whole shares even for fractionable assets.
    pub whole_shares_only: bool,
    /// Per-asset minimum order and minimum drift.
    pub asset_rules: &'a [AssetRule],
}

/// An order the plan places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOrder {
    pub symbol: Symbol,
    pub side: Side,
    /// Shares. For notional orders an estimate (notional / price, rounded down
    /// to 9 decimals); otherwise exact: an integer for whole-share orders, the
    /// held quantity when a whole position is sold.
    pub quantity: Decimal,
    /// Dollars (2 decimals) for notional orders; `None` for orders by quantity.
    pub notional: Option<Decimal>,
    /// Estimate price the order was sized at.
    pub price: Decimal,
}

impl PlannedOrder {
    /// Dollars the order moves at the estimate price: what a buy costs, what a
    /// sell raises.
    #[must_use]
    pub fn cash_amount(&self) -> Decimal {
        self.notional.unwrap_or(self.quantity * self.price)
    }
}

crate::text_enum! {
    /// Why a wanted trade was not placed.
    pub enum SkipReason {
        /// The order would be worth less than the minimum order notional.
        BelowMinimumNotional = "below_minimum_notional",
        /// A full rebalance leaves an asset this close to its target alone.
        BelowMinimumDrift = "below_minimum_drift",
        /// The budget ran out before this trade.
        InsufficientCash = "insufficient_cash",
        /// The asset may not be traded.
        NotTradable = "not_tradable",
        /// The account may not trade on this side.
        Restricted = "restricted",
        /// The trade is smaller than the smallest order the asset allows.
        RoundsToZero = "rounds_to_zero",
        /// No price is known, so the position can be neither valued nor sized.
        NoPrice = "no_price",
        /// A tax control (gain budget, no short-term gains) holds the sale back.
        Tax = "tax",
        /// The wash-sale guard: a loss sale or a buy within 30 days of the
        /// other in the household.
        WashSale = "wash_sale",
    }
}

/// A trade the plan wanted but did not place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTrade {
    pub symbol: Symbol,
    pub side: Side,
    /// Estimated shares the trade would have moved (the held quantity for
    /// [`SkipReason::NoPrice`] on a holding).
    pub quantity: Decimal,
    /// Dollars the trade would have moved, to the cent (0 without a price).
    pub notional: Decimal,
    pub reason: SkipReason,
    /// A sentence for people, never empty.
    pub detail: String,
}

/// How far one symbol (or cash) is from its target, now and after the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerDrift {
    /// `None` for cash.
    pub symbol: Option<Symbol>,
    /// Percent of equity, as the target says.
    pub target_weight: Decimal,
    /// Percent of equity now, to 4 decimals.
    pub current_weight: Decimal,
    /// `current_weight - target_weight`, in percentage points.
    pub drift: Decimal,
    /// Percent of equity once the plan is filled at the estimate prices.
    pub expected_weight: Decimal,
    pub current_value: Decimal,
    pub expected_value: Decimal,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sells first, then buys; each side sorted by symbol.
    pub orders: Vec<PlannedOrder>,
    /// Sells first, then buys; each side sorted by symbol.
    pub skipped: Vec<SkippedTrade>,
    /// Cash plus the value of every priced holding.
    pub equity: Decimal,
    pub cash_before: Decimal,
    /// Cash once every order fills at its estimate price.
    pub cash_after: Decimal,
    /// Cash first, then by symbol.
    pub drift: Vec<TickerDrift>,
}

/// Plans the trades of one account.
///
/// Never fails: what cannot be traded is reported in [`Plan::skipped`].
#[must_use]
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let liquidate_everything = matches!(input.kind, PlanKind::Liquidation { amount: None });
    let book = Book::new(input, liquidate_everything);
    let mut ledger = Ledger::default();
    book.report_unpriced_holdings(&mut ledger);
    match input.kind {
        PlanKind::FullRebalance => {
            book.report_unpriced_targets(&mut ledger);
            rebalance::full_rebalance(&book, &mut ledger);
        }
        PlanKind::InvestCash => {
            book.report_unpriced_targets(&mut ledger);
            buys::invest_cash(&book, &mut ledger);
        }
        PlanKind::Liquidation {
            amount: Some(amount),
        } => liquidation::raise_cash(&book, amount, &mut ledger),
        PlanKind::Liquidation { amount: None } => {
            liquidation::liquidate_everything(&book, &mut ledger)
        }
    }
    ledger.into_plan(&book)
}

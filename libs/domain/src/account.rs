//! Accounts of the book: status and restrictions, and the valuation rules
//! (equity, leverage) the monitor and the trade generator rely on.

use rust_decimal::Decimal;

crate::text_enum! {
    /// Lifecycle of an account.
    #[derive(Default)]
    pub enum AccountStatus {
        #[default]
        Active = "active",
        Closed = "closed",
    }
}

crate::text_enum! {
    /// How an account may use cash.
    #[derive(Default)]
    pub enum AccountType {
        /// Cash never goes below zero.
        #[default]
        Cash = "cash",
        /// Cash may go below zero, down to minus the margin limit.
        Margin = "margin",
    }
}

/// What an account may spend and withdraw, from its cash, its margin limit
/// and the withdrawals requested and not yet paid out or canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CashLimits {
    pub cash: Decimal,
    /// 0 for a cash account.
    pub margin_limit: Decimal,
    /// Withdrawals requested, not yet settled or canceled.
    pub earmarked: Decimal,
}

impl CashLimits {
    /// The cash held back for withdrawals: the earmark, as far as the cash
    /// covers it (the rest is still to be raised).
    #[must_use]
    pub fn held_back(&self) -> Decimal {
        self.earmarked.min(self.cash.max(Decimal::ZERO))
    }

    /// Cash that plans and drift count: cash less what is held back.
    #[must_use]
    pub fn free_cash(&self) -> Decimal {
        self.cash - self.held_back()
    }

    /// What buys may spend now: cash less every withdrawal requested, plus
    /// the margin limit; never below zero.
    #[must_use]
    pub fn buying_power(&self) -> Decimal {
        (self.cash - self.earmarked + self.margin_limit).max(Decimal::ZERO)
    }
}

crate::text_enum! {
    /// Why an account may not be traded normally.
    #[derive(PartialOrd, Ord)]
    pub enum Restriction {
        PatternDayTrader = "pattern_day_trader",
        AchReturn = "ach_return",
        TradingBlocked = "trading_blocked",
        /// Only sells are allowed.
        LiquidationOnly = "liquidation_only",
        /// Computed: position value above [`MAX_LEVERAGE`] times equity.
        LeverageExceeded = "leverage_exceeded",
        /// Set by reconciliation, never by the platform: the broker's
        /// statement differs from the book; no trading until they agree.
        BrokerBreak = "broker_break",
    }
}

impl Restriction {
    /// Whether buys are forbidden under this restriction.
    #[must_use]
    pub fn blocks_buys(self) -> bool {
        !matches!(self, Self::PatternDayTrader)
    }

    /// Whether sells are forbidden under this restriction.
    #[must_use]
    pub fn blocks_sells(self) -> bool {
        matches!(self, Self::TradingBlocked | Self::BrokerBreak)
    }
}

/// Position value above this many times equity is flagged.
pub const MAX_LEVERAGE: Decimal = Decimal::from_parts(6, 0, 0, false, 0);

/// Positions value over equity; `None` when equity is not positive.
#[must_use]
pub fn leverage(positions_value: Decimal, equity: Decimal) -> Option<Decimal> {
    if equity <= Decimal::ZERO {
        return None;
    }
    positions_value.checked_div(equity)
}

/// Whether an account's leverage is above the 6:1 limit (or equity is gone
/// while positions remain).
#[must_use]
pub fn leverage_exceeded(positions_value: Decimal, equity: Decimal) -> bool {
    // positions / equity > 6, without a division.
    if equity <= Decimal::ZERO {
        return positions_value > Decimal::ZERO;
    }
    positions_value > MAX_LEVERAGE * equity
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn leverage_limit_is_six_to_one() {
        assert!(!leverage_exceeded(dec!(600), dec!(100)));
        assert!(leverage_exceeded(dec!(600.01), dec!(100)));
        assert!(leverage_exceeded(dec!(10), dec!(0)));
        assert!(!leverage_exceeded(dec!(0), dec!(0)));
        assert_eq!(leverage(dec!(50), dec!(100)), Some(dec!(0.5)));
    }

    #[test]
    fn restrictions_round_trip() {
        for restriction in [
            Restriction::PatternDayTrader,
            Restriction::AchReturn,
            Restriction::TradingBlocked,
            Restriction::LiquidationOnly,
            Restriction::BrokerBreak,
            Restriction::LeverageExceeded,
        ] {
            assert_eq!(Restriction::parse(restriction.as_str()), Some(restriction));
        }
    }
}

/// A position as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct PositionInput {
    pub symbol: String,
    pub quantity: String,
    pub average_cost: String,
    /// Tax lots (transferred in); empty: none given.
    pub lots: Vec<crate::lots::LotInput>,
}

/// An account's whole state as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct AccountInput {
    pub account_id: String,
    pub status: Option<AccountStatus>,
    pub cash: String,
    pub positions: Vec<PositionInput>,
    /// `None` for an unspecified or unknown value.
    pub restrictions: Vec<Option<Restriction>>,
    /// `None`: a cash account.
    pub account_type: Option<AccountType>,
    /// Margin accounts only; empty is 0.
    pub margin_limit: String,
}

/// A validated position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub symbol: crate::Symbol,
    /// At least 0, at most 9 decimals.
    pub quantity: Decimal,
    pub average_cost: Decimal,
    /// The lots given with it, summing to `quantity`; empty: none given.
    pub lots: Vec<crate::lots::Lot>,
}

/// A validated account state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub account_id: String,
    pub status: AccountStatus,
    pub cash: Decimal,
    pub positions: Vec<Position>,
    pub restrictions: Vec<Restriction>,
    pub account_type: AccountType,
    /// 0 for a cash account.
    pub margin_limit: Decimal,
}

/// The largest cash balance or margin limit an account may state, in
/// dollars (a trillion): far above any real account, far below where
/// arithmetic on it could overflow.
pub const MAX_CASH: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// Most decimals of a share quantity.
pub const QUANTITY_SCALE: u32 = 9;

/// The largest share quantity an account may hold of one symbol (a
/// trillion), and the largest cost per share (a billion dollars): bounds
/// under which no valuation (quantity × price, summed over positions)
/// can overflow.
pub const MAX_QUANTITY: Decimal = MAX_CASH;
pub const MAX_COST: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Most positions one account may state.
pub const MAX_POSITIONS: usize = 10_000;

impl AccountInput {
    /// Checks every field.
    ///
    /// # Errors
    /// [`crate::Violations`] naming each offending field.
    pub fn validate(self) -> Result<AccountState, crate::Violations> {
        use crate::decimal::{parse_decimal, significant_scale};
        let mut violations = crate::Violations::new();
        if let Some(problem) = crate::ids::external_id_problem(&self.account_id) {
            violations.add("account_id", problem);
        }
        let cash = match parse_decimal(&self.cash) {
            Ok(cash) if significant_scale(cash) > 2 => {
                violations.add("cash", "must have at most 2 decimal places");
                Decimal::ZERO
            }
            Ok(cash) => cash.normalize(),
            Err(error) => {
                violations.add("cash", error.to_string());
                Decimal::ZERO
            }
        };
        let account_type = self.account_type.unwrap_or_default();
        let margin_limit = if self.margin_limit.is_empty() {
            Decimal::ZERO
        } else {
            match parse_decimal(&self.margin_limit) {
                Ok(_) if account_type == AccountType::Cash => {
                    violations.add("margin_limit", "is only for MARGIN accounts");
                    Decimal::ZERO
                }
                Ok(limit)
                    if limit.is_sign_negative()
                        || significant_scale(limit) > 2
                        || limit > MAX_CASH =>
                {
                    violations.add(
                        "margin_limit",
                        "must be between 0 and 1000000000000 with at most 2 decimal places",
                    );
                    Decimal::ZERO
                }
                Ok(limit) => limit.normalize(),
                Err(error) => {
                    violations.add("margin_limit", error.to_string());
                    Decimal::ZERO
                }
            }
        };
        if cash.abs() > MAX_CASH {
            violations.add("cash", "must be within 1000000000000 dollars of 0");
        } else if cash < -margin_limit {
            let problem = match account_type {
                AccountType::Cash => {
                    "must be 0 or more: a CASH account never goes below zero (a MARGIN account may, down to its margin_limit)".to_owned()
                }
                AccountType::Margin => format!("must not be below minus the margin_limit ({margin_limit})"),
            };
            violations.add("cash", problem);
        }
        if self.positions.len() > MAX_POSITIONS {
            violations.add(
                "positions",
                format!(
                    "at most {MAX_POSITIONS} positions per account ({} sent)",
                    self.positions.len()
                ),
            );
        }
        let mut positions: Vec<Position> =
            Vec::with_capacity(self.positions.len().min(MAX_POSITIONS));
        let mut seen: std::collections::HashMap<crate::Symbol, usize> =
            std::collections::HashMap::new();
        for (index, input) in self.positions.iter().take(MAX_POSITIONS).enumerate() {
            let at = |field: &str| format!("positions[{index}].{field}");
            let symbol = match crate::Symbol::parse(&input.symbol) {
                Ok(symbol) => symbol,
                Err(error) => {
                    violations.add(at("symbol"), error.to_string());
                    continue;
                }
            };
            if let Some(earlier) = seen.get(&symbol) {
                violations.add(
                    at("symbol"),
                    format!("duplicate symbol {symbol} (also in positions[{earlier}])"),
                );
                continue;
            }
            seen.insert(symbol.clone(), index);
            let quantity = match parse_decimal(&input.quantity) {
                Ok(quantity) if quantity.is_sign_negative() && !quantity.is_zero() => {
                    violations.add(at("quantity"), "must be 0 or more (no short positions)");
                    continue;
                }
                Ok(quantity) if significant_scale(quantity) > QUANTITY_SCALE => {
                    violations.add(at("quantity"), "must have at most 9 decimal places");
                    continue;
                }
                Ok(quantity) if quantity > MAX_QUANTITY => {
                    violations.add(at("quantity"), "must be at most 1000000000000 shares");
                    continue;
                }
                Ok(quantity) => quantity.normalize(),
                Err(error) => {
                    violations.add(at("quantity"), error.to_string());
                    continue;
                }
            };
            let average_cost = if input.average_cost.is_empty() {
                Decimal::ZERO
            } else {
                match parse_decimal(&input.average_cost) {
                    Ok(cost) if cost.is_sign_negative() && !cost.is_zero() => {
                        violations.add(at("average_cost"), "must be 0 or more");
                        continue;
                    }
                    Ok(cost) if cost > MAX_COST || significant_scale(cost) > QUANTITY_SCALE => {
                        violations.add(
                            at("average_cost"),
                            "must be at most 1000000000 dollars with at most 9 decimal places",
                        );
                        continue;
                    }
                    Ok(cost) => cost.normalize(),
                    Err(error) => {
                        violations.add(at("average_cost"), error.to_string());
                        continue;
                    }
                }
            };
            let lots = match crate::lots::validate_lots(&input.lots, quantity) {
                Ok(lots) => lots,
                Err(problems) => {
                    violations.extend_prefixed(&format!("positions[{index}]"), problems);
                    continue;
                }
            };
            // Lots given without an average cost give it.
            let average_cost = if input.average_cost.is_empty() && !quantity.is_zero() {
                let basis: Decimal = lots.iter().map(|lot| lot.basis).sum();
                (basis / quantity).round_dp(QUANTITY_SCALE).normalize()
            } else {
                average_cost
            };
            positions.push(Position {
                symbol,
                quantity,
                average_cost,
                lots,
            });
        }
        let mut restrictions = Vec::new();
        for (index, restriction) in self.restrictions.iter().enumerate() {
            match restriction {
                None => violations.add(
                    format!("restrictions[{index}]"),
                    "is not a known restriction",
                ),
                Some(Restriction::LeverageExceeded) => violations.add(
                    format!("restrictions[{index}]"),
                    "LEVERAGE_EXCEEDED is computed from positions and equity; it cannot be set",
                ),
                Some(Restriction::BrokerBreak) => violations.add(
                    format!("restrictions[{index}]"),
                    "BROKER_BREAK is set and cleared by ReconcileAccounts; it cannot be set",
                ),
                Some(restriction) => restrictions.push(*restriction),
            }
        }
        restrictions.sort();
        restrictions.dedup();
        violations.into_result(AccountState {
            account_id: self.account_id,
            status: self.status.unwrap_or_default(),
            cash,
            positions,
            restrictions,
            account_type,
            margin_limit,
        })
    }
}

#[cfg(test)]
mod input_tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn input() -> AccountInput {
        AccountInput {
            account_id: "acct-1".to_owned(),
            cash: "1000.50".to_owned(),
            positions: vec![PositionInput {
                symbol: "spy".to_owned(),
                quantity: "1.123456789".to_owned(),
                average_cost: String::new(),
                lots: Vec::new(),
            }],
            restrictions: vec![Some(Restriction::AchReturn)],
            ..AccountInput::default()
        }
    }

    #[test]
    fn valid_input() {
        let state = input().validate().expect("valid");
        assert_eq!(state.cash, dec!(1000.5));
        assert_eq!(state.positions[0].symbol.as_str(), "SPY");
        assert_eq!(state.positions[0].quantity, dec!(1.123456789));
        assert_eq!(state.status, AccountStatus::Active);
    }

    #[test]
    fn invalid_input_names_fields() {
        let mut bad = input();
        bad.account_id = String::new();
        bad.cash = "1.001".to_owned();
        bad.positions[0].quantity = "-1".to_owned();
        bad.positions.push(PositionInput {
            symbol: "TLT".to_owned(),
            quantity: "0.0000000001".to_owned(),
            average_cost: String::new(),
            lots: Vec::new(),
        });
        bad.restrictions = vec![None, Some(Restriction::LeverageExceeded)];
        let fields: Vec<String> = bad
            .validate()
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "account_id",
                "cash",
                "positions[0].quantity",
                "positions[1].quantity",
                "restrictions[0]",
                "restrictions[1]"
            ]
        );
    }
}

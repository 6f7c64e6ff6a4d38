//! Cash movements: deposits (credited when recorded) and withdrawal requests
//! (debited when paid out, once a liquidation has raised the cash), and the
//! rules of their lifecycle.

use rust_decimal::Decimal;

use crate::decimal::{parse_decimal, significant_scale};

crate::text_enum! {
    /// Direction of a movement.
    pub enum CashMovementKind {
        Deposit = "deposit",
        Withdrawal = "withdrawal",
    }
}

crate::text_enum! {
    /// Where a movement stands.
    pub enum CashMovementStatus {
        /// Not yet acted on by the monitor.
        Pending = "pending",
        /// The monitor acted on it.
        Acknowledged = "acknowledged",
        /// A withdrawal paid out.
        Settled = "settled",
        Canceled = "canceled",
    }
}

/// What is done to a movement after it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CashAction {
    Acknowledge,
    Settle,
    Cancel,
}

/// The outcome of an action: the new status and the change to the
/// account's cash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CashTransition {
    pub status: CashMovementStatus,
    pub cash_delta: Decimal,
}

/// The cash change of recording a movement: deposits are credited at once.
#[must_use]
pub fn cash_on_record(kind: CashMovementKind, amount: Decimal) -> Decimal {
    match kind {
        CashMovementKind::Deposit => amount,
        CashMovementKind::Withdrawal => Decimal::ZERO,
    }
}

/// Applies `action` to a movement in `status`.
///
/// # Errors
/// Why the action is not allowed in that state (a failed precondition).
pub fn transition(
    kind: CashMovementKind,
    status: CashMovementStatus,
    action: CashAction,
    amount: Decimal,
) -> Result<CashTransition, String> {
    use CashAction::{Acknowledge, Cancel, Settle};
    use CashMovementKind::{Deposit, Withdrawal};
    use CashMovementStatus::{Acknowledged, Canceled, Pending, Settled};
    let to = |status, cash_delta| Ok(CashTransition { status, cash_delta });
    match (kind, status, action) {
        (_, Pending, Acknowledge) => to(Acknowledged, Decimal::ZERO),
        // Acknowledging twice is harmless: the monitor may retry.
        (_, Acknowledged, Acknowledge) => to(Acknowledged, Decimal::ZERO),
        (Withdrawal, Pending | Acknowledged, Settle) => to(Settled, -amount),
        (Deposit, _, Settle) => {
            Err("a deposit is credited when recorded; only withdrawals are settled".to_owned())
        }
        (Withdrawal, Pending | Acknowledged, Cancel) => to(Canceled, Decimal::ZERO),
        // An uninvested deposit may be reversed (an ACH return): its cash leaves.
        (Deposit, Pending, Cancel) => to(Canceled, -amount),
        (Deposit, Acknowledged, Cancel) => {
            Err("the deposit was already acted on; record a withdrawal instead".to_owned())
        }
        (_, Settled | Canceled, _) => Err(format!("the movement is already {}", status.as_str())),
    }
}

/// Checks a movement amount: positive dollars with at most 2 decimals.
///
/// # Errors
/// The problem, for a field violation.
pub fn parse_amount(text: &str) -> Result<Decimal, String> {
    let amount = parse_decimal(text).map_err(|error| error.to_string())?;
    if amount <= Decimal::ZERO {
        return Err("must be greater than 0".to_owned());
    }
    if significant_scale(amount) > 2 {
        return Err("must have at most 2 decimal places".to_owned());
    }
    if amount > crate::account::MAX_CASH {
        return Err("must be at most 1000000000000 dollars".to_owned());
    }
    Ok(amount.normalize())
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn withdrawal_lifecycle() {
        let acknowledged = transition(
            CashMovementKind::Withdrawal,
            CashMovementStatus::Pending,
            CashAction::Acknowledge,
            dec!(5000),
        )
        .expect("acknowledge");
        assert_eq!(acknowledged.cash_delta, dec!(0));
        let settled = transition(
            CashMovementKind::Withdrawal,
            acknowledged.status,
            CashAction::Settle,
            dec!(5000),
        )
        .expect("settle");
        assert_eq!(settled.status, CashMovementStatus::Settled);
        assert_eq!(settled.cash_delta, dec!(-5000));
        assert!(
            transition(
                CashMovementKind::Withdrawal,
                settled.status,
                CashAction::Cancel,
                dec!(5000)
            )
            .is_err()
        );
    }

    #[test]
    fn deposits() {
        assert_eq!(
            cash_on_record(CashMovementKind::Deposit, dec!(100)),
            dec!(100)
        );
        assert!(
            transition(
                CashMovementKind::Deposit,
                CashMovementStatus::Pending,
                CashAction::Settle,
                dec!(1)
            )
            .is_err()
        );
        let reversed = transition(
            CashMovementKind::Deposit,
            CashMovementStatus::Pending,
            CashAction::Cancel,
            dec!(100),
        )
        .expect("reverse");
        assert_eq!(reversed.cash_delta, dec!(-100));
        assert!(
            transition(
                CashMovementKind::Deposit,
                CashMovementStatus::Acknowledged,
                CashAction::Cancel,
                dec!(100)
            )
            .is_err()
        );
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("100000"), Ok(dec!(100000)));
        assert!(parse_amount("0").is_err());
        assert!(parse_amount("-5").is_err());
        assert!(parse_amount("1.005").is_err());
        assert!(parse_amount("7922816251426433759354395033.5").is_err());
        assert!(parse_amount("1000000000000.01").is_err());
        assert_eq!(parse_amount("1000000000000"), Ok(dec!(1000000000000)));
    }
}

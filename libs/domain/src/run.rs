//! Runs and orders: their lifecycles and how a run's outcome follows from its
//! orders.
//!
//! Run: `proposed` (waits for approval) → `queued` → `in_progress` →
//! `completed_success` | `completed_adjusted` | `error` | `timeout` |
//! `canceled` | `canceled_mid_run`. Order, block order and child order:
//! `new` → `submitted` → `partially_filled` → `filled` | `canceled` |
//! `rejected` | `expired`.

crate::text_enum! {
    /// What a run does.
    pub enum RunKind {
        FullRebalance = "full_rebalance",
        InvestCash = "invest_cash",
        Liquidation = "liquidation",
    }
}

crate::text_enum! {
    /// Who started a run.
    pub enum InitiatedFrom {
        System = "system",
        Api = "api",
        User = "user",
    }
}

crate::text_enum! {
    /// Whether a run waits for an advisor.
    pub enum ApprovalMode {
        Auto = "auto",
        Manual = "manual",
    }
}

crate::text_enum! {
    /// Lifecycle of a run.
    pub enum RunStatus {
        Proposed = "proposed",
        Queued = "queued",
        InProgress = "in_progress",
        CompletedSuccess = "completed_success",
        CompletedAdjusted = "completed_adjusted",
        Error = "error",
        Timeout = "timeout",
        Canceled = "canceled",
        CanceledMidRun = "canceled_mid_run",
    }
}

crate::text_enum! {
    /// Lifecycle of an account order, a block order and a child order.
    pub enum OrderStatus {
        New = "new",
        Submitted = "submitted",
        PartiallyFilled = "partially_filled",
        Filled = "filled",
        Canceled = "canceled",
        Rejected = "rejected",
        Expired = "expired",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Proposed | Self::Queued | Self::InProgress)
    }
}

impl OrderStatus {
    /// Whether the order has ended.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Rejected | Self::Expired
        )
    }

    /// The status of an order that asked for `requested` and got `filled` so far.
    #[must_use]
    pub fn of_progress(requested: rust_decimal::Decimal, filled: rust_decimal::Decimal) -> Self {
        if filled >= requested {
            Self::Filled
        } else if filled.is_zero() {
            Self::Submitted
        } else {
            Self::PartiallyFilled
        }
    }
}

/// How a run ends once all its orders have: success only when every order
/// filled completely and nothing was skipped or excluded.
#[must_use]
pub fn outcome(
    order_statuses: &[OrderStatus],
    skipped_or_excluded: usize,
    cancel_requested: bool,
) -> RunStatus {
    if cancel_requested {
        return RunStatus::CanceledMidRun;
    }
    let all_filled = order_statuses
        .iter()
        .all(|status| *status == OrderStatus::Filled);
    let any_filled = order_statuses
        .iter()
        .any(|status| matches!(status, OrderStatus::Filled | OrderStatus::PartiallyFilled));
    if all_filled && skipped_or_excluded == 0 {
        RunStatus::CompletedSuccess
    } else if any_filled || order_statuses.is_empty() {
        RunStatus::CompletedAdjusted
    } else if order_statuses
        .iter()
        .all(|status| *status == OrderStatus::Rejected)
    {
        RunStatus::Error
    } else {
        RunStatus::CompletedAdjusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        use OrderStatus::{Expired, Filled, PartiallyFilled, Rejected};
        assert_eq!(
            outcome(&[Filled, Filled], 0, false),
            RunStatus::CompletedSuccess
        );
        assert_eq!(
            outcome(&[Filled, Filled], 1, false),
            RunStatus::CompletedAdjusted
        );
        assert_eq!(
            outcome(&[Filled, PartiallyFilled], 0, false),
            RunStatus::CompletedAdjusted
        );
        assert_eq!(
            outcome(&[Filled, Expired], 0, false),
            RunStatus::CompletedAdjusted
        );
        assert_eq!(outcome(&[Rejected, Rejected], 0, false), RunStatus::Error);
        assert_eq!(outcome(&[], 2, false), RunStatus::CompletedAdjusted);
        assert_eq!(outcome(&[Filled], 0, true), RunStatus::CanceledMidRun);
    }

    #[test]
    fn texts_round_trip() {
        for status in [
            RunStatus::Proposed,
            RunStatus::CanceledMidRun,
            RunStatus::CompletedAdjusted,
        ] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert!(RunStatus::Timeout.is_terminal());
        assert!(!RunStatus::Queued.is_terminal());
        assert_eq!(
            OrderStatus::parse("partially_filled"),
            Some(OrderStatus::PartiallyFilled)
        );
    }
}

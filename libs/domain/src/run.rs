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

    /// Whether a run may be created in this status: waiting for approval,
    /// queued, or already complete when there was nothing to trade.
    #[must_use]
    pub fn is_initial(self) -> bool {
        matches!(
            self,
            Self::Proposed | Self::Queued | Self::CompletedSuccess | Self::CompletedAdjusted
        )
    }

    /// The statuses a run may move to `to` from: the whole lifecycle in one
    /// table. Every store write of a run's status is checked against it
    /// (single rows through [`RunStatus::transition`], bulk updates by
    /// matching only these statuses).
    #[must_use]
    pub fn sources(to: Self) -> &'static [Self] {
        match to {
            Self::Proposed => &[],
            Self::Queued => &[Self::Proposed],
            Self::InProgress => &[Self::Queued],
            Self::CompletedSuccess | Self::CompletedAdjusted | Self::Error => &[Self::InProgress],
            Self::CanceledMidRun => &[Self::InProgress],
            Self::Canceled | Self::Timeout => &[Self::Proposed, Self::Queued],
        }
    }

    /// Moves a run from `self` to `to`.
    ///
    /// # Errors
    /// [`RunTransitionError`] when the lifecycle does not allow it.
    pub fn transition(self, to: Self) -> Result<Self, RunTransitionError> {
        if Self::sources(to).contains(&self) {
            Ok(to)
        } else {
            Err(RunTransitionError { from: self, to })
        }
    }
}

/// A change of a run's status that its lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("run is {from}, it cannot become {to}")]
pub struct RunTransitionError {
    pub from: RunStatus,
    pub to: RunStatus,
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

#[cfg(test)]
mod transition_tests {
    use super::RunStatus::{self, *};

    const ALL: [RunStatus; 9] = [
        Proposed,
        Queued,
        InProgress,
        CompletedSuccess,
        CompletedAdjusted,
        Error,
        Timeout,
        Canceled,
        CanceledMidRun,
    ];

    #[test]
    fn the_lifecycle_moves_forward_only() {
        assert_eq!(Proposed.transition(Queued), Ok(Queued));
        assert_eq!(Queued.transition(InProgress), Ok(InProgress));
        assert_eq!(
            InProgress.transition(CompletedAdjusted),
            Ok(CompletedAdjusted)
        );
        assert_eq!(Queued.transition(Timeout), Ok(Timeout));
        assert!(InProgress.transition(Canceled).is_err());
        assert!(Queued.transition(Proposed).is_err());
        let error = CompletedSuccess.transition(Queued).expect_err("terminal");
        assert_eq!(
            error.to_string(),
            "run is completed_success, it cannot become queued"
        );
    }

    #[test]
    fn terminal_runs_never_move_and_no_run_stays_put() {
        for from in ALL {
            for to in ALL {
                if from.is_terminal() || from == to {
                    assert!(from.transition(to).is_err(), "{from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn every_status_is_reachable_from_a_creation() {
        for to in ALL {
            assert!(
                to.is_initial() || !RunStatus::sources(to).is_empty(),
                "{to} is unreachable"
            );
        }
    }
}

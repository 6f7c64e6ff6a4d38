//! The adapter between wire types shared by several services
//! (`rebalancer.common.v1`, timestamps, decimal strings) and domain types,
//! and the checks every handler makes on a request's fields. Handlers convert
//! once, here, and then work with domain values only.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use rebalancer_domain::portfolio::{
    BandKind, CalendarRule, ConditionInput, ConditionKind, ConditionSubKind, DriftBand,
    RebalanceCondition, RebalanceTo, Weight, WeightInput, WeightKind, WeightTarget,
};
use rebalancer_proto::common as pb;
use rust_decimal::Decimal;
use tonic::Status;

use crate::error::invalid_field;

/// Checks that a string field (usually an id) was sent.
///
/// # Errors
/// `INVALID_ARGUMENT` on `field` when `value` is empty.
pub fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field, "is required"));
    }
    Ok(())
}

/// An optional enum filter of a list request: 0 (unspecified) is no filter;
/// `from_wire` converts the rest.
///
/// # Errors
/// `INVALID_ARGUMENT` on `field` ("is not a known {what}") for a value
/// `from_wire` does not know.
pub fn enum_filter<T>(
    field: &str,
    value: i32,
    from_wire: impl FnOnce(i32) -> Option<T>,
    what: &str,
) -> Result<Option<T>, Status> {
    if value == 0 {
        return Ok(None);
    }
    from_wire(value)
        .map(Some)
        .ok_or_else(|| invalid_field(field, format!("is not a known {what}")))
}

/// A weight as sent, for validation.
#[must_use]
pub fn weight_input(weight: &pb::Weight) -> WeightInput {
    let kind = match pb::WeightType::try_from(weight.r#type) {
        Ok(pb::WeightType::Cash) => Some(WeightKind::Cash),
        Ok(pb::WeightType::Asset) => Some(WeightKind::Asset),
        Ok(pb::WeightType::Portfolio) => Some(WeightKind::Portfolio),
        Ok(pb::WeightType::Unspecified) | Err(_) => None,
    };
    WeightInput {
        kind,
        symbol: weight.symbol.clone(),
        percent: weight.percent.clone(),
        portfolio_id: weight.portfolio_id.clone(),
    }
}

/// A rebalance condition as sent, for validation.
#[must_use]
pub fn condition_input(condition: &pb::RebalanceCondition) -> ConditionInput {
    let kind = match pb::ConditionType::try_from(condition.r#type) {
        Ok(pb::ConditionType::DriftBand) => Some(ConditionKind::DriftBand),
        Ok(pb::ConditionType::Calendar) => Some(ConditionKind::Calendar),
        Ok(pb::ConditionType::Unspecified) | Err(_) => None,
    };
    ConditionInput {
        kind,
        sub_kind: condition_sub_kind(condition.sub_type),
        percent: condition.percent.clone(),
        day: condition.day.clone(),
        symbol: condition.symbol.clone(),
        only_outside_bands: condition.only_outside_bands,
    }
}

/// A condition already validated by the target service, back in the
/// domain; `None` when it does not parse (a newer kind, say).
#[must_use]
pub fn condition_from_wire(wire: &pb::RebalanceCondition) -> Option<RebalanceCondition> {
    let input = condition_input(wire);
    match (input.kind?, input.sub_kind?) {
        (ConditionKind::DriftBand, sub_kind) => {
            let kind = match sub_kind {
                ConditionSubKind::Absolute => BandKind::Absolute,
                ConditionSubKind::Relative => BandKind::Relative,
                _ => return None,
            };
            Some(RebalanceCondition::DriftBand(DriftBand {
                kind,
                percent: input.percent.parse().ok()?,
                symbol: rebalancer_domain::Symbol::parse(&input.symbol).ok(),
            }))
        }
        (ConditionKind::Calendar, sub_kind) => rebalancer_domain::portfolio::calendar_rule(
            sub_kind, &input.day,
        )
        .map(if input.only_outside_bands {
            RebalanceCondition::Review
        } else {
            RebalanceCondition::Calendar
        }),
    }
}

/// A per-asset trading rule already validated by the target service, back
/// in the domain; `None` when it does not parse.
#[must_use]
pub fn asset_rule_from_wire(
    wire: &rebalancer_proto::target::AssetTradeRule,
) -> Option<rebalancer_domain::portfolio::AssetRule> {
    let amount = |text: &str| -> Option<Option<Decimal>> {
        if text.is_empty() {
            Some(None)
        } else {
            text.parse().ok().map(Some)
        }
    };
    Some(rebalancer_domain::portfolio::AssetRule {
        symbol: rebalancer_domain::Symbol::parse(&wire.symbol).ok()?,
        minimum_order_notional: amount(&wire.minimum_order_notional)?,
        minimum_drift: amount(&wire.minimum_drift)?,
    })
}

/// A condition sub-type as sent: `None` when unspecified or unknown.
#[must_use]
pub fn condition_sub_kind(value: i32) -> Option<ConditionSubKind> {
    match pb::ConditionSubType::try_from(value) {
        Ok(pb::ConditionSubType::Absolute) => Some(ConditionSubKind::Absolute),
        Ok(pb::ConditionSubType::Relative) => Some(ConditionSubKind::Relative),
        Ok(pb::ConditionSubType::Weekly) => Some(ConditionSubKind::Weekly),
        Ok(pb::ConditionSubType::Monthly) => Some(ConditionSubKind::Monthly),
        Ok(pb::ConditionSubType::Quarterly) => Some(ConditionSubKind::Quarterly),
        Ok(pb::ConditionSubType::Annually) => Some(ConditionSubKind::Annually),
        Ok(pb::ConditionSubType::Unspecified) | Err(_) => None,
    }
}

/// Where a rebalance goes, as sent: `None` when unspecified (to target).
#[must_use]
pub fn rebalance_to_input(value: i32) -> Option<RebalanceTo> {
    match pb::RebalanceTo::try_from(value) {
        Ok(pb::RebalanceTo::Target) => Some(RebalanceTo::Target),
        Ok(pb::RebalanceTo::BandEdge) => Some(RebalanceTo::BandEdge),
        Ok(pb::RebalanceTo::Unspecified) | Err(_) => None,
    }
}

/// Refuses a `rebalance_to` value this build does not know (0, unspecified,
/// is fine: to target).
///
/// # Errors
/// `INVALID_ARGUMENT` naming `field`.
pub fn check_rebalance_to(field: &str, value: i32) -> Result<(), Status> {
    if value != 0 && rebalance_to_input(value).is_none() {
        return Err(invalid_field(field, "is not a known rebalance target"));
    }
    Ok(())
}

/// Where a rebalance goes, on the wire.
#[must_use]
pub fn rebalance_to_wire(value: RebalanceTo) -> i32 {
    match value {
        RebalanceTo::Target => pb::RebalanceTo::Target,
        RebalanceTo::BandEdge => pb::RebalanceTo::BandEdge,
    }
    .into()
}

/// A validated weight on the wire.
#[must_use]
pub fn weight_to_wire(weight: &Weight) -> pb::Weight {
    let (kind, symbol, portfolio_id) = match &weight.target {
        WeightTarget::Cash => (pb::WeightType::Cash, String::new(), String::new()),
        WeightTarget::Asset(symbol) => (pb::WeightType::Asset, symbol.to_string(), String::new()),
        WeightTarget::Portfolio(id) => (pb::WeightType::Portfolio, String::new(), id.clone()),
    };
    pb::Weight {
        r#type: kind.into(),
        symbol,
        percent: decimal_text(weight.percent),
        portfolio_id,
    }
}

/// A validated condition on the wire.
#[must_use]
pub fn condition_to_wire(condition: &RebalanceCondition) -> pb::RebalanceCondition {
    match condition {
        RebalanceCondition::DriftBand(DriftBand {
            kind,
            percent,
            symbol,
        }) => pb::RebalanceCondition {
            r#type: pb::ConditionType::DriftBand.into(),
            sub_type: match kind {
                BandKind::Absolute => pb::ConditionSubType::Absolute,
                BandKind::Relative => pb::ConditionSubType::Relative,
            }
            .into(),
            percent: decimal_text(*percent),
            day: String::new(),
            symbol: symbol.as_ref().map(ToString::to_string).unwrap_or_default(),
            only_outside_bands: false,
        },
        RebalanceCondition::Calendar(rule) | RebalanceCondition::Review(rule) => {
            pb::RebalanceCondition {
                r#type: pb::ConditionType::Calendar.into(),
                sub_type: match rule {
                    CalendarRule::Weekly(_) => pb::ConditionSubType::Weekly,
                    CalendarRule::Monthly(_) => pb::ConditionSubType::Monthly,
                    CalendarRule::Quarterly { .. } => pb::ConditionSubType::Quarterly,
                    CalendarRule::Annually { .. } => pb::ConditionSubType::Annually,
                }
                .into(),
                percent: String::new(),
                day: rule.day_text(),
                symbol: String::new(),
                only_outside_bands: matches!(condition, RebalanceCondition::Review(_)),
            }
        }
    }
}

/// A decimal as the API writes it: no trailing zeros ("60", "417.8").
#[must_use]
pub fn decimal_text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// A money amount with exactly two decimals ("417.80").
#[must_use]
pub fn money_text(value: Decimal) -> String {
    let mut rounded = value.round_dp(2);
    rounded.rescale(2);
    rounded.to_string()
}

#[must_use]
pub fn timestamp(moment: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: moment.timestamp(),
        nanos: i32::try_from(moment.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A wire timestamp as a moment; `None` when out of range.
#[must_use]
pub fn datetime(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// An optional id filter of a listing: empty is no filter; anything else
/// must look like an id.
///
/// # Errors
/// `INVALID_ARGUMENT` on `field` for a malformed id.
pub fn id_filter(field: &str, value: String) -> Result<Option<String>, tonic::Status> {
    if value.is_empty() {
        return Ok(None);
    }
    match rebalancer_domain::ids::external_id_problem(&value) {
        Some(problem) => Err(crate::error::invalid_field(field, problem)),
        None => Ok(Some(value)),
    }
}

/// An account's trading preferences as sent, for validation.
#[must_use]
pub fn preferences_input(
    wire: &rebalancer_proto::execution::TradingPreferences,
) -> rebalancer_domain::preferences::PreferencesInput {
    use rebalancer_domain::preferences::{PreferencesInput, RestrictionInput, SubstituteInput};
    PreferencesInput {
        restricted: wire
            .restricted_symbols
            .iter()
            .map(|rule| RestrictionInput {
                symbol: rule.symbol.clone(),
                no_buy: rule.no_buy,
                no_sell: rule.no_sell,
                reason: rule.reason.clone(),
            })
            .collect(),
        substitutes: wire
            .substitutes
            .iter()
            .map(|pair| SubstituteInput {
                model_symbol: pair.model_symbol.clone(),
                held_symbol: pair.held_symbol.clone(),
            })
            .collect(),
        cash_reserve_amount: wire.cash_reserve_amount.clone(),
        cash_reserve_percent: wire.cash_reserve_percent.clone(),
    }
}

/// Stored trading preferences on the wire.
#[must_use]
pub fn preferences_to_wire(
    preferences: &rebalancer_domain::preferences::TradingPreferences,
) -> rebalancer_proto::execution::TradingPreferences {
    use rebalancer_domain::preferences::CashReserve;
    use rebalancer_proto::execution as exec;
    let (amount, percent) = match preferences.cash_reserve {
        Some(CashReserve::Amount(amount)) => (money_text(amount), String::new()),
        Some(CashReserve::Percent(percent)) => (String::new(), decimal_text(percent)),
        None => (String::new(), String::new()),
    };
    exec::TradingPreferences {
        restricted_symbols: preferences
            .restricted
            .iter()
            .map(|rule| exec::RestrictedSymbol {
                symbol: rule.symbol.clone(),
                no_buy: rule.no_buy,
                no_sell: rule.no_sell,
                reason: rule.reason.clone(),
            })
            .collect(),
        substitutes: preferences
            .substitutes
            .iter()
            .map(|pair| exec::Substitute {
                model_symbol: pair.model_symbol.clone(),
                held_symbol: pair.held_symbol.clone(),
            })
            .collect(),
        cash_reserve_amount: amount,
        cash_reserve_percent: percent,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn required_names_the_missing_field() {
        assert!(required("portfolio_id", "p-1").is_ok());
        let status = required("portfolio_id", "").expect_err("empty");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid request: portfolio_id: is required"
        );
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money_text(dec!(417.8)), "417.80");
        assert_eq!(money_text(dec!(5)), "5.00");
        assert_eq!(money_text(dec!(1.005)), "1.00");
        assert_eq!(decimal_text(dec!(60.00)), "60");
    }

    #[test]
    fn timestamps_round_trip() {
        let moment = Utc::now();
        assert_eq!(datetime(&timestamp(moment)), Some(moment));
    }
}

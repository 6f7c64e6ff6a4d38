//! The adapter between wire types shared by several services
//! (`rebalancer.common.v1`, timestamps, decimal strings) and domain types,
//! and the checks every handler makes on a request's fields. Handlers convert
//! once, here, and then work with domain values only.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use rebalancer_domain::portfolio::{
    BandKind, CalendarRule, ConditionInput, ConditionKind, ConditionSubKind, DriftBand,
    RebalanceCondition, Weight, WeightInput, WeightKind, WeightTarget,
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
    let sub_kind = match pb::ConditionSubType::try_from(condition.sub_type) {
        Ok(pb::ConditionSubType::Absolute) => Some(ConditionSubKind::Absolute),
        Ok(pb::ConditionSubType::Relative) => Some(ConditionSubKind::Relative),
        Ok(pb::ConditionSubType::Weekly) => Some(ConditionSubKind::Weekly),
        Ok(pb::ConditionSubType::Monthly) => Some(ConditionSubKind::Monthly),
        Ok(pb::ConditionSubType::Quarterly) => Some(ConditionSubKind::Quarterly),
        Ok(pb::ConditionSubType::Annually) => Some(ConditionSubKind::Annually),
        Ok(pb::ConditionSubType::Unspecified) | Err(_) => None,
    };
    ConditionInput {
        kind,
        sub_kind,
        percent: condition.percent.clone(),
        day: condition.day.clone(),
        symbol: condition.symbol.clone(),
    }
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
        },
        RebalanceCondition::Calendar(rule) => pb::RebalanceCondition {
            r#type: pb::ConditionType::Calendar.into(),
            sub_type: match rule {
                CalendarRule::Weekly(_) => pb::ConditionSubType::Weekly,
                CalendarRule::Monthly(_) => pb::ConditionSubType::Monthly,
                CalendarRule::Quarterly(_) => pb::ConditionSubType::Quarterly,
                CalendarRule::Annually { .. } => pb::ConditionSubType::Annually,
            }
            .into(),
            percent: String::new(),
            day: rule.day_text(),
            symbol: String::new(),
        },
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

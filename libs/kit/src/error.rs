//! Mapping errors to gRPC statuses. Validation failures become
//! `INVALID_ARGUMENT` with one `google.rpc.BadRequest` field violation per
//! problem; unexpected failures become an opaque `INTERNAL` while the whole
//! cause chain goes to the log.

use std::fmt::Write as _;

use rebalancer_domain::Violations;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `INVALID_ARGUMENT` naming every offending field, in the message (for
/// humans and grpcurl) and as `BadRequest` details (for programs).
#[must_use]
pub fn invalid_argument(violations: &Violations) -> Status {
    let mut details = ErrorDetails::new();
    for violation in violations.as_slice() {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}

/// `INVALID_ARGUMENT` for a single field.
#[must_use]
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    invalid_argument(&Violations::one(field, description))
}

/// An opaque `INTERNAL` status; the error and its causes are logged.
#[must_use]
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Status {
    tracing::error!(error = %error_chain(error), "internal error");
    Status::internal("internal error")
}

/// `error: cause: cause...` on one line.
#[must_use]
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_each_field() {
        let mut violations = Violations::new();
        violations.add("weights[1].percent", "must have at most 2 decimal places");
        violations.add("cooldown_days", "must be 0 or more");
        let status = invalid_argument(&violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("weights[1].percent"));
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        let fields: Vec<&str> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["weights[1].percent", "cooldown_days"]);
    }
}

//! The error taxonomy of every service and its one mapping to gRPC statuses.
//!
//! Store code fails with [`StoreError`]; service code with [`ServiceError`],
//! into which a `StoreError` converts on purpose (a taken unique key is
//! `ALREADY_EXISTS`, a stale revision `ABORTED`, a reused idempotency key
//! `INVALID_ARGUMENT` on `idempotency_key`). A `ServiceError` becomes a
//! `tonic::Status` in one place: validation failures are `INVALID_ARGUMENT`
//! with one `google.rpc.BadRequest` field violation per problem; unexpected
//! failures are an opaque `INTERNAL` while the whole cause chain goes to the
//! log.

use std::fmt::Write as _;

use rebalancer_domain::Violations;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::db::ClaimError;

/// Everything a service operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; nothing was changed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Optimistic concurrency: the etag no longer matches.
    #[error("{0}")]
    Aborted(String),
    /// A service this one depends on failed.
    #[error("{0}")]
    Unavailable(String),
    /// The caller may call the RPC, but a rule forbids this caller this
    /// change (the four-eyes rule).
    #[error("{0}")]
    PermissionDenied(String),
    /// Unexpected: the client sees only "internal error", the log the causes.
    #[error("storage failure")]
    Store(#[source] StoreError),
}

/// Storage failures, shared by every service's store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (for example a portfolio name).
    #[error("{0}")]
    Conflict(String),
    /// The expected revision did not match.
    #[error("{0}")]
    StaleRevision(String),
    #[error("{0}")]
    NotFound(String),
    /// The state forbids the change.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("idempotency key was already used for a different request")]
    IdempotencyMismatch,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<ClaimError> for StoreError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Mismatch => Self::IdempotencyMismatch,
            ClaimError::Database(error) => Self::Database(error),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::AlreadyExists(message),
            StoreError::StaleRevision(message) => Self::Aborted(message),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::FailedPrecondition(message) => Self::FailedPrecondition(message),
            StoreError::IdempotencyMismatch => Self::Invalid(Violations::one(
                "idempotency_key",
                "was already used for a different request",
            )),
            // PostgreSQL cannot hold a NUL character in text: the request
            // carried one in a field no check looked at.
            StoreError::Database(error)
                if error
                    .as_database_error()
                    .and_then(|db| db.code())
                    .is_some_and(|code| code == "22021") =>
            {
                Self::Invalid(Violations::one(
                    "request",
                    "a text field holds a NUL character or bytes that are not UTF-8",
                ))
            }
            error @ (StoreError::Database(_) | StoreError::Corrupt(_)) => Self::Store(error),
        }
    }
}

impl From<Violations> for ServiceError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(violations) => invalid_argument(&violations),
            ServiceError::NotFound(message) => Status::not_found(bounded(message)),
            ServiceError::AlreadyExists(message) => Status::already_exists(bounded(message)),
            ServiceError::FailedPrecondition(message) => {
                Status::failed_precondition(bounded(message))
            }
            ServiceError::Aborted(message) => Status::aborted(bounded(message)),
            ServiceError::Unavailable(message) => Status::unavailable(bounded(message)),
            ServiceError::PermissionDenied(message) => Status::permission_denied(bounded(message)),
            error @ ServiceError::Store(_) => internal(&error),
        }
    }
}

/// `INVALID_ARGUMENT` naming every offending field, in the message (for
/// humans and grpcurl) and as `BadRequest` details (for programs).
#[must_use]
pub fn invalid_argument(violations: &Violations) -> Status {
    // The details travel in one HTTP/2 header: they stay well under the
    // 16 KiB a client accepts, however many problems the request had.
    let mut details = ErrorDetails::new();
    let all = violations.as_slice();
    let mut listed = 0;
    let mut size = 0;
    for violation in all {
        let field = cut(violation.field.clone(), MAX_DETAIL);
        let description = cut(violation.description.clone(), MAX_DETAIL);
        size += field.len() + description.len();
        if listed == MAX_VIOLATIONS || size > MAX_DETAILS {
            break;
        }
        details.add_bad_request_violation(field, description);
        listed += 1;
    }
    if all.len() > listed {
        details.add_bad_request_violation("", format!("and {} more problems", all.len() - listed));
    }
    Status::with_error_details(
        Code::InvalidArgument,
        bounded(format!("invalid request: {violations}")),
        details,
    )
}

/// Most field violations one refusal lists.
const MAX_VIOLATIONS: usize = 100;
/// Longest message or violation text: an oversized input is never echoed whole.
const MAX_MESSAGE: usize = 1024;

/// Longest field or description of one listed violation.
const MAX_DETAIL: usize = 256;
/// Most bytes of violations listed in the details.
const MAX_DETAILS: usize = 6 * 1024;

/// `message`, cut to [`MAX_MESSAGE`] bytes (on a character boundary).
fn bounded(message: String) -> String {
    cut(message, MAX_MESSAGE)
}

/// `text`, cut to `max` bytes on a character boundary, saying how long it was.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
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

    fn status_of(error: StoreError) -> Status {
        Status::from(ServiceError::from(error))
    }

    #[test]
    fn oversized_input_is_never_echoed_whole() {
        let huge = "x".repeat(200_000);
        let status = Status::from(ServiceError::NotFound(format!("account {huge} not found")));
        assert!(status.message().len() < 1_100, "{}", status.message().len());
        let mut violations = Violations::new();
        for index in 0..1_000 {
            violations.add(format!("positions[{index}].symbol"), huge.clone());
        }
        let status = invalid_argument(&violations);
        assert!(status.message().len() < 1_100);
        let details = status.get_error_details();
        let listed = details
            .bad_request()
            .map_or(0, |b| b.field_violations.len());
        assert!((2..=MAX_VIOLATIONS + 1).contains(&listed), "{listed}");
        assert!(
            status.details().len() < 10 * 1024,
            "{}",
            status.details().len()
        );
    }

    #[test]
    fn store_errors_map_to_their_status_codes() {
        let cases = [
            (
                StoreError::Conflict("taken".to_owned()),
                Code::AlreadyExists,
            ),
            (StoreError::StaleRevision("stale".to_owned()), Code::Aborted),
            (StoreError::NotFound("gone".to_owned()), Code::NotFound),
            (
                StoreError::FailedPrecondition("closed".to_owned()),
                Code::FailedPrecondition,
            ),
            (StoreError::IdempotencyMismatch, Code::InvalidArgument),
            (
                StoreError::Database(sqlx::Error::RowNotFound),
                Code::Internal,
            ),
            (StoreError::Corrupt("flag \"x\"".to_owned()), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(status_of(error).code(), code);
        }
    }

    #[test]
    fn a_reused_idempotency_key_names_its_field() {
        let status = status_of(StoreError::IdempotencyMismatch);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        assert_eq!(bad_request.field_violations[0].field, "idempotency_key");
    }

    #[test]
    fn storage_failures_are_opaque() {
        let status = status_of(StoreError::Corrupt("secret row".to_owned()));
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn claim_errors_become_store_errors() {
        assert!(matches!(
            StoreError::from(ClaimError::Mismatch),
            StoreError::IdempotencyMismatch
        ));
        assert!(matches!(
            StoreError::from(ClaimError::Database(sqlx::Error::RowNotFound)),
            StoreError::Database(_)
        ));
    }
}

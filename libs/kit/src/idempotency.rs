//! Idempotency: a create repeated with the same key returns the first result.
//! The request's fingerprint (a hash of its encoded message without the key)
//! is stored with the key, so a key reused for a different request is refused
//! instead of silently answering with an unrelated resource.

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a protobuf message's encoding. Callers clear the
/// `idempotency_key` field first so only the payload counts.
#[must_use]
pub fn fingerprint<M: prost::Message>(message: &M) -> String {
    let digest = Sha256::digest(message.encode_to_vec());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An idempotency key claimed by a create.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// The RPC, so one key may be used once per kind of create.
    pub operation: &'static str,
    pub key: String,
    /// Hash of the request without its key.
    pub fingerprint: String,
}

/// Result of a create that may have been a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<T> {
    New(T),
    /// The idempotency key was seen before; this is the first result.
    Replayed(T),
}

impl<T> Created<T> {
    pub fn into_inner(self) -> T {
        match self {
            Self::New(value) | Self::Replayed(value) => value,
        }
    }

    #[must_use]
    pub fn is_new(&self) -> bool {
        matches!(self, Self::New(_))
    }
}

/// The claim of a request's idempotency key; `None` when no key was sent.
///
/// # Errors
/// `INVALID_ARGUMENT` on `idempotency_key` when the key is malformed.
pub fn claim<M: prost::Message + Clone>(
    operation: &'static str,
    key: &str,
    message: &M,
    clear_key: impl FnOnce(&mut M),
) -> Result<Option<IdempotencyClaim>, tonic::Status> {
    if let Some(problem) = rebalancer_domain::ids::idempotency_key_problem(key) {
        return Err(crate::error::invalid_field("idempotency_key", problem));
    }
    if key.is_empty() {
        return Ok(None);
    }
    let mut without_key = message.clone();
    clear_key(&mut without_key);
    Ok(Some(IdempotencyClaim {
        operation,
        key: key.to_owned(),
        fingerprint: fingerprint(&without_key),
    }))
}

/// The claim of a request's idempotency key, which must be sent: for creates
/// that move money (or create work that does), where a client's retry without
/// a key would do it twice.
///
/// # Errors
/// `INVALID_ARGUMENT` on `idempotency_key` when the key is missing or malformed.
pub fn required_claim<M: prost::Message + Clone>(
    operation: &'static str,
    key: &str,
    message: &M,
    clear_key: impl FnOnce(&mut M),
) -> Result<IdempotencyClaim, tonic::Status> {
    claim(operation, key, message, clear_key)?
        .ok_or_else(|| crate::error::invalid_field("idempotency_key", "is required"))
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn violated_field(status: &tonic::Status) -> String {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        let bad_request = status.get_error_details().bad_request().cloned();
        bad_request.expect("field violations").field_violations[0]
            .field
            .clone()
    }

    #[test]
    fn a_required_key_must_be_sent() {
        let message = String::from("payload");
        let missing = required_claim("Create", "", &message, |_| {}).expect_err("no key");
        assert_eq!(violated_field(&missing), "idempotency_key");
        assert!(missing.message().contains("is required"), "{missing:?}");
        let malformed =
            required_claim("Create", "has space", &message, |_| {}).expect_err("bad key");
        assert_eq!(violated_field(&malformed), "idempotency_key");
        let claim = required_claim("Create", "key-1", &message, |_| {}).expect("key");
        assert_eq!((claim.operation, claim.key.as_str()), ("Create", "key-1"));
        assert_eq!(claim.fingerprint, fingerprint(&message));
    }

    #[test]
    fn an_optional_key_may_be_left_out() {
        let message = String::from("payload");
        assert!(
            claim("Create", "", &message, |_| {})
                .expect("no key")
                .is_none()
        );
    }
}

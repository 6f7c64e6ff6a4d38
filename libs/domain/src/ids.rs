//! Identifiers that come from outside: account ids (the platform's own),
//! resource ids (ours, UUIDs) and idempotency keys.

/// Longest external id accepted.
pub const MAX_ID_LEN: usize = 64;

/// Checks an id supplied by a caller: 1 to 64 characters of letters, digits
/// and `-_.:`. Returns the reason when it is not.
#[must_use]
pub fn external_id_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("is required".to_owned());
    }
    if text.len() > MAX_ID_LEN {
        return Some(format!("must be at most {MAX_ID_LEN} characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if !text.chars().all(allowed) {
        return Some("may contain only letters, digits and - _ . :".to_owned());
    }
    None
}

/// Idempotency keys follow the same rule as external ids, up to 128 characters.
#[must_use]
pub fn idempotency_key_problem(text: &str) -> Option<String> {
    if text.len() > 128 {
        return Some("must be at most 128 characters".to_owned());
    }
    if text.is_empty() {
        return None;
    }
    let allowed = |c: char| c.is_ascii_graphic();
    if !text.chars().all(allowed) {
        return Some("may contain only printable ASCII without spaces".to_owned());
    }
    None
}

/// Whether a time a caller sent is plausible for this system: from 2000 to
/// 2100 (anything else is a mistake, and years past 9999 break RFC 3339
/// clients).
#[must_use]
pub fn plausible_time(moment: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (2000..2100).contains(&moment.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids() {
        assert_eq!(external_id_problem("acct-001"), None);
        assert_eq!(external_id_problem("a:b.c_d"), None);
        assert!(external_id_problem("").is_some());
        assert!(external_id_problem("has space").is_some());
        assert!(external_id_problem(&"x".repeat(65)).is_some());
    }
}

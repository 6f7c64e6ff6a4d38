//! Pagination: page sizes and opaque page tokens. A token is the sort key of
//! the last item returned, base64url-encoded; the next page starts after it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Status;

use crate::error::invalid_field;

/// Page size when the request leaves it 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size to use for a request's `page_size`.
///
/// # Errors
/// `INVALID_ARGUMENT` on `page_size` when negative.
pub fn page_size(requested: i32) -> Result<u32, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(invalid_field("page_size", "must be 0 or more")),
        n => Ok(n.unsigned_abs().min(MAX_PAGE_SIZE)),
    }
}

/// Encodes the sort key of the last item of a page.
#[must_use]
pub fn encode_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key.as_bytes())
}

/// Decodes a request's `page_token`; empty means the first page.
///
/// # Errors
/// `INVALID_ARGUMENT` on `page_token` when it was not produced by [`encode_token`].
pub fn decode_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid_field("page_token", "is not a token returned by this API"))?;
    let key = String::from_utf8(bytes)
        .map_err(|_| invalid_field("page_token", "is not a token returned by this API"))?;
    Ok(Some(key))
}

/// Splits a fetched page of `limit + 1` rows into the page and the next token.
pub fn finish_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let token = rows
            .last()
            .map(|row| encode_token(&key(row)))
            .unwrap_or_default();
        (rows, token)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = encode_token("0191e0c4-7b7a-7000-8000-000000000001");
        assert_eq!(
            decode_token(&token).expect("valid").as_deref(),
            Some("0191e0c4-7b7a-7000-8000-000000000001")
        );
        assert!(decode_token("not base64!").is_err());
        assert_eq!(decode_token("").expect("empty"), None);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).expect("default"), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).expect("capped"), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn finish_page_sets_token_only_when_more() {
        let (rows, token) = finish_page(vec![1, 2, 3], 2, ToString::to_string);
        assert_eq!(rows, [1, 2]);
        assert_eq!(decode_token(&token).expect("valid").as_deref(), Some("2"));
        let (rows, token) = finish_page(vec![1, 2], 2, ToString::to_string);
        assert_eq!(rows, [1, 2]);
        assert!(token.is_empty());
    }
}

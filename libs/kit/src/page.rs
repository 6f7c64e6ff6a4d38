//! Pagination: page sizes, opaque page tokens and the page a list request
//! asks for. A token is the sort key of the last item returned and a MAC of
//! it, base64url-encoded: the next page starts after it, and a caller cannot
//! make up a token the server did not hand out. Tokens are signed with a key
//! derived from the service secret ([`set_token_key`]), the same on every
//! replica; without one (dev, tests), with a built-in key. A store is asked
//! for one item more than the page holds, so the handler knows whether
//! another page follows without counting.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::Status;

use crate::error::invalid_field;

/// Bytes of the MAC kept in a token.
const MAC_LEN: usize = 16;

static TOKEN_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Signs this process's page tokens with a key derived from `secret` (the
/// service secret, shared by the replicas). Only the first call counts.
pub fn set_token_key(secret: &[u8]) {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(b"page").expect("hmac key"));
    mac.update(b"rebalancer page tokens");
    let _ = TOKEN_KEY.set(mac.finalize().into_bytes().to_vec());
}

fn token_mac(key: &str) -> Hmac<Sha256> {
    let secret = TOKEN_KEY.get().map_or(
        b"rebalancer page tokens (built-in key)".as_slice(),
        Vec::as_slice,
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac takes any key");
    mac.update(key.as_bytes());
    mac
}

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
    let tag = token_mac(last_key).finalize().into_bytes();
    let mut bytes = last_key.as_bytes().to_vec();
    bytes.extend_from_slice(&tag[..MAC_LEN]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a request's `page_token`; empty means the first page.
///
/// # Errors
/// `INVALID_ARGUMENT` on `page_token` when it was not produced by [`encode_token`].
pub fn decode_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let refused = || invalid_field("page_token", "is not a token returned by this API");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
    let split = bytes.len().checked_sub(MAC_LEN).ok_or_else(refused)?;
    let (key, tag) = bytes.split_at(split);
    let key = std::str::from_utf8(key).map_err(|_| refused())?;
    token_mac(key)
        .verify_truncated_left(tag)
        .map_err(|_| refused())?;
    Ok(Some(key.to_owned()))
}

/// The page a list request asks for, read from its `page_size` and
/// `page_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items the page holds at most.
    pub size: u32,
    /// The sort key the page starts after; `None` on the first page.
    pub after: Option<String>,
}

impl Page {
    /// Reads a request's `page_size` (0 is the default, capped at
    /// [`MAX_PAGE_SIZE`]) and `page_token` (empty is the first page).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` on `page_size` when negative, on `page_token` when
    /// it was not produced by this API.
    pub fn from_request(requested_size: i32, page_token: &str) -> Result<Self, Status> {
        Ok(Self {
            size: page_size(requested_size)?,
            after: decode_token(page_token)?,
        })
    }

    /// How many items to fetch: one more than the page holds.
    #[must_use]
    pub fn fetch_limit(&self) -> u32 {
        self.size + 1
    }

    /// The store's request for this page (with [`Page::fetch_limit`] items).
    #[must_use]
    pub fn fetch(&self) -> PageRequest {
        PageRequest {
            after: self.after.clone(),
            limit: self.fetch_limit(),
        }
    }

    /// Splits the fetched items into the page and the next page's token
    /// (empty on the last page); `key` is an item's sort key.
    pub fn finish<T>(&self, fetched: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        finish_page(fetched, self.size, key)
    }
}

/// A store's page request: items strictly after `after` in the listing
/// order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
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
    fn made_up_and_altered_tokens_are_refused() {
        let forged = URL_SAFE_NO_PAD.encode(b"0191e0c4-7b7a-7000-8000-000000000001");
        assert!(decode_token(&forged).is_err(), "an unsigned key");
        let token = encode_token("acct-0100");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        bytes[5] ^= 1;
        assert!(
            decode_token(&URL_SAFE_NO_PAD.encode(&bytes)).is_err(),
            "an altered key"
        );
        assert!(
            decode_token(&URL_SAFE_NO_PAD.encode(b"x")).is_err(),
            "too short"
        );
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).expect("default"), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).expect("capped"), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn a_page_fetches_one_more_and_tokens_its_last_item() {
        let first = Page::from_request(2, "").expect("first page");
        assert_eq!(first.after, None);
        assert_eq!(
            first.fetch(),
            PageRequest {
                after: None,
                limit: 3
            }
        );
        let (items, token) = first.finish(vec!["a", "b", "c"], ToString::to_string);
        assert_eq!(items, ["a", "b"]);
        let second = Page::from_request(2, &token).expect("second page");
        assert_eq!(second.after.as_deref(), Some("b"));
        assert_eq!(second.fetch_limit(), 3);
        assert!(Page::from_request(-1, "").is_err());
        assert!(Page::from_request(2, "not base64!").is_err());
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

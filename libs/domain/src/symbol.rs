//! Ticker symbols.

use std::fmt;

/// A well-formed ticker: 1 to 10 characters, upper-case letters and digits,
/// starting with a letter, with an optional class suffix after `.` or `/`
/// ("BRK.B"), or a crypto pair's quote currency after `/` ("BTC/USD",
/// "ETH/USDC"). Lower case input is upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(String);

/// Why a symbol was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("is required")]
    Empty,
    #[error(
        "{0:?} is not a well-formed ticker (letters and digits, up to 10, optional class suffix like BRK.B or pair like BTC/USD)"
    )]
    Malformed(String),
}

/// Stored and sent as its text.
impl serde::Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Parsed again, so a stored symbol is always well formed.
impl<'de> serde::Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Symbol {
    /// Parses and upper-cases a ticker.
    ///
    /// # Errors
    /// [`SymbolError`] when empty or malformed.
    pub fn parse(text: &str) -> Result<Self, SymbolError> {
        if text.is_empty() {
            return Err(SymbolError::Empty);
        }
        let upper = text.to_ascii_uppercase();
        let (root, class, longest_class) = match upper.find(['.', '/']) {
            Some(at) if upper[at..].starts_with('/') => (&upper[..at], Some(&upper[at + 1..]), 5),
            Some(at) => (&upper[..at], Some(&upper[at + 1..]), 2),
            None => (upper.as_str(), None, 0),
        };
        let root_ok = (1..=10).contains(&root.len())
            && root.as_bytes()[0].is_ascii_uppercase()
            && root
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        let class_ok = class.is_none_or(|class| {
            (1..=longest_class).contains(&class.len())
                && class.bytes().all(|b| b.is_ascii_uppercase())
        });
        if root_ok && class_ok {
            Ok(Self(upper))
        } else {
            Err(SymbolError::Malformed(text.to_owned()))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tickers() {
        for text in [
            "SPY", "tlt", "BRK.B", "BF/B", "A", "GOOGL", "QQQ3", "BTC/USD", "eth/usdc",
        ] {
            assert!(Symbol::parse(text).is_ok(), "{text}");
        }
        assert_eq!(
            Symbol::parse("spy").map(|s| s.to_string()),
            Ok("SPY".to_owned())
        );
    }

    #[test]
    fn refuses_malformed() {
        for text in [
            "",
            "3M",
            "SP Y",
            "SPY!",
            "ABCDEFGHIJK",
            "BRK.",
            "BRK.BBB",
            "$SPY",
            "BRK.B.C",
            "BTC/USDCXX",
        ] {
            assert!(Symbol::parse(text).is_err(), "{text}");
        }
    }
}

//! Decimal numbers as they travel on the wire: plain decimal strings, parsed
//! strictly (no exponent, no NaN, no thousands separators) into
//! [`rust_decimal::Decimal`].

use std::str::FromStr;

use rust_decimal::Decimal;

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("is required")]
    Empty,
    #[error("must be a plain decimal number such as \"60\" or \"417.80\"")]
    Malformed,
    #[error("is out of range")]
    OutOfRange,
}

/// Longest decimal string accepted; Decimal holds 28-29 significant digits.
const MAX_LEN: usize = 40;

/// Parses a plain decimal string: optional `-`, digits, optional `.` and digits.
///
/// # Errors
/// [`DecimalError`] when the text is empty, malformed or out of range.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    if text.is_empty() {
        return Err(DecimalError::Empty);
    }
    if text.len() > MAX_LEN {
        return Err(DecimalError::OutOfRange);
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits_only = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || fraction.is_some_and(|part| !digits_only(part)) {
        return Err(DecimalError::Malformed);
    }
    Decimal::from_str(text).map_err(|_| DecimalError::OutOfRange)
}

/// Number of decimal places once trailing zeros are dropped ("60.50" has 1).
#[must_use]
pub fn significant_scale(value: Decimal) -> u32 {
    value.normalize().scale()
}

/// Canonical text of a decimal: no trailing zeros ("60.00" → "60").
#[must_use]
pub fn canonical(value: Decimal) -> String {
    value.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn accepts_plain_decimals() {
        assert_eq!(parse_decimal("60"), Ok(dec!(60)));
        assert_eq!(parse_decimal("417.80"), Ok(dec!(417.80)));
        assert_eq!(parse_decimal("-0.5"), Ok(dec!(-0.5)));
        assert_eq!(parse_decimal("0.000000001"), Ok(dec!(0.000000001)));
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "", "1e5", "NaN", "inf", " 5", "5 ", "+5", "1,000", ".5", "5.", "--5", "0x10",
        ] {
            assert!(parse_decimal(text).is_err(), "{text:?} should be refused");
        }
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999"),
            Err(DecimalError::OutOfRange)
        );
    }

    #[test]
    fn scale_ignores_trailing_zeros() {
        assert_eq!(significant_scale(dec!(60.00)), 0);
        assert_eq!(significant_scale(dec!(59.995)), 3);
        assert_eq!(canonical(dec!(12.50)), "12.5");
    }
}

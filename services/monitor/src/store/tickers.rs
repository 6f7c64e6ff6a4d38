//! The tickers of an evaluation as stored: one compact line per ticker
//! (`symbol target lower upper breached value`, `;` between tickers, an empty
//! field for cash's symbol and for a missing band). A million evaluations a
//! day each carry about ten tickers, so this is a quarter of the JSON's size
//! and far cheaper to write.

use std::fmt::Write as _;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::{StoreError, TickerRecord};

/// Encodes tickers for the `tickers` column.
#[must_use]
pub fn encode(tickers: &[TickerRecord]) -> String {
    let mut text = String::with_capacity(tickers.len() * 32);
    for (index, ticker) in tickers.iter().enumerate() {
        if index > 0 {
            text.push(';');
        }
        let _ = write!(
            text,
            "{} {} {} {} {} {}",
            ticker.symbol.as_deref().unwrap_or(""),
            ticker.target_weight,
            Band(ticker.band_lower),
            Band(ticker.band_upper),
            u8::from(ticker.breached),
            ticker.value
        );
    }
    text
}

struct Band(Option<Decimal>);

impl std::fmt::Display for Band {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(value) => write!(formatter, "{value}"),
            None => Ok(()),
        }
    }
}

/// Decodes the `tickers` column.
///
/// # Errors
/// When the text is not what [`encode`] writes.
pub fn decode(text: &str) -> Result<Vec<TickerRecord>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(';').map(ticker).collect()
}

fn ticker(text: &str) -> Result<TickerRecord, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("ticker {text:?}"));
    let fields: Vec<&str> = text.split(' ').collect();
    let [symbol, target, lower, upper, breached, value] = fields.as_slice() else {
        return Err(corrupt());
    };
    let decimal = |field: &str| Decimal::from_str(field).map_err(|_| corrupt());
    let band = |field: &str| {
        if field.is_empty() {
            Ok(None)
        } else {
            decimal(field).map(Some)
        }
    };
    Ok(TickerRecord {
        symbol: Some((*symbol).to_owned()).filter(|s| !s.is_empty()),
        target_weight: decimal(target)?,
        band_lower: band(lower)?,
        band_upper: band(upper)?,
        breached: match *breached {
            "1" => true,
            "0" => false,
            _ => return Err(corrupt()),
        },
        value: decimal(value)?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::{TickerRecord, decode, encode};

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..10).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
    }

    fn ticker() -> impl Strategy<Value = TickerRecord> {
        (
            proptest::option::of("[A-Z]{1,5}(\\.[A-Z])?"),
            decimal(),
            proptest::option::of(decimal()),
            proptest::option::of(decimal()),
            any::<bool>(),
            decimal(),
        )
            .prop_map(
                |(symbol, target_weight, band_lower, band_upper, breached, value)| TickerRecord {
                    symbol,
                    target_weight,
                    band_lower,
                    band_upper,
                    breached,
                    value,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(tickers in proptest::collection::vec(ticker(), 0..12)) {
            let decoded = decode(&encode(&tickers)).expect("decodes");
            prop_assert_eq!(decoded, tickers);
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        assert!(decode("AAPL 9.5").is_err());
        assert!(decode("AAPL x 1 2 0 3").is_err());
        assert!(decode("AAPL 9.5 1 2 yes 3").is_err());
    }
}

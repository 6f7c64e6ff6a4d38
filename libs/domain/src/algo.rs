//! Execution algorithms: how a block order is worked over time. Market sends
//! everything at once; TWAP spreads it evenly over a window; VWAP follows the
//! symbol's intraday volume profile. Slices are sized from what remains to be
//! filled (not the original plan), so partial fills and rejections are
//! absorbed, with a participation cap and a final sweep.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::decimal::parse_decimal;
use crate::violation::Violations;

/// How a block is worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    #[default]
    Market,
    Twap,
    Vwap,
}

/// Default time between slices.
pub const DEFAULT_SLICE_SECS: i64 = 60;
/// Default largest share of a bar's volume one slice may take, percent.
pub const DEFAULT_PARTICIPATION: Decimal = Decimal::from_parts(10, 0, 0, false, 0);
/// Default working window when neither an end nor a horizon is given.
pub const DEFAULT_HORIZON_SECS: i64 = 30 * 60;

/// Validated execution instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Algorithm {
    pub kind: AlgorithmKind,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub horizon_secs: Option<i64>,
    pub slice_interval_secs: i64,
    /// Random variation of slice size and timing, percent 0..=50.
    pub randomization_percent: Decimal,
    /// Percent (0, 100].
    pub max_participation_percent: Decimal,
    /// Caps for buys and floors for sells, by symbol.
    pub limit_prices: BTreeMap<String, Decimal>,
    pub extended_hours: bool,
    pub net_across_accounts: bool,
    pub seed: i64,
    /// Keep working at the participation cap after the window until the
    /// close; by default what the window left unfilled expires.
    #[serde(default)]
    pub continue_after_window: bool,
}

impl Default for Algorithm {
    fn default() -> Self {
        Self {
            kind: AlgorithmKind::Market,
            start: None,
            end: None,
            horizon_secs: None,
            slice_interval_secs: DEFAULT_SLICE_SECS,
            randomization_percent: Decimal::ZERO,
            max_participation_percent: DEFAULT_PARTICIPATION,
            limit_prices: BTreeMap::new(),
            extended_hours: false,
            net_across_accounts: false,
            seed: 0,
            continue_after_window: false,
        }
    }
}

/// Execution instructions as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct AlgorithmInput {
    /// `None` for unspecified (market).
    pub kind: Option<AlgorithmKind>,
    /// The wire value when it names no known algorithm.
    pub unknown_kind: Option<i32>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub horizon_secs: Option<i64>,
    pub slice_interval_secs: Option<i64>,
    pub randomization_percent: String,
    pub max_participation_percent: String,
    pub limit_prices: Vec<(String, String)>,
    pub extended_hours: bool,
    pub net_across_accounts: bool,
    pub seed: i64,
    pub continue_after_window: bool,
}

impl AlgorithmInput {
    /// Checks the instructions; violations are named under `prefix`.
    ///
    /// # Errors
    /// [`Violations`] naming each offending field.
    pub fn validate(self, prefix: &str) -> Result<Algorithm, Violations> {
        let mut violations = Violations::new();
        let at = |field: &str| format!("{prefix}.{field}");
        if let Some(code) = self.unknown_kind {
            violations.add(at("type"), format!("{code} is not a known algorithm"));
        }
        for (field, moment) in [("start_time", self.start), ("end_time", self.end)] {
            if moment.is_some_and(|moment| !crate::ids::plausible_time(moment)) {
                violations.add(at(field), "must be between the years 2000 and 2100");
            }
        }
        if let (Some(start), Some(end)) = (self.start, self.end)
            && end <= start
        {
            violations.add(at("end_time"), "must be after start_time");
        }
        if self.end.is_some() && self.horizon_secs.is_some() {
            violations.add(at("horizon"), "give either end_time or horizon, not both");
        }
        if let Some(horizon) = self.horizon_secs
            && !(1..=86_400).contains(&horizon)
        {
            violations.add(at("horizon"), "must be between 1 second and 24 hours");
        }
        let slice_interval_secs = self.slice_interval_secs.unwrap_or(DEFAULT_SLICE_SECS);
        if !(1..=3_600).contains(&slice_interval_secs) {
            violations.add(at("slice_interval"), "must be between 1 second and 1 hour");
        }
        let randomization_percent = percent(
            &self.randomization_percent,
            Decimal::ZERO,
            Decimal::from(50),
            true,
        )
        .unwrap_or_else(|problem| {
            violations.add(at("randomization_percent"), problem);
            Decimal::ZERO
        });
        let max_participation_percent = percent(
            &self.max_participation_percent,
            DEFAULT_PARTICIPATION,
            Decimal::ONE_HUNDRED,
            false,
        )
        .unwrap_or_else(|problem| {
            violations.add(at("max_participation_percent"), problem);
            DEFAULT_PARTICIPATION
        });
        let mut limit_prices = BTreeMap::new();
        for (index, (symbol, price)) in self.limit_prices.iter().enumerate() {
            let symbol = match crate::Symbol::parse(symbol) {
                Ok(symbol) => symbol.to_string(),
                Err(error) => {
                    violations.add(
                        format!("{prefix}.limit_prices[{index}].symbol"),
                        error.to_string(),
                    );
                    continue;
                }
            };
            match parse_decimal(price) {
                Ok(price)
                    if price > Decimal::ZERO
                        && price <= crate::account::MAX_COST
                        && crate::decimal::significant_scale(price) <= 9 =>
                {
                    limit_prices.insert(symbol, price);
                }
                Ok(price) if price > Decimal::ZERO => violations.add(
                    format!("{prefix}.limit_prices[{index}].price"),
                    "must be at most 1000000000 with at most 9 decimal places",
                ),
                Ok(_) => violations.add(
                    format!("{prefix}.limit_prices[{index}].price"),
                    "must be greater than 0",
                ),
                Err(error) => violations.add(
                    format!("{prefix}.limit_prices[{index}].price"),
                    error.to_string(),
                ),
            }
        }
        violations.into_result(Algorithm {
            kind: self.kind.unwrap_or_default(),
            start: self.start,
            end: self.end,
            horizon_secs: self.horizon_secs,
            slice_interval_secs,
            randomization_percent,
            max_participation_percent,
            limit_prices,
            extended_hours: self.extended_hours,
            net_across_accounts: self.net_across_accounts,
            seed: self.seed,
            continue_after_window: self.continue_after_window,
        })
    }
}

/// A percent in the allowed range; empty means `default`.
fn percent(text: &str, default: Decimal, max: Decimal, zero_ok: bool) -> Result<Decimal, String> {
    if text.is_empty() {
        return Ok(default);
    }
    let value = parse_decimal(text).map_err(|error| error.to_string())?;
    if value < Decimal::ZERO || (!zero_ok && value.is_zero()) {
        return Err(if zero_ok {
            "must be 0 or more"
        } else {
            "must be greater than 0"
        }
        .to_owned());
    }
    if value > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(value.normalize())
}

impl Algorithm {
    /// The working window of a block whose phase starts at `now`, ending no
    /// later than `close` (the session close, or later with extended hours).
    #[must_use]
    pub fn window(
        &self,
        now: DateTime<Utc>,
        close: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.start.map_or(now, |start| start.max(now));
        let end = match self.kind {
            AlgorithmKind::Market => start,
            AlgorithmKind::Twap | AlgorithmKind::Vwap => match (self.end, self.horizon_secs) {
                (Some(end), _) => end,
                (None, Some(horizon)) => start + Duration::seconds(horizon),
                (None, None) => start + Duration::seconds(DEFAULT_HORIZON_SECS),
            },
        };
        (start, end.max(start).min(close.max(start)))
    }

    /// Due times of the slices over `[start, end]`: one for market, else one
    /// per interval, jittered by the randomization (deterministic per `salt`).
    #[must_use]
    pub fn slice_times(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        salt: u64,
    ) -> Vec<DateTime<Utc>> {
        if self.kind == AlgorithmKind::Market || end <= start {
            return vec![start];
        }
        let interval = self.slice_interval_secs.max(1);
        let span = (end - start).num_seconds();
        let count = (span + interval - 1) / interval;
        let mut noise = Noise::new(self.seed, salt);
        (0..count.max(1))
            .map(|k| {
                let base = k * interval;
                // Jitter within ± randomization% of half an interval, never
                // before the window or past its end.
                let jitter = if k == 0 || self.randomization_percent.is_zero() {
                    0
                } else {
                    let scale = self.randomization_percent / Decimal::ONE_HUNDRED
                        * Decimal::from(interval)
                        / Decimal::TWO;
                    (noise.next_signed() * scale).trunc().to_i64().unwrap_or(0)
                };
                start + Duration::seconds((base + jitter).clamp(0, span.saturating_sub(1).max(0)))
            })
            .collect()
    }

    /// A deterministic number in [-1, 1] for slice `sequence` of a block.
    #[must_use]
    pub fn size_noise(&self, salt: u64, sequence: u64) -> Decimal {
        if self.randomization_percent.is_zero() {
            return Decimal::ZERO;
        }
        Noise::new(self.seed, salt ^ sequence.wrapping_mul(0x9e37_79b9)).next_signed()
    }
}

/// What sizing one slice needs to know.
#[derive(Debug, Clone)]
pub struct SliceContext {
    pub kind: AlgorithmKind,
    /// Still to fill in the block.
    pub remaining: Decimal,
    /// Slices left, this one included.
    pub slices_left: u32,
    /// VWAP: expected market volume share of this slice, and of this and all later slices.
    pub volume_now: Decimal,
    pub volume_left: Decimal,
    /// Largest quantity the participation cap allows now (`None`: no cap).
    pub participation_cap: Option<Decimal>,
    /// Quantity step: 1 for whole shares, 0.000000001 otherwise.
    pub step: Decimal,
    pub randomization_percent: Decimal,
    /// In [-1, 1].
    pub noise: Decimal,
}

/// The quantity of the next slice: its share of what remains, randomized,
/// capped by participation, floored to the step; the last slice sweeps the
/// rest (TWAP and VWAP still within the cap).
#[must_use]
pub fn slice_quantity(context: &SliceContext) -> Decimal {
    if context.remaining <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    if context.slices_left <= 1 {
        // The last slice sweeps what remains: all of it for a market order,
        // within the participation cap for TWAP and VWAP.
        return match (context.kind, context.participation_cap) {
            (AlgorithmKind::Twap | AlgorithmKind::Vwap, Some(cap)) => {
                let capped = context.remaining.min(cap);
                ((capped / context.step).floor() * context.step).max(Decimal::ZERO)
            }
            _ => context.remaining,
        };
    }
    let base = match context.kind {
        AlgorithmKind::Market => context.remaining,
        AlgorithmKind::Twap => context.remaining / Decimal::from(context.slices_left),
        AlgorithmKind::Vwap if context.volume_left > Decimal::ZERO => {
            context.remaining * context.volume_now / context.volume_left
        }
        AlgorithmKind::Vwap => context.remaining / Decimal::from(context.slices_left),
    };
    let randomized = base
        * (Decimal::ONE + context.noise * context.randomization_percent / Decimal::ONE_HUNDRED);
    let capped = match context.participation_cap {
        Some(cap) => randomized.min(cap),
        None => randomized,
    };
    let stepped = (capped / context.step).floor() * context.step;
    stepped.clamp(Decimal::ZERO, context.remaining)
}

/// Deterministic noise for jitter and sizes (SplitMix64).
struct Noise(u64);

impl Noise {
    fn new(seed: i64, salt: u64) -> Self {
        Self(u64::from_ne_bytes(seed.to_ne_bytes()) ^ salt.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// Uniform in [-1, 1] with 20 bits.
    fn next_signed(&mut self) -> Decimal {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = Decimal::from(z >> 44) / Decimal::from(1_u64 << 20);
        unit * Decimal::TWO - Decimal::ONE
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    use super::*;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0)
            .single()
            .expect("valid")
    }

    fn twap(horizon_secs: i64) -> Algorithm {
        Algorithm {
            kind: AlgorithmKind::Twap,
            horizon_secs: Some(horizon_secs),
            ..Algorithm::default()
        }
    }

    #[test]
    fn a_thirty_minute_twap_has_thirty_slices() {
        let algorithm = twap(1800);
        let (start, end) = algorithm.window(at(15, 0), at(21, 0));
        assert_eq!(end - start, Duration::minutes(30));
        let times = algorithm.slice_times(start, end, 7);
        assert_eq!(times.len(), 30);
        assert_eq!(times[0], start);
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn windows_stop_at_the_close_and_market_is_immediate() {
        let (start, end) = twap(3600).window(at(20, 30), at(21, 0));
        assert_eq!((start, end), (at(20, 30), at(21, 0)));
        let market = Algorithm::default();
        assert_eq!(market.window(at(15, 0), at(21, 0)), (at(15, 0), at(15, 0)));
        assert_eq!(market.slice_times(at(15, 0), at(15, 0), 1), [at(15, 0)]);
    }

    #[test]
    fn jitter_stays_inside_the_window() {
        let algorithm = Algorithm {
            randomization_percent: dec!(50),
            seed: 42,
            ..twap(600)
        };
        let (start, end) = algorithm.window(at(15, 0), at(21, 0));
        let times = algorithm.slice_times(start, end, 3);
        assert_eq!(times.len(), 10);
        assert!(times.iter().all(|t| *t >= start && *t < end));
        assert_eq!(times, algorithm.slice_times(start, end, 3), "deterministic");
    }

    fn context(kind: AlgorithmKind, remaining: Decimal, slices_left: u32) -> SliceContext {
        SliceContext {
            kind,
            remaining,
            slices_left,
            volume_now: dec!(1),
            volume_left: dec!(4),
            participation_cap: None,
            step: Decimal::ONE,
            randomization_percent: Decimal::ZERO,
            noise: Decimal::ZERO,
        }
    }

    #[test]
    fn slices_follow_what_remains() {
        assert_eq!(
            slice_quantity(&context(AlgorithmKind::Twap, dec!(100), 4)),
            dec!(25)
        );
        // After a partial fill, the rest is spread over the slices left.
        assert_eq!(
            slice_quantity(&context(AlgorithmKind::Twap, dec!(90), 3)),
            dec!(30)
        );
        assert_eq!(
            slice_quantity(&context(AlgorithmKind::Vwap, dec!(100), 4)),
            dec!(25)
        );
        // The last slice sweeps whatever remains.
        assert_eq!(
            slice_quantity(&context(AlgorithmKind::Twap, dec!(7), 1)),
            dec!(7)
        );
        let capped = SliceContext {
            participation_cap: Some(dec!(10)),
            ..context(AlgorithmKind::Twap, dec!(100), 4)
        };
        assert_eq!(slice_quantity(&capped), dec!(10));
        // The last slice of a TWAP or VWAP sweeps only within the cap; a
        // market order's sweeps everything.
        let last_capped = SliceContext {
            participation_cap: Some(dec!(10)),
            ..context(AlgorithmKind::Vwap, dec!(100), 1)
        };
        assert_eq!(slice_quantity(&last_capped), dec!(10));
        let market = SliceContext {
            participation_cap: Some(dec!(10)),
            ..context(AlgorithmKind::Market, dec!(100), 1)
        };
        assert_eq!(slice_quantity(&market), dec!(100));
        let fractional = SliceContext {
            step: dec!(0.000000001),
            ..context(AlgorithmKind::Twap, dec!(1), 3)
        };
        assert_eq!(slice_quantity(&fractional), dec!(0.333333333));
    }

    #[test]
    fn validation_names_fields() {
        let input = AlgorithmInput {
            kind: Some(AlgorithmKind::Twap),
            start: Some(at(15, 0)),
            end: Some(at(14, 0)),
            slice_interval_secs: Some(0),
            randomization_percent: "60".to_owned(),
            max_participation_percent: "0".to_owned(),
            limit_prices: vec![("SPY".to_owned(), "-1".to_owned())],
            ..AlgorithmInput::default()
        };
        let fields: Vec<String> = input
            .validate("algorithm")
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "algorithm.end_time",
                "algorithm.slice_interval",
                "algorithm.randomization_percent",
                "algorithm.max_participation_percent",
                "algorithm.limit_prices[0].price"
            ]
        );
    }
}

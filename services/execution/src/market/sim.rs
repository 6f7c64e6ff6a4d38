//! The simulated market: a seeded, deterministic price path per symbol (a
//! daily random walk from each listing's reference price, and a Brownian
//! bridge between closes for the minutes of each session), U-shaped intraday
//! volume, and quotes with a spread. Stocks trade NYSE sessions; crypto pairs
//! trade every minute of every UTC day, with their own volatility. The same seed and moment always give the
//! same prices, whatever the order of questions; everything is Decimal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rebalancer_domain::calendar::{self, Session};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::universe::{CRYPTO_UNIVERSE, Listing, UNIVERSE};
use super::{Bar, Quote};

/// First and last dates the simulation covers.
const FIRST_YEAR: i32 = 2020;
const LAST_YEAR: i32 = 2036;
/// The day each listing trades at its reference price.
const ANCHOR: (i32, u32, u32) = (2025, 1, 2);
/// 1 / sqrt(390): scales a daily volatility to one minute of a session.
const MINUTE_SCALE: Decimal = Decimal::from_parts(50_636_968, 0, 0, false, 9);
/// 1 / sqrt(1440): the same for a minute of a crypto (24-hour) day.
const CRYPTO_MINUTE_SCALE: Decimal = Decimal::from_parts(26_352_314, 0, 0, false, 9);
/// Most intraday paths kept in memory.
const MAX_CACHED_DAYS: usize = 4096;
const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// The simulated market.
#[derive(Debug)]
pub struct SimulatedMarket {
    seed: u64,
    listings: HashMap<&'static str, Listing>,
    /// Trading days from FIRST_YEAR to LAST_YEAR.
    days: Vec<NaiveDate>,
    anchor_index: usize,
    /// Every day from FIRST_YEAR to LAST_YEAR (crypto trades them all).
    crypto_days: Vec<NaiveDate>,
    crypto_anchor_index: usize,
    closes: Mutex<HashMap<&'static str, Arc<Vec<Decimal>>>>,
    intraday: Mutex<HashMap<(&'static str, usize), Arc<DayPath>>>,
}

/// One symbol's session, minute by minute.
#[derive(Debug)]
struct DayPath {
    session: Session,
    /// Price at each minute boundary: `minutes + 1` points, open to close.
    prices: Vec<Decimal>,
    /// Shares traded in each minute.
    volumes: Vec<Decimal>,
}

impl SimulatedMarket {
    /// A market whose whole history follows from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap_or_default();
        let last = NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31).unwrap_or_default();
        let days: Vec<NaiveDate> = calendar::sessions_between(first, last)
            .iter()
            .map(|s| s.date)
            .collect();
        let anchor = NaiveDate::from_ymd_opt(ANCHOR.0, ANCHOR.1, ANCHOR.2).unwrap_or_default();
        let anchor_index = days.partition_point(|day| *day < anchor);
        let crypto_days: Vec<NaiveDate> =
            first.iter_days().take_while(|day| *day <= last).collect();
        let crypto_anchor_index = crypto_days.partition_point(|day| *day < anchor);
        Self {
            seed,
            listings: UNIVERSE
                .iter()
                .chain(CRYPTO_UNIVERSE)
                .map(|listing| (listing.symbol, *listing))
                .collect(),
            days,
            anchor_index,
            crypto_days,
            crypto_anchor_index,
            closes: Mutex::new(HashMap::new()),
            intraday: Mutex::new(HashMap::new()),
        }
    }

    pub fn listings(&self) -> impl Iterator<Item = &Listing> {
        UNIVERSE.iter().chain(CRYPTO_UNIVERSE)
    }

    #[must_use]
    pub fn listing(&self, symbol: &str) -> Option<&Listing> {
        self.listings.get(symbol)
    }

    /// The listing's trading days, and the index of the anchor among them.
    fn days_of(&self, listing: &Listing) -> (&[NaiveDate], usize) {
        if listing.crypto {
            (&self.crypto_days, self.crypto_anchor_index)
        } else {
            (&self.days, self.anchor_index)
        }
    }

    /// The listing's session on `date`: a whole UTC day for crypto.
    fn session_of(listing: &Listing, date: NaiveDate) -> Option<Session> {
        if listing.crypto {
            let open = date.and_hms_opt(0, 0, 0)?.and_utc();
            Some(Session {
                date,
                open,
                close: open + Duration::days(1),
                early_close: false,
            })
        } else {
            calendar::session(date)
        }
    }

    /// The listing's trading date of `moment`.
    fn date_of(listing: &Listing, moment: DateTime<Utc>) -> NaiveDate {
        if listing.crypto {
            moment.date_naive()
        } else {
            calendar::exchange_date(moment)
        }
    }

    /// Index of the listing's trading day `date`, or of the last one before it.
    fn day_index_on_or_before(&self, listing: &Listing, date: NaiveDate) -> Option<usize> {
        self.days_of(listing)
            .0
            .partition_point(|day| *day <= date)
            .checked_sub(1)
    }

    /// Daily closes of a symbol over the whole range.
    fn closes(&self, listing: &Listing) -> Arc<Vec<Decimal>> {
        let mut cache = self.closes.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(listing.symbol)
            .or_insert_with(|| Arc::new(self.daily_walk(listing)))
            .clone()
    }

    fn daily_walk(&self, listing: &Listing) -> Vec<Decimal> {
        let reference = Decimal::new(i64::try_from(listing.price_cents).unwrap_or(i64::MAX), 2);
        let volatility = Decimal::from(listing.daily_volatility_bps) / BPS;
        let (days, anchor) = self.days_of(listing);
        let mut closes = vec![Decimal::ZERO; days.len()];
        let anchor = anchor.min(closes.len().saturating_sub(1));
        closes[anchor] = reference;
        for index in anchor + 1..closes.len() {
            let step =
                volatility * normal(&mut Rng::new(self.seed, listing.symbol, index as u64, 1));
            closes[index] = floor_price((closes[index - 1] * (Decimal::ONE + step)).round_dp(4));
        }
        for index in (0..anchor).rev() {
            let step = volatility
                * normal(&mut Rng::new(
                    self.seed,
                    listing.symbol,
                    index as u64 + 1,
                    1,
                ));
            closes[index] = floor_price((closes[index + 1] / (Decimal::ONE + step)).round_dp(4));
        }
        closes
    }

    fn day_path(&self, listing: &Listing, index: usize) -> Option<Arc<DayPath>> {
        {
            let cache = self.intraday.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(path) = cache.get(&(listing.symbol, index)) {
                return Some(path.clone());
            }
        }
        let session = Self::session_of(listing, *self.days_of(listing).0.get(index)?)?;
        let closes = self.closes(listing);
        let close = closes[index];
        let open = if index == 0 { close } else { closes[index - 1] };
        let minutes = usize::try_from(session.minutes()).ok()?;
        let mut rng = Rng::new(self.seed, listing.symbol, index as u64, 2);
        let sigma = Decimal::from(listing.daily_volatility_bps) / BPS * minute_scale(listing);
        let mut walk = Vec::with_capacity(minutes + 1);
        walk.push(Decimal::ZERO);
        for k in 1..=minutes {
            walk.push(walk[k - 1] + sigma * normal(&mut rng));
        }
        let n = Decimal::from(minutes);
        let end = walk[minutes];
        let prices = (0..=minutes)
            .map(|k| {
                let share = Decimal::from(k) / n;
                let bridge = walk[k] - end * share;
                floor_price((open + (close - open) * share + open * bridge).round_dp(4))
            })
            .collect();
        let daily_volume = Decimal::from(listing.average_daily_volume)
            * (Decimal::new(8, 1) + Decimal::new(4, 1) * rng.unit());
        let volumes = volume_profile(minutes)
            .into_iter()
            .map(|fraction| (daily_volume * fraction).round().max(Decimal::ONE))
            .collect();
        let path = Arc::new(DayPath {
            session,
            prices,
            volumes,
        });
        let mut cache = self.intraday.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_DAYS {
            cache.clear();
        }
        cache.insert((listing.symbol, index), path.clone());
        Some(path)
    }

    /// The last traded price at `moment`: within a session, interpolated
    /// between minutes; outside, the last close.
    #[must_use]
    pub fn price_at(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Decimal> {
        let listing = self.listing(symbol)?;
        let index = self.day_index_on_or_before(listing, Self::date_of(listing, moment))?;
        let path = self.day_path(listing, index)?;
        if moment < path.session.open {
            // Before today's open: yesterday's close.
            let previous = index
                .checked_sub(1)
                .map_or(path.prices[0], |i| self.closes(listing)[i]);
            return Some(previous);
        }
        if moment >= path.session.close {
            return path.prices.last().copied();
        }
        let elapsed = moment - path.session.open;
        let minute = usize::try_from(elapsed.num_minutes()).ok()?;
        let seconds =
            Decimal::from((elapsed - Duration::minutes(elapsed.num_minutes())).num_milliseconds())
                / Decimal::from(60_000);
        let from = path.prices[minute];
        let to = path.prices[(minute + 1).min(path.prices.len() - 1)];
        Some((from + (to - from) * seconds).round_dp(4))
    }

    /// Last, bid and ask at `moment`, in cents.
    #[must_use]
    pub fn quote(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Quote> {
        let listing = self.listing(symbol)?;
        let last = self.price_at(symbol, moment)?;
        let spread_bps = if listing.etf {
            Decimal::ONE
        } else {
            Decimal::from(3)
        };
        // Crypto is quoted to four decimals: a stablecoin's spread is a
        // hundredth of a cent.
        let (places, tick) = if listing.crypto {
            (4, Decimal::new(5, 5))
        } else {
            (2, Decimal::new(5, 3))
        };
        let half_spread = (last * spread_bps / BPS / Decimal::TWO).max(tick);
        Some(Quote {
            symbol: listing.symbol.to_owned(),
            last: last.round_dp(places),
            bid: (last - half_spread)
                .round_dp_with_strategy(places, rust_decimal::RoundingStrategy::ToNegativeInfinity),
            ask: (last + half_spread)
                .round_dp_with_strategy(places, rust_decimal::RoundingStrategy::ToPositiveInfinity),
            timestamp: moment,
        })
    }

    /// The one-minute bar containing `moment`, if the market is open then.
    #[must_use]
    pub fn minute_bar(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Bar> {
        let listing = self.listing(symbol)?;
        let session = Self::session_of(listing, Self::date_of(listing, moment))
            .filter(|session| session.contains(moment))?;
        let index = self.days_of(listing).0.binary_search(&session.date).ok()?;
        let path = self.day_path(listing, index)?;
        let minute = usize::try_from((moment - session.open).num_minutes()).ok()?;
        Some(bar_of(listing, &path, minute))
    }

    /// Bars of `timeframe_minutes` between `start` and `end` (regular sessions only).
    #[must_use]
    pub fn bars(
        &self,
        symbol: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        timeframe_minutes: usize,
    ) -> Vec<Bar> {
        let Some(listing) = self.listing(symbol) else {
            return Vec::new();
        };
        let timeframe = timeframe_minutes.max(1);
        let mut bars = Vec::new();
        let first = Self::date_of(listing, start);
        let last = Self::date_of(listing, end);
        let days = self.days_of(listing).0;
        let sessions = first
            .iter_days()
            .take_while(|day| *day <= last)
            .filter_map(|day| Self::session_of(listing, day));
        for session in sessions {
            let Ok(index) = days.binary_search(&session.date) else {
                continue;
            };
            let Some(path) = self.day_path(listing, index) else {
                continue;
            };
            let minutes = path.volumes.len();
            let mut minute = 0;
            while minute < minutes {
                let bar_start =
                    session.open + Duration::minutes(i64::try_from(minute).unwrap_or(0));
                let upto = (minute + timeframe).min(minutes);
                if bar_start >= start && bar_start < end {
                    let minute_bars: Vec<Bar> =
                        (minute..upto).map(|m| bar_of(listing, &path, m)).collect();
                    if let Some(bar) = merge_bars(&minute_bars) {
                        bars.push(bar);
                    }
                }
                minute = upto;
            }
        }
        bars
    }

    /// Average shares per full day.
    #[must_use]
    pub fn average_daily_volume(&self, symbol: &str) -> Option<Decimal> {
        self.listing(symbol)
            .map(|listing| Decimal::from(listing.average_daily_volume))
    }
}

fn bar_of(listing: &Listing, path: &DayPath, minute: usize) -> Bar {
    let open = path.prices[minute];
    let close = path.prices[minute + 1];
    // A little range inside the minute, from the symbol's volatility.
    let wiggle =
        Decimal::from(listing.daily_volatility_bps) / BPS * minute_scale(listing) / Decimal::TWO;
    let high = (open.max(close) * (Decimal::ONE + wiggle)).round_dp(4);
    let low = (open.min(close) * (Decimal::ONE - wiggle)).round_dp(4);
    Bar {
        symbol: listing.symbol.to_owned(),
        start: path.session.open + Duration::minutes(i64::try_from(minute).unwrap_or(0)),
        open,
        high,
        low,
        close,
        volume: path.volumes[minute],
        vwap: ((open + high + low + close) / Decimal::from(4)).round_dp(4),
    }
}

/// One bar out of consecutive bars.
fn merge_bars(bars: &[Bar]) -> Option<Bar> {
    let first = bars.first()?;
    let last = bars.last()?;
    let volume: Decimal = bars.iter().map(|bar| bar.volume).sum();
    let traded: Decimal = bars.iter().map(|bar| bar.vwap * bar.volume).sum();
    Some(Bar {
        symbol: first.symbol.clone(),
        start: first.start,
        open: first.open,
        high: bars.iter().map(|bar| bar.high).max().unwrap_or(first.high),
        low: bars.iter().map(|bar| bar.low).min().unwrap_or(first.low),
        close: last.close,
        volume,
        vwap: if volume.is_zero() {
            first.vwap
        } else {
            (traded / volume).round_dp(4)
        },
    })
}

/// U-shaped share of a day's volume per minute of a session of `minutes`:
/// heavy at the open and into the close. The shares sum to exactly 1.
#[must_use]
pub fn volume_profile(minutes: usize) -> Vec<Decimal> {
    if minutes == 0 {
        return Vec::new();
    }
    let middle = Decimal::from(minutes) / Decimal::TWO;
    let mut weights: Vec<Decimal> = (0..minutes)
        .map(|k| {
            let distance = (Decimal::from(k) + Decimal::new(5, 1) - middle) / middle;
            let mut weight = Decimal::ONE + Decimal::from(3) * distance * distance;
            if minutes - k <= 10 {
                // The closing auction's build-up.
                weight *= Decimal::new(15, 1);
            }
            weight
        })
        .collect();
    let total: Decimal = weights.iter().sum();
    for weight in &mut weights {
        *weight = (*weight / total).round_dp(12);
    }
    let assigned: Decimal = weights[..minutes - 1].iter().sum();
    weights[minutes - 1] = Decimal::ONE - assigned;
    weights
}

/// Prices never fall below a cent.
/// Scales a daily volatility to one minute of the listing's trading day.
fn minute_scale(listing: &Listing) -> Decimal {
    if listing.crypto {
        CRYPTO_MINUTE_SCALE
    } else {
        MINUTE_SCALE
    }
}

fn floor_price(price: Decimal) -> Decimal {
    price.max(Decimal::new(1, 2))
}

/// SplitMix64, keyed by seed, symbol, day and stream, so any path can be
/// rebuilt on its own.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, symbol: &str, day: u64, stream: u64) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in symbol.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(
            seed ^ hash
                ^ day.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03),
        )
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 20 bits.
    fn unit(&mut self) -> Decimal {
        Decimal::from(self.next() >> 44) / Decimal::from(1_u64 << 20)
    }
}

/// Approximately standard normal: Irwin-Hall sum of 12 uniforms minus 6.
fn normal(rng: &mut Rng) -> Decimal {
    let sum: u64 = (0..12).map(|_| rng.next() >> 44).sum();
    Decimal::from(sum) / Decimal::from(1_u64 << 20) - Decimal::from(6)
}

/// Shares of `volume` as a whole number, for display.
#[must_use]
pub fn whole(volume: Decimal) -> u64 {
    volume.round().to_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn same_seed_same_prices_whatever_the_order() {
        let first = SimulatedMarket::new(7);
        let second = SimulatedMarket::new(7);
        let moment = at(2026, 3, 2, 16, 17);
        let later = second.price_at("SPY", at(2026, 6, 1, 15, 0));
        assert_eq!(
            first.price_at("SPY", moment),
            second.price_at("SPY", moment)
        );
        assert_eq!(first.price_at("SPY", at(2026, 6, 1, 15, 0)), later);
        assert_ne!(
            SimulatedMarket::new(8).price_at("SPY", moment),
            first.price_at("SPY", moment)
        );
    }

    #[test]
    fn anchor_day_closes_at_the_reference_price() {
        let market = SimulatedMarket::new(1);
        // 2025-01-02 21:00 UTC is after the close.
        assert_eq!(
            market.price_at("SPY", at(2025, 1, 2, 21, 0)),
            Some(Decimal::from(580))
        );
    }

    #[test]
    fn prices_are_continuous_across_the_session() {
        let market = SimulatedMarket::new(3);
        let open = at(2026, 3, 2, 14, 30);
        let before = market
            .price_at("TLT", open - Duration::seconds(1))
            .expect("price");
        let at_open = market.price_at("TLT", open).expect("price");
        assert_eq!(before, at_open, "the session opens at the previous close");
        let bars = market.bars("TLT", open, open + Duration::minutes(390), 1);
        assert_eq!(bars.len(), 390);
        for pair in bars.windows(2) {
            assert_eq!(pair[0].close, pair[1].open);
        }
        assert!(
            bars.iter()
                .all(|bar| bar.low <= bar.open && bar.open <= bar.high)
        );
    }

    #[test]
    fn volume_is_u_shaped_and_sums_to_one() {
        let profile = volume_profile(390);
        assert_eq!(profile.iter().sum::<Decimal>(), Decimal::ONE);
        assert!(profile[0] > profile[195]);
        assert!(profile[389] > profile[195]);
        assert_eq!(volume_profile(210).iter().sum::<Decimal>(), Decimal::ONE);
    }

    #[test]
    fn quotes_straddle_the_last_price() {
        let market = SimulatedMarket::new(5);
        let quote = market.quote("AAPL", at(2026, 3, 2, 15, 0)).expect("quote");
        assert!(quote.bid < quote.ask);
        assert!(quote.bid <= quote.last && quote.last <= quote.ask);
        assert!(market.quote("NOPE", at(2026, 3, 2, 15, 0)).is_none());
    }

    #[test]
    fn crypto_trades_every_minute_of_every_day() {
        let market = SimulatedMarket::new(5);
        // Saturday and Sunday 2026-03-07/08: stocks hold Friday's close,
        // crypto moves and has minute bars.
        let saturday = at(2026, 3, 7, 15, 0);
        let sunday = at(2026, 3, 8, 15, 0);
        assert_eq!(
            market.price_at("SPY", saturday),
            market.price_at("SPY", sunday)
        );
        assert!(market.minute_bar("SPY", sunday).is_none());
        let btc = (
            market.price_at("BTC/USD", saturday).expect("price"),
            market.price_at("BTC/USD", sunday).expect("price"),
        );
        assert_ne!(btc.0, btc.1);
        assert!(market.minute_bar("BTC/USD", sunday).is_some());
        assert!(
            market
                .minute_bar("ETH/USD", at(2026, 3, 8, 23, 59))
                .is_some()
        );
        let usdc = market.quote("USDC/USD", sunday).expect("quote");
        assert!(
            usdc.last > Decimal::new(97, 2) && usdc.last < Decimal::new(103, 2),
            "{usdc:?}"
        );
        assert!(
            usdc.ask - usdc.bid < Decimal::new(1, 3),
            "a stablecoin's spread: {usdc:?}"
        );
        let bars = market.bars("BTC/USD", at(2026, 3, 7, 0, 0), at(2026, 3, 9, 0, 0), 60);
        assert_eq!(bars.len(), 48, "an hourly bar for each hour of the weekend");
    }

    #[test]
    fn daily_walk_stays_plausible() {
        let market = SimulatedMarket::new(11);
        for listing in UNIVERSE.iter().chain(CRYPTO_UNIVERSE) {
            let price = market
                .price_at(listing.symbol, at(2026, 11, 20, 21, 0))
                .expect("price");
            let reference = Decimal::new(i64::try_from(listing.price_cents).expect("fits"), 2);
            assert!(
                price > reference / Decimal::from(20) && price < reference * Decimal::from(20),
                "{}",
                listing.symbol
            );
        }
    }
}

//! When a symbol trades: on the exchange's sessions (NYSE, with its
//! holidays, early closes and extended hours), or around the clock for
//! crypto pairs (`BTC/USD`), which trade every day of the year. Execution
//! asks this, per block, wherever it asks whether the market is open.
//!
//! Around the clock there is no close: the "session" at any moment runs from
//! that moment for a day, so a window or a last try is never cut short by a
//! day boundary.

use chrono::{DateTime, Duration, Utc};

use crate::calendar::{self, Session};

/// Where and when a symbol trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradingHours {
    /// The exchange's regular sessions, and its extended hours.
    Exchange,
    /// Every moment of every day (crypto).
    AroundTheClock,
}

impl TradingHours {
    /// A pair symbol (`BASE/QUOTE`) is crypto and trades around the clock;
    /// the asset master only lists pairs as crypto and crypto as pairs.
    #[must_use]
    pub fn of(symbol: &str) -> Self {
        if symbol.contains('/') {
            Self::AroundTheClock
        } else {
            Self::Exchange
        }
    }

    /// The calendar's name, as `GetCalendar` and the asset master give it.
    #[must_use]
    pub fn calendar(self) -> &'static str {
        match self {
            Self::Exchange => "XNYS",
            Self::AroundTheClock => "CRYPTO",
        }
    }

    /// A day from `moment`: the session of a market that never closes.
    fn rolling(moment: DateTime<Utc>) -> Session {
        Session {
            date: moment.date_naive(),
            open: moment,
            close: moment + Duration::days(1),
            early_close: false,
        }
    }

    /// The session in progress at `moment`, if the market is open.
    #[must_use]
    pub fn open_session(self, moment: DateTime<Utc>) -> Option<Session> {
        match self {
            Self::Exchange => calendar::open_session(moment),
            Self::AroundTheClock => Some(Self::rolling(moment)),
        }
    }

    /// The session open at `moment`, or the next to open.
    #[must_use]
    pub fn current_or_next_session(self, moment: DateTime<Utc>) -> Session {
        match self {
            Self::Exchange => calendar::current_or_next_session(moment),
            Self::AroundTheClock => Self::rolling(moment),
        }
    }

    /// The session whose regular or extended hours are open at `moment`, or
    /// the next.
    #[must_use]
    pub fn extended_or_next_session(self, moment: DateTime<Utc>) -> Session {
        match self {
            Self::Exchange => calendar::extended_or_next_session(moment),
            Self::AroundTheClock => Self::rolling(moment),
        }
    }

    /// Whether `moment` is in extended hours (never, around the clock:
    /// every hour is regular).
    #[must_use]
    pub fn in_extended_hours(self, moment: DateTime<Utc>) -> bool {
        match self {
            Self::Exchange => calendar::in_extended_hours(moment),
            Self::AroundTheClock => false,
        }
    }

    /// How long extended trading runs after a session's close.
    #[must_use]
    pub fn after_hours(self) -> Duration {
        match self {
            Self::Exchange => calendar::AFTER_HOURS,
            Self::AroundTheClock => Duration::zero(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn crypto_pairs_trade_on_a_sunday_and_stocks_do_not() {
        // Sunday 2026-03-08, 15:00 UTC.
        let sunday = Utc.with_ymd_and_hms(2026, 3, 8, 15, 0, 0).unwrap();
        assert_eq!(TradingHours::of("BTC/USD"), TradingHours::AroundTheClock);
        assert_eq!(TradingHours::of("SPY"), TradingHours::Exchange);
        assert_eq!(TradingHours::of("BRK.B"), TradingHours::Exchange);
        let crypto = TradingHours::AroundTheClock
            .open_session(sunday)
            .expect("open");
        assert_eq!(
            (crypto.open, crypto.close),
            (sunday, sunday + Duration::days(1))
        );
        assert!(TradingHours::Exchange.open_session(sunday).is_none());
        let monday = TradingHours::Exchange.current_or_next_session(sunday);
        assert_eq!(
            monday.date,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 9).expect("date")
        );
        assert!(!TradingHours::AroundTheClock.in_extended_hours(sunday));
    }

    #[test]
    fn around_the_clock_is_open_on_exchange_holidays() {
        // 2025-01-09: NYSE closed for the National Day of Mourning.
        let noon = Utc.with_ymd_and_hms(2025, 1, 9, 17, 0, 0).unwrap();
        assert!(TradingHours::Exchange.open_session(noon).is_none());
        assert!(TradingHours::AroundTheClock.open_session(noon).is_some());
        assert_eq!(TradingHours::of("ETH/USDC").calendar(), "CRYPTO");
    }
}

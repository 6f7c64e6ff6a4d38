//! The US equity trading calendar (NYSE): weekends, and the exceptional days
//! of [`crate::calendar_days`] (holidays, one-off closures such as
//! 2025-01-09, early closes, as shipped data and operator overrides). Outside
//! the shipped years the NYSE rules here decide: the ten holidays with their
//! weekend observance, Good Friday, and the 13:00 early closes. Sessions are
//! in America/New_York; the regular session is 09:30-16:00.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Tz;

use crate::calendar_days::{self, DayHours};

/// The exchange's time zone.
pub const EXCHANGE_TZ: Tz = New_York;

/// Regular open, 09:30 New York.
#[must_use]
pub fn regular_open() -> NaiveTime {
    NaiveTime::from_hms_opt(9, 30, 0).unwrap_or(NaiveTime::MIN)
}

/// Regular close, 16:00 New York.
#[must_use]
pub fn regular_close() -> NaiveTime {
    NaiveTime::from_hms_opt(16, 0, 0).unwrap_or(NaiveTime::MIN)
}

/// Early close, 13:00 New York.
#[must_use]
pub fn early_close() -> NaiveTime {
    NaiveTime::from_hms_opt(13, 0, 0).unwrap_or(NaiveTime::MIN)
}

/// One trading session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

impl Session {
    /// Whether `moment` is within the regular session (open inclusive, close exclusive).
    #[must_use]
    pub fn contains(&self, moment: DateTime<Utc>) -> bool {
        self.open <= moment && moment < self.close
    }

    /// Length of the session in minutes (390, or 210 on early-close days).
    #[must_use]
    pub fn minutes(&self) -> i64 {
        (self.close - self.open).num_minutes()
    }
}

/// Why a date is not a full trading day.
fn holiday_name(date: NaiveDate) -> Option<&'static str> {
    let year = date.year();
    let observed = |month: u32, day: u32| NaiveDate::from_ymd_opt(year, month, day).map(observe);
    // New Year's Day: a Saturday New Year is not observed on the Friday before
    // (that Friday closes the previous year's books).
    let new_year = NaiveDate::from_ymd_opt(year, 1, 1)
        .filter(|d| d.weekday() != Weekday::Sat)
        .map(observe);
    let candidates: [(Option<NaiveDate>, &'static str); 10] = [
        (new_year, "New Year's Day"),
        (
            nth_weekday(year, 1, Weekday::Mon, 3),
            "Martin Luther King Jr. Day",
        ),
        (
            nth_weekday(year, 2, Weekday::Mon, 3),
            "Washington's Birthday",
        ),
        (good_friday(year), "Good Friday"),
        (last_weekday(year, 5, Weekday::Mon), "Memorial Day"),
        (
            if year >= 2022 { observed(6, 19) } else { None },
            "Juneteenth",
        ),
        (observed(7, 4), "Independence Day"),
        (nth_weekday(year, 9, Weekday::Mon, 1), "Labor Day"),
        (nth_weekday(year, 11, Weekday::Thu, 4), "Thanksgiving Day"),
        (observed(12, 25), "Christmas Day"),
    ];
    candidates
        .into_iter()
        .find(|(holiday, _)| *holiday == Some(date))
        .map(|(_, name)| name)
}

/// Saturday holidays are observed on Friday, Sunday holidays on Monday.
fn observe(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date + Duration::days(1),
        _ => date,
    }
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    nth_weekday(year, month, weekday, 5).or_else(|| nth_weekday(year, month, weekday, 4))
}

/// Easter Sunday (anonymous Gregorian algorithm) minus two days.
fn good_friday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = ((h + l - 7 * m + 114) % 31) + 1;
    let easter =
        NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)?;
    Some(easter - Duration::days(2))
}

/// Whether the market closes at 13:00 that day: the day before Independence
/// Day, the day after Thanksgiving, and Christmas Eve (when they are trading days).
fn is_early_close(date: NaiveDate) -> bool {
    let year = date.year();
    let july_3 = NaiveDate::from_ymd_opt(year, 7, 3);
    let day_after_thanksgiving =
        nth_weekday(year, 11, Weekday::Thu, 4).map(|d| d + Duration::days(1));
    let christmas_eve = NaiveDate::from_ymd_opt(year, 12, 24);
    Some(date) == july_3 || Some(date) == day_after_thanksgiving || Some(date) == christmas_eve
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The New York hours of `date` (`None` when closed) and why they are not
/// regular.
fn hours(date: NaiveDate) -> (Option<(NaiveTime, NaiveTime)>, Option<String>) {
    calendar_days::with_day(date, |day, covered| match day {
        Some(day) => match day.hours {
            DayHours::Closed => (None, Some(day.name.clone())),
            DayHours::Session { open, close } => (Some((open, close)), Some(day.name.clone())),
        },
        None if is_weekend(date) => (None, None),
        None if covered => (Some((regular_open(), regular_close())), None),
        None => match holiday_name(date) {
            Some(name) => (None, Some(name.to_owned())),
            None if is_early_close(date) => (
                Some((regular_open(), early_close())),
                Some("Early close".to_owned()),
            ),
            None => (Some((regular_open(), regular_close())), None),
        },
    })
}

/// Whether the exchange trades on `date`.
#[must_use]
pub fn is_trading_day(date: NaiveDate) -> bool {
    hours(date).0.is_some()
}

/// Why the exchange is closed on a weekday `date` (a holiday or a one-off
/// closure), if it is.
#[must_use]
pub fn holiday(date: NaiveDate) -> Option<String> {
    match hours(date) {
        (None, name) => name,
        (Some(_), _) => None,
    }
}

/// Why the session of `date` is not a regular one, if it is not.
#[must_use]
pub fn session_note(date: NaiveDate) -> Option<String> {
    hours(date).1
}

/// The session of `date`, or `None` when the exchange is closed.
#[must_use]
pub fn session(date: NaiveDate) -> Option<Session> {
    let (Some((open, close)), _) = hours(date) else {
        return None;
    };
    Some(Session {
        date,
        open: at_new_york(date, open)?,
        close: at_new_york(date, close)?,
        early_close: close < regular_close(),
    })
}

/// A New York wall-clock time as a UTC moment.
#[must_use]
pub fn at_new_york(date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    EXCHANGE_TZ
        .from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|moment| moment.with_timezone(&Utc))
}

/// The New York calendar date of a moment.
#[must_use]
pub fn exchange_date(moment: DateTime<Utc>) -> NaiveDate {
    moment.with_timezone(&EXCHANGE_TZ).date_naive()
}

/// The first trading day on or after `date`.
#[must_use]
pub fn next_trading_day_on_or_after(date: NaiveDate) -> NaiveDate {
    let mut day = date;
    while !is_trading_day(day) {
        day += Duration::days(1);
    }
    day
}

/// The last trading day on or before `date` (calendar dates roll back, as
/// Alpaca's calendar conditions do).
#[must_use]
pub fn trading_day_on_or_before(date: NaiveDate) -> NaiveDate {
    let mut day = date;
    while !is_trading_day(day) {
        day -= Duration::days(1);
    }
    day
}

/// The session in progress at `moment`, if the market is open.
#[must_use]
pub fn open_session(moment: DateTime<Utc>) -> Option<Session> {
    session(exchange_date(moment)).filter(|session| session.contains(moment))
}

/// No run starts later than this before the close (Alpaca's rule).
pub const LAST_START_BEFORE_CLOSE: Duration = Duration::minutes(15);

/// The close of the first session a run created at `moment` can still
/// start in: today's, unless it is too late to start today.
#[must_use]
pub fn close_of_trading_day(moment: DateTime<Utc>) -> DateTime<Utc> {
    let session = current_or_next_session(moment);
    if moment + LAST_START_BEFORE_CLOSE <= session.close {
        session.close
    } else {
        current_or_next_session(session.close).close
    }
}

/// How long extended trading runs after the close (to 20:00 New York).
pub const AFTER_HOURS: Duration = Duration::hours(4);

/// Whether `moment` is in the extended hours of a trading day: from 04:00
/// New York to the open, or from the close to four hours after it.
#[must_use]
pub fn in_extended_hours(moment: DateTime<Utc>) -> bool {
    let date = exchange_date(moment);
    let Some(session) = session(date) else {
        return false;
    };
    let pre_market = NaiveTime::from_hms_opt(4, 0, 0).and_then(|time| at_new_york(date, time));
    pre_market.is_some_and(|pre| pre <= moment && moment < session.open)
        || (session.close <= moment && moment < session.close + AFTER_HOURS)
}

/// The session of `moment`'s trading day when it is still open or in its
/// extended hours, else the next session.
#[must_use]
pub fn extended_or_next_session(moment: DateTime<Utc>) -> Session {
    match session(exchange_date(moment)) {
        Some(session) if moment < session.close + AFTER_HOURS => session,
        _ => current_or_next_session(moment),
    }
}

/// The next session whose close is after `moment` (the current one if open,
/// else the next to open).
#[must_use]
pub fn current_or_next_session(moment: DateTime<Utc>) -> Session {
    let mut day = exchange_date(moment);
    loop {
        if let Some(session) = session(day)
            && session.close > moment
        {
            return session;
        }
        day += Duration::days(1);
    }
}

/// Trading days from `start` to `end`, inclusive.
#[must_use]
pub fn sessions_between(start: NaiveDate, end: NaiveDate) -> Vec<Session> {
    let mut sessions = Vec::new();
    let mut day = start;
    while day <= end {
        if let Some(session) = session(day) {
            sessions.push(session);
        }
        day += Duration::days(1);
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("valid date")
    }

    #[test]
    fn nyse_holidays_2026() {
        // NYSE's published 2026 holidays.
        let holidays = [
            date(2026, 1, 1),
            date(2026, 1, 19),
            date(2026, 2, 16),
            date(2026, 4, 3),
            date(2026, 5, 25),
            date(2026, 6, 19),
            date(2026, 7, 3),
            date(2026, 9, 7),
            date(2026, 11, 26),
            date(2026, 12, 25),
        ];
        for day in holidays {
            assert!(!is_trading_day(day), "{day} is a holiday");
        }
        let trading_days = sessions_between(date(2026, 1, 1), date(2026, 12, 31)).len();
        assert_eq!(trading_days, 251);
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn plans_live_until_the_close_of_the_day_they_can_start() {
        // Monday 2026-03-02, closes 16:00 New York (21:00 UTC).
        assert_eq!(
            close_of_trading_day(utc("2026-03-02T15:00:00Z")),
            utc("2026-03-02T21:00:00Z")
        );
        // 15:50: too late to start today, so Tuesday's close.
        assert_eq!(
            close_of_trading_day(utc("2026-03-02T20:50:00Z")),
            utc("2026-03-03T21:00:00Z")
        );
        // Saturday: Monday's close.
        assert_eq!(
            close_of_trading_day(utc("2026-03-07T15:00:00Z")),
            utc("2026-03-09T20:00:00Z")
        );
    }

    #[test]
    fn extended_hours_are_before_the_open_and_after_the_close() {
        assert!(in_extended_hours(utc("2026-03-03T12:00:00Z")));
        assert!(!in_extended_hours(utc("2026-03-03T08:00:00Z")));
        assert!(!in_extended_hours(utc("2026-03-03T15:00:00Z")));
        assert!(in_extended_hours(utc("2026-03-03T22:00:00Z")));
        assert!(!in_extended_hours(utc("2026-03-07T15:00:00Z")));
    }

    #[test]
    fn nyse_holidays_2027_and_2028() {
        // 2027: Christmas on Saturday observed Friday 24th; 2028: New Year on Saturday not observed.
        assert!(!is_trading_day(date(2027, 3, 26)), "Good Friday 2027");
        assert!(!is_trading_day(date(2027, 12, 24)));
        assert!(!is_trading_day(date(2027, 6, 18)), "Juneteenth observed");
        assert!(
            is_trading_day(date(2027, 12, 31)),
            "New Year 2028 is a Saturday"
        );
        assert!(
            !is_trading_day(date(2027, 7, 5)),
            "Independence Day observed Monday"
        );
    }

    #[test]
    fn early_closes() {
        let friday_after_thanksgiving = session(date(2026, 11, 27)).expect("open");
        assert!(friday_after_thanksgiving.early_close);
        assert_eq!(friday_after_thanksgiving.minutes(), 210);
        assert!(session(date(2026, 12, 24)).expect("open").early_close);
        // 2026: July 3 is the observed holiday, so no early close that week.
        assert_eq!(
            session(date(2026, 7, 2)).map(|s| s.early_close),
            Some(false)
        );
        assert!(session(date(2025, 7, 3)).expect("open").early_close);
    }

    #[test]
    fn one_off_closures_are_closed() {
        // National Day of Mourning for President Carter.
        assert!(!is_trading_day(date(2025, 1, 9)));
        assert!(holiday(date(2025, 1, 9)).is_some_and(|name| name.contains("Carter")));
        // Hurricane Sandy.
        assert!(!is_trading_day(date(2012, 10, 29)));
        assert!(!is_trading_day(date(2012, 10, 30)));
        assert!(is_trading_day(date(2025, 1, 10)));
    }

    /// The shipped data and the rules agree on every weekday of the shipped
    /// years but the one-off days the rules cannot know.
    #[test]
    fn shipped_days_match_the_rules_but_for_one_offs() {
        let one_offs = [
            date(2001, 9, 11),
            date(2001, 9, 12),
            date(2001, 9, 13),
            date(2001, 9, 14),
            date(2002, 7, 3),
            date(2002, 7, 5),
            date(2003, 12, 26),
            date(2004, 6, 11),
            date(2007, 1, 2),
            date(2012, 10, 29),
            date(2012, 10, 30),
            date(2018, 12, 5),
            date(2025, 1, 9),
        ];
        let mut day = date(2000, 1, 1);
        let mut differences = Vec::new();
        while day <= date(2040, 12, 31) {
            if !is_weekend(day) {
                let by_rules = if holiday_name(day).is_some() {
                    None
                } else if is_early_close(day) {
                    Some(early_close())
                } else {
                    Some(regular_close())
                };
                let by_data = hours(day).0.map(|(_, close)| close);
                if by_rules != by_data && !one_offs.contains(&day) {
                    differences.push(format!("{day}: rules {by_rules:?}, data {by_data:?}"));
                }
            }
            day += Duration::days(1);
        }
        assert!(differences.is_empty(), "{differences:#?}");
    }

    #[test]
    fn sessions_are_in_new_york_time() {
        // Winter: UTC-5. Summer: UTC-4.
        let winter = session(date(2026, 3, 2)).expect("open");
        assert_eq!(winter.open.to_rfc3339(), "2026-03-02T14:30:00+00:00");
        assert_eq!(winter.minutes(), 390);
        let summer = session(date(2026, 3, 9)).expect("open");
        assert_eq!(summer.open.to_rfc3339(), "2026-03-09T13:30:00+00:00");
    }

    #[test]
    fn rolling_back_and_forward() {
        assert_eq!(trading_day_on_or_before(date(2026, 4, 5)), date(2026, 4, 2));
        assert_eq!(
            next_trading_day_on_or_after(date(2026, 4, 3)),
            date(2026, 4, 6)
        );
        let saturday_noon = at_new_york(
            date(2026, 3, 7),
            NaiveTime::from_hms_opt(12, 0, 0).expect("time"),
        )
        .expect("moment");
        assert_eq!(open_session(saturday_noon), None);
        assert_eq!(
            current_or_next_session(saturday_noon).date,
            date(2026, 3, 9)
        );
    }
}

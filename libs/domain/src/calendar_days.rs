//! The days of the NYSE calendar that differ from its weekly pattern, as
//! data: the file shipped with the release (`data/xnys.csv`, generated from
//! the maintained `exchange_calendars` package by `data/gen_xnys.py`: every
//! holiday, one-off closure and early close from 2000 to 2040), and the
//! operator's overrides set at run time, which win. Outside the file's years
//! the NYSE rules in [`crate::calendar`] apply.

use std::collections::BTreeMap;
use std::sync::{LazyLock, PoisonError, RwLock};

use chrono::{NaiveDate, NaiveTime};

/// The shipped exceptions, `date,kind,open,close,name`.
const SHIPPED_CSV: &str = include_str!("../data/xnys.csv");
/// The years the shipped file covers, inclusive.
pub const SHIPPED_YEARS: (i32, i32) = (2000, 2040);

/// What happens on an exceptional day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayHours {
    Closed,
    /// A session with these New York wall-clock hours.
    Session {
        open: NaiveTime,
        close: NaiveTime,
    },
}

/// One exceptional day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub hours: DayHours,
    pub name: String,
}

/// Where an exceptional day comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaySource {
    Shipped,
    Override,
}

static SHIPPED: LazyLock<BTreeMap<NaiveDate, CalendarDay>> = LazyLock::new(|| {
    parse_csv(SHIPPED_CSV)
        .into_iter()
        .map(|day| (day.date, day))
        .collect()
});

static OVERRIDES: LazyLock<RwLock<BTreeMap<NaiveDate, CalendarDay>>> =
    LazyLock::new(|| RwLock::new(BTreeMap::new()));

fn time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// Parses the shipped layout; malformed lines are skipped (a unit test
/// checks that none are).
fn parse_csv(text: &str) -> Vec<CalendarDay> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(5, ',').collect();
            let [date, kind, open, close, name] = fields.as_slice() else {
                return None;
            };
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            let hours = match *kind {
                "closed" => DayHours::Closed,
                "early_close" | "late_open" => DayHours::Session {
                    open: time(open)?,
                    close: time(close)?,
                },
                _ => return None,
            };
            Some(CalendarDay {
                date,
                hours,
                name: (*name).to_owned(),
            })
        })
        .collect()
}

/// Whether the shipped file decides `date` (else the rules do).
#[must_use]
pub fn shipped_covers(date: NaiveDate) -> bool {
    use chrono::Datelike;
    (SHIPPED_YEARS.0..=SHIPPED_YEARS.1).contains(&date.year())
}

/// Runs `f` on the exceptional day at `date` (override, then shipped), or on
/// `None`; `covered` tells whether data decided the day.
pub(crate) fn with_day<R>(date: NaiveDate, f: impl FnOnce(Option<&CalendarDay>, bool) -> R) -> R {
    let overrides = OVERRIDES.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(day) = overrides.get(&date) {
        return f(Some(day), true);
    }
    drop(overrides);
    f(SHIPPED.get(&date), shipped_covers(date))
}

/// Replaces the operator's overrides (the execution service loads them from
/// its database at start and after each change; the monitor asks it for them).
pub fn set_overrides(days: impl IntoIterator<Item = CalendarDay>) {
    let days: BTreeMap<NaiveDate, CalendarDay> =
        days.into_iter().map(|day| (day.date, day)).collect();
    *OVERRIDES.write().unwrap_or_else(PoisonError::into_inner) = days;
}

/// Exceptional days from `start` to `end` inclusive, overrides winning, each
/// with its source.
#[must_use]
pub fn days_between(start: NaiveDate, end: NaiveDate) -> Vec<(CalendarDay, DaySource)> {
    let overrides = OVERRIDES.read().unwrap_or_else(PoisonError::into_inner);
    let mut days: BTreeMap<NaiveDate, (CalendarDay, DaySource)> = SHIPPED
        .range(start..=end)
        .map(|(date, day)| (*date, (day.clone(), DaySource::Shipped)))
        .collect();
    for (date, day) in overrides.range(start..=end) {
        days.insert(*date, (day.clone(), DaySource::Override));
    }
    days.into_values().collect()
}

/// The operator's overrides.
#[must_use]
pub fn overrides() -> Vec<CalendarDay> {
    OVERRIDES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_line_parses() {
        let lines = SHIPPED_CSV.lines().skip(1).count();
        assert_eq!(parse_csv(SHIPPED_CSV).len(), lines);
        assert!(lines > 400, "{lines} lines");
    }

    #[test]
    fn the_carter_day_of_mourning_is_shipped() {
        let date = NaiveDate::from_ymd_opt(2025, 1, 9).expect("date");
        let day = SHIPPED.get(&date).expect("shipped");
        assert_eq!(day.hours, DayHours::Closed);
        assert!(day.name.contains("Carter"), "{}", day.name);
    }
}

//! Operators' calendar days: closures and special hours set at run time,
//! kept in this service's database and applied to the process's calendar
//! (the monitor asks for them before each cycle).

use chrono::NaiveDate;
use rebalancer_domain::calendar_days::{self, CalendarDay, DaySource};
use rebalancer_kit::RequestContext;

use crate::Execution;
use crate::error::ExecutionError;
use crate::market::store::StoredCalendarDay;
use crate::store::{ExecutionStore, StoreError};

/// The exchange calendar operators can change.
pub const XNYS: &str = "XNYS";

/// Applies the stored overrides to this process's calendar.
///
/// # Errors
/// Storage failures.
pub async fn load_calendar_overrides(store: &dyn ExecutionStore) -> Result<(), StoreError> {
    let days = store.calendar_days().await?;
    calendar_days::set_overrides(
        days.into_iter()
            .filter(|stored| stored.calendar == XNYS)
            .map(|stored| stored.day),
    );
    Ok(())
}

impl Execution {
    /// Sets days of the XNYS calendar; they apply at once.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "upsert_calendar_days", skip_all, fields(days = days.len()))]
    pub async fn upsert_calendar_days(
        &self,
        context: &RequestContext,
        days: Vec<CalendarDay>,
    ) -> Result<Vec<CalendarDay>, ExecutionError> {
        let now = self.clock.now();
        let stored: Vec<StoredCalendarDay> = days
            .iter()
            .map(|day| StoredCalendarDay {
                calendar: XNYS.to_owned(),
                day: day.clone(),
                actor: context.actor.clone(),
                updated_at: now,
            })
            .collect();
        self.store.put_calendar_days(&stored).await?;
        load_calendar_overrides(self.store.as_ref()).await?;
        for day in &days {
            tracing::info!(date = %day.date, hours = ?day.hours, name = %day.name, "calendar day set");
        }
        Ok(days)
    }

    /// Removes an operator's day; the shipped calendar applies again.
    ///
    /// # Errors
    /// `NotFound` when the operator set no such day.
    #[tracing::instrument(name = "delete_calendar_day", skip_all, fields(date = %date))]
    pub async fn delete_calendar_day(&self, date: NaiveDate) -> Result<(), ExecutionError> {
        if !self.store.delete_calendar_day(XNYS, date).await? {
            return Err(ExecutionError::NotFound(format!(
                "no operator calendar day on {date}"
            )));
        }
        load_calendar_overrides(self.store.as_ref()).await?;
        Ok(())
    }

    /// Applies the operators' days as stored now (another replica may have
    /// changed them).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn refresh_calendar(&self) -> Result<(), ExecutionError> {
        Ok(load_calendar_overrides(self.store.as_ref()).await?)
    }

    /// Exceptional days from `start` to `end`, or every operator override.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn calendar_days(
        &self,
        range: Option<(NaiveDate, NaiveDate)>,
        overrides_only: bool,
    ) -> Result<Vec<(CalendarDay, DaySource)>, ExecutionError> {
        self.refresh_calendar().await?;
        let days = match range {
            Some((start, end)) => calendar_days::days_between(start, end),
            None => calendar_days::overrides()
                .into_iter()
                .map(|day| (day, DaySource::Override))
                .collect(),
        };
        Ok(days
            .into_iter()
            .filter(|(_, source)| !overrides_only || *source == DaySource::Override)
            .collect())
    }
}

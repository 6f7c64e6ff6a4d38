//! The operators' calendar days, from the Execution service (which keeps
//! them): fetched before each daily cycle starts, so a closure declared at
//! run time stops the cycle in a monitor running in its own process too.

use rebalancer_domain::calendar_days::{self, CalendarDay, DayHours};
use rebalancer_kit::RequestContext;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;

use super::Monitor;
use crate::error::MonitorError;

fn from_wire(day: pb::CalendarDay) -> Option<CalendarDay> {
    let time = |text: &str| chrono::NaiveTime::parse_from_str(text, "%H:%M").ok();
    let hours = match pb::CalendarDayKind::try_from(day.kind).ok()? {
        pb::CalendarDayKind::Closed => DayHours::Closed,
        pb::CalendarDayKind::Session => DayHours::Session {
            open: time(&day.open)?,
            close: time(&day.close)?,
        },
        pb::CalendarDayKind::Unspecified => return None,
    };
    Some(CalendarDay {
        date: chrono::NaiveDate::parse_from_str(&day.date, "%Y-%m-%d").ok()?,
        hours,
        name: day.name,
    })
}

impl Monitor {
    /// Applies the Execution service's calendar overrides to this process.
    pub(super) async fn refresh_calendar(&self, tenant: &str) -> Result<(), MonitorError> {
        let context = RequestContext::system(tenant);
        let call = context.call();
        let days = retry_idempotent(Retry::default(), "ListCalendarDays", |deadline| {
            let mut client = MarketDataServiceClient::new(self.execution.clone());
            let request = call.request_within(
                pb::ListCalendarDaysRequest {
                    overrides_only: true,
                    ..Default::default()
                },
                deadline,
            );
            async move { client.list_calendar_days(request).await }
        })
        .await
        .map_err(|status| {
            MonitorError::Unavailable(format!("calendar days: {}", status.message()))
        })?
        .into_inner()
        .days;
        calendar_days::set_overrides(days.into_iter().filter_map(from_wire));
        Ok(())
    }
}

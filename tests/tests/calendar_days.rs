//! The exchange calendar as data, over gRPC on both backends: the shipped
//! one-off closures (2025-01-09), an operator's closure and early close set
//! at run time that stop the Monitor's daily cycle and shorten the session,
//! kept across a restart, removed again; the 24/7 crypto calendar; bad days
//! refused with field violations.
//!
//! One test in its own binary: the calendar's overrides are the process's.

use chrono::{DateTime, Utc};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::{
    CalendarDay, CalendarDayKind, DeleteCalendarDayRequest, GetCalendarRequest,
    ListCalendarDaysRequest, UpsertCalendarDaysRequest,
};
use rebalancer_proto::monitor::ListCyclesRequest;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_tests::{Backend, TestStack, violated_fields};
use tonic::Code;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

async fn sessions(
    market: &mut MarketDataServiceClient<TracedChannel>,
    firm: &CallContext,
    calendar: &str,
    start: &str,
    end: &str,
) -> Vec<(String, String)> {
    market
        .get_calendar(firm.request(GetCalendarRequest {
            start_date: start.to_owned(),
            end_date: end.to_owned(),
            calendar: calendar.to_owned(),
        }))
        .await
        .expect("calendar")
        .into_inner()
        .days
        .into_iter()
        .map(|day| {
            let close = day.close.map(|c| c.to_string()).unwrap_or_default();
            (day.date, close)
        })
        .collect()
}

fn dates(days: &[(String, String)]) -> Vec<&str> {
    days.iter().map(|(date, _)| date.as_str()).collect()
}

fn day(date: &str, kind: CalendarDayKind, hours: (&str, &str), name: &str) -> CalendarDay {
    CalendarDay {
        date: date.to_owned(),
        kind: kind.into(),
        open: hours.0.to_owned(),
        close: hours.1.to_owned(),
        name: name.to_owned(),
        ..CalendarDay::default()
    }
}

async fn scheduled_cycles(stack: &TestStack, firm: &CallContext) -> Vec<String> {
    MonitorServiceClient::new(stack.channel())
        .list_cycles(firm.request(ListCyclesRequest::default()))
        .await
        .expect("cycles")
        .into_inner()
        .cycles
        .into_iter()
        .map(|cycle| cycle.trading_date)
        .collect()
}

async fn operators_change_the_calendar(backend: Backend) {
    let Some(mut stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("default");
    let mut market = MarketDataServiceClient::new(stack.channel());

    // Shipped: the National Day of Mourning for President Carter.
    let january = sessions(&mut market, &firm, "", "2025-01-06", "2025-01-10").await;
    assert_eq!(
        dates(&january),
        ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-10"]
    );
    let shipped = market
        .list_calendar_days(firm.request(ListCalendarDaysRequest {
            start_date: "2025-01-01".to_owned(),
            end_date: "2025-01-31".to_owned(),
            ..ListCalendarDaysRequest::default()
        }))
        .await
        .expect("days")
        .into_inner()
        .days;
    let carter = shipped
        .iter()
        .find(|d| d.date == "2025-01-09")
        .expect("2025-01-09 listed");
    assert_eq!(carter.kind, i32::from(CalendarDayKind::Closed));
    assert_eq!(carter.source, "shipped");
    assert!(carter.name.contains("Carter"), "{carter:?}");

    // Crypto trades every day.
    let weekend = sessions(&mut market, &firm, "CRYPTO", "2026-03-07", "2026-03-08").await;
    assert_eq!(dates(&weekend), ["2026-03-07", "2026-03-08"]);

    // Bad days change nothing.
    let refused = market
        .upsert_calendar_days(firm.request(UpsertCalendarDaysRequest {
            days: vec![
                day("2026-03-04", CalendarDayKind::Session, ("", "25:00"), "x"),
                CalendarDay {
                    calendar: "XLON".to_owned(),
                    ..day("2026-03-05", CalendarDayKind::Closed, ("", ""), "")
                },
                day("2026-03-04", CalendarDayKind::Unspecified, ("", ""), "x"),
            ],
        }))
        .await
        .expect_err("bad days");
    assert_eq!(
        violated_fields(&refused),
        [
            "days[0].open",
            "days[0].close",
            "days[1].calendar",
            "days[1].name",
            "days[2].kind"
        ],
        "{refused:?}"
    );

    // A closure on Wednesday and an early close on Thursday, at run time.
    let set = market
        .upsert_calendar_days(firm.request(UpsertCalendarDaysRequest {
            days: vec![
                day(
                    "2026-03-04",
                    CalendarDayKind::Closed,
                    ("", ""),
                    "Exchange outage",
                ),
                day(
                    "2026-03-05",
                    CalendarDayKind::Session,
                    ("09:30", "13:00"),
                    "Early close for a test",
                ),
            ],
        }))
        .await
        .expect("days set")
        .into_inner()
        .days;
    assert!(set.iter().all(|d| d.source == "override"), "{set:?}");
    let week = sessions(&mut market, &firm, "XNYS", "2026-03-02", "2026-03-06").await;
    assert_eq!(
        dates(&week),
        ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-06"]
    );
    assert_eq!(week[2].1, "2026-03-05T18:00:00Z", "{week:?}");

    // The monitor keeps to it: no cycle on the closed day, one the next.
    stack.clock.set(utc("2026-03-04T15:00:00Z"));
    stack.monitor_tick().await;
    assert!(scheduled_cycles(&stack, &firm).await.is_empty());
    stack.clock.set(utc("2026-03-05T15:00:00Z"));
    stack.monitor_tick().await;
    assert_eq!(scheduled_cycles(&stack, &firm).await, ["2026-03-05"]);

    // Kept across a restart; removed, the shipped calendar applies again.
    stack.restart().await;
    let mut market = MarketDataServiceClient::new(stack.channel());
    market
        .delete_calendar_day(firm.request(DeleteCalendarDayRequest {
            date: "2026-03-04".to_owned(),
            ..DeleteCalendarDayRequest::default()
        }))
        .await
        .expect("delete");
    let missing = market
        .delete_calendar_day(firm.request(DeleteCalendarDayRequest {
            date: "2026-03-04".to_owned(),
            ..DeleteCalendarDayRequest::default()
        }))
        .await
        .expect_err("deleted already");
    assert_eq!(missing.code(), Code::NotFound);
    let overrides = market
        .list_calendar_days(firm.request(ListCalendarDaysRequest {
            overrides_only: true,
            ..ListCalendarDaysRequest::default()
        }))
        .await
        .expect("overrides")
        .into_inner()
        .days;
    let left: Vec<&str> = overrides.iter().map(|d| d.date.as_str()).collect();
    assert_eq!(left, ["2026-03-05"]);
    let week = sessions(&mut market, &firm, "", "2026-03-02", "2026-03-06").await;
    assert_eq!(week.len(), 5, "{week:?}");
    market
        .delete_calendar_day(firm.request(DeleteCalendarDayRequest {
            date: "2026-03-05".to_owned(),
            ..DeleteCalendarDayRequest::default()
        }))
        .await
        .expect("delete");
    stack.stop().await;
}

/// Both backends in turn, in one test: the overrides are process-wide.
#[tokio::test]
async fn operators_change_the_calendar_at_run_time() {
    operators_change_the_calendar(Backend::Sqlite).await;
    operators_change_the_calendar(Backend::Postgres).await;
}

use rebalancer_proto::events as pb;

use super::{event_id, parse_event_id, watch_query};
use crate::error::ServiceError;

fn fields(error: ServiceError) -> Vec<String> {
    match error {
        ServiceError::Invalid(violations) => violations.into_iter().map(|v| v.field).collect(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn ids_are_twenty_digits_and_sort_as_text() {
    assert_eq!(event_id(42), "00000000000000000042");
    assert!(event_id(9) < event_id(10));
    assert_eq!(parse_event_id("after_id", &event_id(42)).expect("id"), 42);
    assert_eq!(parse_event_id("after_id", "").expect("empty"), 0);
    assert_eq!(parse_event_id("after_id", "17").expect("short"), 17);
}

#[test]
fn malformed_ids_are_refused_with_their_field() {
    for bad in [
        "-1",
        "abc",
        "1e5",
        "123456789012345678901",
        "99999999999999999999",
    ] {
        let error = parse_event_id("after_id", bad).expect_err(bad);
        assert_eq!(fields(error), ["after_id"], "{bad}");
    }
}

#[test]
fn a_watch_names_every_bad_field() {
    let request = pb::WatchEventsRequest {
        after_id: "x".into(),
        types: vec![pb::EventType::RunCreated.into(), 0, 999],
    };
    let error = watch_query("firm-a", &request).expect_err("bad request");
    assert_eq!(fields(error), ["after_id", "types[1]", "types[2]"]);

    let request = pb::WatchEventsRequest {
        after_id: event_id(5),
        types: vec![pb::EventType::RunStatusChanged.into()],
    };
    let query = watch_query("firm-a", &request).expect("valid");
    assert_eq!(query.after, 5);
    assert_eq!(query.tenant.as_deref(), Some("firm-a"));
    assert_eq!(query.types, ["EVENT_TYPE_RUN_STATUS_CHANGED"]);
}

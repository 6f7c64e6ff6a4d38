//! The tenant's event stream end to end on both backends: a portfolio, an
//! assignment, a deposit, a cycle that flags the account and opens a run,
//! the run worked to its fills; the stream carries each change once, typed,
//! with increasing ids; a client that saved an id resumes after a restart
//! of the services with nothing lost and nothing repeated; another tenant
//! sees none of it; malformed and pruned ids are refused precisely.

use chrono::Duration;
use rebalancer_kit::events::{EventQuery, event_id};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::ApprovalMode;
use rebalancer_proto::events::event_service_client::EventServiceClient;
use rebalancer_proto::events::{Event, EventType, WatchEventsRequest};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::{
    CashMovementType, CreateCashMovementRequest, UpsertAccountRequest,
};
use rebalancer_proto::monitor::EvaluateNowRequest;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rebalancer_tests::{Backend, TestStack, violated_fields, weight};
use tonic::Code;

/// Every event the execution service's stream holds for `tenant`, read
/// from its store (what a watcher must receive, in this order).
async fn recorded(stack: &TestStack, tenant: &str, after: i64) -> Vec<Event> {
    let events = stack.execution_service.events();
    events.sequence().await.expect("sequence");
    events
        .store()
        .read_events(&EventQuery {
            tenant: Some(tenant.to_owned()),
            after,
            types: Vec::new(),
            limit: 100_000,
        })
        .await
        .expect("read events")
        .iter()
        .map(rebalancer_kit::events::to_wire)
        .collect()
}

/// The first `count` events of a `WatchEvents` after `after_id`.
async fn watch(
    channel: TracedChannel,
    call: &CallContext,
    after_id: &str,
    count: usize,
) -> Vec<Event> {
    let mut stream = EventServiceClient::new(channel)
        .watch_events(call.request(WatchEventsRequest {
            after_id: after_id.to_owned(),
            types: Vec::new(),
        }))
        .await
        .expect("watch events")
        .into_inner();
    let mut events = Vec::new();
    while events.len() < count {
        let message = stream
            .message()
            .await
            .expect("stream")
            .expect("the stream ended early");
        events.push(message.event.expect("event"));
    }
    events
}

fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(Event::r#type).collect()
}

fn assert_increasing(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].id < pair[1].id,
            "ids not increasing: {} then {}",
            pair[0].id,
            pair[1].id
        );
    }
}

async fn deposit(stack: &TestStack, call: &CallContext, key: &str, amount: &str) {
    AccountServiceClient::new(stack.channel())
        .create_cash_movement(call.request(CreateCashMovementRequest {
            idempotency_key: key.to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Deposit.into(),
            amount: amount.to_owned(),
        }))
        .await
        .expect("deposit");
}

async fn resumes_after_a_restart(backend: Backend) {
    let Some(mut stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let portfolio = PortfolioServiceClient::new(stack.channel())
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio")
        .id;
    AccountServiceClient::new(stack.channel())
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "10000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    AssignmentServiceClient::new(stack.channel())
        .assign(firm.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Auto.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");
    MonitorServiceClient::new(stack.channel())
        .evaluate_now(firm.request(EvaluateNowRequest {
            idempotency_key: "now-1".to_owned(),
            ..EvaluateNowRequest::default()
        }))
        .await
        .expect("evaluate now");
    stack.monitor_tick().await;
    // The scheduled cycle of the day (every tenant's, firm-a's with acct-1)
    // left the accounts-by-status gauge.
    let metrics = rebalancer_kit::metrics::prometheus_text();
    assert!(
        metrics.contains(
            "rebalancer_monitor_accounts{status=\"out_of_tolerance\",tenant=\"firm-a\"} 1"
        ),
        "{metrics}"
    );
    // Transmission, blocks, fills, completion.
    stack.advance_and_tick(Duration::seconds(20), 6).await;
    stack.gather_events().await;

    let before = recorded(&stack, "firm-a", 0).await;
    let seen = types(&before);
    for expected in [
        EventType::PortfolioCreated,
        EventType::AssignmentCreated,
        EventType::CycleStateChanged,
        EventType::AccountFlagged,
        EventType::RunCreated,
        EventType::RunStatusChanged,
        EventType::BlockCreated,
        EventType::BlockStatusChanged,
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} missing from {seen:?}"
        );
    }
    let run_end = before
        .iter()
        .rfind(|e| e.r#type() == EventType::RunStatusChanged)
        .expect("run status change");
    assert_eq!(run_end.account_id, "acct-1");
    assert!(
        run_end.status.starts_with("RUN_STATUS_COMPLETED"),
        "{run_end:?}"
    );
    assert_eq!(run_end.previous_status, "RUN_STATUS_IN_PROGRESS");
    assert_eq!(run_end.source, "execution");
    let flagged = before
        .iter()
        .find(|e| e.r#type() == EventType::AccountFlagged)
        .expect("flagged");
    assert_eq!(flagged.account_id, "acct-1");
    assert_eq!(flagged.parent_id, portfolio);
    assert_eq!(flagged.source, "monitor");

    // A watcher from the start receives exactly what was recorded.
    let streamed = watch(stack.channel(), &firm, "", before.len()).await;
    assert_eq!(streamed, before);
    assert_increasing(&streamed);

    // The client saves an id halfway; the services restart; more happens.
    let saved = before[before.len() / 2].id.clone();
    stack.restart().await;
    deposit(&stack, &firm, "dep-1", "2500").await;
    stack.gather_events().await;
    let after_restart = recorded(&stack, "firm-a", saved.parse().expect("id")).await;
    let expected_tail = &before[before.len() / 2 + 1..];
    assert_eq!(&after_restart[..expected_tail.len()], expected_tail);
    let new = &after_restart[expected_tail.len()..];
    assert_eq!(types(new), [EventType::CashMovementCreated], "{new:?}");
    assert_eq!(new[0].status, "CASH_MOVEMENT_STATUS_PENDING");

    let resumed = watch(stack.channel(), &firm, &saved, after_restart.len()).await;
    assert_eq!(
        resumed, after_restart,
        "resumed: not exactly the events after the saved id"
    );
    assert_increasing(&resumed);
    assert!(resumed.iter().all(|e| e.id > saved));

    // Live: a change made while watching arrives on the open stream.
    let mut live = EventServiceClient::new(stack.channel())
        .watch_events(firm.request(WatchEventsRequest {
            after_id: resumed.last().expect("events").id.clone(),
            types: vec![EventType::CashMovementCreated.into()],
        }))
        .await
        .expect("watch")
        .into_inner();
    deposit(&stack, &firm, "dep-2", "300").await;
    let event = live
        .message()
        .await
        .expect("stream")
        .expect("event")
        .event
        .expect("event");
    assert_eq!(event.r#type(), EventType::CashMovementCreated);
    assert!(event.detail.starts_with("deposit 300"), "{event:?}");

    // Another tenant sees only its own events (its scheduled cycle).
    let other = recorded(&stack, "firm-b", 0).await;
    assert!(!other.is_empty());
    assert!(
        other
            .iter()
            .all(|e| e.tenant_id == "firm-b" && e.r#type() == EventType::CycleStateChanged),
        "{other:?}"
    );
    let firm_b = stack.tenant("firm-b");
    assert_eq!(
        watch(stack.channel(), &firm_b, "", other.len()).await,
        other
    );

    // Malformed requests name their fields.
    let status = EventServiceClient::new(stack.channel())
        .watch_events(firm.request(WatchEventsRequest {
            after_id: "12ab".to_owned(),
            types: vec![0],
        }))
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["after_id", "types[0]"]);

    // Past the retention, older ids are refused rather than skipped.
    stack.clock.advance(Duration::days(8));
    deposit(&stack, &firm, "dep-3", "1").await;
    let events = stack.execution_service.events();
    events.sequence().await.expect("sequence");
    let pruned = events.prune(Duration::days(7)).await.expect("prune");
    assert!(pruned > 0);
    let status = EventServiceClient::new(stack.channel())
        .watch_events(firm.request(WatchEventsRequest {
            after_id: event_id(1),
            types: Vec::new(),
        }))
        .await
        .expect_err("pruned");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("no longer kept"),
        "{}",
        status.message()
    );
    // The newest is kept, so a client that is up to date resumes.
    let newest = recorded(&stack, "firm-a", 0).await;
    assert_eq!(types(&newest), [EventType::CashMovementCreated]);
    assert!(newest[0].detail.starts_with("deposit 1"), "{:?}", newest[0]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_restart_sqlite() {
    resumes_after_a_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_restart_postgres() {
    resumes_after_a_restart(Backend::Postgres).await;
}

//! The store conformance suite: every case runs against SQLite and against a
//! fresh PostgreSQL database, and both must behave the same.
//!
//! Over 500 lines: it is one list of cases, each a short scenario over the
//! store trait; splitting it would only split the list.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rebalancer_domain::portfolio::{
    ConditionInput, ConditionKind, ConditionSubKind, PortfolioInput, PortfolioSpec,
    PortfolioStatus, TargetInput, WeightInput, WeightKind,
};
use rebalancer_kit::db::new_id;
use rebalancer_target::store::{
    ApprovalMode, AssignmentChange, AssignmentFilter, AssignmentRecord, AssignmentStatus,
    AuditEntry, Created, IdempotencyClaim, NewAssignment, NewPortfolio, PageRequest,
    PortfolioFilter, PortfolioRecord, PortfolioUpdate, StoreError, TargetStore, VersionRecord,
};
use rust_decimal_macros::dec;

rebalancer_kit::store_conformance! {
    open: rebalancer_target::store::open,
    cases: [
        create_then_get_round_trips_exactly,
        idempotent_create_replays_the_first_result,
        reused_key_with_other_request_is_refused,
        duplicate_names_conflict,
        tenants_are_isolated,
        list_filters_and_pages_newest_first,
        unknown_version_is_none,
        update_makes_a_new_version_and_keeps_the_old,
        new_version_marks_due_only_active_assignments_of_due_portfolios,
        stale_portfolio_revision_is_refused_and_changes_nothing,
        rename_to_a_taken_name_conflicts,
        versions_page_newest_first,
        parents_and_holders_follow_current_versions,
        assign_creates_one_active_assignment_per_account,
        assign_after_unassign_reactivates_the_same_row,
        idempotent_assign_replays_and_refuses_a_reused_key,
        assignments_are_read_by_id_and_by_account,
        list_assignments_filters_and_pages_by_account,
        assignment_updates_check_the_revision,
        active_assignments_are_counted_per_portfolio,
        events_are_listed_per_resource_newest_first,
    ],
}

fn weight(kind: WeightKind, symbol: &str, percent: &str) -> WeightInput {
    WeightInput {
        kind: Some(kind),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn spec(name: &str, weights: Vec<WeightInput>) -> PortfolioSpec {
    PortfolioInput {
        name: name.to_owned(),
        description: format!("{name} model"),
        target: TargetInput {
            weights,
            conditions: vec![
                ConditionInput {
                    kind: Some(ConditionKind::DriftBand),
                    sub_kind: Some(ConditionSubKind::Absolute),
                    percent: "5".to_owned(),
                    ..ConditionInput::default()
                },
                ConditionInput {
                    kind: Some(ConditionKind::DriftBand),
                    sub_kind: Some(ConditionSubKind::Relative),
                    percent: "20".to_owned(),
                    ..ConditionInput::default()
                },
                ConditionInput {
                    kind: Some(ConditionKind::Calendar),
                    sub_kind: Some(ConditionSubKind::Annually),
                    day: "02-29".to_owned(),
                    ..ConditionInput::default()
                },
            ],
            cooldown_days: 7,
            invest_cash_threshold: "12.50".to_owned(),
            ..TargetInput::default()
        },
        ..PortfolioInput::default()
    }
    .validate()
    .expect("valid spec")
}

fn balanced(name: &str) -> PortfolioSpec {
    spec(
        name,
        vec![
            weight(WeightKind::Cash, "", "5"),
            weight(WeightKind::Asset, "SPY", "60"),
            weight(WeightKind::Asset, "TLT", "35"),
        ],
    )
}

fn thirds(name: &str) -> PortfolioSpec {
    spec(
        name,
        vec![
            weight(WeightKind::Asset, "VTI", "33.33"),
            weight(WeightKind::Asset, "AGG", "33.33"),
            weight(WeightKind::Asset, "QQQ", "33.34"),
        ],
    )
}

/// A portfolio built from other portfolios (sleeves), by id and percent.
fn sleeves(name: &str, parts: &[(&str, &str)]) -> PortfolioSpec {
    let weights = parts
        .iter()
        .map(|(portfolio_id, percent)| WeightInput {
            kind: Some(WeightKind::Portfolio),
            symbol: String::new(),
            percent: (*percent).to_owned(),
            portfolio_id: (*portfolio_id).to_owned(),
        })
        .collect();
    spec(name, weights)
}

/// The test day at 15:`minute`.
fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, minute, 0)
        .single()
        .expect("valid time")
}

fn new_portfolio(spec: PortfolioSpec, minute: u32) -> NewPortfolio {
    NewPortfolio {
        id: new_id(),
        spec,
        now: at(minute),
    }
}

/// Creates a portfolio of `firm-a`.
async fn create(store: &dyn TargetStore, spec: PortfolioSpec, minute: u32) -> PortfolioRecord {
    store
        .create_portfolio("firm-a", new_portfolio(spec, minute), None, audit())
        .await
        .expect("create portfolio")
        .into_inner()
}

/// A change of `portfolio` based on its revision, changing nothing yet.
fn update(portfolio: &PortfolioRecord, minute: u32) -> PortfolioUpdate {
    PortfolioUpdate {
        id: portfolio.id.clone(),
        expected_revision: portfolio.revision,
        name: None,
        description: None,
        target: None,
        status: None,
        due_portfolios: Vec::new(),
        now: at(minute),
    }
}

fn new_assignment(account_id: &str, portfolio_id: &str, minute: u32) -> NewAssignment {
    NewAssignment {
        id: new_id(),
        account_id: account_id.to_owned(),
        portfolio_id: portfolio_id.to_owned(),
        rebalancing_enabled: true,
        approval_mode: ApprovalMode::Auto,
        now: at(minute),
    }
}

/// Assigns an account of `firm-a`, without an idempotency key.
async fn assign(
    store: &dyn TargetStore,
    account_id: &str,
    portfolio_id: &str,
    minute: u32,
) -> AssignmentRecord {
    store
        .assign(
            "firm-a",
            new_assignment(account_id, portfolio_id, minute),
            None,
            action("assigned"),
        )
        .await
        .expect("assign")
        .into_inner()
}

/// What `Unassign` asks of the store.
fn unassign_change(keep_rebalancing_enabled: bool) -> AssignmentChange {
    AssignmentChange {
        portfolio_id: Some(None),
        rebalancing_enabled: Some(keep_rebalancing_enabled),
        status: Some(AssignmentStatus::Unassigned),
        target_changed: true,
        ..AssignmentChange::default()
    }
}

/// Unassigns an assignment of `firm-a`.
async fn unassign(
    store: &dyn TargetStore,
    assignment: &AssignmentRecord,
    keep_rebalancing_enabled: bool,
    minute: u32,
) -> AssignmentRecord {
    store
        .update_assignment(
            "firm-a",
            &assignment.id,
            assignment.revision,
            unassign_change(keep_rebalancing_enabled),
            at(minute),
            action("unassigned"),
        )
        .await
        .expect("unassign")
}

/// `firm-a`'s assignment of an account.
async fn assignment_of(store: &dyn TargetStore, account_id: &str) -> Option<AssignmentRecord> {
    store
        .assignment_of_account("firm-a", account_id)
        .await
        .expect("assignment of account")
}

fn accounts(records: &[AssignmentRecord]) -> Vec<&str> {
    records.iter().map(|r| r.account_id.as_str()).collect()
}

fn version_numbers(versions: &[VersionRecord]) -> Vec<i64> {
    versions.iter().map(|v| v.version).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn audit() -> AuditEntry {
    AuditEntry {
        actor: "advisor@firm".to_owned(),
        request_id: Some("req-1".to_owned()),
        action: "created",
        details: serde_json::json!({}),
    }
}

fn action(action: &'static str) -> AuditEntry {
    AuditEntry { action, ..audit() }
}

fn claim(key: &str, fingerprint: &str) -> Option<IdempotencyClaim> {
    Some(IdempotencyClaim {
        operation: "CreatePortfolio",
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
    })
}

fn assign_claim(key: &str, fingerprint: &str) -> Option<IdempotencyClaim> {
    Some(IdempotencyClaim {
        operation: "Assign",
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
    })
}

fn first_page() -> PageRequest {
    PageRequest {
        after: None,
        limit: 100,
    }
}

async fn create_then_get_round_trips_exactly(store: Arc<dyn TargetStore>) {
    let created = store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            None,
            audit(),
        )
        .await
        .expect("create")
        .into_inner();
    let read = store
        .get_portfolio("firm-a", &created.id, None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, created);
    assert_eq!(read.status, PortfolioStatus::Active);
    assert_eq!(read.version, 1);
    assert_eq!(read.target.weights[1].percent, dec!(60));
    assert_eq!(read.target.invest_cash_threshold, dec!(12.5));
    assert_eq!(read.target.cooldown_days, 7);

    let exact = store
        .create_portfolio("firm-a", new_portfolio(thirds("Thirds"), 1), None, audit())
        .await
        .expect("create")
        .into_inner();
    let read = store
        .get_portfolio("firm-a", &exact.id, Some(1))
        .await
        .expect("get")
        .expect("found");
    let sum: rust_decimal::Decimal = read.target.weights.iter().map(|w| w.percent).sum();
    assert_eq!(sum, dec!(100));
    assert_eq!(read.target.weights[2].percent.to_string(), "33.34");
}

async fn idempotent_create_replays_the_first_result(store: Arc<dyn TargetStore>) {
    let first = store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            claim("k1", "f1"),
            audit(),
        )
        .await
        .expect("first create");
    let Created::New(first) = first else {
        panic!("first create must be new")
    };
    let second = store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 5),
            claim("k1", "f1"),
            audit(),
        )
        .await
        .expect("second create");
    assert_eq!(second, Created::Replayed(first.clone()));
    let listed = store
        .list_portfolios("firm-a", &PortfolioFilter::default(), &first_page())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);

    // The same key in another tenant is another key.
    let other = store
        .create_portfolio(
            "firm-b",
            new_portfolio(balanced("Balanced"), 0),
            claim("k1", "f1"),
            audit(),
        )
        .await
        .expect("other tenant");
    assert!(matches!(other, Created::New(ref record) if record.id != first.id));
}

async fn reused_key_with_other_request_is_refused(store: Arc<dyn TargetStore>) {
    store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            claim("k1", "f1"),
            audit(),
        )
        .await
        .expect("first create");
    let error = store
        .create_portfolio(
            "firm-a",
            new_portfolio(thirds("Thirds"), 1),
            claim("k1", "f2"),
            audit(),
        )
        .await
        .expect_err("must be refused");
    assert!(
        matches!(error, StoreError::IdempotencyMismatch),
        "{error:?}"
    );
    let listed = store
        .list_portfolios("firm-a", &PortfolioFilter::default(), &first_page())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
}

async fn duplicate_names_conflict(store: Arc<dyn TargetStore>) {
    store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            None,
            audit(),
        )
        .await
        .expect("first create");
    let error = store
        .create_portfolio(
            "firm-a",
            new_portfolio(thirds("Balanced"), 1),
            None,
            audit(),
        )
        .await
        .expect_err("duplicate name");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    // Nothing of the refused portfolio is left behind.
    let listed = store
        .list_portfolios("firm-a", &PortfolioFilter::default(), &first_page())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target.weights.len(), 3);
    assert_eq!(
        listed[0].target.weights[1].symbol().map(|s| s.as_str()),
        Some("SPY")
    );
}

async fn tenants_are_isolated(store: Arc<dyn TargetStore>) {
    let created = store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            None,
            audit(),
        )
        .await
        .expect("create")
        .into_inner();
    assert_eq!(
        store
            .get_portfolio("firm-b", &created.id, None)
            .await
            .expect("get"),
        None
    );
    let listed = store
        .list_portfolios("firm-b", &PortfolioFilter::default(), &first_page())
        .await
        .expect("list");
    assert!(listed.is_empty());
    // Names are unique per tenant only.
    store
        .create_portfolio(
            "firm-b",
            new_portfolio(balanced("Balanced"), 0),
            None,
            audit(),
        )
        .await
        .expect("same name in another tenant");
}

async fn list_filters_and_pages_newest_first(store: Arc<dyn TargetStore>) {
    let mut ids = Vec::new();
    for (minute, name) in ["Alpha Growth", "Beta Income", "Gamma Growth", "100%_cash"]
        .iter()
        .enumerate()
    {
        let spec = if name.contains("Income") {
            thirds(name)
        } else {
            balanced(name)
        };
        let record = store
            .create_portfolio(
                "firm-a",
                new_portfolio(spec, u32::try_from(minute).expect("small")),
                None,
                audit(),
            )
            .await
            .expect("create")
            .into_inner();
        ids.push(record.id);
    }
    let all = store
        .list_portfolios("firm-a", &PortfolioFilter::default(), &first_page())
        .await
        .expect("list");
    let listed: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);

    let growth = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter {
                name_contains: Some("growth".to_owned()),
                ..PortfolioFilter::default()
            },
            &first_page(),
        )
        .await
        .expect("by name");
    assert_eq!(growth.len(), 2);

    let literal = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter {
                name_contains: Some("%_".to_owned()),
                ..PortfolioFilter::default()
            },
            &first_page(),
        )
        .await
        .expect("wildcards are literal");
    assert_eq!(literal.len(), 1);

    let holding_agg = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter {
                symbol: Some("AGG".to_owned()),
                ..PortfolioFilter::default()
            },
            &first_page(),
        )
        .await
        .expect("by symbol");
    assert_eq!(holding_agg.len(), 1);
    assert_eq!(holding_agg[0].name, "Beta Income");

    let inactive = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter {
                status: Some(PortfolioStatus::Inactive),
                ..PortfolioFilter::default()
            },
            &first_page(),
        )
        .await
        .expect("by status");
    assert!(inactive.is_empty());

    let page_one = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter::default(),
            &PageRequest {
                after: None,
                limit: 3,
            },
        )
        .await
        .expect("page one");
    let page_two = store
        .list_portfolios(
            "firm-a",
            &PortfolioFilter::default(),
            &PageRequest {
                after: Some(page_one[2].id.clone()),
                limit: 3,
            },
        )
        .await
        .expect("page two");
    assert_eq!(page_one.len(), 3);
    assert_eq!(page_two.len(), 1);
    assert_eq!(page_two[0].id, ids[0]);
}

async fn unknown_version_is_none(store: Arc<dyn TargetStore>) {
    let created = store
        .create_portfolio(
            "firm-a",
            new_portfolio(balanced("Balanced"), 0),
            None,
            audit(),
        )
        .await
        .expect("create")
        .into_inner();
    assert_eq!(
        store
            .get_portfolio("firm-a", &created.id, Some(2))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .get_portfolio("firm-a", "missing", None)
            .await
            .expect("get"),
        None
    );
}

async fn update_makes_a_new_version_and_keeps_the_old(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let created = create(store, balanced("Balanced"), 0).await;
    let mut change = update(&created, 10);
    change.description = Some("more equity".to_owned());
    change.target = Some(thirds("unused").target);
    let updated = store
        .update_portfolio("firm-a", change, action("weights_updated"))
        .await
        .expect("update");
    assert_eq!(
        (updated.version, updated.current_version, updated.revision),
        (2, 2, 2)
    );
    assert_eq!(updated.target, thirds("unused").target);
    assert_eq!(updated.name, "Balanced");
    assert_eq!(updated.description, "more equity");
    assert_eq!(updated.created_at, at(0));
    assert_eq!(updated.updated_at, at(10));
    assert_eq!(updated.version_created_at, at(10));
    let current = store
        .get_portfolio("firm-a", &created.id, None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(current, updated);

    // Version 1 stays readable as it was, under the current header.
    let first = store
        .get_portfolio("firm-a", &created.id, Some(1))
        .await
        .expect("get version 1")
        .expect("found");
    assert_eq!(first.target, created.target);
    assert_eq!((first.version, first.current_version), (1, 2));
    assert_eq!(first.version_created_at, at(0));
    assert_eq!(first.description, "more equity");

    // A change without weights is no new version.
    let mut change = update(&updated, 20);
    change.name = Some("Balanced II".to_owned());
    change.status = Some((PortfolioStatus::NeedsAdjustment, "SPY halted".to_owned()));
    let renamed = store
        .update_portfolio("firm-a", change, action("updated"))
        .await
        .expect("rename");
    assert_eq!((renamed.version, renamed.revision), (2, 3));
    assert_eq!(renamed.name, "Balanced II");
    assert_eq!(renamed.status, PortfolioStatus::NeedsAdjustment);
    assert_eq!(renamed.status_reason, "SPY halted");
    assert_eq!(renamed.target, updated.target);
    assert_eq!(renamed.version_created_at, at(10));
}

async fn new_version_marks_due_only_active_assignments_of_due_portfolios(
    store: Arc<dyn TargetStore>,
) {
    let store = &*store;
    let core = create(store, balanced("Core"), 0).await;
    let parent = create(store, sleeves("Parent", &[(&core.id, "100")]), 1).await;
    let other = create(store, thirds("Other"), 2).await;
    assign(store, "acct-1", &core.id, 3).await;
    assign(store, "acct-2", &parent.id, 3).await;
    assign(store, "acct-3", &other.id, 3).await;
    // Unassigned but still naming the core portfolio: not evaluated, not due.
    let paused = assign(store, "acct-4", &core.id, 3).await;
    store
        .update_assignment(
            "firm-a",
            &paused.id,
            paused.revision,
            AssignmentChange {
                status: Some(AssignmentStatus::Unassigned),
                ..AssignmentChange::default()
            },
            at(4),
            action("updated"),
        )
        .await
        .expect("pause");

    let mut change = update(&core, 30);
    change.target = Some(thirds("unused").target);
    change.due_portfolios = vec![core.id.clone(), parent.id.clone()];
    let core = store
        .update_portfolio("firm-a", change, action("weights_updated"))
        .await
        .expect("new version");
    let due_at = async |account_id: &str| {
        assignment_of(store, account_id)
            .await
            .expect("assigned")
            .target_changed_at
    };
    assert_eq!(due_at("acct-1").await, Some(at(30)));
    assert_eq!(due_at("acct-2").await, Some(at(30)));
    assert_eq!(due_at("acct-3").await, Some(at(3)));
    assert_eq!(due_at("acct-4").await, Some(at(3)));

    // Without a new version nothing becomes due.
    let mut change = update(&core, 40);
    change.description = Some("same weights".to_owned());
    change.due_portfolios = vec![core.id.clone()];
    store
        .update_portfolio("firm-a", change, action("updated"))
        .await
        .expect("describe");
    assert_eq!(due_at("acct-1").await, Some(at(30)));
}

async fn stale_portfolio_revision_is_refused_and_changes_nothing(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let created = create(store, balanced("Balanced"), 0).await;
    let assigned = assign(store, "acct-1", &created.id, 1).await;
    let mut change = update(&created, 10);
    change.description = Some("first".to_owned());
    let current = store
        .update_portfolio("firm-a", change, action("updated"))
        .await
        .expect("first update");
    assert_eq!(current.revision, 2);

    // Based on revision 1: refused, whatever it asks for.
    let mut stale = update(&created, 20);
    stale.name = Some("Renamed".to_owned());
    stale.description = Some("second".to_owned());
    stale.target = Some(thirds("unused").target);
    stale.status = Some((PortfolioStatus::Inactive, "stale".to_owned()));
    stale.due_portfolios = vec![created.id.clone()];
    let error = store
        .update_portfolio("firm-a", stale, action("updated"))
        .await
        .expect_err("stale revision");
    assert!(matches!(error, StoreError::StaleRevision(_)), "{error:?}");
    let read = store
        .get_portfolio("firm-a", &created.id, None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, current);
    let versions = store
        .list_versions("firm-a", &created.id, None, 10)
        .await
        .expect("versions");
    assert_eq!(version_numbers(&versions), [1]);
    assert_eq!(assignment_of(store, "acct-1").await, Some(assigned));
    let events = store
        .list_events(
            "firm-a",
            "portfolio",
            std::slice::from_ref(&created.id),
            &first_page(),
        )
        .await
        .expect("events");
    assert_eq!(events.len(), 2);

    // An unknown portfolio is not found rather than stale.
    let mut missing = update(&current, 30);
    missing.id = "missing".to_owned();
    let error = store
        .update_portfolio("firm-a", missing, action("updated"))
        .await
        .expect_err("missing");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    // Another tenant's portfolio is unknown too.
    let error = store
        .update_portfolio("firm-b", update(&current, 30), action("updated"))
        .await
        .expect_err("other tenant");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
}

async fn rename_to_a_taken_name_conflicts(store: Arc<dyn TargetStore>) {
    let store = &*store;
    create(store, balanced("Balanced"), 0).await;
    let renaming = create(store, thirds("Thirds"), 1).await;
    let mut change = update(&renaming, 10);
    change.name = Some("Balanced".to_owned());
    change.target = Some(balanced("unused").target);
    let error = store
        .update_portfolio("firm-a", change, action("updated"))
        .await
        .expect_err("taken name");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    // Nothing of the refused change is kept: not the revision, not the version.
    let read = store
        .get_portfolio("firm-a", &renaming.id, None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, renaming);

    // Its own name is not taken.
    let mut change = update(&renaming, 20);
    change.name = Some("Thirds".to_owned());
    let same = store
        .update_portfolio("firm-a", change, action("updated"))
        .await
        .expect("same name");
    assert_eq!((same.name.as_str(), same.revision), ("Thirds", 2));
}

async fn versions_page_newest_first(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let created = create(store, balanced("Balanced"), 0).await;
    let mut current = created.clone();
    for minute in 1..=4 {
        let mut change = update(&current, minute);
        change.target = Some(if minute % 2 == 1 {
            thirds("unused").target
        } else {
            balanced("unused").target
        });
        let reviewer = AuditEntry {
            actor: "reviewer@firm".to_owned(),
            ..action("weights_updated")
        };
        current = store
            .update_portfolio("firm-a", change, reviewer)
            .await
            .expect("new version");
    }
    assert_eq!(current.version, 5);

    let page = async |after: Option<i64>, limit: u32| {
        store
            .list_versions("firm-a", &created.id, after, limit)
            .await
            .expect("versions")
    };
    assert_eq!(version_numbers(&page(None, 2).await), [5, 4]);
    assert_eq!(version_numbers(&page(Some(4), 2).await), [3, 2]);
    assert_eq!(version_numbers(&page(Some(2), 2).await), [1]);
    assert!(page(Some(1), 2).await.is_empty());

    let all = page(None, 100).await;
    assert_eq!(version_numbers(&all), [5, 4, 3, 2, 1]);
    let first = &all[4];
    assert_eq!(first.portfolio_id, created.id);
    assert_eq!(first.target, created.target);
    assert_eq!(first.created_at, at(0));
    assert_eq!(first.created_by, "advisor@firm");
    let second = &all[3];
    assert_eq!(second.target, thirds("unused").target);
    assert_eq!(second.created_at, at(1));
    assert_eq!(second.created_by, "reviewer@firm");

    let other_tenant = store
        .list_versions("firm-b", &created.id, None, 100)
        .await
        .expect("other tenant");
    assert!(other_tenant.is_empty());
    let missing = store
        .list_versions("firm-a", "missing", None, 100)
        .await
        .expect("missing");
    assert!(missing.is_empty());
}

async fn parents_and_holders_follow_current_versions(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let core = create(
        store,
        spec(
            "Core",
            vec![
                weight(WeightKind::Asset, "VTI", "60"),
                weight(WeightKind::Asset, "VEA", "40"),
            ],
        ),
        0,
    )
    .await;
    let income = create(
        store,
        spec(
            "Income",
            vec![
                weight(WeightKind::Cash, "", "10"),
                weight(WeightKind::Asset, "AGG", "90"),
            ],
        ),
        1,
    )
    .await;
    let growth = create(
        store,
        sleeves("Growth", &[(&core.id, "70"), (&income.id, "30")]),
        2,
    )
    .await;
    let balanced = create(store, balanced("Balanced"), 3).await;
    let also_vti = create(store, thirds("Thirds"), 4).await;
    let parents = async |id: &str| store.parents("firm-a", id).await.expect("parents");
    let holding = async |symbol: &str| {
        store
            .portfolios_holding("firm-a", symbol)
            .await
            .expect("holders")
    };
    assert_eq!(parents(&core.id).await, [growth.id.as_str()]);
    assert_eq!(parents(&income.id).await, [growth.id.as_str()]);
    assert!(parents(&growth.id).await.is_empty());
    assert_eq!(
        holding("VTI").await,
        sorted(vec![core.id.clone(), also_vti.id.clone()])
    );
    assert_eq!(holding("SPY").await, [balanced.id.as_str()]);
    // Held through a sleeve is not held directly.
    assert!(!holding("AGG").await.contains(&growth.id));
    assert!(holding("ZZZ").await.is_empty());
    assert!(
        store
            .parents("firm-b", &core.id)
            .await
            .expect("parents")
            .is_empty()
    );
    assert!(
        store
            .portfolios_holding("firm-b", "VTI")
            .await
            .expect("holders")
            .is_empty()
    );

    // A new version without the core sleeve: core has no parent any more,
    // though version 1 still names it.
    let mut change = update(&growth, 10);
    change.target = Some(sleeves("unused", &[(&income.id, "100")]).target);
    let growth = store
        .update_portfolio("firm-a", change, action("weights_updated"))
        .await
        .expect("drop core");
    assert!(parents(&core.id).await.is_empty());
    assert_eq!(parents(&income.id).await, [growth.id.as_str()]);

    // A parent needing adjustment still counts; an inactive one does not.
    let mut change = update(&growth, 11);
    change.status = Some((PortfolioStatus::NeedsAdjustment, "AGG halted".to_owned()));
    let growth = store
        .update_portfolio("firm-a", change, action("needs_adjustment"))
        .await
        .expect("needs adjustment");
    assert_eq!(parents(&income.id).await, [growth.id.as_str()]);
    let mut change = update(&growth, 12);
    change.status = Some((PortfolioStatus::Inactive, String::new()));
    store
        .update_portfolio("firm-a", change, action("deactivated"))
        .await
        .expect("deactivate");
    assert!(parents(&income.id).await.is_empty());

    // Holders are active portfolios, by their current weights only.
    let mut change = update(&balanced, 13);
    change.status = Some((PortfolioStatus::NeedsAdjustment, "SPY halted".to_owned()));
    store
        .update_portfolio("firm-a", change, action("needs_adjustment"))
        .await
        .expect("needs adjustment");
    assert!(holding("SPY").await.is_empty());
    let mut change = update(&core, 14);
    change.target = Some(spec("unused", vec![weight(WeightKind::Asset, "VTI", "100")]).target);
    store
        .update_portfolio("firm-a", change, action("weights_updated"))
        .await
        .expect("drop VEA");
    assert!(holding("VEA").await.is_empty());
    assert_eq!(
        holding("VTI").await,
        sorted(vec![core.id.clone(), also_vti.id.clone()])
    );
}

async fn assign_creates_one_active_assignment_per_account(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let thirds = create(store, thirds("Thirds"), 1).await;
    let assignment = NewAssignment {
        approval_mode: ApprovalMode::Manual,
        ..new_assignment("acct-1", &balanced.id, 10)
    };
    let id = assignment.id.clone();
    let created = store
        .assign("firm-a", assignment, None, action("assigned"))
        .await
        .expect("assign");
    let Created::New(created) = created else {
        panic!("a first assign must be new")
    };
    assert_eq!(
        created,
        AssignmentRecord {
            id,
            account_id: "acct-1".to_owned(),
            portfolio_id: Some(balanced.id.clone()),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual,
            status: AssignmentStatus::Active,
            revision: 1,
            created_at: at(10),
            updated_at: at(10),
            target_changed_at: Some(at(10)),
        }
    );

    // A second active assignment of the account is refused, whatever the target.
    for portfolio_id in [&thirds.id, &balanced.id] {
        let error = store
            .assign(
                "firm-a",
                new_assignment("acct-1", portfolio_id, 20),
                None,
                action("assigned"),
            )
            .await
            .expect_err("already assigned");
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    }
    assert_eq!(assignment_of(store, "acct-1").await, Some(created.clone()));

    // An unknown portfolio (or another tenant's) is not found; nothing is stored.
    let error = store
        .assign(
            "firm-a",
            new_assignment("acct-2", "missing", 20),
            None,
            action("assigned"),
        )
        .await
        .expect_err("unknown portfolio");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    assert_eq!(assignment_of(store, "acct-2").await, None);
    let error = store
        .assign(
            "firm-b",
            new_assignment("acct-1", &balanced.id, 20),
            None,
            action("assigned"),
        )
        .await
        .expect_err("another tenant's portfolio");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");

    // Accounts are per tenant.
    let theirs = store
        .create_portfolio(
            "firm-b",
            new_portfolio(
                spec("Theirs", vec![weight(WeightKind::Asset, "VTI", "100")]),
                0,
            ),
            None,
            audit(),
        )
        .await
        .expect("create")
        .into_inner();
    let other = store
        .assign(
            "firm-b",
            new_assignment("acct-1", &theirs.id, 20),
            None,
            action("assigned"),
        )
        .await
        .expect("same account in another tenant");
    assert!(other.is_new());
}

async fn assign_after_unassign_reactivates_the_same_row(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let thirds = create(store, thirds("Thirds"), 1).await;
    let first = assign(store, "acct-1", &balanced.id, 10).await;
    let unassigned = unassign(store, &first, false, 20).await;
    assert_eq!(unassigned.status, AssignmentStatus::Unassigned);
    assert_eq!(unassigned.portfolio_id, None);
    assert!(!unassigned.rebalancing_enabled);
    assert_eq!(unassigned.revision, 2);
    assert_eq!(unassigned.target_changed_at, Some(at(20)));

    let again = NewAssignment {
        approval_mode: ApprovalMode::Manual,
        ..new_assignment("acct-1", &thirds.id, 30)
    };
    let reactivated = store
        .assign("firm-a", again, None, action("assigned"))
        .await
        .expect("assign again");
    let Created::New(reactivated) = reactivated else {
        panic!("a reactivation is no replay")
    };
    assert_eq!(
        reactivated,
        AssignmentRecord {
            id: first.id.clone(),
            account_id: "acct-1".to_owned(),
            portfolio_id: Some(thirds.id.clone()),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual,
            status: AssignmentStatus::Active,
            revision: 3,
            created_at: at(10),
            updated_at: at(30),
            target_changed_at: Some(at(30)),
        }
    );
    let all = store
        .list_assignments("firm-a", &AssignmentFilter::default(), None, 100)
        .await
        .expect("list");
    assert_eq!(all, [reactivated]);
}

async fn idempotent_assign_replays_and_refuses_a_reused_key(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let first = store
        .assign(
            "firm-a",
            new_assignment("acct-1", &balanced.id, 10),
            assign_claim("k1", "f1"),
            action("assigned"),
        )
        .await
        .expect("first assign");
    let Created::New(first) = first else {
        panic!("first assign must be new")
    };
    // The retry replays the first result, though the account is now assigned.
    let retry = store
        .assign(
            "firm-a",
            new_assignment("acct-1", &balanced.id, 15),
            assign_claim("k1", "f1"),
            action("assigned"),
        )
        .await
        .expect("retry");
    assert_eq!(retry, Created::Replayed(first.clone()));

    // The key with another request is refused; nothing is stored.
    let error = store
        .assign(
            "firm-a",
            new_assignment("acct-2", &balanced.id, 20),
            assign_claim("k1", "f2"),
            action("assigned"),
        )
        .await
        .expect_err("reused key");
    assert!(
        matches!(error, StoreError::IdempotencyMismatch),
        "{error:?}"
    );
    assert_eq!(assignment_of(store, "acct-2").await, None);

    // A refused assign leaves its key unclaimed.
    let error = store
        .assign(
            "firm-a",
            new_assignment("acct-1", &balanced.id, 25),
            assign_claim("k2", "f3"),
            action("assigned"),
        )
        .await
        .expect_err("already assigned");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let later = store
        .assign(
            "firm-a",
            new_assignment("acct-3", &balanced.id, 30),
            assign_claim("k2", "f4"),
            action("assigned"),
        )
        .await
        .expect("key still free");
    assert!(later.is_new());

    // Keys are per operation: a portfolio create's key is not an assign's.
    store
        .create_portfolio(
            "firm-a",
            new_portfolio(thirds("Thirds"), 35),
            claim("k3", "f5"),
            audit(),
        )
        .await
        .expect("create with k3");
    let other_operation = store
        .assign(
            "firm-a",
            new_assignment("acct-4", &balanced.id, 40),
            assign_claim("k3", "f6"),
            action("assigned"),
        )
        .await
        .expect("assign with k3");
    assert!(other_operation.is_new());
}

async fn assignments_are_read_by_id_and_by_account(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let created = assign(store, "acct-1", &balanced.id, 10).await;
    let by_id = store
        .get_assignment("firm-a", &created.id)
        .await
        .expect("get");
    assert_eq!(by_id, Some(created.clone()));
    assert_eq!(assignment_of(store, "acct-1").await, Some(created.clone()));
    // The unassigned row is still the account's assignment.
    let unassigned = unassign(store, &created, true, 20).await;
    assert_eq!(assignment_of(store, "acct-1").await, Some(unassigned));

    let missing = store
        .get_assignment("firm-a", "missing")
        .await
        .expect("get");
    assert_eq!(missing, None);
    assert_eq!(assignment_of(store, "acct-2").await, None);
    let other_tenant = store
        .get_assignment("firm-b", &created.id)
        .await
        .expect("get");
    assert_eq!(other_tenant, None);
    let other_tenant = store
        .assignment_of_account("firm-b", "acct-1")
        .await
        .expect("of account");
    assert_eq!(other_tenant, None);
}

async fn list_assignments_filters_and_pages_by_account(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let thirds = create(store, thirds("Thirds"), 1).await;
    // Created out of account order.
    assign(store, "acct-03", &balanced.id, 10).await;
    assign(store, "acct-01", &thirds.id, 10).await;
    assign(store, "acct-05", &balanced.id, 10).await;
    let liquidating = assign(store, "acct-02", &balanced.id, 10).await;
    unassign(store, &liquidating, true, 20).await;
    let dropped = assign(store, "acct-04", &balanced.id, 10).await;
    unassign(store, &dropped, false, 20).await;
    let manual_only = NewAssignment {
        rebalancing_enabled: false,
        ..new_assignment("acct-06", &thirds.id, 10)
    };
    store
        .assign("firm-a", manual_only, None, action("assigned"))
        .await
        .expect("assign");

    let list = async |filter: AssignmentFilter, after: Option<&str>, limit: u32| {
        let listed = store
            .list_assignments("firm-a", &filter, after, limit)
            .await
            .expect("list");
        accounts(&listed)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let all = AssignmentFilter::default;
    assert_eq!(
        list(all(), None, 100).await,
        [
            "acct-01", "acct-02", "acct-03", "acct-04", "acct-05", "acct-06"
        ]
    );
    let of_balanced = AssignmentFilter {
        portfolio_id: Some(balanced.id.clone()),
        ..all()
    };
    assert_eq!(list(of_balanced, None, 100).await, ["acct-03", "acct-05"]);
    let active = AssignmentFilter {
        status: Some(AssignmentStatus::Active),
        ..all()
    };
    assert_eq!(
        list(active, None, 100).await,
        ["acct-01", "acct-03", "acct-05", "acct-06"]
    );
    let unassigned = AssignmentFilter {
        status: Some(AssignmentStatus::Unassigned),
        ..all()
    };
    assert_eq!(list(unassigned, None, 100).await, ["acct-02", "acct-04"]);
    let one = AssignmentFilter {
        account_id: Some("acct-03".to_owned()),
        ..all()
    };
    assert_eq!(list(one, None, 100).await, ["acct-03"]);
    let some = AssignmentFilter {
        account_ids: vec![
            "acct-05".to_owned(),
            "acct-02".to_owned(),
            "acct-99".to_owned(),
        ],
        ..all()
    };
    assert_eq!(list(some, None, 100).await, ["acct-02", "acct-05"]);
    let shard = AssignmentFilter {
        before_account_id: Some("acct-04".to_owned()),
        ..all()
    };
    assert_eq!(
        list(shard, None, 100).await,
        ["acct-01", "acct-02", "acct-03"]
    );
    // Monitored: every active account, and unassigned ones still rebalancing
    // (to cash); not the unassigned one with rebalancing off.
    let monitored = AssignmentFilter {
        monitored_only: true,
        ..all()
    };
    assert_eq!(
        list(monitored.clone(), None, 100).await,
        ["acct-01", "acct-02", "acct-03", "acct-05", "acct-06"]
    );
    let monitored_shard = AssignmentFilter {
        before_account_id: Some("acct-06".to_owned()),
        ..monitored
    };
    assert_eq!(
        list(monitored_shard, Some("acct-02"), 100).await,
        ["acct-03", "acct-05"]
    );

    // Pages by account id.
    assert_eq!(
        list(all(), None, 4).await,
        ["acct-01", "acct-02", "acct-03", "acct-04"]
    );
    assert_eq!(
        list(all(), Some("acct-04"), 4).await,
        ["acct-05", "acct-06"]
    );
    assert!(list(all(), Some("acct-06"), 4).await.is_empty());
    let other_tenant = store
        .list_assignments("firm-b", &all(), None, 100)
        .await
        .expect("list");
    assert!(other_tenant.is_empty());
}

async fn assignment_updates_check_the_revision(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let thirds = create(store, thirds("Thirds"), 1).await;
    let created = assign(store, "acct-1", &balanced.id, 10).await;
    let settings = AssignmentChange {
        rebalancing_enabled: Some(false),
        approval_mode: Some(ApprovalMode::Manual),
        ..AssignmentChange::default()
    };
    let changed = store
        .update_assignment(
            "firm-a",
            &created.id,
            1,
            settings,
            at(20),
            action("updated"),
        )
        .await
        .expect("settings");
    assert_eq!(
        changed,
        AssignmentRecord {
            rebalancing_enabled: false,
            approval_mode: ApprovalMode::Manual,
            revision: 2,
            updated_at: at(20),
            ..created.clone()
        }
    );
    let retarget = AssignmentChange {
        portfolio_id: Some(Some(thirds.id.clone())),
        target_changed: true,
        ..AssignmentChange::default()
    };
    let moved = store
        .update_assignment(
            "firm-a",
            &created.id,
            2,
            retarget,
            at(30),
            action("updated"),
        )
        .await
        .expect("retarget");
    assert_eq!(moved.portfolio_id, Some(thirds.id.clone()));
    assert_eq!(moved.target_changed_at, Some(at(30)));
    assert_eq!(moved.revision, 3);

    // Based on revision 2: refused, nothing changes.
    let error = store
        .update_assignment(
            "firm-a",
            &created.id,
            2,
            unassign_change(true),
            at(40),
            action("unassigned"),
        )
        .await
        .expect_err("stale revision");
    assert!(matches!(error, StoreError::StaleRevision(_)), "{error:?}");
    let read = store
        .get_assignment("firm-a", &created.id)
        .await
        .expect("get");
    assert_eq!(read, Some(moved.clone()));

    // Unknown assignment, unknown portfolio: not found, nothing changes.
    let error = store
        .update_assignment(
            "firm-a",
            "missing",
            1,
            AssignmentChange::default(),
            at(40),
            action("updated"),
        )
        .await
        .expect_err("unknown assignment");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    let error = store
        .update_assignment(
            "firm-a",
            &created.id,
            3,
            AssignmentChange {
                portfolio_id: Some(Some("missing".to_owned())),
                ..AssignmentChange::default()
            },
            at(40),
            action("updated"),
        )
        .await
        .expect_err("unknown portfolio");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    let read = store
        .get_assignment("firm-a", &created.id)
        .await
        .expect("get");
    assert_eq!(read, Some(moved));
    // Only the changes that happened are in the trail.
    let events = store
        .list_events(
            "firm-a",
            "assignment",
            std::slice::from_ref(&created.id),
            &first_page(),
        )
        .await
        .expect("events");
    assert_eq!(events.len(), 3);
}

async fn active_assignments_are_counted_per_portfolio(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let thirds = create(store, thirds("Thirds"), 1).await;
    assign(store, "acct-1", &balanced.id, 10).await;
    let paused = assign(store, "acct-2", &balanced.id, 10).await;
    let gone = assign(store, "acct-3", &balanced.id, 10).await;
    assign(store, "acct-4", &thirds.id, 10).await;
    let count = async |tenant: &str, portfolio_id: &str| {
        store
            .count_active_assignments(tenant, portfolio_id)
            .await
            .expect("count")
    };
    assert_eq!(count("firm-a", &balanced.id).await, 3);

    unassign(store, &gone, true, 20).await;
    // Unassigned yet still naming the portfolio: not active, not counted.
    store
        .update_assignment(
            "firm-a",
            &paused.id,
            paused.revision,
            AssignmentChange {
                status: Some(AssignmentStatus::Unassigned),
                ..AssignmentChange::default()
            },
            at(20),
            action("updated"),
        )
        .await
        .expect("pause");
    assert_eq!(count("firm-a", &balanced.id).await, 1);
    assert_eq!(count("firm-a", &thirds.id).await, 1);
    assert_eq!(count("firm-a", "missing").await, 0);
    assert_eq!(count("firm-b", &balanced.id).await, 0);
}

async fn events_are_listed_per_resource_newest_first(store: Arc<dyn TargetStore>) {
    let store = &*store;
    let balanced = create(store, balanced("Balanced"), 0).await;
    let first = store
        .assign(
            "firm-a",
            new_assignment("acct-1", &balanced.id, 10),
            None,
            AuditEntry {
                details: serde_json::json!({ "portfolio_id": balanced.id }),
                ..action("assigned")
            },
        )
        .await
        .expect("assign")
        .into_inner();
    let second = assign(store, "acct-2", &balanced.id, 11).await;
    let settings = AssignmentChange {
        approval_mode: Some(ApprovalMode::Manual),
        ..AssignmentChange::default()
    };
    let changed = store
        .update_assignment("firm-a", &first.id, 1, settings, at(20), action("updated"))
        .await
        .expect("update");
    unassign(store, &changed, true, 30).await;

    let events = async |resource_type: &str, ids: &[&String], page: PageRequest| {
        let ids: Vec<String> = ids.iter().map(|id| (*id).clone()).collect();
        store
            .list_events("firm-a", resource_type, &ids, &page)
            .await
            .expect("events")
    };
    let of_first = events("assignment", &[&first.id], first_page()).await;
    let actions: Vec<&str> = of_first.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["unassigned", "updated", "assigned"]);
    let times: Vec<_> = of_first.iter().map(|e| e.occurred_at).collect();
    assert_eq!(times, [at(30), at(20), at(10)]);
    let assigned = &of_first[2];
    assert_eq!(assigned.resource_type, "assignment");
    assert_eq!(assigned.resource_id, first.id);
    assert_eq!(assigned.actor, "advisor@firm");
    assert_eq!(assigned.request_id.as_deref(), Some("req-1"));
    let details: serde_json::Value =
        serde_json::from_str(&assigned.details_json).expect("details are JSON");
    assert_eq!(details, serde_json::json!({ "portfolio_id": balanced.id }));

    let of_both = events("assignment", &[&first.id, &second.id], first_page()).await;
    assert_eq!(of_both.len(), 4);
    // No ids: every event of the type (not the portfolio's).
    let of_type = events("assignment", &[], first_page()).await;
    assert_eq!(of_type, of_both);
    let of_portfolio = events("portfolio", &[&balanced.id], first_page()).await;
    assert_eq!(of_portfolio.len(), 1);
    assert_eq!(of_portfolio[0].action, "created");
    let none = events("portfolio", &[&first.id], first_page()).await;
    assert!(none.is_empty());

    // Pages follow the event id, newest first.
    let two = |after: Option<String>| PageRequest { after, limit: 2 };
    let page_one = events("assignment", &[&first.id], two(None)).await;
    let page_two = events(
        "assignment",
        &[&first.id],
        two(Some(page_one[1].id.clone())),
    )
    .await;
    assert_eq!(page_one, of_first[..2]);
    assert_eq!(page_two, of_first[2..]);

    let other_tenant = store
        .list_events("firm-b", "assignment", &[], &first_page())
        .await
        .expect("events");
    assert!(other_tenant.is_empty());
}

//! The Target service end to end on both backends: versions, sleeves,
//! minimums checked against the account book, assignments, the bulk stream,
//! asset reports from market data, the audit trail, and refusals that store
//! nothing.

use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{
    ApprovalMode, ConditionSubType, ConditionType, RebalanceCondition, Weight, WeightType,
};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::{UpdateAssetRequest, UpsertAccountRequest};
use rebalancer_proto::prost_types::FieldMask;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, AssignmentStatus, CreatePortfolioRequest, DeletePortfolioRequest,
    GetPortfolioRequest, ListAssignmentEventsRequest, ListAssignmentsRequest,
    ListPortfolioEventsRequest, ListPortfolioVersionsRequest, ListPortfoliosRequest, OrderSizing,
    Portfolio, PortfolioStatus, ResolvePortfolioRequest, StreamAssignmentsRequest, UnassignRequest,
    UpdateAssignmentRequest, UpdatePortfolioRequest,
};
use rebalancer_tests::{Backend, TestStack};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn asset(symbol: &str, percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Asset.into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn cash(percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Cash.into(),
        percent: percent.to_owned(),
        ..Weight::default()
    }
}

fn sleeve(portfolio_id: &str, percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Portfolio.into(),
        portfolio_id: portfolio_id.to_owned(),
        percent: percent.to_owned(),
        ..Weight::default()
    }
}

fn portfolio(name: &str, weights: Vec<Weight>) -> CreatePortfolioRequest {
    CreatePortfolioRequest {
        name: name.to_owned(),
        weights,
        rebalance_conditions: vec![RebalanceCondition {
            r#type: ConditionType::DriftBand.into(),
            sub_type: ConditionSubType::Absolute.into(),
            percent: "5".to_owned(),
            ..RebalanceCondition::default()
        }],
        cooldown_days: 7,
        ..CreatePortfolioRequest::default()
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

struct Clients {
    firm: CallContext,
    portfolios: PortfolioServiceClient<TracedChannel>,
    assignments: AssignmentServiceClient<TracedChannel>,
    accounts: AccountServiceClient<TracedChannel>,
}

impl Clients {
    async fn create(&mut self, request: CreatePortfolioRequest) -> Portfolio {
        self.portfolios
            .create_portfolio(self.firm.request(request))
            .await
            .expect("create portfolio")
            .into_inner()
            .portfolio
            .expect("portfolio")
    }

    async fn account(&mut self, id: &str, cash: &str) {
        self.accounts
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: cash.to_owned(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
    }

    async fn count(&mut self) -> usize {
        self.portfolios
            .list_portfolios(self.firm.request(ListPortfoliosRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .portfolios
            .len()
    }
}

async fn target_service(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut firm = stack.tenant("firm-a");
    firm.actor = Some("advisor@firm-a".to_owned());
    let mut c = Clients {
        firm,
        portfolios: PortfolioServiceClient::new(stack.channel()),
        assignments: AssignmentServiceClient::new(stack.channel()),
        accounts: AccountServiceClient::new(stack.channel()),
    };

    // Models and a 70/30 sleeve target of them.
    let balanced = c
        .create(portfolio(
            "Balanced",
            vec![cash("5"), asset("SPY", "60"), asset("TLT", "35")],
        ))
        .await;
    let mut core_request = portfolio("Core Equity", vec![asset("VTI", "60"), asset("VEA", "40")]);
    core_request.investment_minimum = "10000".to_owned();
    let core = c.create(core_request).await;
    let income = c
        .create(portfolio("Income", vec![cash("10"), asset("AGG", "90")]))
        .await;
    let growth = c
        .create(portfolio(
            "Growth sleeves",
            vec![sleeve(&core.id, "70"), sleeve(&income.id, "30")],
        ))
        .await;
    let resolved = c
        .portfolios
        .resolve_portfolio(c.firm.request(ResolvePortfolioRequest {
            portfolio_id: growth.id.clone(),
            version: 0,
        }))
        .await
        .expect("resolve")
        .into_inner();
    let flat: Vec<(String, String)> = resolved
        .weights
        .iter()
        .map(|w| (w.symbol.clone(), w.percent.clone()))
        .collect();
    assert_eq!(
        flat,
        [
            (String::new(), "3".to_owned()),
            ("AGG".to_owned(), "27".to_owned()),
            ("VEA".to_owned(), "28".to_owned()),
            ("VTI".to_owned(), "42".to_owned()),
        ]
    );

    // Malformed or impossible creates are refused with the field named; nothing is stored.
    let stored = c.count().await;
    let status = c
        .portfolios
        .create_portfolio(
            c.firm
                .request(portfolio("Unknown", vec![asset("ZZZZ", "100")])),
        )
        .await
        .expect_err("unknown symbol");
    assert_eq!(fields(&status), ["weights[0].symbol"]);
    let status = c
        .portfolios
        .create_portfolio(
            c.firm
                .request(portfolio("Whole", vec![asset("BRK.A", "100")])),
        )
        .await
        .expect_err("not fractionable under notional sizing");
    assert_eq!(fields(&status), ["weights[0].symbol"]);
    let mut whole = portfolio("Whole shares", vec![asset("BRK.A", "100")]);
    whole.order_sizing = OrderSizing::WholeShares.into();
    c.create(whole).await;
    let status = c
        .portfolios
        .create_portfolio(c.firm.request(portfolio(
            "Ghost sleeve",
            vec![sleeve("no-such-portfolio", "100")],
        )))
        .await
        .expect_err("missing sleeve");
    assert_eq!(fields(&status), ["weights[0].portfolio_id"]);
    assert_eq!(c.count().await, stored + 1);

    // A sleeve minimum: core needs $10K at 70%, so $14,285.72 at least.
    c.account("acct-small", "14000").await;
    c.account("acct-big", "50000").await;
    let status = c
        .assignments
        .assign(c.firm.request(AssignRequest {
            account_id: "acct-small".to_owned(),
            portfolio_id: growth.id.clone(),
            rebalancing_enabled: true,
            ..AssignRequest::default()
        }))
        .await
        .expect_err("below the minimum");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("investment minimum"),
        "{}",
        status.message()
    );
    let big = c
        .assignments
        .assign(c.firm.request(AssignRequest {
            idempotency_key: "assign-big".to_owned(),
            account_id: "acct-big".to_owned(),
            portfolio_id: growth.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
        }))
        .await
        .expect("assign")
        .into_inner()
        .assignment
        .expect("assignment");
    let status = c
        .assignments
        .assign(c.firm.request(AssignRequest {
            account_id: "acct-big".to_owned(),
            portfolio_id: balanced.id.clone(),
            rebalancing_enabled: true,
            ..AssignRequest::default()
        }))
        .await
        .expect_err("one active assignment per account");
    assert_eq!(status.code(), Code::AlreadyExists);
    let balanced_assignment = c
        .assignments
        .assign(c.firm.request(AssignRequest {
            account_id: "acct-small".to_owned(),
            portfolio_id: balanced.id.clone(),
            rebalancing_enabled: true,
            ..AssignRequest::default()
        }))
        .await
        .expect("assign balanced")
        .into_inner()
        .assignment
        .expect("assignment");

    // A weights update makes version 2; version 1 stays readable; the
    // assignment becomes due (target_changed_at moves).
    stack.clock.advance(chrono::TimeDelta::hours(1));
    let mut changed = balanced.clone();
    changed.weights = vec![cash("5"), asset("SPY", "55"), asset("TLT", "40")];
    let updated = c
        .portfolios
        .update_portfolio(c.firm.request(UpdatePortfolioRequest {
            portfolio: Some(changed.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["weights".to_owned()],
            }),
        }))
        .await
        .expect("update")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.weights[1].percent, "55");
    let first = c
        .portfolios
        .get_portfolio(c.firm.request(GetPortfolioRequest {
            portfolio_id: balanced.id.clone(),
            version: 1,
        }))
        .await
        .expect("version 1")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(first.weights[1].percent, "60");
    let versions = c
        .portfolios
        .list_portfolio_versions(c.firm.request(ListPortfolioVersionsRequest {
            portfolio_id: balanced.id.clone(),
            ..ListPortfolioVersionsRequest::default()
        }))
        .await
        .expect("versions")
        .into_inner()
        .versions;
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    let due = c
        .assignments
        .list_assignments(c.firm.request(ListAssignmentsRequest {
            account_id: "acct-small".to_owned(),
            ..ListAssignmentsRequest::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .assignments;
    let seconds = |t: &Option<rebalancer_proto::prost_types::Timestamp>| {
        t.as_ref().map(|t| t.seconds).unwrap_or_default()
    };
    assert!(seconds(&due[0].target_changed_at) > seconds(&balanced_assignment.target_changed_at));

    // The old etag is now stale: ABORTED, and nothing changes.
    let status = c
        .portfolios
        .update_portfolio(c.firm.request(UpdatePortfolioRequest {
            portfolio: Some(Portfolio {
                name: "Renamed".to_owned(),
                ..changed
            }),
            update_mask: None,
        }))
        .await
        .expect_err("stale etag");
    assert_eq!(status.code(), Code::Aborted);
    // Bad weights in an update name the nested field.
    let status = c
        .portfolios
        .update_portfolio(c.firm.request(UpdatePortfolioRequest {
            portfolio: Some(Portfolio {
                id: balanced.id.clone(),
                etag: updated.etag.clone(),
                weights: vec![asset("SPY", "50")],
                ..Portfolio::default()
            }),
            update_mask: None,
        }))
        .await
        .expect_err("bad sum");
    assert_eq!(fields(&status), ["portfolio.weights"]);

    // Deactivation is refused while assigned, allowed after an unassign.
    let status = c
        .portfolios
        .delete_portfolio(c.firm.request(DeletePortfolioRequest {
            portfolio_id: balanced.id.clone(),
            etag: updated.etag.clone(),
        }))
        .await
        .expect_err("assigned");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = c
        .portfolios
        .delete_portfolio(c.firm.request(DeletePortfolioRequest {
            portfolio_id: core.id.clone(),
            etag: core.etag.clone(),
        }))
        .await
        .expect_err("a sleeve of an active portfolio");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let current = c
        .assignments
        .get_assignment(
            c.firm
                .request(rebalancer_proto::target::GetAssignmentRequest {
                    account_id: "acct-small".to_owned(),
                    ..Default::default()
                }),
        )
        .await
        .expect("get")
        .into_inner()
        .assignment
        .expect("assignment");
    let unassigned = c
        .assignments
        .unassign(c.firm.request(UnassignRequest {
            assignment_id: current.id.clone(),
            etag: current.etag.clone(),
            keep_rebalancing_enabled: true,
        }))
        .await
        .expect("unassign")
        .into_inner()
        .assignment
        .expect("assignment");
    assert_eq!(unassigned.status, i32::from(AssignmentStatus::Unassigned));
    let deleted = c
        .portfolios
        .delete_portfolio(c.firm.request(DeletePortfolioRequest {
            portfolio_id: balanced.id.clone(),
            etag: updated.etag.clone(),
        }))
        .await
        .expect("delete")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(deleted.status, i32::from(PortfolioStatus::Inactive));

    // The stream: the unassigned account with rebalancing on targets 100% cash;
    // the sleeve target streams flat weights.
    let mut stream = c
        .assignments
        .stream_assignments(c.firm.request(StreamAssignmentsRequest::default()))
        .await
        .expect("stream")
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.next().await {
        streamed.extend(batch.expect("batch").assignments);
    }
    assert_eq!(streamed.len(), 2);
    let big_resolved = streamed
        .iter()
        .find(|a| a.account_id == "acct-big")
        .expect("big");
    assert_eq!(big_resolved.weights.len(), 4);
    assert_eq!(big_resolved.approval_mode, i32::from(ApprovalMode::Manual));
    let small_resolved = streamed
        .iter()
        .find(|a| a.account_id == "acct-small")
        .expect("small");
    assert_eq!(
        small_resolved.status,
        i32::from(AssignmentStatus::Unassigned)
    );
    assert_eq!(small_resolved.weights, [cash("100")]);

    // Turning rebalancing off leaves the account unmonitored.
    let small = c
        .assignments
        .update_assignment(c.firm.request(UpdateAssignmentRequest {
            assignment_id: unassigned.id.clone(),
            etag: unassigned.etag.clone(),
            rebalancing_enabled: Some(false),
            ..UpdateAssignmentRequest::default()
        }))
        .await
        .expect("toggle")
        .into_inner()
        .assignment
        .expect("assignment");
    assert!(!small.rebalancing_enabled);
    let mut stream = c
        .assignments
        .stream_assignments(c.firm.request(StreamAssignmentsRequest::default()))
        .await
        .expect("stream")
        .into_inner();
    let mut monitored = 0;
    while let Some(batch) = stream.next().await {
        monitored += batch.expect("batch").assignments.len();
    }
    assert_eq!(monitored, 1);

    // An asset becomes untradable: portfolios holding it need adjustment
    // (and the sleeve target using one of them); an update fixing the
    // weights makes the model active again.
    let mut market = MarketDataServiceClient::new(stack.channel());
    market
        .update_asset(c.firm.request(UpdateAssetRequest {
            symbol: "VEA".to_owned(),
            tradable: Some(false),
            reason: "delisted".to_owned(),
            ..UpdateAssetRequest::default()
        }))
        .await
        .expect("update asset");
    let core_now = c
        .portfolios
        .get_portfolio(c.firm.request(GetPortfolioRequest {
            portfolio_id: core.id.clone(),
            version: 0,
        }))
        .await
        .expect("get")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(core_now.status, i32::from(PortfolioStatus::NeedsAdjustment));
    assert!(core_now.status_reason.contains("VEA"));
    let growth_now = c
        .portfolios
        .get_portfolio(c.firm.request(GetPortfolioRequest {
            portfolio_id: growth.id.clone(),
            version: 0,
        }))
        .await
        .expect("get")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(
        growth_now.status,
        i32::from(PortfolioStatus::NeedsAdjustment)
    );
    let fixed = c
        .portfolios
        .update_portfolio(c.firm.request(UpdatePortfolioRequest {
            portfolio: Some(Portfolio {
                id: core.id.clone(),
                etag: core_now.etag.clone(),
                weights: vec![asset("VTI", "60"), asset("IEFA", "40")],
                ..Portfolio::default()
            }),
            update_mask: None,
        }))
        .await
        .expect("fix")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(fixed.status, i32::from(PortfolioStatus::Active));

    // The audit trail names who did what.
    let events = c
        .portfolios
        .list_portfolio_events(c.firm.request(ListPortfolioEventsRequest {
            portfolio_id: balanced.id.clone(),
            ..ListPortfolioEventsRequest::default()
        }))
        .await
        .expect("events")
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["deactivated", "weights_updated", "created"]);
    assert!(events.iter().all(|e| e.actor == "advisor@firm-a"));
    let assignment_events = c
        .assignments
        .list_assignment_events(c.firm.request(ListAssignmentEventsRequest {
            account_id: "acct-small".to_owned(),
            ..ListAssignmentEventsRequest::default()
        }))
        .await
        .expect("events")
        .into_inner()
        .events;
    let actions: Vec<&str> = assignment_events
        .iter()
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["updated", "unassigned", "assigned"]);
    assert_eq!(big.approval_mode, i32::from(ApprovalMode::Manual));
    stack.stop().await;
}

#[tokio::test]
async fn target_service_sqlite() {
    target_service(Backend::Sqlite).await;
}

#[tokio::test]
async fn target_service_postgres() {
    target_service(Backend::Postgres).await;
}

#[tokio::test]
async fn stream_of_many_assignments_comes_in_batches() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    let model = portfolios
        .create_portfolio(firm.request(portfolio("Model", vec![asset("VTI", "100")])))
        .await
        .expect("model")
        .into_inner()
        .portfolio
        .expect("portfolio");
    for index in 0..2500 {
        assignments
            .assign(firm.request(AssignRequest {
                account_id: format!("acct-{index:05}"),
                portfolio_id: model.id.clone(),
                rebalancing_enabled: true,
                ..AssignRequest::default()
            }))
            .await
            .expect("assign");
    }
    let mut stream = assignments
        .stream_assignments(firm.request(StreamAssignmentsRequest {
            batch_size: 1000,
            ..StreamAssignmentsRequest::default()
        }))
        .await
        .expect("stream")
        .into_inner();
    let mut sizes = Vec::new();
    let mut last = String::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("batch").assignments;
        for assignment in &batch {
            assert!(assignment.account_id > last, "account order");
            last.clone_from(&assignment.account_id);
        }
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [1000, 1000, 500]);

    // For a reader that caches targets: each portfolio version's weights come
    // once, with the first assignment to it; the rest only name it.
    let other = portfolios
        .create_portfolio(firm.request(portfolio(
            "Other",
            vec![asset("SPY", "60"), asset("TLT", "40")],
        )))
        .await
        .expect("other")
        .into_inner()
        .portfolio
        .expect("portfolio");
    for account_id in ["acct-99998", "acct-99999"] {
        assignments
            .assign(firm.request(AssignRequest {
                account_id: account_id.to_owned(),
                portfolio_id: other.id.clone(),
                rebalancing_enabled: true,
                ..AssignRequest::default()
            }))
            .await
            .expect("assign other");
    }
    let mut stream = assignments
        .stream_assignments(firm.request(StreamAssignmentsRequest {
            batch_size: 1000,
            omit_repeated_targets: true,
            ..StreamAssignmentsRequest::default()
        }))
        .await
        .expect("stream")
        .into_inner();
    let mut carried: Vec<(String, usize)> = Vec::new();
    let mut omitted = 0;
    while let Some(batch) = stream.next().await {
        for assignment in batch.expect("batch").assignments {
            if assignment.target_omitted {
                assert!(
                    assignment.weights.is_empty(),
                    "omitted target has no weights"
                );
                assert!(
                    carried.iter().any(|(id, _)| *id == assignment.portfolio_id),
                    "omitted before it was sent"
                );
                omitted += 1;
            } else {
                carried.push((assignment.portfolio_id.clone(), assignment.weights.len()));
            }
        }
    }
    assert_eq!(carried, [(model.id.clone(), 1), (other.id.clone(), 2)]);
    assert_eq!(omitted, 2500 - 1 + 2 - 1);
    stack.stop().await;
}

//! The tenant isolation matrix, on both backends: tenant A creates one of
//! everything (portfolio, assignment, account, cash movement, run, batch,
//! block order, account order, cycle); tenant B, sending A's ids to every
//! RPC that takes one, gets NOT_FOUND and changes nothing, and none of A's
//! data appears in B's lists.

use chrono::Duration;
use rebalancer_proto::common::{ApprovalMode, RunType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AcknowledgeCashMovementRequest, ApproveRunRequest, CancelBatchRequest, CancelBlockOrderRequest,
    CancelCashMovementRequest, CancelRunRequest, CashMovementType, CreateBatchRequest,
    CreateCashMovementRequest, CreateRunRequest, GetAccountRequest, GetBatchRequest,
    GetBatchTradesRequest, GetBlockOrderRequest, GetExecutionQualityRequest, GetHoldingsRequest,
    GetOrderRequest, GetRunRequest, ListAccountsRequest, ListAllocationsRequest,
    ListBatchesRequest, ListBlockOrdersRequest, ListCashMovementsRequest, ListChildOrdersRequest,
    ListFillsRequest, ListOrdersRequest, ListRunsRequest, PreviewRunRequest, RunSpec,
    UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{
    EvaluateNowRequest, GetCycleRequest, GetEvaluationRequest, ListCyclesRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, CreatePortfolioRequest, DeletePortfolioRequest, GetAssignmentRequest,
    GetPortfolioRequest, ListAssignmentsRequest, ListPortfolioVersionsRequest,
    ListPortfoliosRequest, UnassignRequest,
};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};
use tonic::Code;

/// Asserts B's call failed with NOT_FOUND.
fn not_found<T: std::fmt::Debug>(rpc: &str, answer: Result<tonic::Response<T>, tonic::Status>) {
    match answer {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{rpc}: {status:?}"),
        Ok(response) => panic!("{rpc}: tenant B reached tenant A's data: {response:?}"),
    }
}

async fn tenants_cannot_reach_each_other(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let channel = stack.channel();
    let a = stack.tenant("firm-a");
    let b = stack.tenant("firm-b");
    let mut portfolios = PortfolioServiceClient::new(channel.clone());
    let mut assignments = AssignmentServiceClient::new(channel.clone());
    let mut accounts = AccountServiceClient::new(channel.clone());
    let mut runs = RunServiceClient::new(channel.clone());
    let mut batches = BatchServiceClient::new(channel.clone());
    let mut orders = OrderServiceClient::new(channel.clone());
    let mut monitor = MonitorServiceClient::new(channel.clone());

    // Tenant A: one of everything.
    let portfolio = portfolios
        .create_portfolio(a.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    for id in ["acct-1", "acct-2"] {
        accounts
            .upsert_account(a.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: "50000".to_owned(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
        assignments
            .assign(a.request(AssignRequest {
                account_id: id.to_owned(),
                portfolio_id: portfolio.id.clone(),
                rebalancing_enabled: true,
                approval_mode: ApprovalMode::Manual.into(),
                ..AssignRequest::default()
            }))
            .await
            .expect("assign");
    }
    let assignment = assignments
        .get_assignment(a.request(GetAssignmentRequest {
            account_id: "acct-1".to_owned(),
            ..GetAssignmentRequest::default()
        }))
        .await
        .expect("assignment")
        .into_inner()
        .assignment
        .expect("assignment");
    let movement = accounts
        .create_cash_movement(a.request(CreateCashMovementRequest {
            idempotency_key: "dep-1".to_owned(),
            account_id: "acct-2".to_owned(),
            r#type: CashMovementType::Deposit.into(),
            amount: "100".to_owned(),
        }))
        .await
        .expect("deposit")
        .into_inner()
        .cash_movement
        .expect("movement");
    let spec = RunSpec {
        account_id: "acct-1".to_owned(),
        r#type: RunType::FullRebalance.into(),
        approval_mode: ApprovalMode::Auto.into(),
        ..RunSpec::default()
    };
    let run = runs
        .create_run(a.request(CreateRunRequest {
            idempotency_key: "run-1".to_owned(),
            spec: Some(spec.clone()),
        }))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("run");
    let batch = batches
        .create_batch(a.request(CreateBatchRequest {
            idempotency_key: "batch-1".to_owned(),
            account_ids: vec!["acct-2".to_owned()],
            r#type: RunType::FullRebalance.into(),
            ..CreateBatchRequest::default()
        }))
        .await
        .expect("batch")
        .into_inner()
        .batch
        .expect("batch");
    stack.advance_and_tick(Duration::seconds(30), 4).await;
    let run = runs
        .get_run(a.request(GetRunRequest {
            run_id: run.id.clone(),
        }))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("run");
    let order = run.orders.first().expect("an order").clone();
    assert!(!order.block_order_id.is_empty(), "{order:?}");
    let cycle = monitor
        .evaluate_now(a.request(EvaluateNowRequest {
            idempotency_key: "check-1".to_owned(),
            account_ids: vec!["acct-1".to_owned()],
            ..EvaluateNowRequest::default()
        }))
        .await
        .expect("evaluate")
        .into_inner()
        .cycle
        .expect("cycle");
    while stack.monitor_tick().await > 0 {}

    // Tenant B with A's ids: NOT_FOUND everywhere.
    not_found(
        "GetPortfolio",
        portfolios
            .get_portfolio(b.request(GetPortfolioRequest {
                portfolio_id: portfolio.id.clone(),
                ..GetPortfolioRequest::default()
            }))
            .await,
    );
    not_found(
        "ListPortfolioVersions",
        portfolios
            .list_portfolio_versions(b.request(ListPortfolioVersionsRequest {
                portfolio_id: portfolio.id.clone(),
                ..ListPortfolioVersionsRequest::default()
            }))
            .await,
    );
    not_found(
        "DeletePortfolio",
        portfolios
            .delete_portfolio(b.request(DeletePortfolioRequest {
                portfolio_id: portfolio.id.clone(),
                etag: "r1".to_owned(),
            }))
            .await,
    );
    not_found(
        "GetAssignment",
        assignments
            .get_assignment(b.request(GetAssignmentRequest {
                assignment_id: assignment.id.clone(),
                ..GetAssignmentRequest::default()
            }))
            .await,
    );
    not_found(
        "GetAssignment by account",
        assignments
            .get_assignment(b.request(GetAssignmentRequest {
                account_id: "acct-1".to_owned(),
                ..GetAssignmentRequest::default()
            }))
            .await,
    );
    not_found(
        "Unassign",
        assignments
            .unassign(b.request(UnassignRequest {
                assignment_id: assignment.id.clone(),
                etag: "r1".to_owned(),
                ..UnassignRequest::default()
            }))
            .await,
    );
    not_found(
        "Assign to A's portfolio",
        assignments
            .assign(b.request(AssignRequest {
                account_id: "acct-9".to_owned(),
                portfolio_id: portfolio.id.clone(),
                ..AssignRequest::default()
            }))
            .await,
    );
    not_found(
        "GetAccount",
        accounts
            .get_account(b.request(GetAccountRequest {
                account_id: "acct-1".to_owned(),
            }))
            .await,
    );
    not_found(
        "GetHoldings",
        accounts
            .get_holdings(b.request(GetHoldingsRequest {
                account_id: "acct-1".to_owned(),
            }))
            .await,
    );
    not_found(
        "CreateCashMovement",
        accounts
            .create_cash_movement(b.request(CreateCashMovementRequest {
                idempotency_key: "b-dep".to_owned(),
                account_id: "acct-2".to_owned(),
                r#type: CashMovementType::Deposit.into(),
                amount: "100".to_owned(),
            }))
            .await,
    );
    not_found(
        "AcknowledgeCashMovement",
        accounts
            .acknowledge_cash_movement(b.request(AcknowledgeCashMovementRequest {
                cash_movement_id: movement.id.clone(),
                ..AcknowledgeCashMovementRequest::default()
            }))
            .await,
    );
    not_found(
        "CancelCashMovement",
        accounts
            .cancel_cash_movement(b.request(CancelCashMovementRequest {
                cash_movement_id: movement.id.clone(),
            }))
            .await,
    );
    not_found(
        "GetRun",
        runs.get_run(b.request(GetRunRequest {
            run_id: run.id.clone(),
        }))
        .await,
    );
    not_found(
        "ApproveRun",
        runs.approve_run(b.request(ApproveRunRequest {
            run_id: run.id.clone(),
            etag: "r1".to_owned(),
        }))
        .await,
    );
    not_found(
        "CancelRun",
        runs.cancel_run(b.request(CancelRunRequest {
            run_id: run.id.clone(),
            etag: "r1".to_owned(),
            ..CancelRunRequest::default()
        }))
        .await,
    );
    not_found(
        "PreviewRun of A's account",
        runs.preview_run(b.request(PreviewRunRequest {
            spec: Some(spec.clone()),
        }))
        .await,
    );
    not_found(
        "GetBatch",
        batches
            .get_batch(b.request(GetBatchRequest {
                batch_id: batch.id.clone(),
            }))
            .await,
    );
    not_found(
        "GetBatchTrades",
        batches
            .get_batch_trades(b.request(GetBatchTradesRequest {
                batch_id: batch.id.clone(),
                ..GetBatchTradesRequest::default()
            }))
            .await,
    );
    not_found(
        "CancelBatch",
        batches
            .cancel_batch(b.request(CancelBatchRequest {
                batch_id: batch.id.clone(),
                etag: "r1".to_owned(),
                ..CancelBatchRequest::default()
            }))
            .await,
    );
    not_found(
        "GetOrder",
        orders
            .get_order(b.request(GetOrderRequest {
                order_id: order.id.clone(),
            }))
            .await,
    );
    not_found(
        "GetBlockOrder",
        orders
            .get_block_order(b.request(GetBlockOrderRequest {
                block_order_id: order.block_order_id.clone(),
            }))
            .await,
    );
    not_found(
        "CancelBlockOrder",
        orders
            .cancel_block_order(b.request(CancelBlockOrderRequest {
                block_order_id: order.block_order_id.clone(),
                ..CancelBlockOrderRequest::default()
            }))
            .await,
    );
    not_found(
        "GetExecutionQuality",
        orders
            .get_execution_quality(b.request(GetExecutionQualityRequest {
                block_order_id: order.block_order_id.clone(),
                ..GetExecutionQualityRequest::default()
            }))
            .await,
    );
    not_found(
        "GetCycle",
        monitor
            .get_cycle(b.request(GetCycleRequest {
                cycle_id: cycle.id.clone(),
            }))
            .await,
    );
    not_found(
        "GetEvaluation",
        monitor
            .get_evaluation(b.request(GetEvaluationRequest {
                account_id: "acct-1".to_owned(),
                cycle_id: cycle.id.clone(),
            }))
            .await,
    );

    // B's lists hold nothing of A's, even filtered by A's ids.
    let empty =
        |what: &str, count: usize| assert_eq!(count, 0, "{what} shows tenant A's data to B");
    empty(
        "ListPortfolios",
        portfolios
            .list_portfolios(b.request(ListPortfoliosRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .portfolios
            .len(),
    );
    empty(
        "ListAssignments",
        assignments
            .list_assignments(b.request(ListAssignmentsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .assignments
            .len(),
    );
    empty(
        "ListAccounts",
        accounts
            .list_accounts(b.request(ListAccountsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .accounts
            .len(),
    );
    let movements = accounts
        .list_cash_movements(b.request(ListCashMovementsRequest {
            account_id: "acct-2".to_owned(),
            ..ListCashMovementsRequest::default()
        }))
        .await;
    if let Ok(movements) = movements {
        empty(
            "ListCashMovements",
            movements.into_inner().cash_movements.len(),
        );
    }
    empty(
        "ListRuns",
        runs.list_runs(b.request(ListRunsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .runs
            .len(),
    );
    empty(
        "ListBatches",
        batches
            .list_batches(b.request(ListBatchesRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .batches
            .len(),
    );
    empty(
        "ListOrders",
        orders
            .list_orders(b.request(ListOrdersRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .orders
            .len(),
    );
    empty(
        "ListBlockOrders",
        orders
            .list_block_orders(b.request(ListBlockOrdersRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .block_orders
            .len(),
    );
    for (what, answer) in [
        (
            "ListFills",
            orders
                .list_fills(b.request(ListFillsRequest {
                    block_order_id: order.block_order_id.clone(),
                    ..ListFillsRequest::default()
                }))
                .await
                .map(|r| r.into_inner().fills.len()),
        ),
        (
            "ListChildOrders",
            orders
                .list_child_orders(b.request(ListChildOrdersRequest {
                    block_order_id: order.block_order_id.clone(),
                    ..ListChildOrdersRequest::default()
                }))
                .await
                .map(|r| r.into_inner().child_orders.len()),
        ),
        (
            "ListAllocations",
            orders
                .list_allocations(b.request(ListAllocationsRequest {
                    block_order_id: order.block_order_id.clone(),
                    ..ListAllocationsRequest::default()
                }))
                .await
                .map(|r| r.into_inner().allocations.len()),
        ),
    ] {
        match answer {
            Ok(count) => empty(what, count),
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}"),
        }
    }
    let cycles = monitor
        .list_cycles(b.request(ListCyclesRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .cycles;
    assert!(
        cycles.iter().all(|c| c.id != cycle.id),
        "ListCycles shows tenant A's cycle to B: {cycles:?}"
    );

    // And A's data is intact.
    let still = runs
        .get_run(a.request(GetRunRequest {
            run_id: run.id.clone(),
        }))
        .await
        .expect("A's run")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(still.status, run.status);
    assert!(
        portfolios
            .get_portfolio(a.request(GetPortfolioRequest {
                portfolio_id: portfolio.id.clone(),
                ..GetPortfolioRequest::default()
            }))
            .await
            .is_ok()
    );
    stack.stop().await;
}

#[tokio::test]
async fn tenants_cannot_reach_each_other_sqlite() {
    tenants_cannot_reach_each_other(Backend::Sqlite).await;
}

#[tokio::test]
async fn tenants_cannot_reach_each_other_postgres() {
    tenants_cannot_reach_each_other(Backend::Postgres).await;
}

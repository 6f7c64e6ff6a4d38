//! Overlapping retries: twenty identical calls with one idempotency key at
//! once (CreatePortfolio, Assign, CreateBatch, EvaluateNow) all get the
//! first call's answer — never INTERNAL, never
//! ALREADY_EXISTS — and store one object, on both backends.

use futures::future::join_all;
use rebalancer_proto::common::RunType;
use rebalancer_proto::execution::CreateBatchRequest;
use rebalancer_proto::execution::UpsertAccountRequest;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::monitor::EvaluateNowRequest;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, ListPortfoliosRequest};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};

const CALLERS: usize = 20;

async fn overlapping_retries_get_the_first_answer(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let channel = stack.channel();
    let create = CreatePortfolioRequest {
        idempotency_key: "balanced-1".to_owned(),
        name: "Balanced".to_owned(),
        weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
        ..CreatePortfolioRequest::default()
    };
    let answers = join_all((0..CALLERS).map(|_| {
        let mut client = PortfolioServiceClient::new(channel.clone());
        let request = firm.request(create.clone());
        async move { client.create_portfolio(request).await }
    }))
    .await;
    let mut ids = Vec::new();
    for answer in answers {
        let portfolio = answer
            .expect("every retry gets the first answer")
            .into_inner()
            .portfolio
            .expect("portfolio");
        ids.push(portfolio.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let listed = PortfolioServiceClient::new(channel.clone())
        .list_portfolios(firm.request(ListPortfoliosRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .portfolios;
    assert_eq!(listed.len(), 1);

    AccountServiceClient::new(channel.clone())
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "1000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let assign = AssignRequest {
        idempotency_key: "assign-1".to_owned(),
        account_id: "acct-1".to_owned(),
        portfolio_id: ids[0].clone(),
        rebalancing_enabled: true,
        ..AssignRequest::default()
    };
    let answers = join_all((0..CALLERS).map(|_| {
        let mut client = AssignmentServiceClient::new(channel.clone());
        let request = firm.request(assign.clone());
        async move { client.assign(request).await }
    }))
    .await;
    let mut assigned = Vec::new();
    for answer in answers {
        let assignment = answer
            .expect("every retry gets the first answer")
            .into_inner()
            .assignment
            .expect("assignment");
        assigned.push((assignment.account_id, assignment.portfolio_id));
    }
    assigned.dedup();
    assert_eq!(assigned.len(), 1, "{assigned:?}");

    let batch = CreateBatchRequest {
        idempotency_key: "batch-1".to_owned(),
        account_ids: vec!["acct-1".to_owned()],
        r#type: RunType::FullRebalance.into(),
        ..CreateBatchRequest::default()
    };
    let answers = join_all((0..CALLERS).map(|_| {
        let mut client = BatchServiceClient::new(channel.clone());
        let request = firm.request(batch.clone());
        async move { client.create_batch(request).await }
    }))
    .await;
    let mut batches: Vec<String> = answers
        .into_iter()
        .map(|answer| {
            answer
                .expect("every retry gets the first answer")
                .into_inner()
                .batch
                .expect("batch")
                .id
        })
        .collect();
    batches.dedup();
    assert_eq!(batches.len(), 1, "{batches:?}");

    let evaluate = EvaluateNowRequest {
        idempotency_key: "check-1".to_owned(),
        account_ids: vec!["acct-1".to_owned()],
        ..EvaluateNowRequest::default()
    };
    let answers = join_all((0..CALLERS).map(|_| {
        let mut client = MonitorServiceClient::new(channel.clone());
        let request = firm.request(evaluate.clone());
        async move { client.evaluate_now(request).await }
    }))
    .await;
    let mut cycles: Vec<String> = answers
        .into_iter()
        .map(|answer| {
            answer
                .expect("every retry gets the first answer")
                .into_inner()
                .cycle
                .expect("cycle")
                .id
        })
        .collect();
    cycles.dedup();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    stack.stop().await;
}

#[tokio::test]
async fn overlapping_retries_get_the_first_answer_sqlite() {
    overlapping_retries_get_the_first_answer(Backend::Sqlite).await;
}

#[tokio::test]
async fn overlapping_retries_get_the_first_answer_postgres() {
    overlapping_retries_get_the_first_answer(Backend::Postgres).await;
}

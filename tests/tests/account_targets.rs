//! Account-level targets (SMArtX): a portfolio created with
//! PORTFOLIO_SCOPE_ACCOUNT is the account's target at once. An account
//! without an assignment is assigned with the request's settings; an
//! assigned one is switched, keeping its own; repeating the create changes
//! nothing. On both backends.

use rebalancer_proto::common::ApprovalMode;
use rebalancer_proto::execution::UpsertAccountRequest;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, AssignmentStatus, CreatePortfolioRequest, GetAssignmentRequest, PortfolioScope,
    UpdateAssignmentRequest,
};
use rebalancer_tests::{Backend, TestStack, weight};

async fn account_targets_are_assigned_on_creation(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut accounts = AccountServiceClient::new(stack.channel());
    let mut portfolios = PortfolioServiceClient::new(stack.channel());
    let mut assignments = AssignmentServiceClient::new(stack.channel());
    for id in ["acct-new", "acct-old"] {
        accounts
            .upsert_account(firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: "50000".to_owned(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
    }
    let model = portfolios
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Model".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "95")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("model")
        .into_inner();
    assert!(
        model.assignment.is_none(),
        "enterprise models assign nothing"
    );
    let model = model.portfolio.expect("portfolio");
    assignments
        .assign(firm.request(AssignRequest {
            account_id: "acct-old".to_owned(),
            portfolio_id: model.id.clone(),
            rebalancing_enabled: false,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    let own = |account: &str, key: &str| CreatePortfolioRequest {
        idempotency_key: key.to_owned(),
        name: format!("{account} own"),
        weights: vec![weight("", "10"), weight("SPY", "50"), weight("TLT", "40")],
        scope: PortfolioScope::Account.into(),
        account_id: account.to_owned(),
        rebalancing_enabled: true,
        approval_mode: ApprovalMode::Auto.into(),
        ..CreatePortfolioRequest::default()
    };
    // Without an assignment: assigned with the request's settings.
    let created = portfolios
        .create_portfolio(firm.request(own("acct-new", "own-new")))
        .await
        .expect("own target")
        .into_inner();
    let portfolio = created.portfolio.expect("portfolio");
    let assignment = created.assignment.expect("assigned");
    assert_eq!(assignment.account_id, "acct-new");
    assert_eq!(assignment.portfolio_id, portfolio.id);
    assert_eq!(assignment.status, i32::from(AssignmentStatus::Active));
    assert!(assignment.rebalancing_enabled);
    assert_eq!(assignment.approval_mode, i32::from(ApprovalMode::Auto));
    // Repeated: the same portfolio, the same assignment, nothing new.
    let again = portfolios
        .create_portfolio(firm.request(own("acct-new", "own-new")))
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(again.portfolio.expect("portfolio").id, portfolio.id);
    let repeated = again.assignment.expect("assignment");
    assert_eq!(repeated.id, assignment.id);
    assert_eq!(repeated.etag, assignment.etag);
    // Reassigned to the model since: a late replay does not switch it back.
    assignments
        .update_assignment(firm.request(UpdateAssignmentRequest {
            assignment_id: assignment.id.clone(),
            etag: assignment.etag.clone(),
            portfolio_id: Some(model.id.clone()),
            ..UpdateAssignmentRequest::default()
        }))
        .await
        .expect("reassign");
    let late = portfolios
        .create_portfolio(firm.request(own("acct-new", "own-new")))
        .await
        .expect("late repeat")
        .into_inner();
    assert_eq!(late.assignment.expect("assignment").portfolio_id, model.id);

    // Assigned to the model: switched, its own settings kept.
    let switched = portfolios
        .create_portfolio(firm.request(own("acct-old", "own-old")))
        .await
        .expect("own target")
        .into_inner();
    let own_old = switched.portfolio.expect("portfolio");
    let assignment = switched.assignment.expect("assignment");
    assert_eq!(assignment.portfolio_id, own_old.id);
    assert!(!assignment.rebalancing_enabled);
    assert_eq!(assignment.approval_mode, i32::from(ApprovalMode::Manual));
    let read = assignments
        .get_assignment(firm.request(GetAssignmentRequest {
            account_id: "acct-old".to_owned(),
            ..GetAssignmentRequest::default()
        }))
        .await
        .expect("assignment")
        .into_inner()
        .assignment
        .expect("assignment");
    assert_eq!(read.portfolio_id, own_old.id);
    stack.stop().await;
}

#[tokio::test]
async fn account_targets_are_assigned_on_creation_sqlite() {
    account_targets_are_assigned_on_creation(Backend::Sqlite).await;
}

#[tokio::test]
async fn account_targets_are_assigned_on_creation_postgres() {
    account_targets_are_assigned_on_creation(Backend::Postgres).await;
}

//! Authentication and authorization end to end, on both backends: the
//! in-process stack trusting a test identity provider (ES256/RS256 JWKS)
//! and signing its calls between services with a service secret. A header
//! alone is refused, a token cannot switch tenants, the audit trail records
//! the token's subject, each role reaches exactly its RPCs, and the
//! services' own calls (symbol checks, asset status reports, the monitor's
//! cycle) pass with their service identity.

use std::sync::Arc;

use rebalancer_kit::testing::identity::{IdentityProvider, TestKey};
use rebalancer_proto::access::Role;
use rebalancer_proto::client::CallContext;
use rebalancer_proto::common::{ApprovalMode, RunType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    ApproveRunRequest, CreateBatchRequest, CreateRunRequest, RunSpec, RunStatus,
    TransmitBatchRequest, UpdateAssetRequest, UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{EvaluateNowRequest, GetCycleRequest, ListCyclesRequest};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::tenant_service_client::TenantServiceClient;
use rebalancer_proto::target::{
    AssignRequest, CreatePortfolioRequest, CreateTenantRequest, GetPortfolioRequest,
    GetTenantRequest, ListPortfolioEventsRequest, ListPortfoliosRequest, ListTenantsRequest,
    ReportAssetStatusRequest, UpdateTenantRequest,
};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, StackOptions, TestStack, violated_fields};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

fn code<T: std::fmt::Debug>(answer: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match answer {
        Ok(response) => panic!("expected a refusal, got {response:?}"),
        Err(status) => status.code(),
    }
}

async fn roles_tenants_and_service_identity(backend: Backend) {
    let idp = Arc::new(IdentityProvider::new());
    let options = StackOptions {
        identity: Some(idp.clone()),
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        return;
    };
    let channel = stack.outside_channel();
    let as_user = |tenant: &str, subject: &str, roles: &[Role]| {
        CallContext::tenant(tenant).with_token(idp.token(tenant, subject, roles))
    };
    let advisor = as_user("firm-a", "alice@firm-a", &[Role::Advisor]);
    let operator = as_user("firm-a", "otto@firm-a", &[Role::Operator]);
    let trader = as_user("firm-a", "tom@firm-a", &[Role::Trader]);
    let viewer = as_user("firm-a", "vic@firm-a", &[Role::Viewer]);
    let platform = as_user("platform", "data@platform", &[Role::Platform]);
    let other_admin = as_user("firm-b", "bea@firm-b", &[Role::Admin]);
    let mut portfolios = PortfolioServiceClient::new(channel.clone());
    let mut assignments = AssignmentServiceClient::new(channel.clone());
    let mut accounts = AccountServiceClient::new(channel.clone());
    let mut runs = RunServiceClient::new(channel.clone());
    let mut market = MarketDataServiceClient::new(channel.clone());
    let mut monitor = MonitorServiceClient::new(channel.clone());

    // Health and reflection need no token; everything else does.
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health without a token");
    assert_eq!(health.into_inner().status, 1, "SERVING");
    let header_only = CallContext::tenant("firm-a");
    let answer = portfolios
        .list_portfolios(header_only.request(ListPortfoliosRequest::default()))
        .await;
    assert_eq!(code(answer), Code::Unauthenticated);
    let expired = {
        let mut claims = idp.claims("firm-a", "alice@firm-a", &["admin"]);
        claims["exp"] = serde_json::json!(jsonwebtoken::get_current_timestamp() - 3600);
        CallContext::tenant("firm-a").with_token(IdentityProvider::sign(TestKey::Es256, &claims))
    };
    let answer = portfolios
        .list_portfolios(expired.request(ListPortfoliosRequest::default()))
        .await;
    assert_eq!(code(answer), Code::Unauthenticated);

    // The advisor creates a portfolio (the target service checks its symbols
    // with execution under its own identity); the audit trail names the
    // token's subject, not the x-actor the caller sent.
    let claimed_actor = CallContext {
        actor: Some("mallory".to_owned()),
        ..advisor.clone()
    };
    let portfolio = portfolios
        .create_portfolio(claimed_actor.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("advisor creates")
        .into_inner()
        .portfolio
        .expect("portfolio");
    let events = portfolios
        .list_portfolio_events(viewer.request(ListPortfolioEventsRequest {
            portfolio_id: portfolio.id.clone(),
            ..ListPortfolioEventsRequest::default()
        }))
        .await
        .expect("viewer reads events")
        .into_inner()
        .events;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|event| event.actor == "alice@firm-a"),
        "{events:?}"
    );

    // A token cannot reach another tenant, by header or by id.
    let viewer_asking_b = CallContext {
        tenant: "firm-b".to_owned(),
        ..viewer.clone()
    };
    let answer = portfolios
        .list_portfolios(viewer_asking_b.request(ListPortfoliosRequest::default()))
        .await;
    assert_eq!(code(answer), Code::PermissionDenied);
    let answer = portfolios
        .get_portfolio(other_admin.request(GetPortfolioRequest {
            portfolio_id: portfolio.id.clone(),
            ..GetPortfolioRequest::default()
        }))
        .await;
    assert_eq!(code(answer), Code::NotFound);

    // Each role reaches its RPCs only.
    let answer = portfolios
        .create_portfolio(viewer.request(CreatePortfolioRequest {
            name: "Nope".to_owned(),
            weights: vec![weight("", "100")],
            ..CreatePortfolioRequest::default()
        }))
        .await;
    assert_eq!(code(answer), Code::PermissionDenied);
    accounts
        .upsert_account(operator.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "50000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("operator loads an account");
    let answer = accounts
        .upsert_account(advisor.request(UpsertAccountRequest {
            account_id: "acct-2".to_owned(),
            cash: "1".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await;
    assert_eq!(code(answer), Code::PermissionDenied);
    assignments
        .assign(advisor.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("advisor assigns");
    let run = runs
        .create_run(advisor.request(CreateRunRequest {
            idempotency_key: "run-1".to_owned(),
            spec: Some(RunSpec {
                account_id: "acct-1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                approval_mode: ApprovalMode::Manual.into(),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect("advisor proposes a run")
        .into_inner()
        .run
        .expect("run");
    let refused = runs
        .approve_run(viewer.request(ApproveRunRequest {
            run_id: run.id.clone(),
            ..ApproveRunRequest::default()
        }))
        .await
        .expect_err("a viewer cannot approve");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("trade"), "{refused:?}");
    let info = refused
        .get_error_details()
        .error_info()
        .cloned()
        .expect("error info");
    assert_eq!(info.reason, "MISSING_PERMISSION");
    assert_eq!(
        info.metadata.get("permission").map(String::as_str),
        Some("trade")
    );
    let approved = runs
        .approve_run(trader.request(ApproveRunRequest {
            run_id: run.id.clone(),
            ..ApproveRunRequest::default()
        }))
        .await
        .expect("a trader approves")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(approved.status(), RunStatus::Queued);
    assert_eq!(approved.approved_by, "tom@firm-a");

    // Worked and filled: the fills and their slippage are in the metrics.
    stack
        .advance_and_tick(chrono::Duration::seconds(30), 4)
        .await;
    let scraped = rebalancer_kit::metrics::prometheus_text();
    assert!(
        scraped.contains("rebalancer_execution_fills_total{crossed=\"false\",side=\"buy\"}"),
        "{scraped}"
    );
    assert!(
        scraped.contains("rebalancer_execution_slippage_basis_points_count{side=\"buy\"}"),
        "{scraped}"
    );

    // What every tenant shares is the platform's; the services' internal
    // RPCs are nobody's but theirs.
    let halt = |context: &CallContext, tradable: bool| {
        context.request(UpdateAssetRequest {
            symbol: "QQQ".to_owned(),
            tradable: Some(tradable),
            reason: "auth test".to_owned(),
            ..UpdateAssetRequest::default()
        })
    };
    let answer = market.update_asset(halt(&other_admin, false)).await;
    assert_eq!(code(answer), Code::PermissionDenied);
    // Reported to every tenant by the execution service, as itself.
    market
        .update_asset(halt(&platform, false))
        .await
        .expect("the platform halts a symbol");
    market
        .update_asset(halt(&platform, true))
        .await
        .expect("and resumes it");
    let answer = portfolios
        .report_asset_status(advisor.request(ReportAssetStatusRequest {
            symbol: "SPY".to_owned(),
            active: false,
            tradable: false,
            fractionable: false,
            reason: "forged".to_owned(),
        }))
        .await;
    assert_eq!(code(answer), Code::PermissionDenied);

    // The monitor's cycle reads assignments and holdings as itself.
    let cycle = monitor
        .evaluate_now(operator.request(EvaluateNowRequest {
            idempotency_key: "check-1".to_owned(),
            account_ids: vec!["acct-1".to_owned()],
            ..EvaluateNowRequest::default()
        }))
        .await
        .expect("operator evaluates")
        .into_inner()
        .cycle
        .expect("cycle");
    while stack.monitor_tick().await > 0 {}
    let cycle = monitor
        .get_cycle(viewer.request(GetCycleRequest {
            cycle_id: cycle.id.clone(),
        }))
        .await
        .expect("cycle")
        .into_inner()
        .cycle
        .expect("cycle");
    assert_eq!(cycle.accounts_evaluated, 1, "{cycle:?}");
    stack.stop().await;
}

#[tokio::test]
async fn roles_tenants_and_service_identity_sqlite() {
    roles_tenants_and_service_identity(Backend::Sqlite).await;
}

#[tokio::test]
async fn roles_tenants_and_service_identity_postgres() {
    roles_tenants_and_service_identity(Backend::Postgres).await;
}

/// The tenant registry and the four-eyes rule: the platform registers a
/// firm, which the Monitor's schedule picks up without a restart; the
/// firm's admin turns four-eyes on; the creator of a run or batch can then
/// not approve or transmit it, someone else can.
async fn registry_and_four_eyes(backend: Backend) {
    let idp = Arc::new(IdentityProvider::new());
    let options = StackOptions {
        identity: Some(idp.clone()),
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        return;
    };
    let channel = stack.outside_channel();
    let as_user = |tenant: &str, subject: &str, roles: &[Role]| {
        CallContext::tenant(tenant).with_token(idp.token(tenant, subject, roles))
    };
    let platform = as_user("platform", "ops@platform", &[Role::Platform]);
    let admin = as_user("firm-x", "ada@firm-x", &[Role::Admin]);
    let both = as_user(
        "firm-x",
        "pat@firm-x",
        &[Role::Advisor, Role::Trader, Role::Operator],
    );
    let trader = as_user("firm-x", "tom@firm-x", &[Role::Trader]);
    let mut tenants = TenantServiceClient::new(channel.clone());

    // Registering is the platform's, and checked.
    let refused = tenants
        .create_tenant(admin.request(CreateTenantRequest {
            tenant_id: "firm-x".to_owned(),
            ..CreateTenantRequest::default()
        }))
        .await
        .expect_err("a firm's admin does not register firms");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let invalid = tenants
        .create_tenant(platform.request(CreateTenantRequest {
            tenant_id: "firm x".to_owned(),
            monitor_run_at: "25:00".to_owned(),
            ..CreateTenantRequest::default()
        }))
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&invalid), ["tenant_id", "monitor_run_at"]);
    let registration = CreateTenantRequest {
        tenant_id: "firm-x".to_owned(),
        display_name: "Firm X Advisors".to_owned(),
        monitor_enabled: true,
        monitor_run_at: "10:30".to_owned(),
        four_eyes: false,
    };
    let created = tenants
        .create_tenant(platform.request(registration.clone()))
        .await
        .expect("registered")
        .into_inner()
        .tenant
        .expect("tenant");
    assert_eq!(created.updated_by, "ops@platform");
    let again = tenants
        .create_tenant(platform.request(registration.clone()))
        .await
        .expect("a retry gets the tenant")
        .into_inner()
        .tenant
        .expect("tenant");
    assert_eq!(again.etag, created.etag);
    let conflict = tenants
        .create_tenant(platform.request(CreateTenantRequest {
            four_eyes: true,
            ..registration
        }))
        .await
        .expect_err("other settings");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let listed = tenants
        .list_tenants(platform.request(ListTenantsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .tenants;
    assert_eq!(listed.len(), 1);

    // The schedule picks the new firm up at its own time, without a restart.
    let mut monitor = MonitorServiceClient::new(channel.clone());
    let cycles = |monitor: &mut MonitorServiceClient<_>| {
        let request = both.request(ListCyclesRequest::default());
        let mut monitor = monitor.clone();
        async move {
            monitor
                .list_cycles(request)
                .await
                .expect("cycles")
                .into_inner()
                .cycles
        }
    };
    stack.clock.set(utc("2026-03-03T15:00:00Z")); // 10:00 New York
    stack.monitor_tick().await;
    assert!(cycles(&mut monitor).await.is_empty(), "not yet 10:30");
    stack.clock.set(utc("2026-03-03T15:31:00Z"));
    stack.monitor_tick().await;
    let scheduled = cycles(&mut monitor).await;
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(scheduled[0].trading_date, "2026-03-03");

    // The firm's admin turns four-eyes on; a viewer could not.
    let current = tenants
        .get_tenant(admin.request(GetTenantRequest {}))
        .await
        .expect("own tenant")
        .into_inner();
    assert!(current.registered);
    let answer = tenants
        .update_tenant(both.request(UpdateTenantRequest {
            four_eyes: Some(false),
            ..UpdateTenantRequest::default()
        }))
        .await;
    assert_eq!(code(answer), Code::PermissionDenied);
    let stale = tenants
        .update_tenant(admin.request(UpdateTenantRequest {
            etag: "r99".to_owned(),
            four_eyes: Some(true),
            ..UpdateTenantRequest::default()
        }))
        .await;
    assert_eq!(code(stale), Code::Aborted);
    let updated = tenants
        .update_tenant(admin.request(UpdateTenantRequest {
            etag: current.tenant.expect("tenant").etag,
            four_eyes: Some(true),
            ..UpdateTenantRequest::default()
        }))
        .await
        .expect("four-eyes on")
        .into_inner()
        .tenant
        .expect("tenant");
    assert!(updated.four_eyes);
    assert_eq!(updated.updated_by, "ada@firm-x");

    // Pat creates a run and a batch and may trade, but not their own.
    let mut portfolios = PortfolioServiceClient::new(channel.clone());
    let mut assignments = AssignmentServiceClient::new(channel.clone());
    let mut accounts = AccountServiceClient::new(channel.clone());
    let portfolio = portfolios
        .create_portfolio(both.request(CreatePortfolioRequest {
            name: "Core".to_owned(),
            weights: vec![weight("", "10"), weight("SPY", "90")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    for account in ["x-1", "x-2"] {
        accounts
            .upsert_account(both.request(UpsertAccountRequest {
                account_id: account.to_owned(),
                cash: "20000".to_owned(),
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
        assignments
            .assign(both.request(AssignRequest {
                account_id: account.to_owned(),
                portfolio_id: portfolio.id.clone(),
                rebalancing_enabled: true,
                approval_mode: ApprovalMode::Manual.into(),
                ..AssignRequest::default()
            }))
            .await
            .expect("assign");
    }
    let mut runs = RunServiceClient::new(channel.clone());
    let run = runs
        .create_run(both.request(CreateRunRequest {
            idempotency_key: "x-run".to_owned(),
            spec: Some(RunSpec {
                account_id: "x-1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                approval_mode: ApprovalMode::Manual.into(),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("run");
    let approve = |context: &CallContext| {
        context.request(ApproveRunRequest {
            run_id: run.id.clone(),
            ..ApproveRunRequest::default()
        })
    };
    let own = runs.approve_run(approve(&both)).await.expect_err("own run");
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    assert!(own.message().contains("four-eyes"), "{own:?}");
    let approved = runs
        .approve_run(approve(&trader))
        .await
        .expect("someone else approves")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(approved.approved_by, "tom@firm-x");
    let mut batches = BatchServiceClient::new(channel.clone());
    let batch = batches
        .create_batch(both.request(CreateBatchRequest {
            idempotency_key: "x-batch".to_owned(),
            account_ids: vec!["x-2".to_owned()],
            r#type: RunType::FullRebalance.into(),
            ..CreateBatchRequest::default()
        }))
        .await
        .expect("batch")
        .into_inner()
        .batch
        .expect("batch");
    let transmit = |context: &CallContext| {
        context.request(TransmitBatchRequest {
            batch_id: batch.id.clone(),
            ..TransmitBatchRequest::default()
        })
    };
    let own = batches.transmit_batch(transmit(&both)).await;
    assert_eq!(code(own), Code::PermissionDenied);
    batches
        .transmit_batch(transmit(&trader))
        .await
        .expect("someone else transmits");
    stack.stop().await;
}

fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().expect("RFC 3339")
}

#[tokio::test]
async fn registry_and_four_eyes_sqlite() {
    registry_and_four_eyes(Backend::Sqlite).await;
}

#[tokio::test]
async fn registry_and_four_eyes_postgres() {
    registry_and_four_eyes(Backend::Postgres).await;
}

//! Hostile input never reaches INTERNAL nor breaks stored data, on both
//! backends: amounts and quantities beyond any real account are refused at
//! the edge (they used to overflow the valuation and leave the account
//! unreadable), an account with 100,000 positions is refused at once, an
//! unknown algorithm or a time in the year 82269 is refused rather than
//! stored, and an oversized id is never echoed back whole.

use rebalancer_proto::common::RunType;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    CashMovementType, CreateCashMovementRequest, ExecutionAlgorithm, GetAccountRequest,
    ListCashMovementsRequest, Position, PreviewRunRequest, RunSpec, UpsertAccountRequest,
};
use rebalancer_tests::{Backend, TestStack, violated_fields};
use tonic::Code;

fn position(symbol: &str, quantity: &str) -> Position {
    Position {
        symbol: symbol.to_owned(),
        quantity: quantity.to_owned(),
        ..Position::default()
    }
}

async fn hostile_input_is_refused_and_changes_nothing(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let firm = stack.tenant("firm-a");
    let mut accounts = AccountServiceClient::new(stack.channel());
    let mut runs = RunServiceClient::new(stack.channel());

    // Quantities and costs beyond any account.
    let refused = accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "huge".to_owned(),
            cash: "1000".to_owned(),
            positions: vec![
                position("SPY", "99999999999999999999999"),
                Position {
                    average_cost: "7922816251426433759354395033".to_owned(),
                    ..position("TLT", "1")
                },
            ],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("huge quantity");
    assert_eq!(
        violated_fields(&refused),
        ["positions[0].quantity", "positions[1].average_cost"]
    );
    let missing = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "huge".to_owned(),
        }))
        .await
        .expect_err("nothing stored");
    assert_eq!(missing.code(), Code::NotFound);

    // 100,000 positions (1.2 MB): refused at once, not validated for a minute.
    let many: Vec<Position> = (0..100_000)
        .map(|index| position(&format!("S{index}"), "1"))
        .collect();
    let refused = accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "many".to_owned(),
            cash: "1000".to_owned(),
            positions: many,
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("too many positions");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused)[0], "positions");
    assert!(
        refused.message().len() < 1_200,
        "{}",
        refused.message().len()
    );

    // A deposit beyond any account is refused, not left pending.
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "100".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    let refused = accounts
        .create_cash_movement(firm.request(CreateCashMovementRequest {
            idempotency_key: "huge-deposit".to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Deposit.into(),
            amount: "7922816251426433759354395033.5".to_owned(),
        }))
        .await
        .expect_err("huge deposit");
    assert_eq!(violated_fields(&refused), ["amount"]);
    let movements = accounts
        .list_cash_movements(firm.request(ListCashMovementsRequest {
            account_id: "acct-1".to_owned(),
            ..ListCashMovementsRequest::default()
        }))
        .await
        .expect("movements")
        .into_inner()
        .cash_movements;
    assert!(movements.is_empty(), "{movements:?}");

    // An unknown algorithm and a start in the year 82269.
    let refused = runs
        .preview_run(firm.request(PreviewRunRequest {
            spec: Some(RunSpec {
                account_id: "acct-1".to_owned(),
                r#type: RunType::FullRebalance.into(),
                algorithm: Some(ExecutionAlgorithm {
                    r#type: 999,
                    start_time: Some(rebalancer_proto::prost_types::Timestamp {
                        seconds: 2_534_023_008_000,
                        nanos: 0,
                    }),
                    ..ExecutionAlgorithm::default()
                }),
                ..RunSpec::default()
            }),
        }))
        .await
        .expect_err("bad algorithm");
    assert_eq!(
        violated_fields(&refused),
        ["spec.algorithm.type", "spec.algorithm.start_time"]
    );

    // A 200 KB id is not echoed back whole.
    let refused = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "a".repeat(200_000),
        }))
        .await
        .expect_err("huge id");
    assert!(
        matches!(refused.code(), Code::InvalidArgument | Code::NotFound),
        "{:?}",
        refused.code()
    );
    assert!(
        refused.message().len() < 1_200,
        "{}",
        refused.message().len()
    );
    stack.stop().await;
}

#[tokio::test]
async fn hostile_input_is_refused_and_changes_nothing_sqlite() {
    hostile_input_is_refused_and_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn hostile_input_is_refused_and_changes_nothing_postgres() {
    hostile_input_is_refused_and_changes_nothing(Backend::Postgres).await;
}

/// `serve` never takes unauthenticated calls as a tenant unless told so by a
/// flag named for the danger (the dev stack does it for local use).
#[test]
fn serve_refuses_a_default_tenant_without_the_insecure_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(rebalancer_tests::binary::rebalancer_binary())
        .args([
            "serve",
            "target",
            "--listen",
            "127.0.0.1:0",
            "--default-tenant",
            "firm-a",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .env_remove("REBALANCER_INSECURE_ACCEPT_UNAUTHENTICATED")
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--insecure-accept-unauthenticated"),
        "{stderr}"
    );
}

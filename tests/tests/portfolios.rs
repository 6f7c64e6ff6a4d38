//! Portfolios over gRPC, end to end on both backends: create, read back,
//! list, validation with field violations, idempotency, tenancy.

use rebalancer_proto::common::{
    ConditionSubType, ConditionType, RebalanceCondition, Weight, WeightType,
};
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    CreatePortfolioRequest, GetPortfolioRequest, ListPortfoliosRequest,
};
use rebalancer_tests::{Backend, TestStack};
use tonic::Code;
use tonic_types::StatusExt;

fn weight(kind: WeightType, symbol: &str, percent: &str) -> Weight {
    Weight {
        r#type: kind.into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn band(sub_type: ConditionSubType, percent: &str) -> RebalanceCondition {
    RebalanceCondition {
        r#type: ConditionType::DriftBand.into(),
        sub_type: sub_type.into(),
        percent: percent.to_owned(),
        ..RebalanceCondition::default()
    }
}

fn balanced() -> CreatePortfolioRequest {
    CreatePortfolioRequest {
        name: "Balanced".to_owned(),
        description: "A balanced portfolio of stocks and bonds".to_owned(),
        weights: vec![
            weight(WeightType::Cash, "", "5"),
            weight(WeightType::Asset, "SPY", "60"),
            weight(WeightType::Asset, "TLT", "35"),
        ],
        rebalance_conditions: vec![
            band(ConditionSubType::Absolute, "5"),
            band(ConditionSubType::Relative, "20"),
        ],
        cooldown_days: 7,
        ..CreatePortfolioRequest::default()
    }
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
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

async fn portfolio_lifecycle(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut client = PortfolioServiceClient::new(stack.channel());
    let firm_a = stack.tenant("firm-a");

    let created = client
        .create_portfolio(firm_a.request(balanced()))
        .await
        .expect("create")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(created.version, 1);
    assert_eq!(created.weights, balanced().weights);
    assert_eq!(
        created.rebalance_conditions,
        balanced().rebalance_conditions
    );

    let read = client
        .get_portfolio(firm_a.request(GetPortfolioRequest {
            portfolio_id: created.id.clone(),
            version: 0,
        }))
        .await
        .expect("get")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(read, created);

    // Several problems at once, each named; nothing stored.
    let mut bad = balanced();
    bad.name = "Bad".to_owned();
    bad.weights[1].percent = "59.995".to_owned();
    bad.weights[2].symbol = "T L T".to_owned();
    bad.cooldown_days = -2;
    let status = client
        .create_portfolio(firm_a.request(bad))
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&status),
        ["weights[1].percent", "weights[2].symbol", "cooldown_days"]
    );

    let listed = client
        .list_portfolios(firm_a.request(ListPortfoliosRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.portfolios.len(), 1);

    // A duplicate name is ALREADY_EXISTS; another tenant may use it.
    let status = client
        .create_portfolio(firm_a.request(balanced()))
        .await
        .expect_err("duplicate");
    assert_eq!(status.code(), Code::AlreadyExists);
    client
        .create_portfolio(stack.tenant("firm-b").request(balanced()))
        .await
        .expect("same name, other tenant");

    // Unknown ids and versions are NOT_FOUND; no tenant is UNAUTHENTICATED.
    let status = client
        .get_portfolio(firm_a.request(GetPortfolioRequest {
            portfolio_id: created.id.clone(),
            version: 2,
        }))
        .await
        .expect_err("no version 2");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .list_portfolios(tonic::Request::new(ListPortfoliosRequest::default()))
        .await
        .expect_err("no tenant");
    assert_eq!(status.code(), Code::Unauthenticated);

    // Idempotent creates: the same key returns the first; a changed body is refused.
    let mut keyed = balanced();
    keyed.name = "Keyed".to_owned();
    keyed.idempotency_key = "create-keyed-1".to_owned();
    let first = client
        .create_portfolio(firm_a.request(keyed.clone()))
        .await
        .expect("first")
        .into_inner();
    let again = client
        .create_portfolio(firm_a.request(keyed.clone()))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(first, again);
    keyed.cooldown_days = 3;
    let status = client
        .create_portfolio(firm_a.request(keyed))
        .await
        .expect_err("changed body");
    assert_eq!(violated_fields(&status), ["idempotency_key"]);

    // Pages of one, newest first.
    let page = client
        .list_portfolios(firm_a.request(ListPortfoliosRequest {
            page_size: 1,
            ..ListPortfoliosRequest::default()
        }))
        .await
        .expect("page one")
        .into_inner();
    assert_eq!(page.portfolios[0].name, "Keyed");
    let page = client
        .list_portfolios(firm_a.request(ListPortfoliosRequest {
            page_size: 1,
            page_token: page.next_page_token,
            ..ListPortfoliosRequest::default()
        }))
        .await
        .expect("page two")
        .into_inner();
    assert_eq!(page.portfolios[0].name, "Balanced");
    assert!(page.next_page_token.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn portfolio_lifecycle_sqlite() {
    portfolio_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn portfolio_lifecycle_postgres() {
    portfolio_lifecycle(Backend::Postgres).await;
}

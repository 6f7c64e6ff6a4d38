//! `x-request-id` over the real server: a caller's id is echoed in the
//! response metadata, failed calls included; without one, the server makes
//! one up and says which.

use rebalancer_proto::client::CallContext;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::{GetAccountRequest, GetClockRequest};
use rebalancer_tests::{Backend, TestStack};

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let traced = CallContext {
        request_id: Some("req-7".to_owned()),
        ..stack.tenant("firm-a")
    };
    let mut market = MarketDataServiceClient::new(stack.channel());
    let answer = market
        .get_clock(traced.request(GetClockRequest {}))
        .await
        .expect("clock");
    assert_eq!(
        answer
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-7")
    );
    let refused = AccountServiceClient::new(stack.channel())
        .get_account(traced.request(GetAccountRequest {
            account_id: "nobody".to_owned(),
        }))
        .await
        .expect_err("not found");
    assert_eq!(
        refused
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-7"),
        "{refused:?}"
    );
    let made = market
        .get_clock(stack.tenant("firm-a").request(GetClockRequest {}))
        .await
        .expect("clock");
    let id = made
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(id.len(), 36, "a generated UUID: {id:?}");
    stack.stop().await;
}

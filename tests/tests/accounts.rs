//! The account book and market data over gRPC, end to end on both backends;
//! the creates that move money refused without an idempotency key.

use rebalancer_proto::common::{RunType, Weight, WeightType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AcknowledgeCashMovementRequest, CashMovementStatus, CashMovementType, CreateBatchRequest,
    CreateCashMovementRequest, CreateRunRequest, GetAccountRequest, GetAssetRequest,
    GetCalendarRequest, GetClockRequest, GetHoldingsRequest, GetQuotesRequest,
    GetVolumeProfileRequest, ListAssetsRequest, ListBatchesRequest, ListCashMovementsRequest,
    ListRunsRequest, Position, Restriction, RunSpec, SettleCashMovementRequest,
    StreamHoldingsRequest, UpdateAssetRequest, UpsertAccountRequest,
};
use rebalancer_tests::{Backend, TestStack};
use rust_decimal::Decimal;
use std::str::FromStr;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

fn position(symbol: &str, quantity: &str) -> Position {
    Position {
        symbol: symbol.to_owned(),
        quantity: quantity.to_owned(),
        ..Position::default()
    }
}

async fn account_book(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut accounts = AccountServiceClient::new(stack.channel());
    let firm = stack.tenant("firm-a");

    // Upsert with positions; the read values them at the simulated market's prices.
    let created = accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "1000".to_owned(),
            positions: vec![position("SPY", "10"), position("TLT", "2.5")],
            restrictions: vec![Restriction::AchReturn.into()],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("upsert")
        .into_inner();
    assert!(created.created);
    let account = created.account.expect("account");
    assert_eq!(account.cash, "1000.00");
    let values: Decimal = account
        .positions
        .iter()
        .map(|p| decimal(&p.market_value))
        .sum();
    assert!(
        values > Decimal::from(1000),
        "positions are valued: {account:?}"
    );
    assert_eq!(decimal(&account.equity), Decimal::from(1000) + values);
    assert_eq!(account.restrictions, [i32::from(Restriction::AchReturn)]);

    // Bad input names each field and changes nothing; a stale etag is ABORTED.
    let status = accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "12.345".to_owned(),
            positions: vec![position("SPY", "-1")],
            restrictions: vec![Restriction::LeverageExceeded.into()],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .expect("details")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["cash", "positions[0].quantity", "restrictions[0]"]);
    let status = accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "5".to_owned(),
            etag: "r99".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("stale etag");
    assert_eq!(status.code(), Code::Aborted);
    let unchanged = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "acct-1".to_owned(),
        }))
        .await
        .expect("get")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(unchanged.cash, "1000.00");
    assert_eq!(unchanged.positions.len(), 2);

    // A deposit with a key, twice: credited once.
    let deposit = CreateCashMovementRequest {
        idempotency_key: "dep-1".to_owned(),
        account_id: "acct-1".to_owned(),
        r#type: CashMovementType::Deposit.into(),
        amount: "100000".to_owned(),
    };
    let first = accounts
        .create_cash_movement(firm.request(deposit.clone()))
        .await
        .expect("deposit")
        .into_inner();
    let second = accounts
        .create_cash_movement(firm.request(deposit))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(first, second);
    let holdings = accounts
        .get_holdings(firm.request(GetHoldingsRequest {
            account_id: "acct-1".to_owned(),
        }))
        .await
        .expect("holdings")
        .into_inner()
        .holdings
        .expect("holdings");
    assert_eq!(holdings.cash, "101000.00");
    assert_eq!(holdings.pending_cash_movements.len(), 1);

    // A withdrawal above the account's value is refused; a smaller one waits
    // for the monitor, then is paid out.
    let status = accounts
        .create_cash_movement(firm.request(CreateCashMovementRequest {
            idempotency_key: "withdraw-too-much".to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Withdrawal.into(),
            amount: "10000000".to_owned(),
        }))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let withdrawal = accounts
        .create_cash_movement(firm.request(CreateCashMovementRequest {
            idempotency_key: "withdraw-5000".to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Withdrawal.into(),
            amount: "5000".to_owned(),
        }))
        .await
        .expect("withdrawal")
        .into_inner()
        .cash_movement
        .expect("movement");
    let acknowledged = accounts
        .acknowledge_cash_movement(firm.request(AcknowledgeCashMovementRequest {
            cash_movement_id: withdrawal.id.clone(),
            run_id: String::new(),
        }))
        .await
        .expect("acknowledge")
        .into_inner()
        .cash_movement
        .expect("movement");
    assert_eq!(
        acknowledged.status,
        i32::from(CashMovementStatus::Acknowledged)
    );
    accounts
        .settle_cash_movement(firm.request(SettleCashMovementRequest {
            cash_movement_id: withdrawal.id,
        }))
        .await
        .expect("settle");
    let account = accounts
        .get_account(firm.request(GetAccountRequest {
            account_id: "acct-1".to_owned(),
        }))
        .await
        .expect("get")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.cash, "96000.00");

    // Other tenants see nothing.
    let status = accounts
        .get_account(stack.tenant("firm-b").request(GetAccountRequest {
            account_id: "acct-1".to_owned(),
        }))
        .await
        .expect_err("other tenant");
    assert_eq!(status.code(), Code::NotFound);

    // The bulk stream returns every account once, in batches.
    for index in 0..45 {
        accounts
            .upsert_account(firm.request(UpsertAccountRequest {
                account_id: format!("bulk-{index:04}"),
                cash: "10".to_owned(),
                positions: vec![position("VTI", "1")],
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("bulk upsert");
    }
    let mut stream = accounts
        .stream_holdings(firm.request(StreamHoldingsRequest {
            batch_size: 20,
            ..StreamHoldingsRequest::default()
        }))
        .await
        .expect("stream")
        .into_inner();
    let mut batches = Vec::new();
    while let Some(message) = stream.next().await {
        batches.push(message.expect("batch").holdings);
    }
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [20, 20, 6]);
    let ids: Vec<String> = batches.concat().into_iter().map(|h| h.account_id).collect();
    assert_eq!(ids[0], "acct-1");
    assert_eq!(ids.len(), 46);
    stack.stop().await;
}

#[tokio::test]
async fn account_book_sqlite() {
    account_book(Backend::Sqlite).await;
}

#[tokio::test]
async fn account_book_postgres() {
    account_book(Backend::Postgres).await;
}

/// The field paths of an INVALID_ARGUMENT status.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// A deposit, a withdrawal, a run and a batch move money (or create the work
/// that does): without an idempotency key each is refused and nothing is
/// stored, so a client's blind retry can never credit or trade twice; with
/// one, a retry gets the first result.
async fn money_moving_creates_need_an_idempotency_key(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut accounts = AccountServiceClient::new(stack.channel());
    let mut runs = RunServiceClient::new(stack.channel());
    let mut batches = BatchServiceClient::new(stack.channel());
    let firm = stack.tenant("firm-a");
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "1000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("upsert");
    // Reads with their own client, so the closures leave `accounts` free.
    let reader = AccountServiceClient::new(stack.channel());
    let movements = || {
        let request = firm.request(ListCashMovementsRequest {
            account_id: "acct-1".to_owned(),
            page_size: 100,
            ..ListCashMovementsRequest::default()
        });
        let mut client = reader.clone();
        async move {
            client
                .list_cash_movements(request)
                .await
                .expect("movements")
                .into_inner()
                .cash_movements
        }
    };
    let cash = || {
        let request = firm.request(GetAccountRequest {
            account_id: "acct-1".to_owned(),
        });
        let mut client = reader.clone();
        async move {
            client
                .get_account(request)
                .await
                .expect("account")
                .into_inner()
                .account
                .expect("account")
                .cash
        }
    };

    // A deposit without a key, sent twice: refused both times, nothing credited.
    let deposit = CreateCashMovementRequest {
        idempotency_key: String::new(),
        account_id: "acct-1".to_owned(),
        r#type: CashMovementType::Deposit.into(),
        amount: "500".to_owned(),
    };
    for _ in 0..2 {
        let status = accounts
            .create_cash_movement(firm.request(deposit.clone()))
            .await
            .expect_err("no key");
        assert_eq!(violated_fields(&status), ["idempotency_key"]);
        assert!(status.message().contains("is required"), "{status:?}");
    }
    assert_eq!(cash().await, "1000.00");
    assert!(movements().await.is_empty());

    // With a key, sent twice: credited once.
    let keyed = CreateCashMovementRequest {
        idempotency_key: "deposit-acct-1-1".to_owned(),
        ..deposit
    };
    let first = accounts
        .create_cash_movement(firm.request(keyed.clone()))
        .await
        .expect("deposit")
        .into_inner();
    let retried = accounts
        .create_cash_movement(firm.request(keyed))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, retried);
    assert_eq!(cash().await, "1500.00");
    assert_eq!(movements().await.len(), 1);

    // A keyed withdrawal is checked against the account's value; its retry
    // gets the withdrawal back even once the account is worth less.
    let too_much = accounts
        .create_cash_movement(firm.request(CreateCashMovementRequest {
            idempotency_key: "withdraw-acct-1-too-much".to_owned(),
            account_id: "acct-1".to_owned(),
            r#type: CashMovementType::Withdrawal.into(),
            amount: "2000".to_owned(),
        }))
        .await
        .expect_err("above the account's value");
    assert_eq!(too_much.code(), Code::FailedPrecondition, "{too_much:?}");
    let withdrawal = CreateCashMovementRequest {
        idempotency_key: "withdraw-acct-1-1".to_owned(),
        account_id: "acct-1".to_owned(),
        r#type: CashMovementType::Withdrawal.into(),
        amount: "1200".to_owned(),
    };
    let requested = accounts
        .create_cash_movement(firm.request(withdrawal.clone()))
        .await
        .expect("withdrawal")
        .into_inner();
    accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "100".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("the account is worth less");
    let replayed = accounts
        .create_cash_movement(firm.request(withdrawal))
        .await
        .expect("retry of the withdrawal")
        .into_inner();
    assert_eq!(replayed, requested);
    assert_eq!(movements().await.len(), 2);

    // A run and a batch without a key: refused, nothing planned.
    let spec = RunSpec {
        account_id: "acct-1".to_owned(),
        r#type: RunType::FullRebalance.into(),
        weights: vec![Weight {
            r#type: WeightType::Cash.into(),
            percent: "100".to_owned(),
            ..Weight::default()
        }],
        ..RunSpec::default()
    };
    let status = runs
        .create_run(firm.request(CreateRunRequest {
            idempotency_key: String::new(),
            spec: Some(spec),
        }))
        .await
        .expect_err("run without a key");
    assert_eq!(violated_fields(&status), ["idempotency_key"]);
    let planned = runs
        .list_runs(firm.request(ListRunsRequest {
            account_id: "acct-1".to_owned(),
            page_size: 10,
            ..ListRunsRequest::default()
        }))
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert!(planned.is_empty(), "{planned:?}");
    let status = batches
        .create_batch(firm.request(CreateBatchRequest {
            account_ids: vec!["acct-1".to_owned()],
            r#type: RunType::FullRebalance.into(),
            ..CreateBatchRequest::default()
        }))
        .await
        .expect_err("batch without a key");
    assert_eq!(violated_fields(&status), ["idempotency_key"]);
    let stored = batches
        .list_batches(firm.request(ListBatchesRequest {
            page_size: 10,
            ..ListBatchesRequest::default()
        }))
        .await
        .expect("batches")
        .into_inner()
        .batches;
    assert!(stored.is_empty(), "{stored:?}");
    stack.stop().await;
}

#[tokio::test]
async fn money_moving_creates_need_an_idempotency_key_sqlite() {
    money_moving_creates_need_an_idempotency_key(Backend::Sqlite).await;
}

#[tokio::test]
async fn money_moving_creates_need_an_idempotency_key_postgres() {
    money_moving_creates_need_an_idempotency_key(Backend::Postgres).await;
}

#[tokio::test]
async fn market_data() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut market = MarketDataServiceClient::new(stack.channel());
    let firm = stack.tenant("firm-a");

    let spy = market
        .get_asset(firm.request(GetAssetRequest {
            symbol: "spy".to_owned(),
        }))
        .await
        .expect("asset")
        .into_inner()
        .asset
        .expect("asset");
    assert!(spy.tradable && spy.fractionable && spy.active);
    let status = market
        .get_asset(firm.request(GetAssetRequest {
            symbol: "NOPE".to_owned(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let listed = market
        .list_assets(firm.request(ListAssetsRequest {
            symbols: vec!["AGG".to_owned(), "QQQ".to_owned(), "ZZZZ".to_owned()],
            ..ListAssetsRequest::default()
        }))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.assets.len(), 2);
    assert_eq!(listed.missing_symbols, ["ZZZZ"]);
    let all = market
        .list_assets(firm.request(ListAssetsRequest {
            page_size: 1000,
            ..ListAssetsRequest::default()
        }))
        .await
        .expect("list all")
        .into_inner();
    assert!(all.assets.len() >= 250, "a few hundred tickers");
    assert!(all.assets.iter().any(|asset| !asset.fractionable));

    let quotes = market
        .get_quotes(firm.request(GetQuotesRequest {
            symbols: vec!["SPY".to_owned(), "TLT".to_owned(), "ZZZZ".to_owned()],
        }))
        .await
        .expect("quotes")
        .into_inner();
    assert_eq!(quotes.quotes.len(), 2);
    assert_eq!(quotes.missing_symbols, ["ZZZZ"]);
    for quote in &quotes.quotes {
        assert!(
            decimal(&quote.bid) <= decimal(&quote.last)
                && decimal(&quote.last) <= decimal(&quote.ask)
        );
    }

    let calendar = market
        .get_calendar(firm.request(GetCalendarRequest {
            start_date: "2026-01-01".to_owned(),
            end_date: "2026-12-31".to_owned(),
            ..GetCalendarRequest::default()
        }))
        .await
        .expect("calendar")
        .into_inner();
    assert_eq!(calendar.days.len(), 251);
    assert!(
        calendar
            .days
            .iter()
            .any(|day| day.date == "2026-11-27" && day.early_close)
    );
    let status = market
        .get_calendar(firm.request(GetCalendarRequest {
            start_date: "2026-13-01".to_owned(),
            end_date: "2026-12-31".to_owned(),
            ..GetCalendarRequest::default()
        }))
        .await
        .expect_err("bad date");
    assert_eq!(status.code(), Code::InvalidArgument);

    // The test clock stands at Monday 2026-03-02 15:00 UTC: the market is open.
    let clock = market
        .get_clock(firm.request(GetClockRequest {}))
        .await
        .expect("clock")
        .into_inner();
    assert!(clock.is_open);

    let profile = market
        .get_volume_profile(firm.request(GetVolumeProfileRequest {
            symbol: "SPY".to_owned(),
            bin_minutes: 30,
        }))
        .await
        .expect("profile")
        .into_inner();
    assert_eq!(profile.bins.len(), 13);
    let total: Decimal = profile.bins.iter().map(|bin| decimal(&bin.fraction)).sum();
    assert_eq!(total, Decimal::ONE);

    let updated = market
        .update_asset(firm.request(UpdateAssetRequest {
            symbol: "QQQ".to_owned(),
            tradable: Some(false),
            reason: "halted".to_owned(),
            ..UpdateAssetRequest::default()
        }))
        .await
        .expect("update")
        .into_inner()
        .asset
        .expect("asset");
    assert!(!updated.tradable && updated.active);
    let tradable = market
        .list_assets(firm.request(ListAssetsRequest {
            symbols: vec!["QQQ".to_owned()],
            tradable_only: true,
            ..ListAssetsRequest::default()
        }))
        .await
        .expect("list")
        .into_inner();
    assert!(tradable.assets.is_empty());
    stack.stop().await;
}

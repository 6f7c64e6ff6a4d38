//! Households end to end, on both backends, against uploaded prices: a
//! taxable account and an IRA with a 60/40 stock/bond model put the bonds
//! in the IRA (asset location); a loss sale of SPY in the taxable account
//! blocks a planned SPY buy in the IRA (and of VOO, configured as
//! substantially identical) with the reason, unless overridden; a buy in
//! the IRA then holds back the taxable account's loss sale; bad households
//! and groups are refused precisely and change nothing.

use chrono::Duration;
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, RunType, Weight};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    ApproveRunRequest, CreateHouseholdRebalanceRequest, CreateRunRequest, GetHouseholdRequest,
    IdenticalSecurities, OrderSide, Position, PreviewHouseholdRebalanceRequest, PreviewRunRequest,
    PreviewRunResponse, Run, RunSpec, RunStatus, SetIdenticalSecuritiesRequest,
    SetTaxSettingsRequest, SkipReason, TaxLot, TaxSettings, TaxStatus, UpsertAccountRequest,
    UpsertAssetsRequest, UpsertHouseholdRequest, UpsertQuotesRequest,
};
use rebalancer_server::stack::MarketChoice;
use rebalancer_tests::market::{listed_asset, quote, tick_until_ended};
use rebalancer_tests::{Backend, StackOptions, TestStack, violated_fields, weight};
use rust_decimal::Decimal;
use tonic::Code;

fn d(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|_| panic!("decimal {text:?}"))
}

fn spec(account: &str, weights: Vec<Weight>, allow_wash_sales: bool) -> RunSpec {
    RunSpec {
        account_id: account.to_owned(),
        r#type: RunType::FullRebalance.into(),
        weights,
        approval_mode: ApprovalMode::Auto.into(),
        allow_wash_sales,
        ..RunSpec::default()
    }
}

fn household(members: &[&str]) -> UpsertHouseholdRequest {
    UpsertHouseholdRequest {
        household_id: "smith".to_owned(),
        name: "The Smiths".to_owned(),
        account_ids: members.iter().map(|m| (*m).to_owned()).collect(),
        weights: vec![weight("SPY", "60"), weight("AGG", "40")],
        tax_inefficient_symbols: vec!["AGG".to_owned()],
        etag: String::new(),
    }
}

fn buys(preview: &PreviewRunResponse) -> Vec<(String, Decimal)> {
    preview
        .orders
        .iter()
        .filter(|o| o.side == i32::from(OrderSide::Buy))
        .map(|o| (o.symbol.clone(), d(&o.quantity)))
        .collect()
}

fn skipped(preview: &PreviewRunResponse, reason: SkipReason) -> Vec<(String, String)> {
    preview
        .skipped_orders
        .iter()
        .filter(|s| s.reason == i32::from(reason))
        .map(|s| (s.symbol.clone(), s.detail.clone()))
        .collect()
}

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
}

impl Desk {
    async fn preview(&mut self, spec: RunSpec) -> PreviewRunResponse {
        self.runs
            .preview_run(self.firm.request(PreviewRunRequest { spec: Some(spec) }))
            .await
            .expect("preview")
            .into_inner()
    }

    /// Creates a run and ticks until it ends.
    async fn execute(&mut self, stack: &TestStack, key: &str, spec: RunSpec) -> Run {
        let run = self
            .runs
            .create_run(self.firm.request(CreateRunRequest {
                idempotency_key: key.to_owned(),
                spec: Some(spec),
            }))
            .await
            .expect("run")
            .into_inner()
            .run
            .expect("run");
        let ended = tick_until_ended(stack, &mut self.runs, &self.firm, &run.id).await;
        assert!(
            matches!(
                RunStatus::try_from(ended.status),
                Ok(RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted)
            ),
            "{ended:?}"
        );
        ended
    }
}

async fn households_locate_assets_and_guard_wash_sales(backend: Backend) {
    let options = StackOptions {
        market: MarketChoice::Platform,
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        return;
    };
    let channel = stack.channel();
    let firm = stack.tenant("firm-a");
    let now = stack.clock.now();
    let mut market = MarketDataServiceClient::new(channel.clone());
    market
        .upsert_assets(firm.request(UpsertAssetsRequest {
            assets: vec![
                listed_asset("SPY", false),
                listed_asset("AGG", false),
                listed_asset("VOO", false),
                listed_asset("IVV", false),
            ],
        }))
        .await
        .expect("assets");
    market
        .upsert_quotes(firm.request(UpsertQuotesRequest {
            quotes: vec![
                quote("SPY", "500", now),
                quote("AGG", "100", now),
                quote("VOO", "450", now),
                quote("IVV", "520", now),
            ],
        }))
        .await
        .expect("quotes");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(channel.clone()),
        runs: RunServiceClient::new(channel.clone()),
    };
    // Taxable: 60 SPY bought at $550 200 days ago ($3,000 under water).
    // IRA: $40,000 of cash.
    desk.accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "taxable".to_owned(),
            cash: "0".to_owned(),
            positions: vec![Position {
                symbol: "SPY".to_owned(),
                quantity: "60".to_owned(),
                lots: vec![TaxLot {
                    id: "spy-2026".to_owned(),
                    quantity: "60".to_owned(),
                    cost_basis: "33000".to_owned(),
                    acquired_on: (now - Duration::days(200)).date_naive().to_string(),
                    ..TaxLot::default()
                }],
                ..Position::default()
            }],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("taxable");
    desk.accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "ira".to_owned(),
            cash: "40000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("ira");
    desk.accounts
        .set_tax_settings(firm.request(SetTaxSettingsRequest {
            account_id: "ira".to_owned(),
            tax_settings: Some(TaxSettings {
                status: TaxStatus::TaxDeferred.into(),
                ..TaxSettings::default()
            }),
            etag: String::new(),
        }))
        .await
        .expect("ira settings");

    // Bad households and groups: refused precisely, nothing stored.
    let mut bad = household(&["taxable", "nobody"]);
    let refused = desk
        .accounts
        .upsert_household(firm.request(bad.clone()))
        .await
        .expect_err("unknown member");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    bad.account_ids = vec!["taxable".to_owned(), "taxable".to_owned()];
    bad.weights = vec![weight("SPY", "60"), weight("AGG", "30")];
    bad.tax_inefficient_symbols = vec!["TLT".to_owned()];
    let refused = desk
        .accounts
        .upsert_household(firm.request(bad))
        .await
        .expect_err("bad household");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        ["account_ids[1]", "weights"],
        "{refused:?}"
    );
    let mut bad = household(&["taxable"]);
    bad.tax_inefficient_symbols = vec!["TLT".to_owned()];
    let refused = desk
        .accounts
        .upsert_household(firm.request(bad))
        .await
        .expect_err("not in the model");
    assert_eq!(violated_fields(&refused), ["tax_inefficient_symbols[0]"]);
    let refused = desk
        .accounts
        .set_identical_securities(firm.request(SetIdenticalSecuritiesRequest {
            groups: vec![
                IdenticalSecurities {
                    symbols: vec!["SPY".to_owned()],
                },
                IdenticalSecurities {
                    symbols: vec!["SPY".to_owned(), "VOO".to_owned()],
                },
                IdenticalSecurities {
                    symbols: vec!["VOO".to_owned(), "bad sym".to_owned()],
                },
            ],
        }))
        .await
        .expect_err("bad groups");
    assert_eq!(
        violated_fields(&refused),
        [
            "groups[0].symbols",
            "groups[2].symbols[0]",
            "groups[2].symbols[1]"
        ]
    );

    // The household: the bonds fill the IRA first.
    let created = desk
        .accounts
        .upsert_household(firm.request(household(&["taxable", "ira"])))
        .await
        .expect("household")
        .into_inner();
    assert!(created.created);
    assert_eq!(
        created.household.expect("household").account_ids,
        ["ira", "taxable"]
    );
    let other = desk
        .accounts
        .upsert_household(firm.request(UpsertHouseholdRequest {
            household_id: "jones".to_owned(),
            ..household(&["ira"])
        }))
        .await
        .expect_err("ira is a Smith");
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    let view = desk
        .accounts
        .get_household(firm.request(GetHouseholdRequest {
            household_id: "smith".to_owned(),
        }))
        .await
        .expect("household view")
        .into_inner();
    assert_eq!(view.equity, "70000.00");
    let located: Vec<(String, Vec<(String, String)>)> = view
        .members
        .iter()
        .map(|m| {
            (
                m.account_id.clone(),
                m.located_weights
                    .iter()
                    .map(|w| (w.symbol.clone(), w.percent.clone()))
                    .collect(),
            )
        })
        .collect();
    // $70,000: AGG $28,000 all in the IRA, which has $12,000 left for SPY.
    assert_eq!(
        located,
        [
            (
                "ira".to_owned(),
                vec![
                    ("AGG".to_owned(), "70".to_owned()),
                    ("SPY".to_owned(), "30".to_owned())
                ]
            ),
            (
                "taxable".to_owned(),
                vec![("SPY".to_owned(), "100".to_owned())]
            ),
        ]
    );
    let plans = desk
        .runs
        .preview_household_rebalance(firm.request(PreviewHouseholdRebalanceRequest {
            household_id: "smith".to_owned(),
            allow_wash_sales: false,
        }))
        .await
        .expect("household preview")
        .into_inner()
        .plans;
    let ira = plans[0].preview.clone().expect("ira plan");
    assert_eq!(plans[0].account_id, "ira");
    assert_eq!(
        buys(&ira),
        [("AGG".to_owned(), d("280")), ("SPY".to_owned(), d("24"))]
    );
    let taxable = plans[1].preview.clone().expect("taxable plan");
    assert!(taxable.orders.is_empty(), "{taxable:?}");

    // SPY and VOO are one security for the guard.
    desk.accounts
        .set_identical_securities(firm.request(SetIdenticalSecuritiesRequest {
            groups: vec![IdenticalSecurities {
                symbols: vec!["VOO".to_owned(), "SPY".to_owned()],
            }],
        }))
        .await
        .expect("groups");

    // The taxable account sells half its SPY at a loss...
    let sold = desk
        .execute(
            &stack,
            "harvest",
            spec(
                "taxable",
                vec![weight("", "50"), weight("SPY", "50")],
                false,
            ),
        )
        .await;
    assert!(
        sold.orders
            .iter()
            .all(|o| o.side == i32::from(OrderSide::Sell))
    );
    let sold_on = rebalancer_domain::calendar::exchange_date(now);
    let clear = sold_on + Duration::days(31);

    // ...so the IRA may not buy SPY, nor VOO, for 30 days; IVV is fine.
    let plans = desk
        .runs
        .preview_household_rebalance(firm.request(PreviewHouseholdRebalanceRequest {
            household_id: "smith".to_owned(),
            allow_wash_sales: false,
        }))
        .await
        .expect("household preview")
        .into_inner()
        .plans;
    let ira = plans[0].preview.clone().expect("ira plan");
    let bought: Vec<String> = buys(&ira).into_iter().map(|(symbol, _)| symbol).collect();
    assert_eq!(bought, ["AGG"], "{ira:?}");
    let blocked = skipped(&ira, SkipReason::WashSale);
    assert_eq!(blocked.len(), 1, "{ira:?}");
    assert_eq!(blocked[0].0, "SPY");
    assert!(
        blocked[0]
            .1
            .starts_with("wash sale: SPY was sold at a loss of $")
            && blocked[0]
                .1
                .contains(&format!("in account taxable on {sold_on}"))
            && blocked[0]
                .1
                .contains(&format!("SPY may be bought from {clear}")),
        "{}",
        blocked[0].1
    );
    let voo = desk
        .preview(spec("ira", vec![weight("VOO", "100")], false))
        .await;
    assert!(buys(&voo).is_empty(), "{voo:?}");
    assert_eq!(skipped(&voo, SkipReason::WashSale).len(), 1);
    let ivv = desk
        .preview(spec("ira", vec![weight("IVV", "100")], false))
        .await;
    assert_eq!(buys(&ivv), [("IVV".to_owned(), d("76"))]);
    // An advisor's override trades through, and says so.
    let overridden = desk
        .preview(spec("ira", vec![weight("SPY", "100")], true))
        .await;
    assert_eq!(buys(&overridden), [("SPY".to_owned(), d("80"))]);

    // The IRA buys SPY anyway (its run approved, the taxable one left
    // proposed): now the taxable account's remaining loss may not be
    // realized for 30 days.
    let household_runs = desk
        .runs
        .create_household_rebalance(firm.request(CreateHouseholdRebalanceRequest {
            idempotency_key: "smith-1".to_owned(),
            household_id: "smith".to_owned(),
            approval_mode: ApprovalMode::Manual.into(),
            allow_wash_sales: true,
        }))
        .await
        .expect("household runs")
        .into_inner()
        .runs;
    assert_eq!(household_runs.len(), 2);
    assert!(
        household_runs[0]
            .reason
            .contains("wash-sale guard overridden")
    );
    assert!(
        household_runs[0]
            .orders
            .iter()
            .any(|o| o.symbol == "SPY" && o.side == i32::from(OrderSide::Buy)),
        "{:?}",
        household_runs[0]
    );
    let ira_run = household_runs[0].id.clone();
    desk.runs
        .approve_run(firm.request(ApproveRunRequest {
            run_id: ira_run.clone(),
            etag: household_runs[0].etag.clone(),
        }))
        .await
        .expect("approve the IRA's run");
    tick_until_ended(&stack, &mut desk.runs, &firm, &ira_run).await;
    let replayed = desk
        .runs
        .create_household_rebalance(firm.request(CreateHouseholdRebalanceRequest {
            idempotency_key: "smith-1".to_owned(),
            household_id: "smith".to_owned(),
            approval_mode: ApprovalMode::Manual.into(),
            allow_wash_sales: true,
        }))
        .await
        .expect("replay")
        .into_inner()
        .runs;
    assert_eq!(replayed[0].id, ira_run);
    let all_cash = desk
        .preview(spec("taxable", vec![weight("", "100")], false))
        .await;
    assert!(all_cash.orders.is_empty(), "{all_cash:?}");
    let held = skipped(&all_cash, SkipReason::WashSale);
    assert_eq!(held.len(), 1, "{all_cash:?}");
    assert!(
        held[0].1.starts_with(
            "30 shares of SPY at a loss not sold: wash sale: SPY was bought in account ira on"
        ),
        "{}",
        held[0].1
    );

    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_locate_assets_and_guard_wash_sales_on_sqlite() {
    households_locate_assets_and_guard_wash_sales(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_locate_assets_and_guard_wash_sales_on_postgres() {
    households_locate_assets_and_guard_wash_sales(Backend::Postgres).await;
}

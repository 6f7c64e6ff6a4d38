//! Kill-and-restart fault test of the execution worker, on the real binary:
//! `rebalancer serve target` and `rebalancer serve execution` as separate
//! processes sharing one simulated clock (`--sim-start`, `--sim-epoch`,
//! `--speed`), so simulated time runs on across restarts. A batch of 200
//! accounts is worked by `twap` over 20 simulated minutes while the
//! execution process is killed with SIGKILL at random moments and restarted
//! with the same arguments. Afterwards: no child order at the paper broker
//! that the execution book does not know (and none twice), every broker fill
//! recorded and allocated exactly once, every account's cash and shares
//! moved by exactly its allocations, every run in a final state.
//!
//! The same runs against a real FIX counterparty (`--broker fix`, the
//! QuickFIX acceptor of `tests/fix/`, filling each order over three reports
//! and dropping the connection once mid-order): every order the acceptor
//! received is a recorded child order (none twice: a retried order goes with
//! PossResend), and every fill it made is recorded exactly once, by ExecID.
//!
//! The kill moments come from a seed printed at the start; `FAULT_SEED=<n>`
//! replays one, `FAULT_KILLS=<n>` kills more often. Readiness is polled
//! through gRPC health.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rebalancer_execution::store::ExecutionStore;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::testing::TestDatabase;
use rebalancer_proto::client::{CallContext, ClientOptions, TracedChannel, lazy_channel};
use rebalancer_proto::common::{ApprovalMode, RunType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AlgorithmType, Allocation, BatchStatus, BlockOrder, ChildOrder, CreateBatchRequest,
    ExecutionAlgorithm, Fill, GetBatchRequest, GetQuotesRequest, ListAccountsRequest,
    ListAllocationsRequest, ListBlockOrdersRequest, ListChildOrdersRequest, ListFillsRequest,
    ListRunsRequest, OrderSide, OrderStatus, Position, Run, RunStatus, TransmitBatchRequest,
    UpsertAccountRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, OrderSizing};
use rebalancer_tests::binary::rebalancer_binary;
use rebalancer_tests::fix_acceptor;
use rebalancer_tests::process::free_port;
use rebalancer_tests::weight;
use rust_decimal::Decimal;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Accounts in the batch.
const ACCOUNTS: usize = 200;
/// Simulated seconds per real second.
const SPEED: u32 = 120;
/// Times the execution process is killed (`FAULT_KILLS=<n>` for more).
const KILLS: usize = 3;
/// Longest wait for a process to answer health checks, and for the batch.
const READY_WITHIN: Duration = Duration::from_secs(60);
const DONE_WITHIN: Duration = Duration::from_secs(240);
const SIM_START: &str = "2026-03-02T15:00:00Z";

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?}"))
}

/// SplitMix64: the kill schedule, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration between `low` and `high` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// One `rebalancer serve` process, killed when dropped.
struct Service {
    name: &'static str,
    args: Vec<String>,
    address: String,
    log: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Service {
    fn new(name: &'static str, args: Vec<String>, address: String, dir: &Path) -> Self {
        Self {
            name,
            args,
            address,
            log: dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(rebalancer_binary())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rebalancer");
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL: no shutdown, no draining, whatever the process was doing.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls gRPC health until the process serves, failing if it exits.
    async fn wait_ready(&mut self, service: &str) {
        let started = Instant::now();
        let channel =
            lazy_channel(&ClientOptions::new(format!("http://{}", self.address))).expect("channel");
        let mut health = HealthClient::new(channel);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let answer = health
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            if let Ok(response) = answer
                && response.into_inner().status == i32::from(ServingStatus::Serving)
            {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "{} not serving after {READY_WITHIN:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Clients of the two processes for one tenant.
struct Desk {
    firm: CallContext,
    execution: TracedChannel,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
    batches: BatchServiceClient<TracedChannel>,
    orders: OrderServiceClient<TracedChannel>,
    portfolios: PortfolioServiceClient<TracedChannel>,
    assignments: AssignmentServiceClient<TracedChannel>,
}

/// Every account's cash and positions by id.
type Book = BTreeMap<String, (Decimal, BTreeMap<String, Decimal>)>;

/// Reads every page of a listing.
macro_rules! all_pages {
    ($call:expr, $field:ident) => {{
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = ($call)(page_token.clone()).await.into_inner();
            items.extend(page.$field);
            if page.next_page_token.is_empty() {
                break items;
            }
            page_token = page.next_page_token;
        }
    }};
}

impl Desk {
    async fn book(&mut self) -> Book {
        let firm = self.firm.clone();
        let accounts = all_pages!(
            |token| {
                let mut client = self.accounts.clone();
                let request = firm.request(ListAccountsRequest {
                    page_size: 1000,
                    page_token: token,
                    ..ListAccountsRequest::default()
                });
                async move { client.list_accounts(request).await.expect("accounts") }
            },
            accounts
        );
        accounts
            .into_iter()
            .map(|account| {
                let positions = account
                    .positions
                    .iter()
                    .map(|p| (p.symbol.clone(), d(&p.quantity)))
                    .collect();
                (account.id, (d(&account.cash), positions))
            })
            .collect()
    }

    async fn runs(&mut self, batch_id: &str) -> Vec<Run> {
        let firm = self.firm.clone();
        all_pages!(
            |token| {
                let mut client = self.runs.clone();
                let request = firm.request(ListRunsRequest {
                    batch_id: batch_id.to_owned(),
                    page_size: 1000,
                    page_token: token,
                    ..ListRunsRequest::default()
                });
                async move { client.list_runs(request).await.expect("runs") }
            },
            runs
        )
    }

    async fn blocks(&mut self, batch_id: &str) -> Vec<BlockOrder> {
        let firm = self.firm.clone();
        all_pages!(
            |token| {
                let mut client = self.orders.clone();
                let request = firm.request(ListBlockOrdersRequest {
                    batch_id: batch_id.to_owned(),
                    page_size: 1000,
                    page_token: token,
                    ..ListBlockOrdersRequest::default()
                });
                async move { client.list_block_orders(request).await.expect("blocks") }
            },
            block_orders
        )
    }

    async fn children(&mut self, block_id: &str) -> Vec<ChildOrder> {
        let firm = self.firm.clone();
        all_pages!(
            |token| {
                let mut client = self.orders.clone();
                let request = firm.request(ListChildOrdersRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: token,
                });
                async move { client.list_child_orders(request).await.expect("children") }
            },
            child_orders
        )
    }

    async fn fills(&mut self, block_id: &str) -> Vec<Fill> {
        let firm = self.firm.clone();
        all_pages!(
            |token| {
                let mut client = self.orders.clone();
                let request = firm.request(ListFillsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: token,
                });
                async move { client.list_fills(request).await.expect("fills") }
            },
            fills
        )
    }

    async fn allocations(&mut self, block_id: &str) -> Vec<Allocation> {
        let firm = self.firm.clone();
        all_pages!(
            |token| {
                let mut client = self.orders.clone();
                let request = firm.request(ListAllocationsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: token,
                    ..ListAllocationsRequest::default()
                });
                async move { client.list_allocations(request).await.expect("allocations") }
            },
            allocations
        )
    }

    async fn batch_status(&mut self, batch_id: &str) -> BatchStatus {
        let batch = self
            .batches
            .get_batch(self.firm.request(GetBatchRequest {
                batch_id: batch_id.to_owned(),
            }))
            .await
            .expect("batch")
            .into_inner()
            .batch
            .expect("batch");
        BatchStatus::try_from(batch.status).expect("status")
    }

    /// Balanced and its whole-share twin; `ACCOUNTS` accounts, a third
    /// cash-only and the rest drifted either way, every fifth whole-share.
    async fn populate(&mut self) -> Vec<String> {
        let quotes = MarketDataServiceClient::new(self.execution.clone())
            .get_quotes(self.firm.request(GetQuotesRequest {
                symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
            }))
            .await
            .expect("quotes")
            .into_inner()
            .quotes;
        let prices: HashMap<String, Decimal> =
            quotes.into_iter().map(|q| (q.symbol, d(&q.last))).collect();
        let mut portfolios = Vec::new();
        for (name, sizing) in [
            ("Balanced", OrderSizing::Notional),
            ("Balanced (whole shares)", OrderSizing::WholeShares),
        ] {
            let portfolio = self
                .portfolios
                .create_portfolio(self.firm.request(CreatePortfolioRequest {
                    name: name.to_owned(),
                    weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
                    order_sizing: sizing.into(),
                    ..CreatePortfolioRequest::default()
                }))
                .await
                .expect("portfolio")
                .into_inner()
                .portfolio
                .expect("portfolio");
            portfolios.push(portfolio.id);
        }
        let mut ids = Vec::with_capacity(ACCOUNTS);
        for index in 0..ACCOUNTS {
            let id = format!("acct-{index:04}");
            let whole = index % 5 == 4;
            let equity = Decimal::from(20_000 + (index * 7_919) % 100_000) + d("0.37");
            let (spy, tlt) = match index % 3 {
                0 => (Decimal::ZERO, Decimal::ZERO),
                1 => (d("0.75"), d("0.22")),
                _ => (d("0.45"), d("0.50")),
            };
            let shares = |symbol: &str, share: Decimal| {
                let exact = equity * share / prices[symbol];
                if whole {
                    exact.floor()
                } else {
                    exact.round_dp(6)
                }
            };
            let (spy, tlt) = (shares("SPY", spy), shares("TLT", tlt));
            let cash = (equity - spy * prices["SPY"] - tlt * prices["TLT"]).round_dp(2);
            let positions = [("SPY", spy), ("TLT", tlt)]
                .into_iter()
                .filter(|(_, quantity)| *quantity > Decimal::ZERO)
                .map(|(symbol, quantity)| Position {
                    symbol: symbol.to_owned(),
                    quantity: quantity.to_string(),
                    ..Position::default()
                })
                .collect();
            self.accounts
                .upsert_account(self.firm.request(UpsertAccountRequest {
                    account_id: id.clone(),
                    cash: cash.to_string(),
                    positions,
                    ..UpsertAccountRequest::default()
                }))
                .await
                .expect("account");
            self.assignments
                .assign(self.firm.request(AssignRequest {
                    account_id: id.clone(),
                    portfolio_id: portfolios[usize::from(whole)].clone(),
                    rebalancing_enabled: true,
                    approval_mode: ApprovalMode::Manual.into(),
                    ..AssignRequest::default()
                }))
                .await
                .expect("assign");
            ids.push(id);
        }
        ids
    }
}

/// The execution database, to read the paper broker's own book.
async fn execution_store(url: &str) -> std::sync::Arc<dyn ExecutionStore> {
    let url = DatabaseUrl::parse(url).expect("url");
    rebalancer_execution::store::open(&url, &PoolOptions::default())
        .await
        .expect("execution store")
}

/// Where the execution process sends its orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Venue {
    Paper,
    Fix,
}

async fn kill_and_restart(backend: &str, venue: Venue) {
    if venue == Venue::Fix && !fix_acceptor::quickfix_available() {
        return;
    }
    // Databases: SQLite files, or two fresh PostgreSQL databases.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut databases = Vec::new();
    let (target_url, execution_url) = match backend {
        "postgres" => {
            let (Some(target), Some(execution)) =
                (TestDatabase::create().await, TestDatabase::create().await)
            else {
                return;
            };
            let urls = (target.url.clone(), execution.url.clone());
            databases.push(target);
            databases.push(execution);
            urls
        }
        _ => (
            format!("sqlite://{}", dir.path().join("target.db").display()),
            format!("sqlite://{}", dir.path().join("execution.db").display()),
        ),
    };
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_nanos() % 1_000_000_007),
            )
            .unwrap_or(7)
        });
    eprintln!("{backend}: kill schedule seed {seed} (FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    // One simulated clock for both processes and every restart.
    let epoch = chrono::Utc::now().to_rfc3339();
    let clock = [
        "--sim-start".to_owned(),
        SIM_START.to_owned(),
        "--sim-epoch".to_owned(),
        epoch,
        "--speed".to_owned(),
        SPEED.to_string(),
    ];
    let target_address = format!("127.0.0.1:{}", free_port());
    let execution_address = format!("127.0.0.1:{}", free_port());
    let serve = |service: &str, address: &str, database: &str, peer: (&str, &str)| {
        let mut args: Vec<String> = [
            "serve",
            service,
            "--listen",
            address,
            "--database-url",
            database,
            peer.0,
            peer.1,
            // Authentication is tested on its own (tests/tests/auth.rs).
            "--insecure-accept-unauthenticated",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(clock.iter().cloned());
        args
    };
    let execution_peer = format!("http://{execution_address}");
    let target_peer = format!("http://{target_address}");
    let mut target = Service::new(
        "target",
        serve(
            "target",
            &target_address,
            &target_url,
            ("--execution-url", &execution_peer),
        ),
        target_address.clone(),
        dir.path(),
    );
    let mut execution_args = serve(
        "execution",
        &execution_address,
        &execution_url,
        ("--target-url", &target_peer),
    );
    let fix_port = free_port();
    if venue == Venue::Fix {
        let config = fix_acceptor::config_file(dir.path(), fix_port);
        execution_args.extend([
            "--broker".to_owned(),
            "fix".to_owned(),
            "--fix-config".to_owned(),
        ]);
        execution_args.push(config.display().to_string());
    }
    let mut execution = Service::new(
        "execution",
        execution_args,
        execution_address.clone(),
        dir.path(),
    );
    target.spawn();
    execution.spawn();
    target
        .wait_ready(rebalancer_proto::service_names::TARGET_SERVICES[0])
        .await;
    execution
        .wait_ready(rebalancer_proto::service_names::EXECUTION_SERVICES[0])
        .await;

    let to_target = lazy_channel(&ClientOptions::new(target_peer.clone())).expect("channel");
    let to_execution = lazy_channel(&ClientOptions::new(execution_peer.clone())).expect("channel");
    let mut desk = Desk {
        firm: CallContext::tenant("firm-a"),
        execution: to_execution.clone(),
        accounts: AccountServiceClient::new(to_execution.clone()),
        runs: RunServiceClient::new(to_execution.clone()),
        batches: BatchServiceClient::new(to_execution.clone()),
        orders: OrderServiceClient::new(to_execution),
        portfolios: PortfolioServiceClient::new(to_target.clone()),
        assignments: AssignmentServiceClient::new(to_target),
    };
    let ids = desk.populate().await;
    let before = desk.book().await;
    assert_eq!(before.len(), ACCOUNTS);
    // The broker fills at the prices of the moment; three reports per
    // order, and the connection dropped once after the fourth order.
    let acceptor = if venue == Venue::Fix {
        let quotes = MarketDataServiceClient::new(desk.execution.clone())
            .get_quotes(desk.firm.request(GetQuotesRequest {
                symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
            }))
            .await
            .expect("quotes")
            .into_inner()
            .quotes;
        let prices: serde_json::Map<String, serde_json::Value> = quotes
            .into_iter()
            .map(|q| (q.symbol, serde_json::Value::String(q.last)))
            .collect();
        let prices_file = dir.path().join("prices.json");
        std::fs::write(&prices_file, serde_json::Value::Object(prices).to_string())
            .expect("prices");
        let prices_file = prices_file.display().to_string();
        Some(fix_acceptor::Acceptor::start(
            fix_port,
            dir.path(),
            &[
                "--prices",
                &prices_file,
                "--partial-fills",
                "3",
                "--drop-after-orders",
                "4",
                "--cash-qty-decimals",
                "9",
                "--qty-decimals",
                "9",
                "--fill-delay-ms",
                "5",
            ],
        ))
    } else {
        None
    };

    let batch = desk
        .batches
        .create_batch(desk.firm.request(CreateBatchRequest {
            idempotency_key: "fault-batch".to_owned(),
            account_ids: ids.clone(),
            r#type: RunType::FullRebalance.into(),
            ..CreateBatchRequest::default()
        }))
        .await
        .expect("batch")
        .into_inner()
        .batch
        .expect("batch");
    assert!(
        batch.account_errors.is_empty(),
        "{:?}",
        batch.account_errors
    );
    let planned = desk.runs(&batch.id).await;
    assert_eq!(planned.len(), ACCOUNTS);
    desk.batches
        .transmit_batch(desk.firm.request(TransmitBatchRequest {
            batch_id: batch.id.clone(),
            etag: batch.etag.clone(),
            algorithm: Some(ExecutionAlgorithm {
                r#type: AlgorithmType::Twap.into(),
                // A FIX session needs a real second or so to log on again
                // after each restart: two simulated minutes at this speed.
                horizon: Some(rebalancer_proto::prost_types::Duration {
                    seconds: if venue == Venue::Fix {
                        60 * 60
                    } else {
                        20 * 60
                    },
                    nanos: 0,
                }),
                ..ExecutionAlgorithm::default()
            }),
        }))
        .await
        .expect("transmit");
    let transmitted = Instant::now();

    // SIGKILL the execution process at random moments while it works, and
    // restart it with the same arguments each time.
    let mut kills_in_flight = 0;
    // Spread over the ~20 s (real) the batch takes: sells, then buys.
    let kills = std::env::var("FAULT_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(KILLS)
        .max(2);
    let longest_gap = u64::try_from(18_000 / kills).unwrap_or(6_000).max(600);
    for kill in 0..kills {
        tokio::time::sleep(rng.millis(300, longest_gap)).await;
        let status = desk.batch_status(&batch.id).await;
        if status == BatchStatus::Completed {
            break;
        }
        let blocks = desk.blocks(&batch.id).await;
        let filled: Vec<String> = blocks
            .iter()
            .map(|b| {
                format!(
                    "{} {:?} {}/{}",
                    b.symbol, b.side, b.filled_quantity, b.quantity
                )
            })
            .collect();
        execution.kill();
        kills_in_flight += 1;
        eprintln!(
            "kill {} at {:.1?} after transmission, batch {status:?}: {filled:?}",
            kill + 1,
            transmitted.elapsed()
        );
        tokio::time::sleep(rng.millis(0, 500)).await;
        execution.spawn();
        execution
            .wait_ready(rebalancer_proto::service_names::EXECUTION_SERVICES[0])
            .await;
    }
    assert!(
        kills_in_flight >= 2,
        "only {kills_in_flight} kill(s) landed before the batch completed: the schedule missed the work"
    );
    loop {
        if desk.batch_status(&batch.id).await == BatchStatus::Completed {
            break;
        }
        assert!(
            transmitted.elapsed() < DONE_WITHIN,
            "batch not completed {DONE_WITHIN:?} after transmission:\n{}",
            execution.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "batch completed {:.1?} after transmission, {} execution starts",
        transmitted.elapsed(),
        execution.starts
    );

    // Every run in a final state, as planned.
    let runs = desk.runs(&batch.id).await;
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        let status = RunStatus::try_from(run.status).expect("status");
        *statuses.entry(status.as_str_name()).or_default() += 1;
    }
    assert_eq!(
        statuses.get("RUN_STATUS_COMPLETED_SUCCESS"),
        Some(&ACCOUNTS),
        "every run completes in full despite the kills: {statuses:?}; one: {:?}\n{}",
        runs.iter()
            .find(|run| run.status != i32::from(RunStatus::CompletedSuccess))
            .map(|run| (&run.reason, &run.orders)),
        execution.log_tail()
    );

    // Blocks: children unique, every fill allocated exactly once.
    let blocks = desk.blocks(&batch.id).await;
    let mut pairs: Vec<(String, i32)> = blocks.iter().map(|b| (b.symbol.clone(), b.side)).collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), blocks.len(), "one block per symbol and side");
    let mut children_by_client: HashMap<String, ChildOrder> = HashMap::new();
    let mut fills_by_id: HashMap<String, Fill> = HashMap::new();
    let mut allocations: Vec<Allocation> = Vec::new();
    for block in &blocks {
        assert_eq!(block.status, i32::from(OrderStatus::Filled), "{block:?}");
        for child in desk.children(&block.id).await {
            let previous = children_by_client.insert(child.client_order_id.clone(), child);
            assert!(previous.is_none(), "client order id twice: {previous:?}");
        }
        let fills = desk.fills(&block.id).await;
        let block_allocations = desk.allocations(&block.id).await;
        let mut allocated: HashMap<&str, Decimal> = HashMap::new();
        // The block's average-price corrections: no shares, no cash overall.
        let average_fill = format!("avg-{}", block.id);
        let mut corrections = Decimal::ZERO;
        for allocation in &block_allocations {
            if allocation.fill_id == average_fill {
                assert_eq!(d(&allocation.quantity), Decimal::ZERO, "{allocation:?}");
                corrections += d(&allocation.amount);
                continue;
            }
            *allocated.entry(allocation.fill_id.as_str()).or_default() += d(&allocation.quantity);
        }
        assert_eq!(corrections, Decimal::ZERO, "{block:?}");
        let mut filled = Decimal::ZERO;
        for fill in &fills {
            assert_eq!(
                allocated.remove(fill.id.as_str()),
                Some(d(&fill.quantity)),
                "fill {fill:?} allocated exactly once"
            );
            filled += d(&fill.quantity);
            let previous = fills_by_id.insert(fill.id.clone(), fill.clone());
            assert!(previous.is_none(), "fill recorded twice: {previous:?}");
        }
        assert!(
            allocated.is_empty(),
            "allocations of unknown fills: {allocated:?}"
        );
        assert_eq!(filled, d(&block.filled_quantity), "{block:?}");
        allocations.extend(block_allocations);
    }

    let store = execution_store(&execution_url).await;
    if let Some(acceptor) = &acceptor {
        check_fix_counterparty(acceptor, &store, &children_by_client, &fills_by_id).await;
    } else {
        check_paper_book(&store, &children_by_client, &fills_by_id).await;
    }

    // Every account moved by exactly its allocations, and to its plan.
    let after = desk.book().await;
    let planned_orders: HashMap<&str, &rebalancer_proto::execution::Order> = planned
        .iter()
        .flat_map(|run| run.orders.iter())
        .map(|order| (order.id.as_str(), order))
        .collect();
    let mut by_account: HashMap<&str, Vec<&Allocation>> = HashMap::new();
    for allocation in &allocations {
        by_account
            .entry(allocation.account_id.as_str())
            .or_default()
            .push(allocation);
    }
    let mut by_order: HashMap<&str, Vec<&Allocation>> = HashMap::new();
    for allocation in &allocations {
        by_order
            .entry(allocation.order_id.as_str())
            .or_default()
            .push(allocation);
    }
    for run in &runs {
        let (cash_before, positions_before) = &before[&run.account_id];
        let (cash_after, positions_after) = &after[&run.account_id];
        let mut cash = *cash_before;
        let mut positions = positions_before.clone();
        for allocation in by_account
            .get(run.account_id.as_str())
            .into_iter()
            .flatten()
        {
            let order = &run
                .orders
                .iter()
                .find(|o| o.id == allocation.order_id)
                .unwrap_or_else(|| panic!("{allocation:?} of another account's order"));
            let (amount, quantity) = (d(&allocation.amount), d(&allocation.quantity));
            let position = positions.entry(order.symbol.clone()).or_default();
            if order.side == i32::from(OrderSide::Buy) {
                cash -= amount;
                *position += quantity;
            } else {
                cash += amount;
                *position -= quantity;
            }
        }
        positions.retain(|_, quantity| !quantity.is_zero());
        assert_eq!(
            *cash_after, cash,
            "{}: cash moved by its allocations",
            run.account_id
        );
        assert_eq!(
            positions_after, &positions,
            "{}: shares moved by its allocations",
            run.account_id
        );
        for order in &run.orders {
            let plan = planned_orders[order.id.as_str()];
            let mine = by_order.get(order.id.as_str()).cloned().unwrap_or_default();
            let quantity: Decimal = mine.iter().map(|a| d(&a.quantity)).sum();
            let amount: Decimal = mine.iter().map(|a| d(&a.amount)).sum();
            assert_eq!(quantity, d(&order.filled_quantity), "{order:?}");
            if plan.notional.is_empty() {
                assert_eq!(quantity, d(&plan.quantity), "{order:?}");
            } else {
                assert!(
                    (amount - d(&plan.notional)).abs() <= d("0.01"),
                    "{order:?}: {amount} moved against {} planned",
                    plan.notional
                );
            }
        }
    }
    // How often a kill fell between a child order reaching the broker and
    // its slice being recorded (the retry got the existing order back).
    let resubmitted = std::fs::read_to_string(&execution.log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            line.contains("client order id seen before")
                || line.contains("sending it again with PossResend")
        })
        .count();
    eprintln!(
        "{backend}: {} child orders, {} fills, {} allocations checked after {kills_in_flight} kills; \
         {resubmitted} child order(s) resubmitted after a kill",
        children_by_client.len(),
        fills_by_id.len(),
        allocations.len()
    );
    drop(execution);
    drop(target);
    drop(databases);
}

/// The paper broker's own book matches the execution book one to one.
async fn check_paper_book(
    store: &std::sync::Arc<dyn ExecutionStore>,
    children_by_client: &HashMap<String, ChildOrder>,
    fills_by_id: &HashMap<String, Fill>,
) {
    let mut paper = Vec::new();
    loop {
        let after = paper.last().map(
            |order: &rebalancer_execution::broker::paper_store::PaperOrder| {
                order.client_order_id.clone()
            },
        );
        let page = store
            .paper_orders(after.as_deref(), 500)
            .await
            .expect("paper orders");
        if page.is_empty() {
            break;
        }
        paper.extend(page);
    }
    let paper_ids: BTreeSet<&str> = paper.iter().map(|o| o.client_order_id.as_str()).collect();
    let child_ids: BTreeSet<&str> = children_by_client.keys().map(String::as_str).collect();
    assert_eq!(
        paper_ids, child_ids,
        "every order the broker got is a recorded child order, and the reverse"
    );
    let mut paper_fills = 0;
    for order in &paper {
        let child = &children_by_client[&order.client_order_id];
        assert_eq!(order.broker_order_id, child.broker_order_id);
        assert_eq!(order.filled_quantity, d(&child.filled_quantity));
        for fill in &order.fills {
            let recorded = &fills_by_id[&fill.id];
            assert_eq!(recorded.child_order_id, child.id);
            assert_eq!(
                (d(&recorded.quantity), d(&recorded.price)),
                (fill.quantity, fill.price)
            );
            paper_fills += 1;
        }
    }
    assert_eq!(
        paper_fills,
        fills_by_id.len(),
        "no fill without a broker fill"
    );
}

/// What the FIX acceptor received and filled matches the execution book one
/// to one, and the adapter raised no break.
async fn check_fix_counterparty(
    acceptor: &fix_acceptor::Acceptor,
    store: &std::sync::Arc<dyn ExecutionStore>,
    children_by_client: &HashMap<String, ChildOrder>,
    fills_by_id: &HashMap<String, Fill>,
) {
    let records = acceptor.records();
    let mut first_sends: BTreeMap<String, usize> = BTreeMap::new();
    let mut resends = 0;
    let mut broker_fills: HashMap<String, (String, Decimal, Decimal)> = HashMap::new();
    let mut dropped = false;
    for record in &records {
        let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
        if record["msg_type"] == "D" {
            // A ClOrdID the broker has seen again must come flagged as a
            // possible duplicate (PossDup from the session's resend,
            // PossResend from the adapter), or a broker could fill it twice.
            let flagged = record["poss_dup"] == true || record["poss_resend"] == true;
            let seen = first_sends.entry(text("cl_ord_id")).or_default();
            if *seen > 0 {
                resends += 1;
                if !flagged {
                    *seen += 1;
                }
            } else {
                *seen = 1;
            }
        }
        if record["event"] == "fill" {
            let previous = broker_fills.insert(
                text("exec_id"),
                (text("cl_ord_id"), d(&text("qty")), d(&text("px"))),
            );
            assert!(previous.is_none(), "the acceptor reused an ExecID");
        }
        dropped |= record["event"] == "drop_connection";
    }
    assert!(dropped, "the acceptor dropped the connection mid-order");
    let twice: Vec<(&String, &usize)> = first_sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "orders sent again without PossDup or PossResend: {twice:?}"
    );
    let sent: BTreeSet<&str> = first_sends.keys().map(String::as_str).collect();
    let children: BTreeSet<&str> = children_by_client.keys().map(String::as_str).collect();
    assert!(
        sent == children,
        "every order the broker got is a recorded child order, and the reverse: \
         only at the broker {:?}, only in the book {:?}",
        sent.difference(&children).collect::<Vec<_>>(),
        children.difference(&sent).collect::<Vec<_>>()
    );
    let recorded: BTreeSet<&str> = fills_by_id.keys().map(String::as_str).collect();
    let made: BTreeSet<&str> = broker_fills.keys().map(String::as_str).collect();
    assert!(
        made == recorded,
        "every broker fill recorded once, no other: only at the broker {:?}, only in the book {:?}",
        made.difference(&recorded).collect::<Vec<_>>(),
        recorded.difference(&made).collect::<Vec<_>>()
    );
    for (exec_id, (client_order_id, quantity, price)) in &broker_fills {
        let fill = &fills_by_id[exec_id];
        assert_eq!(fill.child_order_id, children_by_client[client_order_id].id);
        assert_eq!((d(&fill.quantity), d(&fill.price)), (*quantity, *price));
    }
    let breaks = store.broker_breaks(None, 10).await.expect("breaks");
    assert!(breaks.is_empty(), "no break: {breaks:?}");
    eprintln!(
        "fix: {} orders, {} fills at the acceptor, {resends} resent (PossDup or PossResend), connection dropped once",
        sent.len(),
        broker_fills.len()
    );
}

#[tokio::test]
async fn execution_survives_sigkill_during_a_twap_sqlite() {
    kill_and_restart("sqlite", Venue::Paper).await;
}

#[tokio::test]
async fn execution_survives_sigkill_during_a_twap_postgres() {
    kill_and_restart("postgres", Venue::Paper).await;
}

#[tokio::test]
async fn fix_execution_survives_sigkill_during_a_twap_sqlite() {
    kill_and_restart("sqlite", Venue::Fix).await;
}

#[tokio::test]
async fn fix_execution_survives_sigkill_during_a_twap_postgres() {
    kill_and_restart("postgres", Venue::Fix).await;
}

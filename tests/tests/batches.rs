//! Batches of many accounts worked as block orders, end to end on the
//! simulated market: a thousand accounts assigned to Balanced (cash-only,
//! drifted both ways, whole-share ones), planned as one batch, transmitted
//! with `vwap` or `twap` over 30 simulated minutes and driven tick by tick.
//! Checks one block per symbol and side, allocations summing exactly to the
//! fills, every run final, every account at its plan within a share or a
//! cent, the quality report; and netting across accounts. On a few accounts:
//! the review's totals by ticker without what an advisor excluded, and a
//! block watched fill by fill.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Instant;

use chrono::Duration;
use futures::StreamExt;
use rebalancer_execution::blocks::store::Claimable;
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, RunType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::batch_service_client::BatchServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AdjustBatchRequest, AlgorithmType, Allocation, Batch, BatchStatus, BlockOrder, ChildOrder,
    CreateBatchRequest, ExecutionAlgorithm, ExecutionQuality, Fill, GetBatchRequest,
    GetBatchTradesRequest, GetBlockOrderRequest, GetExecutionQualityRequest, GetQuotesRequest,
    ListAccountsRequest, ListAllocationsRequest, ListBlockOrdersRequest, ListChildOrdersRequest,
    ListFillsRequest, ListRunsRequest, Order, OrderAdjustment, OrderSide, OrderStatus, Position,
    Run, RunStatus, TransmitBatchRequest, UpsertAccountRequest, WatchBlockOrderRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, OrderSizing};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack};
use rust_decimal::Decimal;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?}"))
}

/// An optional decimal field: empty is `None`.
fn opt(text: &str) -> Option<Decimal> {
    (!text.is_empty()).then(|| d(text))
}

const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// How an account of the batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Only cash: buys of both assets.
    CashOnly,
    /// Too much SPY: sells SPY, buys TLT.
    SpyHeavy,
    /// Too much TLT: sells TLT, buys SPY.
    TltHeavy,
}

/// The population of a batch test.
#[derive(Debug, Clone, Copy)]
struct Population {
    accounts: usize,
    /// Every n-th account is on the whole-share Balanced (0: none).
    whole_share_every: usize,
}

/// Clients of the stack for one tenant, and the prices accounts are built at.
struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
    batches: BatchServiceClient<TracedChannel>,
    orders: OrderServiceClient<TracedChannel>,
    portfolios: PortfolioServiceClient<TracedChannel>,
    assignments: AssignmentServiceClient<TracedChannel>,
    prices: HashMap<String, Decimal>,
}

impl Desk {
    async fn new(stack: &TestStack, tenant: &str) -> Self {
        let firm = stack.tenant(tenant);
        let quotes = MarketDataServiceClient::new(stack.channel())
            .get_quotes(firm.request(GetQuotesRequest {
                symbols: vec!["SPY".to_owned(), "TLT".to_owned()],
            }))
            .await
            .expect("quotes")
            .into_inner()
            .quotes;
        Self {
            accounts: AccountServiceClient::new(stack.channel()),
            runs: RunServiceClient::new(stack.channel()),
            batches: BatchServiceClient::new(stack.channel()),
            orders: OrderServiceClient::new(stack.channel()),
            portfolios: PortfolioServiceClient::new(stack.channel()),
            assignments: AssignmentServiceClient::new(stack.channel()),
            prices: quotes.into_iter().map(|q| (q.symbol, d(&q.last))).collect(),
            firm,
        }
    }

    /// Balanced (5% cash, SPY 60, TLT 35) with the given order sizing.
    async fn balanced(&mut self, name: &str, sizing: OrderSizing) -> String {
        self.portfolios
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
            .expect("portfolio")
            .id
    }

    /// Shares of `symbol` worth about `value`: whole or to 6 decimals.
    fn shares(&self, symbol: &str, value: Decimal, whole: bool) -> Decimal {
        let exact = value / self.prices[symbol];
        if whole {
            exact.floor()
        } else {
            exact.round_dp(6)
        }
    }

    /// Opens account `index` of the population in its starting state and
    /// assigns it; returns its id.
    fn open(
        &self,
        index: usize,
        whole: bool,
        portfolio: &str,
    ) -> impl std::future::Future<Output = String> + use<> {
        let id = format!("acct-{index:05}");
        // Equity from $20,000 to about $120,000, odd cents included.
        let equity = Decimal::from(20_000 + (index * 7_919) % 100_000) + Decimal::new(37, 2);
        let start = match index % 3 {
            0 => Start::CashOnly,
            1 => Start::SpyHeavy,
            _ => Start::TltHeavy,
        };
        let (spy, tlt) = match start {
            Start::CashOnly => (Decimal::ZERO, Decimal::ZERO),
            Start::SpyHeavy => (d("0.75"), d("0.22")),
            Start::TltHeavy => (d("0.45"), d("0.50")),
        };
        let spy_shares = self.shares("SPY", equity * spy, whole);
        let tlt_shares = self.shares("TLT", equity * tlt, whole);
        let mut positions = Vec::new();
        for (symbol, quantity) in [("SPY", spy_shares), ("TLT", tlt_shares)] {
            if quantity > Decimal::ZERO {
                positions.push(Position {
                    symbol: symbol.to_owned(),
                    quantity: quantity.to_string(),
                    ..Position::default()
                });
            }
        }
        let invested = spy_shares * self.prices["SPY"] + tlt_shares * self.prices["TLT"];
        let cash = (equity - invested).round_dp(2);
        let firm = self.firm.clone();
        let mut accounts = self.accounts.clone();
        let mut assignments = self.assignments.clone();
        let portfolio = portfolio.to_owned();
        async move {
            accounts
                .upsert_account(firm.request(UpsertAccountRequest {
                    account_id: id.clone(),
                    cash: cash.to_string(),
                    positions,
                    ..UpsertAccountRequest::default()
                }))
                .await
                .expect("account");
            assignments
                .assign(firm.request(AssignRequest {
                    account_id: id.clone(),
                    portfolio_id: portfolio,
                    rebalancing_enabled: true,
                    approval_mode: ApprovalMode::Manual.into(),
                    ..AssignRequest::default()
                }))
                .await
                .expect("assign");
            id
        }
    }

    /// The accounts of a population, assigned to Balanced (or its whole-share
    /// twin), opened a few at a time.
    async fn populate(&mut self, population: Population) -> Vec<String> {
        let balanced = self.balanced("Balanced", OrderSizing::Notional).await;
        let whole = if population.whole_share_every > 0 {
            Some(
                self.balanced("Balanced (whole shares)", OrderSizing::WholeShares)
                    .await,
            )
        } else {
            None
        };
        let openings: Vec<_> = (0..population.accounts)
            .map(|index| {
                let on_whole = population.whole_share_every > 0
                    && index % population.whole_share_every == population.whole_share_every - 1;
                let portfolio = match (&whole, on_whole) {
                    (Some(whole), true) => whole.as_str(),
                    _ => balanced.as_str(),
                };
                self.open(index, on_whole, portfolio)
            })
            .collect();
        let mut ids: Vec<String> = futures::stream::iter(openings)
            .buffer_unordered(8)
            .collect()
            .await;
        ids.sort();
        ids
    }

    /// Every account of the tenant: cash and positions by id.
    async fn book(&mut self) -> Book {
        let mut book = Book::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .accounts
                .list_accounts(self.firm.request(ListAccountsRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListAccountsRequest::default()
                }))
                .await
                .expect("accounts")
                .into_inner();
            for account in page.accounts {
                let positions = account
                    .positions
                    .iter()
                    .map(|p| (p.symbol.clone(), d(&p.quantity)))
                    .collect();
                book.insert(account.id.clone(), (d(&account.cash), positions));
            }
            if page.next_page_token.is_empty() {
                return book;
            }
            page_token = page.next_page_token;
        }
    }

    async fn batch_runs(&mut self, batch_id: &str) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .runs
                .list_runs(self.firm.request(ListRunsRequest {
                    batch_id: batch_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListRunsRequest::default()
                }))
                .await
                .expect("runs")
                .into_inner();
            runs.extend(page.runs);
            if page.next_page_token.is_empty() {
                return runs;
            }
            page_token = page.next_page_token;
        }
    }

    async fn blocks(&mut self, batch_id: &str) -> Vec<BlockOrder> {
        let mut blocks = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .orders
                .list_block_orders(self.firm.request(ListBlockOrdersRequest {
                    batch_id: batch_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListBlockOrdersRequest::default()
                }))
                .await
                .expect("blocks")
                .into_inner();
            blocks.extend(page.block_orders);
            if page.next_page_token.is_empty() {
                return blocks;
            }
            page_token = page.next_page_token;
        }
    }

    async fn fills(&mut self, block_id: &str) -> Vec<Fill> {
        let mut fills = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .orders
                .list_fills(self.firm.request(ListFillsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                }))
                .await
                .expect("fills")
                .into_inner();
            fills.extend(page.fills);
            if page.next_page_token.is_empty() {
                return fills;
            }
            page_token = page.next_page_token;
        }
    }

    async fn children(&mut self, block_id: &str) -> Vec<ChildOrder> {
        let mut children = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .orders
                .list_child_orders(self.firm.request(ListChildOrdersRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                }))
                .await
                .expect("child orders")
                .into_inner();
            children.extend(page.child_orders);
            if page.next_page_token.is_empty() {
                return children;
            }
            page_token = page.next_page_token;
        }
    }

    async fn allocations(&mut self, block_id: &str) -> Vec<Allocation> {
        let mut allocations = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .orders
                .list_allocations(self.firm.request(ListAllocationsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListAllocationsRequest::default()
                }))
                .await
                .expect("allocations")
                .into_inner();
            allocations.extend(page.allocations);
            if page.next_page_token.is_empty() {
                return allocations;
            }
            page_token = page.next_page_token;
        }
    }
}

fn algorithm(kind: AlgorithmType, net: bool) -> ExecutionAlgorithm {
    ExecutionAlgorithm {
        r#type: kind.into(),
        horizon: Some(prost_types_duration(30 * 60)),
        net_across_accounts: net,
        ..ExecutionAlgorithm::default()
    }
}

fn prost_types_duration(seconds: i64) -> rebalancer_proto::prost_types::Duration {
    rebalancer_proto::prost_types::Duration { seconds, nanos: 0 }
}

fn side(order_side: i32) -> OrderSide {
    OrderSide::try_from(order_side).expect("side")
}

/// Every account's cash and positions by id.
type Book = BTreeMap<String, (Decimal, BTreeMap<String, Decimal>)>;

/// Proposes the batch of `ids`; returns it and its runs as planned.
async fn propose(desk: &mut Desk, ids: &[String]) -> (Batch, Vec<Run>) {
    let started = Instant::now();
    let batch = desk
        .batches
        .create_batch(desk.firm.request(CreateBatchRequest {
            idempotency_key: "batch-1".to_owned(),
            account_ids: ids.to_vec(),
            r#type: RunType::FullRebalance.into(),
            reason: "quarterly rebalance".to_owned(),
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
    assert_eq!(batch.status, i32::from(BatchStatus::Proposed));
    let planned = desk.batch_runs(&batch.id).await;
    assert_eq!(planned.len(), ids.len());
    assert!(
        planned
            .iter()
            .all(|r| r.status == i32::from(RunStatus::Proposed)),
        "every account has trades to make"
    );
    eprintln!(
        "batch of {} runs proposed in {:.1?}",
        planned.len(),
        started.elapsed()
    );
    (batch, planned)
}

/// Proposes the batch and transmits it with `algorithm` (its runs queued);
/// returns the batch id and the runs as planned.
async fn propose_and_transmit(
    desk: &mut Desk,
    ids: &[String],
    algorithm: ExecutionAlgorithm,
) -> (String, Vec<Run>) {
    let (batch, planned) = propose(desk, ids).await;
    let transmitted = desk
        .batches
        .transmit_batch(desk.firm.request(TransmitBatchRequest {
            batch_id: batch.id.clone(),
            etag: batch.etag.clone(),
            algorithm: Some(algorithm),
        }))
        .await
        .expect("transmit")
        .into_inner()
        .batch
        .expect("batch");
    assert_eq!(transmitted.status, i32::from(BatchStatus::InProgress));
    (batch.id, planned)
}

/// Drives the clock and the worker until the batch completes: one tick per
/// simulated minute (sells over 30 minutes, then buys over 30 more, and
/// some slack for the sweeps).
async fn work_until_done(stack: &TestStack, desk: &mut Desk, batch_id: &str) {
    let started = Instant::now();
    let mut minutes = 0;
    loop {
        stack.tick().await;
        let status = desk
            .batches
            .get_batch(desk.firm.request(GetBatchRequest {
                batch_id: batch_id.to_owned(),
            }))
            .await
            .expect("batch")
            .into_inner()
            .batch
            .expect("batch")
            .status;
        if status == i32::from(BatchStatus::Completed) {
            break;
        }
        if minutes >= 150 {
            let open: Vec<String> = desk
                .blocks(batch_id)
                .await
                .iter()
                .filter(|b| b.completed_at.is_none())
                .map(|b| {
                    format!(
                        "{} {:?} {} of {}",
                        b.symbol,
                        side(b.side),
                        b.filled_quantity,
                        b.quantity
                    )
                })
                .collect();
            panic!("batch still {status} after {minutes} minutes; open blocks: {open:?}");
        }
        stack.clock.advance(Duration::minutes(1));
        minutes += 1;
    }
    eprintln!(
        "batch worked over {minutes} simulated minutes in {:.1?}",
        started.elapsed()
    );
}

/// What a block's fills and allocations add up to.
#[derive(Debug, Default)]
struct BlockTotals {
    filled: Decimal,
    /// Shares matched internally (netting), part of `filled`.
    crossed: Decimal,
    /// Shares filled at the market.
    market: Decimal,
    /// Cash the crossed shares moved.
    crossed_cash: Decimal,
    /// The average price of the block's orders sized in shares (`false`)
    /// and in dollars (`true`).
    averages: HashMap<bool, Decimal>,
}

/// One block's fills, allocations and children, checked against each other.
async fn check_block(
    desk: &mut Desk,
    block: &BlockOrder,
    orders: &HashMap<String, Order>,
    allocated_to: &mut HashMap<String, Vec<Allocation>>,
) -> BlockTotals {
    let fills = desk.fills(&block.id).await;
    let allocations = desk.allocations(&block.id).await;
    let children = desk.children(&block.id).await;
    let mut by_fill: HashMap<&str, Decimal> = HashMap::new();
    // When the block ended, every order was moved to its average price by
    // one correction without shares; the corrections move no cash overall.
    let average_fill = format!("avg-{}", block.id);
    let corrections: Decimal = allocations
        .iter()
        .filter(|a| a.fill_id == average_fill)
        .map(|a| {
            assert_eq!(d(&a.quantity), Decimal::ZERO, "{a:?}");
            d(&a.amount)
        })
        .sum();
    assert_eq!(
        corrections,
        Decimal::ZERO,
        "corrections of block {}",
        block.id
    );
    for allocation in &allocations {
        let order = &orders[&allocation.order_id];
        assert_eq!(order.block_order_id, block.id, "{allocation:?}");
        assert_eq!(order.account_id, allocation.account_id);
        allocated_to
            .entry(allocation.order_id.clone())
            .or_default()
            .push(allocation.clone());
        if allocation.fill_id == average_fill {
            continue;
        }
        assert!(d(&allocation.quantity) > Decimal::ZERO, "{allocation:?}");
        *by_fill.entry(allocation.fill_id.as_str()).or_default() += d(&allocation.quantity);
    }
    let mut totals = BlockTotals::default();
    for fill in &fills {
        assert_eq!(fill.block_order_id, block.id);
        let quantity = d(&fill.quantity);
        assert_eq!(
            by_fill.remove(fill.id.as_str()),
            Some(quantity),
            "the allocations of fill {fill:?} sum exactly to it"
        );
        totals.filled += quantity;
        if fill.crossed {
            assert!(fill.child_order_id.is_empty(), "{fill:?}");
            let arrival = block.quality.as_ref().map(|q| q.arrival_price.clone());
            assert_eq!(
                Some(d(&fill.price)),
                arrival.as_deref().map(d),
                "crossed at the arrival price: {fill:?}"
            );
            totals.crossed += quantity;
            totals.crossed_cash += allocations
                .iter()
                .filter(|a| a.fill_id == fill.id)
                .map(|a| d(&a.amount))
                .sum::<Decimal>();
        } else {
            assert!(
                children.iter().any(|c| c.id == fill.child_order_id),
                "fill {fill:?} of an unknown child"
            );
        }
        for allocation in allocations.iter().filter(|a| a.fill_id == fill.id) {
            assert_eq!(
                allocation.price, fill.price,
                "allocated at the fill's price"
            );
        }
    }
    assert!(
        by_fill.is_empty(),
        "allocations without a fill: {by_fill:?}"
    );
    // One price for every account of the block sized alike: orders sized
    // in shares are moved to their average; orders sized in dollars keep
    // their dollars and share every fill pro rata, so one price too.
    if !fills.is_empty() {
        let mut per_order: HashMap<&str, (Decimal, Decimal)> = HashMap::new();
        for allocation in &allocations {
            let entry = per_order.entry(allocation.order_id.as_str()).or_default();
            entry.0 += d(&allocation.quantity);
            entry.1 += d(&allocation.amount);
        }
        for dollars in [false, true] {
            let group: Vec<(&str, (Decimal, Decimal))> = per_order
                .iter()
                .filter(|(order, _)| orders[**order].notional.is_empty() != dollars)
                .map(|(order, totals)| (*order, *totals))
                .collect();
            let shares: Decimal = group.iter().map(|(_, (q, _))| *q).sum();
            let cash: Decimal = group.iter().map(|(_, (_, a))| *a).sum();
            if shares.is_zero() {
                continue;
            }
            let average = cash / shares;
            totals.averages.insert(dollars, average);
            for (order, (quantity, amount)) in group {
                let at_average = average * quantity;
                assert!(
                    (amount - at_average).abs() < d("0.01"),
                    "order {order} of block {}: {amount} for {quantity}, {at_average} at the average",
                    block.id
                );
            }
        }
    }
    assert_eq!(d(&block.filled_quantity), totals.filled, "{block:?}");
    let market: Decimal = children.iter().map(|c| d(&c.filled_quantity)).sum();
    assert_eq!(market + totals.crossed, totals.filled, "{block:?}");
    totals.market = market;
    let mut client_ids: Vec<&str> = children
        .iter()
        .map(|c| c.client_order_id.as_str())
        .collect();
    client_ids.sort_unstable();
    client_ids.dedup();
    assert_eq!(
        client_ids.len(),
        children.len(),
        "client order ids are unique"
    );
    totals
}

/// The quality figures of a block are there and plausible.
fn check_quality(label: &str, quality: &ExecutionQuality, kind: AlgorithmType) {
    let arrival = opt(&quality.arrival_price).unwrap_or_else(|| panic!("{label}: arrival"));
    let average = opt(&quality.average_fill_price).unwrap_or_else(|| panic!("{label}: average"));
    let vwap = opt(&quality.interval_vwap).unwrap_or_else(|| panic!("{label}: vwap"));
    let twap = opt(&quality.interval_twap).unwrap_or_else(|| panic!("{label}: twap"));
    for price in [average, vwap, twap] {
        assert!(
            (price - arrival).abs() / arrival < d("0.03"),
            "{label}: {price} far from arrival {arrival}: {quality:?}"
        );
    }
    let benchmark = match kind {
        AlgorithmType::Twap => &quality.slippage_vs_twap_bps,
        _ => &quality.slippage_vs_vwap_bps,
    };
    let slippage = opt(benchmark).unwrap_or_else(|| panic!("{label}: slippage"));
    assert!(
        slippage.abs() < d("50"),
        "{label}: slippage {slippage} bp against its benchmark: {quality:?}"
    );
    assert!(opt(&quality.slippage_vs_arrival_bps).is_some(), "{label}");
    let participation =
        opt(&quality.participation_percent).unwrap_or_else(|| panic!("{label}: participation"));
    assert!(
        participation > Decimal::ZERO && participation <= d("25"),
        "{label}: participation {participation}%"
    );
    assert_eq!(
        opt(&quality.filled_percent),
        Some(d("100")),
        "{label}: {quality:?}"
    );
}

/// Everything the batch must satisfy once done.
async fn check_batch(
    desk: &mut Desk,
    batch_id: &str,
    planned: &[Run],
    before: &Book,
    kind: AlgorithmType,
    net: bool,
) {
    let runs = desk.batch_runs(batch_id).await;
    assert_eq!(runs.len(), planned.len());
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        let status = RunStatus::try_from(run.status).expect("status");
        *statuses.entry(status.as_str_name()).or_default() += 1;
    }
    let not_as_planned: Vec<&str> = runs
        .iter()
        .filter(|run| run.status != i32::from(RunStatus::CompletedSuccess))
        .map(|run| run.reason.as_str())
        .collect();
    assert_eq!(
        statuses.get("RUN_STATUS_COMPLETED_SUCCESS"),
        Some(&runs.len()),
        "every run completes as planned on liquid symbols: {statuses:?} {not_as_planned:?}"
    );
    let orders: HashMap<String, Order> = runs
        .iter()
        .flat_map(|r| r.orders.iter().cloned())
        .map(|o| (o.id.clone(), o))
        .collect();

    // One block per symbol and side, covering every order.
    let blocks = desk.blocks(batch_id).await;
    let mut keys: Vec<(String, i32)> = blocks.iter().map(|b| (b.symbol.clone(), b.side)).collect();
    keys.sort();
    let mut expected: Vec<(String, i32)> = orders
        .values()
        .map(|o| (o.symbol.clone(), o.side))
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(keys, expected, "exactly one block per symbol and side");
    for order in orders.values() {
        assert!(
            blocks.iter().any(|b| b.id == order.block_order_id),
            "{order:?} joined a block of the batch"
        );
    }

    let mut allocated_to: HashMap<String, Vec<Allocation>> = HashMap::new();
    let mut crossed_by_side: BTreeMap<(String, i32), Decimal> = BTreeMap::new();
    let mut crossed_cash: BTreeMap<(String, i32), Decimal> = BTreeMap::new();
    let mut market_by_side: BTreeMap<(String, i32), Decimal> = BTreeMap::new();
    let mut averages: HashMap<(&str, bool), Decimal> = HashMap::new();
    for block in &blocks {
        assert_eq!(block.status, i32::from(OrderStatus::Filled), "{block:?}");
        let totals = check_block(desk, block, &orders, &mut allocated_to).await;
        for (dollars, average) in &totals.averages {
            averages.insert((block.id.as_str(), *dollars), *average);
        }
        crossed_by_side.insert((block.symbol.clone(), block.side), totals.crossed);
        market_by_side.insert((block.symbol.clone(), block.side), totals.market);
        crossed_cash.insert((block.symbol.clone(), block.side), totals.crossed_cash);
        let quality = block.quality.as_ref().expect("quality");
        assert_eq!(
            d(&quality.crossed_quantity),
            totals.crossed,
            "the quality report shows the cross: {block:?}"
        );
        let market_share = totals.filled - totals.crossed;
        if market_share > Decimal::ZERO {
            check_quality(&format!("{} {}", block.symbol, block.side), quality, kind);
        }
    }
    if net {
        for symbol in ["SPY", "TLT"] {
            let buys = crossed_by_side
                .get(&(symbol.to_owned(), i32::from(OrderSide::Buy)))
                .copied()
                .unwrap_or_default();
            let sells = crossed_by_side
                .get(&(symbol.to_owned(), i32::from(OrderSide::Sell)))
                .copied()
                .unwrap_or_default();
            assert!(buys > Decimal::ZERO, "{symbol} crossed internally");
            assert_eq!(buys, sells, "{symbol}: crossed buys equal crossed sells");
            let paid = crossed_cash[&(symbol.to_owned(), i32::from(OrderSide::Buy))];
            let received = crossed_cash[&(symbol.to_owned(), i32::from(OrderSide::Sell))];
            assert_eq!(
                paid, received,
                "{symbol}: the cross moves the same dollars both ways"
            );
            // Only the net goes to the market: one side at most trades there.
            let at_market = [OrderSide::Buy, OrderSide::Sell]
                .into_iter()
                .filter(|s| {
                    market_by_side
                        .get(&(symbol.to_owned(), i32::from(*s)))
                        .is_some_and(|q| *q > Decimal::ZERO)
                })
                .count();
            assert!(at_market <= 1, "{symbol}: {market_by_side:?}");
        }
    } else {
        assert!(
            crossed_by_side.values().all(Decimal::is_zero),
            "nothing crosses without the option"
        );
    }

    // Every order filled as planned; every account where its plan said.
    let planned_orders: HashMap<&str, &Order> = planned
        .iter()
        .flat_map(|r| r.orders.iter())
        .map(|o| (o.id.as_str(), o))
        .collect();
    let after = desk.book().await;
    let mut worst_cash = Decimal::ZERO;
    for run in &runs {
        let (cash_before, positions_before) = &before[&run.account_id];
        let (cash_after, positions_after) = after[&run.account_id].clone();
        let mut cash = *cash_before;
        let mut plan_cash = *cash_before;
        let mut positions = positions_before.clone();
        for order in &run.orders {
            let plan = planned_orders[order.id.as_str()];
            assert_eq!(order.status, i32::from(OrderStatus::Filled), "{order:?}");
            let allocations = allocated_to.get(&order.id).cloned().unwrap_or_default();
            let quantity: Decimal = allocations.iter().map(|a| d(&a.quantity)).sum();
            // What its fills were worth at their own prices, and the cash it
            // moved: those fills at the block's average price.
            let value: Decimal = allocations
                .iter()
                .map(|a| d(&a.quantity) * d(&a.price))
                .sum();
            let amount: Decimal = allocations.iter().map(|a| d(&a.amount)).sum();
            assert_eq!(quantity, d(&order.filled_quantity), "{order:?}");
            let at_average =
                quantity * averages[&(order.block_order_id.as_str(), !order.notional.is_empty())];
            assert!(
                (amount - at_average).abs() < CENT,
                "{order:?}: cash {amount} for {at_average} at the block's average price"
            );
            let signed = |dollars: Decimal| match side(order.side) {
                OrderSide::Buy => -dollars,
                _ => dollars,
            };
            cash += signed(amount);
            *positions.entry(order.symbol.clone()).or_default() -= signed(quantity);
            match opt(&plan.notional) {
                Some(notional) => {
                    assert!(
                        (amount - notional).abs() <= CENT && value.round_dp(2) <= notional,
                        "{order:?}: {value} ({amount} moved) against ${notional} planned"
                    );
                    plan_cash += signed(notional);
                }
                None => {
                    assert_eq!(quantity, d(&plan.quantity), "{order:?}");
                    plan_cash += signed(amount);
                }
            }
        }
        positions.retain(|_, quantity| !quantity.is_zero());
        assert_eq!(
            cash_after, cash,
            "{}: cash moves by its allocations exactly",
            run.account_id
        );
        assert_eq!(&positions_after, &positions, "{}", run.account_id);
        let off_plan = (cash_after - plan_cash).abs();
        worst_cash = worst_cash.max(off_plan);
        assert!(
            off_plan <= CENT * Decimal::from(run.orders.len()),
            "{}: cash {cash_after} against {plan_cash} planned",
            run.account_id
        );
    }
    eprintln!("largest cash difference from the plan: {worst_cash}");

    // The batch's quality report.
    let report = desk
        .orders
        .get_execution_quality(desk.firm.request(GetExecutionQualityRequest {
            batch_id: batch_id.to_owned(),
            ..GetExecutionQualityRequest::default()
        }))
        .await
        .expect("quality")
        .into_inner();
    assert_eq!(
        report.block_count,
        i64::try_from(blocks.len()).expect("fits")
    );
    let summary = report.quality.expect("summary");
    assert_eq!(opt(&summary.filled_percent), Some(d("100")), "{summary:?}");
    assert!(
        opt(&summary.slippage_vs_arrival_bps).is_some(),
        "{summary:?}"
    );
    assert!(opt(&summary.slippage_vs_vwap_bps).is_some(), "{summary:?}");
    assert!(opt(&summary.slippage_vs_twap_bps).is_some(), "{summary:?}");
    assert!(
        opt(&summary.participation_percent).is_some_and(|p| p > Decimal::ZERO),
        "{summary:?}"
    );
    for block in &report.block_orders {
        let quality = block.quality.as_ref().expect("quality");
        eprintln!(
            "{} {:?}: {} of {} filled at {} (arrival {}, interval vwap {}, twap {}), \
             slippage {} bp vs vwap, {} bp vs twap, {} bp vs arrival, participation {}%",
            block.symbol,
            side(block.side),
            block.filled_quantity,
            block.quantity,
            quality.average_fill_price,
            quality.arrival_price,
            quality.interval_vwap,
            quality.interval_twap,
            quality.slippage_vs_vwap_bps,
            quality.slippage_vs_twap_bps,
            quality.slippage_vs_arrival_bps,
            quality.participation_percent,
        );
    }
}

async fn batch_of(backend: Backend, kind: AlgorithmType, population: Population, net: bool) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let started = Instant::now();
    let mut desk = Desk::new(&stack, "firm-a").await;
    let ids = desk.populate(population).await;
    let before = desk.book().await;
    assert_eq!(before.len(), ids.len());
    eprintln!("{} accounts opened in {:.1?}", ids.len(), started.elapsed());
    let (batch_id, planned) = propose_and_transmit(&mut desk, &ids, algorithm(kind, net)).await;
    work_until_done(&stack, &mut desk, &batch_id).await;
    let checked = Instant::now();
    check_batch(&mut desk, &batch_id, &planned, &before, kind, net).await;
    eprintln!(
        "checked in {:.1?}; whole test {:.1?}",
        checked.elapsed(),
        started.elapsed()
    );
    stack.stop().await;
}

/// Accounts per batch: 1,000 unless `BATCH_ACCOUNTS` says otherwise.
fn accounts() -> usize {
    std::env::var("BATCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// A thousand accounts, every fifth on the whole-share Balanced.
fn thousand() -> Population {
    Population {
        accounts: accounts(),
        whole_share_every: 5,
    }
}

#[tokio::test]
async fn vwap_batch_of_a_thousand_accounts_sqlite() {
    batch_of(Backend::Sqlite, AlgorithmType::Vwap, thousand(), false).await;
}

#[tokio::test]
async fn twap_batch_of_a_thousand_accounts_sqlite() {
    batch_of(Backend::Sqlite, AlgorithmType::Twap, thousand(), false).await;
}

#[tokio::test]
async fn vwap_batch_of_a_thousand_accounts_postgres() {
    batch_of(Backend::Postgres, AlgorithmType::Vwap, thousand(), false).await;
}

/// Netting across accounts: SPY and TLT sellers cross against buyers at the
/// arrival price, only the net goes to the market, everyone is filled.
#[tokio::test]
async fn netted_batch_crosses_buys_against_sells_sqlite() {
    let population = Population {
        accounts: accounts().min(300),
        whole_share_every: 5,
    };
    batch_of(Backend::Sqlite, AlgorithmType::Vwap, population, true).await;
}

/// A worker that claimed the queued runs and died before storing their
/// blocks leaves them in progress without blocks: the next tick (any
/// replica's) groups them again, and the batch completes as if nothing
/// happened.
#[tokio::test]
async fn runs_claimed_by_a_dead_worker_are_grouped_again_sqlite() {
    let Some(stack) = TestStack::start(Backend::Sqlite).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let population = Population {
        accounts: 30,
        whole_share_every: 5,
    };
    let ids = desk.populate(population).await;
    let before = desk.book().await;
    let (batch_id, planned) =
        propose_and_transmit(&mut desk, &ids, algorithm(AlgorithmType::Twap, false)).await;
    // The dead worker's part: the runs claimed, nothing else.
    let claimed = stack
        .execution
        .store()
        .claim_queued_runs(
            "dead-worker",
            stack.clock.now(),
            5000,
            false,
            Claimable::All,
        )
        .await
        .expect("claim");
    assert_eq!(claimed.len(), ids.len());
    assert!(desk.blocks(&batch_id).await.is_empty());
    work_until_done(&stack, &mut desk, &batch_id).await;
    check_batch(
        &mut desk,
        &batch_id,
        &planned,
        &before,
        AlgorithmType::Twap,
        false,
    )
    .await;
    stack.stop().await;
}

/// A batch's trade totals by symbol and side: quantity, notional, accounts.
type Totals = BTreeMap<(String, i32), (Decimal, Decimal, i64)>;

async fn ticker_totals(desk: &mut Desk, batch_id: &str) -> Totals {
    desk.batches
        .get_batch_trades(desk.firm.request(GetBatchTradesRequest {
            batch_id: batch_id.to_owned(),
            page_size: 1,
            page_token: String::new(),
        }))
        .await
        .expect("trades")
        .into_inner()
        .tickers
        .into_iter()
        .map(|t| {
            (
                (t.symbol, t.side),
                (d(&t.quantity), d(&t.notional), t.account_count),
            )
        })
        .collect()
}

/// `totals` without `order`: the order no longer trades.
fn without(mut totals: Totals, order: &Order) -> Totals {
    let key = (order.symbol.clone(), order.side);
    let total = totals.get_mut(&key).expect("the order's ticker");
    total.0 -= d(&order.quantity);
    total.1 -= d(&order.notional);
    total.2 -= 1;
    if total.2 == 0 {
        totals.remove(&key);
    }
    totals
}

async fn adjust(desk: &mut Desk, request: AdjustBatchRequest) -> Batch {
    desk.batches
        .adjust_batch(desk.firm.request(request))
        .await
        .expect("adjust")
        .into_inner()
        .batch
        .expect("batch")
}

/// GetBatchTrades totals only what will trade: an order an advisor excluded
/// leaves its ticker's total by exactly its quantity and notional, an
/// excluded account by exactly its orders; a raised notional moves the total
/// by the raise and reads as plain values in the run's adjustments.
async fn batch_trades_leave_out_what_was_excluded(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let ids = desk
        .populate(Population {
            accounts: 6,
            whole_share_every: 0,
        })
        .await;
    let (batch, planned) = propose(&mut desk, &ids).await;
    let mut expected = Totals::new();
    for order in planned.iter().flat_map(|r| r.orders.iter()) {
        let total = expected
            .entry((order.symbol.clone(), order.side))
            .or_default();
        total.0 += d(&order.quantity);
        total.1 += d(&order.notional);
        total.2 += 1;
    }
    assert_eq!(ticker_totals(&mut desk, &batch.id).await, expected);

    // One order excluded.
    let excluded = &planned[0].orders[0];
    let batch = adjust(
        &mut desk,
        AdjustBatchRequest {
            batch_id: batch.id.clone(),
            etag: batch.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: excluded.id.clone(),
                exclude: true,
                ..OrderAdjustment::default()
            }],
            ..AdjustBatchRequest::default()
        },
    )
    .await;
    expected = without(expected, excluded);
    assert_eq!(ticker_totals(&mut desk, &batch.id).await, expected);

    // One account excluded: its run is canceled, none of its orders trade.
    let account = &planned[1];
    let batch = adjust(
        &mut desk,
        AdjustBatchRequest {
            batch_id: batch.id.clone(),
            etag: batch.etag.clone(),
            exclude_account_ids: vec![account.account_id.clone()],
            ..AdjustBatchRequest::default()
        },
    )
    .await;
    for order in &account.orders {
        expected = without(expected, order);
    }
    assert_eq!(ticker_totals(&mut desk, &batch.id).await, expected);

    // One notional raised by $100.
    let raised = &planned[2].orders[0];
    let notional = d(&raised.notional) + Decimal::from(100);
    let batch = adjust(
        &mut desk,
        AdjustBatchRequest {
            batch_id: batch.id.clone(),
            etag: batch.etag.clone(),
            adjustments: vec![OrderAdjustment {
                order_id: raised.id.clone(),
                notional: notional.to_string(),
                ..OrderAdjustment::default()
            }],
            ..AdjustBatchRequest::default()
        },
    )
    .await;
    let edited_run = desk
        .batch_runs(&batch.id)
        .await
        .into_iter()
        .find(|r| r.id == planned[2].id)
        .expect("the edited run");
    let edited = edited_run
        .orders
        .iter()
        .find(|o| o.id == raised.id)
        .expect("the edited order");
    assert_eq!(d(&edited.notional), notional);
    let total = expected
        .get_mut(&(raised.symbol.clone(), raised.side))
        .expect("the order's ticker");
    total.0 += d(&edited.quantity) - d(&raised.quantity);
    total.1 += Decimal::from(100);
    assert_eq!(ticker_totals(&mut desk, &batch.id).await, expected);
    let edits: Vec<_> = edited_run
        .adjustments
        .iter()
        .filter(|a| a.action == "quantity_changed")
        .collect();
    let [adjustment] = edits.as_slice() else {
        panic!("one edit: {:?}", edited_run.adjustments);
    };
    assert!(
        adjustment
            .details
            .ends_with(&format!("notional {} -> {notional}", raised.notional)),
        "{adjustment:?}"
    );
    assert!(!adjustment.details.contains("Some("), "{adjustment:?}");
    stack.stop().await;
}

#[tokio::test]
async fn batch_trades_leave_out_what_was_excluded_sqlite() {
    batch_trades_leave_out_what_was_excluded(Backend::Sqlite).await;
}

#[tokio::test]
async fn batch_trades_leave_out_what_was_excluded_postgres() {
    batch_trades_leave_out_what_was_excluded(Backend::Postgres).await;
}

/// WatchBlockOrder carries, on each update a fill caused, that fill: a block
/// worked as TWAP over several slices, watched from its first update to its
/// end, shows every fill once, and they add up to what the block filled
/// meanwhile.
async fn watching_a_block_shows_its_fills(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let mut desk = Desk::new(&stack, "firm-a").await;
    let ids = desk
        .populate(Population {
            accounts: 6,
            whole_share_every: 0,
        })
        .await;
    let (batch_id, _) =
        propose_and_transmit(&mut desk, &ids, algorithm(AlgorithmType::Twap, false)).await;
    stack.tick().await;
    let blocks = desk.blocks(&batch_id).await;
    let block = blocks
        .iter()
        .find(|b| b.completed_at.is_none())
        .unwrap_or_else(|| panic!("a block still working: {blocks:?}"))
        .clone();
    let mut watch = desk
        .orders
        .watch_block_order(desk.firm.request(WatchBlockOrderRequest {
            block_order_id: block.id.clone(),
        }))
        .await
        .expect("watch")
        .into_inner();
    let watcher = tokio::spawn(async move {
        let mut updates = Vec::new();
        while let Some(update) = watch.next().await {
            updates.push(update.expect("update"));
        }
        updates
    });
    let block_now = |desk: &mut Desk| {
        let request = desk.firm.request(GetBlockOrderRequest {
            block_order_id: block.id.clone(),
        });
        let mut orders = desk.orders.clone();
        async move {
            orders
                .get_block_order(request)
                .await
                .expect("block")
                .into_inner()
                .block_order
                .expect("block")
        }
    };
    let mut minutes = 0;
    let finished = loop {
        let current = block_now(&mut desk).await;
        if current.completed_at.is_some() {
            break current;
        }
        assert!(minutes < 150, "block still working: {current:?}");
        stack.clock.advance(Duration::minutes(1));
        stack.tick().await;
        minutes += 1;
    };
    let updates = tokio::time::timeout(std::time::Duration::from_secs(30), watcher)
        .await
        .expect("the watch ends with the block")
        .expect("watcher");

    let first = updates.first().expect("a first update");
    assert!(first.fill.is_none(), "{first:?}");
    let filled_at_first = d(&first.block_order.as_ref().expect("block").filled_quantity);
    let fills: Vec<&Fill> = updates.iter().filter_map(|u| u.fill.as_ref()).collect();
    assert!(
        fills.len() >= 2,
        "several slices filled, yet {} of {} updates carry a fill",
        fills.len(),
        updates.len()
    );
    let mut fill_ids: Vec<&str> = fills.iter().map(|f| f.id.as_str()).collect();
    fill_ids.sort_unstable();
    fill_ids.dedup();
    assert_eq!(fill_ids.len(), fills.len(), "each fill once");
    assert!(fills.iter().all(|f| f.block_order_id == block.id));
    let seen: Decimal = fills.iter().map(|f| d(&f.quantity)).sum();
    assert_eq!(
        filled_at_first + seen,
        d(&finished.filled_quantity),
        "{fills:?}"
    );
    let last = updates.last().and_then(|u| u.block_order.as_ref());
    assert_eq!(
        last.map(|b| d(&b.filled_quantity)),
        Some(d(&finished.filled_quantity))
    );
    // Every update whose block filled more names the fill that did it.
    for pair in updates.windows(2) {
        let filled = |index: usize| {
            d(&pair[index]
                .block_order
                .as_ref()
                .expect("block")
                .filled_quantity)
        };
        if filled(1) > filled(0) {
            assert!(pair[1].fill.is_some(), "{:?}", pair[1]);
        }
    }
    // The fills seen are the block's fills but those it had at the first update.
    let recorded = desk.fills(&block.id).await;
    assert!(
        fill_ids
            .iter()
            .all(|id| recorded.iter().any(|f| f.id.as_str() == *id)),
        "{fills:?} against {recorded:?}"
    );
    let unseen: Decimal = recorded
        .iter()
        .filter(|f| !fill_ids.contains(&f.id.as_str()))
        .map(|f| d(&f.quantity))
        .sum();
    assert_eq!(unseen, filled_at_first);
    stack.stop().await;
}

#[tokio::test]
async fn watching_a_block_shows_its_fills_sqlite() {
    watching_a_block_shows_its_fills(Backend::Sqlite).await;
}

#[tokio::test]
async fn watching_a_block_shows_its_fills_postgres() {
    watching_a_block_shows_its_fills(Backend::Postgres).await;
}

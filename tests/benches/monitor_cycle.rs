#![allow(
    clippy::float_arithmetic,
    reason = "timings and rates in seconds are reports, not money"
)]

//! A monitor cycle over N accounts × 10 positions on PostgreSQL, end to end
//! through the gRPC streams (Target's `StreamAssignments`, Execution's
//! `StreamHoldings`, quotes, evaluation, evaluations written, runs opened for
//! the accounts out of tolerance), compared in the same run with a raw scan
//! of the same holdings rows (`COPY (SELECT ...) TO STDOUT`).
//!
//! ```text
//! cargo bench -p rebalancer-tests --bench monitor_cycle               # 1,000,000 accounts
//! cargo bench -p rebalancer-tests --bench monitor_cycle -- --smoke    # 2,000 (or BENCH_SMOKE=1)
//! BENCH_ACCOUNTS=200000 cargo bench -p rebalancer-tests --bench monitor_cycle
//! ```
//!
//! The accounts and assignments are loaded with SQL (through the API it would
//! take hours); prices come from the simulated market through the API, so
//! accounts sit on their target except one in a thousand, tilted out of its
//! bands. The first cycle has no shard boundaries yet and runs as one shard;
//! the second is split and worked two shards at a time: both are printed.
//! Without `--bench` (`cargo test --all-targets`) it runs at the smoke size.

use std::time::{Duration, Instant};

use anyhow::Context;
use rebalancer_kit::Clock;
use rebalancer_proto::client::CallContext;
use rebalancer_proto::common::{
    ConditionSubType, ConditionType, RebalanceCondition, Weight, WeightType,
};
use rebalancer_proto::execution::GetQuotesRequest;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{CycleState, EvaluateNowRequest, GetCycleRequest};
use rebalancer_proto::target::CreatePortfolioRequest;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_tests::bench::psql;
use rebalancer_tests::{Backend, StackOptions, TestStack};
use rust_decimal::Decimal;

/// The allocator of the `rebalancer` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";
const SYMBOLS: [&str; 10] = [
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "SPY", "TLT", "IEF", "GLD",
];

fn accounts_from_environment() -> u64 {
    if let Some(accounts) = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return accounts;
    }
    let arguments: Vec<String> = std::env::args().collect();
    let smoke = arguments.iter().any(|a| a == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1")
        || !arguments.iter().any(|a| a == "--bench");
    if smoke { 2_000 } else { 1_000_000 }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let accounts = accounts_from_environment();
    let shard_size = i64::try_from((accounts / 8).max(500)).unwrap_or(i64::MAX);
    let Some(stack) = TestStack::start_with(
        Backend::Postgres,
        StackOptions {
            monitor_shard_size: shard_size,
            ..StackOptions::default()
        },
    )
    .await
    else {
        anyhow::bail!("PostgreSQL is needed for this benchmark");
    };
    let [target_url, _, execution_url] = stack.postgres_urls().context("PostgreSQL urls")?;
    let call = CallContext::tenant(TENANT);

    // One model: 5% cash, ten assets at 9.5%, 2-point absolute bands.
    let mut weights = vec![Weight {
        r#type: WeightType::Cash.into(),
        percent: "5".to_owned(),
        ..Weight::default()
    }];
    weights.extend(SYMBOLS.iter().map(|s| Weight {
        r#type: WeightType::Asset.into(),
        symbol: (*s).to_owned(),
        percent: "9.5".to_owned(),
        ..Weight::default()
    }));
    let portfolio = PortfolioServiceClient::new(stack.channel())
        .create_portfolio(call.request(CreatePortfolioRequest {
            name: "Ten".to_owned(),
            weights,
            rebalance_conditions: vec![RebalanceCondition {
                r#type: ConditionType::DriftBand.into(),
                sub_type: ConditionSubType::Absolute.into(),
                percent: "2".to_owned(),
                ..RebalanceCondition::default()
            }],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .context("portfolio")?
        .into_inner()
        .portfolio
        .context("portfolio")?;
    anyhow::ensure!(
        portfolio
            .id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-'),
        "portfolio id"
    );
    let quotes = MarketDataServiceClient::new(stack.channel())
        .get_quotes(call.request(GetQuotesRequest {
            symbols: SYMBOLS.iter().map(|s| (*s).to_owned()).collect(),
        }))
        .await
        .context("quotes")?
        .into_inner()
        .quotes;
    let prices: Vec<String> = quotes
        .iter()
        .map(|q| {
            let price: Decimal = q.last.parse().unwrap_or_default();
            format!("('{}', {price})", q.symbol)
        })
        .collect();

    let started = Instant::now();
    let account = "'acct-' || lpad(n::text, 7, '0')";
    // Times on the stack's simulated clock, not the database's.
    let now = format!("TIMESTAMPTZ '{}'", stack.clock.now().to_rfc3339());
    psql(
        &execution_url,
        &[
            &format!(
                "INSERT INTO accounts (tenant_id, id, status, cash, restrictions, revision, created_at, updated_at, \
                 last_rebalanced_at) SELECT '{TENANT}', {account}, 'active', 5000, '', 1, {now}, {now}, \
                 {now} - interval '30 days' FROM generate_series(1, {accounts}) AS n"
            ),
            &format!(
                "INSERT INTO positions (tenant_id, account_id, symbol, quantity, average_cost) \
                 SELECT '{TENANT}', {account}, p.symbol, \
                 round(CASE WHEN n % 1000 = 0 AND p.symbol = 'AAPL' THEN 19000 ELSE 9500 END / p.price, 4), p.price \
                 FROM generate_series(1, {accounts}) AS n CROSS JOIN (VALUES {}) AS p(symbol, price)",
                prices.join(", ")
            ),
            "VACUUM ANALYZE accounts",
            "VACUUM ANALYZE positions",
        ],
    )
    .await
    .context("load holdings")?;
    psql(
        &target_url,
        &[
            &format!(
                "INSERT INTO assignments (tenant_id, id, account_id, portfolio_id, rebalancing_enabled, \
                 approval_mode, status, revision, created_at, updated_at, target_changed_at) \
                 SELECT '{TENANT}', gen_random_uuid()::text, {account}, '{}', true, 'manual', 'active', 1, \
                 {now}, {now}, {now} - interval '100 days' FROM generate_series(1, {accounts}) AS n",
                portfolio.id
            ),
            "VACUUM ANALYZE assignments",
            // The load's dirty pages written now, not during the timed cycles.
            "CHECKPOINT",
        ],
    )
    .await
    .context("load assignments")?;
    println!(
        "monitor_cycle: accounts={accounts} positions_per_account=10 load_seconds={:.1}",
        started.elapsed().as_secs_f64()
    );

    // The raw scan: every holdings row the cycle reads, out of PostgreSQL.
    let scan = Instant::now();
    let scanned = psql(
        &execution_url,
        &[&format!(
            "\\copy (SELECT a.id, a.cash, a.last_rebalanced_at, p.symbol, p.quantity FROM accounts a \
             JOIN positions p ON p.tenant_id = a.tenant_id AND p.account_id = a.id \
             WHERE a.tenant_id = '{TENANT}' ORDER BY a.id, p.symbol) TO STDOUT"
        )],
    )
    .await
    .context("raw scan")?;
    let raw_seconds = scan.elapsed().as_secs_f64();
    let rows = scanned.lines().count();
    drop(scanned);
    println!("monitor_cycle: raw_scan rows={rows} seconds={raw_seconds:.2}");

    let mut monitor = MonitorServiceClient::new(stack.channel());
    let mut seconds = Vec::new();
    for round in 1..=2 {
        let cycle = monitor
            .evaluate_now(call.request(EvaluateNowRequest {
                idempotency_key: format!("bench-cycle-{round}"),
                ..EvaluateNowRequest::default()
            }))
            .await
            .context("evaluate now")?
            .into_inner()
            .cycle
            .context("cycle")?;
        let timer = Instant::now();
        while stack.monitor_tick().await > 0 {}
        let elapsed = timer.elapsed().as_secs_f64();
        let done = monitor
            .get_cycle(call.request(GetCycleRequest { cycle_id: cycle.id }))
            .await
            .context("get cycle")?
            .into_inner()
            .cycle
            .context("cycle")?;
        anyhow::ensure!(
            done.state == i32::from(CycleState::Completed),
            "cycle not completed: {done:?}"
        );
        anyhow::ensure!(
            done.accounts_evaluated == i64::try_from(accounts)?,
            "evaluated {}",
            done.accounts_evaluated
        );
        let per_second = f64::from(u32::try_from(accounts).unwrap_or(u32::MAX)) / elapsed.max(1e-9);
        println!(
            "monitor_cycle: round={round} shards={} seconds={elapsed:.2} accounts_per_second={per_second:.0} \
             runs_created={} errors={} statuses={:?}",
            done.shards_total,
            done.runs_created,
            done.errors,
            done.status_counts
                .iter()
                .map(|c| (c.status, c.count))
                .collect::<Vec<_>>()
        );
        if round == 1 {
            let sample = monitor
                .get_evaluation(
                    call.request(rebalancer_proto::monitor::GetEvaluationRequest {
                        account_id: "acct-0001000".to_owned(),
                        cycle_id: String::new(),
                    }),
                )
                .await
                .context("evaluation")?
                .into_inner()
                .evaluation
                .context("evaluation")?;
            println!(
                "monitor_cycle: sample acct-0001000 status={} reason={:?} run_note={:?} run_id={:?}",
                sample.status, sample.reason, sample.run_note, sample.run_id
            );
        }
        seconds.push(elapsed);
        // The runs of round 1 are open; round 2 must not open them again.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cycle = seconds.last().copied().unwrap_or_default();
    println!(
        "monitor_cycle: cycle_seconds={cycle:.2} raw_scan_seconds={raw_seconds:.2} ratio={:.2} (target <= 1.5 and < 60 s)",
        cycle / raw_seconds.max(1e-9)
    );
    stack.stop().await;
    Ok(())
}

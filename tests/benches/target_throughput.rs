//! Throughput of the Target service end to end over gRPC, on PostgreSQL:
//!
//! - `StreamAssignments` of N assignments (loaded in bulk with SQL, spread
//!   over a 3-asset model, a 2-asset model and a sleeve target of both), at
//!   1000 and 5000 assignments per message; every assignment is counted and
//!   its resolved weights checked to sum to 100;
//! - `Assign` of new accounts by 64 concurrent clients (over a few HTTP/2
//!   connections), each with an idempotency key as production clients send.
//!
//! ```text
//! cargo bench -p rebalancer-tests --bench target_throughput               # 1,000,000 assignments, 20,000 assigns
//! cargo bench -p rebalancer-tests --bench target_throughput -- --smoke    # 10,000 and 500 (or BENCH_SMOKE=1)
//! ```
//!
//! Without cargo bench's `--bench` argument (`cargo test --all-targets`) it
//! runs at the smoke size, as a check that it still works. Needs PostgreSQL
//! as the tests do, and `psql` for the bulk load. Prints one line per figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{
    ConditionSubType, ConditionType, RebalanceCondition, Weight, WeightType,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{
    AssignRequest, CreatePortfolioRequest, GetPortfolioRequest, StreamAssignmentsRequest,
};
use rebalancer_tests::bench::TargetBench;
use rust_decimal::Decimal;
use tokio::task::JoinSet;

/// The allocator of the `rebalancer` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";
/// Concurrent `Assign` callers, and the connections they share.
const CLIENTS: usize = 64;
const CHANNELS: usize = 4;
/// Large enough for 5000 resolved assignments per message.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How much work one run does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Assignments loaded, then streamed.
    assignments: u64,
    /// New accounts assigned through the API.
    creates: usize,
}

impl Sizes {
    const FULL: Self = Self {
        assignments: 1_000_000,
        creates: 20_000,
    };
    const SMOKE: Self = Self {
        assignments: 10_000,
        creates: 500,
    };

    fn from_environment() -> Self {
        let arguments: Vec<String> = std::env::args().collect();
        let smoke = arguments.iter().any(|argument| argument == "--smoke")
            || std::env::var("BENCH_SMOKE").is_ok_and(|value| value == "1")
            || !arguments.iter().any(|argument| argument == "--bench");
        if smoke { Self::SMOKE } else { Self::FULL }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = Sizes::from_environment();
    let Some(bench) = TargetBench::start().await? else {
        return Ok(());
    };
    let context = CallContext::tenant(TENANT);
    let portfolios = create_portfolios(&bench, &context).await?;

    let started = Instant::now();
    load_assignments(&bench, sizes.assignments, &portfolios).await?;
    println!(
        "load_assignments: n={} seconds={}",
        sizes.assignments,
        seconds(started.elapsed())
    );

    for batch in [1000, 5000] {
        let elapsed = stream_assignments(&bench, &context, batch, sizes.assignments).await?;
        println!(
            "stream_assignments: n={} batch={batch} seconds={} per_second={}",
            sizes.assignments,
            seconds(elapsed),
            per_second(sizes.assignments, elapsed)
        );
    }

    let (elapsed, latencies) =
        assign_concurrently(&bench, &context, &portfolios, sizes.creates).await?;
    println!(
        "assign_concurrent: clients={CLIENTS} channels={CHANNELS} n={} seconds={} per_second={} p50_ms={} p99_ms={}",
        sizes.creates,
        seconds(elapsed),
        per_second(u64::try_from(sizes.creates)?, elapsed),
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99))
    );
    bench.stop().await
}

fn asset(symbol: &str, percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Asset.into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        ..Weight::default()
    }
}

fn sleeve(portfolio_id: &str, percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Portfolio.into(),
        portfolio_id: portfolio_id.to_owned(),
        percent: percent.to_owned(),
        ..Weight::default()
    }
}

fn portfolio(name: &str, weights: Vec<Weight>) -> CreatePortfolioRequest {
    CreatePortfolioRequest {
        name: name.to_owned(),
        weights,
        rebalance_conditions: vec![RebalanceCondition {
            r#type: ConditionType::DriftBand.into(),
            sub_type: ConditionSubType::Absolute.into(),
            percent: "5".to_owned(),
            ..RebalanceCondition::default()
        }],
        cooldown_days: 7,
        ..CreatePortfolioRequest::default()
    }
}

/// A 3-asset model, a 2-asset model and a 60/40 sleeve target of both,
/// created through the API; their ids.
async fn create_portfolios(
    bench: &TargetBench,
    context: &CallContext,
) -> anyhow::Result<Vec<String>> {
    let mut client = PortfolioServiceClient::new(bench.channel()?);
    let mut create = async |request: CreatePortfolioRequest| -> anyhow::Result<String> {
        let created = client
            .create_portfolio(context.request(request))
            .await
            .context("create portfolio")?
            .into_inner()
            .portfolio
            .context("created portfolio")?;
        Ok(created.id)
    };
    let core = create(portfolio(
        "Core",
        vec![asset("VTI", "40"), asset("VEA", "30"), asset("AGG", "30")],
    ))
    .await?;
    let income = create(portfolio(
        "Income",
        vec![asset("AGG", "70"), asset("TLT", "30")],
    ))
    .await?;
    let growth = create(portfolio(
        "Growth sleeves",
        vec![sleeve(&core, "60"), sleeve(&income, "40")],
    ))
    .await?;
    Ok(vec![core, income, growth])
}

/// Inserts `count` active assignments (`acct-0000001`, ...) round-robin over
/// `portfolios` in one statement, then vacuums and analyzes the table so the
/// stream reads it in its steady state.
async fn load_assignments(
    bench: &TargetBench,
    count: u64,
    portfolios: &[String],
) -> anyhow::Result<()> {
    anyhow::ensure!(count < 10_000_000, "account ids have 7 digits");
    let mut literals = Vec::with_capacity(portfolios.len());
    for id in portfolios {
        // Ids are UUIDs made by the service; check before writing them into SQL.
        anyhow::ensure!(
            id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "unexpected portfolio id {id:?}"
        );
        literals.push(format!("'{id}'"));
    }
    let insert = format!(
        "INSERT INTO assignments (tenant_id, id, account_id, portfolio_id, rebalancing_enabled, \
         approval_mode, status, revision, created_at, updated_at, target_changed_at) \
         SELECT '{TENANT}', gen_random_uuid()::text, 'acct-' || lpad(n::text, 7, '0'), \
         (ARRAY[{portfolios}])[1 + n % {modulus}], true, 'auto', 'active', 1, now(), now(), now() \
         FROM generate_series(1, {count}) AS n",
        portfolios = literals.join(", "),
        modulus = portfolios.len(),
    );
    bench
        .run_sql(&[&insert, "VACUUM ANALYZE assignments"])
        .await
        .context("load assignments")
}

/// Streams every assignment of the tenant, checking each; the time it took.
async fn stream_assignments(
    bench: &TargetBench,
    context: &CallContext,
    batch_size: i32,
    expected: u64,
) -> anyhow::Result<Duration> {
    let mut client =
        AssignmentServiceClient::new(bench.channel()?).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let started = Instant::now();
    let mut stream = client
        .stream_assignments(context.request(StreamAssignmentsRequest {
            batch_size,
            ..StreamAssignmentsRequest::default()
        }))
        .await
        .context("open stream")?
        .into_inner();
    let mut count: u64 = 0;
    let mut last_account = String::new();
    while let Some(message) = stream.message().await.context("stream message")? {
        for assignment in &message.assignments {
            anyhow::ensure!(
                assignment.account_id > last_account,
                "{} streamed after {last_account}",
                assignment.account_id
            );
            let mut sum = Decimal::ZERO;
            for weight in &assignment.weights {
                sum += weight
                    .percent
                    .parse::<Decimal>()
                    .with_context(|| format!("percent {:?}", weight.percent))?;
            }
            anyhow::ensure!(
                sum == Decimal::ONE_HUNDRED,
                "weights of {} sum to {sum}",
                assignment.account_id
            );
            last_account.clone_from(&assignment.account_id);
            count += 1;
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        count == expected,
        "streamed {count} assignments, expected {expected}"
    );
    Ok(elapsed)
}

/// Assigns `count` new accounts from [`CLIENTS`] concurrent callers; the
/// total time and every call's latency, sorted.
async fn assign_concurrently(
    bench: &TargetBench,
    context: &CallContext,
    portfolios: &[String],
    count: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        let channel = bench.channel()?;
        warm_up(channel.clone(), context, &portfolios[0]).await?;
        channels.push(channel);
    }
    let portfolios: Arc<[String]> = portfolios.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..CLIENTS {
        let mut client = AssignmentServiceClient::new(channels[caller % CHANNELS].clone());
        let (context, portfolios, next) = (context.clone(), portfolios.clone(), next.clone());
        callers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(latencies);
                }
                let request = AssignRequest {
                    idempotency_key: format!("bench-assign-{index}"),
                    account_id: format!("new-{index:07}"),
                    portfolio_id: portfolios[index % portfolios.len()].clone(),
                    rebalancing_enabled: true,
                    ..AssignRequest::default()
                };
                let sent = Instant::now();
                client
                    .assign(context.request(request))
                    .await
                    .with_context(|| format!("assign new-{index:07}"))?;
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(joined) = callers.join_next().await {
        latencies.extend(joined??);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        latencies.len() == count,
        "{} of {count} assigns",
        latencies.len()
    );
    latencies.sort_unstable();
    Ok((elapsed, latencies))
}

/// Opens the channel's connection before the clock starts.
async fn warm_up(
    channel: TracedChannel,
    context: &CallContext,
    portfolio_id: &str,
) -> anyhow::Result<()> {
    PortfolioServiceClient::new(channel)
        .get_portfolio(context.request(GetPortfolioRequest {
            portfolio_id: portfolio_id.to_owned(),
            version: 0,
        }))
        .await
        .context("warm up")?;
    Ok(())
}

/// The nearest-rank percentile of sorted latencies.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn per_second(count: u64, elapsed: Duration) -> u128 {
    u128::from(count) * 1_000_000 / elapsed.as_micros().max(1)
}

fn seconds(elapsed: Duration) -> String {
    format!("{}.{:03}", elapsed.as_secs(), elapsed.subsec_millis())
}

fn millis(elapsed: Duration) -> String {
    let micros = elapsed.as_micros();
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

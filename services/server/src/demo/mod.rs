//! `rebalancer dev --demo`: seeds a demo tenant, then runs simulated trading
//! days on the fast clock — each day's monitor cycle, its runs (automatic or
//! left for approval), their execution as VWAP blocks — with a progress line
//! and a summary table per day. Everything goes through the gRPC API of the
//! running stack, as an operator's tools would.

mod report;
mod seed;

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, NaiveTime, Utc};
use clap::Args;
use rebalancer_domain::calendar::{
    at_new_york, exchange_date, is_trading_day, next_trading_day_on_or_after,
};
use rebalancer_kit::{Clock, SimClock};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{ListRunsRequest, Run, RunStatus};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{Cycle, CycleState, CycleTrigger, ListCyclesRequest};

pub use report::DaySummary;

/// Options of the demo.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Seed a demo tenant and run simulated trading days, then keep serving.
    #[arg(long)]
    pub demo: bool,
    /// Accounts of the demo tenant.
    #[arg(long, default_value_t = 2000)]
    pub demo_accounts: usize,
    /// Trading days to simulate.
    #[arg(long, default_value_t = 3)]
    pub demo_days: usize,
    /// Simulated seconds per real second while the demo runs.
    #[arg(long, default_value_t = 60)]
    pub demo_speed: u32,
    /// Seed of the demo's accounts.
    #[arg(long, default_value_t = 7)]
    pub demo_seed: u64,
}

/// Where the demo's simulated time starts: Monday 2 March 2026, 09:00 New York.
#[must_use]
pub fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T14:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

/// Real time between polls of the stack.
const POLL: Duration = Duration::from_millis(200);
/// Longest real wait for a day's cycle or executions.
const DAY_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the demo against the stack at `channel`.
///
/// # Errors
/// When a call fails or a day does not finish in time.
pub async fn run(
    args: &DemoArgs,
    channel: TracedChannel,
    clock: SimClock,
    tenant: &str,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let call = CallContext::tenant(tenant);
    let mut rng = seed::Rng::new(args.demo_seed);
    let started = Instant::now();
    println!(
        "seeding tenant {tenant:?}: 4 model portfolios and {} accounts ...",
        args.demo_accounts
    );
    let seeded = seed::seed(&channel, &call, args.demo_accounts, &mut rng).await?;
    println!(
        "seeded in {:.1} s: {} accounts, {} assigned; portfolios {}",
        started.elapsed().as_secs_f64(),
        seeded.accounts,
        seeded.assigned,
        seeded
            .portfolios
            .iter()
            .map(|(name, id)| format!("{name} ({id})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    clock.set_speed(args.demo_speed);
    let run_at = NaiveTime::from_hms_opt(9, 44, 50).unwrap_or(NaiveTime::MIN);
    let mut date = exchange_date(clock.now());
    for day in 1..=args.demo_days {
        date = next_trading_day_on_or_after(date);
        if let Some(moment) = at_new_york(date, run_at)
            && moment > clock.now()
        {
            clock.set(moment);
        }
        let summary = run_day(&channel, &call, &clock, day, args.demo_days, date).await?;
        print!("\r{:100}\r", "");
        println!("{summary}");
        date = date.succ_opt().unwrap_or(date);
        while !is_trading_day(date) {
            date = date.succ_opt().unwrap_or(date);
        }
    }
    println!(
        "demo done in {:.0} s; still serving. Explore with grpcurl, for example:\n  \
         grpcurl -plaintext {address} rebalancer.monitor.v1.MonitorService/ListCycles\n  \
         grpcurl -plaintext -d '{{\"statuses\":[\"EVALUATION_STATUS_OUT_OF_TOLERANCE\"]}}' {address} rebalancer.monitor.v1.MonitorService/ListFlagged\n  \
         grpcurl -plaintext -d '{{\"account_id\":\"demo-000006\"}}' {address} rebalancer.monitor.v1.MonitorService/GetEvaluation",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One trading day: waits for the scheduled cycle, then for the runs it
/// queued to finish, showing progress; returns the day's summary.
async fn run_day(
    channel: &TracedChannel,
    call: &CallContext,
    clock: &SimClock,
    day: usize,
    days: usize,
    date: chrono::NaiveDate,
) -> anyhow::Result<DaySummary> {
    let mut monitor = MonitorServiceClient::new(channel.clone());
    let started = Instant::now();
    let cycle = loop {
        anyhow::ensure!(
            started.elapsed() < DAY_TIMEOUT,
            "the cycle of {date} did not complete"
        );
        let cycles = monitor
            .list_cycles(call.request(ListCyclesRequest {
                page_size: 10,
                page_token: String::new(),
            }))
            .await
            .context("list cycles")?
            .into_inner()
            .cycles;
        let today = cycles.into_iter().find(|c| {
            c.trading_date == date.to_string() && c.trigger == i32::from(CycleTrigger::Scheduled)
        });
        let state = today
            .as_ref()
            .map_or("waiting for 09:45 New York", |c| state_name(c));
        progress(day, days, clock, &format!("monitor cycle: {state}"));
        if let Some(cycle) = today.filter(|c| c.state == i32::from(CycleState::Completed)) {
            break cycle;
        }
        tokio::time::sleep(POLL).await;
    };
    let cycle_seconds = started.elapsed().as_secs_f64();
    let since = cycle.created_at;
    let runs = loop {
        anyhow::ensure!(
            started.elapsed() < DAY_TIMEOUT,
            "the runs of {date} did not finish"
        );
        let runs = runs_since(channel, call, since).await?;
        let working = runs.iter().filter(|r| !settled(r)).count();
        progress(
            day,
            days,
            clock,
            &format!(
                "executing: {}/{} runs settled",
                runs.len() - working,
                runs.len()
            ),
        );
        if working == 0 {
            break runs;
        }
        tokio::time::sleep(POLL).await;
    };
    report::summarize(
        channel,
        call,
        date,
        &cycle,
        &runs,
        cycle_seconds,
        started.elapsed().as_secs_f64(),
    )
    .await
}

fn state_name(cycle: &Cycle) -> &'static str {
    match CycleState::try_from(cycle.state) {
        Ok(CycleState::Pending) => "pending",
        Ok(CycleState::Running) => "running",
        Ok(CycleState::Completed) => "completed",
        Ok(CycleState::Failed) => "failed",
        _ => "unknown",
    }
}

/// Final, or waiting for an advisor.
fn settled(run: &Run) -> bool {
    matches!(
        RunStatus::try_from(run.status),
        Ok(RunStatus::Proposed
            | RunStatus::CompletedSuccess
            | RunStatus::CompletedAdjusted
            | RunStatus::Error
            | RunStatus::Timeout
            | RunStatus::Canceled
            | RunStatus::CanceledMidRun)
    )
}

fn progress(day: usize, days: usize, clock: &SimClock, what: &str) {
    let now = clock.now().with_timezone(&chrono_tz::America::New_York);
    print!(
        "\rday {day}/{days}  {}  {:<60}",
        now.format("%a %Y-%m-%d %H:%M:%S NY"),
        what
    );
    let _ = std::io::stdout().flush();
}

/// Runs created since `since`, every page.
async fn runs_since(
    channel: &TracedChannel,
    call: &CallContext,
    since: Option<prost_types::Timestamp>,
) -> anyhow::Result<Vec<Run>> {
    let mut client = RunServiceClient::new(channel.clone());
    let mut runs = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_runs(call.request(ListRunsRequest {
                page_size: 1000,
                page_token: token,
                created_after: since,
                ..ListRunsRequest::default()
            }))
            .await
            .context("list runs")?
            .into_inner();
        runs.extend(page.runs);
        if page.next_page_token.is_empty() {
            return Ok(runs);
        }
        token = page.next_page_token;
    }
}

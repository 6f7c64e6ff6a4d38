//! `rebalancer dev`: the whole system in one process, on one port, on SQLite
//! files in a data directory, with no other set-up. Services still talk to
//! each other through their gRPC contracts, over the same port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rebalancer_execution::market::SimMarketData;
use rebalancer_execution::{ExecutionDeps, ExecutionService};
use rebalancer_kit::config::ServerOptions;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::{Clock, SimClock};
use rebalancer_monitor::{MonitorDeps, MonitorService};
use rebalancer_proto::client::{ClientOptions, lazy_channel};
use rebalancer_target::{TargetDeps, TargetService};
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory of the SQLite files (created if missing).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Seed of the simulated market's prices.
    #[arg(long, default_value_t = 42)]
    pub market_seed: u64,
    #[command(flatten)]
    pub demo: crate::demo::DemoArgs,
    #[command(flatten)]
    pub clock: crate::ClockOptions,
    #[command(flatten)]
    pub monitor: crate::MonitorOptions,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Tenant assumed for requests without `x-tenant-id` in the dev stack.
pub const DEV_TENANT: &str = "default";

pub async fn run(mut args: DevArgs) -> anyhow::Result<()> {
    if args.server.default_tenant.is_none() {
        args.server.default_tenant = Some(DEV_TENANT.to_owned());
    }
    args.server.validate()?;
    if args.demo.demo {
        // The demo starts from empty databases of its own, on a fixed date,
        // its runs worked as VWAP blocks unless told otherwise.
        args.data_dir = args.data_dir.join("demo");
        if args.data_dir.exists() {
            std::fs::remove_dir_all(&args.data_dir)?;
        }
        if args.clock.sim_start.is_none() {
            args.clock.sim_start = Some(crate::demo::default_start());
        }
        if args.monitor.monitor_algorithm == crate::AlgorithmChoice::Market {
            args.monitor.monitor_algorithm = crate::AlgorithmChoice::Vwap;
        }
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let clock = args
        .clock
        .sim_clock()
        .unwrap_or_else(|| SimClock::new(chrono::Utc::now(), args.clock.speed));
    let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let pool = PoolOptions::default();
    let sqlite = |name: &str| DatabaseUrl::Sqlite(args.data_dir.join(format!("{name}.db")));

    // Bind first: the services call each other on this very address.
    let listener = server::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let own = lazy_channel(&ClientOptions::new(format!("http://{address}")))?;

    let target_deps = TargetDeps {
        clock: shared_clock.clone(),
        execution: Some(own.clone()),
    };
    let target = TargetService::open(&sqlite("target"), &pool, target_deps).await?;
    let monitor_deps = MonitorDeps {
        clock: shared_clock.clone(),
        target: own.clone(),
        execution: own.clone(),
        config: args.monitor.config(),
    };
    let monitor = MonitorService::open(&sqlite("monitor"), &pool, monitor_deps).await?;
    let market = Arc::new(SimMarketData::new(
        args.market_seed,
        shared_clock.clone(),
        args.clock.speed,
    ));
    let execution = ExecutionService::open(
        &sqlite("execution"),
        &pool,
        ExecutionDeps {
            clock: shared_clock.clone(),
            broker: rebalancer_execution::broker::BrokerConfig::default(),
            market,
            target: Some(own.clone()),
        },
    )
    .await?;
    let limits = MessageLimits::from(&args.server);
    let mut routes = RoutesBuilder::default();
    target.register(&mut routes, limits);
    monitor.register(&mut routes, limits);
    execution.register(&mut routes, limits);
    let names: Vec<&'static str> = [
        rebalancer_target::SERVICE_NAMES,
        rebalancer_monitor::SERVICE_NAMES,
        rebalancer_execution::SERVICE_NAMES,
    ]
    .concat();
    println!(
        "rebalancer dev listening on {address} (data in {}, default tenant {:?})",
        args.data_dir.display(),
        DEV_TENANT
    );
    let workers = CancellationToken::new();
    let owner = format!("dev-{}", std::process::id());
    let worker = execution.start_worker(owner.clone(), workers.clone());
    let monitor_worker = monitor.start_worker(owner, workers.clone());
    let options = args.server.clone();
    let server = tokio::spawn(async move {
        server::serve(
            listener,
            routes.routes(),
            &names,
            &options,
            server::shutdown_signal(),
        )
        .await
    });
    if args.demo.demo {
        let tenant = args
            .server
            .default_tenant
            .clone()
            .unwrap_or_else(|| DEV_TENANT.to_owned());
        if let Err(error) =
            crate::demo::run(&args.demo, own.clone(), clock.clone(), &tenant, address).await
        {
            eprintln!("demo failed: {error:#}");
        }
    }
    let served = server
        .await
        .map_err(anyhow::Error::from)
        .and_then(|result| result);
    workers.cancel();
    let _ = worker.await;
    let _ = monitor_worker.await;
    served
}

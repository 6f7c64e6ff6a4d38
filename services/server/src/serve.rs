//! `rebalancer serve <service>`: one service on its own database, as
//! Kubernetes runs it; and `rebalancer migrate <service>`.

use std::sync::Arc;

use rebalancer_execution::market::SimMarketData;
use rebalancer_execution::{ExecutionDeps, ExecutionService};
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::{Clock, SystemClock};
use rebalancer_monitor::{MonitorDeps, MonitorService};
use rebalancer_proto::client::{ClientOptions, lazy_channel};
use rebalancer_target::{TargetDeps, TargetService};
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;

use crate::{MigrateArgs, ServeArgs, ServiceKind};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    args.server.validate()?;
    let database = DatabaseUrl::parse(&args.database_url)?;
    let pool = PoolOptions {
        max_connections: args.db_max_connections,
        ..PoolOptions::default()
    };
    let sim = args.clock.sim_clock();
    let speed = sim.as_ref().map_or(1, |clock| clock.speed());
    let clock: Arc<dyn Clock> = match sim {
        Some(sim) => Arc::new(sim),
        None => Arc::new(SystemClock),
    };
    let limits = MessageLimits::from(&args.server);
    let mut routes = RoutesBuilder::default();
    let workers = CancellationToken::new();
    let mut worker = None;
    let names = match args.service {
        ServiceKind::Target => {
            let deps = TargetDeps {
                clock,
                execution: Some(lazy_channel(&ClientOptions::new(
                    args.execution_url.clone(),
                ))?),
            };
            TargetService::open(&database, &pool, deps)
                .await?
                .register(&mut routes, limits);
            rebalancer_target::SERVICE_NAMES
        }
        ServiceKind::Monitor => {
            let deps = MonitorDeps {
                clock,
                target: lazy_channel(&ClientOptions::new(args.target_url.clone()))?,
                execution: lazy_channel(&ClientOptions::new(args.execution_url.clone()))?,
                config: args.monitor.config(),
            };
            let monitor = MonitorService::open(&database, &pool, deps).await?;
            monitor.register(&mut routes, limits);
            let owner = format!("{}-{}", hostname(), std::process::id());
            worker = Some(monitor.start_worker(owner, workers.clone()));
            rebalancer_monitor::SERVICE_NAMES
        }
        ServiceKind::Execution => {
            let deps = ExecutionDeps {
                clock: clock.clone(),
                broker: rebalancer_execution::broker::BrokerConfig::default(),
                market: Arc::new(SimMarketData::new(args.market_seed, clock, speed)),
                target: Some(lazy_channel(&ClientOptions::new(args.target_url.clone()))?),
            };
            let execution = ExecutionService::open(&database, &pool, deps).await?;
            execution.register(&mut routes, limits);
            let owner = format!("{}-{}", hostname(), std::process::id());
            worker = Some(execution.start_worker(owner, workers.clone()));
            rebalancer_execution::SERVICE_NAMES
        }
    };
    let listener = server::bind(args.listen).await?;
    tracing::info!(service = ?args.service, address = %listener.local_addr()?, "serving");
    println!(
        "rebalancer {:?} listening on {}",
        args.service,
        listener.local_addr()?
    );
    let served = server::serve(
        listener,
        routes.routes(),
        names,
        &args.server,
        server::shutdown_signal(),
    )
    .await;
    workers.cancel();
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    served
}

/// This replica's name (the pod name on Kubernetes).
fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned())
}

/// Applies the migrations (opening a service applies them) and exits.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let database = DatabaseUrl::parse(&args.database_url)?;
    let pool = PoolOptions {
        max_connections: 2,
        ..PoolOptions::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match args.service {
        ServiceKind::Target => {
            let deps = TargetDeps {
                clock,
                execution: None,
            };
            drop(TargetService::open(&database, &pool, deps).await?);
        }
        ServiceKind::Monitor => drop(rebalancer_monitor::store::open(&database, &pool).await?),
        ServiceKind::Execution => {
            let deps = ExecutionDeps {
                clock: clock.clone(),
                broker: rebalancer_execution::broker::BrokerConfig::default(),
                market: Arc::new(SimMarketData::new(0, clock, 1)),
                target: None,
            };
            drop(ExecutionService::open(&database, &pool, deps).await?);
        }
    }
    tracing::info!(service = ?args.service, "migrations applied");
    Ok(())
}

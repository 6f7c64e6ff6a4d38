//! The one wiring of the services, shared by `rebalancer dev` (all three in
//! one process), `rebalancer serve <service>` (one per process) and the
//! in-process test stack: open each service this process runs on its
//! database with its dependencies, register its routes, start its background
//! workers. A new dependency of a service (a broker, an authenticator, a
//! metrics recorder) is added here, once.
//!
//! Services always call each other over gRPC, even in one process: there
//! they call this process's own listener, so the caller binds it first.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use rebalancer_execution::market::{MarketData, SimMarketData};
use rebalancer_execution::{ExecutionDeps, ExecutionService};
use rebalancer_kit::Clock;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::health::ReadinessCheck;
use rebalancer_kit::server::MessageLimits;
use rebalancer_monitor::{MonitorConfig, MonitorDeps, MonitorService};
use rebalancer_proto::client::{ClientOptions, Credentials, TracedChannel, lazy_channel};
use rebalancer_target::{TargetDeps, TargetService};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;

use crate::ServiceKind;

/// Everything the stack is built from.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Which services run in this process, on which databases, and where the
    /// others answer.
    pub services: Services,
    /// The clock every service reads.
    pub clock: Arc<dyn Clock>,
    /// Simulated seconds per real second of `clock` (0 when a test moves it
    /// by hand); the simulated market reports it with its clock.
    pub clock_speed: u32,
    /// How the monitor schedules its daily cycle (unused without it).
    pub monitor: MonitorConfig,
    pub market: MarketChoice,
    /// Quotes older than this are not used to value or plan (execution).
    pub max_quote_age: chrono::Duration,
    /// Where orders go (execution).
    pub broker: rebalancer_execution::broker::BrokerConfig,
    /// Message size limits of every gRPC service.
    pub limits: MessageLimits,
    pub workers: WorkerMode,
    /// The identity the services present on their calls to each other (a
    /// service token); `None` sends none (insecure deployments, tests).
    pub credentials: Option<Arc<dyn Credentials>>,
    /// TLS of the calls to `https://` peers (trusted CAs, client certificate).
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    /// How long each service keeps its events (`WatchEvents` can resume
    /// from an id this recent).
    pub event_retention: chrono::Duration,
}

/// Which services run in this process.
#[derive(Debug, Clone)]
pub enum Services {
    /// All three, calling each other over gRPC on this process's own
    /// listener at `address` (bound by the caller before building), through
    /// one shared channel.
    All {
        target: ServiceDatabase,
        monitor: ServiceDatabase,
        execution: ServiceDatabase,
        address: SocketAddr,
    },
    /// One service; the others answer at `peers`.
    One {
        service: ServiceKind,
        database: ServiceDatabase,
        peers: PeerUrls,
    },
}

/// A service's database and its connection pool.
#[derive(Debug, Clone)]
pub struct ServiceDatabase {
    pub url: DatabaseUrl,
    pub pool: PoolOptions,
}

/// Where the services outside this process answer, e.g.
/// `http://execution:50051`. The monitor needs both; the target service runs
/// without the execution service (it skips symbol checks and minimums), and
/// the execution service without the target service.
#[derive(Debug, Clone, Default)]
pub struct PeerUrls {
    pub target: Option<String>,
    pub execution: Option<String>,
    pub monitor: Option<String>,
}

/// Where market data comes from, besides the platform's asset master and
/// uploaded quotes (always there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketChoice {
    /// The simulated market, its prices drawn from `seed`.
    Simulated { seed: u64 },
    /// Only what the platform uploads (`UpsertAssets`, `UpsertQuotes`).
    Platform,
}

impl MarketChoice {
    fn open(self, clock: Arc<dyn Clock>, clock_speed: u32) -> Option<Arc<dyn MarketData>> {
        match self {
            Self::Simulated { seed } => {
                Some(Arc::new(SimMarketData::new(seed, clock, clock_speed)))
            }
            Self::Platform => None,
        }
    }
}

/// The `--market` flag: [`MarketChoice`] without its parameters, which have
/// flags of their own (`--market-seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarketSource {
    /// The simulated market, its prices drawn from `--market-seed`.
    Simulated,
    /// Only the assets and quotes the platform uploads over gRPC.
    Platform,
}

impl MarketSource {
    /// The market source with its parameters.
    #[must_use]
    pub fn choice(self, seed: u64) -> MarketChoice {
        match self {
            Self::Simulated => MarketChoice::Simulated { seed },
            Self::Platform => MarketChoice::Platform,
        }
    }
}

/// Where the orders of a tenant that never chose a trading mode go, when
/// the service has a live broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TradingModeChoice {
    /// The live broker.
    Live,
    /// The paper broker, until the tenant switches to live.
    Paper,
}

/// Where the execution service sends orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerChoice {
    /// Fills against the market data feed, in the execution database.
    Paper,
    /// A FIX 4.4 session with a broker, configured by `--fix-config`.
    Fix,
}

impl BrokerChoice {
    /// The execution service's configuration of the chosen adapter; FIX
    /// reads its file.
    ///
    /// # Errors
    /// FIX without a configuration file, or a file that cannot be used.
    pub fn config(
        self,
        fix_config: Option<&std::path::Path>,
        default_mode: TradingModeChoice,
    ) -> anyhow::Result<rebalancer_execution::broker::BrokerConfig> {
        use rebalancer_execution::broker::BrokerConfig;
        use rebalancer_execution::broker::brokers::TradingMode;
        Ok(match (self, fix_config) {
            (Self::Paper, None) => BrokerConfig::Paper,
            (Self::Paper, Some(_)) => {
                anyhow::bail!("--fix-config is only used with --broker fix")
            }
            (Self::Fix, Some(path)) => BrokerConfig::Fix {
                config: Box::new(rebalancer_execution::broker::fix::config::FixConfig::load(
                    path,
                )?),
                default_mode: match default_mode {
                    TradingModeChoice::Live => TradingMode::Live,
                    TradingModeChoice::Paper => TradingMode::Paper,
                },
            },
            (Self::Fix, None) => anyhow::bail!("--broker fix needs --fix-config <file>"),
        })
    }
}

/// Whether the stack runs its services' background workers.
#[derive(Debug, Clone)]
pub enum WorkerMode {
    /// Start the monitor's scheduler and the execution worker; `owner` names
    /// this replica in shard and slice leases.
    Start { owner: String },
    /// Start none: the caller drives the workers itself through the
    /// [`Stack`]'s service handles (tests tick them one pass at a time).
    DrivenByCaller,
}

/// The services of this process, opened and registered, ready to serve.
#[derive(Debug)]
pub struct Stack {
    /// The gRPC services to serve.
    pub routes: RoutesBuilder,
    /// Names of the gRPC services, for health checks and reflection.
    pub health_names: Vec<&'static str>,
    /// The dependencies each service's readiness follows (its database).
    pub readiness: Vec<ReadinessCheck>,
    /// The opened services (`None` when not in this process).
    pub target: Option<TargetService>,
    pub monitor: Option<MonitorService>,
    pub execution: Option<ExecutionService>,
    /// The channel the services call each other on ([`Services::All`] only).
    pub own_channel: Option<TracedChannel>,
    /// The background workers started ([`WorkerMode::Start`] only).
    pub workers: Workers,
}

/// The background workers of a stack.
#[derive(Debug, Default)]
pub struct Workers {
    stop: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Tells the workers to stop and waits until they have.
    pub async fn stop(self) {
        self.stop.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Each service's database when it runs in this process, and how the
/// services reach the others.
struct Placement {
    target: Option<ServiceDatabase>,
    monitor: Option<ServiceDatabase>,
    execution: Option<ServiceDatabase>,
    peers: Peers,
}

impl Services {
    fn place(self, client: PeerClient) -> anyhow::Result<Placement> {
        match self {
            Self::All {
                target,
                monitor,
                execution,
                address,
            } => Ok(Placement {
                target: Some(target),
                monitor: Some(monitor),
                execution: Some(execution),
                peers: Peers::Own(lazy_channel(
                    &ClientOptions::new(format!("http://{address}"))
                        .with_credentials(client.credentials),
                )?),
            }),
            Self::One {
                service,
                database,
                peers,
            } => {
                let mut placement = Placement {
                    target: None,
                    monitor: None,
                    execution: None,
                    peers: Peers::Remote(peers, client),
                };
                let slot = match service {
                    ServiceKind::Target => &mut placement.target,
                    ServiceKind::Monitor => &mut placement.monitor,
                    ServiceKind::Execution => &mut placement.execution,
                };
                *slot = Some(database);
                Ok(placement)
            }
        }
    }
}

/// How the services reach the others: this process's own listener, or a
/// channel per peer URL, made only for the services that call it.
enum Peers {
    Own(TracedChannel),
    Remote(PeerUrls, PeerClient),
}

/// How this process calls the others: its service token and TLS settings.
#[derive(Clone)]
struct PeerClient {
    credentials: Option<Arc<dyn Credentials>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Peers {
    fn target(&self) -> anyhow::Result<Option<TracedChannel>> {
        match self {
            Self::Own(channel) => Ok(Some(channel.clone())),
            Self::Remote(urls, client) => remote(urls.target.as_deref(), client),
        }
    }

    fn execution(&self) -> anyhow::Result<Option<TracedChannel>> {
        match self {
            Self::Own(channel) => Ok(Some(channel.clone())),
            Self::Remote(urls, client) => remote(urls.execution.as_deref(), client),
        }
    }

    fn monitor(&self) -> anyhow::Result<Option<TracedChannel>> {
        match self {
            Self::Own(channel) => Ok(Some(channel.clone())),
            Self::Remote(urls, client) => remote(urls.monitor.as_deref(), client),
        }
    }
}

fn remote(url: Option<&str>, client: &PeerClient) -> anyhow::Result<Option<TracedChannel>> {
    if let Some(url) = url
        && url.starts_with("https://")
    {
        anyhow::ensure!(
            client.tls.is_some(),
            "{url} is https: give --tls-ca-file to trust its certificate"
        );
    }
    url.map(|url| {
        lazy_channel(
            &ClientOptions::new(url)
                .with_credentials(client.credentials.clone())
                .with_tls(client.tls.clone()),
        )
    })
    .transpose()
    .map_err(anyhow::Error::from)
}

impl Stack {
    /// Opens the services `config` places in this process (applying their
    /// migrations), registers their routes and, unless the caller drives
    /// them, starts their workers.
    ///
    /// # Errors
    /// When a database is unreachable, a migration fails, a peer URL is
    /// invalid, or the monitor runs without a peer it needs.
    pub async fn build(config: StackConfig) -> anyhow::Result<Self> {
        let StackConfig {
            services,
            clock,
            clock_speed,
            monitor: monitor_config,
            market,
            max_quote_age,
            broker,
            limits,
            workers: worker_mode,
            credentials,
            client_tls,
            event_retention,
        } = config;
        let Placement {
            target: target_database,
            monitor: monitor_database,
            execution: execution_database,
            peers,
        } = services.place(PeerClient {
            credentials,
            tls: client_tls,
        })?;
        let own_channel = match &peers {
            Peers::Own(channel) => Some(channel.clone()),
            Peers::Remote(..) => None,
        };

        let mut routes = RoutesBuilder::default();
        let mut health_names = Vec::new();
        let mut readiness = Vec::new();
        let target = match target_database {
            Some(database) => {
                readiness.push(ReadinessCheck::database(
                    "target database",
                    rebalancer_target::SERVICE_NAMES,
                    &database.url,
                )?);
                let deps = TargetDeps {
                    clock: clock.clone(),
                    execution: peers.execution()?,
                };
                let target = TargetService::open(&database.url, &database.pool, deps).await?;
                target.register(&mut routes, limits);
                health_names.extend_from_slice(rebalancer_target::SERVICE_NAMES);
                Some(target)
            }
            None => None,
        };
        let monitor = match monitor_database {
            Some(database) => {
                readiness.push(ReadinessCheck::database(
                    "monitor database",
                    rebalancer_monitor::SERVICE_NAMES,
                    &database.url,
                )?);
                let deps = MonitorDeps {
                    clock: clock.clone(),
                    target: peers
                        .target()?
                        .context("the monitor needs the target service's address")?,
                    execution: peers
                        .execution()?
                        .context("the monitor needs the execution service's address")?,
                    config: monitor_config,
                };
                let monitor = MonitorService::open(&database.url, &database.pool, deps).await?;
                monitor.register(&mut routes, limits);
                health_names.extend_from_slice(rebalancer_monitor::SERVICE_NAMES);
                Some(monitor)
            }
            None => None,
        };
        let execution = match execution_database {
            Some(database) => {
                readiness.push(ReadinessCheck::database(
                    "execution database",
                    rebalancer_execution::SERVICE_NAMES,
                    &database.url,
                )?);
                let deps = ExecutionDeps {
                    clock: clock.clone(),
                    market: market.open(clock.clone(), clock_speed),
                    max_quote_age,
                    broker: broker.clone(),
                    target: peers.target()?,
                    monitor: peers.monitor()?,
                };
                let execution = ExecutionService::open(&database.url, &database.pool, deps).await?;
                readiness.extend(execution.broker_readiness());
                execution.register(&mut routes, limits);
                health_names.extend_from_slice(rebalancer_execution::SERVICE_NAMES);
                Some(execution)
            }
            None => None,
        };

        let mut workers = Workers::default();
        if let WorkerMode::Start { owner } = worker_mode {
            if let Some(execution) = &execution {
                let handle = execution.start_worker(owner.clone(), workers.stop.clone());
                workers.handles.push(handle);
                workers
                    .handles
                    .push(execution.start_gatherer(workers.stop.clone()));
            }
            let logs = [
                target.as_ref().map(|service| service.events().clone()),
                monitor.as_ref().map(|service| service.events().clone()),
                execution.as_ref().map(|service| service.events().clone()),
            ];
            for log in logs.into_iter().flatten() {
                let stop = workers.stop.clone();
                workers
                    .handles
                    .push(tokio::spawn(log.run(event_retention, stop)));
            }
            if let Some(monitor) = &monitor {
                let handle = monitor.start_worker(owner.clone(), workers.stop.clone());
                workers.handles.push(handle);
            }
        }
        Ok(Self {
            routes,
            health_names,
            readiness,
            target,
            monitor,
            execution,
            own_channel,
            workers,
        })
    }
}

/// Applies `service`'s migrations to `database` (opening its store applies
/// them), without building the service.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn migrate(service: ServiceKind, database: &ServiceDatabase) -> anyhow::Result<()> {
    let ServiceDatabase { url, pool } = database;
    match service {
        ServiceKind::Target => drop(rebalancer_target::store::open(url, pool).await?),
        ServiceKind::Monitor => drop(rebalancer_monitor::store::open(url, pool).await?),
        ServiceKind::Execution => drop(rebalancer_execution::store::open(url, pool).await?),
    }
    Ok(())
}

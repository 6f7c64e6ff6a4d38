//! The whole system in-process: the three services on one port 0 listener,
//! each on its own database, wired by the same builder as `rebalancer dev`
//! and `serve` ([`rebalancer_server::stack`]) and served by the same server
//! code; its workers are not started, the tests tick them.

use std::net::SocketAddr;
use std::sync::Arc;

use rebalancer_kit::auth::ServiceCredentials;
use rebalancer_kit::config::ServerOptions;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::testing::TestDatabase;
use rebalancer_kit::testing::identity::IdentityProvider;
use rebalancer_kit::{Authenticator, SimClock};
use rebalancer_monitor::MonitorConfig;
use rebalancer_proto::client::{
    CallContext, ClientOptions, Credentials, TracedChannel, lazy_channel,
};
use rebalancer_server::stack::{
    MarketChoice, ServiceDatabase, Services, Stack, StackConfig, WorkerMode,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Seed of the simulated market in tests.
pub const MARKET_SEED: u64 = 42;

/// Which database the stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a test stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Accounts per monitor shard.
    pub monitor_shard_size: i64,
    /// The live feed under the asset master (the simulated market by default).
    pub market: MarketChoice,
    /// Where child orders go (the paper broker by default).
    pub broker: rebalancer_execution::broker::BrokerConfig,
    /// Callers must present tokens of this identity provider (and the
    /// services sign their calls with its service secret); `None` accepts
    /// unauthenticated calls as the tenant they name.
    pub identity: Option<Arc<IdentityProvider>>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            monitor_shard_size: 500,
            market: MarketChoice::Simulated { seed: MARKET_SEED },
            broker: rebalancer_execution::broker::BrokerConfig::Paper,
            identity: None,
        }
    }
}

/// A running stack; stopped when dropped.
#[derive(Debug)]
pub struct TestStack {
    pub address: SocketAddr,
    pub clock: SimClock,
    /// The execution service, to drive its worker tick by tick.
    pub execution: rebalancer_execution::Execution,
    /// The monitor, to drive its scheduler and shards tick by tick.
    pub monitor: rebalancer_monitor::Monitor,
    /// The execution service, to gather and prune events by hand.
    pub execution_service: rebalancer_execution::ExecutionService,
    channel: TracedChannel,
    monitor_url: DatabaseUrl,
    /// Databases of target, monitor and execution, kept for [`TestStack::restart`].
    urls: [DatabaseUrl; 3],
    options: StackOptions,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _sqlite_dir: Option<tempfile::TempDir>,
    _databases: Vec<TestDatabase>,
}

impl TestStack {
    /// Starts the stack, or returns `None` when the backend is PostgreSQL and
    /// it is unreachable outside CI (the helper says so loudly).
    ///
    /// # Panics
    /// When a service cannot start.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, StackOptions::default()).await
    }

    /// Starts the stack with `options`; see [`TestStack::start`].
    ///
    /// # Panics
    /// When a service cannot start.
    pub async fn start_with(backend: Backend, options: StackOptions) -> Option<Self> {
        rebalancer_kit::testing::init_test_logs();
        let mut databases = Vec::new();
        let mut sqlite_dir = None;
        let urls = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = |name: &str| DatabaseUrl::Sqlite(dir.path().join(format!("{name}.db")));
                let urls = [url("target"), url("monitor"), url("execution")];
                sqlite_dir = Some(dir);
                urls
            }
            Backend::Postgres => {
                let mut urls = Vec::new();
                for _ in 0..3 {
                    let database = TestDatabase::create().await?;
                    urls.push(DatabaseUrl::parse(&database.url).expect("url"));
                    databases.push(database);
                }
                let [target, monitor, execution] =
                    <[DatabaseUrl; 3]>::try_from(urls).expect("three urls");
                [target, monitor, execution]
            }
        };
        let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z")
            .expect("valid")
            .with_timezone(&chrono::Utc);
        let clock = SimClock::manual(start);
        let running = Running::launch(&urls, &clock, &options).await;
        Some(Self {
            address: running.address,
            clock,
            execution: running.execution,
            monitor: running.monitor,
            execution_service: running.execution_service,
            monitor_url: urls[1].clone(),
            channel: running.channel,
            stop: running.stop,
            server: Some(running.server),
            urls,
            options,
            _sqlite_dir: sqlite_dir,
            _databases: databases,
        })
    }

    /// Stops the server and starts the whole stack again on the same
    /// databases and the same clock, as a process restart would: on a new
    /// port, with fresh service state (caches, worker state) and new
    /// channels, so clients made before must be made again from
    /// [`TestStack::channel`].
    ///
    /// # Panics
    /// When the old server failed or a service cannot start again.
    pub async fn restart(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        let running = Running::launch(&self.urls, &self.clock, &self.options).await;
        self.address = running.address;
        self.execution = running.execution;
        self.monitor = running.monitor;
        self.execution_service = running.execution_service;
        self.channel = running.channel;
        self.stop = running.stop;
        self.server = Some(running.server);
    }

    /// A channel to the stack.
    #[must_use]
    pub fn channel(&self) -> TracedChannel {
        self.channel.clone()
    }

    /// A channel without the services' credentials, as an outside caller
    /// has: calls carry only the token their [`CallContext`] gives.
    ///
    /// # Panics
    /// Never: the address is valid.
    #[must_use]
    pub fn outside_channel(&self) -> TracedChannel {
        lazy_channel(&ClientOptions::new(format!("http://{}", self.address))).expect("channel")
    }

    /// Gathers the Target's and the Monitor's events into the execution
    /// service's stream (the worker does it every 500 ms when it runs).
    ///
    /// # Panics
    /// When gathering fails.
    pub async fn gather_events(&self) -> u64 {
        self.execution_service
            .gather_events()
            .await
            .expect("gather events")
    }

    /// One pass of the execution worker at the current simulated time.
    ///
    /// # Panics
    /// When the tick fails.
    pub async fn tick(&self) -> usize {
        self.execution
            .tick("test-worker")
            .await
            .expect("worker tick")
    }

    /// One pass of the monitor (schedule, then every open shard) at the
    /// current simulated time; returns the shards worked.
    ///
    /// # Panics
    /// When the tick fails.
    pub async fn monitor_tick(&self) -> usize {
        self.monitor
            .tick("test-monitor")
            .await
            .expect("monitor tick")
    }

    /// URLs of the PostgreSQL databases of target, monitor and execution
    /// (`None` on SQLite).
    #[must_use]
    pub fn postgres_urls(&self) -> Option<[String; 3]> {
        match self._databases.as_slice() {
            [target, monitor, execution] => Some([
                target.url.clone(),
                monitor.url.clone(),
                execution.url.clone(),
            ]),
            _ => None,
        }
    }

    /// The monitor's database, as another replica (or a dead one) sees it.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub async fn monitor_store(&self) -> Arc<dyn rebalancer_monitor::store::MonitorStore> {
        rebalancer_monitor::store::open(&self.monitor_url, &PoolOptions::default())
            .await
            .expect("monitor store")
    }

    /// Advances the clock by `step` and ticks, `times` times.
    pub async fn advance_and_tick(&self, step: chrono::TimeDelta, times: usize) {
        for _ in 0..times {
            self.clock.advance(step);
            self.tick().await;
        }
    }

    /// Call metadata for `tenant`.
    #[must_use]
    pub fn tenant(&self, tenant: &str) -> CallContext {
        CallContext::tenant(tenant)
    }

    /// Stops the server and waits for it to drain.
    ///
    /// # Panics
    /// When the server failed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The served part of a [`TestStack`]: what a start (or a restart) builds.
struct Running {
    address: SocketAddr,
    execution: rebalancer_execution::Execution,
    monitor: rebalancer_monitor::Monitor,
    execution_service: rebalancer_execution::ExecutionService,
    channel: TracedChannel,
    stop: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Builds the services on `urls` with `clock` and serves them on a port 0 listener.
    async fn launch(urls: &[DatabaseUrl; 3], clock: &SimClock, options: &StackOptions) -> Self {
        // Bind first: the services call each other on this very address.
        let listener = server::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let database = |url: &DatabaseUrl| ServiceDatabase {
            url: url.clone(),
            pool: PoolOptions::default(),
        };
        let mut server_options = ServerOptions {
            max_message_bytes: 64 * 1024 * 1024,
            ..ServerOptions::default()
        };
        let (auth, credentials) = match &options.identity {
            Some(identity) => {
                server_options.auth = identity.options();
                let auth = server_options.authenticator(None).await.expect("auth");
                let credentials: Arc<dyn Credentials> = Arc::new(
                    ServiceCredentials::new("stack", &identity.service_secret())
                        .expect("service credentials"),
                );
                (auth, Some(credentials))
            }
            None => (Authenticator::insecure(None), None),
        };
        let stack = Stack::build(StackConfig {
            services: Services::All {
                target: database(&urls[0]),
                monitor: database(&urls[1]),
                execution: database(&urls[2]),
                address,
            },
            clock: Arc::new(clock.clone()),
            // The tests move the clock by hand.
            clock_speed: 0,
            monitor: MonitorConfig {
                shard_size: options.monitor_shard_size,
                tenants: ["default", "firm-a", "firm-b"].map(str::to_owned).to_vec(),
                ..MonitorConfig::default()
            },
            market: options.market,
            max_quote_age: rebalancer_execution::DEFAULT_MAX_QUOTE_AGE,
            broker: options.broker.clone(),
            limits: MessageLimits::from(&server_options),
            workers: WorkerMode::DrivenByCaller,
            credentials,
            client_tls: None,
            event_retention: chrono::Duration::days(7),
        })
        .await
        .expect("stack");
        let Stack {
            routes,
            health_names,
            readiness,
            monitor: Some(monitor),
            execution: Some(execution),
            own_channel: Some(channel),
            ..
        } = stack
        else {
            panic!("the stack runs every service in this process");
        };

        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            server::serve(
                listener,
                routes.routes(),
                &health_names,
                &server_options,
                auth,
                readiness,
                shutdown,
            )
            .await
        });
        Self {
            address,
            execution: execution.execution().clone(),
            monitor: monitor.monitor().clone(),
            execution_service: execution,
            channel,
            stop,
            server,
        }
    }
}

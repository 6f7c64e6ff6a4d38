//! Harness of the benchmark binaries: the Target service alone, in-process,
//! on a fresh PostgreSQL database, wired and served on a free port by the
//! same code as production (and as [`TestStack`](crate::TestStack)), plus a
//! way to load rows in bulk with plain SQL.
//!
//! Without the Execution service the Target service skips symbol checks and
//! cannot read account values, so benchmarks use portfolios without
//! investment minimums.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use anyhow::Context;
use rebalancer_kit::SystemClock;
use rebalancer_kit::config::ServerOptions;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::testing::TestDatabase;
use rebalancer_monitor::MonitorConfig;
use rebalancer_proto::client::{ClientOptions, TracedChannel, lazy_channel};
use rebalancer_server::ServiceKind;
use rebalancer_server::stack::{
    MarketChoice, PeerUrls, ServiceDatabase, Services, Stack, StackConfig, WorkerMode,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::stack::MARKET_SEED;

/// The Target service on its own PostgreSQL database; stopped when dropped.
#[derive(Debug)]
pub struct TargetBench {
    pub address: SocketAddr,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    database: TestDatabase,
}

impl TargetBench {
    /// Starts the service, or returns `None` when PostgreSQL is unreachable
    /// outside CI (the database helper says so loudly).
    ///
    /// # Errors
    /// When the service cannot open its database or bind its port.
    pub async fn start() -> anyhow::Result<Option<Self>> {
        rebalancer_kit::testing::init_test_logs();
        let Some(database) = TestDatabase::create().await else {
            return Ok(None);
        };
        let options = ServerOptions::default();
        let stack = Stack::build(StackConfig {
            services: Services::One {
                service: ServiceKind::Target,
                database: ServiceDatabase {
                    url: DatabaseUrl::parse(&database.url)?,
                    pool: PoolOptions::default(),
                },
                peers: PeerUrls::default(),
            },
            clock: Arc::new(SystemClock),
            clock_speed: 1,
            // Unused by the target service alone.
            monitor: MonitorConfig::default(),
            market: MarketChoice::Simulated { seed: MARKET_SEED },
            max_quote_age: rebalancer_execution::DEFAULT_MAX_QUOTE_AGE,
            broker: rebalancer_execution::broker::BrokerConfig::Paper,
            limits: MessageLimits::from(&options),
            workers: WorkerMode::DrivenByCaller,
            credentials: None,
            client_tls: None,
            event_retention: chrono::Duration::days(7),
        })
        .await
        .context("open the target service")?;
        let listener = server::bind("127.0.0.1:0".parse()?).await?;
        let address = listener.local_addr()?;
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            server::serve(
                listener,
                stack.routes.routes(),
                &stack.health_names,
                &options,
                rebalancer_kit::Authenticator::insecure(None),
                stack.readiness.clone(),
                shutdown,
            )
            .await
        });
        Ok(Some(Self {
            address,
            stop,
            server: Some(server),
            database,
        }))
    }

    /// A new channel (its own HTTP/2 connection) to the service.
    ///
    /// # Errors
    /// Never in practice: the address is a valid URI.
    pub fn channel(&self) -> anyhow::Result<TracedChannel> {
        Ok(lazy_channel(&ClientOptions::new(format!(
            "http://{}",
            self.address
        )))?)
    }

    /// Runs SQL statements on the service's database with `psql`, each in
    /// its own transaction (so `VACUUM` may be one of them). For bulk loads
    /// that would take hours through the API.
    ///
    /// # Errors
    /// When `psql` is missing or a statement fails.
    pub async fn run_sql(&self, statements: &[&str]) -> anyhow::Result<()> {
        psql(&self.database.url, statements).await.map(drop)
    }

    /// Stops the server, waits for it to drain, then drops the database.
    ///
    /// # Errors
    /// When the server failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }
}

impl Drop for TargetBench {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs SQL statements on the database at `url` with `psql`, each in its own
/// transaction (so `VACUUM` may be one of them); returns what psql printed.
/// For bulk loads that would take hours through the API.
///
/// # Errors
/// When `psql` is missing or a statement fails.
pub async fn psql(url: &str, statements: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("psql");
    command.args([
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--dbname",
        url,
    ]);
    for statement in statements {
        command.args(["--command", statement]);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("run psql (it comes with the PostgreSQL client)")?;
    anyhow::ensure!(
        output.status.success(),
        "psql failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

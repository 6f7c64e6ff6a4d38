//! The `rebalancer` command line: `dev` runs the whole system in one process
//! on SQLite (the embedded default), `serve <service>` runs one service on its
//! own database for Kubernetes, `migrate <service>` applies a service's
//! migrations and exits (a Kubernetes Job), `token` mints a token for the dev
//! stack. The first three wire the services through [`stack`].

mod demo;
mod dev;
mod serve;
pub mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rebalancer_kit::config::{ServerOptions, TelemetryOptions};

pub use dev::DevArgs;
use stack::{BrokerChoice, MarketSource, TradingModeChoice};

/// Automated portfolio rebalancing: model portfolios, daily monitoring,
/// execution with block orders, TWAP and VWAP.
#[derive(Debug, Parser)]
#[command(name = "rebalancer", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run all three services in one process, on one port, on SQLite files.
    Dev(DevArgs),
    /// Run one service on its own database.
    Serve(ServeArgs),
    /// Apply one service's database migrations and exit.
    Migrate(MigrateArgs),
    /// Mint a token for the dev stack, to try roles locally (signed with the
    /// data directory's dev secret; `rebalancer dev` trusts it).
    Token(dev::TokenArgs),
}

/// One of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceKind {
    Target,
    Monitor,
    Execution,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    pub service: ServiceKind,
    /// Address to listen on.
    #[arg(long, env = "REBALANCER_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Where the Target service answers (used by monitor and execution).
    #[arg(
        long,
        env = "REBALANCER_TARGET_URL",
        default_value = "http://target:50051"
    )]
    pub target_url: String,
    /// Where the Execution service answers (used by target and monitor).
    #[arg(
        long,
        env = "REBALANCER_EXECUTION_URL",
        default_value = "http://execution:50051"
    )]
    pub execution_url: String,
    /// Seed of the simulated market (execution).
    #[arg(long, env = "REBALANCER_MARKET_SEED", default_value_t = 42)]
    pub market_seed: u64,
    #[command(flatten)]
    pub venue: VenueOptions,
    /// Where the Monitor service answers (used by execution, which gathers
    /// its events into the tenant's stream).
    #[arg(
        long,
        env = "REBALANCER_MONITOR_URL",
        default_value = "http://monitor:50051"
    )]
    pub monitor_url: String,
    /// Days each service keeps its events (`WatchEvents` resumes from an id
    /// this recent).
    #[arg(long, env = "REBALANCER_EVENT_RETENTION_DAYS", default_value_t = rebalancer_kit::events::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,
    /// Database connections per replica.
    #[arg(long, env = "REBALANCER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    #[command(flatten)]
    pub monitor: MonitorOptions,
    #[command(flatten)]
    pub clock: ClockOptions,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Where market data comes from and where orders go.
#[derive(Debug, Clone, Args)]
pub struct VenueOptions {
    /// Source of market data (execution).
    #[arg(
        long,
        env = "REBALANCER_MARKET",
        value_enum,
        default_value = "simulated"
    )]
    pub market: MarketSource,
    /// Quotes older than this many hours are not used to value or plan
    /// (execution): accounts holding such a symbol are `UNABLE_TO_CHECK`.
    #[arg(long, env = "REBALANCER_MAX_QUOTE_AGE_HOURS", default_value_t = 96)]
    pub max_quote_age_hours: u32,
    /// Where orders are sent (execution).
    #[arg(long, env = "REBALANCER_BROKER", value_enum, default_value = "paper")]
    pub broker: BrokerChoice,
    /// The FIX session and order settings (TOML) for `--broker fix`. No
    /// secret goes on the command line: TLS trust comes from the file's
    /// `trust_store`, the file itself is mounted as a secret.
    #[arg(long, env = "REBALANCER_FIX_CONFIG")]
    pub fix_config: Option<std::path::PathBuf>,
    /// With a live broker, where the orders of tenants that never chose a
    /// mode (`OrderService/SetTradingMode`) go: `live`, or `paper` so every
    /// new firm trades paper first.
    #[arg(
        long,
        env = "REBALANCER_DEFAULT_TRADING_MODE",
        value_enum,
        default_value = "live"
    )]
    pub default_trading_mode: TradingModeChoice,
}

/// The simulated clock: where it starts and how fast it runs.
#[derive(Debug, Clone, Args)]
pub struct ClockOptions {
    /// Simulated time at `--sim-epoch` (RFC 3339). Without it, `serve` runs
    /// on the system clock and `dev` starts at the current time.
    #[arg(long, env = "REBALANCER_SIM_START")]
    pub sim_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Wall-clock time at which the simulated clock read `--sim-start`
    /// (RFC 3339; default: when the process starts). Replicas and restarts
    /// given the same start, epoch and speed share one simulated time.
    #[arg(long, env = "REBALANCER_SIM_EPOCH")]
    pub sim_epoch: Option<chrono::DateTime<chrono::Utc>>,
    /// Simulated seconds per real second.
    #[arg(long, env = "REBALANCER_SPEED", default_value_t = 1)]
    pub speed: u32,
}

impl ClockOptions {
    /// The simulated clock these options describe, if any.
    #[must_use]
    pub fn sim_clock(&self) -> Option<rebalancer_kit::SimClock> {
        let start = self.sim_start?;
        let epoch = self.sim_epoch.unwrap_or_else(chrono::Utc::now);
        Some(rebalancer_kit::SimClock::anchored(start, epoch, self.speed))
    }
}

/// How the Monitor service schedules its daily cycle.
#[derive(Debug, Clone, Args)]
pub struct MonitorOptions {
    /// New York time of the daily cycle on trading days (HH:MM).
    #[arg(long, env = "REBALANCER_MONITOR_RUN_AT", default_value = "09:45", value_parser = parse_time)]
    pub monitor_run_at: chrono::NaiveTime,
    /// Tenants the daily cycle evaluates, comma-separated.
    #[arg(
        long,
        env = "REBALANCER_MONITOR_TENANTS",
        default_value = "default",
        value_delimiter = ','
    )]
    pub monitor_tenants: Vec<String>,
    /// Accounts per shard of a cycle.
    #[arg(long, env = "REBALANCER_MONITOR_SHARD_SIZE", default_value_t = 20_000)]
    pub monitor_shard_size: i64,
    /// Algorithm of the runs the monitor opens.
    #[arg(
        long,
        env = "REBALANCER_MONITOR_ALGORITHM",
        value_enum,
        default_value = "market"
    )]
    pub monitor_algorithm: AlgorithmChoice,
    /// Working window of `twap` and `vwap` runs, minutes.
    #[arg(
        long,
        env = "REBALANCER_MONITOR_ALGORITHM_MINUTES",
        default_value_t = 30
    )]
    pub monitor_algorithm_minutes: i64,
}

/// An execution algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmChoice {
    Market,
    Twap,
    Vwap,
}

impl AlgorithmChoice {
    /// The algorithm over a window of `minutes` from when the run starts.
    #[must_use]
    pub fn wire(self, minutes: i64) -> Option<rebalancer_proto::execution::ExecutionAlgorithm> {
        use rebalancer_proto::execution::{AlgorithmType, ExecutionAlgorithm};
        let kind = match self {
            Self::Market => return None,
            Self::Twap => AlgorithmType::Twap,
            Self::Vwap => AlgorithmType::Vwap,
        };
        Some(ExecutionAlgorithm {
            r#type: kind.into(),
            horizon: Some(prost_types::Duration {
                seconds: minutes.max(1) * 60,
                nanos: 0,
            }),
            ..ExecutionAlgorithm::default()
        })
    }
}

impl MonitorOptions {
    #[must_use]
    pub fn config(&self) -> rebalancer_monitor::MonitorConfig {
        rebalancer_monitor::MonitorConfig {
            run_at: self.monitor_run_at,
            tenants: self.monitor_tenants.clone(),
            shard_size: self.monitor_shard_size.max(2),
            algorithm: self.monitor_algorithm.wire(self.monitor_algorithm_minutes),
            ..rebalancer_monitor::MonitorConfig::default()
        }
    }
}

fn parse_time(text: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{text:?} is not a time as HH:MM"))
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[arg(value_enum)]
    pub service: ServiceKind,
    #[command(flatten)]
    pub database: DatabaseArg,
}

/// The service's database: its URL, or a file holding it (a mounted
/// secret, so the password is in no environment).
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DatabaseArg {
    /// postgres://user:password@host/db?sslmode=verify-full (production) or sqlite://path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file whose content is the database URL.
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
}

impl DatabaseArg {
    /// The database URL, read from its file if given that way.
    ///
    /// # Errors
    /// When the file cannot be read or the URL is malformed.
    pub fn url(&self) -> anyhow::Result<rebalancer_kit::db::DatabaseUrl> {
        let text = match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => anyhow::bail!("give --database-url or --database-url-file"),
        };
        rebalancer_kit::db::DatabaseUrl::parse(&text)
    }
}

/// Runs the parsed command to completion.
///
/// # Errors
/// When start-up fails (bad config, unreachable database, port taken).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut telemetry = cli.telemetry.clone();
    // The demo's progress display reads better without request logs.
    if let Command::Dev(args) = &cli.command
        && args.demo.demo
        && std::env::var_os("RUST_LOG").is_none()
    {
        telemetry.log_filter = "warn".to_owned();
    }
    let _telemetry = rebalancer_kit::telemetry::init_telemetry(&telemetry)?;
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Token(args) => dev::token(&args),
    }
}

/// Default data directory of the dev stack.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

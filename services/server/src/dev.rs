//! `rebalancer dev`: the whole system in one process, on one port, on SQLite
//! files in a data directory, with no other set-up. Services still talk to
//! each other through their gRPC contracts, over the same port.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rebalancer_kit::auth::{ServiceCredentials, mint_dev_token};
use rebalancer_kit::config::ServerOptions;
use rebalancer_kit::db::{DatabaseUrl, PoolOptions};
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::{Clock, SimClock};

use rebalancer_proto::access::Role;
use rebalancer_proto::client::Credentials;

use crate::stack::{ServiceDatabase, Services, Stack, StackConfig, WorkerMode};

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
    /// Days each service keeps its events.
    #[arg(long, default_value_t = rebalancer_kit::events::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,
    #[command(flatten)]
    pub venue: crate::VenueOptions,
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
    // Zero configuration: calls without a token act as the tenant they name
    // (or `default`); tokens minted by `rebalancer token` are checked.
    args.server.auth.insecure_accept_unauthenticated = true;
    args.server.validate()?;
    anyhow::ensure!(
        !args.server.tls.serves_tls() && args.server.tls.tls_ca_file.is_none(),
        "`rebalancer dev` runs on localhost without TLS; TLS is for `serve`"
    );
    let secret = dev_secret(&args.data_dir)?;
    rebalancer_kit::page::set_token_key(&secret);
    let auth = args.server.authenticator(Some(secret.clone())).await?;
    let credentials: Arc<dyn Credentials> = Arc::new(ServiceCredentials::new("stack", &secret)?);
    let secret_dir = args.data_dir.clone();
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
    let database = |name: &str| ServiceDatabase {
        url: DatabaseUrl::Sqlite(args.data_dir.join(format!("{name}.db"))),
        pool: PoolOptions::default(),
    };

    // Bind first: the services call each other on this very address.
    let listener = server::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let stack = Stack::build(StackConfig {
        services: Services::All {
            target: database("target"),
            monitor: database("monitor"),
            execution: database("execution"),
            address,
        },
        clock: shared_clock,
        clock_speed: args.clock.speed,
        monitor: args.monitor.config(),
        market: args.venue.market.choice(args.market_seed),
        max_quote_age: chrono::Duration::hours(i64::from(args.venue.max_quote_age_hours)),
        broker: args.venue.broker.config(
            args.venue.fix_config.as_deref(),
            args.venue.default_trading_mode,
        )?,
        limits: MessageLimits::from(&args.server),
        workers: WorkerMode::Start {
            owner: format!("dev-{}", std::process::id()),
        },
        credentials: Some(credentials),
        client_tls: None,
        event_retention: chrono::Duration::days(i64::from(args.event_retention_days)),
    })
    .await?;
    let Stack {
        routes,
        health_names,
        readiness,
        own_channel,
        workers,
        ..
    } = stack;
    let own = own_channel.context("the dev stack calls its own listener")?;
    // A reader that stops reading after the address (a script, a test)
    // must not take the stack down: write errors are ignored, not a panic.
    let _ = writeln!(
        std::io::stdout(),
        "rebalancer dev listening on {address} (data in {}, default tenant {:?})\n\
         no authentication: calls without a token act as the tenant in x-tenant-id \
         (or {DEV_TENANT:?}); to try roles, send a token from \
         `rebalancer token --data-dir {} --role viewer`",
        args.data_dir.display(),
        DEV_TENANT,
        secret_dir.display(),
    );
    let options = args.server.clone();
    let server = tokio::spawn(async move {
        server::serve(
            listener,
            routes.routes(),
            &health_names,
            &options,
            auth,
            readiness,
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
        if let Err(error) = crate::demo::run(&args.demo, own, clock.clone(), &tenant, address).await
        {
            eprintln!("demo failed: {error:#}");
        }
    }
    let served = server
        .await
        .map_err(anyhow::Error::from)
        .and_then(|result| result);
    workers.stop().await;
    served
}

/// Name of the dev stack's signing secret in its data directory.
const DEV_SECRET_FILE: &str = "dev-secret";

/// The dev stack's signing secret (service tokens, and user tokens minted by
/// `rebalancer token`), created on first use.
fn dev_secret(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(DEV_SECRET_FILE);
    if let Ok(secret) = std::fs::read(&path) {
        return Ok(secret);
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret.into_bytes())
}

/// `rebalancer token`: a user token the dev stack accepts.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The dev stack's data directory (where its secret is).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// The tenant the token is for.
    #[arg(long, default_value = DEV_TENANT)]
    pub tenant: String,
    /// Who the token names (recorded as the actor).
    #[arg(long, default_value = "dev-user")]
    pub subject: String,
    /// A role: viewer, advisor, trader, operator, admin or platform (repeat for more).
    #[arg(long = "role", required = true, value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// Lifetime, seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
        format!("{text:?} is not a role ({})", names.join(", "))
    })
}

/// Prints a token for `rebalancer dev`.
///
/// # Errors
/// When the tenant is malformed or the secret cannot be read or made.
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    if let Some(problem) = rebalancer_kit::context::tenant_problem(&args.tenant) {
        anyhow::bail!("--tenant {:?} {problem}", args.tenant);
    }
    let secret = dev_secret(&args.data_dir)?;
    let token = mint_dev_token(
        &secret,
        &args.tenant,
        &args.subject,
        &args.roles,
        args.ttl_secs,
    )?;
    println!("{token}");
    Ok(())
}

//! `rebalancer serve <service>`: one service on its own database, as
//! Kubernetes runs it; and `rebalancer migrate <service>`.

use std::sync::Arc;

use rebalancer_kit::auth::ServiceCredentials;
use rebalancer_kit::db::PoolOptions;
use rebalancer_kit::server::{self, MessageLimits};
use rebalancer_kit::{Clock, SystemClock};

use crate::stack::{self, PeerUrls, ServiceDatabase, Services, Stack, StackConfig, WorkerMode};
use rebalancer_proto::client::Credentials;

use crate::{MigrateArgs, ServeArgs, ServiceKind};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    args.server.validate()?;
    let auth = args.server.authenticator(None).await?;
    if auth.is_insecure() {
        tracing::warn!(
            default_tenant = ?args.server.default_tenant,
            "--insecure-accept-unauthenticated: calls without a token act as the tenant they name"
        );
    }
    let secret = args.server.auth.service_secret()?;
    if let Some(secret) = &secret {
        // Replicas share the secret, so a page token works on any of them.
        rebalancer_kit::page::set_token_key(secret);
    }
    let credentials: Option<Arc<dyn Credentials>> = match secret {
        Some(secret) => Some(Arc::new(ServiceCredentials::new(
            service_name(args.service),
            &secret,
        )?)),
        None => None,
    };
    let database = ServiceDatabase {
        url: args.database.url()?,
        pool: PoolOptions {
            max_connections: args.db_max_connections,
            ..PoolOptions::default()
        },
    };
    let sim = args.clock.sim_clock();
    let speed = sim.as_ref().map_or(1, |clock| clock.speed());
    let clock: Arc<dyn Clock> = match sim {
        Some(sim) => Arc::new(sim),
        None => Arc::new(SystemClock),
    };
    let stack = Stack::build(StackConfig {
        services: Services::One {
            service: args.service,
            database,
            peers: PeerUrls {
                target: Some(args.target_url.clone()),
                execution: Some(args.execution_url.clone()),
                monitor: Some(args.monitor_url.clone()),
            },
        },
        clock,
        clock_speed: speed,
        monitor: args.monitor.config(),
        market: args.venue.market.choice(args.market_seed),
        max_quote_age: chrono::Duration::hours(i64::from(args.venue.max_quote_age_hours)),
        broker: args.venue.broker.config(
            args.venue.fix_config.as_deref(),
            args.venue.default_trading_mode,
        )?,
        limits: MessageLimits::from(&args.server),
        workers: WorkerMode::Start {
            owner: format!("{}-{}", hostname(), std::process::id()),
        },
        credentials,
        client_tls: args.server.tls.client_config()?,
        event_retention: chrono::Duration::days(i64::from(args.event_retention_days)),
    })
    .await?;
    let listener = server::bind(args.listen).await?;
    tracing::info!(service = ?args.service, address = %listener.local_addr()?, "serving");
    println!(
        "rebalancer {:?} listening on {}",
        args.service,
        listener.local_addr()?
    );
    let served = server::serve(
        listener,
        stack.routes.routes(),
        &stack.health_names,
        &args.server,
        auth,
        stack.readiness.clone(),
        server::shutdown_signal(),
    )
    .await;
    stack.workers.stop().await;
    served
}

/// The name a service signs its calls with.
const fn service_name(service: ServiceKind) -> &'static str {
    match service {
        ServiceKind::Target => "target",
        ServiceKind::Monitor => "monitor",
        ServiceKind::Execution => "execution",
    }
}

/// This replica's name (the pod name on Kubernetes).
fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned())
}

/// Applies the migrations and exits.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let database = ServiceDatabase {
        url: args.database.url()?,
        pool: PoolOptions {
            max_connections: 2,
            ..PoolOptions::default()
        },
    };
    stack::migrate(args.service, &database).await?;
    tracing::info!(service = ?args.service, "migrations applied");
    Ok(())
}

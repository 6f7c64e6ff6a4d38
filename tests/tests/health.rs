//! Health that tells the truth: when a service's database stops accepting
//! connections, that service's health entries answer NOT_SERVING within
//! seconds (readiness: Kubernetes stops routing to it) while the other
//! services and the server-wide entry (liveness) stay SERVING; when the
//! database is back, so is the service.

use std::time::{Duration, Instant};

use rebalancer_proto::service_names::{EXECUTION_SERVICES, ORDER, PORTFOLIO, RUN};
use rebalancer_tests::{Backend, TestStack};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(stack: &TestStack, service: &str) -> ServingStatus {
    let answer = HealthClient::new(stack.channel())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health answers");
    ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown)
}

/// Polls `service` until it reports `wanted`.
async fn wait_for(stack: &TestStack, service: &str, wanted: ServingStatus) -> Duration {
    let started = Instant::now();
    loop {
        if status(stack, service).await == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{service} is not {wanted:?} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin_sql(sql: String) {
    let admin = sqlx::PgPool::connect(&rebalancer_kit::testing::postgres_admin_url())
        .await
        .expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await
        .expect("admin statement");
    admin.close().await;
}

#[tokio::test]
async fn readiness_follows_the_database_postgres() {
    let Some(stack) = TestStack::start(Backend::Postgres).await else {
        return;
    };
    let [_, _, execution_url] = stack.postgres_urls().expect("postgres");
    let database = execution_url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("database name")
        .to_owned();
    assert_eq!(status(&stack, RUN).await, ServingStatus::Serving);

    // The database refuses new connections and drops the open ones.
    admin_sql(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false")).await;
    admin_sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .await;
    let lost = wait_for(&stack, RUN, ServingStatus::NotServing).await;
    eprintln!("execution NOT_SERVING {lost:?} after its database was lost");
    for service in EXECUTION_SERVICES {
        assert_eq!(
            status(&stack, service).await,
            ServingStatus::NotServing,
            "{service}"
        );
    }
    assert_eq!(
        status(&stack, PORTFOLIO).await,
        ServingStatus::Serving,
        "target keeps serving"
    );
    assert_eq!(
        status(&stack, "").await,
        ServingStatus::Serving,
        "liveness stays simple"
    );

    admin_sql(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await;
    let back = wait_for(&stack, RUN, ServingStatus::Serving).await;
    eprintln!("execution SERVING {back:?} after its database came back");
    stack.stop().await;
}

/// With a live FIX broker, the execution's `OrderService` entry follows the
/// session: NOT_SERVING while the broker's gateway is down, SERVING once
/// QuickFIX accepts the logon, NOT_SERVING again when it goes. The other
/// execution entries (the Kubernetes readiness probe's `RunService`), the
/// target's and liveness follow their databases only.
#[tokio::test]
async fn readiness_follows_the_fix_session() {
    use rebalancer_execution::broker::BrokerConfig;
    use rebalancer_execution::broker::brokers::TradingMode;
    use rebalancer_execution::broker::fix::config::FixConfig;
    use rebalancer_tests::fix_acceptor::{self, Acceptor};

    if !fix_acceptor::quickfix_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = rebalancer_tests::process::free_port();
    let config = FixConfig::load(&fix_acceptor::config_file(dir.path(), port)).expect("config");
    let options = rebalancer_tests::StackOptions {
        broker: BrokerConfig::Fix {
            config: Box::new(config),
            default_mode: TradingMode::Live,
        },
        ..rebalancer_tests::StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(Backend::Sqlite, options).await else {
        return;
    };
    wait_for(&stack, ORDER, ServingStatus::NotServing).await;
    for service in [RUN, PORTFOLIO, ""] {
        assert_eq!(
            status(&stack, service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }

    let acceptor = Acceptor::start(port, dir.path(), &[]);
    let ready_after = wait_for(&stack, ORDER, ServingStatus::Serving).await;
    println!("OrderService SERVING {ready_after:?} after the broker's gateway came up");
    for service in EXECUTION_SERVICES {
        assert_eq!(
            status(&stack, service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }

    drop(acceptor);
    let lost_after = wait_for(&stack, ORDER, ServingStatus::NotServing).await;
    println!("OrderService NOT_SERVING {lost_after:?} after the gateway went away");
    for service in [RUN, PORTFOLIO] {
        assert_eq!(
            status(&stack, service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }
    stack.stop().await;
}

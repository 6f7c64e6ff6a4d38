//! Readiness that tells the truth: each service's health entry follows the
//! dependencies it cannot work without (its database; the execution
//! service's live broker session), checked every few seconds; when one fails, the services that need it answer NOT_SERVING
//! (Kubernetes stops routing to the pod) until it is back. The server-wide
//! entry (`""`, the liveness probe's) stays SERVING: a lost database is not
//! cured by restarting the process.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::db::DatabaseUrl;

/// How often dependencies are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Longest a check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A dependency of some services, and how to check it.
#[derive(Clone)]
pub struct ReadinessCheck {
    /// What is checked, for the logs ("execution database").
    pub name: String,
    /// The health entries that follow it.
    pub services: Vec<&'static str>,
    probe: Probe,
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl ReadinessCheck {
    /// `SELECT 1` on the database at `url`, over a connection of its own
    /// (so a busy service pool does not read as a lost database).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn database(
        name: impl Into<String>,
        services: &[&'static str],
        url: &DatabaseUrl,
    ) -> anyhow::Result<Self> {
        let probe: Probe = match url {
            DatabaseUrl::Postgres(url) => {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CHECK_TIMEOUT)
                    .idle_timeout(Duration::from_secs(60))
                    .connect_lazy_with(PgConnectOptions::from_str(url.expose_secret())?);
                Arc::new(move || {
                    let pool = pool.clone();
                    Box::pin(async move {
                        sqlx::query("SELECT 1")
                            .execute(&pool)
                            .await
                            .map(|_| ())
                            .map_err(|error| error.to_string())
                    })
                })
            }
            DatabaseUrl::Sqlite(path) => {
                let path = path.clone();
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CHECK_TIMEOUT)
                    .connect_lazy_with(SqliteConnectOptions::new().filename(&path));
                Arc::new(move || {
                    let pool = pool.clone();
                    let path = path.clone();
                    Box::pin(async move {
                        if !path.exists() {
                            return Err(format!("{} is gone", path.display()));
                        }
                        sqlx::query("SELECT 1")
                            .execute(&pool)
                            .await
                            .map(|_| ())
                            .map_err(|error| error.to_string())
                    })
                })
            }
        };
        Ok(Self {
            name: name.into(),
            services: services.to_vec(),
            probe,
        })
    }

    /// A dependency checked by `probe` (an error says why it is not usable).
    pub fn custom<F, Fut>(name: impl Into<String>, services: &[&'static str], probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            services: services.to_vec(),
            probe: Arc::new(move || Box::pin(probe())),
        }
    }

    /// Checks once, recording `rebalancer.readiness.check.duration` (the
    /// round trip: a database's latency as the service sees it) and
    /// `rebalancer.readiness` (1 ready, 0 not) by check.
    async fn check(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(CHECK_TIMEOUT, (self.probe)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        let instruments = instruments();
        let labels = [opentelemetry::KeyValue::new("check", self.name.clone())];
        instruments
            .duration
            .record(started.elapsed().as_secs_f64(), &labels);
        instruments.ready.record(u64::from(result.is_ok()), &labels);
        result
    }
}

struct Instruments {
    duration: opentelemetry::metrics::Histogram<f64>,
    ready: opentelemetry::metrics::Gauge<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: std::sync::OnceLock<Instruments> = std::sync::OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = crate::metrics::meter();
        Instruments {
            duration: meter
                .f64_histogram("rebalancer.readiness.check.duration")
                .with_unit("s")
                .with_description("Round trip of each readiness check (a database's SELECT 1, the broker session)")
                .with_boundaries(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
                ])
                .build(),
            ready: meter
                .u64_gauge("rebalancer.readiness")
                .with_description("1 while the dependency is usable, 0 while it is not")
                .build(),
        }
    })
}

/// Checks `checks` every [`CHECK_EVERY`] and sets each service's health to
/// SERVING only while every check covering it passes, logging each change
/// of a check once, until the task is aborted.
pub fn watch(reporter: HealthReporter, checks: Vec<ReadinessCheck>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy = vec![true; checks.len()];
        let mut serving: std::collections::BTreeMap<&'static str, bool> = checks
            .iter()
            .flat_map(|check| check.services.iter().map(|service| (*service, true)))
            .collect();
        loop {
            for (check, was_healthy) in checks.iter().zip(healthy.iter_mut()) {
                let result = check.check().await;
                let now_healthy = result.is_ok();
                if now_healthy != *was_healthy {
                    match &result {
                        Ok(()) => tracing::info!(check = %check.name, "dependency back"),
                        Err(reason) => {
                            tracing::error!(check = %check.name, %reason, "dependency lost: its services are not serving")
                        }
                    }
                    *was_healthy = now_healthy;
                }
            }
            for (service, was_serving) in &mut serving {
                let now_serving = checks
                    .iter()
                    .zip(&healthy)
                    .filter(|(check, _)| check.services.contains(service))
                    .all(|(_, healthy)| *healthy);
                if now_serving != *was_serving {
                    let status = if now_serving {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    reporter.set_service_status(*service, status).await;
                    *was_serving = now_serving;
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_server::Health;

    use super::*;

    fn switch(name: &str, services: &[&'static str], up: &Arc<AtomicBool>) -> ReadinessCheck {
        let up = up.clone();
        ReadinessCheck::custom(name, services, move || {
            let ready = if up.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("down".to_owned())
            };
            async move { ready }
        })
    }

    /// Polls until `service` reports `wanted` (a few check rounds at most).
    async fn wait_for(health: &impl Health, service: &str, wanted: ServingStatus) {
        let started = Instant::now();
        loop {
            let status = health
                .check(tonic::Request::new(HealthCheckRequest {
                    service: service.to_owned(),
                }))
                .await
                .map(|answer| answer.into_inner().status)
                .unwrap_or_default();
            if status == wanted as i32 {
                return;
            }
            assert!(
                started.elapsed() < CHECK_EVERY * 5,
                "{service} is not {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_service_serves_only_while_every_check_covering_it_passes() {
        let (reporter, _) = tonic_health::server::health_reporter();
        let health = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        for service in ["orders", "runs"] {
            reporter
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        let database = Arc::new(AtomicBool::new(true));
        let broker = Arc::new(AtomicBool::new(false));
        let watcher = watch(
            reporter,
            vec![
                switch("database", &["orders", "runs"], &database),
                switch("broker", &["orders"], &broker),
            ],
        );
        wait_for(&health, "orders", ServingStatus::NotServing).await;
        wait_for(&health, "runs", ServingStatus::Serving).await;
        // The database fails while the broker comes back: still not serving.
        database.store(false, Ordering::SeqCst);
        broker.store(true, Ordering::SeqCst);
        wait_for(&health, "runs", ServingStatus::NotServing).await;
        wait_for(&health, "orders", ServingStatus::NotServing).await;
        database.store(true, Ordering::SeqCst);
        wait_for(&health, "runs", ServingStatus::Serving).await;
        wait_for(&health, "orders", ServingStatus::Serving).await;
        watcher.abort();
    }
}

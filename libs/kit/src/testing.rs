//! Test helpers: a fresh PostgreSQL database per test (dropped afterwards),
//! the store conformance suite runner ([`crate::store_conformance!`]), and quiet
//! logs unless `TEST_LOG` is set.
//!
//! PostgreSQL tests never pass silently: when the server is unreachable they
//! fail under `CI=true`, and elsewhere they print a loud SKIPPED line.

pub mod identity;

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Admin URL used to create test databases.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("REBALANCER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test and dropped when this guard is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database, or returns `None` (after saying so) when
    /// PostgreSQL is unreachable outside CI.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable and `CI=true`.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let mut admin = match connect(&admin_url).await {
            Ok(connection) => connection,
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "PostgreSQL unreachable at {admin_url} under CI=true: {error}"
                );
                eprintln!("SKIPPED: PostgreSQL unreachable at {admin_url}: {error}");
                return None;
            }
        };
        let name = format!("rebalancer_test_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE {name}");
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
        {
            panic!("cannot create test database {name}: {error}");
        }
        let _ = admin.close().await;
        let url = replace_database(&admin_url, &name);
        Some(Self { url, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = postgres_admin_url();
        let name = self.name.clone();
        // Dropping must not block or depend on the test's runtime, which may be gone.
        let handle = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    PgConnection::connect_with(&options).await
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let without_db = match base.rfind('/') {
        Some(at) if at > "postgres://".len() => &base[..at],
        _ => base,
    };
    match query {
        Some(query) => format!("{without_db}/{database}?{query}"),
        None => format!("{without_db}/{database}"),
    }
}

/// Runs each store conformance case against both backends: one
/// `#[tokio::test]` per case in a `sqlite` module (a SQLite file in a
/// temporary directory that lives as long as the test) and one in a
/// `postgres` module (a fresh database from [`TestDatabase::create`], so the
/// PostgreSQL case returns early outside CI when the server is unreachable).
/// `open` is the service's `store::open(&DatabaseUrl, &PoolOptions)`; each
/// case is `async fn(store)`.
///
/// ```ignore
/// rebalancer_kit::store_conformance! {
///     open: rebalancer_target::store::open,
///     cases: [create_then_get_round_trips_exactly, tenants_are_isolated],
/// }
/// ```
#[macro_export]
macro_rules! store_conformance {
    (
        open: $open:path,
        cases: [$($case:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = ::tempfile::tempdir().expect("temp dir");
                    let url = $crate::db::DatabaseUrl::Sqlite(dir.path().join("store.db"));
                    let store = $open(&url, &$crate::db::PoolOptions::default())
                        .await
                        .expect("open sqlite");
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(database) = $crate::testing::TestDatabase::create().await else {
                        return;
                    };
                    let url = $crate::db::DatabaseUrl::parse(&database.url).expect("url");
                    let store = $open(&url, &$crate::db::PoolOptions::default())
                        .await
                        .expect("open postgres");
                    super::$case(store).await;
                }
            )*
        }
    };
}

/// Logs to the test output when `TEST_LOG` is set; silent otherwise.
pub fn init_test_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,sqlx=warn,h2=info,hyper=info,tower=info",
            ))
            .with_test_writer()
            .try_init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}

//! Databases: PostgreSQL in production, SQLite as the embedded default. Store
//! code is written once, generic over [`Backend`], with plain SQL that both
//! engines accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`); the few
//! differences live in the `Backend` constants. Each service embeds one
//! migration folder per backend and applies it at start-up (under
//! PostgreSQL's advisory lock).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Decode, Encode, PgPool, Postgres, Sqlite, SqlitePool, Type};

/// The SQL differences between the two engines.
pub trait Backend: Database {
    /// Name for logs and test names.
    const NAME: &'static str;
    /// Row-locking suffix for work queues; SQLite has one writer and needs none.
    const SKIP_LOCKED: &'static str;
    /// Case-insensitive LIKE operator.
    const ILIKE: &'static str;
    /// Starts a transaction that will write. SQLite needs `BEGIN IMMEDIATE`:
    /// a deferred transaction that reads first cannot upgrade to a write once
    /// another connection has committed (`SQLITE_BUSY_SNAPSHOT`, which no
    /// busy timeout waits out).
    const BEGIN_WRITE: &'static str;
    /// Row-locking suffix of a read that a write in the same transaction
    /// depends on; SQLite's write transactions already hold the database.
    const FOR_UPDATE: &'static str;
}

impl Backend for Postgres {
    const NAME: &'static str = "postgres";
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";
    const ILIKE: &'static str = "ILIKE";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = "FOR UPDATE";
}

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
    const SKIP_LOCKED: &'static str = "";
    // SQLite's LIKE is case-insensitive for ASCII.
    const ILIKE: &'static str = "LIKE";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
}

/// An exact decimal column: PostgreSQL `NUMERIC`, SQLite `TEXT` (sqlx has no
/// SQLite decimal codec; text keeps every digit and the scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl From<Decimal> for Dec {
    fn from(value: Decimal) -> Self {
        Self(value)
    }
}

impl Type<Postgres> for Dec {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Dec {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Dec {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<Decimal as Decode<'r, Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for Dec {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Dec {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Dec {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(Self(Decimal::from_str(text)?))
    }
}

/// Where a service keeps its data.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    /// `postgres://...`; a secret because it may carry a password.
    Postgres(SecretString),
    /// A SQLite file, created when missing.
    Sqlite(std::path::PathBuf),
}

impl DatabaseUrl {
    /// Parses `postgres://...`, `postgresql://...` or `sqlite://path` (`sqlite:path`).
    ///
    /// # Errors
    /// When the scheme is neither.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(SecretString::from(url.to_owned())));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            anyhow::ensure!(!path.is_empty(), "sqlite URL needs a file path");
            return Ok(Self::Sqlite(path.into()));
        }
        anyhow::bail!("database URL must start with postgres:// or sqlite://")
    }
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Connects to PostgreSQL.
///
/// # Errors
/// When the URL is malformed or the server unreachable.
pub async fn connect_postgres(url: &SecretString, options: &PoolOptions) -> anyhow::Result<PgPool> {
    let connect = PgConnectOptions::from_str(url.expose_secret())?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await?;
    Ok(pool)
}

/// Opens (creating if needed) a SQLite file in WAL mode with foreign keys on.
///
/// # Errors
/// When the file cannot be created or opened.
pub async fn connect_sqlite(path: &Path, options: &PoolOptions) -> anyhow::Result<SqlitePool> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.min(8))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await?;
    Ok(pool)
}

/// What kind of failure a database error is, for mapping to a gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    UniqueViolation,
    ForeignKeyViolation,
    Other,
}

/// Classifies a sqlx error by the database's own error code.
#[must_use]
pub fn classify(error: &sqlx::Error) -> DbErrorKind {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => DbErrorKind::UniqueViolation,
        Some(db) if db.is_foreign_key_violation() => DbErrorKind::ForeignKeyViolation,
        _ => DbErrorKind::Other,
    }
}

/// A new resource id: a UUIDv7, so ids sort by creation time.
#[must_use]
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Why a claimed idempotency key cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("idempotency key was already used for a different request")]
    Mismatch,
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// The resource created under a claimed key, if the key was seen before.
/// Every service's `idempotency_keys` table has the same shape.
///
/// # Errors
/// [`ClaimError::Mismatch`] when the key was used for a different request.
pub async fn find_claimed<DB>(
    conn: &mut DB::Connection,
    tenant: &str,
    claim: &crate::idempotency::IdempotencyClaim,
) -> Result<Option<String>, ClaimError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row as _;
    let row = sqlx::query(
        "SELECT fingerprint, resource_id FROM idempotency_keys \
         WHERE tenant_id = $1 AND operation = $2 AND key = $3",
    )
    .bind(tenant.to_owned())
    .bind(claim.operation.to_owned())
    .bind(claim.key.clone())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint: String = row.try_get("fingerprint")?;
    if fingerprint != claim.fingerprint {
        return Err(ClaimError::Mismatch);
    }
    Ok(Some(row.try_get("resource_id")?))
}

/// [`find_claimed`] on a pooled connection that goes back before the caller
/// reads the resource: a replay that held it while taking a second one
/// deadlocked the pool under many overlapping retries.
///
/// # Errors
/// [`ClaimError::Mismatch`] when the key was used for a different request.
pub async fn claimed_id<DB>(
    pool: &sqlx::Pool<DB>,
    tenant: &str,
    claim: &crate::idempotency::IdempotencyClaim,
) -> Result<Option<String>, ClaimError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = pool.acquire().await?;
    find_claimed::<DB>(&mut conn, tenant, claim).await
}

/// Records a key as claimed for `resource_id`, inside the create's
/// transaction; a concurrent create with the same key fails on the primary key.
///
/// # Errors
/// The database's error (a unique violation when the key is taken).
pub async fn insert_claim<DB>(
    conn: &mut DB::Connection,
    tenant: &str,
    claim: &crate::idempotency::IdempotencyClaim,
    resource_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> chrono::DateTime<chrono::Utc>: Encode<'a, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, operation, key, fingerprint, resource_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.to_owned())
    .bind(claim.operation.to_owned())
    .bind(claim.key.clone())
    .bind(claim.fingerprint.clone())
    .bind(resource_id.to_owned())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

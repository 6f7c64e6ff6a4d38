//! The Execution service's schema, embedded in the binary by `sqlx::migrate!`: one
//! folder per backend under `migrations/`, applied at start-up (under
//! PostgreSQL's advisory lock) and by `rebalancer migrate`.

use sqlx::migrate::Migrator;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub(super) fn postgres() -> &'static Migrator {
    &POSTGRES
}

pub(super) fn sqlite() -> &'static Migrator {
    &SQLITE
}

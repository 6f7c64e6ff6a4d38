//! The Monitor service's schema, embedded: one folder per backend.

use rebalancer_kit::db::{EmbeddedMigration, migrator};
use sqlx::migrate::Migrator;

const POSTGRES: &[EmbeddedMigration] = &[(
    1,
    "cycles",
    include_str!("../../migrations/postgres/0001_cycles.sql"),
)];

const SQLITE: &[EmbeddedMigration] = &[(
    1,
    "cycles",
    include_str!("../../migrations/sqlite/0001_cycles.sql"),
)];

pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

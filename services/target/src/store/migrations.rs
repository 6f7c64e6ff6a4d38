//! The Target service's schema, embedded: one folder per backend.

use rebalancer_kit::db::{EmbeddedMigration, migrator};
use sqlx::migrate::Migrator;

const POSTGRES: &[EmbeddedMigration] = &[
    (
        1,
        "portfolios",
        include_str!("../../migrations/postgres/0001_portfolios.sql"),
    ),
    (
        2,
        "assignments",
        include_str!("../../migrations/postgres/0002_assignments.sql"),
    ),
];

const SQLITE: &[EmbeddedMigration] = &[
    (
        1,
        "portfolios",
        include_str!("../../migrations/sqlite/0001_portfolios.sql"),
    ),
    (
        2,
        "assignments",
        include_str!("../../migrations/sqlite/0002_assignments.sql"),
    ),
];

pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

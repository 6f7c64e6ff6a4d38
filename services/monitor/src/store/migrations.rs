//! The Monitor service's schema, embedded: one folder per backend.

use rebalancer_kit::db::{EmbeddedMigration, migrator};
use sqlx::migrate::Migrator;

const POSTGRES: &[EmbeddedMigration] = &[
    (
        1,
        "cycles",
        include_str!("../../migrations/postgres/0001_cycles.sql"),
    ),
    (
        2,
        "compact_tickers",
        include_str!("../../migrations/postgres/0002_compact_tickers.sql"),
    ),
    (
        3,
        "drop_evaluations_by_account",
        include_str!("../../migrations/postgres/0003_drop_evaluations_by_account.sql"),
    ),
];

const SQLITE: &[EmbeddedMigration] = &[
    (
        1,
        "cycles",
        include_str!("../../migrations/sqlite/0001_cycles.sql"),
    ),
    (
        2,
        "compact_tickers",
        include_str!("../../migrations/sqlite/0002_compact_tickers.sql"),
    ),
    (
        3,
        "drop_evaluations_by_account",
        include_str!("../../migrations/sqlite/0003_drop_evaluations_by_account.sql"),
    ),
];

pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

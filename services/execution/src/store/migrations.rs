//! The Execution service's schema, embedded: one folder per backend.

use rebalancer_kit::db::{EmbeddedMigration, migrator};
use sqlx::migrate::Migrator;

const POSTGRES: &[EmbeddedMigration] = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/postgres/0001_accounts.sql"),
    ),
    (
        2,
        "cash and assets",
        include_str!("../../migrations/postgres/0002_cash_and_assets.sql"),
    ),
    (
        3,
        "runs",
        include_str!("../../migrations/postgres/0003_runs.sql"),
    ),
    (
        4,
        "blocks",
        include_str!("../../migrations/postgres/0004_blocks.sql"),
    ),
    (
        5,
        "cash to the cent and crossing",
        include_str!("../../migrations/postgres/0005_cash_to_the_cent_and_crossing.sql"),
    ),
];

const SQLITE: &[EmbeddedMigration] = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/sqlite/0001_accounts.sql"),
    ),
    (
        2,
        "cash and assets",
        include_str!("../../migrations/sqlite/0002_cash_and_assets.sql"),
    ),
    (
        3,
        "runs",
        include_str!("../../migrations/sqlite/0003_runs.sql"),
    ),
    (
        4,
        "blocks",
        include_str!("../../migrations/sqlite/0004_blocks.sql"),
    ),
    (
        5,
        "cash to the cent and crossing",
        include_str!("../../migrations/sqlite/0005_cash_to_the_cent_and_crossing.sql"),
    ),
];

pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

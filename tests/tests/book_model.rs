//! The model-based property test of the account book (issue 10) on SQLite:
//! a few hundred random sequences of deposits, withdrawals, upserts, runs of
//! every type, edits, approvals, cancellations, rejects, partial fills,
//! clock jumps and restarts against the real services in-process, the
//! book's invariants checked after every step. The model and the invariants
//! live in [`rebalancer_tests::book_model`]; the PostgreSQL run at a larger
//! size is the `book_model_pg` bench.
//!
//! `BOOK_MODEL_CASES=<n>` runs more or fewer sequences, `BOOK_MODEL_SEED=<n>`
//! replays the seed a run printed, `BOOK_MODEL_SKIP=<invariant>,...` looks
//! past known broken invariants.

use rebalancer_tests::Backend;
use rebalancer_tests::book_model::{Plan, Size};

/// Sequences run by default: sized for about two minutes of a debug build
/// on two cores.
const CASES: u32 = 250;

#[test]
fn the_book_keeps_its_invariants_sqlite() {
    let plan = Plan::from_env(
        Backend::Sqlite,
        CASES,
        Size {
            max_accounts: 3,
            max_ops: 24,
        },
        true,
    );
    let outcome = plan.run_and_report("book model on SQLite");
    assert!(outcome.is_some(), "SQLite is always there");
}

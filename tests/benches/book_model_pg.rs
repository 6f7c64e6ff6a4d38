//! The model-based property test of the account book (issue 10) on
//! PostgreSQL at a larger size than the SQLite test of CI: more sequences,
//! longer ones, more accounts, on one stack (a fresh tenant per sequence).
//! The model and the invariants live in [`rebalancer_tests::book_model`].
//!
//! ```text
//! cargo bench -p rebalancer-tests --bench book_model_pg               # 1,000 sequences of up to 40 steps
//! cargo bench -p rebalancer-tests --bench book_model_pg -- --smoke    # 20 (or BENCH_SMOKE=1)
//! BOOK_MODEL_CASES=5000 BOOK_MODEL_SEED=7 cargo bench -p rebalancer-tests --bench book_model_pg
//! ```
//!
//! Without `--bench` (`cargo test --all-targets`) it runs at the smoke size.
//! PostgreSQL must be reachable: without it the binary fails (under
//! `CI=true` the database helper already panics).

use rebalancer_tests::Backend;
use rebalancer_tests::book_model::{Plan, Size};

/// The allocator of the `rebalancer` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn smoke() -> bool {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.iter().any(|a| a == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1")
        || !arguments.iter().any(|a| a == "--bench")
}

fn main() -> anyhow::Result<()> {
    let (cases, size) = if smoke() {
        (
            20,
            Size {
                max_accounts: 3,
                max_ops: 24,
            },
        )
    } else {
        (
            1_000,
            Size {
                max_accounts: 4,
                max_ops: 40,
            },
        )
    };
    let plan = Plan::from_env(Backend::Postgres, cases, size, false);
    if plan.run_and_report("book model on PostgreSQL").is_none() {
        anyhow::bail!("PostgreSQL is needed for this benchmark");
    }
    Ok(())
}

//! `rebalancer`: the one binary of the platform. See `rebalancer --help`.

use clap::Parser;

/// mimalloc: the services allocate many small, short-lived values (decoded
/// rows, wire messages); glibc's allocator spent a sixth of a monitor cycle
/// consolidating free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = rebalancer_server::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(rebalancer_server::run(cli))
}

//! `rebalancer`: the one binary of the platform. See `rebalancer --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = rebalancer_server::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(rebalancer_server::run(cli))
}

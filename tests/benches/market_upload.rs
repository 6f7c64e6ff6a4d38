//! Bulk loads of the platform's market data over gRPC, on SQLite and
//! PostgreSQL: a universe of N assets in one `UpsertAssets` call, then N
//! quotes in one `UpsertQuotes` call (new rows, then every row replaced),
//! each timed from the client as a caller sees it; then `GetQuotes` of 1,000
//! symbols checks what was stored.
//!
//! ```text
//! cargo bench -p rebalancer-tests --bench market_upload               # 10,000 symbols
//! cargo bench -p rebalancer-tests --bench market_upload -- --smoke    # 1,000 (or BENCH_SMOKE=1)
//! ```
//!
//! Without cargo bench's `--bench` argument (`cargo test --all-targets`) it
//! runs at the smoke size. Prints one line per figure.

use std::time::Instant;

use anyhow::Context;
use rebalancer_kit::Clock;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::{
    Asset, GetQuotesRequest, Quote, UpsertAssetsRequest, UpsertQuotesRequest,
};
use rebalancer_server::stack::MarketChoice;
use rebalancer_tests::{Backend, StackOptions, TestStack};

/// The allocator of the `rebalancer` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn symbols_from_environment() -> usize {
    let arguments: Vec<String> = std::env::args().collect();
    let smoke = arguments.iter().any(|argument| argument == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|value| value == "1")
        || !arguments.iter().any(|argument| argument == "--bench");
    if smoke { 1_000 } else { 10_000 }
}

/// A ticker per index: four letters and digits, starting with a letter.
fn ticker(index: usize) -> String {
    format!("Q{index:05}")
}

fn universe(count: usize) -> Vec<Asset> {
    (0..count)
        .map(|index| Asset {
            symbol: ticker(index),
            name: format!("Listed company number {index}"),
            exchange: "NYSE".to_owned(),
            asset_class: "us_equity".to_owned(),
            active: true,
            tradable: true,
            fractionable: index % 3 != 0,
            marginable: true,
            average_daily_volume: format!("{}", 100_000 + index * 37),
            ..Asset::default()
        })
        .collect()
}

fn quotes(count: usize, at: chrono::DateTime<chrono::Utc>, cents: usize) -> Vec<Quote> {
    (0..count)
        .map(|index| {
            let last = 1000 + (index * 7919 + cents) % 90_000;
            Quote {
                symbol: ticker(index),
                last: format!("{}.{:02}", last / 100, last % 100),
                bid: format!("{}.{:02}", (last - 1) / 100, (last - 1) % 100),
                ask: format!("{}.{:02}", (last + 1) / 100, (last + 1) % 100),
                timestamp: Some(rebalancer_kit::wire::timestamp(at)),
            }
        })
        .collect()
}

async fn run(backend: Backend, count: usize) -> anyhow::Result<()> {
    let options = StackOptions {
        market: MarketChoice::Platform,
        ..StackOptions::default()
    };
    let Some(stack) = TestStack::start_with(backend, options).await else {
        anyhow::bail!("{backend:?} is needed for this benchmark");
    };
    let firm = stack.tenant("bench");
    let mut market = MarketDataServiceClient::new(stack.channel())
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let name = format!("{backend:?}").to_lowercase();

    let started = Instant::now();
    let loaded = market
        .upsert_assets(firm.request(UpsertAssetsRequest {
            assets: universe(count),
        }))
        .await
        .context("assets")?
        .into_inner();
    let assets_took = started.elapsed();
    anyhow::ensure!(loaded.created == i32::try_from(count)?, "{loaded:?}");
    println!(
        "market_upload {name}: UpsertAssets {count} new assets in {} ms",
        assets_took.as_millis()
    );

    let now = stack.clock.now();
    for (round, at, cents) in [
        ("new", now - chrono::Duration::minutes(1), 0),
        ("replacing", now, 13),
    ] {
        let started = Instant::now();
        let stored = market
            .upsert_quotes(firm.request(UpsertQuotesRequest {
                quotes: quotes(count, at, cents),
            }))
            .await
            .context("quotes")?
            .into_inner();
        let took = started.elapsed();
        anyhow::ensure!(stored.stored == i32::try_from(count)?, "{stored:?}");
        println!(
            "market_upload {name}: UpsertQuotes {count} {round} quotes in {} ms",
            took.as_millis()
        );
    }

    let wanted: Vec<String> = (0..count.min(1000)).map(ticker).collect();
    let read = market
        .get_quotes(firm.request(GetQuotesRequest {
            symbols: wanted.clone(),
        }))
        .await
        .context("read back")?
        .into_inner();
    let expected = quotes(count, now, 13);
    anyhow::ensure!(read.missing_symbols.is_empty(), "{:?}", read.missing);
    for (quote, want) in read.quotes.iter().zip(&expected) {
        anyhow::ensure!(
            quote.symbol == want.symbol && quote.last == want.last,
            "{quote:?} != {want:?}"
        );
    }
    stack.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = symbols_from_environment();
    run(Backend::Sqlite, count).await?;
    run(Backend::Postgres, count).await?;
    Ok(())
}

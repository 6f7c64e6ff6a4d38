//! Market data and runs as the cross-service tests drive them: listed
//! assets and quotes a platform uploads, and a run ticked until it ends.

use chrono::{DateTime, TimeDelta, Utc};
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{Asset, GetRunRequest, Quote, Run, RunStatus};

use crate::TestStack;

/// A tradable, marginable US equity listed on ARCA.
#[must_use]
pub fn listed_asset(symbol: &str, fractionable: bool) -> Asset {
    Asset {
        symbol: symbol.to_owned(),
        name: format!("{symbol} Trust"),
        exchange: "ARCA".to_owned(),
        asset_class: "us_equity".to_owned(),
        active: true,
        tradable: true,
        fractionable,
        marginable: true,
        ..Asset::default()
    }
}

/// A last-price quote at `at`.
#[must_use]
pub fn quote(symbol: &str, last: &str, at: DateTime<Utc>) -> Quote {
    Quote {
        symbol: symbol.to_owned(),
        last: last.to_owned(),
        timestamp: Some(rebalancer_kit::wire::timestamp(at)),
        ..Quote::default()
    }
}

/// Ticks the worker a simulated second at a time until run `id` is no
/// longer queued or in progress (at most 600 ticks); the run as it ends.
///
/// # Panics
/// When the run cannot be read.
pub async fn tick_until_ended(
    stack: &TestStack,
    runs: &mut RunServiceClient<TracedChannel>,
    firm: &CallContext,
    id: &str,
) -> Run {
    let read = |runs: &mut RunServiceClient<TracedChannel>| {
        let request = firm.request(GetRunRequest {
            run_id: id.to_owned(),
        });
        let mut runs = runs.clone();
        async move {
            runs.get_run(request)
                .await
                .expect("run")
                .into_inner()
                .run
                .expect("run")
        }
    };
    let mut run = read(runs).await;
    for _ in 0..600 {
        if !matches!(
            RunStatus::try_from(run.status),
            Ok(RunStatus::Queued | RunStatus::InProgress)
        ) {
            break;
        }
        stack.advance_and_tick(TimeDelta::seconds(1), 1).await;
        run = read(runs).await;
    }
    run
}

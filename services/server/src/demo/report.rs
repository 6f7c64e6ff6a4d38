//! The demo's per-day summary: accounts by status, runs by type and result,
//! traded notional and execution quality.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Context as _;
use chrono::NaiveDate;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::RunType;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::{GetExecutionQualityRequest, Run, RunStatus};
use rebalancer_proto::monitor::{Cycle, EvaluationStatus};
use rust_decimal::Decimal;

/// What one simulated day did.
#[derive(Debug, Clone)]
pub struct DaySummary {
    pub date: NaiveDate,
    pub accounts: i64,
    pub by_status: Vec<(String, i64)>,
    /// (run type, result) → runs.
    pub runs: BTreeMap<(String, String), usize>,
    pub traded_notional: Decimal,
    pub blocks: usize,
    /// Notional-weighted, basis points.
    pub slippage_vs_arrival: Option<Decimal>,
    pub slippage_vs_vwap: Option<Decimal>,
    pub cycle_seconds: f64,
    pub day_seconds: f64,
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

fn lower_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// Builds the summary of a day from its cycle and runs.
///
/// # Errors
/// When a quality report cannot be read.
pub async fn summarize(
    channel: &TracedChannel,
    call: &CallContext,
    date: NaiveDate,
    cycle: &Cycle,
    runs: &[Run],
    cycle_seconds: f64,
    day_seconds: f64,
) -> anyhow::Result<DaySummary> {
    let by_status = cycle
        .status_counts
        .iter()
        .map(|c| {
            let name = EvaluationStatus::try_from(c.status).map_or("unknown", |s| s.as_str_name());
            (lower_name(name, "EVALUATION_STATUS_"), c.count)
        })
        .collect();
    let mut by_run = BTreeMap::new();
    let mut traded = Decimal::ZERO;
    let mut blocks = BTreeSet::new();
    for run in runs {
        let kind = RunType::try_from(run.r#type).map_or("unknown", |t| t.as_str_name());
        let status = RunStatus::try_from(run.status).map_or("unknown", |s| s.as_str_name());
        *by_run
            .entry((
                lower_name(kind, "RUN_TYPE_"),
                lower_name(status, "RUN_STATUS_"),
            ))
            .or_insert(0) += 1;
        for order in &run.orders {
            traded += decimal(&order.filled_quantity) * decimal(&order.filled_avg_price);
            if !order.block_order_id.is_empty() {
                blocks.insert(order.block_order_id.clone());
            }
        }
    }
    let mut orders = OrderServiceClient::new(channel.clone());
    let mut weighted_arrival = Decimal::ZERO;
    let mut weighted_vwap = Decimal::ZERO;
    let mut weight = Decimal::ZERO;
    for block in &blocks {
        let quality = orders
            .get_execution_quality(call.request(GetExecutionQualityRequest {
                block_order_id: block.clone(),
                ..GetExecutionQualityRequest::default()
            }))
            .await
            .context("execution quality")?
            .into_inner()
            .quality
            .unwrap_or_default();
        let notional = decimal(&quality.filled_notional);
        weighted_arrival += decimal(&quality.slippage_vs_arrival_bps) * notional;
        weighted_vwap += decimal(&quality.slippage_vs_vwap_bps) * notional;
        weight += notional;
    }
    let average = |sum: Decimal| (weight > Decimal::ZERO).then(|| (sum / weight).round_dp(2));
    Ok(DaySummary {
        date,
        accounts: cycle.accounts_evaluated,
        by_status,
        runs: by_run,
        traded_notional: traded.round_dp(2),
        blocks: blocks.len(),
        slippage_vs_arrival: average(weighted_arrival),
        slippage_vs_vwap: average(weighted_vwap),
        cycle_seconds,
        day_seconds,
    })
}

/// Dollars with thousands separators: `15,801,250.85`.
fn dollars(amount: Decimal) -> String {
    let text = amount.round_dp(2).abs().to_string();
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}${grouped}.{cents:0<2}")
}

impl fmt::Display for DaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "── {} ── {} accounts evaluated in {:.1} s; day done in {:.1} s",
            self.date.format("%a %Y-%m-%d"),
            self.accounts,
            self.cycle_seconds,
            self.day_seconds
        )?;
        writeln!(f, "  accounts by status")?;
        for (status, count) in &self.by_status {
            writeln!(f, "    {status:<24}{count:>8}")?;
        }
        writeln!(f, "  runs by type and result")?;
        if self.runs.is_empty() {
            writeln!(f, "    (none)")?;
        }
        for ((kind, status), count) in &self.runs {
            writeln!(f, "    {kind:<16}{status:<22}{count:>8}")?;
        }
        let bp = |value: Option<Decimal>| {
            value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:+} bp"))
        };
        write!(
            f,
            "  traded {} in {} blocks; slippage vs arrival {}, vs interval VWAP {}",
            dollars(self.traded_notional),
            self.blocks,
            bp(self.slippage_vs_arrival),
            bp(self.slippage_vs_vwap)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn dollars_are_grouped() {
        assert_eq!(
            dollars("15801250.85".parse().expect("decimal")),
            "$15,801,250.85"
        );
        assert_eq!(dollars("999.5".parse().expect("decimal")), "$999.50");
        assert_eq!(dollars("-1000".parse().expect("decimal")), "-$1,000.00");
    }
}

//! What tax-loss harvesting is worth on real history: a $100,000 taxable
//! account in the S&P composite (dividends reinvested, Shiller's monthly
//! data), harvested when its loss passes a threshold (the proceeds bought
//! in a substitute tracking the same index), over every 10-year window
//! starting in a January from 1926 to 2014. Prints, per threshold, how
//! often it harvests, the losses harvested, and the net tax benefit a year
//! (tax saved at harvest — short-term losses at 37%, long-term at 23.8% —
//! less the long-term tax on the lower basis when the account is sold at
//! the end; the time value of the deferral is not counted), as a percent
//! of the initial value: mean, median, worst, best; and two named decades.
//!
//! `cargo bench -p rebalancer-domain --bench harvest_backtest`;
//! `--smoke` (or `BENCH_SMOKE=1`) runs every tenth window.

use rebalancer_domain::backtest::{Month, parse_shiller};
use rebalancer_domain::harvest::{HarvestRule, TaxRates, backtest};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const SHILLER: &str = include_str!("../../../services/monitor/src/simulate/shiller.csv");
const INITIAL: Decimal = dec!(100000);
const YEARS: i32 = 10;

fn window(history: &[Month], year: i32, month: u32, months: usize) -> Option<&[Month]> {
    let start = history
        .iter()
        .position(|m| m.year == year && m.month == month)?;
    history.get(start..start + months)
}

fn percent(value: Decimal) -> String {
    format!("{:.3}%", value * dec!(100) / INITIAL)
}

fn main() {
    let smoke = std::env::args().any(|arg| arg == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1");
    let history = parse_shiller(SHILLER);
    let rates = TaxRates {
        short_term: dec!(0.37),
        long_term: dec!(0.238),
    };
    let months = usize::try_from(YEARS * 12).unwrap_or(120);
    let step = if smoke { 10 } else { 1 };
    println!(
        "harvest_backtest: {YEARS}-year windows from January 1926 to January 2014 (every {step}), $100,000, ST 37% / LT 23.8%"
    );
    for threshold in [dec!(5), dec!(10), dec!(20)] {
        let rule = HarvestRule {
            loss_percent: threshold,
            minimum_loss: dec!(100),
        };
        let mut yearly: Vec<Decimal> = Vec::new();
        let mut harvests = 0u32;
        let mut losses = Decimal::ZERO;
        let mut windows = 0u32;
        for year in (1926..=2014).step_by(step) {
            let Some(slice) = window(&history, year, 1, months) else {
                continue;
            };
            let outcome = backtest(slice, &rule, rates, INITIAL);
            harvests += outcome.harvests;
            losses += outcome.short_term_losses + outcome.long_term_losses;
            yearly.push(outcome.net_benefit() / Decimal::from(YEARS));
            windows += 1;
        }
        yearly.sort();
        let count = Decimal::from(yearly.len().max(1));
        let mean: Decimal = yearly.iter().copied().sum::<Decimal>() / count;
        let median = yearly.get(yearly.len() / 2).copied().unwrap_or_default();
        let worst = yearly.first().copied().unwrap_or_default();
        let best = yearly.last().copied().unwrap_or_default();
        println!(
            "  loss threshold {threshold}%: {windows} windows, {:.2} harvests per window, losses harvested {} of the initial per window; net benefit a year: mean {}, median {}, worst {}, best {}",
            Decimal::from(harvests) / Decimal::from(windows.max(1)),
            percent(losses / Decimal::from(windows.max(1))),
            percent(mean),
            percent(median),
            percent(worst),
            percent(best),
        );
        for (name, year, month) in [("2000-2009", 2000, 1), ("2007-10..2017-09", 2007, 10)] {
            if let Some(slice) = window(&history, year, month, months) {
                let outcome = backtest(slice, &rule, rates, INITIAL);
                println!(
                    "    {name}: {} harvests, losses {} (short {} / long {}), tax saved {}, owed at the end {}, net a year {}",
                    outcome.harvests,
                    percent(outcome.short_term_losses + outcome.long_term_losses),
                    percent(outcome.short_term_losses),
                    percent(outcome.long_term_losses),
                    percent(outcome.tax_saved),
                    percent(outcome.tax_owed_at_end),
                    percent(outcome.net_benefit() / Decimal::from(YEARS)),
                );
            }
        }
    }
}

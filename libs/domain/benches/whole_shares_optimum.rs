//! How close whole-share rebalancing gets to the best integer solution.
//!
//! The planner rounds each dollar allocation down to whole shares and then
//! spends the leftover one share at a time, greedily (see
//! `trades::whole_shares`). This bench draws many small cash-only accounts (2
//! to 4 non-fractionable assets at $20 to $900, random two-decimal targets,
//! $1,000 to $50,000 of cash), plans a full rebalance in whole shares, and
//! compares the plan with the exhaustive optimum: the integer share counts
//! within the same budget minimising the same objective, the sum over assets
//! of (target value − value)², in squared dollars.
//!
//! Everything is `Decimal`, ratios included; the cases come from a fixed seed
//! so every run prints the same figures. `--smoke` (or `BENCH_SMOKE=1`) runs a
//! handful of cases only.

use std::collections::HashMap;
use std::time::Instant;

use rebalancer_domain::Symbol;
use rebalancer_domain::portfolio::Weight;
use rebalancer_domain::trades::{AccountSnapshot, PlanInput, PlanKind, Side, TradeAsset, plan};
use rust_decimal::{Decimal, RoundingStrategy};

const FULL_CASES: usize = 2_000;
const SMOKE_CASES: usize = 20;
const SEED: u64 = 0x5EED_5A1E;
const TICKERS: [&str; 4] = ["AAA", "BBB", "CCC", "DDD"];
const HALF: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// SplitMix64: a tiny deterministic generator, enough to draw test cases.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform enough in `low..=high` for a bench.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One cash-only account and its target.
struct Case {
    cash: Decimal,
    prices: Vec<Decimal>,
    /// Percent per asset, two decimals; the rest of 100 is the cash weight.
    percents: Vec<Decimal>,
}

impl Case {
    fn draw(rng: &mut SplitMix64) -> Self {
        let asset_count = rng.between(2, 4);
        let count = usize::try_from(asset_count).expect("2 to 4 assets");
        let prices = (0..count)
            .map(|_| cents(rng.between(2_000, 90_000)))
            .collect();
        let raw_weights: Vec<u64> = (0..count).map(|_| rng.between(1, 100)).collect();
        let raw_cash = rng.between(0, 10);
        let raw_total: u64 = raw_weights.iter().sum::<u64>() + raw_cash;
        // Each asset gets at least 0.01%; the rest of 10,000 basis points is cash.
        let spread = 10_000 - asset_count;
        let percents = raw_weights
            .iter()
            .map(|raw| cents(raw * spread / raw_total + 1))
            .collect();
        Self {
            cash: cents(rng.between(100_000, 5_000_000)),
            prices,
            percents,
        }
    }

    fn symbols(&self) -> Vec<Symbol> {
        TICKERS[..self.prices.len()]
            .iter()
            .map(|ticker| Symbol::parse(ticker).expect("bench tickers are well formed"))
            .collect()
    }

    fn cash_percent(&self) -> Decimal {
        Decimal::ONE_HUNDRED - self.percents.iter().sum::<Decimal>()
    }

    /// Target dollars per asset (the account is all cash, so equity is cash).
    fn targets(&self) -> Vec<Decimal> {
        self.percents
            .iter()
            .map(|percent| self.cash * *percent / Decimal::ONE_HUNDRED)
            .collect()
    }

    /// Cash above the cash target: what both the plan and the optimum may spend.
    fn budget(&self) -> Decimal {
        self.cash - self.cash * self.cash_percent() / Decimal::ONE_HUNDRED
    }

    /// Shares per asset bought by the planner's full rebalance.
    fn planned_shares(&self) -> Vec<Decimal> {
        let symbols = self.symbols();
        let mut target: Vec<Weight> = symbols
            .iter()
            .zip(&self.percents)
            .map(|(symbol, percent)| Weight::asset(symbol.clone(), *percent))
            .collect();
        if self.cash_percent() > Decimal::ZERO {
            target.push(Weight::cash(self.cash_percent()));
        }
        let assets: HashMap<Symbol, TradeAsset> = symbols
            .iter()
            .zip(&self.prices)
            .map(|(symbol, price)| {
                let asset = TradeAsset {
                    symbol: symbol.clone(),
                    price: *price,
                    tradable: true,
                    fractionable: false,
                };
                (symbol.clone(), asset)
            })
            .collect();
        let account = AccountSnapshot {
            cash: self.cash,
            holdings: Vec::new(),
            buys_blocked: false,
            sells_blocked: false,
        };
        let planned = plan(&PlanInput {
            kind: PlanKind::FullRebalance,
            account: &account,
            target: &target,
            assets: &assets,
            minimum_order_notional: Decimal::ONE,
            whole_shares_only: true,
        });
        symbols
            .iter()
            .map(|symbol| {
                planned
                    .orders
                    .iter()
                    .filter(|order| &order.symbol == symbol && order.side == Side::Buy)
                    .map(|order| order.quantity)
                    .sum()
            })
            .collect()
    }
}

fn cents(amount: u64) -> Decimal {
    Decimal::from(amount) / Decimal::ONE_HUNDRED
}

/// Σ (target − shares × price)², in squared dollars.
fn residual(targets: &[Decimal], prices: &[Decimal], shares: &[Decimal]) -> Decimal {
    targets
        .iter()
        .zip(prices)
        .zip(shares)
        .map(|((target, price), count)| squared_gap(*target, *price, *count))
        .sum()
}

fn squared_gap(target: Decimal, price: Decimal, shares: Decimal) -> Decimal {
    let gap = target - shares * price;
    gap * gap
}

/// Share counts every optimum lies within, per asset.
///
/// Above: an asset more than half a share over target would do better with
/// one share less, which also frees budget. Below: an asset `p + Σ others' p/2`
/// or more under target could afford one more share (the others are at most
/// half a share over their targets, and the targets add up to the budget), and
/// that share would bring it closer.
fn share_ranges(
    targets: &[Decimal],
    prices: &[Decimal],
    budget: Decimal,
) -> Vec<(Decimal, Decimal)> {
    let half_prices: Decimal = prices.iter().sum::<Decimal>() * HALF;
    targets
        .iter()
        .zip(prices)
        .map(|(target, price)| {
            let affordable = (budget / *price).floor();
            let highest = (*target / *price + HALF).floor().min(affordable);
            let others_half = half_prices - *price * HALF;
            let lowest = ((*target - *price - others_half) / *price)
                .floor()
                .max(Decimal::ZERO);
            (lowest, highest)
        })
        .collect()
}

/// Exhaustive search for the least residual within the budget, pruned by the
/// best residual found so far (starting from `incumbent`, a feasible one).
struct Search<'a> {
    targets: &'a [Decimal],
    prices: &'a [Decimal],
    ranges: Vec<(Decimal, Decimal)>,
    budget: Decimal,
    best: Decimal,
}

impl Search<'_> {
    fn run(mut self) -> Decimal {
        self.descend(0, Decimal::ZERO, Decimal::ZERO);
        self.best
    }

    fn descend(&mut self, asset: usize, spent: Decimal, partial: Decimal) {
        if partial >= self.best {
            return;
        }
        let target = self.targets[asset];
        let price = self.prices[asset];
        let (lowest, highest) = self.ranges[asset];
        let affordable = ((self.budget - spent) / price).floor().min(highest);
        if affordable < lowest {
            return;
        }
        if asset + 1 == self.targets.len() {
            // One asset left: its term is convex in the share count, so the
            // count nearest its target within the range is best.
            let nearest = (target / price)
                .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                .clamp(lowest, affordable);
            let total = partial + squared_gap(target, price, nearest);
            if total < self.best {
                self.best = total;
            }
            return;
        }
        let mut shares = affordable;
        while shares >= lowest {
            let term = squared_gap(target, price, shares);
            self.descend(asset + 1, spent + shares * price, partial + term);
            shares -= Decimal::ONE;
        }
    }
}

/// Figures over all cases.
#[derive(Default)]
struct Tally {
    cases: usize,
    optimal: usize,
    ratio_sum: Decimal,
    worst_ratio: Decimal,
    /// Cases whose optimum is exactly on target while the plan is not: no
    /// finite ratio, so they are counted apart.
    missed_exact: usize,
}

impl Tally {
    fn record(&mut self, planned: Decimal, optimum: Decimal) {
        self.cases += 1;
        if planned == optimum {
            self.optimal += 1;
        }
        if optimum.is_zero() {
            if planned.is_zero() {
                self.add_ratio(Decimal::ONE);
            } else {
                self.missed_exact += 1;
            }
            return;
        }
        self.add_ratio(planned / optimum);
    }

    fn add_ratio(&mut self, ratio: Decimal) {
        self.ratio_sum += ratio;
        self.worst_ratio = self.worst_ratio.max(ratio);
    }

    fn print(&self, elapsed_ms: u128) {
        let rated = self.cases - self.missed_exact;
        let mean_ratio = if rated == 0 {
            Decimal::ZERO
        } else {
            self.ratio_sum / Decimal::from(rated)
        };
        let optimal_percent = if self.cases == 0 {
            Decimal::ZERO
        } else {
            Decimal::from(self.optimal) * Decimal::ONE_HUNDRED / Decimal::from(self.cases)
        };
        println!(
            "whole_shares_optimum: cases={} objective=sum_squared_dollar_deviation optimal={}% mean_ratio={} worst_ratio={} elapsed_ms={elapsed_ms}",
            self.cases,
            optimal_percent.round_dp(1).normalize(),
            mean_ratio.round_dp(4).normalize(),
            self.worst_ratio.round_dp(4).normalize(),
        );
        if self.missed_exact > 0 {
            println!(
                "whole_shares_optimum: {} cases had an exact optimum the plan missed (no ratio)",
                self.missed_exact
            );
        }
    }
}

/// Smoke size on request, and when run as a test (`cargo test
/// --all-targets` runs benches without cargo bench's `--bench` argument).
fn smoke_requested() -> bool {
    std::env::args().any(|argument| argument == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|value| value == "1")
        || !std::env::args().any(|argument| argument == "--bench")
}

fn main() {
    let case_count = if smoke_requested() {
        SMOKE_CASES
    } else {
        FULL_CASES
    };
    let started = Instant::now();
    let mut rng = SplitMix64(SEED);
    let mut tally = Tally::default();
    for _ in 0..case_count {
        let case = Case::draw(&mut rng);
        let targets = case.targets();
        let shares = case.planned_shares();
        let budget = case.budget();
        let spent: Decimal = shares.iter().zip(&case.prices).map(|(s, p)| *s * *p).sum();
        assert!(spent <= budget, "the plan spent {spent} of {budget}");
        let planned = residual(&targets, &case.prices, &shares);
        let optimum = Search {
            targets: &targets,
            prices: &case.prices,
            ranges: share_ranges(&targets, &case.prices, budget),
            budget,
            best: planned,
        }
        .run();
        tally.record(planned, optimum);
    }
    tally.print(started.elapsed().as_millis());
}

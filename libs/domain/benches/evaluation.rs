//! Accounts evaluated per second on one core: each account holds ten
//! positions and cash against a ten-asset target with portfolio-level
//! absolute and relative bands, a mix of accounts inside and outside their
//! bands, some in cooldown, some with pending deposits. Criterion reports the
//! throughput in accounts (elements) per second; the target is 1,000,000.
//!
//! `cargo bench -p rebalancer-domain --bench evaluation` (add `-- --quick`
//! for a short run).

use std::hint::black_box;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rebalancer_domain::Symbol;
use rebalancer_domain::cash::CashMovementKind;
use rebalancer_domain::evaluation::{
    AccountView, AssignmentView, EvaluationInput, NO_PRICE_NOTES, PendingMovement, PreparedTarget,
    Prices, TargetView, evaluate,
};
use rebalancer_domain::portfolio::{
    BandKind, DriftBand, PortfolioStatus, RebalanceCondition, Weight,
};
use rust_decimal::Decimal;

const ACCOUNTS: usize = 1000;
const SYMBOLS: [&str; 10] = [
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "SPY", "TLT", "IEF", "GLD",
];

struct Account {
    cash: Decimal,
    positions: Vec<(String, Decimal)>,
    pending: Vec<PendingMovement>,
    last_rebalanced_at: Option<DateTime<Utc>>,
}

fn accounts(now: DateTime<Utc>, prices: &Prices) -> Vec<Account> {
    (0..ACCOUNTS)
        .map(|i| {
            // Roughly on target (9.5% each), some tilted out of their bands.
            let tilt = Decimal::from(i % 7) - Decimal::from(3);
            let positions = SYMBOLS
                .iter()
                .enumerate()
                .map(|(k, symbol)| {
                    let dollars = Decimal::from(9_500)
                        + if k == 0 {
                            tilt * Decimal::from(400)
                        } else {
                            Decimal::ZERO
                        };
                    (symbol.to_string(), (dollars / prices[*symbol]).round_dp(4))
                })
                .collect();
            let pending = if i % 10 == 0 {
                vec![PendingMovement {
                    id: format!("dep-{i}"),
                    kind: CashMovementKind::Deposit,
                    amount: Decimal::from(1_000),
                }]
            } else {
                Vec::new()
            };
            Account {
                cash: Decimal::from(5_000 + (i % 13) * 100),
                positions,
                pending,
                last_rebalanced_at: Some(now - Duration::days(i64::try_from(i % 40).unwrap_or(0))),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 14, 45, 0)
        .single()
        .expect("valid");
    let today = NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid");
    let prices: Prices = SYMBOLS
        .iter()
        .enumerate()
        .map(|(k, symbol)| {
            (
                symbol.to_string(),
                Decimal::new(10_000 + 3_517 * i64::try_from(k).unwrap_or(0), 2),
            )
        })
        .collect();
    let mut weights = vec![Weight::cash(Decimal::from(5))];
    weights.extend(
        SYMBOLS
            .iter()
            .map(|s| Weight::asset(Symbol::parse(s).expect("symbol"), Decimal::new(95, 1))),
    );
    let conditions = vec![
        RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Absolute,
            percent: Decimal::from(2),
            symbol: None,
        }),
        RebalanceCondition::DriftBand(DriftBand {
            kind: BandKind::Relative,
            percent: Decimal::from(25),
            symbol: None,
        }),
    ];
    let prepared = PreparedTarget::new(
        weights,
        conditions,
        7,
        Decimal::from(500),
        PortfolioStatus::Active,
    );
    let target = TargetView {
        target: &prepared,
        target_changed_at: Some(now - Duration::days(100)),
    };
    let book = accounts(now, &prices);
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(ACCOUNTS as u64));
    group.bench_function("accounts_10_positions", |b| {
        b.iter(|| {
            for account in &book {
                let evaluation = evaluate(&EvaluationInput {
                    today,
                    now,
                    assignment: AssignmentView::Active {
                        target,
                        rebalancing_enabled: true,
                    },
                    account: Some(AccountView {
                        cash: account.cash,
                        positions: &account.positions,
                        restrictions: &[],
                        pending: &account.pending,
                        open_run: false,
                        last_rebalanced_at: account.last_rebalanced_at,
                    }),
                    prices: &prices,
                    price_notes: &NO_PRICE_NOTES,
                });
                black_box(evaluation);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

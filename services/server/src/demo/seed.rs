//! The demo tenant: four model portfolios (the seed's Balanced, Growth,
//! Income, and a Core & Satellite target made of two sleeves) and a few
//! thousand accounts with varied cash and holdings, pending deposits, a
//! withdrawal request and restricted accounts. Everything goes through the
//! public gRPC API, with idempotency keys, as a client would do it.

use std::collections::HashMap;

use anyhow::Context as _;
use futures::StreamExt as _;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{
    ApprovalMode, ConditionSubType, ConditionType, RebalanceCondition, Weight, WeightType,
};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::{
    CashMovementType, CreateCashMovementRequest, GetQuotesRequest, Position, Restriction,
    UpsertAccountRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rust_decimal::Decimal;

/// Requests in flight while seeding.
const CONCURRENCY: usize = 8;

/// SplitMix64: a tiny deterministic generator for the demo's variety.
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A whole number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn weight(symbol: &str, percent: &str) -> Weight {
    Weight {
        r#type: if symbol.is_empty() {
            WeightType::Cash
        } else {
            WeightType::Asset
        }
        .into(),
        symbol: symbol.to_owned(),
        percent: percent.to_owned(),
        portfolio_id: String::new(),
    }
}

fn sleeve(portfolio_id: &str, percent: &str) -> Weight {
    Weight {
        r#type: WeightType::Portfolio.into(),
        symbol: String::new(),
        percent: percent.to_owned(),
        portfolio_id: portfolio_id.to_owned(),
    }
}

fn condition(
    kind: ConditionType,
    sub: ConditionSubType,
    percent: &str,
    day: &str,
) -> RebalanceCondition {
    RebalanceCondition {
        r#type: kind.into(),
        sub_type: sub.into(),
        percent: percent.to_owned(),
        day: day.to_owned(),
        symbol: String::new(),
        only_outside_bands: false,
    }
}

/// A model: name, asset weights (symbol, percent; "" is cash).
struct Model {
    name: &'static str,
    weights: &'static [(&'static str, &'static str)],
}

const BALANCED: Model = Model {
    name: "Balanced",
    weights: &[("", "5"), ("SPY", "60"), ("TLT", "35")],
};
const GROWTH: Model = Model {
    name: "Growth",
    weights: &[
        ("", "2"),
        ("QQQ", "38"),
        ("AAPL", "15"),
        ("MSFT", "15"),
        ("NVDA", "15"),
        ("AMZN", "15"),
    ],
};
const INCOME: Model = Model {
    name: "Income",
    weights: &[
        ("", "5"),
        ("AGG", "35"),
        ("LQD", "20"),
        ("SCHD", "25"),
        ("VIG", "15"),
    ],
};

/// What was seeded.
pub struct Seeded {
    pub portfolios: Vec<(String, String)>,
    pub accounts: usize,
    pub assigned: usize,
}

/// Seeds the demo tenant with `accounts` accounts.
///
/// # Errors
/// When a call fails.
pub async fn seed(
    channel: &TracedChannel,
    call: &CallContext,
    accounts: usize,
    rng: &mut Rng,
) -> anyhow::Result<Seeded> {
    let mut portfolios = PortfolioServiceClient::new(channel.clone());
    let mut create = async |key: &str, request: CreatePortfolioRequest| -> anyhow::Result<String> {
        let request = CreatePortfolioRequest {
            idempotency_key: format!("demo-portfolio-{key}"),
            ..request
        };
        let name = request.name.clone();
        let created = portfolios
            .create_portfolio(call.request(request))
            .await
            .with_context(|| format!("create portfolio {name}"))?
            .into_inner()
            .portfolio
            .context("no portfolio returned")?;
        Ok(created.id)
    };
    let model = |model: &Model, conditions: Vec<RebalanceCondition>, cooldown_days: i32| {
        CreatePortfolioRequest {
            name: model.name.to_owned(),
            description: format!("Demo model: {}", model.name),
            weights: model.weights.iter().map(|(s, p)| weight(s, p)).collect(),
            rebalance_conditions: conditions,
            cooldown_days,
            invest_cash_threshold: "250".to_owned(),
            ..CreatePortfolioRequest::default()
        }
    };
    let balanced = create(
        "balanced",
        model(
            &BALANCED,
            vec![condition(
                ConditionType::DriftBand,
                ConditionSubType::Absolute,
                "5",
                "",
            )],
            7,
        ),
    )
    .await?;
    let growth = create(
        "growth",
        model(
            &GROWTH,
            vec![
                condition(
                    ConditionType::DriftBand,
                    ConditionSubType::Relative,
                    "20",
                    "",
                ),
                condition(ConditionType::Calendar, ConditionSubType::Monthly, "", "3"),
            ],
            5,
        ),
    )
    .await?;
    let income = create(
        "income",
        model(
            &INCOME,
            vec![
                condition(
                    ConditionType::DriftBand,
                    ConditionSubType::Absolute,
                    "4",
                    "",
                ),
                condition(
                    ConditionType::Calendar,
                    ConditionSubType::Quarterly,
                    "",
                    "15",
                ),
            ],
            14,
        ),
    )
    .await?;
    let core_satellite = create(
        "core-satellite",
        CreatePortfolioRequest {
            name: "Core & Satellite".to_owned(),
            description: "Demo target of sleeves: 70% Balanced, 30% Growth".to_owned(),
            weights: vec![sleeve(&balanced, "70"), sleeve(&growth, "30")],
            rebalance_conditions: vec![condition(
                ConditionType::DriftBand,
                ConditionSubType::Absolute,
                "5",
                "",
            )],
            cooldown_days: 7,
            invest_cash_threshold: "250".to_owned(),
            ..CreatePortfolioRequest::default()
        },
    )
    .await?;
    let models: [(&str, &[(&str, &str)]); 4] = [
        (balanced.as_str(), BALANCED.weights),
        (growth.as_str(), GROWTH.weights),
        (income.as_str(), INCOME.weights),
        (core_satellite.as_str(), BALANCED.weights),
    ];

    let symbols: Vec<String> = [BALANCED.weights, GROWTH.weights, INCOME.weights]
        .iter()
        .flat_map(|w| w.iter().map(|(s, _)| (*s).to_owned()))
        .filter(|s| !s.is_empty())
        .collect();
    let mut market = MarketDataServiceClient::new(channel.clone());
    let prices: HashMap<String, Decimal> = market
        .get_quotes(call.request(GetQuotesRequest { symbols }))
        .await
        .context("quotes")?
        .into_inner()
        .quotes
        .into_iter()
        .filter_map(|q| Some((q.symbol, q.last.parse::<Decimal>().ok()?)))
        .collect();

    let plans: Vec<AccountPlan> = (0..accounts)
        .map(|i| plan(i, &models, &prices, rng))
        .collect();
    let assigned = plans.iter().filter(|p| p.portfolio.is_some()).count();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(plans)
        .map(|plan| {
            let channel = channel.clone();
            let call = call.clone();
            async move { open(&channel, &call, plan).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(Seeded {
        portfolios: vec![
            ("Balanced".to_owned(), balanced),
            ("Growth".to_owned(), growth),
            ("Income".to_owned(), income),
            ("Core & Satellite".to_owned(), core_satellite),
        ],
        accounts,
        assigned,
    })
}

/// One account to open.
struct AccountPlan {
    id: String,
    cash: Decimal,
    positions: Vec<(String, Decimal)>,
    restrictions: Vec<Restriction>,
    portfolio: Option<String>,
    approval: ApprovalMode,
    deposit: Option<Decimal>,
    withdrawal: Option<Decimal>,
}

fn plan(
    index: usize,
    models: &[(&str, &[(&str, &str)]); 4],
    prices: &HashMap<String, Decimal>,
    rng: &mut Rng,
) -> AccountPlan {
    let (portfolio, weights) = models[index % models.len()];
    let value = Decimal::from(rng.between(5, 250) * 1000);
    let kind = index % 10;
    let mut cash = value;
    let mut positions = Vec::new();
    // Kinds 0-2: new accounts, all cash. Others hold the model, tilted.
    if kind > 2 {
        cash = Decimal::ZERO;
        for (symbol, percent) in weights.iter() {
            let percent: Decimal = percent.parse().unwrap_or_default();
            let tilt = if kind >= 6 {
                // Drifted: each asset between 60% and 140% of its weight.
                Decimal::from(rng.between(60, 140)) / Decimal::ONE_HUNDRED
            } else {
                Decimal::from(rng.between(97, 103)) / Decimal::ONE_HUNDRED
            };
            let dollars = (value * percent / Decimal::ONE_HUNDRED * tilt).round_dp(2);
            match prices.get(*symbol) {
                Some(price) if !symbol.is_empty() && *price > Decimal::ZERO => {
                    positions.push(((*symbol).to_owned(), (dollars / price).round_dp(4)));
                }
                _ => cash += dollars,
            }
        }
    }
    let restrictions = match index {
        13 => vec![Restriction::PatternDayTrader],
        27 => vec![Restriction::AchReturn],
        _ => Vec::new(),
    };
    AccountPlan {
        id: format!("demo-{index:06}"),
        cash,
        positions,
        restrictions,
        // Every twentieth account has no portfolio.
        portfolio: (index % 20 != 19).then(|| portfolio.to_owned()),
        approval: if index % 5 == 4 {
            ApprovalMode::Manual
        } else {
            ApprovalMode::Auto
        },
        deposit: (kind == 5).then(|| Decimal::from(rng.between(2, 20) * 1000)),
        withdrawal: (index == 41).then(|| Decimal::from(5000)),
    }
}

async fn open(
    channel: &TracedChannel,
    call: &CallContext,
    plan: AccountPlan,
) -> anyhow::Result<()> {
    let mut accounts = AccountServiceClient::new(channel.clone());
    accounts
        .upsert_account(
            call.request(UpsertAccountRequest {
                account_id: plan.id.clone(),
                cash: plan.cash.to_string(),
                positions: plan
                    .positions
                    .iter()
                    .map(|(symbol, quantity)| Position {
                        symbol: symbol.clone(),
                        quantity: quantity.to_string(),
                        ..Position::default()
                    })
                    .collect(),
                restrictions: plan.restrictions.iter().map(|r| i32::from(*r)).collect(),
                ..UpsertAccountRequest::default()
            }),
        )
        .await
        .with_context(|| format!("open {}", plan.id))?;
    for (kind, amount) in [
        (CashMovementType::Deposit, plan.deposit),
        (CashMovementType::Withdrawal, plan.withdrawal),
    ] {
        let Some(amount) = amount else { continue };
        accounts
            .create_cash_movement(call.request(CreateCashMovementRequest {
                idempotency_key: format!("demo-{}-{}", kind.as_str_name(), plan.id),
                account_id: plan.id.clone(),
                r#type: kind.into(),
                amount: amount.to_string(),
            }))
            .await
            .with_context(|| format!("cash movement of {}", plan.id))?;
    }
    if let Some(portfolio) = plan.portfolio {
        let mut assignments = AssignmentServiceClient::new(channel.clone());
        assignments
            .assign(call.request(AssignRequest {
                idempotency_key: format!("demo-assign-{}", plan.id),
                account_id: plan.id.clone(),
                portfolio_id: portfolio,
                rebalancing_enabled: true,
                approval_mode: plan.approval.into(),
            }))
            .await
            .with_context(|| format!("assign {}", plan.id))?;
    }
    Ok(())
}

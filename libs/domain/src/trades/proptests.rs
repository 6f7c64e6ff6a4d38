//! Property tests of trade generation: random accounts (0 to 12 holdings,
//! fractional and whole quantities), random targets summing to 100 with
//! two-decimal weights, random prices, flags, restrictions and minimums, for
//! every kind of plan; each plan must keep the invariants below.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::rounding::{CENT, percent_share, quantity_for};
use super::*;
use crate::portfolio::WeightTarget;

const POOL: [&str; 16] = [
    "AAPL", "AGG", "BND", "BRK.B", "EFA", "GLD", "IEF", "IWM", "QQQ", "SPY", "TLT", "VEA", "VNQ",
    "VOO", "VTI", "XLE",
];

const MAX_HOLDINGS: usize = 12;

/// Everything random about one symbol of the pool.
#[derive(Debug, Clone)]
struct SymbolDraw {
    held: Option<Decimal>,
    /// Relative target weight, when targeted.
    target: Option<u32>,
    /// Price in cents, when listed.
    price_cents: Option<i64>,
    tradable: bool,
    fractionable: bool,
}

/// A random account, target and market.
#[derive(Debug, Clone)]
struct World {
    account: AccountSnapshot,
    target: Vec<Weight>,
    assets: HashMap<Symbol, TradeAsset>,
    minimum: Decimal,
    whole_shares_only: bool,
}

impl World {
    fn input(&self, kind: PlanKind) -> PlanInput<'_> {
        PlanInput {
            kind,
            account: &self.account,
            target: &self.target,
            assets: &self.assets,
            minimum_order_notional: self.minimum,
            whole_shares_only: self.whole_shares_only,
            asset_rules: &[],
        }
    }

    fn plan(&self, kind: PlanKind) -> Plan {
        plan(&self.input(kind))
    }

    fn held(&self) -> BTreeMap<Symbol, Decimal> {
        let mut held = BTreeMap::new();
        for holding in &self.account.holdings {
            *held.entry(holding.symbol.clone()).or_insert(Decimal::ZERO) += holding.quantity;
        }
        held
    }

    fn price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.assets.get(symbol).map(|asset| asset.price)
    }

    fn value(&self, symbol: &Symbol) -> Decimal {
        let held = self.held().get(symbol).copied().unwrap_or(Decimal::ZERO);
        self.price(symbol)
            .map_or(Decimal::ZERO, |price| held * price)
    }

    fn equity(&self) -> Decimal {
        self.account.cash
            + self
                .held()
                .keys()
                .map(|symbol| self.value(symbol))
                .sum::<Decimal>()
    }

    fn cash_percent(&self) -> Decimal {
        let assets: Decimal = self
            .target
            .iter()
            .filter(|weight| matches!(weight.target, WeightTarget::Asset(_)))
            .map(|weight| weight.percent)
            .sum();
        Decimal::ONE_HUNDRED - assets
    }

    fn target_percent(&self, symbol: &Symbol) -> Decimal {
        self.target
            .iter()
            .filter(|weight| weight.symbol() == Some(symbol))
            .map(|weight| weight.percent)
            .sum()
    }

    fn sized_in_shares(&self, symbol: &Symbol) -> bool {
        self.whole_shares_only
            || self
                .assets
                .get(symbol)
                .is_some_and(|asset| !asset.fractionable)
    }

    fn tradable(&self, symbol: &Symbol) -> bool {
        self.assets.get(symbol).is_some_and(|asset| asset.tradable)
    }
}

fn symbol(text: &str) -> Symbol {
    Symbol::parse(text).expect("pool symbols are well formed")
}

fn quantity() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (1i64..=2_000).prop_map(Decimal::from),
        (1i64..=1_000_000_000_000).prop_map(|raw| Decimal::new(raw, 9)),
        (1i64..=10_000).prop_map(|raw| Decimal::new(raw, 2)),
        (1i64..=100_000_000).prop_map(|raw| Decimal::new(raw, 9)),
    ]
}

fn symbol_draw() -> impl Strategy<Value = SymbolDraw> {
    (
        prop::option::weighted(0.45, quantity()),
        prop::option::weighted(0.4, 1u32..=1_000),
        prop::option::weighted(0.92, 50i64..=500_000),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.7),
    )
        .prop_map(
            |(held, target, price_cents, tradable, fractionable)| SymbolDraw {
                held,
                target,
                price_cents,
                tradable,
                fractionable,
            },
        )
}

/// A random world, or one that was rebalanced and then saw its prices move
/// a little: small drifts are where minimums and rounding matter.
fn world() -> impl Strategy<Value = World> {
    prop_oneof![
        fresh_world(),
        (
            fresh_world(),
            proptest::collection::vec(-300i64..=300, POOL.len())
        )
            .prop_map(|(world, moves)| move_prices(&settle(world), &moves)),
    ]
}

fn fresh_world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(symbol_draw(), POOL.len()),
        0..=MAX_HOLDINGS,
        prop_oneof![Just(0u32), 0u32..=1_000],
        prop_oneof![Just(0i64), 0i64..=100_000_000, 0i64..=10_000],
        prop_oneof![Just(dec!(1)), Just(dec!(0)), Just(dec!(5)), Just(dec!(0.5))],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(
                draws,
                holding_count,
                cash_weight,
                cash_cents,
                minimum,
                buys_blocked,
                sells_blocked,
                whole,
            )| {
                build_world(
                    &draws,
                    holding_count,
                    cash_weight,
                    Decimal::new(cash_cents, 2),
                    minimum,
                    (buys_blocked, sells_blocked),
                    whole,
                )
            },
        )
}

fn build_world(
    draws: &[SymbolDraw],
    holding_count: usize,
    cash_weight: u32,
    cash: Decimal,
    minimum: Decimal,
    (buys_blocked, sells_blocked): (bool, bool),
    whole_shares_only: bool,
) -> World {
    let mut holdings = Vec::new();
    let mut assets = HashMap::new();
    let mut raw_targets = Vec::new();
    for (ticker, draw) in POOL.iter().zip(draws) {
        let ticker_symbol = symbol(ticker);
        if let Some(quantity) = draw.held.filter(|_| holdings.len() < holding_count) {
            holdings.push(Holding {
                symbol: ticker_symbol.clone(),
                quantity,
            });
        }
        if let Some(raw) = draw.target {
            raw_targets.push((ticker_symbol.clone(), raw));
        }
        if let Some(cents) = draw.price_cents {
            assets.insert(
                ticker_symbol.clone(),
                TradeAsset {
                    symbol: ticker_symbol,
                    price: Decimal::new(cents, 2),
                    tradable: draw.tradable,
                    fractionable: draw.fractionable,
                },
            );
        }
    }
    World {
        account: AccountSnapshot {
            cash,
            holdings,
            buys_blocked,
            sells_blocked,
            restricted: Vec::new(),
            sell_limits: Vec::new(),
            buy_blocks: Vec::new(),
        },
        target: target_weights(&raw_targets, cash_weight),
        assets,
        minimum,
        whole_shares_only,
    }
}

/// Two-decimal weights summing to exactly 100, each asset at least 0.01.
fn target_weights(raw_targets: &[(Symbol, u32)], cash_weight: u32) -> Vec<Weight> {
    let raw_total: u32 = raw_targets.iter().map(|(_, raw)| raw).sum::<u32>() + cash_weight;
    if raw_total == 0 {
        return Vec::new();
    }
    let count = u32::try_from(raw_targets.len()).expect("at most 16 assets");
    let spread = 10_000 - count;
    let mut basis_points: Vec<(Symbol, u32)> = raw_targets
        .iter()
        .map(|(symbol, raw)| (symbol.clone(), raw * spread / raw_total + 1))
        .collect();
    let mut cash_points = 10_000 - basis_points.iter().map(|(_, points)| points).sum::<u32>();
    if cash_weight == 0
        && let Some(first) = basis_points.first_mut()
    {
        first.1 += cash_points;
        cash_points = 0;
    }
    let mut weights: Vec<Weight> = basis_points
        .into_iter()
        .map(|(symbol, points)| Weight::asset(symbol, Decimal::new(points.into(), 2)))
        .collect();
    if cash_points > 0 {
        weights.push(Weight::cash(Decimal::new(cash_points.into(), 2)));
    }
    weights
}

/// The world once a full rebalance (without restrictions) filled at the
/// estimate prices (keeping at most [`MAX_HOLDINGS`] positions).
fn settle(mut world: World) -> World {
    let restrictions = (world.account.buys_blocked, world.account.sells_blocked);
    world.account.buys_blocked = false;
    world.account.sells_blocked = false;
    let plan = world.plan(PlanKind::FullRebalance);
    let mut held = world.held();
    for order in &plan.orders {
        let position = held.entry(order.symbol.clone()).or_insert(Decimal::ZERO);
        match order.side {
            Side::Buy => *position += order.quantity,
            Side::Sell => *position -= order.quantity,
        }
    }
    world.account.holdings = held
        .into_iter()
        .filter(|(_, quantity)| *quantity > Decimal::ZERO)
        .map(|(symbol, quantity)| Holding { symbol, quantity })
        .take(MAX_HOLDINGS)
        .collect();
    world.account.cash = plan.cash_after;
    (world.account.buys_blocked, world.account.sells_blocked) = restrictions;
    world
}

/// Moves each price by up to ±3% (`moves` in basis points, by pool order).
fn move_prices(world: &World, moves: &[i64]) -> World {
    let mut moved = world.clone();
    for (ticker, basis_points) in POOL.iter().zip(moves) {
        if let Some(asset) = moved.assets.get_mut(&symbol(ticker)) {
            let factor = Decimal::new(10_000 + basis_points, 4);
            asset.price = (asset.price * factor).round_dp(2).max(dec!(0.5));
        }
    }
    moved
}

fn liquidation_amount(world: &World, per_mille: u32) -> Decimal {
    (world.equity() * Decimal::from(per_mille) / dec!(1000)).round_dp(2)
}

/// Whether the order of `side` of `symbol` sells the entire position.
fn closes_position(world: &World, order: &PlannedOrder) -> bool {
    order.side == Side::Sell
        && order.notional.is_none()
        && world.held().get(&order.symbol) == Some(&order.quantity)
}

/// The invariants every plan keeps, whatever its kind.
fn check_common(world: &World, kind: PlanKind, plan: &Plan) -> Result<(), TestCaseError> {
    let equity = world.equity();
    let held = world.held();
    prop_assert_eq!(plan.equity, equity);
    prop_assert_eq!(plan.cash_before, world.account.cash);

    // (a) cash: never negative, and exactly what the orders move.
    let proceeds: Decimal = plan
        .orders
        .iter()
        .filter(|order| order.side == Side::Sell)
        .map(PlannedOrder::cash_amount)
        .sum();
    let costs: Decimal = plan
        .orders
        .iter()
        .filter(|order| order.side == Side::Buy)
        .map(PlannedOrder::cash_amount)
        .sum();
    prop_assert!(
        plan.cash_after >= Decimal::ZERO,
        "cash after {}",
        plan.cash_after
    );
    prop_assert_eq!(plan.cash_after, world.account.cash + proceeds - costs);

    // (b) orders are possible: positive, within the position, allowed.
    let mut seen = Vec::new();
    for order in &plan.orders {
        let price = world.price(&order.symbol);
        prop_assert_eq!(
            price,
            Some(order.price),
            "order without its price: {:?}",
            order
        );
        prop_assert!(order.quantity > Decimal::ZERO, "{:?}", order);
        prop_assert!(
            world.tradable(&order.symbol),
            "untradable order {:?}",
            order
        );
        prop_assert!(
            !seen.contains(&order.symbol),
            "two orders for {}",
            order.symbol
        );
        seen.push(order.symbol.clone());
        match order.side {
            Side::Sell => {
                prop_assert!(
                    !world.account.sells_blocked,
                    "sell while blocked {:?}",
                    order
                );
                let position = held.get(&order.symbol).copied().unwrap_or(Decimal::ZERO);
                prop_assert!(order.quantity <= position, "{:?} above {}", order, position);
                prop_assert!(order.cash_amount() <= world.value(&order.symbol));
            }
            Side::Buy => {
                prop_assert!(!world.account.buys_blocked, "buy while blocked {:?}", order);
            }
        }
        if let Some(notional) = order.notional {
            prop_assert!(
                notional >= CENT && notional.round_dp(2) == notional,
                "{:?}",
                order
            );
            prop_assert!(
                !world.sized_in_shares(&order.symbol),
                "notional whole-share order {:?}",
                order
            );
            prop_assert_eq!(
                order.quantity.min(quantity_for(notional, order.price)),
                order.quantity
            );
        }
        // (e) whole shares are whole, unless the entire position is sold.
        if world.sized_in_shares(&order.symbol) && !closes_position(world, order) {
            prop_assert!(
                order.quantity.fract().is_zero(),
                "fractional shares {:?}",
                order
            );
        }
    }

    // Sells first, then buys, each by symbol; skips the same way.
    let order_keys: Vec<(bool, &Symbol)> = plan
        .orders
        .iter()
        .map(|order| (order.side == Side::Buy, &order.symbol))
        .collect();
    prop_assert!(
        order_keys.is_sorted(),
        "orders out of order: {:?}",
        order_keys
    );
    let skip_keys: Vec<(bool, &Symbol)> = plan
        .skipped
        .iter()
        .map(|skipped| (skipped.side == Side::Buy, &skipped.symbol))
        .collect();
    prop_assert!(skip_keys.is_sorted(), "skips out of order: {:?}", skip_keys);

    // (d) every skip says why.
    for skipped in &plan.skipped {
        prop_assert!(!skipped.detail.trim().is_empty(), "{:?}", skipped);
        prop_assert!(skipped.quantity >= Decimal::ZERO && skipped.notional >= Decimal::ZERO);
    }

    // Unpriced holdings are reported and never traded.
    for (symbol, quantity) in &held {
        if world.price(symbol).is_none() {
            let reported = plan.skipped.iter().any(|skipped| {
                &skipped.symbol == symbol
                    && skipped.reason == SkipReason::NoPrice
                    && skipped.quantity == *quantity
            });
            prop_assert!(reported, "unpriced {} not reported", symbol);
        }
    }

    // The minimum order: only whole positions sold by a liquidation go below it.
    let is_liquidation = matches!(kind, PlanKind::Liquidation { .. });
    for order in &plan.orders {
        if !(is_liquidation && closes_position(world, order)) {
            prop_assert!(
                order.cash_amount() >= world.minimum,
                "below minimum {:?}",
                order
            );
        }
    }

    // (c) value is conserved, and the drift report agrees with the orders.
    check_drift(world, plan)?;
    Ok(())
}

fn check_drift(world: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let Some((cash_row, asset_rows)) = plan.drift.split_first() else {
        return Err(TestCaseError::fail("no cash row"));
    };
    prop_assert_eq!(&cash_row.symbol, &None);
    prop_assert_eq!(cash_row.current_value, world.account.cash);
    prop_assert_eq!(cash_row.expected_value, plan.cash_after);
    let symbols: Vec<&Symbol> = asset_rows
        .iter()
        .filter_map(|row| row.symbol.as_ref())
        .collect();
    prop_assert_eq!(symbols.len(), asset_rows.len());
    prop_assert!(
        symbols.windows(2).all(|pair| pair[0] < pair[1]),
        "{:?}",
        symbols
    );
    let expected_total: Decimal = asset_rows.iter().map(|row| row.expected_value).sum();
    prop_assert_eq!(expected_total + plan.cash_after, plan.equity);
    let current_total: Decimal = asset_rows.iter().map(|row| row.current_value).sum();
    prop_assert_eq!(current_total + world.account.cash, plan.equity);
    for row in asset_rows {
        prop_assert_eq!(row.drift, row.current_weight - row.target_weight);
        prop_assert_eq!(row.current_weight.round_dp(4), row.current_weight);
    }
    Ok(())
}

/// Under a full rebalance with nothing in the way (every asset priced,
/// tradable and fractional, no restriction, no minimum), every asset ends
/// within cents of its target.
fn check_tight_fit(world: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let tolerance = CENT * Decimal::from(plan.drift.len() + 1);
    for row in plan.drift.iter().skip(1) {
        let Some(symbol) = &row.symbol else {
            continue;
        };
        let target = percent_share(plan.equity, world.target_percent(symbol));
        prop_assert!(
            (row.expected_value - target).abs() <= tolerance,
            "{} ends at {} for a target of {}",
            symbol,
            row.expected_value,
            target
        );
    }
    Ok(())
}

fn unconstrained(mut world: World) -> World {
    for asset in world.assets.values_mut() {
        asset.tradable = true;
        asset.fractionable = true;
    }
    let targeted: Vec<Symbol> = world
        .target
        .iter()
        .filter_map(Weight::symbol)
        .cloned()
        .chain(
            world
                .account
                .holdings
                .iter()
                .map(|holding| holding.symbol.clone()),
        )
        .collect();
    for symbol in targeted {
        world.assets.entry(symbol.clone()).or_insert(TradeAsset {
            symbol,
            price: dec!(42.42),
            tradable: true,
            fractionable: true,
        });
    }
    world.account.buys_blocked = false;
    world.account.sells_blocked = false;
    world.minimum = Decimal::ZERO;
    world.whole_shares_only = false;
    world
}

/// A cash-only account trading whole shares of priced, tradable assets, with
/// no minimum order: only the integer constraint and the budget bind.
fn whole_share_world(mut world: World) -> World {
    world = unconstrained(world);
    world.account.holdings.clear();
    world.whole_shares_only = true;
    world
}

/// No single extra share the leftover cash affords would bring the account
/// closer to its target.
fn check_whole_share_rounding(world: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let leftover = plan.cash_after - percent_share(plan.equity, world.cash_percent());
    for row in plan.drift.iter().skip(1) {
        let Some(symbol) = &row.symbol else {
            continue;
        };
        let Some(price) = world.price(symbol) else {
            continue;
        };
        if price > leftover {
            continue;
        }
        let gap = percent_share(plan.equity, world.target_percent(symbol)) - row.expected_value;
        let reduction = price * (gap + gap - price);
        prop_assert!(
            reduction <= Decimal::ZERO,
            "one more {} at {} would reduce the squared gap by {}",
            symbol,
            price,
            reduction
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn full_rebalance_keeps_the_invariants(world in world()) {
        let plan = world.plan(PlanKind::FullRebalance);
        check_common(&world, PlanKind::FullRebalance, &plan)?;
        if plan.orders.iter().any(|order| order.side == Side::Buy) {
            let cash_target = percent_share(plan.equity, world.cash_percent());
            prop_assert!(plan.cash_after >= cash_target, "{} under {}", plan.cash_after, cash_target);
        }
    }

    /// Restricted symbols are never traded on their restricted side, in any
    /// kind of plan, and every refusal says so.
    #[test]
    fn restricted_symbols_are_never_traded(mut world in world(), pick in 0u32..4) {
        let mut symbols: Vec<Symbol> = world.assets.keys().cloned().collect();
        symbols.sort();
        world.account.restricted = symbols
            .iter()
            .enumerate()
            .filter(|(index, _)| (u32::try_from(*index).expect("few") + pick) % 2 == 0)
            .map(|(index, symbol)| SymbolRestriction {
                symbol: symbol.clone(),
                no_buy: index % 3 != 1,
                no_sell: index % 3 != 0,
            })
            .collect();
        for kind in [
            PlanKind::FullRebalance,
            PlanKind::InvestCash,
            PlanKind::Liquidation { amount: None },
            PlanKind::Liquidation { amount: Some(world.account.cash / Decimal::TWO + Decimal::ONE_HUNDRED) },
        ] {
            let plan = world.plan(kind);
            for order in &plan.orders {
                let rule = world.account.restricted.iter().find(|r| r.symbol == order.symbol);
                let blocked = rule.is_some_and(|r| match order.side {
                    Side::Buy => r.no_buy,
                    Side::Sell => r.no_sell,
                });
                prop_assert!(!blocked, "{kind:?} placed {order:?} against {rule:?}");
            }
            for skipped in plan.skipped.iter().filter(|s| s.reason == SkipReason::Restricted) {
                prop_assert!(
                    skipped.detail.contains("restricted") || skipped.detail.contains("may not"),
                    "{skipped:?}"
                );
            }
        }
    }

    #[test]
    fn invest_cash_only_buys(world in world()) {
        let plan = world.plan(PlanKind::InvestCash);
        check_common(&world, PlanKind::InvestCash, &plan)?;
        // (f)
        prop_assert!(plan.orders.iter().all(|order| order.side == Side::Buy));
        let cash_target = percent_share(plan.equity, world.cash_percent());
        if world.account.cash <= cash_target {
            prop_assert!(plan.orders.is_empty());
            prop_assert!(plan.skipped.iter().all(|skipped| skipped.reason == SkipReason::NoPrice));
        } else {
            prop_assert!(plan.cash_after >= cash_target);
        }
    }

    #[test]
    fn liquidation_raises_the_amount(world in world(), per_mille in 0u32..=1_200) {
        let amount = liquidation_amount(&world, per_mille);
        let kind = PlanKind::Liquidation { amount: Some(amount) };
        let plan = world.plan(kind);
        check_common(&world, kind, &plan)?;
        prop_assert!(plan.orders.iter().all(|order| order.side == Side::Sell));
        // (g) with enough sellable value, the amount (and the buffer, and the
        // cash target on what remains) is raised.
        let remaining = (plan.equity - amount).max(Decimal::ZERO);
        let required = amount * (Decimal::ONE + LIQUIDATION_BUFFER)
            + percent_share(remaining, world.cash_percent())
            - world.account.cash;
        let sellable: Decimal = world
            .held()
            .keys()
            .filter(|symbol| world.tradable(symbol))
            .map(|symbol| world.value(symbol))
            .sum();
        if amount > Decimal::ZERO && !world.account.sells_blocked && sellable >= required {
            prop_assert!(plan.cash_after >= amount, "{} raised for {}", plan.cash_after, amount);
            prop_assert!(plan.cash_after >= world.account.cash + required);
        }
        if required <= Decimal::ZERO || amount.is_zero() {
            prop_assert!(plan.orders.is_empty());
        }
    }

    #[test]
    fn liquidation_of_everything_sells_every_tradable_position(world in world()) {
        let kind = PlanKind::Liquidation { amount: None };
        let plan = world.plan(kind);
        check_common(&world, kind, &plan)?;
        for (symbol, quantity) in world.held() {
            let sold = plan.orders.iter().any(|order| {
                order.symbol == symbol && order.side == Side::Sell && order.quantity == quantity
            });
            let sellable = world.price(&symbol).is_some()
                && world.tradable(&symbol)
                && !world.account.sells_blocked;
            prop_assert_eq!(sold, sellable, "{}", symbol);
        }
        prop_assert_eq!(plan.orders.iter().all(|order| order.notional.is_none()), true);
    }

    #[test]
    fn unconstrained_full_rebalance_lands_on_target(world in world().prop_map(unconstrained)) {
        let plan = world.plan(PlanKind::FullRebalance);
        check_common(&world, PlanKind::FullRebalance, &plan)?;
        check_tight_fit(&world, &plan)?;
    }

    #[test]
    fn whole_shares_leave_no_helpful_share_unbought(world in world().prop_map(whole_share_world)) {
        let plan = world.plan(PlanKind::FullRebalance);
        check_common(&world, PlanKind::FullRebalance, &plan)?;
        prop_assert!(plan.orders.iter().all(|order| order.notional.is_none()));
        check_whole_share_rounding(&world, &plan)?;
    }

    /// The plan depends on what is held and targeted, not on the order the
    /// caller lists it in.
    #[test]
    fn plan_ignores_listing_order(world in world(), per_mille in 0u32..=1_200) {
        let mut reversed = world.clone();
        reversed.account.holdings.reverse();
        reversed.target.reverse();
        let amount = liquidation_amount(&world, per_mille);
        for kind in [
            PlanKind::FullRebalance,
            PlanKind::InvestCash,
            PlanKind::Liquidation { amount: Some(amount) },
        ] {
            prop_assert_eq!(world.plan(kind), reversed.plan(kind));
        }
    }
}

//! The monitor's evaluation of one account against its target, as Alpaca's
//! rebalancing evaluator and the Rebalance Center flag it: portfolio state →
//! restrictions → prices → cash movements → cooldown → calendar → drift bands,
//! one flag per account and at most one run.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::account::{Restriction, leverage_exceeded};
use crate::calendar::{exchange_date, trading_day_on_or_before};
use crate::cash::CashMovementKind;
use crate::exact;
use crate::portfolio::{
    BandKind, CalendarRule, PortfolioStatus, RebalanceCondition, RebalanceTo, Weight,
};
use crate::run::RunKind;

crate::text_enum! {
    /// One flag per account per cycle.
    #[derive(PartialOrd, Ord)]
    pub enum Flag {
        OutOfTolerance = "out_of_tolerance",
        InsideTolerance = "inside_tolerance",
        UnableToCheck = "unable_to_check",
        NeedsAttention = "needs_attention",
        NewDeposit = "new_deposit",
        NewWithdrawal = "new_withdrawal",
        Liquidation = "liquidation",
        NoPortfolioAssigned = "no_portfolio_assigned",
        /// Assigned, but rebalancing is off: not monitored.
        RebalancingOff = "rebalancing_off",
    }
}

impl Flag {
    pub const ALL: [Flag; 9] = [
        Flag::OutOfTolerance,
        Flag::InsideTolerance,
        Flag::UnableToCheck,
        Flag::NeedsAttention,
        Flag::NewDeposit,
        Flag::NewWithdrawal,
        Flag::Liquidation,
        Flag::NoPortfolioAssigned,
        Flag::RebalancingOff,
    ];
}

/// Prices by symbol, with a hasher fast on short keys (symbols are ours,
/// not attacker-chosen).
pub type Prices = HashMap<String, Decimal, BuildHasherDefault<SymbolHasher>>;

/// Why a symbol has no usable price ("stale: last quoted ..."), by symbol.
pub type PriceNotes = HashMap<String, String, BuildHasherDefault<SymbolHasher>>;

/// No notes: every missing price is just missing.
pub static NO_PRICE_NOTES: PriceNotes = HashMap::with_hasher(BuildHasherDefault::new());

/// The prices of a cycle, and why the missing ones are missing.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    pub prices: Prices,
    pub notes: PriceNotes,
}

/// A multiply-rotate hasher (the `FxHash` scheme) for short symbol keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct SymbolHasher(u64);

impl SymbolHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for SymbolHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(u64::try_from(value).unwrap_or(u64::MAX));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One asset of a prepared target: its weight and allowed range, percent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetBand {
    pub symbol: String,
    pub target: Decimal,
    pub lower: Option<Decimal>,
    pub upper: Option<Decimal>,
    /// Bands are symmetric: the largest allowed |current − target|, points.
    pub half_width: Option<Decimal>,
}

/// A target prepared once per portfolio version for evaluating many
/// accounts: flat weights, each asset's band, the calendar.
#[derive(Debug, Clone)]
pub struct PreparedTarget {
    pub weights: Vec<Weight>,
    pub conditions: Vec<RebalanceCondition>,
    pub cooldown_days: u32,
    pub invest_cash_threshold: Decimal,
    pub portfolio_status: PortfolioStatus,
    cash_percent: Decimal,
    /// Sorted by symbol.
    assets: Vec<AssetBand>,
    /// The band of an asset held but not in the target (target 0).
    off_target: AssetBand,
    has_bands: bool,
    calendar: Option<CalendarRule>,
    /// A hybrid policy's review days.
    review: Option<CalendarRule>,
    rebalance_to: RebalanceTo,
    /// The percents as integers, for the exact fast path.
    fixed: Option<FixedTarget>,
}

/// A target's percents as integer mantissas at one scale.
#[derive(Debug, Clone)]
struct FixedTarget {
    /// 100 × 10^scale: a value's share of equity in the target's units.
    hundred: i128,
    cash: i128,
    /// (target, half width) of each asset, in `assets` order.
    assets: Vec<(i128, Option<i128>)>,
    off_target_width: Option<i128>,
}

impl FixedTarget {
    fn new(cash: Decimal, assets: &[AssetBand], off_target: &AssetBand) -> Option<Self> {
        let percents = assets
            .iter()
            .flat_map(|a| [Some(a.target), a.half_width])
            .chain([Some(cash), off_target.half_width])
            .flatten();
        let scale = percents.map(|p| p.scale()).max().unwrap_or(0);
        let at = |value: Decimal| exact::at_scale(value, scale);
        let mut fixed = Vec::with_capacity(assets.len());
        for asset in assets {
            let width = match asset.half_width {
                Some(width) => Some(at(width)?),
                None => None,
            };
            fixed.push((at(asset.target)?, width));
        }
        let off_target_width = match off_target.half_width {
            Some(width) => Some(at(width)?),
            None => None,
        };
        Some(Self {
            hundred: exact::pow10(scale)?.checked_mul(100)?,
            cash: at(cash)?,
            assets: fixed,
            off_target_width,
        })
    }
}

impl PreparedTarget {
    #[must_use]
    pub fn new(
        weights: Vec<Weight>,
        conditions: Vec<RebalanceCondition>,
        cooldown_days: u32,
        invest_cash_threshold: Decimal,
        portfolio_status: PortfolioStatus,
    ) -> Self {
        let cash_percent = weights
            .iter()
            .filter(|w| w.symbol().is_none())
            .map(|w| w.percent)
            .sum();
        let mut assets: Vec<AssetBand> = weights
            .iter()
            .filter_map(|w| {
                let symbol = w.symbol()?.as_str();
                let (lower, upper) = band(&conditions, symbol, w.percent);
                Some(AssetBand {
                    symbol: symbol.to_owned(),
                    target: w.percent,
                    lower,
                    upper,
                    half_width: upper.map(|u| u - w.percent),
                })
            })
            .collect();
        assets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let (lower, upper) = band(&conditions, "", Decimal::ZERO);
        let off_target = AssetBand {
            symbol: String::new(),
            target: Decimal::ZERO,
            lower,
            upper,
            half_width: upper,
        };
        let has_bands = conditions
            .iter()
            .any(|c| matches!(c, RebalanceCondition::DriftBand(_)));
        let calendar = conditions.iter().find_map(|c| match c {
            RebalanceCondition::Calendar(rule) => Some(*rule),
            RebalanceCondition::DriftBand(_) | RebalanceCondition::Review(_) => None,
        });
        let review = conditions.iter().find_map(|c| match c {
            RebalanceCondition::Review(rule) => Some(*rule),
            RebalanceCondition::DriftBand(_) | RebalanceCondition::Calendar(_) => None,
        });
        let fixed = FixedTarget::new(cash_percent, &assets, &off_target);
        Self {
            weights,
            conditions,
            cooldown_days,
            invest_cash_threshold,
            portfolio_status,
            cash_percent,
            assets,
            off_target,
            has_bands,
            calendar,
            review,
            rebalance_to: RebalanceTo::Target,
            fixed,
        }
    }

    /// The same target, rebalancing to `rebalance_to`.
    #[must_use]
    pub fn rebalancing_to(mut self, rebalance_to: RebalanceTo) -> Self {
        self.rebalance_to = rebalance_to;
        self
    }

    /// The same target with other weights and conditions (an account's
    /// own, after its substitutes, cash reserve and restrictions).
    #[must_use]
    pub fn with_target(&self, weights: Vec<Weight>, conditions: Vec<RebalanceCondition>) -> Self {
        Self::new(
            weights,
            conditions,
            self.cooldown_days,
            self.invest_cash_threshold,
            self.portfolio_status,
        )
        .rebalancing_to(self.rebalance_to)
    }

    /// The allowed range of an asset held but not in the target (percent).
    #[must_use]
    pub fn off_target_band(&self) -> (Option<Decimal>, Option<Decimal>) {
        (self.off_target.lower, self.off_target.upper)
    }

    /// Assets of the target with their bands, by symbol.
    #[must_use]
    pub fn assets(&self) -> &[AssetBand] {
        &self.assets
    }
}

/// The account's target.
#[derive(Debug, Clone, Copy)]
pub struct TargetView<'a> {
    pub target: &'a PreparedTarget,
    /// When the target's weights (or the target itself) last changed.
    pub target_changed_at: Option<DateTime<Utc>>,
}

/// What the account is assigned to.
#[derive(Debug, Clone, Copy)]
pub enum AssignmentView<'a> {
    /// No assignment, or unassigned with rebalancing off: not monitored.
    None,
    /// Unassigned with rebalancing on: the account targets 100% cash.
    Liquidate,
    Active {
        target: TargetView<'a>,
        rebalancing_enabled: bool,
    },
}

/// A deposit or withdrawal request not yet acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMovement {
    pub id: String,
    pub kind: CashMovementKind,
    pub amount: Decimal,
}

/// The account as the book shows it.
#[derive(Debug, Clone)]
pub struct AccountView<'a> {
    pub cash: Decimal,
    /// (symbol, quantity) of every position.
    pub positions: &'a [(String, Decimal)],
    pub restrictions: &'a [Restriction],
    pub pending: &'a [PendingMovement],
    pub open_run: bool,
    pub last_rebalanced_at: Option<DateTime<Utc>>,
}

/// Everything one evaluation looks at.
#[derive(Debug, Clone)]
pub struct EvaluationInput<'a> {
    /// The trading date of the cycle (New York); cooldowns and calendar
    /// conditions are counted in these dates.
    pub today: NaiveDate,
    pub now: DateTime<Utc>,
    pub assignment: AssignmentView<'a>,
    /// `None` when the book has no such account.
    pub account: Option<AccountView<'a>>,
    pub prices: &'a Prices,
    /// Why some symbols have no price, told in the reason.
    pub price_notes: &'a PriceNotes,
}

/// The run an evaluation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDecision {
    pub kind: RunKind,
    /// Liquidation amount; `None` for everything.
    pub amount: Option<Decimal>,
    /// The withdrawal served.
    pub cash_movement_id: Option<String>,
}

/// A ticker's value against its band. Weights are derived from the value
/// and the account's equity when shown ([`TickerDrift::current_weight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerDrift<'a> {
    /// `None` for cash.
    pub symbol: Option<&'a str>,
    pub value: Decimal,
    pub target_weight: Decimal,
    pub band_lower: Option<Decimal>,
    pub band_upper: Option<Decimal>,
    pub breached: bool,
}

/// Percent of `equity` that `value` is, to 4 places (0 without equity).
#[must_use]
pub fn weight_of(value: Decimal, equity: Decimal) -> Decimal {
    if equity > Decimal::ZERO {
        (value * Decimal::ONE_HUNDRED / equity).round_dp(4)
    } else {
        Decimal::ZERO
    }
}

impl TickerDrift<'_> {
    #[must_use]
    pub fn current_weight(&self, equity: Decimal) -> Decimal {
        weight_of(self.value, equity)
    }

    /// Current minus target weight, percentage points.
    #[must_use]
    pub fn drift(&self, equity: Decimal) -> Decimal {
        self.current_weight(equity) - self.target_weight
    }
}

/// The outcome for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'a> {
    pub flag: Flag,
    pub reason: String,
    pub run: Option<RunDecision>,
    /// Why no run was asked for when one might be expected.
    pub run_note: String,
    pub equity: Decimal,
    pub cash: Decimal,
    /// Largest |current − target| weight over cash and assets, points.
    pub max_drift: Decimal,
    /// Half the sum of |current − target| weights: the share of the account
    /// a full rebalance would trade, percent.
    pub total_drift: Decimal,
    pub tickers: Vec<TickerDrift<'a>>,
    pub missing: Vec<String>,
}

impl Evaluation<'_> {
    fn flag(flag: Flag, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
            run: None,
            run_note: String::new(),
            equity: Decimal::ZERO,
            cash: Decimal::ZERO,
            max_drift: Decimal::ZERO,
            total_drift: Decimal::ZERO,
            tickers: Vec::new(),
            missing: Vec::new(),
        }
    }
}

/// Evaluates one account.
#[must_use]
pub fn evaluate<'a>(input: &EvaluationInput<'a>) -> Evaluation<'a> {
    let (view, rebalancing_enabled) = match input.assignment {
        AssignmentView::None => {
            return Evaluation::flag(
                Flag::NoPortfolioAssigned,
                "no portfolio assigned and rebalancing off",
            );
        }
        AssignmentView::Liquidate => return liquidate(input),
        AssignmentView::Active {
            target,
            rebalancing_enabled,
        } => (target, rebalancing_enabled),
    };
    let Some(account) = &input.account else {
        let mut evaluation = Evaluation::flag(
            Flag::UnableToCheck,
            "the account book has no holdings for this account",
        );
        evaluation.missing.push("holdings".to_owned());
        return evaluation;
    };
    match view.target.portfolio_status {
        PortfolioStatus::Active => {}
        PortfolioStatus::NeedsAdjustment => {
            return Evaluation::flag(Flag::NeedsAttention, "portfolio needs adjustment");
        }
        PortfolioStatus::Inactive => {
            return Evaluation::flag(Flag::NeedsAttention, "portfolio is inactive");
        }
    }
    let mut evaluation = match measure(account, view.target, input.prices) {
        Ok(evaluation) => evaluation,
        Err(missing) => {
            let named: Vec<String> = missing
                .iter()
                .map(|item| {
                    let symbol = item.strip_prefix("price:").unwrap_or(item);
                    match input.price_notes.get(symbol) {
                        Some(note) => format!("{symbol} ({note})"),
                        None => symbol.to_owned(),
                    }
                })
                .collect();
            let mut evaluation = Evaluation::flag(
                Flag::UnableToCheck,
                format!("no price for {}", named.join(", ")),
            );
            evaluation.missing = missing;
            return evaluation;
        }
    };
    let positions_value = evaluation.equity - evaluation.cash;
    let leveraged = leverage_exceeded(positions_value, evaluation.equity);
    if leveraged
        || account
            .restrictions
            .iter()
            .any(|r| *r != Restriction::LeverageExceeded)
    {
        let mut blocking: Vec<&str> = account
            .restrictions
            .iter()
            .filter(|r| **r != Restriction::LeverageExceeded)
            .map(|r| r.as_str())
            .collect();
        if leveraged {
            blocking.push("leverage above 6:1");
        }
        evaluation.flag = Flag::NeedsAttention;
        evaluation.reason = format!("restricted: {}", blocking.join(", "));
        return evaluation;
    }
    decide(input, account, view, rebalancing_enabled, evaluation)
}

/// Unassigned with rebalancing on: sell everything to cash.
fn liquidate<'a>(input: &EvaluationInput<'a>) -> Evaluation<'a> {
    let Some(account) = &input.account else {
        let mut evaluation = Evaluation::flag(
            Flag::UnableToCheck,
            "the account book has no holdings for this account",
        );
        evaluation.missing.push("holdings".to_owned());
        return evaluation;
    };
    let mut evaluation = Evaluation::flag(
        Flag::Liquidation,
        "rebalancing is on but no portfolio is assigned",
    );
    evaluation.cash = account.cash;
    evaluation.equity = account.cash
        + account
            .positions
            .iter()
            .filter_map(|(symbol, quantity)| input.prices.get(symbol).map(|price| price * quantity))
            .sum::<Decimal>();
    if account.positions.is_empty() {
        evaluation.run_note = "nothing left to liquidate".to_owned();
    } else if account.open_run {
        evaluation.run_note = "a run is already in progress".to_owned();
    } else {
        evaluation.run = Some(RunDecision {
            kind: RunKind::Liquidation,
            amount: None,
            cash_movement_id: None,
        });
    }
    evaluation
}

/// Values, bands and drift of every ticker, or the symbols without a price:
/// in exact integer arithmetic when every amount fits, else in `Decimal`.
fn measure<'a>(
    account: &AccountView<'a>,
    target: &'a PreparedTarget,
    prices: &Prices,
) -> Result<Evaluation<'a>, Vec<String>> {
    if let Some(fixed) = &target.fixed
        && let Some(result) = measure_exact(account, target, fixed, prices)
    {
        return result;
    }
    measure_decimal(account, target, prices)
}

/// [`measure`] on integer mantissas aligned to one scale per account (see
/// [`exact`]); `None` when something would not fit in 128 bits.
fn measure_exact<'a>(
    account: &AccountView<'a>,
    target: &'a PreparedTarget,
    fixed: &FixedTarget,
    prices: &Prices,
) -> Option<Result<Evaluation<'a>, Vec<String>>> {
    let mut held: Vec<(&'a str, i128, u32)> = Vec::with_capacity(account.positions.len());
    let mut missing = Vec::new();
    let mut scale = account.cash.scale();
    for (symbol, quantity) in account.positions {
        match prices.get(symbol) {
            Some(price) => {
                let (value, value_scale) = exact::product(*price, *quantity)?;
                scale = scale.max(value_scale);
                held.push((symbol.as_str(), value, value_scale));
            }
            None => missing.push(format!("price:{symbol}")),
        }
    }
    let mut equity = exact::at_scale(account.cash, scale)?;
    let cash = equity;
    for entry in &mut held {
        entry.1 = entry.1.checked_mul(exact::pow10(scale - entry.2)?)?;
        equity = equity.checked_add(entry.1)?;
    }
    held.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut tickers = Vec::with_capacity(target.assets.len() + held.len() + 1);
    let mut worst = 0_i128;
    let mut total = 0_i128;
    // |value × 100 − target × equity| in the target's scale, against
    // half width × equity: exact integer comparisons.
    let mut push = |symbol: Option<&'a str>,
                    value: i128,
                    percent: i128,
                    width: Option<i128>,
                    band: &AssetBand| {
        let off = value
            .checked_mul(fixed.hundred)?
            .checked_sub(percent.checked_mul(equity)?)?
            .checked_abs()?;
        worst = worst.max(off);
        total = total.checked_add(off)?;
        let breached = match (symbol, width) {
            (Some(_), Some(width)) => off > width.checked_mul(equity)?,
            _ => false,
        };
        tickers.push(TickerDrift {
            symbol,
            value: exact::decimal(value, scale)?,
            target_weight: band.target,
            band_lower: band.lower,
            band_upper: band.upper,
            breached,
        });
        Some(())
    };
    let cash_band = AssetBand {
        symbol: String::new(),
        target: target.cash_percent,
        lower: None,
        upper: None,
        half_width: None,
    };
    push(None, cash, fixed.cash, None, &cash_band)?;
    let (mut i, mut j) = (0, 0);
    loop {
        match (target.assets.get(i), held.get(j)) {
            (Some(asset), Some((symbol, value, _))) if asset.symbol.as_str() == *symbol => {
                let (percent, width) = fixed.assets[i];
                push(Some(asset.symbol.as_str()), *value, percent, width, asset)?;
                i += 1;
                j += 1;
            }
            (Some(asset), Some((symbol, _, _))) if asset.symbol.as_str() < *symbol => {
                if !prices.contains_key(&asset.symbol) {
                    missing.push(format!("price:{}", asset.symbol));
                }
                let (percent, width) = fixed.assets[i];
                push(Some(asset.symbol.as_str()), 0, percent, width, asset)?;
                i += 1;
            }
            (Some(asset), None) => {
                if !prices.contains_key(&asset.symbol) {
                    missing.push(format!("price:{}", asset.symbol));
                }
                let (percent, width) = fixed.assets[i];
                push(Some(asset.symbol.as_str()), 0, percent, width, asset)?;
                i += 1;
            }
            (_, Some((symbol, value, _))) => {
                push(
                    Some(symbol),
                    *value,
                    0,
                    fixed.off_target_width,
                    &target.off_target,
                )?;
                j += 1;
            }
            (None, None) => break,
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Some(Err(missing));
    }
    let (max_drift, total_drift) = if equity > 0 {
        // Points: off / (equity × 10^target scale).
        let unit = equity.checked_mul(fixed.hundred / 100)?;
        (
            exact::ratio_4dp(worst, unit)?,
            exact::ratio_4dp(total, unit.checked_mul(2)?)?,
        )
    } else {
        (Decimal::ZERO, Decimal::ZERO)
    };
    Some(Ok(Evaluation {
        flag: Flag::InsideTolerance,
        reason: String::new(),
        run: None,
        run_note: String::new(),
        equity: exact::decimal(equity, scale)?,
        cash: account.cash,
        max_drift,
        total_drift,
        tickers,
        missing: Vec::new(),
    }))
}

/// [`measure`] in `Decimal`. Bands are symmetric, so a ticker is outside its
/// band when |value − target × equity / 100| > half width × equity / 100:
/// multiplications only, and two divisions per account (the drift summaries).
fn measure_decimal<'a>(
    account: &AccountView<'a>,
    target: &'a PreparedTarget,
    prices: &Prices,
) -> Result<Evaluation<'a>, Vec<String>> {
    let mut held: Vec<(&'a str, Decimal)> = Vec::with_capacity(account.positions.len());
    let mut missing = Vec::new();
    for (symbol, quantity) in account.positions {
        match prices.get(symbol) {
            Some(price) => held.push((symbol.as_str(), price * quantity)),
            None => missing.push(format!("price:{symbol}")),
        }
    }
    held.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let equity = account.cash + held.iter().map(|(_, value)| *value).sum::<Decimal>();
    // One percent of the account, in dollars.
    let point = equity * ONE_HUNDREDTH;
    let mut tickers = Vec::with_capacity(target.assets.len() + held.len() + 1);
    let mut worst = Decimal::ZERO;
    let mut total = Decimal::ZERO;
    let mut push = |symbol: Option<&'a str>, value: Decimal, band: &AssetBand| {
        let expected = if band.target.is_zero() {
            Decimal::ZERO
        } else {
            band.target * point
        };
        let off = (value - expected).abs();
        if off > worst {
            worst = off;
        }
        total += off;
        let breached = symbol.is_some() && band.half_width.is_some_and(|width| off > width * point);
        tickers.push(TickerDrift {
            symbol,
            value,
            target_weight: band.target,
            band_lower: band.lower,
            band_upper: band.upper,
            breached,
        });
    };
    let cash = AssetBand {
        symbol: String::new(),
        target: target.cash_percent,
        lower: None,
        upper: None,
        half_width: None,
    };
    push(None, account.cash, &cash);
    // Merge the sorted target assets with the sorted holdings.
    let (mut i, mut j) = (0, 0);
    loop {
        match (target.assets.get(i), held.get(j)) {
            (Some(asset), Some((symbol, value))) if asset.symbol.as_str() == *symbol => {
                push(Some(asset.symbol.as_str()), *value, asset);
                i += 1;
                j += 1;
            }
            (Some(asset), Some((symbol, _))) if asset.symbol.as_str() < *symbol => {
                if !prices.contains_key(&asset.symbol) {
                    missing.push(format!("price:{}", asset.symbol));
                }
                push(Some(asset.symbol.as_str()), Decimal::ZERO, asset);
                i += 1;
            }
            (Some(asset), None) => {
                if !prices.contains_key(&asset.symbol) {
                    missing.push(format!("price:{}", asset.symbol));
                }
                push(Some(asset.symbol.as_str()), Decimal::ZERO, asset);
                i += 1;
            }
            (_, Some((symbol, value))) => {
                push(Some(symbol), *value, &target.off_target);
                j += 1;
            }
            (None, None) => break,
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(missing);
    }
    let (max_drift, total_drift) = if point > Decimal::ZERO {
        (
            (worst / point).round_dp(4),
            (total / (point * Decimal::TWO)).round_dp(4),
        )
    } else {
        (Decimal::ZERO, Decimal::ZERO)
    };
    Ok(Evaluation {
        flag: Flag::InsideTolerance,
        reason: String::new(),
        run: None,
        run_note: String::new(),
        equity,
        cash: account.cash,
        max_drift,
        total_drift,
        tickers,
        missing: Vec::new(),
    })
}

/// The allowed weight range of `symbol`: the narrower of its absolute and
/// relative bands (a per-asset band overrides the portfolio's of that kind).
pub(crate) fn band(
    conditions: &[RebalanceCondition],
    symbol: &str,
    target: Decimal,
) -> (Option<Decimal>, Option<Decimal>) {
    let pick = |kind: BandKind| -> Option<Decimal> {
        let bands = conditions.iter().filter_map(|c| match c {
            RebalanceCondition::DriftBand(band) if band.kind == kind => Some(band),
            _ => None,
        });
        let mut portfolio_level = None;
        for band in bands {
            match &band.symbol {
                Some(own) if own.as_str() == symbol => return Some(band.percent),
                Some(_) => {}
                None => portfolio_level = Some(band.percent),
            }
        }
        portfolio_level
    };
    let mut lower: Option<Decimal> = None;
    let mut upper: Option<Decimal> = None;
    let mut narrow = |low: Decimal, high: Decimal| {
        lower = Some(lower.map_or(low, |l| l.max(low)));
        upper = Some(upper.map_or(high, |u| u.min(high)));
    };
    if let Some(absolute) = pick(BandKind::Absolute) {
        narrow(target - absolute, target + absolute);
    }
    if let Some(relative) = pick(BandKind::Relative) {
        let width = target * relative / Decimal::ONE_HUNDRED;
        narrow(target - width, target + width);
    }
    (lower, upper)
}

/// Cash movements, first investment, cooldown, calendar and drift.
fn decide<'a>(
    input: &EvaluationInput<'a>,
    account: &AccountView<'a>,
    view: TargetView<'a>,
    rebalancing_enabled: bool,
    mut evaluation: Evaluation<'a>,
) -> Evaluation<'a> {
    let target = view.target;
    let withdrawal = account
        .pending
        .iter()
        .find(|m| m.kind == CashMovementKind::Withdrawal);
    if !rebalancing_enabled {
        return rebalancing_off(evaluation, withdrawal);
    }
    let deposit = account
        .pending
        .iter()
        .any(|m| m.kind == CashMovementKind::Deposit);
    let cash_target = target.cash_percent * evaluation.equity * ONE_HUNDREDTH;
    let investable = evaluation.cash - cash_target;
    let any_breached = evaluation.tickers.iter().any(|t| t.breached);
    let equity = evaluation.equity;
    let breached = || -> String {
        evaluation
            .tickers
            .iter()
            .filter(|t| t.breached)
            .map(|t| {
                format!(
                    "{} {}% outside {}-{}",
                    t.symbol.unwrap_or("cash"),
                    t.current_weight(equity).round_dp(2),
                    t.band_lower.unwrap_or_default().round_dp(2),
                    t.band_upper.unwrap_or_default().round_dp(2)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let calendar_today = || {
        target
            .calendar
            .is_some_and(|rule| calendar_due(rule, input.today))
    };
    // A hybrid policy trades on drift only on its review days.
    let review_today = target
        .review
        .is_none_or(|rule| calendar_due(rule, input.today));
    let how = match target.rebalance_to {
        RebalanceTo::Target => "",
        RebalanceTo::BandEdge => "; to the band's edge",
    };
    // A target that changed after the last rebalance asks for one. An account
    // never rebalanced onto its target is taken as following it when it is
    // inside its bands; without bands, only a rebalance puts it there.
    let changed = match (view.target_changed_at, account.last_rebalanced_at) {
        (Some(changed), Some(rebalanced)) => changed > rebalanced,
        (Some(_), None) => !target.has_bands,
        _ => false,
    };
    // Cooldown counts calendar days in the exchange's time zone, not hours:
    // an account rebalanced on date D (any time of day) with N days of
    // cooldown is eligible again on D + N, from that day's first cycle on.
    let eligible_on = account
        .last_rebalanced_at
        .map(|at| exchange_date(at) + Duration::days(i64::from(target.cooldown_days)));
    let in_cooldown = eligible_on.is_some_and(|eligible| input.today < eligible) && !changed;
    let first_investment =
        account.positions.is_empty() && investable > target.invest_cash_threshold;
    let mut run_note = String::new();

    let (flag, reason, run) = if let Some(withdrawal) = withdrawal {
        (
            Flag::NewWithdrawal,
            format!("withdrawal request of {}", withdrawal.amount),
            Some(RunDecision {
                kind: RunKind::Liquidation,
                amount: Some(withdrawal.amount),
                cash_movement_id: Some(withdrawal.id.clone()),
            }),
        )
    } else if first_investment {
        let flag = if deposit {
            Flag::NewDeposit
        } else {
            Flag::OutOfTolerance
        };
        (flag, "first investment".to_owned(), Some(full()))
    } else if any_breached && !in_cooldown && review_today {
        let reason = match target.review {
            Some(rule) => format!("review day ({}): {}{how}", rule.describe(), breached()),
            None => format!("{}{how}", breached()),
        };
        (Flag::OutOfTolerance, reason, Some(full()))
    } else if !in_cooldown && calendar_today() {
        (
            Flag::OutOfTolerance,
            "calendar rebalance day".to_owned(),
            Some(full()),
        )
    } else if changed {
        (
            Flag::OutOfTolerance,
            "target changed since the last rebalance".to_owned(),
            Some(full()),
        )
    } else if investable > target.invest_cash_threshold {
        let flag = if deposit {
            Flag::NewDeposit
        } else if any_breached {
            Flag::OutOfTolerance
        } else {
            Flag::InsideTolerance
        };
        let reason = format!("{} of cash above the cash target", investable.round_dp(2));
        let run = RunDecision {
            kind: RunKind::InvestCash,
            amount: None,
            cash_movement_id: None,
        };
        (flag, reason, Some(run))
    } else if any_breached && !review_today {
        let next = target
            .review
            .and_then(|rule| next_due(rule, input.today))
            .map(|d| d.to_string())
            .unwrap_or_default();
        run_note = format!("hybrid policy: trades only on review days, next on {next}");
        (Flag::OutOfTolerance, breached(), None)
    } else if any_breached {
        let eligible = eligible_on.map(|d| d.to_string()).unwrap_or_default();
        run_note = format!("in cooldown: eligible again on {eligible}");
        (Flag::OutOfTolerance, breached(), None)
    } else if deposit {
        run_note = "deposit below the invest cash threshold".to_owned();
        (Flag::NewDeposit, "new deposit".to_owned(), None)
    } else if let Some(rule) = target.review.filter(|_| review_today) {
        let reason = format!("review day ({}): inside tolerance", rule.describe());
        (Flag::InsideTolerance, reason, None)
    } else {
        (Flag::InsideTolerance, "inside tolerance".to_owned(), None)
    };
    evaluation.flag = flag;
    evaluation.reason = reason;
    evaluation.run_note = run_note;
    evaluation.run = match run {
        Some(_) if account.open_run => {
            evaluation.run_note = "a run is already in progress".to_owned();
            None
        }
        run => run,
    };
    evaluation
}

const REBALANCING_OFF: &str = "rebalancing is off for this account";

/// An assigned account with rebalancing off is not monitored: no drift flag
/// and no run, whatever its drift (its tickers stay measured, for anyone
/// who asks). A pending withdrawal is still shown, as a client instruction
/// someone has to act on, but no run is opened for it either.
fn rebalancing_off<'a>(
    mut evaluation: Evaluation<'a>,
    withdrawal: Option<&PendingMovement>,
) -> Evaluation<'a> {
    match withdrawal {
        Some(withdrawal) => {
            evaluation.flag = Flag::NewWithdrawal;
            evaluation.reason = format!("withdrawal request of {}", withdrawal.amount);
            evaluation.run_note = REBALANCING_OFF.to_owned();
        }
        None => {
            evaluation.flag = Flag::RebalancingOff;
            evaluation.reason = REBALANCING_OFF.to_owned();
        }
    }
    evaluation.run = None;
    evaluation
}

/// 0.01, exactly: multiplying by it divides by 100 without a division.
const ONE_HUNDREDTH: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

fn full() -> RunDecision {
    RunDecision {
        kind: RunKind::FullRebalance,
        amount: None,
        cash_movement_id: None,
    }
}

/// Whether a calendar condition fires on `today`: its day in this period or
/// the next, clamped to the month's length and rolled back to a trading day,
/// is today.
#[must_use]
pub fn calendar_due(rule: CalendarRule, today: NaiveDate) -> bool {
    due_candidates(rule, today)
        .into_iter()
        .any(|date| trading_day_on_or_before(date) == today)
}

/// The rule's days in `today`'s period and the next, before rolling back.
fn due_candidates(rule: CalendarRule, today: NaiveDate) -> Vec<NaiveDate> {
    match rule {
        CalendarRule::Weekly(weekday) => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            let offset = i64::from(weekday.num_days_from_monday());
            vec![
                monday + Duration::days(offset),
                monday + Duration::days(offset + 7),
            ]
        }
        CalendarRule::Monthly(day) => {
            let (next_year, next_month) = next_month(today.year(), today.month());
            vec![
                clamp(today.year(), today.month(), day),
                clamp(next_year, next_month, day),
            ]
            .into_iter()
            .flatten()
            .collect()
        }
        CalendarRule::Quarterly { first_month, day } => {
            let mut dates = Vec::new();
            let (mut year, mut month) = (today.year(), today.month());
            for _ in 0..4 {
                if month % 3 == first_month % 3
                    && let Some(date) = clamp(year, month, day)
                {
                    dates.push(date);
                }
                (year, month) = next_month(year, month);
            }
            dates
        }
        CalendarRule::Annually { month, day } => [today.year(), today.year() + 1]
            .into_iter()
            .filter_map(|year| clamp(year, month, day))
            .collect(),
    }
}

/// The first trading day from `today` on (today included) on which `rule`
/// is due: the earliest of its days over the next fifteen months (three
/// weeks for a weekly rule), rolled back to trading days.
#[must_use]
pub fn next_due(rule: CalendarRule, today: NaiveDate) -> Option<NaiveDate> {
    let probes: Vec<NaiveDate> = match rule {
        CalendarRule::Weekly(_) => (0..3).map(|week| today + Duration::weeks(week)).collect(),
        _ => {
            let (mut year, mut month) = (today.year(), today.month());
            let mut probes = Vec::new();
            for _ in 0..15 {
                probes.extend(NaiveDate::from_ymd_opt(year, month, 1));
                (year, month) = next_month(year, month);
            }
            probes
        }
    };
    probes
        .into_iter()
        .flat_map(|probe| due_candidates(rule, probe))
        .map(trading_day_on_or_before)
        .filter(|day| *day >= today)
        .min()
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// `day` of a month, or the month's last day when it is shorter.
fn clamp(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    (1..=day)
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
}

#[cfg(test)]
#[path = "evaluation_tests.rs"]
mod tests;

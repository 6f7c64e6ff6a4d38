//! Model-based property test of the account book (issue 10): random
//! sequences of deposits, withdrawals, upserts, runs of every type, edits,
//! approvals, cancellations, untradable assets (broker rejects), TWAP slices
//! (partial fills), clock jumps and restarts, driven over gRPC against the
//! real services in-process ([`TestStack`]), with the book's invariants read
//! back over gRPC after every step.
//!
//! The model is deliberately small: for each account it keeps the cash and
//! the shares the book must hold if money is conserved, that is the last
//! upserted state, plus deposits, minus settled withdrawals, minus what buys
//! paid and plus what sells received according to the allocations the
//! OrderService reports (each allocation is applied once, when first seen).
//! Everything else (plans, skips, refusals) is the services' business; a
//! refusal (INVALID_ARGUMENT, FAILED_PRECONDITION, ABORTED) changes nothing
//! in the model, and any other error status is a failure.
//!
//! Invariants, checked after every step (their names appear in failures and
//! can be skipped one by one with `BOOK_MODEL_SKIP=name,name` to look past a
//! known defect; nothing is skipped by default):
//! - `no-error`: no INTERNAL/UNKNOWN/other unexpected status, no failed tick.
//! - `no-negative-cash`: every account is a cash account; cash ≥ 0.
//! - `no-negative-position`: no position below zero, in the book or in the
//!   model (a sell allocated more shares than the account held).
//! - `conservation`: each account's cash and shares equal the model's
//!   exactly, so Σ cash + Σ positions × cost moves only by deposits,
//!   settled withdrawals and fills at their prices.
//! - `allocations-sum`: every fill's allocations sum exactly to the fill.
//! - `one-average-price`: in a finished block, each account order's
//!   allocated dollars (its block average-price correction included) equal
//!   its filled quantity × the average price of the block's orders sized
//!   like it (in shares, or in dollars) within [`AVERAGE_PRICE_TOLERANCE`]
//!   (under a cent per order: the residue the settlement hands out by
//!   largest remainder). The corrections (fill id `avg-<block>`) carry no
//!   shares and sum to zero.
//! - `terminal-is-final`: a run that reached a terminal status keeps it.
//! - `run-ends-with-reason`: at the end of a sequence, after the clock has
//!   run on until the worker has nothing left (up to a few trading days),
//!   every run is terminal with a non-empty reason.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use rebalancer_kit::Clock;
use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::{ApprovalMode, InitiatedFrom, RunType, Weight, WeightType};
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::market_data_service_client::MarketDataServiceClient;
use rebalancer_proto::execution::order_service_client::OrderServiceClient;
use rebalancer_proto::execution::run_service_client::RunServiceClient;
use rebalancer_proto::execution::{
    AdjustRunRequest, AlgorithmType, Allocation, ApproveRunRequest, BlockOrder,
    CancelCashMovementRequest, CancelRunRequest, CashMovementType, CreateCashMovementRequest,
    CreateRunRequest, ExecutionAlgorithm, Fill, GetAccountRequest, GetClockRequest,
    GetQuotesRequest, GetRunRequest, ListAccountsRequest, ListAllocationsRequest,
    ListBlockOrdersRequest, ListFillsRequest, ListOrdersRequest, ListRunsRequest, OrderAdjustment,
    OrderSide, Position, Run, RunSpec, RunStatus, SettleCashMovementRequest, UpdateAssetRequest,
    UpsertAccountRequest,
};
use rebalancer_proto::prost_types;
use rust_decimal::Decimal;
use tonic::Code;

use crate::stack::{Backend, TestStack};

/// Largest difference, in dollars, between an account order's allocated
/// amount and its filled quantity × its block's average fill price.
pub const AVERAGE_PRICE_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// Symbols the sequences trade: fractionable ETFs, whole-share ones (ARKK,
/// AZO) and one held outside every model (AAPL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Symbol {
    Spy,
    Tlt,
    Qqq,
    Arkk,
    Azo,
    Aapl,
}

impl Symbol {
    pub const ALL: [Self; 6] = [
        Self::Spy,
        Self::Tlt,
        Self::Qqq,
        Self::Arkk,
        Self::Azo,
        Self::Aapl,
    ];

    #[must_use]
    pub fn ticker(self) -> &'static str {
        match self {
            Self::Spy => "SPY",
            Self::Tlt => "TLT",
            Self::Qqq => "QQQ",
            Self::Arkk => "ARKK",
            Self::Azo => "AZO",
            Self::Aapl => "AAPL",
        }
    }

    /// Held in whole shares (not fractionable at the broker).
    fn whole(self) -> bool {
        matches!(self, Self::Arkk | Self::Azo)
    }
}

/// The one-off target weights of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Cash 5, SPY 60, TLT 35.
    Balanced,
    /// SPY 40, TLT 30, QQQ 30, no cash (issue 10, defect 3).
    FullyInvested,
    /// Cash 10, AZO 90: whole shares.
    WholeShares,
    /// ARKK 50, SPY 50.
    Mixed,
    /// Cash 100: sell everything.
    AllCash,
}

impl Target {
    fn weights(self) -> Vec<Weight> {
        let lines: &[(&str, &str)] = match self {
            Self::Balanced => &[("", "5"), ("SPY", "60"), ("TLT", "35")],
            Self::FullyInvested => &[("SPY", "40"), ("TLT", "30"), ("QQQ", "30")],
            Self::WholeShares => &[("", "10"), ("AZO", "90")],
            Self::Mixed => &[("ARKK", "50"), ("SPY", "50")],
            Self::AllCash => &[("", "100")],
        };
        lines
            .iter()
            .map(|(symbol, percent)| Weight {
                r#type: if symbol.is_empty() {
                    WeightType::Cash
                } else {
                    WeightType::Asset
                }
                .into(),
                symbol: (*symbol).to_owned(),
                percent: (*percent).to_owned(),
                ..Weight::default()
            })
            .collect()
    }
}

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    FullRebalance,
    InvestCash,
    /// Raise `amount` (everything when `None`); for the `withdrawal`-th
    /// withdrawal of the sequence when set.
    Liquidation {
        amount: Option<Decimal>,
        withdrawal: Option<usize>,
    },
}

/// How a run's blocks are worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Market,
    /// Equal slices over this many minutes: fills come in parts.
    Twap {
        minutes: u32,
    },
}

/// An edit of one order of a proposed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Quantity or notional × percent / 100 (raises and lowers).
    Scale {
        percent: u32,
    },
    Exclude,
}

/// One step of a sequence. Indices (`account`, `run`, `withdrawal`,
/// `order`) pick among what the sequence has made so far, modulo its count;
/// a step with nothing to pick does nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Deposit {
        account: usize,
        amount: Decimal,
    },
    Withdraw {
        account: usize,
        amount: Decimal,
    },
    SettleWithdrawal {
        withdrawal: usize,
    },
    CancelWithdrawal {
        withdrawal: usize,
    },
    /// Replaces the account's cash and positions.
    Upsert {
        account: usize,
        opening: Opening,
    },
    /// Keeps everything and lowers one position to `percent` % of itself.
    LowerPosition {
        account: usize,
        symbol: Symbol,
        percent: u32,
    },
    CreateRun {
        account: usize,
        kind: Kind,
        target: Target,
        manual: bool,
        algorithm: Algorithm,
        /// Initiated by the system: gathered with other system runs into
        /// shared blocks (several accounts per block).
        system: bool,
    },
    Adjust {
        run: usize,
        order: usize,
        edit: Edit,
    },
    Approve {
        run: usize,
    },
    Cancel {
        run: usize,
    },
    SetTradable {
        symbol: Symbol,
        tradable: bool,
    },
    /// Advances the clock a minute at a time, ticking the worker.
    Advance {
        minutes: u32,
    },
    /// To the close, then to the next session's open.
    NextDay,
    Restart,
}

/// An account's cash and positions as upserted.
#[derive(Clone, PartialEq)]
pub struct Opening {
    pub cash: Decimal,
    pub positions: Vec<(Symbol, Decimal)>,
}

impl fmt::Debug for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cash {}", self.cash)?;
        for (symbol, quantity) in &self.positions {
            write!(f, ", {quantity} {}", symbol.ticker())?;
        }
        Ok(())
    }
}

/// A generated case: the accounts' opening states and the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub accounts: Vec<Opening>,
    pub ops: Vec<Op>,
}

/// Sizes of the generated sequences.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub max_accounts: usize,
    pub max_ops: usize,
}

fn cents(low: u64, high: u64) -> impl Strategy<Value = Decimal> {
    (low..=high).prop_map(|cents| Decimal::new(i64::try_from(cents).unwrap_or(i64::MAX), 2))
}

fn quantity(symbol: Symbol) -> BoxedStrategy<Decimal> {
    if symbol.whole() {
        (1u32..=30).prop_map(Decimal::from).boxed()
    } else {
        (1u32..=20_000)
            .prop_map(|hundredths| Decimal::new(i64::from(hundredths), 2))
            .boxed()
    }
}

fn symbol() -> impl Strategy<Value = Symbol> {
    prop::sample::select(Symbol::ALL.to_vec())
}

fn tradable_symbol() -> impl Strategy<Value = Symbol> {
    prop::sample::select(vec![
        Symbol::Spy,
        Symbol::Tlt,
        Symbol::Qqq,
        Symbol::Arkk,
        Symbol::Azo,
    ])
}

fn opening() -> impl Strategy<Value = Opening> {
    let position = symbol().prop_flat_map(|symbol| (Just(symbol), quantity(symbol)));
    (
        prop_oneof![Just(Decimal::ZERO), cents(1, 5_000_000)],
        prop::collection::vec(position, 0..=3),
    )
        .prop_map(|(cash, mut positions)| {
            positions.sort_by_key(|(symbol, _)| *symbol);
            positions.dedup_by_key(|(symbol, _)| *symbol);
            Opening { cash, positions }
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop::sample::select(vec![
        Target::Balanced,
        Target::FullyInvested,
        Target::WholeShares,
        Target::Mixed,
        Target::AllCash,
    ])
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::FullRebalance),
        Just(Kind::InvestCash),
        (
            prop::option::of(cents(100, 3_000_000)),
            prop::option::weighted(0.3, 0usize..4)
        )
            .prop_map(|(amount, withdrawal)| Kind::Liquidation { amount, withdrawal }),
    ]
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        2 => Just(Algorithm::Market),
        1 => (3u32..=8).prop_map(|minutes| Algorithm::Twap { minutes }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // More than ten arms: `prop_oneof!` needs them boxed to one type.
    let account = 0usize..4;
    prop_oneof![
        3 => (account.clone(), cents(100, 2_000_000))
            .prop_map(|(account, amount)| Op::Deposit { account, amount }).boxed(),
        // Up to $200,000: often more than the whole account.
        3 => (account.clone(), cents(100, 20_000_000))
            .prop_map(|(account, amount)| Op::Withdraw { account, amount }).boxed(),
        2 => (0usize..4).prop_map(|withdrawal| Op::SettleWithdrawal { withdrawal }).boxed(),
        1 => (0usize..4).prop_map(|withdrawal| Op::CancelWithdrawal { withdrawal }).boxed(),
        2 => (account.clone(), opening())
            .prop_map(|(account, opening)| Op::Upsert { account, opening }).boxed(),
        2 => (account.clone(), symbol(), 0u32..=90).prop_map(|(account, symbol, percent)| {
            Op::LowerPosition { account, symbol, percent }
        }).boxed(),
        6 => (account, kind(), target(), any::<bool>(), algorithm(), any::<bool>()).prop_map(
            |(account, kind, target, manual, algorithm, system)| Op::CreateRun {
                account,
                kind,
                target,
                manual,
                algorithm,
                system,
            }
        ).boxed(),
        3 => (
            0usize..6,
            0usize..4,
            prop_oneof![
                3 => (10u32..=600).prop_map(|percent| Edit::Scale { percent }),
                1 => Just(Edit::Exclude),
            ]
        )
            .prop_map(|(run, order, edit)| Op::Adjust { run, order, edit }).boxed(),
        4 => (0usize..6).prop_map(|run| Op::Approve { run }).boxed(),
        1 => (0usize..6).prop_map(|run| Op::Cancel { run }).boxed(),
        1 => (tradable_symbol(), any::<bool>())
            .prop_map(|(symbol, tradable)| Op::SetTradable { symbol, tradable }).boxed(),
        4 => (1u32..=10).prop_map(|minutes| Op::Advance { minutes }).boxed(),
        1 => Just(Op::NextDay).boxed(),
        1 => Just(Op::Restart).boxed(),
    ]
}

/// Sequences of up to `size.max_ops` steps on 1..=`size.max_accounts` accounts.
pub fn sequence(size: Size) -> impl Strategy<Value = Sequence> {
    (
        prop::collection::vec(opening(), 1..=size.max_accounts.max(1)),
        prop::collection::vec(op(), 1..=size.max_ops.max(1)),
    )
        .prop_map(|(accounts, ops)| Sequence { accounts, ops })
}

/// A broken invariant, named as in the module documentation.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.invariant, self.detail)
    }
}

/// Violations found at one step.
type Found = Vec<Violation>;

fn violation(invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        invariant,
        detail: detail.into(),
    }
}

fn decimal(text: &str) -> Decimal {
    if text.is_empty() {
        return Decimal::ZERO;
    }
    Decimal::from_str(text).unwrap_or_else(|_| panic!("decimal {text:?} on the wire"))
}

fn timestamp(moment: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let moment = moment?;
    DateTime::from_timestamp(moment.seconds, u32::try_from(moment.nanos).ok()?)
}

fn is_terminal(status: i32) -> bool {
    matches!(
        RunStatus::try_from(status),
        Ok(RunStatus::CompletedSuccess
            | RunStatus::CompletedAdjusted
            | RunStatus::Error
            | RunStatus::Timeout
            | RunStatus::Canceled
            | RunStatus::CanceledMidRun)
    )
}

fn status_name(status: i32) -> &'static str {
    RunStatus::try_from(status).map_or("RUN_STATUS_?", |status| status.as_str_name())
}

/// What the book must hold for one account.
#[derive(Debug, Clone, Default)]
struct Expected {
    cash: Decimal,
    positions: BTreeMap<String, Decimal>,
}

/// The gRPC clients of one stack.
#[derive(Debug, Clone)]
struct Clients {
    accounts: AccountServiceClient<TracedChannel>,
    runs: RunServiceClient<TracedChannel>,
    orders: OrderServiceClient<TracedChannel>,
    market: MarketDataServiceClient<TracedChannel>,
}

impl Clients {
    fn new(stack: &TestStack) -> Self {
        Self {
            accounts: AccountServiceClient::new(stack.channel()),
            runs: RunServiceClient::new(stack.channel()),
            orders: OrderServiceClient::new(stack.channel()),
            market: MarketDataServiceClient::new(stack.channel()),
        }
    }
}

/// A refusal is fine (nothing changes); anything else is a failure.
fn refused(status: &tonic::Status) -> Result<(), Violation> {
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::Aborted => Ok(()),
        code => Err(violation(
            "no-error",
            format!("{code:?}: {}", status.message()),
        )),
    }
}

/// One sequence against one stack: the model and what it has made.
struct Case<'a> {
    stack: &'a mut TestStack,
    clients: Clients,
    firm: CallContext,
    prefix: String,
    accounts: Vec<String>,
    expected: HashMap<String, Expected>,
    /// Withdrawal ids and their accounts and amounts, in creation order.
    withdrawals: Vec<(String, String, Decimal)>,
    runs: Vec<String>,
    /// Allocations applied to the model, by (fill, order).
    applied: HashSet<(String, String)>,
    /// Blocks finished and fully checked.
    finished: HashSet<String>,
    /// Runs seen in a terminal status, and that status.
    terminal: HashMap<String, i32>,
    prices: HashMap<String, Decimal>,
    steps: usize,
    skip: &'a BTreeSet<String>,
}

impl Case<'_> {
    fn key(&self, what: &str) -> String {
        format!("{}-{}-{what}", self.prefix, self.steps)
    }

    fn account(&self, index: usize) -> String {
        self.accounts[index % self.accounts.len()].clone()
    }

    async fn tick(&self) -> Result<(), Violation> {
        self.stack
            .execution
            .tick("model-worker")
            .await
            .map(drop)
            .map_err(|error| violation("no-error", format!("worker tick failed: {error:#}")))
    }

    async fn clock(&mut self) -> Result<(bool, DateTime<Utc>, DateTime<Utc>), Violation> {
        let clock = self
            .clients
            .market
            .get_clock(self.firm.request(GetClockRequest {}))
            .await
            .map_err(|status| violation("no-error", format!("GetClock: {status:?}")))?
            .into_inner();
        let next_open = timestamp(clock.next_open.as_ref())
            .ok_or_else(|| violation("no-error", "GetClock without next_open"))?;
        let next_close = timestamp(clock.next_close.as_ref())
            .ok_or_else(|| violation("no-error", "GetClock without next_close"))?;
        Ok((clock.is_open, next_open, next_close))
    }

    /// Moves the clock into a session (a few minutes after its open) if the
    /// market is closed or about to close.
    async fn open_session(&mut self) -> Result<(), Violation> {
        let (open, next_open, next_close) = self.clock().await?;
        let now = self.stack.clock.now();
        if !open || next_close - now < TimeDelta::minutes(30) {
            self.stack.clock.set(next_open + TimeDelta::minutes(5));
        }
        Ok(())
    }

    async fn upsert(&mut self, account: &str, opening: &Opening) -> Result<(), Violation> {
        let positions = opening
            .positions
            .iter()
            .map(|(symbol, quantity)| Position {
                symbol: symbol.ticker().to_owned(),
                quantity: quantity.to_string(),
                average_cost: self
                    .prices
                    .get(symbol.ticker())
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                ..Position::default()
            })
            .collect();
        self.upsert_positions(account, opening.cash, positions)
            .await
    }

    async fn upsert_positions(
        &mut self,
        account: &str,
        cash: Decimal,
        positions: Vec<Position>,
    ) -> Result<(), Violation> {
        let answer = self
            .clients
            .accounts
            .upsert_account(self.firm.request(UpsertAccountRequest {
                account_id: account.to_owned(),
                cash: cash.to_string(),
                positions: positions.clone(),
                ..UpsertAccountRequest::default()
            }))
            .await;
        match answer {
            Ok(_) => {
                let expected = self.expected.entry(account.to_owned()).or_default();
                expected.cash = cash;
                expected.positions = positions
                    .iter()
                    .map(|p| (p.symbol.clone(), decimal(&p.quantity)))
                    .collect();
                Ok(())
            }
            Err(status) => refused(&status),
        }
    }

    async fn get_run(&mut self, index: usize) -> Result<Option<Run>, Violation> {
        if self.runs.is_empty() {
            return Ok(None);
        }
        let id = self.runs[index % self.runs.len()].clone();
        let run = self
            .clients
            .runs
            .get_run(self.firm.request(GetRunRequest { run_id: id }))
            .await
            .map_err(|status| violation("no-error", format!("GetRun: {status:?}")))?
            .into_inner()
            .run;
        Ok(run)
    }

    /// Applies `op` to the services and the model, then lets the worker run once.
    async fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        match op {
            Op::Deposit { account, amount } => {
                let account = self.account(*account);
                let answer = self
                    .clients
                    .accounts
                    .create_cash_movement(self.firm.request(CreateCashMovementRequest {
                        idempotency_key: self.key("deposit"),
                        account_id: account.clone(),
                        r#type: CashMovementType::Deposit.into(),
                        amount: amount.to_string(),
                    }))
                    .await;
                match answer {
                    Ok(_) => {
                        self.expected.entry(account).or_default().cash += *amount;
                    }
                    Err(status) => refused(&status)?,
                }
            }
            Op::Withdraw { account, amount } => {
                let account = self.account(*account);
                let answer = self
                    .clients
                    .accounts
                    .create_cash_movement(self.firm.request(CreateCashMovementRequest {
                        idempotency_key: self.key("withdrawal"),
                        account_id: account.clone(),
                        r#type: CashMovementType::Withdrawal.into(),
                        amount: amount.to_string(),
                    }))
                    .await;
                match answer {
                    Ok(response) => {
                        if let Some(movement) = response.into_inner().cash_movement {
                            self.withdrawals.push((movement.id, account, *amount));
                        }
                    }
                    Err(status) => refused(&status)?,
                }
            }
            Op::SettleWithdrawal { withdrawal } => {
                if let Some((id, account, amount)) = self.pick_withdrawal(*withdrawal) {
                    let answer = self
                        .clients
                        .accounts
                        .settle_cash_movement(self.firm.request(SettleCashMovementRequest {
                            cash_movement_id: id,
                        }))
                        .await;
                    match answer {
                        Ok(_) => self.expected.entry(account).or_default().cash -= amount,
                        Err(status) => refused(&status)?,
                    }
                }
            }
            Op::CancelWithdrawal { withdrawal } => {
                if let Some((id, ..)) = self.pick_withdrawal(*withdrawal) {
                    let answer = self
                        .clients
                        .accounts
                        .cancel_cash_movement(self.firm.request(CancelCashMovementRequest {
                            cash_movement_id: id,
                        }))
                        .await;
                    if let Err(status) = answer {
                        refused(&status)?;
                    }
                }
            }
            Op::Upsert { account, opening } => {
                let account = self.account(*account);
                self.upsert(&account, opening).await?;
            }
            Op::LowerPosition {
                account,
                symbol,
                percent,
            } => {
                let account = self.account(*account);
                let current = self
                    .clients
                    .accounts
                    .get_account(self.firm.request(GetAccountRequest {
                        account_id: account.clone(),
                    }))
                    .await
                    .map_err(|status| violation("no-error", format!("GetAccount: {status:?}")))?
                    .into_inner()
                    .account
                    .ok_or_else(|| violation("no-error", "GetAccount without an account"))?;
                let mut positions = current.positions.clone();
                let Some(position) = positions.iter_mut().find(|p| p.symbol == symbol.ticker())
                else {
                    return self.tick().await;
                };
                let lowered =
                    decimal(&position.quantity) * Decimal::from(*percent) / Decimal::ONE_HUNDRED;
                let lowered = if symbol.whole() {
                    lowered.floor()
                } else {
                    lowered.round_dp(2)
                };
                position.quantity = lowered.to_string();
                let positions = positions
                    .into_iter()
                    .map(|p| Position {
                        symbol: p.symbol,
                        quantity: p.quantity,
                        average_cost: p.average_cost,
                        ..Position::default()
                    })
                    .collect();
                self.upsert_positions(&account, decimal(&current.cash), positions)
                    .await?;
            }
            Op::CreateRun {
                account,
                kind,
                target,
                manual,
                algorithm,
                system,
            } => {
                let account = self.account(*account);
                let (r#type, amount, cash_movement_id) = match kind {
                    Kind::FullRebalance => (RunType::FullRebalance, None, String::new()),
                    Kind::InvestCash => (RunType::InvestCash, None, String::new()),
                    Kind::Liquidation { amount, withdrawal } => {
                        let movement = withdrawal
                            .and_then(|index| self.pick_withdrawal(index))
                            .map(|(id, ..)| id)
                            .unwrap_or_default();
                        (RunType::Liquidation, *amount, movement)
                    }
                };
                let algorithm = match algorithm {
                    Algorithm::Market => ExecutionAlgorithm {
                        r#type: AlgorithmType::Market.into(),
                        ..ExecutionAlgorithm::default()
                    },
                    Algorithm::Twap { minutes } => ExecutionAlgorithm {
                        r#type: AlgorithmType::Twap.into(),
                        horizon: Some(prost_types::Duration {
                            seconds: i64::from(*minutes) * 60,
                            nanos: 0,
                        }),
                        ..ExecutionAlgorithm::default()
                    },
                };
                let spec = RunSpec {
                    account_id: account,
                    r#type: r#type.into(),
                    amount: amount.map(|a| a.to_string()).unwrap_or_default(),
                    weights: target.weights(),
                    initiated_from: if *system {
                        InitiatedFrom::System
                    } else {
                        InitiatedFrom::Api
                    }
                    .into(),
                    approval_mode: if *manual {
                        ApprovalMode::Manual
                    } else {
                        ApprovalMode::Auto
                    }
                    .into(),
                    algorithm: Some(algorithm),
                    cash_movement_id,
                    ..RunSpec::default()
                };
                let answer = self
                    .clients
                    .runs
                    .create_run(self.firm.request(CreateRunRequest {
                        idempotency_key: self.key("run"),
                        spec: Some(spec),
                    }))
                    .await;
                match answer {
                    Ok(response) => {
                        if let Some(run) = response.into_inner().run {
                            self.runs.push(run.id);
                        }
                    }
                    Err(status) => refused(&status)?,
                }
            }
            Op::Adjust { run, order, edit } => {
                if let Some(run) = self.get_run(*run).await?
                    && !run.orders.is_empty()
                {
                    let order = &run.orders[*order % run.orders.len()];
                    let mut adjustment = OrderAdjustment {
                        order_id: order.id.clone(),
                        ..OrderAdjustment::default()
                    };
                    match edit {
                        Edit::Exclude => adjustment.exclude = true,
                        Edit::Scale { percent } => {
                            let factor = Decimal::from(*percent) / Decimal::ONE_HUNDRED;
                            if order.notional.is_empty() {
                                let quantity = decimal(&order.quantity) * factor;
                                let quantity = if quantity.fract().is_zero()
                                    || decimal(&order.quantity).fract().is_zero()
                                {
                                    quantity.round().max(Decimal::ONE)
                                } else {
                                    quantity.round_dp(6)
                                };
                                adjustment.quantity = quantity.to_string();
                            } else {
                                let notional = (decimal(&order.notional) * factor)
                                    .round_dp(2)
                                    .max(Decimal::ONE);
                                adjustment.notional = notional.to_string();
                            }
                        }
                    }
                    let answer = self
                        .clients
                        .runs
                        .adjust_run(self.firm.request(AdjustRunRequest {
                            run_id: run.id.clone(),
                            etag: run.etag.clone(),
                            adjustments: vec![adjustment],
                            exclude_account: false,
                        }))
                        .await;
                    if let Err(status) = answer {
                        refused(&status)?;
                    }
                }
            }
            Op::Approve { run } => {
                if let Some(run) = self.get_run(*run).await? {
                    let answer = self
                        .clients
                        .runs
                        .approve_run(self.firm.request(ApproveRunRequest {
                            run_id: run.id.clone(),
                            etag: run.etag.clone(),
                        }))
                        .await;
                    if let Err(status) = answer {
                        refused(&status)?;
                    }
                }
            }
            Op::Cancel { run } => {
                if let Some(run) = self.get_run(*run).await? {
                    let answer = self
                        .clients
                        .runs
                        .cancel_run(self.firm.request(CancelRunRequest {
                            run_id: run.id.clone(),
                            etag: run.etag.clone(),
                            reason: String::new(),
                        }))
                        .await;
                    if let Err(status) = answer {
                        refused(&status)?;
                    }
                }
            }
            Op::SetTradable { symbol, tradable } => {
                let answer = self
                    .clients
                    .market
                    .update_asset(self.firm.request(UpdateAssetRequest {
                        symbol: symbol.ticker().to_owned(),
                        tradable: Some(*tradable),
                        reason: "book model".to_owned(),
                        ..UpdateAssetRequest::default()
                    }))
                    .await;
                if let Err(status) = answer {
                    refused(&status)?;
                }
            }
            Op::Advance { minutes } => {
                for _ in 0..*minutes {
                    self.stack.clock.advance(TimeDelta::minutes(1));
                    self.tick().await?;
                }
                return Ok(());
            }
            Op::NextDay => {
                let (_, next_open, next_close) = self.clock().await?;
                let now = self.stack.clock.now();
                if next_close > now && next_close < next_open {
                    self.stack.clock.set(next_close + TimeDelta::minutes(1));
                    self.tick().await?;
                }
                let (_, next_open, _) = self.clock().await?;
                self.stack.clock.set(next_open + TimeDelta::minutes(1));
            }
            Op::Restart => {
                self.stack.restart().await;
                self.clients = Clients::new(self.stack);
            }
        }
        self.tick().await
    }

    fn pick_withdrawal(&self, index: usize) -> Option<(String, String, Decimal)> {
        if self.withdrawals.is_empty() {
            return None;
        }
        Some(self.withdrawals[index % self.withdrawals.len()].clone())
    }

    async fn blocks(&mut self) -> Result<Vec<BlockOrder>, Violation> {
        let mut blocks = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .clients
                .orders
                .list_block_orders(self.firm.request(ListBlockOrdersRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListBlockOrdersRequest::default()
                }))
                .await
                .map_err(|status| violation("no-error", format!("ListBlockOrders: {status:?}")))?
                .into_inner();
            blocks.extend(page.block_orders);
            if page.next_page_token.is_empty() {
                return Ok(blocks);
            }
            page_token = page.next_page_token;
        }
    }

    async fn fills(&mut self, block_id: &str) -> Result<Vec<Fill>, Violation> {
        let mut fills = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .clients
                .orders
                .list_fills(self.firm.request(ListFillsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                }))
                .await
                .map_err(|status| violation("no-error", format!("ListFills: {status:?}")))?
                .into_inner();
            fills.extend(page.fills);
            if page.next_page_token.is_empty() {
                return Ok(fills);
            }
            page_token = page.next_page_token;
        }
    }

    async fn allocations(&mut self, block_id: &str) -> Result<Vec<Allocation>, Violation> {
        let mut allocations = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .clients
                .orders
                .list_allocations(self.firm.request(ListAllocationsRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListAllocationsRequest::default()
                }))
                .await
                .map_err(|status| violation("no-error", format!("ListAllocations: {status:?}")))?
                .into_inner();
            allocations.extend(page.allocations);
            if page.next_page_token.is_empty() {
                return Ok(allocations);
            }
            page_token = page.next_page_token;
        }
    }

    /// The ids of a block's orders sized in dollars.
    async fn dollar_orders(&mut self, block_id: &str) -> Result<HashSet<String>, Violation> {
        let mut ids = HashSet::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .clients
                .orders
                .list_orders(self.firm.request(ListOrdersRequest {
                    block_order_id: block_id.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..ListOrdersRequest::default()
                }))
                .await
                .map_err(|status| violation("no-error", format!("ListOrders: {status:?}")))?
                .into_inner();
            ids.extend(
                page.orders
                    .into_iter()
                    .filter(|order| !order.notional.is_empty())
                    .map(|order| order.id),
            );
            if page.next_page_token.is_empty() {
                return Ok(ids);
            }
            page_token = page.next_page_token;
        }
    }

    async fn runs_of_tenant(&mut self) -> Result<Vec<Run>, Violation> {
        let mut runs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .clients
                .runs
                .list_runs(self.firm.request(ListRunsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..ListRunsRequest::default()
                }))
                .await
                .map_err(|status| violation("no-error", format!("ListRuns: {status:?}")))?
                .into_inner();
            runs.extend(page.runs);
            if page.next_page_token.is_empty() {
                return Ok(runs);
            }
            page_token = page.next_page_token;
        }
    }

    /// Applies the allocations not seen yet to the model and checks fills,
    /// allocations and average prices of every block not yet finished.
    async fn check_blocks(&mut self, found: &mut Found) -> Result<(), Violation> {
        for block in self.blocks().await? {
            if self.finished.contains(&block.id) {
                continue;
            }
            let fills = self.fills(&block.id).await?;
            let allocations = self.allocations(&block.id).await?;
            let buy = block.side == i32::from(OrderSide::Buy);
            let mut by_fill: HashMap<&str, Decimal> = HashMap::new();
            let average_fill = format!("avg-{}", block.id);
            let mut corrections = Decimal::ZERO;
            for allocation in &allocations {
                if allocation.fill_id == average_fill {
                    if !decimal(&allocation.quantity).is_zero() {
                        found.push(violation(
                            "allocations-sum",
                            format!(
                                "block {}: a correction with shares: {allocation:?}",
                                block.id
                            ),
                        ));
                    }
                    corrections += decimal(&allocation.amount);
                } else {
                    *by_fill.entry(allocation.fill_id.as_str()).or_default() +=
                        decimal(&allocation.quantity);
                }
                let key = (allocation.fill_id.clone(), allocation.order_id.clone());
                if self.applied.insert(key) {
                    let quantity = decimal(&allocation.quantity);
                    let amount = decimal(&allocation.amount);
                    let expected = self
                        .expected
                        .entry(allocation.account_id.clone())
                        .or_default();
                    let position = expected.positions.entry(block.symbol.clone()).or_default();
                    if buy {
                        expected.cash -= amount;
                        *position += quantity;
                    } else {
                        expected.cash += amount;
                        *position -= quantity;
                    }
                }
            }
            let mut filled_quantity = Decimal::ZERO;
            let mut filled_value = Decimal::ZERO;
            for fill in &fills {
                let quantity = decimal(&fill.quantity);
                filled_quantity += quantity;
                filled_value += quantity * decimal(&fill.price);
                let allocated = by_fill.remove(fill.id.as_str()).unwrap_or_default();
                if allocated != quantity {
                    found.push(violation(
                        "allocations-sum",
                        format!(
                            "{} {} block {}: fill {} of {} at {} allocated {allocated}",
                            side_name(block.side),
                            block.symbol,
                            block.id,
                            fill.id,
                            fill.quantity,
                            fill.price
                        ),
                    ));
                }
            }
            for (fill_id, quantity) in by_fill {
                found.push(violation(
                    "allocations-sum",
                    format!(
                        "block {} {}: {quantity} allocated to fill {fill_id} the block does not list",
                        block.id, block.symbol
                    ),
                ));
            }
            if block.completed_at.is_none() {
                continue;
            }
            if !corrections.is_zero() {
                found.push(violation(
                    "allocations-sum",
                    format!("block {}: its corrections move {corrections}", block.id),
                ));
            }
            if !filled_quantity.is_zero() {
                let in_dollars = self.dollar_orders(&block.id).await?;
                let mut per_order: BTreeMap<(&str, &str), (Decimal, Decimal)> = BTreeMap::new();
                for allocation in &allocations {
                    let entry = per_order
                        .entry((allocation.account_id.as_str(), allocation.order_id.as_str()))
                        .or_default();
                    entry.0 += decimal(&allocation.quantity);
                    entry.1 += decimal(&allocation.amount);
                }
                // The average of the orders sized alike.
                let mut groups: HashMap<bool, (Decimal, Decimal)> = HashMap::new();
                for ((_, order), (quantity, amount)) in &per_order {
                    let group = groups.entry(in_dollars.contains(*order)).or_default();
                    group.0 += *quantity;
                    group.1 += *amount;
                }
                for ((account, order), (quantity, amount)) in &per_order {
                    let (shares, cash) = groups[&in_dollars.contains(*order)];
                    if shares.is_zero() {
                        continue;
                    }
                    let average = cash / shares;
                    let fair = quantity * average;
                    if (amount - fair).abs() >= AVERAGE_PRICE_TOLERANCE {
                        found.push(violation(
                            "one-average-price",
                            format!(
                                "{} {} block {} ({} accounts, {} fills, average {}): {account} got {quantity} for {amount}, {} a share, not {} (off by {})",
                                side_name(block.side),
                                block.symbol,
                                block.id,
                                per_order.len(),
                                fills.len(),
                                average.round_dp(6),
                                (amount / quantity).round_dp(6),
                                fair.round_dp(6),
                                (amount - fair).round_dp(6)
                            ),
                        ));
                    }
                }
            }
            self.finished.insert(block.id.clone());
        }
        Ok(())
    }

    /// Every invariant that holds after each step.
    async fn check(&mut self) -> Result<Found, Violation> {
        let mut found = Found::new();
        self.check_blocks(&mut found).await?;
        let accounts = self
            .clients
            .accounts
            .list_accounts(self.firm.request(ListAccountsRequest {
                page_size: 1000,
                ..ListAccountsRequest::default()
            }))
            .await
            .map_err(|status| violation("no-error", format!("ListAccounts: {status:?}")))?
            .into_inner()
            .accounts;
        let mut seen = BTreeSet::new();
        for account in &accounts {
            seen.insert(account.id.clone());
            let cash = decimal(&account.cash);
            if cash < Decimal::ZERO {
                found.push(violation(
                    "no-negative-cash",
                    format!("{} (a cash account) holds {cash} in cash", account.id),
                ));
            }
            let actual: BTreeMap<String, Decimal> = account
                .positions
                .iter()
                .map(|p| (p.symbol.clone(), decimal(&p.quantity)))
                .collect();
            for (symbol, quantity) in &actual {
                if *quantity < Decimal::ZERO {
                    found.push(violation(
                        "no-negative-position",
                        format!("{} holds {quantity} {symbol}", account.id),
                    ));
                }
            }
            let expected = self.expected.get(&account.id).cloned().unwrap_or_default();
            for (symbol, quantity) in &expected.positions {
                if *quantity < Decimal::ZERO {
                    found.push(violation(
                        "no-negative-position",
                        format!(
                            "sells allocated to {} exceed its {symbol} holding by {}",
                            account.id, -quantity
                        ),
                    ));
                }
            }
            if cash != expected.cash {
                found.push(violation(
                    "conservation",
                    format!(
                        "{} cash is {cash}, deposits, withdrawals and allocations say {} ({:+})",
                        account.id,
                        expected.cash,
                        cash - expected.cash
                    ),
                ));
            }
            let symbols: BTreeSet<&String> =
                actual.keys().chain(expected.positions.keys()).collect();
            for symbol in symbols {
                let held = actual.get(symbol).copied().unwrap_or_default();
                let modeled = expected.positions.get(symbol).copied().unwrap_or_default();
                if held != modeled {
                    found.push(violation(
                        "conservation",
                        format!(
                            "{} holds {held} {symbol}, upserts and allocations say {modeled}",
                            account.id
                        ),
                    ));
                }
            }
        }
        for account in self.expected.keys() {
            if !seen.contains(account) {
                found.push(violation(
                    "conservation",
                    format!("{account} is missing from ListAccounts"),
                ));
            }
        }
        for run in self.runs_of_tenant().await? {
            if let Some(status) = self.terminal.get(&run.id) {
                if *status != run.status {
                    found.push(violation(
                        "terminal-is-final",
                        format!(
                            "run {} went from {} to {}",
                            run.id,
                            status_name(*status),
                            status_name(run.status)
                        ),
                    ));
                }
            } else if is_terminal(run.status) {
                self.terminal.insert(run.id.clone(), run.status);
            }
        }
        Ok(found)
    }

    /// Runs the clock on until no run is left open (or a few trading days
    /// have passed), then checks every run ended with a reason.
    async fn drain(&mut self) -> Result<Found, Violation> {
        let mut days = 0;
        for _ in 0..400 {
            let runs = self.runs_of_tenant().await?;
            let open: Vec<&Run> = runs.iter().filter(|r| !is_terminal(r.status)).collect();
            if open.is_empty() {
                break;
            }
            let (is_open, _, next_close) = self.clock().await?;
            let waiting = open
                .iter()
                .all(|r| r.status == i32::from(RunStatus::Proposed));
            if waiting || !is_open {
                // Nothing the worker can do before the next session (or an
                // expiry, which needs time to pass).
                if days >= 3 {
                    break;
                }
                days += 1;
                if is_open {
                    self.stack.clock.set(next_close + TimeDelta::minutes(1));
                    self.tick().await?;
                }
                let (_, next_open, _) = self.clock().await?;
                self.stack.clock.set(next_open + TimeDelta::minutes(1));
            } else {
                let step = TimeDelta::minutes(5).min(next_close - self.stack.clock.now());
                self.stack.clock.advance(step.max(TimeDelta::seconds(30)));
            }
            self.tick().await?;
        }
        let mut found = self.check().await?;
        for run in self.runs_of_tenant().await? {
            if !is_terminal(run.status) {
                found.push(violation(
                    "run-ends-with-reason",
                    format!(
                        "run {} ({:?}, {}) is still {} after {days} more trading days: {:?}",
                        run.id,
                        RunType::try_from(run.r#type).map_or("?", |t| t.as_str_name()),
                        run.account_id,
                        status_name(run.status),
                        run.reason
                    ),
                ));
            } else if run.reason.trim().is_empty() {
                found.push(violation(
                    "run-ends-with-reason",
                    format!(
                        "run {} ended {} without a reason",
                        run.id,
                        status_name(run.status)
                    ),
                ));
            }
        }
        Ok(found)
    }
}

fn side_name(side: i32) -> &'static str {
    match OrderSide::try_from(side) {
        Ok(OrderSide::Buy) => "buy",
        Ok(OrderSide::Sell) => "sell",
        _ => "?",
    }
}

/// Counters of a whole run of the property.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Sequences executed (generated ones and shrinking attempts).
    pub sequences: usize,
    /// Steps executed over all of them.
    pub steps: usize,
    /// Sequences that passed before the first failing one.
    pub passed_before_failure: Option<usize>,
}

/// Drives sequences against one stack, a fresh tenant each.
#[derive(Debug)]
pub struct Harness {
    stack: Option<TestStack>,
    backend: Backend,
    /// A new stack per sequence (reproducible: same clock, same prices)
    /// instead of one shared, clock running on.
    fresh_stack: bool,
    skip: BTreeSet<String>,
    pub totals: Totals,
}

impl Harness {
    /// A harness on `backend`, or `None` when it is PostgreSQL and
    /// unreachable outside CI (the database helper says so loudly).
    ///
    /// # Panics
    /// When the stack cannot start.
    pub async fn start(backend: Backend, fresh_stack: bool) -> Option<Self> {
        let stack = TestStack::start(backend).await?;
        let skip = std::env::var("BOOK_MODEL_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self {
            stack: Some(stack),
            backend,
            fresh_stack,
            skip,
            totals: Totals::default(),
        })
    }

    /// Runs one sequence; the violations of the first step that broke an
    /// invariant (not skipped), with the step, as an error.
    ///
    /// # Errors
    /// The description of the first broken invariant.
    ///
    /// # Panics
    /// When a stack cannot start.
    pub async fn run(&mut self, sequence: &Sequence) -> Result<(), String> {
        let number = self.totals.sequences;
        self.totals.sequences += 1;
        if self.fresh_stack && number > 0 {
            if let Some(old) = self.stack.take() {
                old.stop().await;
            }
            self.stack = Some(
                TestStack::start(self.backend)
                    .await
                    .expect("the backend was reachable at the start"),
            );
        }
        let stack = self.stack.as_mut().expect("a stack");
        let clients = Clients::new(stack);
        let prefix = format!("seq{number}");
        let firm = CallContext::tenant(format!("model-{number}"));
        let mut case = Case {
            stack,
            clients,
            firm,
            prefix: prefix.clone(),
            accounts: (0..sequence.accounts.len())
                .map(|index| format!("{prefix}-acct-{index}"))
                .collect(),
            expected: HashMap::new(),
            withdrawals: Vec::new(),
            runs: Vec::new(),
            applied: HashSet::new(),
            finished: HashSet::new(),
            terminal: HashMap::new(),
            prices: HashMap::new(),
            steps: 0,
            skip: &self.skip,
        };
        let outcome = drive(&mut case, sequence).await;
        self.totals.steps += case.steps;
        if outcome.is_err() && self.totals.passed_before_failure.is_none() {
            self.totals.passed_before_failure = Some(number);
        }
        outcome
    }
}

/// Keeps the violations not skipped by `BOOK_MODEL_SKIP`.
fn report(case: &Case<'_>, found: Found, at: &str) -> Result<(), String> {
    let found: Vec<String> = found
        .into_iter()
        .filter(|v| !case.skip.contains(v.invariant))
        .map(|v| v.to_string())
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("{at}:\n  {}", found.join("\n  ")))
    }
}

async fn drive(case: &mut Case<'_>, sequence: &Sequence) -> Result<(), String> {
    let setup = async {
        // Shared market state (tradable flags) and the session, as a new
        // sequence expects them.
        for symbol in [
            Symbol::Spy,
            Symbol::Tlt,
            Symbol::Qqq,
            Symbol::Arkk,
            Symbol::Azo,
        ] {
            case.apply_only(&Op::SetTradable {
                symbol,
                tradable: true,
            })
            .await?;
        }
        case.open_session().await?;
        let quotes = case
            .clients
            .market
            .get_quotes(case.firm.request(GetQuotesRequest {
                symbols: Symbol::ALL.iter().map(|s| s.ticker().to_owned()).collect(),
            }))
            .await
            .map_err(|status| violation("no-error", format!("GetQuotes: {status:?}")))?
            .into_inner()
            .quotes;
        case.prices = quotes
            .into_iter()
            .map(|q| (q.symbol, decimal(&q.last)))
            .collect();
        for (index, opening) in sequence.accounts.iter().enumerate() {
            let account = case.accounts[index].clone();
            case.upsert(&account, opening).await?;
        }
        Ok::<(), Violation>(())
    };
    if let Err(error) = setup.await {
        return report(case, vec![error], "opening the accounts");
    }
    for (index, op) in sequence.ops.iter().enumerate() {
        case.steps += 1;
        let at = format!("step {index} ({op:?})");
        if let Err(error) = case.apply(op).await {
            report(case, vec![error], &at)?;
        }
        match case.check().await {
            Ok(found) => report(case, found, &at)?,
            Err(error) => report(case, vec![error], &at)?,
        }
    }
    match case.drain().await {
        Ok(found) => report(case, found, "after the last step, the clock run on"),
        Err(error) => report(case, vec![error], "after the last step, the clock run on"),
    }
}

impl Case<'_> {
    /// [`Case::apply`] without the worker's tick.
    async fn apply_only(&mut self, op: &Op) -> Result<(), Violation> {
        if let Op::SetTradable { symbol, tradable } = op {
            let answer = self
                .clients
                .market
                .update_asset(self.firm.request(UpdateAssetRequest {
                    symbol: symbol.ticker().to_owned(),
                    tradable: Some(*tradable),
                    reason: "book model".to_owned(),
                    ..UpdateAssetRequest::default()
                }))
                .await;
            if let Err(status) = answer {
                refused(&status)?;
            }
        }
        Ok(())
    }
}

/// How many sequences and how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub backend: Backend,
    pub cases: u32,
    pub size: Size,
    pub fresh_stack: bool,
    /// Seed of the generator; printed, and `BOOK_MODEL_SEED` replays it.
    pub seed: u64,
    pub max_shrink_iters: u32,
    /// Longest time spent shrinking a failure.
    pub max_shrink_time: StdDuration,
}

/// What a whole run of the property found.
#[derive(Debug)]
pub struct Outcome {
    pub totals: Totals,
    pub elapsed: StdDuration,
    /// The minimal failing sequence and its violations, if any.
    pub failure: Option<String>,
}

/// Runs `plan.cases` sequences (and the shrinking of a failing one) on one
/// tokio runtime made here.
///
/// # Panics
/// When the runtime or the stack cannot start.
#[must_use]
pub fn check_sequences(plan: &Plan) -> Option<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let harness = runtime.block_on(Harness::start(plan.backend, plan.fresh_stack))?;
    let harness = std::cell::RefCell::new(harness);
    let config = Config {
        cases: plan.cases,
        max_shrink_iters: plan.max_shrink_iters,
        max_shrink_time: u32::try_from(plan.max_shrink_time.as_millis()).unwrap_or(u32::MAX),
        failure_persistence: None,
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&plan.seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let started = Instant::now();
    let result = runner.run(&sequence(plan.size), |sequence| {
        let mut harness = harness.borrow_mut();
        runtime
            .block_on(harness.run(&sequence))
            .map_err(TestCaseError::fail)
    });
    let elapsed = started.elapsed();
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, sequence)) => Some(format!(
            "minimal failing sequence ({} accounts, {} steps):\n{}\n{}",
            sequence.accounts.len(),
            sequence.ops.len(),
            pretty(&sequence),
            reason.message()
        )),
        Err(TestError::Abort(reason)) => Some(format!("aborted: {}", reason.message())),
    };
    let totals = harness.borrow().totals;
    if let Some(harness) = harness.into_inner().stack {
        runtime.block_on(harness.stop());
    }
    Some(Outcome {
        totals,
        elapsed,
        failure,
    })
}

/// A sequence one step a line, accounts first.
#[must_use]
pub fn pretty(sequence: &Sequence) -> String {
    let mut lines = Vec::new();
    for (index, opening) in sequence.accounts.iter().enumerate() {
        lines.push(format!("  open acct-{index}: {opening:?}"));
    }
    for (index, op) in sequence.ops.iter().enumerate() {
        lines.push(format!("  step {index}: {op:?}"));
    }
    lines.join("\n")
}

/// The seed from `BOOK_MODEL_SEED`, or one from the time.
#[must_use]
pub fn seed_from_env() -> u64 {
    std::env::var("BOOK_MODEL_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    u64::try_from(elapsed.as_nanos() % u128::from(u64::MAX)).unwrap_or(0)
                })
        })
}

fn env_number<T: FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

impl Plan {
    /// A plan of `cases` sequences of `size` (overridden by `BOOK_MODEL_CASES`,
    /// `BOOK_MODEL_OPS`, `BOOK_MODEL_SEED`, `BOOK_MODEL_SHRINK_ITERS`,
    /// `BOOK_MODEL_SHRINK_SECS` and `BOOK_MODEL_FRESH_STACK=1|0`).
    #[must_use]
    pub fn from_env(backend: Backend, cases: u32, size: Size, fresh_stack: bool) -> Self {
        Self {
            backend,
            cases: env_number("BOOK_MODEL_CASES").unwrap_or(cases),
            size: Size {
                max_ops: env_number("BOOK_MODEL_OPS").unwrap_or(size.max_ops),
                ..size
            },
            fresh_stack: env_number::<u8>("BOOK_MODEL_FRESH_STACK").map_or(fresh_stack, |v| v == 1),
            seed: seed_from_env(),
            max_shrink_iters: env_number("BOOK_MODEL_SHRINK_ITERS").unwrap_or(400),
            max_shrink_time: StdDuration::from_secs(
                env_number("BOOK_MODEL_SHRINK_SECS").unwrap_or(300),
            ),
        }
    }

    /// Runs the plan, prints its counts (stderr and stdout), and panics with
    /// the minimal counterexample if an invariant broke; `None` when the
    /// backend is unreachable outside CI.
    ///
    /// # Panics
    /// When an invariant broke, or the stack cannot start.
    pub fn run_and_report(&self, label: &str) -> Option<Outcome> {
        eprintln!(
            "{label}: up to {} sequences of up to {} steps on {} accounts at most, seed {} (BOOK_MODEL_SEED={} replays it)",
            self.cases, self.size.max_ops, self.size.max_accounts, self.seed, self.seed
        );
        let outcome = check_sequences(self)?;
        let totals = outcome.totals;
        let summary = match totals.passed_before_failure {
            None => format!(
                "{label}: {} sequences run, all passed, {} steps, in {:.1?}",
                totals.sequences, totals.steps, outcome.elapsed
            ),
            Some(passed) => format!(
                "{label}: {} sequences run ({passed} passed before the first failure, the rest shrinking it), {} steps, in {:.1?}",
                totals.sequences, totals.steps, outcome.elapsed
            ),
        };
        eprintln!("{summary}");
        println!("{summary}");
        if let Some(failure) = &outcome.failure {
            panic!(
                "{label}: an invariant of the book broke (seed {}):\n{failure}",
                self.seed
            );
        }
        Some(outcome)
    }
}

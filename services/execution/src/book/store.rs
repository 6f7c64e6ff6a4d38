//! The account book in storage: accounts with cash, positions and restrictions,
//! and cash movements.

use std::fmt::Debug;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rebalancer_domain::account::{AccountStatus, AccountType, CashLimits, Restriction};
use rebalancer_domain::cash::{CashAction, CashMovementKind, CashMovementStatus};
use rebalancer_domain::lots::Lot;
use rebalancer_domain::preferences::TradingPreferences;
use rebalancer_domain::tax::TaxSettings;
use rust_decimal::Decimal;

use crate::store::{Created, IdempotencyClaim, PageRequest, StoreError};

/// A holding of one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRecord {
    pub symbol: String,
    /// Always positive; a position sold out is removed.
    pub quantity: Decimal,
    pub average_cost: Decimal,
}

/// An account of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub status: AccountStatus,
    pub cash: Decimal,
    /// Sorted by symbol.
    pub positions: Vec<PositionRecord>,
    /// Set by the platform; sorted, without computed ones.
    pub restrictions: Vec<Restriction>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_rebalanced_at: Option<DateTime<Utc>>,
    pub account_type: AccountType,
    /// 0 for a cash account.
    pub margin_limit: Decimal,
    /// Withdrawals requested and not yet settled or canceled.
    pub earmarked: Decimal,
    /// Restricted symbols, substitutes, cash reserve.
    pub preferences: TradingPreferences,
    /// Tax status, lot method, gain budgets.
    pub tax: TaxSettings,
    /// The household it belongs to, if any.
    pub household_id: Option<String>,
}

impl AccountRecord {
    /// What the account may spend and withdraw.
    #[must_use]
    pub fn limits(&self) -> CashLimits {
        CashLimits {
            cash: self.cash,
            margin_limit: self.margin_limit,
            earmarked: self.earmarked,
        }
    }
}

/// The whole state of an account, as the platform or a broker sync sends it.
#[derive(Debug, Clone)]
pub struct AccountUpsert {
    pub id: String,
    pub status: AccountStatus,
    pub cash: Decimal,
    pub positions: Vec<PositionRecord>,
    pub restrictions: Vec<Restriction>,
    pub account_type: AccountType,
    pub margin_limit: Decimal,
    /// Lots given per symbol, each summing to its position; a position
    /// without keeps its stored lots, covered to its new quantity.
    pub lots: HashMap<String, Vec<Lot>>,
    /// When set, the current revision must match.
    pub expected_revision: Option<i64>,
    pub now: DateTime<Utc>,
}

/// Filters of `ListAccounts`.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub status: Option<AccountStatus>,
    pub restriction: Option<Restriction>,
}

/// A deposit or withdrawal request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashMovementRecord {
    pub id: String,
    pub account_id: String,
    pub kind: CashMovementKind,
    pub amount: Decimal,
    pub status: CashMovementStatus,
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// A movement to record.
#[derive(Debug, Clone)]
pub struct NewCashMovement {
    pub id: String,
    pub account_id: String,
    pub kind: CashMovementKind,
    pub amount: Decimal,
    pub now: DateTime<Utc>,
    /// Withdrawals: the account's value now; the withdrawals requested and
    /// not yet paid out, this one included, may not exceed it.
    pub withdrawable_limit: Option<Decimal>,
}

/// Filters of `ListCashMovements`.
#[derive(Debug, Clone, Default)]
pub struct CashMovementFilter {
    pub account_id: Option<String>,
    pub status: Option<CashMovementStatus>,
    pub kind: Option<CashMovementKind>,
}

/// Whether a movement still asks the monitor to act: pending, or an
/// acknowledged withdrawal the cash does not cover (its run ended without
/// raising it all, so it is raised again).
#[must_use]
pub fn still_to_raise(movement: &CashMovementRecord, account: &AccountRecord) -> bool {
    match movement.status {
        CashMovementStatus::Pending => true,
        CashMovementStatus::Acknowledged => {
            movement.kind == CashMovementKind::Withdrawal && account.cash < account.earmarked
        }
        CashMovementStatus::Settled | CashMovementStatus::Canceled => false,
    }
}

/// Accounts: cash, positions, restrictions.
#[tonic::async_trait]
pub trait AccountStore: Send + Sync + Debug {
    /// Creates or replaces an account's state; returns it and whether it is new.
    async fn upsert_account(
        &self,
        tenant: &str,
        upsert: AccountUpsert,
    ) -> Result<(AccountRecord, bool), StoreError>;

    async fn get_account(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError>;

    /// Replaces an account's trading preferences (a new revision); the
    /// account as it is now.
    async fn set_preferences(
        &self,
        tenant: &str,
        id: &str,
        preferences: &TradingPreferences,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AccountRecord, StoreError>;

    /// Accounts in id order.
    async fn list_accounts(
        &self,
        tenant: &str,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRecord>, StoreError>;

    /// One batch of holdings in account id order: accounts with their
    /// positions and pending cash movements, in three range queries.
    async fn holdings_batch(
        &self,
        tenant: &str,
        range: &HoldingsRange,
        limit: u32,
    ) -> Result<Vec<HoldingsRecord>, StoreError>;
}

/// Part of a lot an allocated sale closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealizedLot {
    pub symbol: String,
    pub order_id: String,
    pub lot_id: String,
    pub acquired: NaiveDate,
    pub sold_on: NaiveDate,
    pub quantity: Decimal,
    pub basis: Decimal,
    pub proceeds: Decimal,
    /// "short" or "long".
    pub term: String,
}

/// Tax lots, realized gains and tax settings.
#[tonic::async_trait]
pub trait LotStore: Send + Sync + Debug {
    /// An account's stored open lots by symbol (a position's shares they
    /// do not cover are read as one lot by the caller).
    async fn account_lots(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<HashMap<String, Vec<Lot>>, StoreError>;

    /// Lots an account's sales closed on `since` or later, oldest first.
    async fn realized(
        &self,
        tenant: &str,
        account_id: &str,
        since: NaiveDate,
        limit: u32,
    ) -> Result<Vec<RealizedLot>, StoreError>;

    /// Applies a split to every account holding its symbol, once per
    /// claim; the number of accounts changed.
    ///
    /// # Errors
    /// `FailedPrecondition` while orders in the symbol are open.
    async fn apply_split(
        &self,
        tenant: &str,
        split: &rebalancer_domain::lots::Split,
        claim: &crate::store::IdempotencyClaim,
        now: DateTime<Utc>,
    ) -> Result<crate::store::Created<i64>, StoreError>;

    /// Replaces an account's tax settings (a new revision).
    async fn set_tax_settings(
        &self,
        tenant: &str,
        id: &str,
        settings: &TaxSettings,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<AccountRecord, StoreError>;
}

/// Which accounts a holdings batch covers.
#[derive(Debug, Clone, Default)]
pub struct HoldingsRange {
    /// Strictly after this account id.
    pub after: Option<String>,
    /// Strictly before this account id.
    pub before: Option<String>,
    /// Only these accounts (empty: all).
    pub account_ids: Vec<String>,
}

/// An account with its pending cash movements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingsRecord {
    pub account: AccountRecord,
    pub pending: Vec<CashMovementRecord>,
    /// The account's run that has not ended, if any.
    pub open_run_id: Option<String>,
}

/// Deposits and withdrawal requests.
#[tonic::async_trait]
pub trait CashStore: Send + Sync + Debug {
    /// Records a movement (a deposit credits the account at once).
    async fn create_cash_movement(
        &self,
        tenant: &str,
        movement: NewCashMovement,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Created<CashMovementRecord>, StoreError>;

    /// The movement recorded under `claim` earlier, if any.
    ///
    /// # Errors
    /// `IdempotencyMismatch` when the key was used for a different request.
    async fn claimed_cash_movement(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<CashMovementRecord>, StoreError>;

    async fn get_cash_movement(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<CashMovementRecord>, StoreError>;

    /// Movements newest first.
    async fn list_cash_movements(
        &self,
        tenant: &str,
        filter: &CashMovementFilter,
        page: &PageRequest,
    ) -> Result<Vec<CashMovementRecord>, StoreError>;

    /// Acknowledges, settles or cancels a movement, moving cash as the rules say.
    async fn apply_cash_action(
        &self,
        tenant: &str,
        id: &str,
        action: CashAction,
        run_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CashMovementRecord, StoreError>;
}

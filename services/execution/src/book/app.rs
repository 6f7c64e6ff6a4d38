//! The account book: upserts, reads with valuation, cash movements, holdings.

use rebalancer_domain::Violations;
use rebalancer_domain::account::AccountInput;
use rebalancer_domain::cash::{self, CashAction, CashMovementKind, CashMovementStatus};
use rebalancer_domain::holdings::{self, Valuation};
use std::collections::HashMap;

use chrono::Datelike;
use rebalancer_domain::lots::{self, Lot, Term};
use rebalancer_domain::preferences::PreferencesInput;
use rebalancer_domain::tax::TaxSettingsInput;
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;
use rust_decimal::Decimal;

use crate::Execution;
use crate::book::store::{
    AccountFilter, AccountRecord, AccountUpsert, CashMovementFilter, CashMovementRecord,
    HoldingsRange, HoldingsRecord, NewCashMovement, PositionRecord, still_to_raise,
};
use crate::error::ExecutionError;
use crate::store::{Created, IdempotencyClaim, PageRequest};

pub use rebalancer_domain::account::PositionInput;

/// An account with its valuation at current prices, and (for holdings) its
/// pending cash movements.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub record: AccountRecord,
    pub valuation: Valuation,
    pub pending: Vec<CashMovementRecord>,
    /// Open tax lots by symbol, covering each position (read for one
    /// account, not for lists).
    pub lots: HashMap<String, Vec<Lot>>,
    /// This year's realized gains (read with the lots).
    pub realized: Option<YearGains>,
    /// The New York date it was read on (lots' holding periods).
    pub today: chrono::NaiveDate,
}

/// Gains realized in one calendar year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearGains {
    pub year: i32,
    pub short_term: Decimal,
    pub long_term: Decimal,
}

/// Realized gains read for one account's year at most (a cap, not a page).
const MAX_REALIZED_ROWS: u32 = 100_000;

/// Holdings are an account view with its pending movements.
pub type HoldingsView = AccountView;

/// Parses an etag of the form `r<revision>`.
///
/// # Errors
/// A violation on `field` when malformed.
pub fn parse_etag(field: &str, etag: &str) -> Result<Option<i64>, Violations> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix('r')
        .and_then(|n| n.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| Violations::one(field, "is not an etag returned by this API"))
}

impl Execution {
    /// Values an account at current prices.
    pub(super) async fn view(&self, record: AccountRecord) -> Result<AccountView, ExecutionError> {
        let symbols: Vec<String> = record.positions.iter().map(|p| p.symbol.clone()).collect();
        let prices = self.prices(&symbols).await?;
        let valuation = holdings::value(
            record.cash,
            record
                .positions
                .iter()
                .map(|p| (p.symbol.as_str(), p.quantity)),
            &prices,
        );
        Ok(AccountView {
            record,
            valuation,
            pending: Vec::new(),
            lots: HashMap::new(),
            realized: None,
            today: rebalancer_domain::calendar::exchange_date(self.clock.now()),
        })
    }

    /// Creates or replaces an account's state.
    ///
    /// # Errors
    /// `Invalid` for bad input; `Aborted` for a stale etag.
    #[tracing::instrument(name = "upsert_account", skip_all, fields(tenant = %context.tenant, account_id = %input.account_id))]
    pub async fn upsert_account(
        &self,
        context: &RequestContext,
        input: AccountInput,
        etag: &str,
    ) -> Result<(AccountView, bool), ExecutionError> {
        let expected_revision = parse_etag("etag", etag);
        let state = input.validate();
        let (state, expected_revision) = match (state, expected_revision) {
            (Ok(state), Ok(revision)) => (state, revision),
            (state, revision) => {
                let mut violations = state.err().unwrap_or_default();
                for violation in revision.err().unwrap_or_default() {
                    violations.add(violation.field, violation.description);
                }
                return Err(ExecutionError::Invalid(violations));
            }
        };
        let upsert = AccountUpsert {
            id: state.account_id,
            status: state.status,
            cash: state.cash,
            lots: state
                .positions
                .iter()
                .filter(|p| !p.lots.is_empty())
                .map(|p| (p.symbol.to_string(), p.lots.clone()))
                .collect(),
            positions: state
                .positions
                .into_iter()
                .map(|p| PositionRecord {
                    symbol: p.symbol.to_string(),
                    quantity: p.quantity,
                    average_cost: p.average_cost,
                })
                .collect(),
            restrictions: state.restrictions,
            account_type: state.account_type,
            margin_limit: state.margin_limit,
            expected_revision,
            now: self.clock.now(),
        };
        let (record, created) = self.store.upsert_account(&context.tenant, upsert).await?;
        tracing::info!(created, revision = record.revision, "account upserted");
        Ok((self.detailed_view(&context.tenant, record).await?, created))
    }

    /// Replaces an account's trading preferences.
    ///
    /// # Errors
    /// `Invalid` with field violations, `NotFound`, `Aborted` for a stale etag.
    #[tracing::instrument(name = "set_trading_preferences", skip_all, fields(tenant = %context.tenant, account_id = %account_id))]
    pub async fn set_trading_preferences(
        &self,
        context: &RequestContext,
        account_id: &str,
        input: PreferencesInput,
        etag: &str,
    ) -> Result<AccountView, ExecutionError> {
        let expected_revision = parse_etag("etag", etag);
        let preferences = input.validate("preferences");
        let (preferences, expected_revision) = match (preferences, expected_revision) {
            (Ok(preferences), Ok(revision)) => (preferences, revision),
            (preferences, revision) => {
                let mut violations = preferences.err().unwrap_or_default();
                for violation in revision.err().unwrap_or_default() {
                    violations.add(violation.field, violation.description);
                }
                return Err(ExecutionError::Invalid(violations));
            }
        };
        let record = self
            .store
            .set_preferences(
                &context.tenant,
                account_id,
                &preferences,
                expected_revision,
                self.clock.now(),
            )
            .await?;
        tracing::info!(revision = record.revision, "trading preferences set");
        self.detailed_view(&context.tenant, record).await
    }

    /// One account, valued.
    ///
    /// # Errors
    /// `NotFound` for an unknown account.
    pub async fn get_account(
        &self,
        context: &RequestContext,
        account_id: &str,
    ) -> Result<AccountView, ExecutionError> {
        let record = self
            .store
            .get_account(&context.tenant, account_id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("account {account_id} not found")))?;
        self.detailed_view(&context.tenant, record).await
    }

    /// Replaces an account's tax settings.
    ///
    /// # Errors
    /// `Invalid` with field violations, `NotFound`, `Aborted` for a stale etag.
    #[tracing::instrument(name = "set_tax_settings", skip_all, fields(tenant = %context.tenant, account_id = %account_id))]
    pub async fn set_tax_settings(
        &self,
        context: &RequestContext,
        account_id: &str,
        input: TaxSettingsInput,
        etag: &str,
    ) -> Result<AccountView, ExecutionError> {
        let expected_revision = parse_etag("etag", etag);
        let settings = input.validate();
        let (settings, expected_revision) = match (settings, expected_revision) {
            (Ok(settings), Ok(revision)) => (settings, revision),
            (settings, revision) => {
                let mut violations = Violations::new();
                if let Err(problems) = settings {
                    violations.extend_prefixed("tax_settings", problems);
                }
                for violation in revision.err().unwrap_or_default() {
                    violations.add(violation.field, violation.description);
                }
                return Err(ExecutionError::Invalid(violations));
            }
        };
        let record = self
            .store
            .set_tax_settings(
                &context.tenant,
                account_id,
                &settings,
                expected_revision,
                self.clock.now(),
            )
            .await?;
        tracing::info!(revision = record.revision, "tax settings set");
        self.detailed_view(&context.tenant, record).await
    }

    /// Applies a split to every account holding the symbol.
    ///
    /// # Errors
    /// `Invalid` with field violations; `FailedPrecondition` while orders
    /// in the symbol are open.
    #[tracing::instrument(name = "apply_split", skip_all, fields(tenant = %context.tenant, symbol = %input.symbol))]
    pub async fn apply_split(
        &self,
        context: &RequestContext,
        input: rebalancer_domain::lots::SplitInput,
        claim: &IdempotencyClaim,
    ) -> Result<i64, ExecutionError> {
        let split = input.validate().map_err(ExecutionError::Invalid)?;
        let applied = self
            .store
            .apply_split(&context.tenant, &split, claim, self.clock.now())
            .await?;
        tracing::info!(replayed = !applied.is_new(), "split applied");
        Ok(applied.into_inner())
    }

    /// An account's open lots by symbol, each position covered (shares its
    /// stored lots miss read as one lot at the average cost).
    pub(crate) async fn covered_lots(
        &self,
        tenant: &str,
        record: &AccountRecord,
    ) -> Result<HashMap<String, Vec<Lot>>, ExecutionError> {
        let mut stored = self.store.account_lots(tenant, &record.id).await?;
        let opened = rebalancer_domain::calendar::exchange_date(record.created_at);
        Ok(record
            .positions
            .iter()
            .map(|position| {
                let lots = lots::cover(
                    stored.remove(&position.symbol).unwrap_or_default(),
                    position.quantity,
                    position.average_cost,
                    opened,
                    crate::book::OPENING_LOT,
                );
                (position.symbol.clone(), lots)
            })
            .collect())
    }

    /// Net gains realized by an account's fills this calendar year (New
    /// York), by term.
    pub(crate) async fn realized_this_year(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<YearGains, ExecutionError> {
        let today = rebalancer_domain::calendar::exchange_date(self.clock.now());
        let january = today.with_ordinal(1).unwrap_or(today);
        let rows = self
            .store
            .realized(tenant, account_id, january, MAX_REALIZED_ROWS)
            .await?;
        let gain = |term: Term| -> Decimal {
            rows.iter()
                .filter(|row| row.term == term.as_str())
                .map(|row| row.proceeds - row.basis)
                .sum()
        };
        Ok(YearGains {
            year: today.year(),
            short_term: gain(Term::Short),
            long_term: gain(Term::Long),
        })
    }

    /// One account valued, with its lots and this year's realized gains.
    async fn detailed_view(
        &self,
        tenant: &str,
        record: AccountRecord,
    ) -> Result<AccountView, ExecutionError> {
        let lots = self.covered_lots(tenant, &record).await?;
        let realized = self.realized_this_year(tenant, &record.id).await?;
        let mut view = self.view(record).await?;
        view.lots = lots;
        view.realized = Some(realized);
        Ok(view)
    }

    /// Accounts in id order, valued.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_accounts(
        &self,
        context: &RequestContext,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountView>, ExecutionError> {
        let records = self
            .store
            .list_accounts(&context.tenant, filter, page)
            .await?;
        let mut views = Vec::with_capacity(records.len());
        for record in records {
            views.push(self.view(record).await?);
        }
        Ok(views)
    }

    /// Records a deposit (credited at once) or a withdrawal request (refused
    /// when larger than the account's value), once per idempotency key: a
    /// retry gets the movement recorded first.
    ///
    /// # Errors
    /// `Invalid` for bad input, `NotFound` for an unknown account,
    /// `FailedPrecondition` for a withdrawal above the account's value.
    #[tracing::instrument(name = "create_cash_movement", skip_all, fields(tenant = %context.tenant, account_id = %account_id))]
    pub async fn create_cash_movement(
        &self,
        context: &RequestContext,
        account_id: &str,
        kind: Option<CashMovementKind>,
        amount: &str,
        claim: IdempotencyClaim,
    ) -> Result<Created<CashMovementRecord>, ExecutionError> {
        let mut violations = Violations::new();
        if let Some(problem) = rebalancer_domain::ids::external_id_problem(account_id) {
            violations.add("account_id", problem);
        }
        if kind.is_none() {
            violations.add("type", "is required (deposit or withdrawal)");
        }
        let amount =
            cash::parse_amount(amount).map_err(|problem| violations.add("amount", problem));
        let (Some(kind), Ok(amount), true) = (kind, amount, violations.is_empty()) else {
            return Err(ExecutionError::Invalid(violations));
        };
        // A withdrawal may take what the account is worth less what was
        // requested before; the store checks it under the account's lock.
        let withdrawable_limit = if kind == CashMovementKind::Withdrawal {
            let account = self.get_account(context, account_id).await?;
            Some(account.valuation.equity)
        } else {
            None
        };
        let movement = NewCashMovement {
            id: new_id(),
            account_id: account_id.to_owned(),
            kind,
            amount,
            now: self.clock.now(),
            withdrawable_limit,
        };
        // A retry is answered with the movement recorded first, before any check.
        let created = self
            .store
            .create_cash_movement(&context.tenant, movement, Some(claim))
            .await?;
        if let Created::New(movement) = &created {
            tracing::info!(movement_id = %movement.id, kind = kind.as_str(), %amount, "cash movement recorded");
        }
        Ok(created)
    }

    /// Movements newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_cash_movements(
        &self,
        context: &RequestContext,
        filter: &CashMovementFilter,
        page: &PageRequest,
    ) -> Result<Vec<CashMovementRecord>, ExecutionError> {
        Ok(self
            .store
            .list_cash_movements(&context.tenant, filter, page)
            .await?)
    }

    /// Acknowledges, settles or cancels a movement.
    ///
    /// # Errors
    /// `NotFound`, or `FailedPrecondition` when the movement's state forbids it.
    #[tracing::instrument(name = "cash_action", skip_all, fields(tenant = %context.tenant, movement_id = %id, ?action))]
    pub async fn cash_action(
        &self,
        context: &RequestContext,
        id: &str,
        action: CashAction,
        run_id: Option<String>,
    ) -> Result<CashMovementRecord, ExecutionError> {
        if id.is_empty() {
            return Err(Violations::one("cash_movement_id", "is required").into());
        }
        Ok(self
            .store
            .apply_cash_action(&context.tenant, id, action, run_id, self.clock.now())
            .await?)
    }

    /// An account's holdings: valued positions and pending movements.
    ///
    /// # Errors
    /// `NotFound` for an unknown account.
    pub async fn holdings(
        &self,
        context: &RequestContext,
        account_id: &str,
    ) -> Result<HoldingsView, ExecutionError> {
        let mut view = self.get_account(context, account_id).await?;
        let page = PageRequest {
            after: None,
            limit: 1000,
        };
        for status in [
            CashMovementStatus::Pending,
            CashMovementStatus::Acknowledged,
        ] {
            let filter = CashMovementFilter {
                account_id: Some(account_id.to_owned()),
                status: Some(status),
                kind: None,
            };
            let movements = self
                .store
                .list_cash_movements(&context.tenant, &filter, &page)
                .await?;
            view.pending.extend(
                movements
                    .into_iter()
                    .filter(|m| still_to_raise(m, &view.record)),
            );
        }
        Ok(view)
    }

    /// One batch of holdings for the bulk stream.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn holdings_batch(
        &self,
        context: &RequestContext,
        range: &HoldingsRange,
        limit: u32,
    ) -> Result<Vec<HoldingsRecord>, ExecutionError> {
        Ok(self
            .store
            .holdings_batch(&context.tenant, range, limit)
            .await?)
    }

    /// The account's run that has not ended, if any.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn open_run_id(
        &self,
        context: &RequestContext,
        account_id: &str,
    ) -> Result<Option<String>, ExecutionError> {
        Ok(self.store.open_run_id(&context.tenant, account_id).await?)
    }
}

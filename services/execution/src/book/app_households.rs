//! Households and identical securities: upserts, reads with the household's
//! drift as a whole and each member's located target.

use std::collections::{BTreeMap, BTreeSet};

use rebalancer_domain::Symbol;
use rebalancer_domain::Violations;
use rebalancer_domain::household::{self, HouseholdInput, Member};
use rebalancer_domain::portfolio::Weight;
use rebalancer_domain::tax::TaxStatus;
use rebalancer_kit::RequestContext;
use rust_decimal::Decimal;

use crate::Execution;
use crate::book::households::HouseholdRecord;
use crate::book::parse_etag;
use crate::error::ExecutionError;
use crate::store::PageRequest;

/// The most groups of identical securities a tenant may keep.
const MAX_GROUPS: usize = 500;
/// The most symbols in one group.
const MAX_GROUP_SIZE: usize = 20;

/// One member valued, with its located target.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub account_id: String,
    pub tax_status: TaxStatus,
    pub value: Decimal,
    pub located: Vec<Weight>,
}

/// A household's line against its model: `symbol` `None` is cash.
#[derive(Debug, Clone)]
pub struct HouseholdDrift {
    pub symbol: Option<String>,
    pub target_weight: Decimal,
    pub current_weight: Decimal,
    pub current_value: Decimal,
}

/// A household valued.
#[derive(Debug, Clone)]
pub struct HouseholdView {
    pub record: HouseholdRecord,
    pub members: Vec<MemberView>,
    pub drift: Vec<HouseholdDrift>,
    pub equity: Decimal,
}

impl Execution {
    /// Creates or replaces a household.
    ///
    /// # Errors
    /// `Invalid` for bad input, `NotFound` for an unknown account,
    /// `FailedPrecondition` for an account in another household, `Aborted`
    /// for a stale etag.
    #[tracing::instrument(name = "upsert_household", skip_all, fields(tenant = %context.tenant, household_id = %input.id))]
    pub async fn upsert_household(
        &self,
        context: &RequestContext,
        input: HouseholdInput,
        etag: &str,
    ) -> Result<(HouseholdRecord, bool), ExecutionError> {
        let expected = parse_etag("etag", etag);
        let household = input.validate();
        let (household, expected) = match (household, expected) {
            (Ok(household), Ok(expected)) => (household, expected),
            (household, expected) => {
                let mut violations = household.err().unwrap_or_default();
                for violation in expected.err().unwrap_or_default() {
                    violations.add(violation.field, violation.description);
                }
                return Err(ExecutionError::Invalid(violations));
            }
        };
        let (record, created) = self
            .store
            .upsert_household(&context.tenant, &household, expected, self.clock.now())
            .await?;
        tracing::info!(
            created,
            members = record.household.account_ids.len(),
            "household upserted"
        );
        Ok((record, created))
    }

    /// A household with its members valued and located, and its drift.
    ///
    /// # Errors
    /// `NotFound` for an unknown household.
    pub async fn household(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<HouseholdView, ExecutionError> {
        let record = self
            .store
            .get_household(&context.tenant, id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("household {id} not found")))?;
        let mut members = Vec::new();
        let mut cash = Decimal::ZERO;
        let mut values: BTreeMap<String, Decimal> = BTreeMap::new();
        for account_id in &record.household.account_ids {
            // Valued only: lots and realized gains are not needed here.
            let record = self
                .store
                .get_account(&context.tenant, account_id)
                .await?
                .ok_or_else(|| {
                    ExecutionError::NotFound(format!("account {account_id} not found"))
                })?;
            let account = self.view(record).await?;
            let free = account.record.limits().free_cash();
            let positions: Decimal = account
                .valuation
                .positions
                .iter()
                .filter_map(|p| p.value)
                .sum();
            cash += free;
            for (position, valued) in account
                .record
                .positions
                .iter()
                .zip(&account.valuation.positions)
            {
                *values.entry(position.symbol.clone()).or_default() +=
                    valued.value.unwrap_or_default();
            }
            members.push(Member {
                account_id: account_id.clone(),
                tax_status: account.record.tax.status,
                value: (free + positions).max(Decimal::ZERO),
            });
        }
        let located = household::locate(
            &record.household.weights,
            &members,
            &record.household.tax_inefficient_symbols,
        );
        let equity = cash + values.values().copied().sum::<Decimal>();
        let weight_of = |value: Decimal| {
            if equity > Decimal::ZERO {
                (value * Decimal::ONE_HUNDRED / equity).round_dp(4)
            } else {
                Decimal::ZERO
            }
        };
        let targets: BTreeMap<Option<String>, Decimal> = record
            .household
            .weights
            .iter()
            .map(|w| (w.symbol().map(ToString::to_string), w.percent))
            .collect();
        let symbols: BTreeSet<Option<String>> = std::iter::once(None)
            .chain(values.keys().cloned().map(Some))
            .chain(targets.keys().cloned())
            .collect();
        let drift = symbols
            .into_iter()
            .map(|symbol| {
                let value = match &symbol {
                    None => cash,
                    Some(symbol) => values.get(symbol).copied().unwrap_or_default(),
                };
                HouseholdDrift {
                    target_weight: targets.get(&symbol).copied().unwrap_or_default(),
                    current_weight: weight_of(value),
                    current_value: value,
                    symbol,
                }
            })
            .collect();
        let members = members
            .into_iter()
            .zip(located)
            .map(|(member, located)| MemberView {
                account_id: member.account_id,
                tax_status: member.tax_status,
                value: member.value,
                located: located.weights,
            })
            .collect();
        Ok(HouseholdView {
            record,
            members,
            drift,
            equity,
        })
    }

    /// Households in id order.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_households(
        &self,
        context: &RequestContext,
        page: &PageRequest,
    ) -> Result<Vec<HouseholdRecord>, ExecutionError> {
        Ok(self.store.list_households(&context.tenant, page).await?)
    }

    /// Replaces the tenant's groups of substantially identical securities.
    ///
    /// # Errors
    /// `Invalid` with a violation per bad group or symbol.
    #[tracing::instrument(name = "set_identical_securities", skip_all, fields(tenant = %context.tenant))]
    pub async fn set_identical_securities(
        &self,
        context: &RequestContext,
        groups: Vec<Vec<String>>,
    ) -> Result<Vec<Vec<String>>, ExecutionError> {
        let mut violations = Violations::new();
        if groups.len() > MAX_GROUPS {
            violations.add("groups", format!("at most {MAX_GROUPS} groups"));
            return Err(ExecutionError::Invalid(violations));
        }
        let mut seen: BTreeMap<Symbol, usize> = BTreeMap::new();
        let mut clean = Vec::with_capacity(groups.len());
        for (index, group) in groups.iter().enumerate() {
            if !(2..=MAX_GROUP_SIZE).contains(&group.len()) {
                violations.add(
                    format!("groups[{index}].symbols"),
                    format!("must list 2 to {MAX_GROUP_SIZE} symbols"),
                );
                continue;
            }
            let mut symbols = Vec::with_capacity(group.len());
            for (position, text) in group.iter().enumerate() {
                let field = format!("groups[{index}].symbols[{position}]");
                match Symbol::parse(text) {
                    Ok(symbol) => match seen.get(&symbol) {
                        Some(other) => {
                            violations.add(field, format!("{symbol} is already in groups[{other}]"))
                        }
                        None => {
                            seen.insert(symbol.clone(), index);
                            symbols.push(symbol.to_string());
                        }
                    },
                    Err(error) => violations.add(field, error.to_string()),
                }
            }
            symbols.sort();
            clean.push(symbols);
        }
        if !violations.is_empty() {
            return Err(ExecutionError::Invalid(violations));
        }
        self.store
            .set_identical_securities(&context.tenant, &clean)
            .await?;
        tracing::info!(groups = clean.len(), "identical securities set");
        Ok(self.store.identical_securities(&context.tenant).await?)
    }

    /// The tenant's groups of substantially identical securities.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn identical_securities(
        &self,
        context: &RequestContext,
    ) -> Result<Vec<Vec<String>>, ExecutionError> {
        Ok(self.store.identical_securities(&context.tenant).await?)
    }
}

//! Reconciliation with the broker: a statement of each account's positions
//! and cash ([`rebalancer_domain::reconcile`] reads and compares it) against
//! the book as it is now. Differences are breaks and restrict their accounts
//! until a later statement agrees; the book is never changed to match.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rebalancer_domain::Violations;
use rebalancer_domain::reconcile::{BookAccount, compare, parse_statement};
use rebalancer_kit::RequestContext;
use rebalancer_kit::db::new_id;

use crate::Execution;
use crate::book::reconcile_store::{
    BreakFilter, BreakRecord, NewReconciliation, ReconciliationRecord,
};
use crate::error::ExecutionError;
use crate::store::{Created, IdempotencyClaim, PageRequest};

/// Longest `source` text.
const MAX_SOURCE: usize = 200;

impl Execution {
    /// Compares the statement with the book and records what differs.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a statement that does not parse (one violation
    /// per bad line), a `source` too long or an `as_of` in the future; nothing
    /// is stored then.
    pub async fn reconcile_accounts(
        &self,
        context: &RequestContext,
        statement_csv: &str,
        as_of: Option<DateTime<Utc>>,
        source: &str,
        claim: IdempotencyClaim,
    ) -> Result<(Created<ReconciliationRecord>, Vec<BreakRecord>), ExecutionError> {
        let now = self.clock.now();
        let mut violations = Violations::new();
        let lines = match parse_statement("statement_csv", statement_csv) {
            Ok(lines) => lines,
            Err(found) => {
                for violation in found.as_slice() {
                    violations.add(violation.field.clone(), violation.description.clone());
                }
                Vec::new()
            }
        };
        if lines.is_empty() && violations.is_empty() {
            violations.add("statement_csv", "has no holdings after its header");
        }
        if source.len() > MAX_SOURCE {
            violations.add("source", format!("at most {MAX_SOURCE} characters"));
        } else if source.chars().any(char::is_control) {
            violations.add("source", "must not contain control characters");
        }
        if as_of.is_some_and(|as_of| as_of > now + Duration::minutes(1)) {
            violations.add("as_of", "is in the future");
        }
        if !violations.is_empty() {
            return Err(ExecutionError::Invalid(violations));
        }
        let mut accounts: Vec<String> = lines.iter().map(|l| l.account_id.clone()).collect();
        accounts.sort();
        accounts.dedup();
        let mut book = BTreeMap::new();
        for account_id in &accounts {
            if let Some(record) = self.store.get_account(&context.tenant, account_id).await? {
                book.insert(
                    account_id.clone(),
                    BookAccount {
                        cash: record.cash,
                        positions: record
                            .positions
                            .iter()
                            .map(|p| (p.symbol.clone(), p.quantity))
                            .collect(),
                    },
                );
            }
        }
        let differences = compare(&lines, &book);
        let reconciliation = NewReconciliation {
            id: new_id(),
            as_of: as_of.unwrap_or(now),
            source: source.trim().to_owned(),
            lines: i64::try_from(lines.len()).unwrap_or(i64::MAX),
            accounts,
            differences,
            now,
        };
        let recorded = self
            .store
            .record_reconciliation(&context.tenant, reconciliation, claim)
            .await?;
        let record = match &recorded {
            Created::New(record) | Created::Replayed(record) => record,
        };
        tracing::info!(
            reconciliation_id = %record.id,
            accounts = record.accounts_checked,
            raised = record.breaks_raised,
            cleared = record.breaks_cleared,
            replayed = !recorded.is_new(),
            "broker statement reconciled"
        );
        let breaks = self.store.breaks_of(&context.tenant, &record.id).await?;
        Ok((recorded, breaks))
    }

    /// Breaks of the tenant, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_reconciliation_breaks(
        &self,
        context: &RequestContext,
        filter: &BreakFilter,
        page: &PageRequest,
    ) -> Result<Vec<BreakRecord>, ExecutionError> {
        Ok(self
            .store
            .list_breaks(&context.tenant, filter, page)
            .await?)
    }
}

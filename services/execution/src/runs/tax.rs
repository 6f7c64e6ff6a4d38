//! Tax-aware planning of a run: the account's lots and settings read from
//! the book, the controls turned into sell limits (the plan is made again
//! under them), and the estimate of what each sale realizes, stored with
//! the run.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use rebalancer_domain::Symbol;
use rebalancer_domain::lots::{self, Lot, LotMethod, Sale};
use rebalancer_domain::tax::TaxView;
use rebalancer_domain::trades::{BuyBlock, PlannedOrder, Side};
use rebalancer_domain::wash_sale::{self, IdenticalGroups, LossSale, RecentBuy, Window};
use rebalancer_domain::{Violations, calendar};
use rebalancer_kit::RequestContext;
use rust_decimal::Decimal;

use crate::Execution;
use crate::book::convert::tax_texts;
use crate::book::store::AccountRecord;
use crate::error::ExecutionError;
use crate::runs::store::{LotClose, OrderEdit, OrderRecord, OrderTax, RunRecord, RunTax};

/// What tax-aware planning needs of one account, read once per plan.
#[derive(Debug, Clone)]
pub(super) struct TaxInputs {
    pub lots: HashMap<Symbol, Vec<Lot>>,
    pub realized_this_year: Decimal,
    pub today: NaiveDate,
}

impl Execution {
    /// The account's lots (each position covered) and, when an annual
    /// budget needs it, what it realized this year.
    pub(super) async fn tax_inputs(
        &self,
        context: &RequestContext,
        account: &AccountRecord,
        today: NaiveDate,
    ) -> Result<TaxInputs, ExecutionError> {
        let lots = self
            .covered_lots(&context.tenant, account)
            .await?
            .into_iter()
            .filter_map(|(symbol, lots)| Some((Symbol::parse(&symbol).ok()?, lots)))
            .collect();
        let realized_this_year = if account.tax.annual_gain_budget.is_some() {
            let year = self
                .realized_this_year(&context.tenant, &account.id)
                .await?;
            year.short_term + year.long_term
        } else {
            Decimal::ZERO
        };
        Ok(TaxInputs {
            lots,
            realized_this_year,
            today,
        })
    }
}

/// What the household did in the wash-sale window, and the tenant's
/// substantially identical securities.
#[derive(Debug, Clone)]
pub(super) struct WashGuard {
    pub window: Window,
    pub groups: IdenticalGroups,
    pub today: NaiveDate,
}

impl Execution {
    /// The wash-sale window of `account`'s household (or of the account
    /// alone, outside a household).
    pub(super) async fn wash_guard(
        &self,
        context: &RequestContext,
        account: &AccountRecord,
        today: NaiveDate,
    ) -> Result<WashGuard, ExecutionError> {
        let members = match &account.household_id {
            Some(id) => self
                .store
                .get_household(&context.tenant, id)
                .await?
                .map(|record| record.household.account_ids)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let members = if members.is_empty() {
            vec![account.id.clone()]
        } else {
            members
        };
        let since = today
            .checked_sub_days(Days::new(wash_sale::WINDOW_DAYS))
            .unwrap_or(today);
        let (losses, buys) = self
            .store
            .wash_window(&context.tenant, &members, since)
            .await?;
        let groups: Vec<Vec<Symbol>> = self
            .store
            .identical_securities(&context.tenant)
            .await?
            .iter()
            .map(|group| group.iter().filter_map(|s| Symbol::parse(s).ok()).collect())
            .collect();
        Ok(WashGuard {
            window: Window {
                losses: losses
                    .into_iter()
                    .filter_map(|row| {
                        Some(LossSale {
                            symbol: Symbol::parse(&row.symbol).ok()?,
                            account_id: row.account_id,
                            sold_on: row.sold_on,
                            loss: row.loss,
                        })
                    })
                    .collect(),
                buys: buys
                    .into_iter()
                    .filter_map(|row| {
                        Some(RecentBuy {
                            symbol: Symbol::parse(&row.symbol).ok()?,
                            account_id: row.account_id,
                            acquired: row.acquired,
                            lot_id: row.lot_id,
                        })
                    })
                    .collect(),
            },
            groups: IdenticalGroups::new(&groups),
            today,
        })
    }
}

impl WashGuard {
    /// The symbols of `candidates` a buy of which would wash a loss.
    pub(super) fn buy_blocks<'a>(
        &self,
        candidates: impl Iterator<Item = &'a Symbol>,
    ) -> Vec<BuyBlock> {
        candidates
            .filter_map(|symbol| {
                Some(BuyBlock {
                    symbol: symbol.clone(),
                    detail: self.window.buy_blocked(symbol, &self.groups, self.today)?,
                })
            })
            .collect()
    }

    /// The held symbols of `account_id` whose lots at a loss (at `prices`)
    /// may not be sold, with why.
    pub(super) fn frozen_losses(
        &self,
        account_id: &str,
        lots: &HashMap<Symbol, Vec<Lot>>,
        prices: impl Fn(&Symbol) -> Option<Decimal>,
    ) -> HashMap<Symbol, String> {
        lots.iter()
            .filter_map(|(symbol, lots)| {
                let price = prices(symbol)?;
                let losing: Vec<String> = lots
                    .iter()
                    .filter(|lot| price < lot.cost_per_share())
                    .map(|lot| lot.id.clone())
                    .collect();
                if losing.is_empty() {
                    return None;
                }
                let why = self.window.loss_sale_blocked(
                    account_id,
                    symbol,
                    &losing,
                    &self.groups,
                    self.today,
                )?;
                Some((symbol.clone(), why))
            })
            .collect()
    }
}

impl Execution {
    /// The run's tax estimate after `edits` and the lots chosen for some
    /// sales (`(adjustment index, order id, lot ids)`); a chosen lot the
    /// account does not hold in the symbol is a violation.
    pub(super) async fn adjusted_tax(
        &self,
        context: &RequestContext,
        run: &RunRecord,
        account: &AccountRecord,
        edits: &[OrderEdit],
        choices: &[(usize, String, Vec<String>)],
        violations: &mut Violations,
    ) -> Result<Option<RunTax>, ExecutionError> {
        let today = calendar::exchange_date(self.clock.now());
        let inputs = self.tax_inputs(context, account, today).await?;
        let none = HashMap::new();
        let view = TaxView {
            settings: &account.tax,
            lots: &inputs.lots,
            realized_this_year: inputs.realized_this_year,
            today,
            frozen_losses: &none,
        };
        let mut sales = Vec::new();
        let mut per_order = Vec::new();
        for order in run
            .orders
            .iter()
            .filter(|o| o.side == Side::Sell && !o.excluded)
        {
            let edit = edits.iter().find(|e| e.order_id == order.id);
            if edit.is_some_and(|e| e.excluded) {
                continue;
            }
            let quantity = edit.map_or(order.quantity, |e| e.quantity);
            let Ok(symbol) = Symbol::parse(&order.symbol) else {
                continue;
            };
            let held = inputs.lots.get(&symbol).cloned().unwrap_or_default();
            let sale = match choices.iter().find(|(_, id, _)| id == &order.id) {
                Some((index, _, ids)) => {
                    let mut seen = std::collections::HashSet::new();
                    for (position, id) in ids.iter().enumerate() {
                        if !held.iter().any(|lot| &lot.id == id) {
                            violations.add(
                                format!("adjustments[{index}].lot_ids[{position}]"),
                                format!("lot {id} is not held in {symbol}"),
                            );
                        } else if !seen.insert(id) {
                            violations.add(
                                format!("adjustments[{index}].lot_ids[{position}]"),
                                format!("lot {id} is named twice"),
                            );
                        }
                    }
                    lots::sell(
                        &held,
                        quantity,
                        order.estimated_price,
                        today,
                        &LotMethod::Specific(ids.clone()),
                    )
                    .0
                }
                None => view.sale(&symbol, quantity, order.estimated_price),
            };
            per_order.push(order_tax(&order.id, &sale));
            sales.push(sale);
        }
        if per_order.is_empty() && view.budget().is_none() {
            return Ok(None);
        }
        let summary = view.summary(&sales);
        let (status, method) = tax_texts(&account.tax);
        Ok(Some(RunTax {
            status: status.to_owned(),
            lot_method: method.to_owned(),
            short_term_gain: summary.short_term,
            long_term_gain: summary.long_term,
            budget_left: summary.budget_left,
            orders: per_order,
        }))
    }
}

fn order_tax(order_id: &str, sale: &Sale) -> OrderTax {
    OrderTax {
        order_id: order_id.to_owned(),
        lots: sale
            .closed
            .iter()
            .map(|closed| LotClose {
                lot_id: closed.lot_id.clone(),
                acquired: closed.acquired.to_string(),
                quantity: closed.quantity,
                basis: closed.basis,
                proceeds: closed.proceeds,
                term: closed.term.as_str().to_owned(),
            })
            .collect(),
    }
}

/// The estimate of what `planned` sales realize; `orders` are the records
/// made from them, in the same order.
pub(super) fn run_tax(
    account: &AccountRecord,
    view: &TaxView<'_>,
    planned: &[PlannedOrder],
    orders: &[OrderRecord],
) -> Option<RunTax> {
    let mut sales = Vec::new();
    let mut per_order = Vec::new();
    for (plan, order) in planned.iter().zip(orders) {
        if plan.side != Side::Sell {
            continue;
        }
        let sale = view.sale(&plan.symbol, plan.quantity, plan.price);
        per_order.push(order_tax(&order.id, &sale));
        sales.push(sale);
    }
    if per_order.is_empty() && view.budget().is_none() {
        return None;
    }
    let summary = view.summary(&sales);
    let (status, method) = tax_texts(&account.tax);
    Some(RunTax {
        status: status.to_owned(),
        lot_method: method.to_owned(),
        short_term_gain: summary.short_term,
        long_term_gain: summary.long_term,
        budget_left: summary.budget_left,
        orders: per_order,
    })
}

//! Tax controls on a full rebalance's sales: a symbol's sale above its
//! limit is cut to the limit (whole shares down, dollars down to the cent),
//! and what is left is reported with the limit's reason. The cash a cut sale
//! does not raise is not spent on buys.

use rust_decimal::Decimal;

use super::book::Line;
use super::ledger::{Refusal, notional_order, quantity_order};
use super::rounding::floor_cents;
use super::{PlannedOrder, Side};

/// The part of `order` the line's sell limit allows, and the refusal of the
/// rest (none when the limit does not bind).
pub(super) fn cap_sell(
    line: &Line,
    order: PlannedOrder,
) -> (Option<PlannedOrder>, Option<Refusal>) {
    let Some((limit, detail, reason)) = &line.sell_limit else {
        return (Some(order), None);
    };
    if order.quantity <= *limit {
        return (Some(order), None);
    }
    let kept = if limit.is_zero() {
        None
    } else if line.sized_in_dollars {
        notional_order(line, Side::Sell, floor_cents(*limit * line.price)).ok()
    } else {
        let shares = limit.floor();
        (shares > Decimal::ZERO).then(|| quantity_order(line, Side::Sell, shares))
    };
    let kept = kept.filter(|order| order.cash_amount() >= line.minimum);
    let raised = kept
        .as_ref()
        .map_or(Decimal::ZERO, PlannedOrder::cash_amount);
    let left = floor_cents(order.cash_amount() - raised).max(Decimal::ZERO);
    (kept, Some(Refusal::new(*reason, left, detail.clone())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rust_decimal_macros::dec;

    use super::super::{
        AccountSnapshot, Holding, PlanInput, PlanKind, SellLimit, SkipReason, TradeAsset, plan,
    };
    use super::*;
    use crate::Symbol;
    use crate::portfolio::Weight;

    fn spy() -> Symbol {
        Symbol::parse("SPY").expect("symbol")
    }

    fn planned(limit: Option<Decimal>, fractionable: bool) -> super::super::Plan {
        let account = AccountSnapshot {
            cash: dec!(0),
            holdings: vec![Holding {
                symbol: spy(),
                quantity: dec!(100),
            }],
            buys_blocked: false,
            sells_blocked: false,
            restricted: Vec::new(),
            sell_limits: limit
                .map(|quantity| SellLimit {
                    symbol: spy(),
                    quantity,
                    detail: "gain budget used".to_owned(),
                    reason: SkipReason::Tax,
                })
                .into_iter()
                .collect(),
            buy_blocks: Vec::new(),
        };
        let tlt = Symbol::parse("TLT").expect("symbol");
        let assets: HashMap<Symbol, TradeAsset> = [(spy(), dec!(100)), (tlt.clone(), dec!(50))]
            .into_iter()
            .map(|(symbol, price)| {
                (
                    symbol.clone(),
                    TradeAsset {
                        symbol,
                        price,
                        tradable: true,
                        fractionable,
                    },
                )
            })
            .collect();
        let target = vec![Weight::asset(spy(), dec!(50)), Weight::asset(tlt, dec!(50))];
        plan(&PlanInput {
            kind: PlanKind::FullRebalance,
            account: &account,
            target: &target,
            assets: &assets,
            minimum_order_notional: dec!(1),
            whole_shares_only: false,
            asset_rules: &[],
        })
    }

    #[test]
    fn a_limit_cuts_the_sale_and_the_buys_it_would_fund() {
        let free = planned(None, false);
        assert_eq!(free.orders[0].quantity, dec!(50));
        let capped = planned(Some(dec!(20.7)), false);
        let sell = &capped.orders[0];
        assert_eq!((sell.side, sell.quantity), (Side::Sell, dec!(20)));
        let buy = &capped.orders[1];
        assert_eq!((buy.side, buy.quantity), (Side::Buy, dec!(40)));
        let skipped = &capped.skipped[0];
        assert_eq!(skipped.reason, SkipReason::Tax);
        assert_eq!(skipped.notional, dec!(3000));
        assert_eq!(skipped.detail, "gain budget used");
    }

    #[test]
    fn a_zero_limit_sells_nothing_and_dollar_sales_cut_to_the_cent() {
        let none = planned(Some(dec!(0)), false);
        assert!(none.orders.is_empty());
        assert_eq!(none.skipped[0].reason, SkipReason::Tax);
        let dollars = planned(Some(dec!(12.345)), true);
        assert_eq!(dollars.orders[0].notional, Some(dec!(1234.50)));
    }
}

//! FIX 4.4 application messages: the orders and cancels this service sends
//! (NewOrderSingle, OrderCancelRequest) and what it reads from the broker's
//! ExecutionReports. The session layer (logon, heartbeats, sequence numbers,
//! resends) is the `hotfix` engine's.

use chrono::{DateTime, NaiveDateTime, Utc};
use hotfix::Message;
use hotfix::message::{OutboundMessage, Part};
use hotfix_message::{Field, TagU32};
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rust_decimal::Decimal;

use crate::broker::OrderRequest;
use crate::broker::fix::store::{FixExecution, ReportUpdate};

// FIX 4.4 tags used here.
const ACCOUNT: u32 = 1;
const AVG_PX: u32 = 6;
const CL_ORD_ID: u32 = 11;
const CUM_QTY: u32 = 14;
const EXEC_ID: u32 = 17;
const HANDL_INST: u32 = 21;
const LAST_PX: u32 = 31;
const LAST_QTY: u32 = 32;
const MSG_TYPE: u32 = 35;
const ORDER_ID: u32 = 37;
const ORDER_QTY: u32 = 38;
const ORD_STATUS: u32 = 39;
const ORD_TYPE: u32 = 40;
const ORIG_CL_ORD_ID: u32 = 41;
const POSS_DUP_FLAG: u32 = 43;
const PRICE: u32 = 44;
const SIDE: u32 = 54;
const SYMBOL: u32 = 55;
const TEXT: u32 = 58;
const TIME_IN_FORCE: u32 = 59;
const TRANSACT_TIME: u32 = 60;
const POSS_RESEND: u32 = 97;
const EXEC_TYPE: u32 = 150;
const CASH_ORDER_QTY: u32 = 152;

/// How orders are written for this counterparty (the `[orders]` section of
/// the FIX configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFields {
    /// Account (1) on every order, when the broker wants one.
    pub account: Option<String>,
    /// Notional orders as CashOrderQty (152); without it they are refused
    /// before they are sent.
    pub cash_order_qty: bool,
    /// The tag and value that route an order to extended hours, e.g.
    /// TradingSessionID (336) = "EXT".
    pub extended_hours: Option<(u32, String)>,
}

/// A message this service sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    NewOrder {
        request: OrderRequest,
        fields: OrderFields,
        /// Sent again after a restart or a lost connection: PossResend (97)
        /// asks the broker to check the ClOrdID before acting on it.
        resend: bool,
        sent_at: DateTime<Utc>,
    },
    Cancel {
        client_order_id: String,
        symbol: String,
        side: Side,
        quantity: Decimal,
        sent_at: DateTime<Utc>,
    },
}

fn tag(number: u32) -> TagU32 {
    TagU32::new(number).unwrap_or(TagU32::MIN)
}

fn put(part: &mut impl Part, number: u32, value: &str) {
    part.store_field(Field::new(tag(number), value.as_bytes().to_vec()));
}

fn side_code(side: Side) -> &'static str {
    match side {
        Side::Buy => "1",
        Side::Sell => "2",
    }
}

/// A decimal as FIX writes it: plain, without exponent or trailing zeros.
fn number(value: Decimal) -> String {
    value.normalize().to_string()
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d-%H:%M:%S%.3f").to_string()
}

/// The cancel request's own ClOrdID.
#[must_use]
pub fn cancel_id(client_order_id: &str) -> String {
    format!("{client_order_id}-cxl")
}

impl OutboundMessage for Outbound {
    fn write(&self, msg: &mut Message) {
        match self {
            Self::NewOrder {
                request,
                fields,
                resend,
                sent_at,
            } => {
                if *resend {
                    put(msg.header_mut(), POSS_RESEND, "Y");
                }
                put(msg, CL_ORD_ID, &request.client_order_id);
                if let Some(account) = &fields.account {
                    put(msg, ACCOUNT, account);
                }
                put(msg, HANDL_INST, "1");
                put(msg, SYMBOL, &request.symbol);
                put(msg, SIDE, side_code(request.side));
                put(msg, TRANSACT_TIME, &timestamp(*sent_at));
                match request.notional {
                    Some(notional) if fields.cash_order_qty => {
                        put(msg, CASH_ORDER_QTY, &number(notional));
                    }
                    _ => put(msg, ORDER_QTY, &number(request.quantity)),
                }
                match request.limit_price {
                    Some(limit) => {
                        put(msg, ORD_TYPE, "2");
                        put(msg, PRICE, &number(limit));
                    }
                    None => put(msg, ORD_TYPE, "1"),
                }
                // Child orders are immediate-or-cancel: what does not fill
                // at once is canceled and the algorithm sizes the next slice.
                put(msg, TIME_IN_FORCE, "3");
                if request.extended_hours
                    && let Some((number, value)) = &fields.extended_hours
                {
                    put(msg, *number, value);
                }
            }
            Self::Cancel {
                client_order_id,
                symbol,
                side,
                quantity,
                sent_at,
            } => {
                put(msg, ORIG_CL_ORD_ID, client_order_id);
                put(msg, CL_ORD_ID, &cancel_id(client_order_id));
                put(msg, SYMBOL, symbol);
                put(msg, SIDE, side_code(*side));
                put(msg, TRANSACT_TIME, &timestamp(*sent_at));
                put(msg, ORDER_QTY, &number(*quantity));
            }
        }
    }

    fn message_type(&self) -> &str {
        match self {
            Self::NewOrder { .. } => "D",
            Self::Cancel { .. } => "F",
        }
    }
}

fn text(part: &impl Part, number: u32) -> Option<&str> {
    part.get_field_map()
        .get_raw(tag(number))
        .and_then(|raw| std::str::from_utf8(raw).ok())
}

fn decimal(part: &impl Part, number: u32) -> Result<Option<Decimal>, String> {
    text(part, number)
        .map(|value| {
            value
                .parse::<Decimal>()
                .map_err(|_| format!("tag {number} is not a decimal: {value:?}"))
        })
        .transpose()
}

/// The message's type (35).
#[must_use]
pub fn message_type(msg: &Message) -> &str {
    text(msg.header(), MSG_TYPE).unwrap_or_default()
}

/// Whether the message was sent before (PossDupFlag 43 = Y).
#[must_use]
pub fn possible_duplicate(msg: &Message) -> bool {
    text(msg.header(), POSS_DUP_FLAG) == Some("Y")
}

/// Our order's status from OrdStatus (39); `None` for states that do not
/// move it (pending cancel, pending replace).
fn order_status(code: &str, cumulative: Decimal) -> Option<OrderStatus> {
    match code {
        "A" => Some(OrderStatus::New),
        "0" => Some(OrderStatus::Submitted),
        "1" => Some(OrderStatus::PartiallyFilled),
        "2" => Some(OrderStatus::Filled),
        "4" => Some(OrderStatus::Canceled),
        "8" => Some(OrderStatus::Rejected),
        // Expired and done for day: an immediate-or-cancel order is over.
        "C" | "3" => Some(OrderStatus::Expired),
        "6" | "E" => Some(if cumulative > Decimal::ZERO {
            OrderStatus::PartiallyFilled
        } else {
            OrderStatus::Submitted
        }),
        _ => None,
    }
}

fn transact_time(value: &str) -> Option<DateTime<Utc>> {
    ["%Y%m%d-%H:%M:%S%.f", "%Y%m%d-%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
}

/// Reads an ExecutionReport (35=8). `received_at` dates an execution that
/// carries no TransactTime.
///
/// # Errors
/// A report without ClOrdID, ExecID or a known OrdStatus, or with numbers
/// that do not parse.
pub fn execution_report(msg: &Message, received_at: DateTime<Utc>) -> Result<ReportUpdate, String> {
    let exec_id = text(msg, EXEC_ID).ok_or("ExecutionReport without ExecID (17)")?;
    // A cancel's report names the cancel request; the order is OrigClOrdID.
    let client_order_id = text(msg, ORIG_CL_ORD_ID)
        .or_else(|| text(msg, CL_ORD_ID))
        .ok_or("ExecutionReport without ClOrdID (11)")?;
    let cumulative = decimal(msg, CUM_QTY)?.unwrap_or_default();
    let code = text(msg, ORD_STATUS).unwrap_or_default();
    let status =
        order_status(code, cumulative).ok_or_else(|| format!("OrdStatus (39) {code:?}"))?;
    let exec_type = text(msg, EXEC_TYPE).unwrap_or_default();
    let last_quantity = decimal(msg, LAST_QTY)?.unwrap_or_default();
    // Trades (F) and, from FIX 4.2 counterparties, partial fill / fill (1, 2).
    let trade = matches!(exec_type, "F" | "1" | "2") && last_quantity > Decimal::ZERO;
    let execution = if trade {
        let price = decimal(msg, LAST_PX)?
            .or(decimal(msg, AVG_PX)?)
            .ok_or("fill without LastPx (31)")?;
        Some(FixExecution {
            exec_id: exec_id.to_owned(),
            client_order_id: client_order_id.to_owned(),
            quantity: last_quantity,
            price,
            executed_at: text(msg, TRANSACT_TIME)
                .and_then(transact_time)
                .unwrap_or(received_at),
        })
    } else {
        None
    };
    Ok(ReportUpdate {
        client_order_id: client_order_id.to_owned(),
        broker_order_id: text(msg, ORDER_ID)
            .filter(|id| *id != "NONE")
            .unwrap_or_default()
            .to_owned(),
        symbol: text(msg, SYMBOL).unwrap_or_default().to_owned(),
        status,
        reason: text(msg, TEXT).unwrap_or_default().to_owned(),
        execution,
    })
}

/// The order an OrderCancelReject (35=9) is about, and why.
#[must_use]
pub fn cancel_reject(msg: &Message) -> (String, String) {
    (
        text(msg, ORIG_CL_ORD_ID).unwrap_or_default().to_owned(),
        text(msg, TEXT).unwrap_or_default().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(fields: &[(u32, &str)]) -> Message {
        let mut msg = Message::new("FIX.4.4", "8");
        for (number, value) in fields {
            put(&mut msg, *number, value);
        }
        msg
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn a_partial_fill_carries_its_execution() {
        let msg = report(&[
            (CL_ORD_ID, "c-1"),
            (ORDER_ID, "ORD-7"),
            (EXEC_ID, "EX-1"),
            (EXEC_TYPE, "F"),
            (ORD_STATUS, "1"),
            (SYMBOL, "SPY"),
            (LAST_QTY, "2.5"),
            (LAST_PX, "580.12"),
            (CUM_QTY, "2.5"),
            (TRANSACT_TIME, "20260302-15:00:01.250"),
        ]);
        let update = execution_report(&msg, at()).expect("report");
        assert_eq!(update.status, OrderStatus::PartiallyFilled);
        assert_eq!(update.broker_order_id, "ORD-7");
        let execution = update.execution.expect("execution");
        assert_eq!(execution.quantity, Decimal::new(25, 1));
        assert_eq!(execution.price, Decimal::new(58012, 2));
        assert_eq!(
            execution.executed_at,
            at() + chrono::Duration::milliseconds(1250)
        );
    }

    #[test]
    fn a_cancel_report_names_the_original_order() {
        let msg = report(&[
            (CL_ORD_ID, "c-1-cxl"),
            (ORIG_CL_ORD_ID, "c-1"),
            (EXEC_ID, "EX-2"),
            (EXEC_TYPE, "4"),
            (ORD_STATUS, "4"),
            (CUM_QTY, "0"),
        ]);
        let update = execution_report(&msg, at()).expect("report");
        assert_eq!(update.client_order_id, "c-1");
        assert_eq!(update.status, OrderStatus::Canceled);
        assert!(update.execution.is_none());
    }

    #[test]
    fn a_report_without_exec_id_or_status_is_refused() {
        assert!(execution_report(&report(&[(CL_ORD_ID, "c")]), at()).is_err());
        let unknown = report(&[(CL_ORD_ID, "c"), (EXEC_ID, "e"), (ORD_STATUS, "Z")]);
        assert!(execution_report(&unknown, at()).is_err());
    }

    #[test]
    fn orders_are_written_as_the_counterparty_wants_them() {
        let request = OrderRequest {
            client_order_id: "blk-1-s1-d".to_owned(),
            symbol: "SPY".to_owned(),
            side: Side::Buy,
            quantity: Decimal::new(172, 1),
            notional: Some(Decimal::new(1000000, 2)),
            limit_price: None,
            extended_hours: true,
            whole_shares: false,
        };
        let fields = OrderFields {
            account: Some("FIRM".to_owned()),
            cash_order_qty: true,
            extended_hours: Some((336, "EXT".to_owned())),
        };
        let mut msg = Message::new("FIX.4.4", "D");
        Outbound::NewOrder {
            request: request.clone(),
            fields: fields.clone(),
            resend: true,
            sent_at: at(),
        }
        .write(&mut msg);
        assert_eq!(text(&msg, CASH_ORDER_QTY), Some("10000"));
        assert_eq!(text(&msg, ORDER_QTY), None);
        assert_eq!(text(&msg, TIME_IN_FORCE), Some("3"));
        assert_eq!(text(&msg, 336), Some("EXT"));
        assert_eq!(text(msg.header(), POSS_RESEND), Some("Y"));
        let mut shares = Message::new("FIX.4.4", "D");
        Outbound::NewOrder {
            request,
            fields: OrderFields {
                cash_order_qty: false,
                ..fields
            },
            resend: false,
            sent_at: at(),
        }
        .write(&mut shares);
        assert_eq!(text(&shares, ORDER_QTY), Some("17.2"));
        assert_eq!(text(shares.header(), POSS_RESEND), None);
    }
}

//! The FIX 4.4 broker adapter (`--broker fix --fix-config <file>`), on the
//! `hotfix` engine: it logs on, keeps heartbeats, persists sequence numbers
//! and sent messages in the service's database ([`session_store`]), answers
//! resend requests and reconnects on its own.
//!
//! Each child order is a NewOrderSingle whose ClOrdID is the deterministic
//! client order id, recorded in `fix_orders` before it is sent. Submitting an
//! id again (a slice retried after a crash or a timeout) never makes a second
//! order: a final order is returned as it is, an open one is sent again with
//! PossResend, which the broker answers with the order it has. Execution
//! reports are applied in the session's inbound callback, before the engine
//! counts the message as received: an execution is booked once by ExecID
//! (a repeated report, PossDup or not, books nothing), and a report for an
//! order never sent or a fill beyond an order's quantity is raised as a
//! break ([`store::BrokerBreak`]) and not booked.

pub mod config;
pub mod messages;
pub mod session_store;
mod sql;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use hotfix::Message;
use hotfix::application::{Application, InboundDecision, OutboundDecision};
use hotfix::initiator::Initiator;
use hotfix::session::Status;
use rebalancer_domain::run::OrderStatus;
use rebalancer_domain::trades::Side;
use rebalancer_kit::Clock;
use rust_decimal::Decimal;
use tokio::sync::watch;

use crate::broker::fix::config::FixConfig;
use crate::broker::fix::messages::{Outbound, cancel_reject, execution_report, message_type};
use crate::broker::fix::session_store::SqlMessageStore;
use crate::broker::fix::store::{Applied, FixBook, FixExecution, FixOrder};
use crate::broker::{
    Broker, BrokerError, BrokerFill, BrokerHoldings, BrokerOrder, BrokerPosition, OrderRequest,
};

fn unavailable(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(error.to_string())
}

fn broker_order(order: FixOrder, executions: Vec<FixExecution>) -> BrokerOrder {
    BrokerOrder {
        client_order_id: order.client_order_id,
        broker_order_id: order.broker_order_id,
        status: order.status,
        filled_quantity: order.filled_quantity,
        fills: executions
            .into_iter()
            .map(|execution| BrokerFill {
                id: execution.exec_id,
                quantity: execution.quantity,
                price: execution.price,
                executed_at: execution.executed_at,
            })
            .collect(),
        reason: order.reason,
    }
}

/// The session callbacks: execution reports into the book.
struct Reports {
    book: Arc<dyn FixBook>,
    clock: Arc<dyn Clock>,
    /// Bumped after every applied report: `submit` waits on it.
    applied: watch::Sender<u64>,
    status: watch::Sender<String>,
}

#[async_trait::async_trait]
impl Application for Reports {
    type Outbound = Outbound;

    async fn on_outbound_message(&self, _msg: &Outbound) -> OutboundDecision {
        OutboundDecision::Send
    }

    async fn on_inbound_message(&self, msg: &Message) -> InboundDecision {
        match message_type(msg) {
            "8" => {
                let update = match execution_report(msg, self.clock.now()) {
                    Ok(update) => update,
                    Err(reason) => {
                        tracing::error!(%reason, "unreadable execution report");
                        return InboundDecision::Reject {
                            reason: hotfix::application::BusinessRejectReason::Other,
                            text: Some(reason),
                        };
                    }
                };
                let id = update.client_order_id.clone();
                let exec_id = update
                    .execution
                    .as_ref()
                    .map(|execution| execution.exec_id.clone());
                match self.book.apply_fix_report(update, self.clock.now()).await {
                    Ok(Applied::Booked) => {}
                    Ok(Applied::Repeated) => {
                        tracing::info!(client_order_id = %id, ?exec_id, "repeated execution report: already booked");
                    }
                    Ok(Applied::Break(kind)) => {
                        tracing::error!(client_order_id = %id, ?exec_id, kind = kind.as_str(), "execution report raised as a break");
                    }
                    Err(error) => {
                        // Not counted as received: the session asks for it again.
                        tracing::error!(%error, client_order_id = %id, "execution report not stored; ending the session");
                        return InboundDecision::TerminateSession;
                    }
                }
                self.applied.send_modify(|count| *count += 1);
            }
            "9" => {
                let (id, reason) = cancel_reject(msg);
                tracing::warn!(client_order_id = %id, %reason, "cancel rejected by the broker");
                self.applied.send_modify(|count| *count += 1);
            }
            other => tracing::debug!(msg_type = other, "FIX message ignored"),
        }
        InboundDecision::Accept
    }

    async fn on_logout(&mut self, reason: &str) {
        tracing::warn!(%reason, "FIX session logged out");
    }

    async fn on_logon(&mut self) {
        tracing::info!("FIX session logged on");
    }

    async fn on_state_change(&self, from: &Status, to: &Status) {
        tracing::info!(?from, ?to, "FIX session state");
        self.status.send_replace(format!("{to:?}"));
    }
}

/// Orders through a FIX 4.4 session.
pub struct FixBroker {
    initiator: Initiator<Outbound>,
    book: Arc<dyn FixBook>,
    clock: Arc<dyn Clock>,
    config: FixConfig,
    applied: watch::Receiver<u64>,
    status: watch::Receiver<String>,
}

impl std::fmt::Debug for FixBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixBroker")
            .field("session", &self.config.session_key())
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl FixBroker {
    /// Opens the session's stored state and starts the initiator (it
    /// connects, logs on and reconnects in the background).
    ///
    /// # Errors
    /// When the database cannot be read or the session cannot be created.
    pub async fn start(
        config: FixConfig,
        book: Arc<dyn FixBook>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let store = SqlMessageStore::open(book.clone(), config.session_key()).await?;
        let (applied_tx, applied) = watch::channel(0);
        let (status_tx, status) = watch::channel("Disconnected".to_owned());
        let reports = Reports {
            book: book.clone(),
            clock: clock.clone(),
            applied: applied_tx,
            status: status_tx,
        };
        let initiator = Initiator::start(config.session.clone(), reports, store)
            .await
            .map_err(|error| anyhow::anyhow!("FIX session: {error}"))?;
        tracing::info!(
            session = %config.session_key(),
            host = %config.session.connection_host,
            port = config.session.connection_port,
            "FIX initiator started"
        );
        Ok(Self {
            initiator,
            book,
            clock,
            config,
            applied,
            status,
        })
    }

    /// The session's state as the engine last reported it.
    #[must_use]
    pub fn session_status(&self) -> String {
        self.status.borrow().clone()
    }

    /// Waits until the order is final or the report timeout passes.
    async fn await_final(
        &self,
        client_order_id: &str,
        mut applied: watch::Receiver<u64>,
    ) -> Result<BrokerOrder, BrokerError> {
        let deadline = tokio::time::Instant::now() + self.config.report_timeout;
        loop {
            applied.borrow_and_update();
            let (order, executions) = self
                .book
                .fix_order(client_order_id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| unavailable(format!("order {client_order_id} vanished")))?;
            if order.status.is_terminal() {
                return Ok(broker_order(order, executions));
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(unavailable(format!(
                        "no final execution report for {client_order_id} within {:?} (status {}, session {})",
                        self.config.report_timeout,
                        order.status.as_str(),
                        self.session_status()
                    )));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Broker for FixBroker {
    fn session_ready(&self) -> Result<(), String> {
        let status = self.status.borrow().clone();
        // Up (or catching up on a resend) is ready; anything else is not.
        if status.starts_with("Active") || status.starts_with("AwaitingResend") {
            Ok(())
        } else {
            Err(format!(
                "FIX session {}: {status}",
                self.config.session_key()
            ))
        }
    }

    async fn submit(&self, request: OrderRequest) -> Result<BrokerOrder, BrokerError> {
        let id = request.client_order_id.clone();
        if request.notional.is_some() && !self.config.orders.cash_order_qty {
            return Ok(BrokerOrder {
                client_order_id: id,
                broker_order_id: String::new(),
                status: OrderStatus::Rejected,
                filled_quantity: Decimal::ZERO,
                fills: Vec::new(),
                reason: "notional (dollar) orders need CashOrderQty: set orders.cash_order_qty \
                         in the FIX configuration if the broker takes it"
                    .to_owned(),
            });
        }
        let applied = self.applied.clone();
        let now = self.clock.now();
        let resend = match self.book.fix_order(&id).await.map_err(unavailable)? {
            Some((order, executions)) if order.status.is_terminal() => {
                return Ok(broker_order(order, executions));
            }
            Some(_) => true,
            None => {
                self.book
                    .insert_fix_order(FixOrder {
                        client_order_id: id.clone(),
                        broker_order_id: String::new(),
                        symbol: request.symbol.clone(),
                        side: request.side,
                        quantity: request.quantity,
                        notional: request.notional,
                        limit_price: request.limit_price,
                        status: OrderStatus::New,
                        filled_quantity: Decimal::ZERO,
                        reason: String::new(),
                        sent_at: now,
                    })
                    .await
                    .map_err(unavailable)?;
                false
            }
        };
        if resend {
            tracing::info!(client_order_id = %id, "order sent before and still open: sending it again with PossResend");
        }
        self.initiator
            .send(Outbound::NewOrder {
                request,
                fields: self.config.orders.clone(),
                resend,
                sent_at: now,
            })
            .await
            .map_err(|error| {
                unavailable(format!(
                    "FIX session {} cannot send {id}: {error}",
                    self.session_status()
                ))
            })?;
        self.await_final(&id, applied).await
    }

    async fn order(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        Ok(self
            .book
            .fix_order(client_order_id)
            .await
            .map_err(unavailable)?
            .map(|(order, executions)| broker_order(order, executions)))
    }

    async fn cancel(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let Some((order, executions)) = self
            .book
            .fix_order(client_order_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        if order.status.is_terminal() {
            return Ok(Some(broker_order(order, executions)));
        }
        let applied = self.applied.clone();
        self.initiator
            .send(Outbound::Cancel {
                client_order_id: order.client_order_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                quantity: order.quantity,
                sent_at: self.clock.now(),
            })
            .await
            .map_err(unavailable)?;
        match self.await_final(client_order_id, applied).await {
            Ok(order) => Ok(Some(order)),
            // A cancel the broker refused leaves the order as it is.
            Err(_) => self.order(client_order_id).await,
        }
    }

    async fn reports(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BrokerOrder>, BrokerError> {
        Ok(self
            .book
            .fix_orders(after, limit)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(order, executions)| broker_order(order, executions))
            .collect())
    }

    /// The positions and cash the broker's executions add up to.
    async fn holdings(&self) -> Result<BrokerHoldings, BrokerError> {
        let mut positions: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut cash_change = Decimal::ZERO;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .book
                .fix_orders(after.as_deref(), 500)
                .await
                .map_err(unavailable)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.client_order_id.clone());
            for (order, executions) in &page {
                for execution in executions {
                    let (shares, cash) = match order.side {
                        Side::Buy => (execution.quantity, -execution.quantity * execution.price),
                        Side::Sell => (-execution.quantity, execution.quantity * execution.price),
                    };
                    *positions.entry(order.symbol.clone()).or_default() += shares;
                    cash_change += cash;
                }
            }
        }
        Ok(BrokerHoldings {
            positions: positions
                .into_iter()
                .filter(|(_, quantity)| !quantity.is_zero())
                .map(|(symbol, quantity)| BrokerPosition { symbol, quantity })
                .collect(),
            cash_change,
        })
    }
}

//! Reconciliation with the broker, end to end on both backends: a broker
//! statement (CSV) with a deliberate position difference raises a break,
//! restricts the account (`RESTRICTION_BROKER_BREAK`) and makes the Monitor
//! flag it `NEEDS_ATTENTION`; the book is not changed to match. The
//! platform's correction keeps the restriction until a later statement
//! agrees, which clears the break. A retry returns the first result; a bad
//! statement is refused line by line and changes nothing.

use rebalancer_proto::client::{CallContext, TracedChannel};
use rebalancer_proto::common::ApprovalMode;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::execution::{
    GetHoldingsRequest, Holdings, ListReconciliationBreaksRequest, Position,
    ReconcileAccountsRequest, ReconcileAccountsResponse, ReconciliationBreak, Restriction,
    UpsertAccountRequest,
};
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{
    EvaluateNowRequest, Evaluation, EvaluationStatus, GetCycleRequest, GetEvaluationRequest,
};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};
use rebalancer_tests::weight;
use rebalancer_tests::{Backend, TestStack, violated_fields};

const FIRST: &str = "account_id,kind,symbol,quantity
acct-1,position,SPY,12
acct-1,position,TLT,5
acct-1,cash,,1000
acct-2,position,SPY,3
acct-2,cash,,500
acct-9,position,QQQ,1
";

const SECOND: &str = "account_id,kind,symbol,quantity
acct-1,position,SPY,12
acct-1,position,TLT,5
acct-1,cash,,1000
";

fn position(symbol: &str, quantity: &str) -> Position {
    Position {
        symbol: symbol.to_owned(),
        quantity: quantity.to_owned(),
        ..Position::default()
    }
}

struct Desk {
    firm: CallContext,
    accounts: AccountServiceClient<TracedChannel>,
    monitor: MonitorServiceClient<TracedChannel>,
}

impl Desk {
    async fn reconcile(
        &mut self,
        key: &str,
        csv: &str,
    ) -> Result<ReconcileAccountsResponse, tonic::Status> {
        self.accounts
            .reconcile_accounts(self.firm.request(ReconcileAccountsRequest {
                idempotency_key: key.to_owned(),
                statement_csv: csv.to_owned(),
                source: "custodian end-of-day file".to_owned(),
                ..ReconcileAccountsRequest::default()
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn breaks(&mut self, include_cleared: bool) -> Vec<ReconciliationBreak> {
        self.accounts
            .list_reconciliation_breaks(self.firm.request(ListReconciliationBreaksRequest {
                include_cleared,
                ..ListReconciliationBreaksRequest::default()
            }))
            .await
            .expect("breaks")
            .into_inner()
            .breaks
    }

    async fn holdings(&mut self, id: &str) -> Holdings {
        self.accounts
            .get_holdings(self.firm.request(GetHoldingsRequest {
                account_id: id.to_owned(),
            }))
            .await
            .expect("holdings")
            .into_inner()
            .holdings
            .expect("holdings")
    }

    async fn evaluate(&mut self, stack: &TestStack, key: &str) -> Evaluation {
        let cycle = self
            .monitor
            .evaluate_now(self.firm.request(EvaluateNowRequest {
                idempotency_key: key.to_owned(),
                account_ids: vec!["acct-1".to_owned()],
                ..EvaluateNowRequest::default()
            }))
            .await
            .expect("evaluate")
            .into_inner()
            .cycle
            .expect("cycle");
        while stack.monitor_tick().await > 0 {}
        let cycle = self
            .monitor
            .get_cycle(self.firm.request(GetCycleRequest { cycle_id: cycle.id }))
            .await
            .expect("cycle")
            .into_inner()
            .cycle
            .expect("cycle");
        self.monitor
            .get_evaluation(self.firm.request(GetEvaluationRequest {
                account_id: "acct-1".to_owned(),
                cycle_id: cycle.id,
            }))
            .await
            .expect("evaluation")
            .into_inner()
            .evaluation
            .expect("evaluation")
    }
}

fn restricted(holdings: &Holdings) -> bool {
    holdings
        .restrictions
        .contains(&i32::from(Restriction::BrokerBreak))
}

async fn a_broker_difference_is_a_break_and_a_flag(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let channel = stack.channel();
    let firm = stack.tenant("firm-a");
    let mut desk = Desk {
        firm: firm.clone(),
        accounts: AccountServiceClient::new(channel.clone()),
        monitor: MonitorServiceClient::new(channel.clone()),
    };
    for (id, cash, positions) in [
        (
            "acct-1",
            "1000",
            vec![position("SPY", "10"), position("TLT", "5")],
        ),
        ("acct-2", "500", vec![position("SPY", "3")]),
    ] {
        desk.accounts
            .upsert_account(firm.request(UpsertAccountRequest {
                account_id: id.to_owned(),
                cash: cash.to_owned(),
                positions,
                ..UpsertAccountRequest::default()
            }))
            .await
            .expect("account");
    }
    let portfolio = PortfolioServiceClient::new(channel.clone())
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![weight("", "5"), weight("SPY", "60"), weight("TLT", "35")],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    AssignmentServiceClient::new(channel.clone())
        .assign(firm.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio.id,
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    // A bad statement: refused line by line, nothing stored.
    let bad = "account_id,kind,symbol,quantity\nacct-1,position,SPY,twelve\nacct-1,bond,X,1\n";
    let refused = desk.reconcile("bad", bad).await.expect_err("bad statement");
    assert_eq!(
        violated_fields(&refused),
        ["statement_csv[2].quantity", "statement_csv[3].kind"]
    );
    assert!(desk.breaks(true).await.is_empty());

    // The broker holds 12 SPY for acct-1 where the book has 10, and QQQ for
    // an account the book does not know.
    let first = desk.reconcile("eod-1", FIRST).await.expect("reconcile");
    let summary = first.reconciliation.clone().expect("reconciliation");
    assert_eq!(
        (
            summary.lines,
            summary.accounts_checked,
            summary.breaks_raised,
            summary.breaks_cleared
        ),
        (6, 2, 2, 0)
    );
    let found: Vec<(&str, &str, &str, &str)> = first
        .breaks
        .iter()
        .map(|b| {
            (
                b.account_id.as_str(),
                b.symbol.as_str(),
                b.book_quantity.as_str(),
                b.broker_quantity.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("acct-1", "SPY", "10", "12"), ("acct-9", "QQQ", "", "1")]
    );
    assert_eq!(
        first.breaks[0].detail,
        "SPY: the broker holds 12, the book 10 (difference 2)"
    );
    // A retry gets the first answer; the key with another statement is refused.
    let again = desk.reconcile("eod-1", FIRST).await.expect("retry");
    assert_eq!(again.reconciliation, first.reconciliation);
    let reused = desk
        .reconcile("eod-1", SECOND)
        .await
        .expect_err("key reused");
    assert_eq!(reused.code(), tonic::Code::InvalidArgument, "{reused:?}");

    // The book is unchanged; the account is restricted and flagged.
    let holdings = desk.holdings("acct-1").await;
    let spy: Vec<&str> = holdings
        .positions
        .iter()
        .filter(|p| p.symbol == "SPY")
        .map(|p| p.quantity.as_str())
        .collect();
    assert_eq!(spy, ["10"]);
    assert!(restricted(&holdings), "{holdings:?}");
    assert!(!restricted(&desk.holdings("acct-2").await));
    let evaluation = desk.evaluate(&stack, "after-eod-1").await;
    assert_eq!(
        evaluation.status,
        i32::from(EvaluationStatus::NeedsAttention),
        "{evaluation:?}"
    );
    assert!(evaluation.reason.contains("broker_break"), "{evaluation:?}");

    // The platform cannot set or lift the restriction; its correction of
    // the book keeps it until a statement agrees.
    let forged = desk
        .accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-2".to_owned(),
            cash: "500".to_owned(),
            positions: vec![position("SPY", "3")],
            restrictions: vec![Restriction::BrokerBreak.into()],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect_err("restriction set by hand");
    assert_eq!(violated_fields(&forged), ["restrictions[0]"]);
    desk.accounts
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "1000".to_owned(),
            positions: vec![position("SPY", "12"), position("TLT", "5")],
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("correction");
    assert!(restricted(&desk.holdings("acct-1").await));

    // The next statement agrees for acct-1: its break clears, the flag lifts.
    let second = desk.reconcile("eod-2", SECOND).await.expect("reconcile");
    let summary = second.reconciliation.expect("reconciliation");
    assert_eq!((summary.breaks_raised, summary.breaks_cleared), (0, 1));
    assert!(second.breaks.is_empty());
    assert!(!restricted(&desk.holdings("acct-1").await));
    let open = desk.breaks(false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].account_id, "acct-9");
    let all = desk.breaks(true).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].cleared_by_reconciliation_id, summary.id);
    let evaluation = desk.evaluate(&stack, "after-eod-2").await;
    assert_ne!(
        evaluation.status,
        i32::from(EvaluationStatus::NeedsAttention),
        "{evaluation:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_broker_difference_is_a_break_and_a_flag_sqlite() {
    a_broker_difference_is_a_break_and_a_flag(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_broker_difference_is_a_break_and_a_flag_postgres() {
    a_broker_difference_is_a_break_and_a_flag(Backend::Postgres).await;
}

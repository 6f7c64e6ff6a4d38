//! `rebalancer.execution.v1.AccountService`.

use std::pin::Pin;

use futures::Stream;
use rebalancer_domain::Violations;
use rebalancer_domain::account::AccountInput;
use rebalancer_domain::cash::CashAction;
use rebalancer_kit::RequestContext;
use rebalancer_kit::error::{invalid_argument, invalid_field};
use rebalancer_kit::idempotency::required_claim;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::{datetime, enum_filter, preferences_input};
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::account_service_server::AccountService;
use tonic::{Request, Response, Status};

use crate::book::PositionInput;
use crate::book::convert::{
    account_status_from_wire, account_to_wire, account_type_from_wire, holdings_to_wire,
    lots_input, movement_kind_from_wire, movement_status_from_wire, movement_to_wire,
    reconciliation_break_to_wire, reconciliation_to_wire, restriction_from_wire,
    stream_holdings_to_wire, tax_settings_input,
};
use crate::book::reconcile_store::BreakFilter;
use crate::book::store::{AccountFilter, CashMovementFilter, HoldingsRange};
use crate::grpc::{ExecutionApi, required};

/// Accounts per StreamHoldings message by default, and at most.
const DEFAULT_BATCH: u32 = 1000;
const MAX_BATCH: u32 = 10_000;

type HoldingsStream =
    Pin<Box<dyn Stream<Item = Result<pb::StreamHoldingsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AccountService for ExecutionApi {
    type StreamHoldingsStream = HoldingsStream;

    async fn upsert_account(
        &self,
        request: Request<pb::UpsertAccountRequest>,
    ) -> Result<Response<pb::UpsertAccountResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let status = if message.status == 0 {
            None
        } else {
            Some(
                account_status_from_wire(message.status)
                    .ok_or_else(|| invalid_field("status", "is not a known account status"))?,
            )
        };
        let account_type = Some(
            account_type_from_wire(message.r#type)
                .ok_or_else(|| invalid_field("type", "is not a known account type"))?,
        );
        let input = AccountInput {
            account_id: message.account_id,
            account_type,
            margin_limit: message.margin_limit,
            status,
            cash: message.cash,
            positions: message
                .positions
                .into_iter()
                .map(|p| PositionInput {
                    lots: lots_input(&p),
                    symbol: p.symbol,
                    quantity: p.quantity,
                    average_cost: p.average_cost,
                })
                .collect(),
            restrictions: message
                .restrictions
                .into_iter()
                .map(restriction_from_wire)
                .collect(),
        };
        let (view, created) = self
            .execution
            .upsert_account(&context, input, &message.etag)
            .await?;
        Ok(Response::new(pb::UpsertAccountResponse {
            account: Some(account_to_wire(&view)),
            created,
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("account_id", &message.account_id)?;
        let view = self
            .execution
            .get_account(&context, &message.account_id)
            .await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(account_to_wire(&view)),
        }))
    }

    async fn set_trading_preferences(
        &self,
        request: Request<pb::SetTradingPreferencesRequest>,
    ) -> Result<Response<pb::SetTradingPreferencesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("account_id", &message.account_id)?;
        let input = preferences_input(&message.preferences.unwrap_or_default());
        let view = self
            .execution
            .set_trading_preferences(&context, &message.account_id, input, &message.etag)
            .await?;
        Ok(Response::new(pb::SetTradingPreferencesResponse {
            account: Some(account_to_wire(&view)),
        }))
    }

    async fn set_tax_settings(
        &self,
        request: Request<pb::SetTaxSettingsRequest>,
    ) -> Result<Response<pb::SetTaxSettingsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("account_id", &message.account_id)?;
        let input = tax_settings_input(message.tax_settings.as_ref()).map_err(|problems| {
            let mut violations = rebalancer_domain::Violations::new();
            violations.extend_prefixed("tax_settings", problems);
            crate::error::ExecutionError::Invalid(violations)
        })?;
        let view = self
            .execution
            .set_tax_settings(&context, &message.account_id, input, &message.etag)
            .await?;
        Ok(Response::new(pb::SetTaxSettingsResponse {
            account: Some(account_to_wire(&view)),
        }))
    }

    async fn upsert_household(
        &self,
        request: Request<pb::UpsertHouseholdRequest>,
    ) -> Result<Response<pb::UpsertHouseholdResponse>, Status> {
        self.upsert_household_rpc(request).await
    }

    async fn get_household(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::GetHouseholdResponse>, Status> {
        self.get_household_rpc(request).await
    }

    async fn list_households(
        &self,
        request: Request<pb::ListHouseholdsRequest>,
    ) -> Result<Response<pb::ListHouseholdsResponse>, Status> {
        self.list_households_rpc(request).await
    }

    async fn set_identical_securities(
        &self,
        request: Request<pb::SetIdenticalSecuritiesRequest>,
    ) -> Result<Response<pb::SetIdenticalSecuritiesResponse>, Status> {
        self.set_identical_securities_rpc(request).await
    }

    async fn get_identical_securities(
        &self,
        request: Request<pb::GetIdenticalSecuritiesRequest>,
    ) -> Result<Response<pb::GetIdenticalSecuritiesResponse>, Status> {
        self.get_identical_securities_rpc(request).await
    }

    async fn apply_split(
        &self,
        request: Request<pb::ApplySplitRequest>,
    ) -> Result<Response<pb::ApplySplitResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim("ApplySplit", &message.idempotency_key, &message, |m| {
            m.idempotency_key.clear()
        })?;
        let input = rebalancer_domain::lots::SplitInput {
            symbol: message.symbol,
            new_shares: message.new_shares,
            old_shares: message.old_shares,
            effective_on: message.effective_on,
        };
        let accounts = self.execution.apply_split(&context, input, &claim).await?;
        Ok(Response::new(pb::ApplySplitResponse {
            accounts_adjusted: i32::try_from(accounts).unwrap_or(i32::MAX),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let status = enum_filter(
            "status",
            message.status,
            account_status_from_wire,
            "account status",
        )?;
        let restriction = enum_filter(
            "restriction",
            message.restriction,
            restriction_from_wire,
            "restriction",
        )?;
        let filter = AccountFilter {
            status,
            restriction,
        };
        let views = self
            .execution
            .list_accounts(&context, &filter, &page.fetch())
            .await?;
        let (views, next_page_token) = page.finish(views, |view| view.record.id.clone());
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: views.iter().map(account_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn create_cash_movement(
        &self,
        request: Request<pb::CreateCashMovementRequest>,
    ) -> Result<Response<pb::CreateCashMovementResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim(
            "CreateCashMovement",
            &message.idempotency_key,
            &message,
            |m| {
                m.idempotency_key.clear();
            },
        )?;
        let movement = self
            .execution
            .create_cash_movement(
                &context,
                &message.account_id,
                movement_kind_from_wire(message.r#type),
                &message.amount,
                claim,
            )
            .await?
            .into_inner();
        Ok(Response::new(pb::CreateCashMovementResponse {
            cash_movement: Some(movement_to_wire(&movement)),
        }))
    }

    async fn list_cash_movements(
        &self,
        request: Request<pb::ListCashMovementsRequest>,
    ) -> Result<Response<pb::ListCashMovementsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let mut violations = Violations::new();
        let status = match message.status {
            0 => None,
            value => movement_status_from_wire(value).or_else(|| {
                violations.add("status", "is not a known cash movement status");
                None
            }),
        };
        let kind = match message.r#type {
            0 => None,
            value => movement_kind_from_wire(value).or_else(|| {
                violations.add("type", "is not a known cash movement type");
                None
            }),
        };
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let filter = CashMovementFilter {
            account_id: Some(message.account_id).filter(|id| !id.is_empty()),
            status,
            kind,
        };
        let movements = self
            .execution
            .list_cash_movements(&context, &filter, &page.fetch())
            .await?;
        let (movements, next_page_token) = page.finish(movements, |m| m.id.clone());
        Ok(Response::new(pb::ListCashMovementsResponse {
            cash_movements: movements.iter().map(movement_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn acknowledge_cash_movement(
        &self,
        request: Request<pb::AcknowledgeCashMovementRequest>,
    ) -> Result<Response<pb::AcknowledgeCashMovementResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let run_id = Some(message.run_id).filter(|id| !id.is_empty());
        let movement = self
            .execution
            .cash_action(
                &context,
                &message.cash_movement_id,
                CashAction::Acknowledge,
                run_id,
            )
            .await?;
        Ok(Response::new(pb::AcknowledgeCashMovementResponse {
            cash_movement: Some(movement_to_wire(&movement)),
        }))
    }

    async fn settle_cash_movement(
        &self,
        request: Request<pb::SettleCashMovementRequest>,
    ) -> Result<Response<pb::SettleCashMovementResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let movement = self
            .execution
            .cash_action(
                &context,
                &message.cash_movement_id,
                CashAction::Settle,
                None,
            )
            .await?;
        Ok(Response::new(pb::SettleCashMovementResponse {
            cash_movement: Some(movement_to_wire(&movement)),
        }))
    }

    async fn cancel_cash_movement(
        &self,
        request: Request<pb::CancelCashMovementRequest>,
    ) -> Result<Response<pb::CancelCashMovementResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let movement = self
            .execution
            .cash_action(
                &context,
                &message.cash_movement_id,
                CashAction::Cancel,
                None,
            )
            .await?;
        Ok(Response::new(pb::CancelCashMovementResponse {
            cash_movement: Some(movement_to_wire(&movement)),
        }))
    }

    async fn get_holdings(
        &self,
        request: Request<pb::GetHoldingsRequest>,
    ) -> Result<Response<pb::GetHoldingsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("account_id", &message.account_id)?;
        let view = self
            .execution
            .holdings(&context, &message.account_id)
            .await?;
        let open_run = self
            .execution
            .open_run_id(&context, &message.account_id)
            .await?;
        Ok(Response::new(pb::GetHoldingsResponse {
            holdings: Some(holdings_to_wire(
                &view,
                open_run.as_deref(),
                self.execution.clock().now(),
            )),
            equity: rebalancer_kit::wire::money_text(view.valuation.equity),
        }))
    }

    async fn stream_holdings(
        &self,
        request: Request<pb::StreamHoldingsRequest>,
    ) -> Result<Response<HoldingsStream>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let batch = match message.batch_size {
            0 => DEFAULT_BATCH,
            n if n < 0 => return Err(invalid_field("batch_size", "must be 0 or more")),
            n => n.unsigned_abs().min(MAX_BATCH),
        };
        let range = HoldingsRange {
            after: Some(message.after_account_id).filter(|id| !id.is_empty()),
            before: Some(message.before_account_id).filter(|id| !id.is_empty()),
            account_ids: message.account_ids,
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let execution = self.execution.clone();
        tokio::spawn(async move {
            let mut range = range;
            let mut explicit = std::mem::take(&mut range.account_ids);
            explicit.sort();
            explicit.dedup();
            loop {
                let chunk = if explicit.is_empty() {
                    Vec::new()
                } else {
                    explicit
                        .drain(..explicit.len().min(batch as usize))
                        .collect()
                };
                let listing_all = chunk.is_empty();
                let batch_range = HoldingsRange {
                    account_ids: chunk,
                    ..range.clone()
                };
                let records = match execution
                    .holdings_batch(&context, &batch_range, batch)
                    .await
                {
                    Ok(records) => records,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let as_of = execution.clock().now();
                let done = if listing_all {
                    records.len() < batch as usize
                } else {
                    explicit.is_empty()
                };
                if let Some(last) = records.last()
                    && listing_all
                {
                    range.after = Some(last.account.id.clone());
                }
                if !records.is_empty() {
                    let message = pb::StreamHoldingsResponse {
                        holdings: records
                            .iter()
                            .map(|record| stream_holdings_to_wire(record, as_of))
                            .collect(),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return; // the client went away
                    }
                }
                if done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn reconcile_accounts(
        &self,
        request: Request<pb::ReconcileAccountsRequest>,
    ) -> Result<Response<pb::ReconcileAccountsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let claim = required_claim(
            "ReconcileAccounts",
            &message.idempotency_key,
            &message,
            |m| {
                m.idempotency_key.clear();
            },
        )?;
        let as_of = match &message.as_of {
            None => None,
            Some(as_of) => {
                Some(datetime(as_of).ok_or_else(|| invalid_field("as_of", "is not a valid time"))?)
            }
        };
        let (recorded, breaks) = self
            .execution
            .reconcile_accounts(
                &context,
                &message.statement_csv,
                as_of,
                &message.source,
                claim,
            )
            .await?;
        Ok(Response::new(pb::ReconcileAccountsResponse {
            reconciliation: Some(reconciliation_to_wire(&recorded.into_inner())),
            breaks: breaks.iter().map(reconciliation_break_to_wire).collect(),
        }))
    }

    async fn list_reconciliation_breaks(
        &self,
        request: Request<pb::ListReconciliationBreaksRequest>,
    ) -> Result<Response<pb::ListReconciliationBreaksResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let filter = BreakFilter {
            account_id: (!message.account_id.is_empty()).then(|| message.account_id.clone()),
            include_cleared: message.include_cleared,
        };
        let breaks = self
            .execution
            .list_reconciliation_breaks(&context, &filter, &page.fetch())
            .await?;
        let (breaks, next_page_token) = page.finish(breaks, |found| found.id.clone());
        Ok(Response::new(pb::ListReconciliationBreaksResponse {
            breaks: breaks.iter().map(reconciliation_break_to_wire).collect(),
            next_page_token,
        }))
    }
}

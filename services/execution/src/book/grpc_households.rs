//! The household and identical-securities RPCs of `AccountService`; the
//! trait methods in `grpc.rs` delegate here.

use rebalancer_domain::household::HouseholdInput;
use rebalancer_domain::portfolio::Weight;
use rebalancer_kit::RequestContext;
use rebalancer_kit::page::Page;
use rebalancer_kit::wire::{decimal_text, money_text, timestamp, weight_input};
use rebalancer_proto::common;
use rebalancer_proto::execution as pb;
use tonic::{Request, Response, Status};

use crate::book::app_households::HouseholdView;
use crate::book::convert::{tax_status_of, tax_status_to_wire};
use crate::book::households::HouseholdRecord;
use crate::grpc::{ExecutionApi, required};

/// A located or model weight on the wire.
pub(crate) fn weight_to_wire(weight: &Weight) -> common::Weight {
    common::Weight {
        r#type: if weight.symbol().is_some() {
            common::WeightType::Asset
        } else {
            common::WeightType::Cash
        }
        .into(),
        symbol: weight.symbol().map(ToString::to_string).unwrap_or_default(),
        percent: decimal_text(weight.percent),
        portfolio_id: String::new(),
    }
}

fn household_to_wire(record: &HouseholdRecord) -> pb::Household {
    let household = &record.household;
    pb::Household {
        id: household.id.clone(),
        name: household.name.clone(),
        account_ids: household.account_ids.clone(),
        weights: household.weights.iter().map(weight_to_wire).collect(),
        tax_inefficient_symbols: household
            .tax_inefficient_symbols
            .iter()
            .map(ToString::to_string)
            .collect(),
        etag: format!("r{}", record.revision),
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
    }
}

fn view_to_wire(view: &HouseholdView) -> pb::GetHouseholdResponse {
    pb::GetHouseholdResponse {
        household: Some(household_to_wire(&view.record)),
        members: view
            .members
            .iter()
            .map(|member| pb::HouseholdMember {
                account_id: member.account_id.clone(),
                tax_status: tax_status_to_wire(tax_status_of(member.tax_status)).into(),
                value: money_text(member.value),
                located_weights: member.located.iter().map(weight_to_wire).collect(),
            })
            .collect(),
        drift: view
            .drift
            .iter()
            .map(|line| pb::TickerDrift {
                symbol: line.symbol.clone().unwrap_or_default(),
                target_weight: decimal_text(line.target_weight),
                current_weight: decimal_text(line.current_weight),
                drift: decimal_text(line.current_weight - line.target_weight),
                current_value: money_text(line.current_value),
                ..pb::TickerDrift::default()
            })
            .collect(),
        equity: money_text(view.equity),
    }
}

fn groups_to_wire(groups: Vec<Vec<String>>) -> Vec<pb::IdenticalSecurities> {
    groups
        .into_iter()
        .map(|symbols| pb::IdenticalSecurities { symbols })
        .collect()
}

impl ExecutionApi {
    pub(super) async fn upsert_household_rpc(
        &self,
        request: Request<pb::UpsertHouseholdRequest>,
    ) -> Result<Response<pb::UpsertHouseholdResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let input = HouseholdInput {
            id: message.household_id,
            name: message.name,
            account_ids: message.account_ids,
            weights: message.weights.iter().map(weight_input).collect(),
            tax_inefficient_symbols: message.tax_inefficient_symbols,
        };
        let (record, created) = self
            .execution
            .upsert_household(&context, input, &message.etag)
            .await?;
        Ok(Response::new(pb::UpsertHouseholdResponse {
            household: Some(household_to_wire(&record)),
            created,
        }))
    }

    pub(super) async fn get_household_rpc(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::GetHouseholdResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        required("household_id", &message.household_id)?;
        let view = self
            .execution
            .household(&context, &message.household_id)
            .await?;
        Ok(Response::new(view_to_wire(&view)))
    }

    pub(super) async fn list_households_rpc(
        &self,
        request: Request<pb::ListHouseholdsRequest>,
    ) -> Result<Response<pb::ListHouseholdsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let page = Page::from_request(message.page_size, &message.page_token)?;
        let records = self
            .execution
            .list_households(&context, &page.fetch())
            .await?;
        let (records, next_page_token) = page.finish(records, |record| record.household.id.clone());
        Ok(Response::new(pb::ListHouseholdsResponse {
            households: records.iter().map(household_to_wire).collect(),
            next_page_token,
        }))
    }

    pub(super) async fn set_identical_securities_rpc(
        &self,
        request: Request<pb::SetIdenticalSecuritiesRequest>,
    ) -> Result<Response<pb::SetIdenticalSecuritiesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let groups = request
            .into_inner()
            .groups
            .into_iter()
            .map(|group| group.symbols)
            .collect();
        let groups = self
            .execution
            .set_identical_securities(&context, groups)
            .await?;
        Ok(Response::new(pb::SetIdenticalSecuritiesResponse {
            groups: groups_to_wire(groups),
        }))
    }

    pub(super) async fn get_identical_securities_rpc(
        &self,
        request: Request<pb::GetIdenticalSecuritiesRequest>,
    ) -> Result<Response<pb::GetIdenticalSecuritiesResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let groups = self.execution.identical_securities(&context).await?;
        Ok(Response::new(pb::GetIdenticalSecuritiesResponse {
            groups: groups_to_wire(groups),
        }))
    }
}

//! The statements portfolio storage shares: version rows, weights and
//! conditions, headers, and decoding rows.

use chrono::{DateTime, Utc};
use rebalancer_domain::Symbol;
use rebalancer_domain::portfolio::{
    AssetRule, BandKind, ConditionSubKind, DriftBand, OrderSizing, PortfolioStatus,
    RebalanceCondition, RebalanceTo, Scope, TargetSpec, Weight, WeightTarget, calendar_rule,
};
use rebalancer_kit::db::{Dec, claimed_id};
use sqlx::Row;

use super::SqlStore;
use crate::store::{IdempotencyClaim, PortfolioRecord, PortfolioStore, StoreError};

pub(super) const PORTFOLIO_COLUMNS: &str = "id, name, description, status, status_reason, scope, account_id, \
     current_version, revision, created_at, updated_at";

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// The portfolio a claimed key created, or the mismatch error.
    pub(super) async fn replay(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<PortfolioRecord>, StoreError> {
        match claimed_id::<DB>(self.pool(), tenant, claim).await? {
            Some(id) => self.get_portfolio(tenant, &id, None).await,
            None => Ok(None),
        }
    }

    /// Writes one immutable version: its settings, weights and conditions.
    pub(super) async fn insert_version(
        conn: &mut DB::Connection,
        tenant: &str,
        portfolio_id: &str,
        version: i64,
        target: &TargetSpec,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO portfolio_versions (tenant_id, portfolio_id, version, cooldown_days, order_sizing, \
             invest_cash_threshold, minimum_order_notional, investment_minimum, created_at, created_by, \
             rebalance_to, asset_rules) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .bind(version)
        .bind(i32::try_from(target.cooldown_days).unwrap_or(i32::MAX))
        .bind(target.order_sizing.as_str().to_owned())
        .bind(Dec(target.invest_cash_threshold))
        .bind(Dec(target.minimum_order_notional))
        .bind(Dec(target.investment_minimum))
        .bind(now)
        .bind(actor.to_owned())
        .bind(target.rebalance_to.as_str().to_owned())
        .bind(asset_rules_text(&target.asset_rules)?)
        .execute(&mut *conn)
        .await?;
        for (position, weight) in (0_i32..).zip(&target.weights) {
            let (kind, symbol, sleeve_id) = match &weight.target {
                WeightTarget::Cash => ("cash", None, None),
                WeightTarget::Asset(symbol) => ("asset", Some(symbol.to_string()), None),
                WeightTarget::Portfolio(id) => ("portfolio", None, Some(id.clone())),
            };
            sqlx::query(
                "INSERT INTO portfolio_weights (tenant_id, portfolio_id, version, position, kind, symbol, \
                 sleeve_id, percent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant.to_owned())
            .bind(portfolio_id.to_owned())
            .bind(version)
            .bind(position)
            .bind(kind.to_owned())
            .bind(symbol)
            .bind(sleeve_id)
            .bind(Dec(weight.percent))
            .execute(&mut *conn)
            .await?;
        }
        for (position, condition) in (0_i32..).zip(&target.conditions) {
            let (kind, sub_kind, percent, day, symbol) = match condition {
                RebalanceCondition::DriftBand(band) => (
                    "drift_band",
                    band.kind.as_str(),
                    Some(Dec(band.percent)),
                    None,
                    band.symbol.as_ref().map(ToString::to_string),
                ),
                RebalanceCondition::Calendar(rule) | RebalanceCondition::Review(rule) => (
                    "calendar",
                    rule.sub_kind().as_str(),
                    None,
                    Some(rule.day_text()),
                    None,
                ),
            };
            let only_outside_bands = matches!(condition, RebalanceCondition::Review(_));
            sqlx::query(
                "INSERT INTO portfolio_conditions (tenant_id, portfolio_id, version, position, kind, sub_kind, \
                 percent, day, symbol, only_outside_bands) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(tenant.to_owned())
            .bind(portfolio_id.to_owned())
            .bind(version)
            .bind(position)
            .bind(kind.to_owned())
            .bind(sub_kind.to_owned())
            .bind(percent)
            .bind(day)
            .bind(symbol)
            .bind(only_outside_bands)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Reads one version of a portfolio; `None` when it does not exist.
    pub(super) async fn load_target(
        conn: &mut DB::Connection,
        tenant: &str,
        portfolio_id: &str,
        version: i64,
    ) -> Result<Option<(TargetSpec, DateTime<Utc>, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT cooldown_days, order_sizing, invest_cash_threshold, minimum_order_notional, \
             investment_minimum, created_at, created_by, rebalance_to, asset_rules FROM portfolio_versions \
             WHERE tenant_id = $1 AND portfolio_id = $2 AND version = $3",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let order_sizing: String = row.try_get("order_sizing")?;
        let cooldown_days: i32 = row.try_get("cooldown_days")?;
        let invest_cash_threshold: Dec = row.try_get("invest_cash_threshold")?;
        let minimum_order_notional: Dec = row.try_get("minimum_order_notional")?;
        let investment_minimum: Dec = row.try_get("investment_minimum")?;
        let rebalance_to_text: String = row.try_get("rebalance_to")?;
        let asset_rules_stored: String = row.try_get("asset_rules")?;
        let rebalance_to = RebalanceTo::parse(&rebalance_to_text)
            .ok_or_else(|| StoreError::Corrupt(format!("rebalance to {rebalance_to_text:?}")))?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let created_by: String = row.try_get("created_by")?;

        let weight_rows = sqlx::query(
            "SELECT kind, symbol, sleeve_id, percent FROM portfolio_weights \
             WHERE tenant_id = $1 AND portfolio_id = $2 AND version = $3 ORDER BY position",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        let mut weights = Vec::with_capacity(weight_rows.len());
        for row in &weight_rows {
            let kind: String = row.try_get("kind")?;
            let percent: Dec = row.try_get("percent")?;
            let target = match kind.as_str() {
                "cash" => WeightTarget::Cash,
                "asset" => {
                    let symbol: Option<String> = row.try_get("symbol")?;
                    let symbol = symbol.unwrap_or_default();
                    WeightTarget::Asset(
                        Symbol::parse(&symbol)
                            .map_err(|_| StoreError::Corrupt(format!("symbol {symbol:?}")))?,
                    )
                }
                "portfolio" => {
                    let sleeve: Option<String> = row.try_get("sleeve_id")?;
                    WeightTarget::Portfolio(sleeve.unwrap_or_default())
                }
                other => return Err(StoreError::Corrupt(format!("weight kind {other:?}"))),
            };
            weights.push(Weight {
                target,
                percent: percent.0,
            });
        }

        let condition_rows = sqlx::query(
            "SELECT kind, sub_kind, percent, day, symbol, only_outside_bands FROM portfolio_conditions \
             WHERE tenant_id = $1 AND portfolio_id = $2 AND version = $3 ORDER BY position",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        let mut conditions = Vec::with_capacity(condition_rows.len());
        for row in &condition_rows {
            conditions.push(condition_from_row(row)?);
        }
        let target = TargetSpec {
            weights,
            conditions,
            cooldown_days: u32::try_from(cooldown_days).unwrap_or(0),
            order_sizing: OrderSizing::parse(&order_sizing)
                .ok_or_else(|| StoreError::Corrupt(format!("order sizing {order_sizing:?}")))?,
            invest_cash_threshold: invest_cash_threshold.0,
            minimum_order_notional: minimum_order_notional.0,
            investment_minimum: investment_minimum.0,
            rebalance_to,
            asset_rules: parse_asset_rules(&asset_rules_stored)?,
        };
        Ok(Some((target, created_at, created_by)))
    }
}

#[rebalancer_kit::sql_row]
pub(super) fn condition_from_row<R>(row: &R) -> Result<RebalanceCondition, StoreError> {
    let kind: String = row.try_get("kind")?;
    let sub_kind_text: String = row.try_get("sub_kind")?;
    let sub_kind = ConditionSubKind::parse(&sub_kind_text)
        .ok_or_else(|| StoreError::Corrupt(format!("condition sub kind {sub_kind_text:?}")))?;
    match kind.as_str() {
        "drift_band" => {
            let percent: Option<Dec> = row.try_get("percent")?;
            let symbol: Option<String> = row.try_get("symbol")?;
            let band_kind = match sub_kind {
                ConditionSubKind::Absolute => BandKind::Absolute,
                ConditionSubKind::Relative => BandKind::Relative,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "drift band sub kind {other:?}"
                    )));
                }
            };
            let symbol = match symbol {
                Some(symbol) => Some(
                    Symbol::parse(&symbol)
                        .map_err(|_| StoreError::Corrupt(format!("symbol {symbol:?}")))?,
                ),
                None => None,
            };
            Ok(RebalanceCondition::DriftBand(DriftBand {
                kind: band_kind,
                percent: percent.map(|p| p.0).unwrap_or_default(),
                symbol,
            }))
        }
        "calendar" => {
            let day: Option<String> = row.try_get("day")?;
            let day = day.unwrap_or_default();
            let only_outside_bands: bool = row.try_get("only_outside_bands")?;
            calendar_rule(sub_kind, &day)
                .map(if only_outside_bands {
                    RebalanceCondition::Review
                } else {
                    RebalanceCondition::Calendar
                })
                .ok_or_else(|| StoreError::Corrupt(format!("calendar day {day:?}")))
        }
        other => Err(StoreError::Corrupt(format!("condition kind {other:?}"))),
    }
}

/// Per-asset rules as stored: JSON, '' for none.
fn asset_rules_text(rules: &[AssetRule]) -> Result<String, StoreError> {
    if rules.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(rules)
        .map_err(|error| StoreError::Corrupt(format!("asset rules: {error}")))
}

fn parse_asset_rules(text: &str) -> Result<Vec<AssetRule>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("asset rules: {error}")))
}

/// Escapes LIKE wildcards in user text (with `ESCAPE '\'`).
pub(super) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The columns of a `portfolios` row.
pub(super) struct PortfolioHeader {
    pub(super) id: String,
    name: String,
    description: String,
    status: PortfolioStatus,
    status_reason: String,
    scope: Scope,
    account_id: Option<String>,
    pub(super) current_version: i64,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PortfolioHeader {
    #[rebalancer_kit::sql_row]
    pub(super) fn from_row<R>(row: &R) -> Result<Self, StoreError> {
        let status: String = row.try_get("status")?;
        let scope: String = row.try_get("scope")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            status: PortfolioStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("portfolio status {status:?}")))?,
            status_reason: row.try_get("status_reason")?,
            scope: Scope::parse(&scope)
                .ok_or_else(|| StoreError::Corrupt(format!("portfolio scope {scope:?}")))?,
            account_id: row.try_get("account_id")?,
            current_version: row.try_get("current_version")?,
            revision: row.try_get("revision")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub(super) fn into_record(
        self,
        version: i64,
        target: TargetSpec,
        version_created_at: DateTime<Utc>,
    ) -> PortfolioRecord {
        PortfolioRecord {
            id: self.id,
            name: self.name,
            description: self.description,
            status: self.status,
            status_reason: self.status_reason,
            scope: self.scope,
            account_id: self.account_id,
            revision: self.revision,
            version,
            current_version: self.current_version,
            target,
            version_created_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

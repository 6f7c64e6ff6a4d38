//! Model portfolios and their immutable versions.

use chrono::{DateTime, Utc};
use rebalancer_domain::Symbol;
use rebalancer_domain::portfolio::{
    BandKind, ConditionSubKind, DriftBand, OrderSizing, PortfolioStatus, RebalanceCondition, Scope,
    TargetSpec, Weight, WeightTarget, calendar_rule,
};
use rebalancer_kit::db::{DbErrorKind, Dec, classify, find_claimed, insert_claim};
use sqlx::{ColumnIndex, Decode, QueryBuilder, Row, Type};

use super::SqlStore;
use crate::store::{
    AuditEntry, Created, IdempotencyClaim, NewPortfolio, PageRequest, PortfolioFilter,
    PortfolioRecord, PortfolioStore, PortfolioUpdate, StoreError, VersionRecord,
};

const PORTFOLIO_COLUMNS: &str = "id, name, description, status, status_reason, scope, account_id, \
     current_version, revision, created_at, updated_at";

#[rebalancer_kit::sql_store]
#[tonic::async_trait]
impl PortfolioStore for SqlStore<DB> {
    async fn create_portfolio(
        &self,
        tenant: &str,
        portfolio: NewPortfolio,
        claim: Option<IdempotencyClaim>,
        audit: AuditEntry,
    ) -> Result<Created<PortfolioRecord>, StoreError> {
        if let Some(claim) = &claim
            && let Some(existing) = self.replay(tenant, claim).await?
        {
            return Ok(Created::Replayed(existing));
        }
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        if let Some(claim) = &claim
            && let Err(error) =
                insert_claim::<DB>(&mut tx, tenant, claim, &portfolio.id, portfolio.now).await
        {
            // A concurrent create with the same key committed first: replay it.
            drop(tx);
            if classify(&error) == DbErrorKind::UniqueViolation
                && let Some(existing) = self.replay(tenant, claim).await?
            {
                return Ok(Created::Replayed(existing));
            }
            return Err(error.into());
        }
        let spec = &portfolio.spec;
        let inserted = sqlx::query(
            "INSERT INTO portfolios (tenant_id, id, name, description, status, status_reason, scope, \
             account_id, current_version, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', '', $5, $6, 1, 1, $7, $7)",
        )
        .bind(tenant.to_owned())
        .bind(portfolio.id.clone())
        .bind(spec.name.clone())
        .bind(spec.description.clone())
        .bind(spec.scope.as_str().to_owned())
        .bind(spec.account_id.clone())
        .bind(portfolio.now)
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            if classify(&error) == DbErrorKind::UniqueViolation {
                return Err(StoreError::Conflict(format!(
                    "a portfolio named {:?} already exists",
                    spec.name
                )));
            }
            return Err(error.into());
        }
        Self::insert_version(
            &mut tx,
            tenant,
            &portfolio.id,
            1,
            &spec.target,
            portfolio.now,
            &audit.actor,
        )
        .await?;
        Self::insert_audit(
            &mut tx,
            tenant,
            "portfolio",
            &portfolio.id,
            &audit,
            portfolio.now,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::New(PortfolioRecord {
            id: portfolio.id,
            name: spec.name.clone(),
            description: spec.description.clone(),
            status: PortfolioStatus::Active,
            status_reason: String::new(),
            scope: spec.scope,
            account_id: spec.account_id.clone(),
            revision: 1,
            version: 1,
            current_version: 1,
            target: spec.target.clone(),
            version_created_at: portfolio.now,
            created_at: portfolio.now,
            updated_at: portfolio.now,
        }))
    }

    async fn get_portfolio(
        &self,
        tenant: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<PortfolioRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let sql =
            format!("SELECT {PORTFOLIO_COLUMNS} FROM portfolios WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let header = PortfolioHeader::from_row(&row)?;
        let version = version.unwrap_or(header.current_version);
        let Some((target, version_created_at, _)) =
            Self::load_target(&mut conn, tenant, id, version).await?
        else {
            return Ok(None);
        };
        Ok(Some(header.into_record(
            version,
            target,
            version_created_at,
        )))
    }

    async fn list_portfolios(
        &self,
        tenant: &str,
        filter: &PortfolioFilter,
        page: &PageRequest,
    ) -> Result<Vec<PortfolioRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {PORTFOLIO_COLUMNS} FROM portfolios p WHERE tenant_id = "
        ));
        query.push_bind(tenant.to_owned());
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after.clone());
        }
        if let Some(name) = &filter.name_contains {
            query
                .push(format!(" AND name {} ", DB::ILIKE))
                .push_bind(format!("%{}%", escape_like(name)))
                .push(" ESCAPE '\\'");
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_str().to_owned());
        }
        if let Some(scope) = filter.scope {
            query
                .push(" AND scope = ")
                .push_bind(scope.as_str().to_owned());
        }
        if let Some(account_id) = &filter.account_id {
            query
                .push(" AND account_id = ")
                .push_bind(account_id.clone());
        }
        if let Some(symbol) = &filter.symbol {
            query
                .push(
                    " AND EXISTS (SELECT 1 FROM portfolio_weights w WHERE w.tenant_id = p.tenant_id \
                     AND w.portfolio_id = p.id AND w.version = p.current_version AND w.symbol = ",
                )
                .push_bind(symbol.clone())
                .push(")");
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = query.build().fetch_all(&mut *conn).await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let header = PortfolioHeader::from_row(row)?;
            let version = header.current_version;
            let (target, version_created_at, _) =
                Self::load_target(&mut conn, tenant, &header.id, version)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "portfolio {} has no version {version}",
                            header.id
                        ))
                    })?;
            records.push(header.into_record(version, target, version_created_at));
        }
        Ok(records)
    }

    async fn update_portfolio(
        &self,
        tenant: &str,
        update: PortfolioUpdate,
        audit: AuditEntry,
    ) -> Result<PortfolioRecord, StoreError> {
        let mut tx = self.pool().begin_with(DB::BEGIN_WRITE).await?;
        // Bump the revision only if it is still the expected one: this takes
        // the row's lock and detects concurrent changes in one statement.
        let locked = sqlx::query(
            "UPDATE portfolios SET revision = revision + 1, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND revision = $3 RETURNING current_version",
        )
        .bind(tenant.to_owned())
        .bind(update.id.clone())
        .bind(update.expected_revision)
        .bind(update.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = locked else {
            drop(tx);
            return Err(match self.get_portfolio(tenant, &update.id, None).await? {
                None => StoreError::NotFound(format!("portfolio {} not found", update.id)),
                Some(current) => StoreError::StaleRevision(format!(
                    "portfolio {} changed since etag r{} (now r{})",
                    update.id, update.expected_revision, current.revision
                )),
            });
        };
        let current_version: i64 = row.try_get("current_version")?;
        if let Some(name) = &update.name {
            let renamed =
                sqlx::query("UPDATE portfolios SET name = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_owned())
                    .bind(update.id.clone())
                    .bind(name.clone())
                    .execute(&mut *tx)
                    .await;
            if let Err(error) = renamed {
                if classify(&error) == DbErrorKind::UniqueViolation {
                    return Err(StoreError::Conflict(format!(
                        "a portfolio named {name:?} already exists"
                    )));
                }
                return Err(error.into());
            }
        }
        if let Some(description) = &update.description {
            sqlx::query("UPDATE portfolios SET description = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_owned())
                .bind(update.id.clone())
                .bind(description.clone())
                .execute(&mut *tx)
                .await?;
        }
        if let Some((status, reason)) = &update.status {
            sqlx::query("UPDATE portfolios SET status = $3, status_reason = $4 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_owned())
                .bind(update.id.clone())
                .bind(status.as_str().to_owned())
                .bind(reason.clone())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(target) = &update.target {
            let version = current_version + 1;
            Self::insert_version(
                &mut tx,
                tenant,
                &update.id,
                version,
                target,
                update.now,
                &audit.actor,
            )
            .await?;
            sqlx::query(
                "UPDATE portfolios SET current_version = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.to_owned())
            .bind(update.id.clone())
            .bind(version)
            .execute(&mut *tx)
            .await?;
            if !update.due_portfolios.is_empty() {
                let mut due =
                    QueryBuilder::<DB>::new("UPDATE assignments SET target_changed_at = ");
                due.push_bind(update.now)
                    .push(" WHERE tenant_id = ")
                    .push_bind(tenant.to_owned())
                    .push(" AND status = 'active' AND portfolio_id IN (");
                let mut ids = due.separated(", ");
                for id in &update.due_portfolios {
                    ids.push_bind(id.clone());
                }
                due.push(")");
                due.build().execute(&mut *tx).await?;
            }
        }
        Self::insert_audit(&mut tx, tenant, "portfolio", &update.id, &audit, update.now).await?;
        tx.commit().await?;
        self.get_portfolio(tenant, &update.id, None)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("portfolio {} vanished", update.id)))
    }

    async fn list_versions(
        &self,
        tenant: &str,
        portfolio_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT version FROM portfolio_versions WHERE tenant_id = $1 AND portfolio_id = $2 AND version < $3 \
             ORDER BY version DESC LIMIT $4",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .bind(after.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            let version: i64 = row.try_get("version")?;
            let (target, created_at, created_by) =
                Self::load_target(&mut conn, tenant, portfolio_id, version)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("portfolio {portfolio_id} version {version}"))
                    })?;
            versions.push(VersionRecord {
                portfolio_id: portfolio_id.to_owned(),
                version,
                target,
                created_at,
                created_by,
            });
        }
        Ok(versions)
    }

    async fn parents(&self, tenant: &str, portfolio_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.id FROM portfolios p JOIN portfolio_weights w ON w.tenant_id = p.tenant_id \
             AND w.portfolio_id = p.id AND w.version = p.current_version \
             WHERE p.tenant_id = $1 AND w.sleeve_id = $2 AND p.status <> 'inactive' ORDER BY p.id",
        )
        .bind(tenant.to_owned())
        .bind(portfolio_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    async fn portfolios_holding(
        &self,
        tenant: &str,
        symbol: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.id FROM portfolios p JOIN portfolio_weights w ON w.tenant_id = p.tenant_id \
             AND w.portfolio_id = p.id AND w.version = p.current_version \
             WHERE p.tenant_id = $1 AND w.symbol = $2 AND p.status = 'active' ORDER BY p.id",
        )
        .bind(tenant.to_owned())
        .bind(symbol.to_owned())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }
}

#[rebalancer_kit::sql_store]
impl SqlStore<DB> {
    /// The portfolio a claimed key created, or the mismatch error.
    async fn replay(
        &self,
        tenant: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<PortfolioRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        match find_claimed::<DB>(&mut conn, tenant, claim).await? {
            Some(id) => self.get_portfolio(tenant, &id, None).await,
            None => Ok(None),
        }
    }

    /// Writes one immutable version: its settings, weights and conditions.
    async fn insert_version(
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
             invest_cash_threshold, minimum_order_notional, investment_minimum, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                RebalanceCondition::Calendar(rule) => (
                    "calendar",
                    rule.sub_kind().as_str(),
                    None,
                    Some(rule.day_text()),
                    None,
                ),
            };
            sqlx::query(
                "INSERT INTO portfolio_conditions (tenant_id, portfolio_id, version, position, kind, sub_kind, \
                 percent, day, symbol) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Reads one version of a portfolio; `None` when it does not exist.
    async fn load_target(
        conn: &mut DB::Connection,
        tenant: &str,
        portfolio_id: &str,
        version: i64,
    ) -> Result<Option<(TargetSpec, DateTime<Utc>, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT cooldown_days, order_sizing, invest_cash_threshold, minimum_order_notional, \
             investment_minimum, created_at, created_by FROM portfolio_versions \
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
            "SELECT kind, sub_kind, percent, day, symbol FROM portfolio_conditions \
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
        };
        Ok(Some((target, created_at, created_by)))
    }
}

fn condition_from_row<R>(row: &R) -> Result<RebalanceCondition, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> Dec: Decode<'a, R::Database> + Type<R::Database>,
{
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
            calendar_rule(sub_kind, &day)
                .map(RebalanceCondition::Calendar)
                .ok_or_else(|| StoreError::Corrupt(format!("calendar day {day:?}")))
        }
        other => Err(StoreError::Corrupt(format!("condition kind {other:?}"))),
    }
}

/// Escapes LIKE wildcards in user text (with `ESCAPE '\'`).
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The columns of a `portfolios` row.
struct PortfolioHeader {
    id: String,
    name: String,
    description: String,
    status: PortfolioStatus,
    status_reason: String,
    scope: Scope,
    account_id: Option<String>,
    current_version: i64,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PortfolioHeader {
    fn from_row<R>(row: &R) -> Result<Self, StoreError>
    where
        R: Row,
        for<'a> &'a str: ColumnIndex<R>,
        for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
        for<'a> i64: Decode<'a, R::Database> + Type<R::Database>,
        for<'a> DateTime<Utc>: Decode<'a, R::Database> + Type<R::Database>,
    {
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

    fn into_record(
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

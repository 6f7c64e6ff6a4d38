//! Model portfolios and their immutable versions.

use rebalancer_domain::portfolio::PortfolioStatus;
use rebalancer_kit::db::{DbErrorKind, classify, insert_claim};
use sqlx::{QueryBuilder, Row};

use super::SqlStore;
use crate::store::{
    AuditEntry, Created, IdempotencyClaim, NewPortfolio, PageRequest, PortfolioFilter,
    PortfolioRecord, PortfolioStore, PortfolioUpdate, StoreError, VersionRecord,
};

use super::portfolio_rows::{PORTFOLIO_COLUMNS, PortfolioHeader, escape_like};

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

//! Resolving targets: gathering a portfolio and its sleeves (to any depth),
//! flattening them into symbol weights, and walking the sleeve graph both
//! ways (descendants for cycle checks, ancestors for changes that ripple up).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rebalancer_domain::sleeves::{self, Resolved, SleeveNode};
use rebalancer_kit::RequestContext;

use super::Target;
use crate::error::TargetError;
use crate::store::PortfolioRecord;

/// Most portfolios one target may be built from.
const MAX_NODES: usize = 256;

/// A portfolio with its flattened weights.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    pub portfolio: PortfolioRecord,
    pub resolved: Resolved,
}

/// Resolved targets by portfolio id, shared by the assignments of one stream.
pub type TargetCache = HashMap<String, Arc<ResolvedTarget>>;

impl Target {
    /// Flattens a portfolio (at `version`, or its current one; sleeves at
    /// their current versions).
    ///
    /// # Errors
    /// `NotFound` when the portfolio or a sleeve is missing; `FailedPrecondition` for a cycle.
    pub async fn resolve(
        &self,
        context: &RequestContext,
        portfolio_id: &str,
        version: Option<i64>,
    ) -> Result<ResolvedTarget, TargetError> {
        let root = self
            .store
            .get_portfolio(&context.tenant, portfolio_id, version)
            .await?
            .ok_or_else(|| TargetError::NotFound(format!("portfolio {portfolio_id} not found")))?;
        let mut nodes = HashMap::new();
        let mut queue: Vec<String> = root.target.sleeve_ids().map(str::to_owned).collect();
        nodes.insert(
            root.id.clone(),
            SleeveNode {
                version: root.version,
                target: root.target.clone(),
            },
        );
        while let Some(id) = queue.pop() {
            if nodes.contains_key(&id) {
                continue;
            }
            if nodes.len() >= MAX_NODES {
                return Err(TargetError::FailedPrecondition(format!(
                    "portfolio {portfolio_id} is built from more than {MAX_NODES} portfolios"
                )));
            }
            let Some(sleeve) = self.store.get_portfolio(&context.tenant, &id, None).await? else {
                return Err(TargetError::NotFound(format!(
                    "sleeve portfolio {id} not found"
                )));
            };
            queue.extend(sleeve.target.sleeve_ids().map(str::to_owned));
            nodes.insert(
                id,
                SleeveNode {
                    version: sleeve.version,
                    target: sleeve.target,
                },
            );
        }
        let resolved = sleeves::resolve(&root.id, &nodes).map_err(|error| match error {
            sleeves::ResolveError::Missing(id) => {
                TargetError::NotFound(format!("sleeve portfolio {id} not found"))
            }
            cycle @ sleeves::ResolveError::Cycle(_) => {
                TargetError::FailedPrecondition(cycle.to_string())
            }
        })?;
        Ok(ResolvedTarget {
            portfolio: root,
            resolved,
        })
    }

    /// Every portfolio reachable from `ids` through sleeves (current versions), `ids` included.
    pub(crate) async fn descendants(
        &self,
        context: &RequestContext,
        ids: &[String],
    ) -> Result<HashSet<String>, TargetError> {
        let mut seen: HashSet<String> = ids.iter().cloned().collect();
        let mut queue: Vec<String> = ids.to_vec();
        while let Some(id) = queue.pop() {
            if seen.len() > MAX_NODES {
                break;
            }
            let Some(portfolio) = self.store.get_portfolio(&context.tenant, &id, None).await?
            else {
                continue;
            };
            for child in portfolio.target.sleeve_ids() {
                if seen.insert(child.to_owned()) {
                    queue.push(child.to_owned());
                }
            }
        }
        Ok(seen)
    }

    /// Every portfolio that uses `id` as a sleeve, transitively (not `id` itself).
    pub(crate) async fn ancestors(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<Vec<String>, TargetError> {
        let mut seen: HashSet<String> = HashSet::from([id.to_owned()]);
        let mut order = Vec::new();
        let mut queue = vec![id.to_owned()];
        while let Some(current) = queue.pop() {
            for parent in self.store.parents(&context.tenant, &current).await? {
                if seen.insert(parent.clone()) {
                    order.push(parent.clone());
                    queue.push(parent);
                }
            }
            if seen.len() > MAX_NODES {
                break;
            }
        }
        Ok(order)
    }
}

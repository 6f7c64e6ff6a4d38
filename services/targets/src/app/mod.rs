//! The Target service's operations, in domain terms. The gRPC handlers
//! convert wire types and call these; these validate, apply the rules that
//! need stored state or other services, and call the store.

mod assets;
mod assignments;
mod portfolios;
mod resolve;
mod tenants;

use std::sync::Arc;

use rebalancer_kit::Clock;
use rebalancer_proto::client::TracedChannel;

pub use assignments::{AssignInput, AssignmentUpdate, ResolvedAssignment};
pub use portfolios::PortfolioPatch;
pub use resolve::{ResolvedTarget, TargetCache};
pub use tenants::{TenantPatch, TenantView};

use crate::store::TargetStore;

/// The Target service's state: its store, its clock and the Execution service
/// (symbols are checked against its market data, account values read from
/// its account book).
#[derive(Debug, Clone)]
pub struct Target {
    store: Arc<dyn TargetStore>,
    clock: Arc<dyn Clock>,
    execution: Option<TracedChannel>,
}

impl Target {
    #[must_use]
    pub fn new(
        store: Arc<dyn TargetStore>,
        clock: Arc<dyn Clock>,
        execution: Option<TracedChannel>,
    ) -> Self {
        Self {
            store,
            clock,
            execution,
        }
    }

    #[must_use]
    pub fn store(&self) -> &Arc<dyn TargetStore> {
        &self.store
    }
}

//! Who may call what: the roles a token can carry, the permission each role
//! grants, and the permission every RPC requires, in one table a reviewer can
//! read. The server's auth layer (`rebalancer_kit::auth`) enforces it before
//! any handler runs; a test checks that every RPC of `proto/` is listed.

use std::fmt;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read the tenant's data: portfolios, assignments, accounts, runs,
    /// orders, evaluations, market data.
    Read,
    /// Manage model portfolios and assignments; propose, edit and cancel
    /// runs and batches before they trade.
    Advise,
    /// Approve runs, transmit batches, cancel block orders and batches.
    Trade,
    /// Run the book: accounts and cash movements from the custodian,
    /// reconciliation, evaluating now.
    Operate,
    /// Change the tenant's settings (trading mode, four-eyes rule, monitor schedule).
    Admin,
    /// Change what every tenant shares: the asset master, quotes, calendars,
    /// the tenant registry.
    Platform,
    /// Calls the services make to each other (asset status reports, cash
    /// acknowledgements, the holdings stream); never granted to people.
    Internal,
}

impl Permission {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Advise => "advise",
            Self::Trade => "trade",
            Self::Operate => "operate",
            Self::Admin => "admin",
            Self::Platform => "platform",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role a person's token carries (the `roles` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Advisor,
    Trader,
    Operator,
    Admin,
    /// The platform team that loads the asset master, quotes and calendars.
    Platform,
}

impl Role {
    pub const ALL: [Self; 6] = [
        Self::Viewer,
        Self::Advisor,
        Self::Trader,
        Self::Operator,
        Self::Admin,
        Self::Platform,
    ];

    /// The role named `name` (lower case), if there is one.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Advisor => "advisor",
            Self::Trader => "trader",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::Platform => "platform",
        }
    }

    /// Whether this role grants `permission`.
    #[must_use]
    pub const fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Self::Viewer => matches!(permission, P::Read),
            Self::Advisor => matches!(permission, P::Read | P::Advise),
            Self::Trader => matches!(permission, P::Read | P::Trade),
            Self::Operator => matches!(permission, P::Read | P::Operate),
            Self::Admin => matches!(
                permission,
                P::Read | P::Advise | P::Trade | P::Operate | P::Admin
            ),
            Self::Platform => matches!(permission, P::Read | P::Platform),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Paths anyone may call, authenticated or not: health checks (probes) and
/// reflection (the schema is public).
pub const PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The permission each RPC requires, by `Service/Method` within
/// `rebalancer.<service>.v1`.
pub const RPCS: &[(&str, Permission)] = {
    use Permission::{Admin, Advise, Internal, Operate, Platform, Read, Trade};
    &[
        // target: model portfolios
        ("target.v1.PortfolioService/CreatePortfolio", Advise),
        ("target.v1.PortfolioService/GetPortfolio", Read),
        ("target.v1.PortfolioService/ListPortfolios", Read),
        ("target.v1.PortfolioService/UpdatePortfolio", Advise),
        ("target.v1.PortfolioService/SetPortfolioStatus", Advise),
        ("target.v1.PortfolioService/DeletePortfolio", Advise),
        ("target.v1.PortfolioService/ListPortfolioVersions", Read),
        ("target.v1.PortfolioService/ResolvePortfolio", Read),
        ("target.v1.PortfolioService/ReportAssetStatus", Internal),
        ("target.v1.PortfolioService/ListPortfolioEvents", Read),
        // target: assignments
        ("target.v1.AssignmentService/Assign", Advise),
        ("target.v1.AssignmentService/GetAssignment", Read),
        ("target.v1.AssignmentService/ListAssignments", Read),
        ("target.v1.AssignmentService/UpdateAssignment", Advise),
        ("target.v1.AssignmentService/Unassign", Advise),
        ("target.v1.AssignmentService/StreamAssignments", Read),
        ("target.v1.AssignmentService/ListAssignmentEvents", Read),
        // target: the tenant registry
        ("target.v1.TenantService/CreateTenant", Platform),
        ("target.v1.TenantService/GetTenant", Read),
        ("target.v1.TenantService/ListTenants", Platform),
        ("target.v1.TenantService/UpdateTenant", Admin),
        ("target.v1.EventExportService/ExportEvents", Internal),
        // monitor
        ("monitor.v1.MonitorService/EvaluateNow", Operate),
        ("monitor.v1.MonitorService/GetEvaluation", Read),
        ("monitor.v1.MonitorService/ListFlagged", Read),
        ("monitor.v1.MonitorService/GetCycle", Read),
        ("monitor.v1.MonitorService/ListCycles", Read),
        ("monitor.v1.MonitorService/WatchCycle", Read),
        ("monitor.v1.MonitorService/SimulatePolicy", Read),
        ("monitor.v1.EventExportService/ExportEvents", Internal),
        // the tenant's event stream (execution)
        ("events.v1.EventService/WatchEvents", Read),
        // execution: runs
        ("execution.v1.RunService/CreateRun", Advise),
        ("execution.v1.RunService/PreviewRun", Read),
        ("execution.v1.RunService/GetRun", Read),
        ("execution.v1.RunService/ListRuns", Read),
        ("execution.v1.RunService/ApproveRun", Trade),
        ("execution.v1.RunService/AdjustRun", Advise),
        ("execution.v1.RunService/CancelRun", Advise),
        ("execution.v1.RunService/WatchRun", Read),
        ("execution.v1.RunService/PreviewHouseholdRebalance", Read),
        ("execution.v1.RunService/CreateHouseholdRebalance", Advise),
        // execution: batches
        ("execution.v1.BatchService/CreateBatch", Advise),
        ("execution.v1.BatchService/GetBatch", Read),
        ("execution.v1.BatchService/ListBatches", Read),
        ("execution.v1.BatchService/GetBatchTrades", Read),
        ("execution.v1.BatchService/AdjustBatch", Advise),
        ("execution.v1.BatchService/TransmitBatch", Trade),
        ("execution.v1.BatchService/CancelBatch", Trade),
        ("execution.v1.BatchService/WatchBatch", Read),
        // execution: the book
        ("execution.v1.AccountService/UpsertAccount", Operate),
        ("execution.v1.AccountService/GetAccount", Read),
        ("execution.v1.AccountService/SetTradingPreferences", Advise),
        ("execution.v1.AccountService/SetTaxSettings", Advise),
        ("execution.v1.AccountService/UpsertHousehold", Advise),
        ("execution.v1.AccountService/GetHousehold", Read),
        ("execution.v1.AccountService/ListHouseholds", Read),
        ("execution.v1.AccountService/SetIdenticalSecurities", Advise),
        ("execution.v1.AccountService/GetIdenticalSecurities", Read),
        ("execution.v1.AccountService/ApplySplit", Operate),
        ("execution.v1.AccountService/ListAccounts", Read),
        ("execution.v1.AccountService/CreateCashMovement", Operate),
        ("execution.v1.AccountService/ListCashMovements", Read),
        (
            "execution.v1.AccountService/AcknowledgeCashMovement",
            Internal,
        ),
        ("execution.v1.AccountService/SettleCashMovement", Operate),
        ("execution.v1.AccountService/CancelCashMovement", Operate),
        ("execution.v1.AccountService/GetHoldings", Read),
        ("execution.v1.AccountService/StreamHoldings", Internal),
        ("execution.v1.AccountService/ReconcileAccounts", Operate),
        ("execution.v1.AccountService/ListReconciliationBreaks", Read),
        // execution: market data (shared by every tenant)
        ("execution.v1.MarketDataService/UpsertAssets", Platform),
        ("execution.v1.MarketDataService/UpsertQuotes", Platform),
        (
            "execution.v1.MarketDataService/UpsertCalendarDays",
            Platform,
        ),
        ("execution.v1.MarketDataService/DeleteCalendarDay", Platform),
        ("execution.v1.MarketDataService/ListCalendarDays", Read),
        ("execution.v1.MarketDataService/GetAsset", Read),
        ("execution.v1.MarketDataService/ListAssets", Read),
        ("execution.v1.MarketDataService/UpdateAsset", Platform),
        ("execution.v1.MarketDataService/GetQuotes", Read),
        ("execution.v1.MarketDataService/GetBars", Read),
        ("execution.v1.MarketDataService/GetVolumeProfile", Read),
        ("execution.v1.MarketDataService/GetCalendar", Read),
        ("execution.v1.MarketDataService/GetClock", Read),
        // execution: orders and the tenant's trading settings
        ("execution.v1.OrderService/GetOrder", Read),
        ("execution.v1.OrderService/ListOrders", Read),
        ("execution.v1.OrderService/GetBlockOrder", Read),
        ("execution.v1.OrderService/ListBlockOrders", Read),
        ("execution.v1.OrderService/ListChildOrders", Read),
        ("execution.v1.OrderService/ListFills", Read),
        ("execution.v1.OrderService/ListAllocations", Read),
        ("execution.v1.OrderService/GetExecutionQuality", Read),
        ("execution.v1.OrderService/CancelBlockOrder", Trade),
        ("execution.v1.OrderService/WatchBlockOrder", Read),
        ("execution.v1.OrderService/ListBrokerBreaks", Read),
        ("execution.v1.OrderService/GetTradingMode", Read),
        ("execution.v1.OrderService/SetTradingMode", Admin),
    ]
};

/// What a call to `path` (`/package.Service/Method`) requires: `None` for a
/// public path, `Some(None)` for a path that is not an RPC of Rebalancer.
#[must_use]
pub fn required(path: &str) -> Option<Option<Permission>> {
    if PUBLIC_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return None;
    }
    let method = path.strip_prefix("/rebalancer.").unwrap_or_default();
    Some(
        RPCS.iter()
            .find(|(name, _)| *name == method)
            .map(|(_, permission)| *permission),
    )
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    #[test]
    fn every_rpc_has_exactly_one_permission() {
        let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut methods = Vec::new();
        for file in &set.file {
            let package = file.package();
            let Some(short) = package.strip_prefix("rebalancer.") else {
                continue;
            };
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!("{short}.{}/{}", service.name(), method.name()));
                }
            }
        }
        for method in &methods {
            let listed = RPCS.iter().filter(|(name, _)| name == method).count();
            assert_eq!(listed, 1, "{method} is listed {listed} times in RPCS");
        }
        assert_eq!(
            methods.len(),
            RPCS.len(),
            "RPCS lists a method proto/ lacks"
        );
    }

    #[test]
    fn public_paths_and_unknown_paths() {
        assert_eq!(required("/grpc.health.v1.Health/Check"), None);
        assert_eq!(required("/rebalancer.nope.v1.X/Y"), Some(None));
        assert_eq!(
            required("/rebalancer.execution.v1.RunService/ApproveRun"),
            Some(Some(Permission::Trade))
        );
    }

    #[test]
    fn people_never_hold_the_internal_permission() {
        for role in Role::ALL {
            assert!(!role.grants(Permission::Internal), "{role}");
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert!(!Role::Viewer.grants(Permission::Trade));
        assert!(!Role::Admin.grants(Permission::Platform));
    }
}

//! The four-eyes rule: when the tenant turns it on (Target's tenant
//! registry), the person who approves a run or transmits a batch must not be
//! the person who created it. Read fresh at every approval, so a tenant that
//! turns it on is covered from the next approval; without a Target service
//! (execution alone) there is no registry and no rule.

use rebalancer_kit::RequestContext;
use rebalancer_proto::client::{Retry, retry_idempotent};
use rebalancer_proto::target::GetTenantRequest;
use rebalancer_proto::target::tenant_service_client::TenantServiceClient;

use crate::Execution;
use crate::error::ExecutionError;

/// The person behind an actor: a service acting for someone is that someone.
fn person(actor: &str) -> &str {
    actor
        .rsplit_once(" on behalf of ")
        .map_or(actor, |(_, person)| person)
}

impl Execution {
    /// Refuses the caller approving `what` (for example "run 0193…"),
    /// created by `creator`, when the tenant's four-eyes rule is on and the
    /// caller is its creator.
    ///
    /// # Errors
    /// `PermissionDenied` under the rule; `Unavailable` when the rule cannot
    /// be read (an approval is never let through unchecked).
    pub(super) async fn check_four_eyes(
        &self,
        context: &RequestContext,
        what: &str,
        creator: &str,
    ) -> Result<(), ExecutionError> {
        let Some(channel) = &self.target else {
            return Ok(());
        };
        let call = context.call();
        let tenant = retry_idempotent(Retry::default(), "GetTenant", |deadline| {
            let mut client = TenantServiceClient::new(channel.clone());
            let request = call.request_within(GetTenantRequest {}, deadline);
            async move { client.get_tenant(request).await }
        })
        .await
        .map_err(|status| {
            ExecutionError::Unavailable(format!(
                "cannot read the tenant's four-eyes rule: {}",
                status.message()
            ))
        })?
        .into_inner()
        .tenant;
        let four_eyes = tenant.is_some_and(|tenant| tenant.four_eyes);
        if four_eyes && person(&context.actor) == person(creator) {
            return Err(ExecutionError::PermissionDenied(format!(
                "{what} was created by {creator}; the tenant's four-eyes rule needs someone else to approve it"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::person;

    #[test]
    fn a_service_acting_for_someone_is_that_someone() {
        assert_eq!(person("alice@firm-a"), "alice@firm-a");
        assert_eq!(person("stack on behalf of alice@firm-a"), "alice@firm-a");
        assert_eq!(
            person("monitor on behalf of tenant firm-a"),
            "tenant firm-a"
        );
    }
}

//! Who is calling, and may they: bearer tokens (JWT) checked against the
//! firm's identity provider (JWKS from a file, a URL or OIDC discovery;
//! RS256 and ES256; issuer, audience, expiry and not-before checked; keys
//! refreshed without a restart), service tokens the services sign for their
//! calls to each other, and the permission table of
//! [`rebalancer_proto::access`] applied to every RPC by [`AuthLayer`].
//!
//! The tenant and the actor come from the token, never from a header the
//! caller chooses: a user's `x-tenant-id`, if sent, must name the token's
//! tenant. Only a service token may act for the tenant its call names (the
//! Monitor's cycle for each firm), and its calls are recorded as the service
//! acting on behalf of the user or tenant it names.
//!
//! Without keys the server refuses to start unless told, by a flag named for
//! the danger, to accept unauthenticated calls (the dev stack does).

mod keys;
mod layer;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use http::HeaderMap;
use rebalancer_proto::access::{Permission, Role};
use rebalancer_proto::client::{ACTOR_HEADER, AUTHORIZATION_HEADER, TENANT_HEADER};
use tonic::Status;

pub use keys::KeySet;
pub use layer::{AuthLayer, AuthService};
pub use tokens::{DEV_ISSUER, SERVICE_ISSUER, ServiceCredentials, mint_dev_token};

use crate::context::tenant_problem;

/// How callers are authenticated.
#[derive(Debug, Clone, Args)]
pub struct AuthOptions {
    /// Accepted token issuers (`iss`), comma-separated. With
    /// `--auth-oidc-discovery`, each is also where its keys are discovered.
    #[arg(
        long = "auth-issuer",
        env = "REBALANCER_AUTH_ISSUERS",
        value_delimiter = ','
    )]
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`), comma-separated.
    #[arg(
        long = "auth-audience",
        env = "REBALANCER_AUTH_AUDIENCE",
        value_delimiter = ',',
        default_value = "rebalancer"
    )]
    pub audiences: Vec<String>,
    /// JWKS files (air-gapped installs), comma-separated; re-read on refresh.
    #[arg(
        long = "auth-jwks-file",
        env = "REBALANCER_AUTH_JWKS_FILES",
        value_delimiter = ','
    )]
    pub jwks_files: Vec<PathBuf>,
    /// JWKS URLs, comma-separated.
    #[arg(
        long = "auth-jwks-url",
        env = "REBALANCER_AUTH_JWKS_URLS",
        value_delimiter = ','
    )]
    pub jwks_urls: Vec<String>,
    /// Find each issuer's keys through `<issuer>/.well-known/openid-configuration`.
    #[arg(long = "auth-oidc-discovery", env = "REBALANCER_AUTH_OIDC_DISCOVERY")]
    pub oidc_discovery: bool,
    /// Seconds between key refreshes (a token signed by an unknown key also
    /// triggers one, at most every 10 s).
    #[arg(
        long = "auth-jwks-refresh-secs",
        env = "REBALANCER_AUTH_JWKS_REFRESH_SECS",
        default_value_t = 300
    )]
    pub refresh_secs: u64,
    /// The claim naming the caller's tenant.
    #[arg(
        long = "auth-tenant-claim",
        env = "REBALANCER_AUTH_TENANT_CLAIM",
        default_value = "tenant"
    )]
    pub tenant_claim: String,
    /// The claim listing the caller's roles (an array, or a space-separated string).
    #[arg(
        long = "auth-roles-claim",
        env = "REBALANCER_AUTH_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub roles_claim: String,
    /// File holding the secret (at least 32 bytes) the services sign their
    /// calls to each other with; the same secret on every service.
    #[arg(long, env = "REBALANCER_SERVICE_SECRET_FILE")]
    pub service_secret_file: Option<PathBuf>,
    /// Accept calls without a bearer token, trusting `x-tenant-id` and
    /// `x-actor` as sent (with `--default-tenant` for calls without one).
    /// For local use only: anyone who reaches the port acts as any tenant.
    #[arg(long, env = "REBALANCER_INSECURE_ACCEPT_UNAUTHENTICATED")]
    pub insecure_accept_unauthenticated: bool,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: vec!["rebalancer".to_owned()],
            jwks_files: Vec::new(),
            jwks_urls: Vec::new(),
            oidc_discovery: false,
            refresh_secs: 300,
            tenant_claim: "tenant".to_owned(),
            roles_claim: "roles".to_owned(),
            service_secret_file: None,
            insecure_accept_unauthenticated: false,
        }
    }
}

impl AuthOptions {
    /// Whether any source of user keys is configured.
    #[must_use]
    pub fn has_user_keys(&self) -> bool {
        !self.jwks_files.is_empty() || !self.jwks_urls.is_empty() || self.oidc_discovery
    }

    /// The service secret, read from its file.
    ///
    /// # Errors
    /// When the file cannot be read or the secret is shorter than 32 bytes.
    pub fn service_secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(path) = &self.service_secret_file else {
            return Ok(None);
        };
        let secret = std::fs::read(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        let secret = secret.trim_ascii().to_vec();
        anyhow::ensure!(
            secret.len() >= 32,
            "the service secret in {} is shorter than 32 bytes",
            path.display()
        );
        Ok(Some(secret))
    }
}

/// What kind of caller a principal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A person or program with a token from the identity provider.
    User { roles: Vec<Role> },
    /// One of the services, acting for the tenant (and user) its call names.
    Service { name: String },
    /// No token, accepted because the server runs insecure (dev).
    Unauthenticated,
}

/// The verified caller of one request, put in the request's extensions by
/// [`AuthLayer`] and read by [`crate::RequestContext::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// Who is recorded as acting in audit trails.
    pub actor: String,
    pub caller: Caller,
}

impl Principal {
    /// Whether this caller holds `permission`.
    #[must_use]
    pub fn may(&self, permission: Permission) -> bool {
        match &self.caller {
            Caller::User { roles } => roles.iter().any(|role| role.grants(permission)),
            Caller::Service { .. } | Caller::Unauthenticated => true,
        }
    }

    fn roles_text(&self) -> String {
        match &self.caller {
            Caller::User { roles } => {
                let names: Vec<&str> = roles.iter().map(|role| role.name()).collect();
                format!("[{}]", names.join(", "))
            }
            Caller::Service { name } => format!("service {name}"),
            Caller::Unauthenticated => "none".to_owned(),
        }
    }
}

/// Checks the credentials of every call. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    users: Option<KeySet>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    tenant_claim: String,
    roles_claim: String,
    service_secret: Option<Vec<u8>>,
    dev_secret: Option<Vec<u8>>,
    insecure: bool,
    default_tenant: Option<String>,
}

impl Authenticator {
    /// Builds the authenticator `options` describe, loading the keys once
    /// (and refreshing them in the background). `dev_secret` lets tokens
    /// minted by `rebalancer token` in; `default_tenant` is the tenant of
    /// unauthenticated calls without `x-tenant-id` (insecure only).
    ///
    /// # Errors
    /// When no key source is configured and insecure calls are not allowed,
    /// or when the keys cannot be loaded.
    pub async fn from_options(
        options: &AuthOptions,
        dev_secret: Option<Vec<u8>>,
        default_tenant: Option<String>,
    ) -> anyhow::Result<Self> {
        let service_secret = options.service_secret()?;
        if !options.insecure_accept_unauthenticated {
            anyhow::ensure!(
                options.has_user_keys() || dev_secret.is_some(),
                "no way to authenticate callers: give --auth-jwks-file, --auth-jwks-url or \
                 --auth-oidc-discovery with --auth-issuer (or, for local use only, \
                 --insecure-accept-unauthenticated)"
            );
            anyhow::ensure!(
                service_secret.is_some() || dev_secret.is_some(),
                "the services sign their calls to each other with --service-secret-file; \
                 it is required unless --insecure-accept-unauthenticated is given"
            );
            anyhow::ensure!(
                default_tenant.is_none(),
                "--default-tenant lets any caller act as that tenant without credentials; \
                 it needs --insecure-accept-unauthenticated"
            );
        }
        if options.has_user_keys() {
            anyhow::ensure!(
                !options.issuers.is_empty(),
                "--auth-issuer is required with JWKS keys or OIDC discovery"
            );
        }
        let users = if options.has_user_keys() {
            Some(
                KeySet::load(
                    keys::Sources::from_options(options),
                    Duration::from_secs(options.refresh_secs.max(1)),
                )
                .await?,
            )
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                users,
                issuers: options.issuers.clone(),
                audiences: options.audiences.clone(),
                tenant_claim: options.tenant_claim.clone(),
                roles_claim: options.roles_claim.clone(),
                service_secret,
                dev_secret,
                insecure: options.insecure_accept_unauthenticated,
                default_tenant,
            }),
        })
    }

    /// Accepts every call as it comes (tests of everything but auth).
    #[must_use]
    pub fn insecure(default_tenant: Option<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: None,
                issuers: Vec::new(),
                audiences: Vec::new(),
                tenant_claim: "tenant".to_owned(),
                roles_claim: "roles".to_owned(),
                service_secret: None,
                dev_secret: None,
                insecure: true,
                default_tenant,
            }),
        }
    }

    /// Whether calls without a token are accepted.
    #[must_use]
    pub fn is_insecure(&self) -> bool {
        self.inner.insecure
    }

    /// The caller of a request with these headers.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for missing, malformed, expired or untrusted
    /// credentials; `PERMISSION_DENIED` when a user's `x-tenant-id` names
    /// another tenant than the token's.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Status> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
        };
        let Some(authorization) = header(AUTHORIZATION_HEADER) else {
            return self.unauthenticated(header(TENANT_HEADER), header(ACTOR_HEADER));
        };
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?
            .trim();
        let verified = self.verify(token).await?;
        let asked_tenant = header(TENANT_HEADER);
        match verified {
            tokens::Verified::Service { name } => {
                let tenant = asked_tenant.ok_or_else(|| {
                    Status::invalid_argument("a service call must name its tenant in x-tenant-id")
                })?;
                check_tenant(tenant)?;
                let actor = match header(ACTOR_HEADER) {
                    Some(actor) if actor != "system" => {
                        format!("{name} on behalf of {}", bounded(actor))
                    }
                    _ => format!("{name} on behalf of tenant {tenant}"),
                };
                Ok(Principal {
                    tenant: tenant.to_owned(),
                    actor,
                    caller: Caller::Service { name },
                })
            }
            tokens::Verified::User {
                tenant,
                subject,
                roles,
            } => {
                check_tenant(&tenant)?;
                if let Some(asked) = asked_tenant
                    && asked != tenant
                {
                    return Err(Status::permission_denied(format!(
                        "the token is for tenant {tenant:?}; x-tenant-id asks for {:?}",
                        bounded(asked)
                    )));
                }
                Ok(Principal {
                    tenant,
                    actor: subject,
                    caller: Caller::User { roles },
                })
            }
        }
    }

    fn unauthenticated(
        &self,
        tenant: Option<&str>,
        actor: Option<&str>,
    ) -> Result<Principal, Status> {
        if !self.inner.insecure {
            return Err(Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <token>`",
            ));
        }
        let tenant = tenant
            .or(self.inner.default_tenant.as_deref())
            .ok_or_else(|| Status::unauthenticated("missing x-tenant-id metadata"))?;
        check_tenant(tenant)?;
        Ok(Principal {
            tenant: tenant.to_owned(),
            actor: actor.map_or_else(|| "anonymous".to_owned(), bounded),
            caller: Caller::Unauthenticated,
        })
    }
}

fn check_tenant(tenant: &str) -> Result<(), Status> {
    match tenant_problem(tenant) {
        Some(problem) => Err(Status::unauthenticated(format!("tenant id {problem}"))),
        None => Ok(()),
    }
}

/// At most 200 characters of a caller-supplied name.
fn bounded(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests;

//! Verifying a bearer token, and the tokens Rebalancer signs itself: the
//! services' own (HS256 with the shared service secret, five minutes, renewed
//! before they expire) and, in the dev stack, user tokens minted by
//! `rebalancer token` to try roles locally.

use std::sync::{Mutex, PoisonError};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rebalancer_proto::access::Role;
use rebalancer_proto::client::Credentials;
use serde_json::{Map, Value};
use tonic::Status;

use super::Authenticator;

/// Issuer (and audience) of the tokens the services sign for each other.
pub const SERVICE_ISSUER: &str = "rebalancer-service";
/// Issuer (and audience) of the user tokens `rebalancer token` mints for the dev stack.
pub const DEV_ISSUER: &str = "rebalancer-dev";

/// How long a service token lives.
const SERVICE_TOKEN_SECS: u64 = 300;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// What a valid token says.
pub(super) enum Verified {
    Service {
        name: String,
    },
    User {
        tenant: String,
        subject: String,
        roles: Vec<Role>,
    },
}

impl Authenticator {
    /// Checks `token`'s signature, issuer, audience, expiry and not-before,
    /// and reads who it names.
    pub(super) async fn verify(&self, token: &str) -> Result<Verified, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| Status::unauthenticated(format!("malformed token: {error}")))?;
        let inner = &self.inner;
        let claims =
            match header.alg {
                Algorithm::HS256 => {
                    // Ours: a service token, or a dev user token.
                    if let Some(secret) = &inner.service_secret
                        && let Ok(claims) = decode_hs256(token, secret, SERVICE_ISSUER)
                    {
                        return service(&claims);
                    }
                    let secret = inner.dev_secret.as_ref().ok_or_else(|| {
                        Status::unauthenticated("token signed with an untrusted key")
                    })?;
                    if let Ok(claims) = decode_hs256(token, secret, SERVICE_ISSUER) {
                        return service(&claims);
                    }
                    decode_hs256(token, secret, DEV_ISSUER).map_err(rejected)?
                }
                Algorithm::RS256 | Algorithm::ES256 => {
                    let keys = inner.users.as_ref().ok_or_else(|| {
                        Status::unauthenticated("no identity provider is configured")
                    })?;
                    let key = keys.find(header.kid.as_deref(), header.alg).await?;
                    let mut validation = Validation::new(header.alg);
                    validation.set_issuer(&inner.issuers);
                    validation.set_audience(&inner.audiences);
                    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                    validation.validate_nbf = true;
                    validation.leeway = LEEWAY_SECS;
                    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
                        .map_err(rejected)?
                        .claims
                }
                other => {
                    return Err(Status::unauthenticated(format!(
                        "token algorithm {other:?} is not accepted (RS256, ES256)"
                    )));
                }
            };
        self.user(&claims)
    }

    fn user(&self, claims: &Map<String, Value>) -> Result<Verified, Status> {
        let inner = &self.inner;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|subject| !subject.is_empty())
            .ok_or_else(|| Status::unauthenticated("the token has no subject"))?;
        let tenant = claims
            .get(&inner.tenant_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "the token has no {:?} claim naming its tenant",
                    inner.tenant_claim
                ))
            })?;
        let names: Vec<&str> = match claims.get(&inner.roles_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(text)) => text.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = names.into_iter().filter_map(Role::parse).collect();
        roles.sort_unstable();
        roles.dedup();
        Ok(Verified::User {
            tenant: tenant.to_owned(),
            subject: super::bounded(subject),
            roles,
        })
    }
}

fn decode_hs256(
    token: &str,
    secret: &[u8],
    issuer: &str,
) -> Result<Map<String, Value>, jsonwebtoken::errors::Error> {
    let key = DecodingKey::from_secret(secret)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[issuer]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    Ok(jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)?.claims)
}

fn service(claims: &Map<String, Value>) -> Result<Verified, Status> {
    let name = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|subject| subject.strip_prefix("service:"))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Status::unauthenticated("a service token's subject is service:<name>"))?;
    Ok(Verified::Service {
        name: super::bounded(name),
    })
}

fn rejected(error: jsonwebtoken::errors::Error) -> Status {
    use jsonwebtoken::errors::ErrorKind;
    let reason = match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "the token's audience is not accepted".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim:?} claim"),
        _ => format!("invalid token: {error}"),
    };
    Status::unauthenticated(reason)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A service's own identity on its calls to the others: a short-lived token
/// signed with the shared service secret, renewed a minute before it expires.
pub struct ServiceCredentials {
    name: String,
    key: EncodingKey,
    cached: Mutex<Option<(String, u64)>>,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ServiceCredentials {
    /// Credentials of service `name` (`target`, `monitor`, `execution`, or
    /// `stack` when one process runs them all).
    ///
    /// # Errors
    /// When the secret is empty.
    pub fn new(name: &str, secret: &[u8]) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            key: EncodingKey::from_secret(secret)?,
            cached: Mutex::new(None),
        })
    }

    fn mint(&self) -> Option<(String, u64)> {
        let issued = now();
        let expires = issued + SERVICE_TOKEN_SECS;
        let claims = serde_json::json!({
            "iss": SERVICE_ISSUER,
            "aud": SERVICE_ISSUER,
            "sub": format!("service:{}", self.name),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
        });
        match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key) {
            Ok(token) => Some((token, expires)),
            Err(error) => {
                tracing::error!(%error, "cannot sign a service token");
                None
            }
        }
    }
}

impl Credentials for ServiceCredentials {
    fn token(&self) -> Option<String> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, expires)) = cached.as_ref()
            && *expires > now() + 60
        {
            return Some(token.clone());
        }
        *cached = self.mint();
        cached.as_ref().map(|(token, _)| token.clone())
    }
}

/// A user token for the dev stack, signed with its dev secret.
///
/// # Errors
/// When signing fails.
pub fn mint_dev_token(
    secret: &[u8],
    tenant: &str,
    subject: &str,
    roles: &[Role],
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let issued = now();
    let roles: Vec<&str> = roles.iter().map(|role| role.name()).collect();
    let claims = serde_json::json!({
        "iss": DEV_ISSUER,
        "aud": DEV_ISSUER,
        "sub": subject,
        "tenant": tenant,
        "roles": roles,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_secs,
    });
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret)?,
    )?)
}

use http::HeaderMap;
use rebalancer_proto::access::{Permission, Role};
use rebalancer_proto::client::Credentials;
use serde_json::json;
use tonic::Code;

use super::*;
use crate::testing::identity::{IdentityProvider, TestKey};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, value.parse().expect("ascii header"));
    }
    headers
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn secure(idp: &IdentityProvider) -> Authenticator {
    Authenticator::from_options(&idp.options(), None, None)
        .await
        .expect("authenticator")
}

async fn code_of(auth: &Authenticator, headers: &HeaderMap) -> Code {
    auth.authenticate(headers)
        .await
        .expect_err("must be refused")
        .code()
}

#[tokio::test]
async fn a_call_without_credentials_is_unauthenticated_even_with_a_tenant_header() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let code = code_of(&auth, &headers(&[("x-tenant-id", "firm-a")])).await;
    assert_eq!(code, Code::Unauthenticated);
}

#[tokio::test]
async fn es256_and_rs256_tokens_name_tenant_actor_and_roles() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let token = idp.token("firm-a", "alice@firm-a", &[Role::Viewer, Role::Trader]);
    let principal = auth
        .authenticate(&headers(&[("authorization", &bearer(&token))]))
        .await
        .expect("valid");
    assert_eq!(principal.tenant, "firm-a");
    assert_eq!(principal.actor, "alice@firm-a");
    assert_eq!(
        principal.caller,
        Caller::User {
            roles: vec![Role::Viewer, Role::Trader]
        }
    );
    assert!(principal.may(Permission::Trade));
    assert!(!principal.may(Permission::Advise));

    let claims = idp.claims("firm-b", "bob", &["advisor", "astronaut"]);
    let token = IdentityProvider::sign(TestKey::Rs256, &claims);
    let principal = auth
        .authenticate(&headers(&[("authorization", &bearer(&token))]))
        .await
        .expect("valid rs256");
    assert_eq!(principal.tenant, "firm-b");
    assert_eq!(
        principal.caller,
        Caller::User {
            roles: vec![Role::Advisor]
        }
    );
}

#[tokio::test]
async fn a_tenant_header_cannot_switch_tenants() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let token = idp.token("firm-a", "alice", &[Role::Admin]);
    let other = headers(&[
        ("authorization", &bearer(&token)),
        ("x-tenant-id", "firm-b"),
    ]);
    assert_eq!(code_of(&auth, &other).await, Code::PermissionDenied);
    let same = headers(&[
        ("authorization", &bearer(&token)),
        ("x-tenant-id", "firm-a"),
        ("x-actor", "somebody-else"),
    ]);
    let principal = auth.authenticate(&same).await.expect("own tenant");
    assert_eq!(principal.actor, "alice", "the actor is the token's subject");
}

#[tokio::test]
async fn expired_early_foreign_and_tampered_tokens_are_refused() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let now = jsonwebtoken::get_current_timestamp();
    let base = idp.claims("firm-a", "alice", &["viewer"]);
    let with = |key: &str, value: serde_json::Value| {
        let mut claims = base.clone();
        claims[key] = value;
        IdentityProvider::sign(TestKey::Es256, &claims)
    };
    let cases = [
        ("expired", with("exp", json!(now - 600))),
        ("not yet valid", with("nbf", json!(now + 600))),
        ("other audience", with("aud", json!("someone-else"))),
        ("other issuer", with("iss", json!("https://evil.example"))),
        ("no tenant", with("tenant", json!(null))),
        ("bad tenant", with("tenant", json!("firm a"))),
        (
            "unpublished key",
            IdentityProvider::sign(TestKey::Unpublished, &base),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (name, token) in cases {
        let code = code_of(&auth, &headers(&[("authorization", &bearer(&token))])).await;
        assert_eq!(code, Code::Unauthenticated, "{name}");
    }
    // A valid token with its payload swapped for another tenant's.
    let token = idp.token("firm-a", "alice", &[Role::Viewer]);
    let forged_payload = idp.token("firm-b", "alice", &[Role::Admin]);
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged_payload.split('.').nth(1).expect("payload");
    let forged = parts.join(".");
    let code = code_of(&auth, &headers(&[("authorization", &bearer(&forged))])).await;
    assert_eq!(code, Code::Unauthenticated);
    // An HS256 token "signed" with nothing the server trusts.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(b"guess").expect("key"),
    )
    .expect("hs256");
    let code = code_of(&auth, &headers(&[("authorization", &bearer(&hs))])).await;
    assert_eq!(code, Code::Unauthenticated);
}

#[tokio::test]
async fn a_rotated_key_is_trusted_without_a_restart() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let claims = idp.claims("firm-a", "alice", &["viewer"]);
    let token = IdentityProvider::sign(TestKey::Es256Next, &claims);
    idp.rotate();
    let principal = auth
        .authenticate(&headers(&[("authorization", &bearer(&token))]))
        .await
        .expect("the new key is fetched when a token names it");
    assert_eq!(principal.tenant, "firm-a");
}

#[tokio::test]
async fn service_tokens_act_for_the_tenant_they_name() {
    let idp = IdentityProvider::new();
    let auth = secure(&idp).await;
    let credentials =
        ServiceCredentials::new("monitor", &idp.service_secret()).expect("credentials");
    let token = credentials.token().expect("service token");
    let principal = auth
        .authenticate(&headers(&[
            ("authorization", &bearer(&token)),
            ("x-tenant-id", "firm-c"),
        ]))
        .await
        .expect("service call");
    assert_eq!(principal.tenant, "firm-c");
    assert_eq!(principal.actor, "monitor on behalf of tenant firm-c");
    assert!(principal.may(Permission::Internal));
    let for_user = auth
        .authenticate(&headers(&[
            ("authorization", &bearer(&token)),
            ("x-tenant-id", "firm-c"),
            ("x-actor", "alice"),
        ]))
        .await
        .expect("service call for a user");
    assert_eq!(for_user.actor, "monitor on behalf of alice");
    let code = code_of(&auth, &headers(&[("authorization", &bearer(&token))])).await;
    assert_eq!(
        code,
        Code::InvalidArgument,
        "a service call names its tenant"
    );
    // A service token signed with another secret is nobody's.
    let stranger = ServiceCredentials::new("monitor", &[7; 32])
        .expect("credentials")
        .token()
        .expect("token");
    let code = code_of(&auth, &headers(&[("authorization", &bearer(&stranger))])).await;
    assert_eq!(code, Code::Unauthenticated);
}

#[tokio::test]
async fn insecure_mode_trusts_headers_and_still_checks_tokens() {
    let secret = vec![3; 32];
    let options = AuthOptions {
        insecure_accept_unauthenticated: true,
        ..AuthOptions::default()
    };
    let auth = Authenticator::from_options(&options, Some(secret.clone()), Some("default".into()))
        .await
        .expect("dev authenticator");
    let anonymous = auth.authenticate(&HeaderMap::new()).await.expect("dev");
    assert_eq!(anonymous.tenant, "default");
    assert_eq!(anonymous.caller, Caller::Unauthenticated);
    let token = mint_dev_token(&secret, "firm-d", "dora", &[Role::Viewer], 60).expect("mint");
    let dora = auth
        .authenticate(&headers(&[("authorization", &bearer(&token))]))
        .await
        .expect("dev token");
    assert_eq!(dora.tenant, "firm-d");
    assert!(!dora.may(Permission::Trade));
    let code = code_of(&auth, &headers(&[("authorization", "Bearer nonsense")])).await;
    assert_eq!(code, Code::Unauthenticated, "a bad token is never ignored");
}

#[tokio::test]
async fn serve_without_keys_or_with_a_default_tenant_refuses_to_start() {
    let error = Authenticator::from_options(&AuthOptions::default(), None, None)
        .await
        .expect_err("no keys");
    assert!(
        error
            .to_string()
            .contains("--insecure-accept-unauthenticated")
    );
    let idp = IdentityProvider::new();
    let error = Authenticator::from_options(&idp.options(), None, Some("default".into()))
        .await
        .expect_err("default tenant");
    assert!(error.to_string().contains("--default-tenant"));
}

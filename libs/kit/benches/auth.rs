//! What authentication costs each call: `Authenticator::authenticate` on
//! the headers of a call with an ES256 or RS256 token of the identity
//! provider, or a service token (HS256), against the key set loaded from a
//! JWKS file. Criterion reports the time per call.
//!
//! `cargo bench -p rebalancer-kit --features testing --bench auth` (add
//! `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use rebalancer_kit::auth::{Authenticator, ServiceCredentials};
use rebalancer_kit::testing::identity::{IdentityProvider, TestKey};
use rebalancer_proto::access::Role;
use rebalancer_proto::client::Credentials;

fn headers(token: &str, tenant: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    if let Some(tenant) = tenant {
        headers.insert("x-tenant-id", tenant.parse().expect("ascii"));
    }
    headers
}

fn authenticate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let idp = IdentityProvider::new();
    let auth: Authenticator = runtime
        .block_on(Authenticator::from_options(&idp.options(), None, None))
        .expect("authenticator");
    let es256 = headers(&idp.token("firm-a", "alice", &[Role::Trader]), None);
    let claims = idp.claims("firm-a", "alice", &["trader"]);
    let rs256 = headers(&IdentityProvider::sign(TestKey::Rs256, &claims), None);
    let service = ServiceCredentials::new("monitor", &idp.service_secret()).expect("credentials");
    let internal = headers(&service.token().expect("token"), Some("firm-a"));
    let mut group = c.benchmark_group("authenticate");
    for (name, headers) in [
        ("es256", &es256),
        ("rs256", &rs256),
        ("service_hs256", &internal),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authenticate(black_box(headers)))
                    .expect("valid")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);

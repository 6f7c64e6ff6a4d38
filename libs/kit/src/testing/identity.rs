//! A pretend identity provider for tests: a JWKS file with the public halves
//! of the test keys in `libs/kit/testdata/auth`, and tokens signed by them.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rebalancer_proto::access::Role;
use serde_json::{Value, json};

use crate::auth::AuthOptions;

const ES256: &str = include_str!("../../testdata/auth/es256.pem");
const ES256_NEXT: &str = include_str!("../../testdata/auth/es256-next.pem");
const RS256: &str = include_str!("../../testdata/auth/rs256.pem");

/// Issuer of the test tokens.
pub const ISSUER: &str = "https://idp.test.rebalancer";

/// Which test key signs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// ES256, kid `es256`: published from the start.
    Es256,
    /// RS256, kid `rs256`: published from the start.
    Rs256,
    /// ES256, kid `es256-next`: published only after [`IdentityProvider::rotate`].
    Es256Next,
    /// A key that was never published (ES256, reusing `es256-next`'s key
    /// under kid `unknown`).
    Unpublished,
}

impl TestKey {
    fn parts(self) -> (&'static str, &'static str, Algorithm) {
        match self {
            Self::Es256 => (ES256, "es256", Algorithm::ES256),
            Self::Rs256 => (RS256, "rs256", Algorithm::RS256),
            Self::Es256Next => (ES256_NEXT, "es256-next", Algorithm::ES256),
            Self::Unpublished => (ES256_NEXT, "unknown", Algorithm::ES256),
        }
    }

    fn encoding(self) -> EncodingKey {
        let (pem, _, algorithm) = self.parts();
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        };
        key.unwrap_or_else(|error| panic!("test key {self:?}: {error}"))
    }

    fn jwk(self) -> Jwk {
        let (_, kid, algorithm) = self.parts();
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), algorithm)
            .unwrap_or_else(|error| panic!("public key of {self:?}: {error}"));
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }
}

/// The JWKS file and the token minting of a test identity provider. The
/// file is removed when this is dropped.
#[derive(Debug)]
pub struct IdentityProvider {
    dir: PathBuf,
    jwks: PathBuf,
    secret_file: PathBuf,
}

impl IdentityProvider {
    /// Publishes the `es256` and `rs256` keys, and writes a service secret.
    ///
    /// # Panics
    /// When the temporary files cannot be written.
    #[must_use]
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("rebalancer-idp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("idp dir");
        let provider = Self {
            jwks: dir.join("jwks.json"),
            secret_file: dir.join("service-secret"),
            dir,
        };
        provider.publish(&[TestKey::Es256, TestKey::Rs256]);
        std::fs::write(
            &provider.secret_file,
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        )
        .expect("service secret");
        provider
    }

    /// Publishes `es256-next` beside the others, as a provider rotating keys does.
    pub fn rotate(&self) {
        self.publish(&[TestKey::Es256, TestKey::Rs256, TestKey::Es256Next]);
    }

    fn publish(&self, keys: &[TestKey]) {
        let set = JwkSet {
            keys: keys.iter().map(|key| key.jwk()).collect(),
        };
        let text = serde_json::to_string_pretty(&set).expect("jwks json");
        std::fs::write(&self.jwks, text).expect("jwks file");
    }

    /// The JWKS file.
    #[must_use]
    pub fn jwks_file(&self) -> &Path {
        &self.jwks
    }

    /// Options that trust this provider (and its service secret).
    #[must_use]
    pub fn options(&self) -> AuthOptions {
        AuthOptions {
            issuers: vec![ISSUER.to_owned()],
            jwks_files: vec![self.jwks.clone()],
            service_secret_file: Some(self.secret_file.clone()),
            ..AuthOptions::default()
        }
    }

    /// The service secret.
    ///
    /// # Panics
    /// When the file cannot be read.
    #[must_use]
    pub fn service_secret(&self) -> Vec<u8> {
        std::fs::read(&self.secret_file).expect("service secret")
    }

    /// A token for `subject` of `tenant` with `roles`, valid for an hour,
    /// signed by `es256`.
    #[must_use]
    pub fn token(&self, tenant: &str, subject: &str, roles: &[Role]) -> String {
        let names: Vec<&str> = roles.iter().map(|role| role.name()).collect();
        Self::sign(TestKey::Es256, &self.claims(tenant, subject, &names))
    }

    /// The standard claims of a valid token, to change before [`Self::sign`].
    #[must_use]
    pub fn claims(&self, tenant: &str, subject: &str, roles: &[&str]) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": ISSUER,
            "aud": "rebalancer",
            "sub": subject,
            "tenant": tenant,
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        })
    }

    /// `claims` signed by `key`.
    #[must_use]
    pub fn sign(key: TestKey, claims: &Value) -> String {
        let (_, kid, algorithm) = key.parts();
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding()).expect("sign")
    }
}

impl Default for IdentityProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

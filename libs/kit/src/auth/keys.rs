//! The identity provider's public keys: JWKS documents read from files,
//! fetched from URLs or found by OIDC discovery, kept in memory, refreshed
//! on a period and when a token names a key not seen yet (rotation), without
//! a restart. Only RS256 and ES256 signing keys are kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tonic::Status;

use super::AuthOptions;

/// A token naming an unknown key refreshes the keys at most this often.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);
/// Deadline of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Debug, Clone, Default)]
pub(super) struct Sources {
    files: Vec<PathBuf>,
    urls: Vec<String>,
    /// Issuers whose `jwks_uri` is discovered.
    discover: Vec<String>,
}

impl Sources {
    pub(super) fn from_options(options: &AuthOptions) -> Self {
        Self {
            files: options.jwks_files.clone(),
            urls: options.jwks_urls.clone(),
            discover: if options.oidc_discovery {
                options.issuers.clone()
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The current keys, shared by every request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KeySet {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    sources: Sources,
    http: reqwest::Client,
    keys: RwLock<Arc<Vec<Key>>>,
    last_refresh: tokio::sync::Mutex<Instant>,
}

impl KeySet {
    /// Loads the keys once, then refreshes them every `period` in the
    /// background while the set is in use.
    ///
    /// # Errors
    /// When a source cannot be read or holds no usable key.
    pub(super) async fn load(sources: Sources, period: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|error| anyhow::anyhow!("cannot build the JWKS client: {error}"))?;
        let keys = fetch_all(&sources, &http).await?;
        anyhow::ensure!(
            !keys.is_empty(),
            "the JWKS sources hold no RS256 or ES256 key"
        );
        tracing::info!(keys = keys.len(), "identity provider keys loaded");
        let shared = Arc::new(Shared {
            sources,
            http,
            keys: RwLock::new(Arc::new(keys)),
            // A token signed by a key published after this load refreshes at once.
            last_refresh: tokio::sync::Mutex::new(
                Instant::now()
                    .checked_sub(MIN_REFRESH_GAP)
                    .unwrap_or_else(Instant::now),
            ),
        });
        tokio::spawn(refresh_periodically(Arc::downgrade(&shared), period));
        Ok(Self { shared })
    }

    /// The key that signed a token with this `kid` and algorithm; refreshes
    /// once if no such key is known yet.
    pub(super) async fn find(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, Status> {
        if let Some(key) = self.lookup(kid, algorithm) {
            return Ok(key);
        }
        {
            let mut last = self.shared.last_refresh.lock().await;
            if last.elapsed() >= MIN_REFRESH_GAP {
                *last = Instant::now();
                self.shared.refresh().await;
            }
        }
        self.lookup(kid, algorithm).ok_or_else(|| {
            Status::unauthenticated(match kid {
                Some(kid) => format!(
                    "the token is signed by key {:?}, which the identity provider does not publish",
                    super::bounded(kid)
                ),
                None => "the token names no key (kid) and no single key matches".to_owned(),
            })
        })
    }

    fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self
            .shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut matching = keys
            .iter()
            .filter(|key| key.algorithm == algorithm)
            .filter(|key| kid.is_none() || key.kid.as_deref() == kid);
        let first = matching.next()?;
        // Without a kid, only an unambiguous key is used.
        if kid.is_none() && matching.next().is_some() {
            return None;
        }
        Some(first.key.clone())
    }
}

impl Shared {
    async fn refresh(&self) {
        match fetch_all(&self.sources, &self.http).await {
            Ok(keys) if !keys.is_empty() => {
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
            }
            Ok(_) => tracing::warn!("JWKS refresh found no usable key; keeping the old keys"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "JWKS refresh failed; keeping the old keys");
            }
        }
    }
}

async fn refresh_periodically(shared: Weak<Shared>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        *shared.last_refresh.lock().await = Instant::now();
        shared.refresh().await;
    }
}

async fn fetch_all(sources: &Sources, http: &reqwest::Client) -> anyhow::Result<Vec<Key>> {
    let mut keys = Vec::new();
    for path in &sources.files {
        let text = tokio::fs::read_to_string(path).await.map_err(|error| {
            anyhow::anyhow!("cannot read JWKS file {}: {error}", path.display())
        })?;
        keys.extend(parse(&text).map_err(|error| {
            anyhow::anyhow!("JWKS file {} is not a key set: {error}", path.display())
        })?);
    }
    let mut urls = sources.urls.clone();
    for issuer in &sources.discover {
        urls.push(discover(issuer, http).await?);
    }
    for url in &urls {
        let text = get(http, url).await?;
        keys.extend(
            parse(&text)
                .map_err(|error| anyhow::anyhow!("{url} does not serve a key set: {error}"))?,
        );
    }
    Ok(keys)
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("cannot fetch {url}: {error}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    response
        .text()
        .await
        .map_err(|error| anyhow::anyhow!("cannot read {url}: {error}"))
}

/// The `jwks_uri` of an OIDC issuer.
async fn discover(issuer: &str, http: &reqwest::Client) -> anyhow::Result<String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document: serde_json::Value = serde_json::from_str(&get(http, &url).await?)
        .map_err(|error| anyhow::anyhow!("{url} is not JSON: {error}"))?;
    document
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{url} names no jwks_uri"))
}

/// The RS256 and ES256 signing keys of a JWKS document; others are skipped.
fn parse(text: &str) -> anyhow::Result<Vec<Key>> {
    let set: JwkSet = serde_json::from_str(text)?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    Ok(keys)
}

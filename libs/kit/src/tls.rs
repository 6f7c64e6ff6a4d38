//! TLS for the gRPC servers and for the calls between services (rustls on
//! aws-lc-rs): the certificate and key come from PEM files (a cert-manager
//! secret mounted in the pod) and are read again when the files change, so
//! a renewed certificate is served without a restart. With a client CA,
//! every caller must present a certificate it signed (mutual TLS); the
//! services present their own certificate when calling each other.
//!
//! Kubernetes' gRPC probes speak plaintext only: the health service is also
//! served on the plaintext admin port (`--admin-listen`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use clap::Args;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How often the certificate files are checked for changes, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS of this service's server and of its calls to the others.
#[derive(Debug, Clone, Args, Default)]
pub struct TlsOptions {
    /// PEM certificate chain this service presents, as a server and, for
    /// mutual TLS, as a client of the other services. Read again when it
    /// changes.
    #[arg(long, env = "REBALANCER_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "REBALANCER_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle that signs the certificates of allowed callers: with
    /// it, every caller must present one (mutual TLS).
    #[arg(
        long,
        env = "REBALANCER_TLS_CLIENT_CA_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_client_ca_file: Option<PathBuf>,
    /// PEM CA bundle trusted when calling the other services over https.
    #[arg(long, env = "REBALANCER_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether the server speaks TLS.
    #[must_use]
    pub fn serves_tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// The server's TLS acceptor, if TLS is configured.
    ///
    /// # Errors
    /// When a file cannot be read or holds no usable certificate or key.
    pub fn acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        let provider = provider();
        let identity = Arc::new(ReloadingIdentity::load(cert, key, provider.clone())?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.tls_client_ca_file {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                        .build()
                        .context("client CA")?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(identity);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// The TLS settings of calls to the other services (trusting
    /// `--tls-ca-file`, presenting this service's certificate when it has
    /// one), if a CA is configured.
    ///
    /// # Errors
    /// When a file cannot be read.
    pub fn client_config(&self) -> anyhow::Result<Option<Arc<ClientConfig>>> {
        let Some(ca) = &self.tls_ca_file else {
            return Ok(None);
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(ca)?);
        let mut config = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_cert_resolver(Arc::new(ReloadingIdentity::load(cert, key, provider)?)),
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading CA bundle {}", path.display()))?
    {
        roots
            .add(cert.with_context(|| format!("a certificate in {}", path.display()))?)
            .with_context(|| format!("a CA certificate of {}", path.display()))?;
    }
    anyhow::ensure!(!roots.is_empty(), "{} holds no certificate", path.display());
    Ok(roots)
}

/// A certificate and key read from files, read again when either changes.
#[derive(Debug)]
struct ReloadingIdentity {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    identity: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

impl ReloadingIdentity {
    fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let identity = Arc::new(read_identity(cert, key, &provider)?);
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            state: Mutex::new(Loaded {
                identity,
                stamps: (modified(cert), modified(key)),
                checked: Instant::now(),
            }),
        })
    }

    /// The current identity, read again first if the files changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != state.stamps {
                match read_identity(&self.cert, &self.key, &self.provider) {
                    Ok(identity) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        state.identity = Arc::new(identity);
                        state.stamps = stamps;
                    }
                    // A half-written renewal: keep serving the old one.
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "TLS certificate not reloaded");
                    }
                }
            }
        }
        state.identity.clone()
    }
}

fn read_identity(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("a certificate in {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("the private key in {}", key.display()))?;
    let identity = CertifiedKey::new(chain, signing);
    identity
        .keys_match()
        .with_context(|| format!("{} is not the key of {}", key.display(), cert.display()))?;
    Ok(identity)
}

impl ResolvesServerCert for ReloadingIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for ReloadingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts connections on `listener` and completes their TLS handshakes
/// concurrently (a slow or failed handshake holds up no one else); stops
/// when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

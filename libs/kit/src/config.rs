//! Typed configuration shared by every service. Each value comes from, in
//! increasing priority: its default, an environment variable, a command-line
//! flag (clap's `env` support). Validated once at start-up.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// Limits and behaviour of the gRPC server.
#[derive(Debug, Clone, Args)]
pub struct ServerOptions {
    /// Deadline of every request handler, in seconds (streams excluded).
    #[arg(long, env = "REBALANCER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Requests handled at once across all connections; more are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "REBALANCER_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    /// Requests of one tenant handled at once; more are answered
    /// RESOURCE_EXHAUSTED, so one tenant's burst sheds only its own calls.
    #[arg(
        long,
        env = "REBALANCER_TENANT_CONCURRENCY_LIMIT",
        default_value_t = 256
    )]
    pub tenant_concurrency_limit: usize,
    /// Calls one tenant may make per second (0: no limit); the services'
    /// own calls are not counted. More are answered RESOURCE_EXHAUSTED with
    /// a retry delay.
    #[arg(long, env = "REBALANCER_TENANT_RATE_LIMIT", default_value_t = 0)]
    pub tenant_rate_limit: u32,
    /// Calls one tenant may make at once above its rate (0: one second's worth).
    #[arg(long, env = "REBALANCER_TENANT_RATE_BURST", default_value_t = 0)]
    pub tenant_rate_burst: u32,
    /// Largest request or response message, in bytes.
    #[arg(long, env = "REBALANCER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Seconds a client connection lives before the server asks it to
    /// reconnect (GOAWAY), so long-lived HTTP/2 channels spread over new
    /// replicas behind a Kubernetes Service; 0 keeps connections forever.
    #[arg(
        long,
        env = "REBALANCER_MAX_CONNECTION_AGE_SECS",
        default_value_t = 300
    )]
    pub max_connection_age_secs: u64,
    /// Seconds to let in-flight requests finish after a shutdown signal.
    #[arg(long, env = "REBALANCER_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Tenant assumed when an unauthenticated request carries no
    /// `x-tenant-id` (dev only: needs `--insecure-accept-unauthenticated`).
    #[arg(long, env = "REBALANCER_DEFAULT_TENANT")]
    pub default_tenant: Option<String>,
    /// Plaintext port serving only the health service, for Kubernetes
    /// probes (which cannot speak TLS); for example 0.0.0.0:9090.
    #[arg(long, env = "REBALANCER_ADMIN_LISTEN")]
    pub admin_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub auth: crate::auth::AuthOptions,
    #[command(flatten)]
    pub tls: crate::tls::TlsOptions,
}

impl ServerOptions {
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Checks the values once at start-up.
    ///
    /// # Errors
    /// Describes the first value out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.request_timeout_secs > 0,
            "--request-timeout-secs must be positive"
        );
        anyhow::ensure!(
            self.concurrency_limit > 0,
            "--concurrency-limit must be positive"
        );
        anyhow::ensure!(
            self.tenant_concurrency_limit > 0,
            "--tenant-concurrency-limit must be positive"
        );
        anyhow::ensure!(
            self.max_message_bytes >= 4096,
            "--max-message-bytes must be at least 4096"
        );
        if let Some(tenant) = &self.default_tenant {
            anyhow::ensure!(
                crate::context::tenant_problem(tenant).is_none(),
                "--default-tenant {tenant:?} is not a valid tenant id"
            );
        }
        Ok(())
    }

    /// The authenticator these options describe (see
    /// [`crate::auth::Authenticator::from_options`]).
    ///
    /// # Errors
    /// When callers could not be authenticated, or the keys cannot be loaded.
    pub async fn authenticator(
        &self,
        dev_secret: Option<Vec<u8>>,
    ) -> anyhow::Result<crate::auth::Authenticator> {
        crate::auth::Authenticator::from_options(
            &self.auth,
            dev_secret,
            self.default_tenant.clone(),
        )
        .await
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            concurrency_limit: 1024,
            tenant_concurrency_limit: 256,
            tenant_rate_limit: 0,
            tenant_rate_burst: 0,
            max_message_bytes: 16 * 1024 * 1024,
            max_connection_age_secs: 300,
            shutdown_grace_secs: 20,
            default_tenant: None,
            admin_listen: None,
            auth: crate::auth::AuthOptions::default(),
            tls: crate::tls::TlsOptions::default(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs and traces.
#[derive(Debug, Clone, Args, Default)]
pub struct TelemetryOptions {
    /// Log format.
    #[arg(long, env = "REBALANCER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in `tracing` EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Which spans are exported, in `tracing` EnvFilter syntax, apart from
    /// the log filter (`RUST_LOG=warn` keeps every request's span).
    #[arg(long, env = "REBALANCER_TRACE_FILTER", default_value = "info")]
    pub trace_filter: String,
    /// OTLP/gRPC endpoint to export traces to, for example http://otel-collector:4317.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Service name reported with traces.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "rebalancer")]
    pub service_name: String,
}

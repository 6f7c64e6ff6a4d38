//! `rebalancer serve` processes for tests that run the services as
//! Kubernetes does: spawned with their flags, logs to a file, killed when
//! dropped, ready when their health check answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rebalancer_proto::client::TracedChannel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::binary::rebalancer_binary;

/// How long a process may take to serve.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A port free now.
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// A running `rebalancer` process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `rebalancer <args>`, its output in `dir/<name>.log`.
    ///
    /// # Panics
    /// When the process cannot be spawned.
    #[must_use]
    pub fn spawn(name: &str, args: &[String], dir: &Path) -> Self {
        Self::spawn_with_env(name, args, dir, &[])
    }

    /// [`Process::spawn`] with environment variables set.
    ///
    /// # Panics
    /// When the process cannot be spawned.
    #[must_use]
    pub fn spawn_with_env(name: &str, args: &[String], dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(rebalancer_binary())
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("REBALANCER_INSECURE_ACCEPT_UNAUTHENTICATED")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn rebalancer");
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the process's log.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls the health service on `channel` until it answers SERVING.
    ///
    /// # Panics
    /// When the process exits or is not serving in time.
    pub async fn wait_ready(&mut self, channel: &TracedChannel) {
        let started = Instant::now();
        let mut health = HealthClient::new(channel.clone());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(answer) = health.check(HealthCheckRequest::default()).await
                && answer.into_inner().status == i32::from(ServingStatus::Serving)
            {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "{} not serving after {READY_WITHIN:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

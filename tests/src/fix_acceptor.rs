//! The real FIX counterparty of the FIX adapter's tests: QuickFIX's acceptor
//! in `tests/fix/fix_acceptor.py`, started as a process, with its log of
//! every order it received and every fill it made.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Whether `python3` can import QuickFIX. Without it the FIX tests skip, except
/// under `CI=true`, where they fail: CI installs it.
///
/// # Panics
/// Under CI when QuickFIX is missing.
#[must_use]
pub fn quickfix_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import quickfix"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but python3 cannot import quickfix: install it (.ci/run does)"
        );
        eprintln!("skipped: python3 cannot import quickfix (pip install quickfix)");
    }
    found
}

/// A running acceptor, stopped when dropped.
#[derive(Debug)]
pub struct Acceptor {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Acceptor {
    /// Starts the acceptor on `port` with its files under `dir` and the
    /// script's extra `args`; returns once it listens.
    ///
    /// # Panics
    /// When it cannot start.
    #[must_use]
    pub fn start(port: u16, dir: &Path, args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fix/fix_acceptor.py");
        let store = dir.join("acceptor");
        let stderr = std::fs::File::create(dir.join("acceptor.log")).expect("acceptor log");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--store-dir")
            .arg(&store)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn the FIX acceptor");
        let stdout = child.stdout.take().expect("acceptor stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("acceptor output");
        assert!(
            line.starts_with("READY"),
            "acceptor did not start: {line:?}, see {}",
            dir.join("acceptor.log").display()
        );
        Self {
            child,
            port,
            log: store.join("orders.jsonl"),
        }
    }

    /// Every record of the acceptor's log, in order.
    #[must_use]
    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `--fix-config` file for a session with the acceptor on `port`.
#[must_use]
pub fn config_file(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("fix.toml");
    let text = format!(
        r#"[session]
begin_string = "FIX.4.4"
sender_comp_id = "REBAL"
target_comp_id = "BROKER"
connection_host = "127.0.0.1"
connection_port = {port}
heartbeat_interval = 5
reconnect_interval = 1

[orders]
account = "TEST-ACCOUNT"
cash_order_qty = true
extended_hours_tag = 336
extended_hours_value = "EXT"
report_timeout_seconds = 10
"#
    );
    std::fs::write(&path, text).expect("write the FIX config");
    path
}

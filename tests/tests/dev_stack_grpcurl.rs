//! End to end as an operator sees it: the real `rebalancer dev` binary on a
//! free port, driven with the real `grpcurl` (reflection v1alpha, as grpcurl
//! 1.8.6 speaks it).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rebalancer_tests::binary::{grpcurl, rebalancer_binary};
use serde_json::Value;

const SERVICES: [&str; 8] = [
    "rebalancer.target.v1.PortfolioService",
    "rebalancer.target.v1.AssignmentService",
    "rebalancer.monitor.v1.MonitorService",
    "rebalancer.execution.v1.AccountService",
    "rebalancer.execution.v1.MarketDataService",
    "rebalancer.execution.v1.RunService",
    "rebalancer.execution.v1.BatchService",
    "rebalancer.execution.v1.OrderService",
];

/// Alpaca's documentation example, as grpcurl JSON.
const BALANCED: &str = r#"{
  "idempotency_key": "balanced-1",
  "name": "Balanced",
  "description": "A balanced portfolio of stocks and bonds",
  "weights": [
    {"type": "WEIGHT_TYPE_CASH", "percent": "5"},
    {"type": "WEIGHT_TYPE_ASSET", "symbol": "SPY", "percent": "60"},
    {"type": "WEIGHT_TYPE_ASSET", "symbol": "TLT", "percent": "35"}
  ],
  "cooldown_days": 7,
  "rebalance_conditions": [
    {"type": "CONDITION_TYPE_DRIFT_BAND", "sub_type": "CONDITION_SUB_TYPE_ABSOLUTE", "percent": "5"},
    {"type": "CONDITION_TYPE_DRIFT_BAND", "sub_type": "CONDITION_SUB_TYPE_RELATIVE", "percent": "20"}
  ]
}"#;

/// The dev stack process; killed if the test fails before stopping it.
struct DevStack {
    child: Child,
    address: String,
    /// Kept open: the stack may print after its address.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    _data: tempfile::TempDir,
}

impl DevStack {
    fn start(binary: &Path) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(binary)
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rebalancer dev");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // The binary prints its address once the listener is bound: no sleep needed.
        let address = loop {
            let line = lines
                .next()
                .expect("dev stack exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        Self {
            child,
            address,
            _stdout: lines,
            _data: data,
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait for dev stack")
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Grpcurl {
    path: PathBuf,
    address: String,
}

struct CallResult {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Grpcurl {
    fn call(&self, headers: &[&str], args: &[&str], data: Option<&str>) -> CallResult {
        let mut command = Command::new(&self.path);
        command.arg("-plaintext");
        for header in headers {
            command.args(["-H", header]);
        }
        if let Some(data) = data {
            command.args(["-d", data]);
        }
        command.arg(&self.address).args(args);
        let output = command.output().expect("run grpcurl");
        CallResult {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn json(&self, headers: &[&str], method: &str, data: &str) -> Value {
        let result = self.call(headers, &[method], Some(data));
        assert!(result.ok, "{method} failed: {}", result.stderr);
        serde_json::from_str(&result.stdout).expect("grpcurl prints JSON")
    }

    /// Sends an invalid create and returns grpcurl's error text.
    fn refused(&self, data: &str) -> String {
        let result = self.call(
            &[],
            &["rebalancer.target.v1.PortfolioService/CreatePortfolio"],
            Some(data),
        );
        assert!(
            !result.ok,
            "an invalid portfolio was accepted: {}",
            result.stdout
        );
        assert!(
            result.stderr.contains("Code: InvalidArgument"),
            "{}",
            result.stderr
        );
        result.stderr
    }
}

fn balanced_with(from: &str, to: &str) -> String {
    let changed = BALANCED.replace(from, to);
    assert_ne!(changed, BALANCED, "{from} not found");
    changed.replace("\"idempotency_key\": \"balanced-1\",", "")
}

#[test]
fn operator_session_with_grpcurl() {
    let Some(grpcurl_path) = grpcurl() else {
        return;
    };
    let stack = DevStack::start(&rebalancer_binary());
    let grpcurl = Grpcurl {
        path: grpcurl_path,
        address: stack.address.clone(),
    };

    // Reflection lists the nine services plus health and reflection.
    let listed = grpcurl.call(&[], &["list"], None);
    assert!(listed.ok, "{}", listed.stderr);
    let names: Vec<&str> = listed.stdout.lines().collect();
    for service in SERVICES.iter().chain(&[
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]) {
        assert!(names.contains(service), "{service} missing from {names:?}");
    }

    // Every service is describable and healthy.
    for service in SERVICES {
        let described = grpcurl.call(&[], &["describe", service], None);
        assert!(
            described.ok && described.stdout.contains("is a service"),
            "{}",
            described.stderr
        );
        let health = grpcurl.json(
            &[],
            "grpc.health.v1.Health/Check",
            &format!(r#"{{"service":"{service}"}}"#),
        );
        assert_eq!(health["status"], "SERVING", "{service}");
    }

    // The default tenant applies when none is sent.
    let created = grpcurl.json(
        &[],
        "rebalancer.target.v1.PortfolioService/CreatePortfolio",
        BALANCED,
    );
    let portfolio = &created["portfolio"];
    assert_eq!(portfolio["name"], "Balanced");
    assert_eq!(portfolio["status"], "PORTFOLIO_STATUS_ACTIVE");
    assert_eq!(portfolio["cooldownDays"], 7);
    let weights: Vec<(String, String, String)> = portfolio["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|w| {
            (
                w["type"].as_str().unwrap_or_default().to_owned(),
                w["symbol"].as_str().unwrap_or_default().to_owned(),
                w["percent"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        [
            ("WEIGHT_TYPE_CASH".to_owned(), String::new(), "5".to_owned()),
            (
                "WEIGHT_TYPE_ASSET".to_owned(),
                "SPY".to_owned(),
                "60".to_owned()
            ),
            (
                "WEIGHT_TYPE_ASSET".to_owned(),
                "TLT".to_owned(),
                "35".to_owned()
            ),
        ]
    );
    let conditions = portfolio["rebalanceConditions"]
        .as_array()
        .expect("conditions");
    assert_eq!(conditions[0]["subType"], "CONDITION_SUB_TYPE_ABSOLUTE");
    assert_eq!(conditions[0]["percent"], "5");
    assert_eq!(conditions[1]["subType"], "CONDITION_SUB_TYPE_RELATIVE");
    assert_eq!(conditions[1]["percent"], "20");

    // Read back unchanged; the same idempotency key returns the same portfolio.
    let id = portfolio["id"].as_str().expect("id");
    let read = grpcurl.json(
        &[],
        "rebalancer.target.v1.PortfolioService/GetPortfolio",
        &format!(r#"{{"portfolio_id":"{id}"}}"#),
    );
    assert_eq!(&read["portfolio"], portfolio);
    let replayed = grpcurl.json(
        &[],
        "rebalancer.target.v1.PortfolioService/CreatePortfolio",
        BALANCED,
    );
    assert_eq!(replayed["portfolio"]["id"], portfolio["id"]);

    // Each invalid variant is refused with the field named.
    assert!(
        grpcurl
            .refused(&balanced_with("\"60\"", "\"59.995\""))
            .contains("weights[1].percent")
    );
    assert!(
        grpcurl
            .refused(&balanced_with("\"35\"", "\"34\""))
            .contains("weights: percents sum to 99")
    );
    assert!(
        grpcurl
            .refused(&balanced_with(
                "\"cooldown_days\": 7",
                "\"cooldown_days\": -1"
            ))
            .contains("cooldown_days")
    );
    let two_calendars = balanced_with(
        "\"percent\": \"20\"}",
        "\"percent\": \"20\"}, {\"type\": \"CONDITION_TYPE_CALENDAR\", \"sub_type\": \"CONDITION_SUB_TYPE_MONTHLY\", \"day\": \"1\"}, {\"type\": \"CONDITION_TYPE_CALENDAR\", \"sub_type\": \"CONDITION_SUB_TYPE_WEEKLY\", \"day\": \"monday\"}",
    );
    assert!(
        grpcurl
            .refused(&two_calendars)
            .contains("rebalance_conditions[3].type")
    );

    // Nothing new was stored; another tenant sees nothing.
    let listed = grpcurl.json(
        &[],
        "rebalancer.target.v1.PortfolioService/ListPortfolios",
        "{}",
    );
    assert_eq!(listed["portfolios"].as_array().map(Vec::len), Some(1));
    let other = grpcurl.json(
        &["x-tenant-id: firm-b"],
        "rebalancer.target.v1.PortfolioService/ListPortfolios",
        "{}",
    );
    assert!(
        other["portfolios"].as_array().is_none_or(Vec::is_empty),
        "{other}"
    );

    // SIGTERM drains and exits cleanly.
    let status = stack.terminate();
    assert!(status.success(), "dev stack exited with {status}");
}

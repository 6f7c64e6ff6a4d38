//! The Grafana dashboard in `k8s/observability` uses only metrics the
//! services export (`rebalancer_kit::metrics::PROMETHEUS_NAMES`, each of
//! them seen in a scrape by `tls.rs`), and is valid JSON with a query per
//! panel.

use rebalancer_kit::metrics::PROMETHEUS_NAMES;

#[test]
fn the_dashboard_uses_exported_metrics_only() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../k8s/observability/grafana-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("rebalancer_") || word.starts_with("rpc_server_")) {
                    continue;
                }
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                assert!(
                    PROMETHEUS_NAMES.contains(&base),
                    "panel {:?} uses {word}, which no service exports",
                    panel["title"]
                );
            }
        }
    }
}

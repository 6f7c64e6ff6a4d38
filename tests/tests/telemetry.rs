//! Traces and metrics reach a real OTLP/gRPC receiver (the collector's own
//! protocol, from `opentelemetry-proto`): `rebalancer serve target` exports
//! a server span named `package.Service/Method` that continues the caller's
//! W3C trace, and the RED histogram of the calls made (a client error among
//! them); its JSON log lines carry the request's trace id. On the
//! three-process topology, one trace follows an `EvaluateNow` through the
//! monitor's shard, the target's stream and the execution's run down to the
//! transmission, the slice, the child order and the booking of its fills.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use rebalancer_proto::client::{CallContext, ClientOptions, lazy_channel};
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{GetPortfolioRequest, ListPortfoliosRequest};
use rebalancer_tests::process::{Process, free_port};
use tonic::{Request, Response, Status};

/// What the receiver got: spans (name, trace id, status code, service)
/// and metric names.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<(String, Vec<u8>, i32, String)>,
    metrics: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.0.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|resource| resource.attributes.iter())
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(name),
                    ) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let code = span.status.map_or(0, |status| status.code);
                    received
                        .spans
                        .push((span.name, span.trace_id, code, service.clone()));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut received = self.0.lock().expect("lock");
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                received
                    .metrics
                    .extend(scope.metrics.into_iter().map(|metric| metric.name));
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Starts the receiver; returns it and its address.
async fn start_receiver() -> (Receiver, std::net::SocketAddr) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = listener.local_addr().expect("address");
    let serving = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving.clone()))
            .add_service(MetricsServiceServer::new(serving))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    (receiver, collector)
}

#[tokio::test]
async fn spans_and_metrics_reach_an_otlp_receiver() {
    let (receiver, collector) = start_receiver().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--log-format".to_owned(), "json".to_owned()];
    args.extend(serve_args(
        &format!("http://{collector}"),
        "target",
        &address,
        &dir.path().join("target.db"),
        &[],
        &[],
    ));
    let mut target = Process::spawn_with_env(
        "target",
        &args,
        dir.path(),
        &[
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            // The per-request "finished processing request" lines.
            ("RUST_LOG", "info,tower_http=debug"),
        ],
    );
    let channel = lazy_channel(&ClientOptions::new(format!("http://{address}"))).expect("channel");
    target.wait_ready(&channel).await;

    // A call in a trace of the caller's, and a call that fails.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut traced = CallContext::tenant("firm-a").request(ListPortfoliosRequest::default());
    traced.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("ascii"),
    );
    let mut portfolios = PortfolioServiceClient::new(channel);
    portfolios.list_portfolios(traced).await.expect("list");
    let missing = portfolios
        .get_portfolio(CallContext::tenant("firm-a").request(GetPortfolioRequest {
            portfolio_id: "nope".to_owned(),
            ..GetPortfolioRequest::default()
        }))
        .await;
    assert!(missing.is_err());

    let started = Instant::now();
    loop {
        let done = {
            let received = receiver.0.lock().expect("lock");
            let listed = received.spans.iter().any(|(name, id, _, _)| {
                name == "rebalancer.target.v1.PortfolioService/ListPortfolios"
                    && hex(id) == trace_id
            });
            let red = received
                .metrics
                .iter()
                .any(|name| name == "rpc.server.call.duration");
            listed && red
        };
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not received: {:?}\n{}",
            receiver.0.lock().expect("lock"),
            target.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // JSON log lines of the request carry its trace id.
    let logged = target.log();
    assert!(
        logged.lines().any(
            |line| line.contains(&format!("\"trace_id\":\"{trace_id}\""))
                && line.contains("ListPortfolios")
        ),
        "no JSON log line with trace id {trace_id}:\n{}",
        target.log_tail()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A collector that is not there: the first failed export is logged with
/// its reason, once, not at every batch; calls are served all along.
#[tokio::test]
async fn a_dead_collector_is_logged_once() {
    let dead = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", free_port());
    let args = serve_args(
        &format!("http://{dead}"),
        "target",
        &address,
        &dir.path().join("target.db"),
        &[],
        &[],
    );
    let mut target = Process::spawn_with_env(
        "target",
        &args,
        dir.path(),
        // Quiet logs: the outage is still reported, and spans still made.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100"), ("RUST_LOG", "warn")],
    );
    let channel = lazy_channel(&ClientOptions::new(format!("http://{address}"))).expect("channel");
    target.wait_ready(&channel).await;
    let mut portfolios = PortfolioServiceClient::new(channel);
    let failures = |log: &str| {
        log.lines()
            .filter(|line| line.contains("telemetry export failed"))
            .count()
    };
    let started = Instant::now();
    while failures(&target.log()) == 0 {
        portfolios
            .list_portfolios(
                CallContext::tenant("firm-a").request(ListPortfoliosRequest::default()),
            )
            .await
            .expect("served while the collector is down");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no export failure logged:\n{}",
            target.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Many more batches fail (one every 100 ms while calls come in).
    for _ in 0..20 {
        portfolios
            .list_portfolios(
                CallContext::tenant("firm-a").request(ListPortfoliosRequest::default()),
            )
            .await
            .expect("served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = target.log();
    assert_eq!(failures(&log), 1, "{}", target.log_tail());
    let line = log
        .lines()
        .find(|line| line.contains("telemetry export failed"))
        .expect("line");
    assert!(line.contains(&dead) && line.contains("reason"), "{line}");
}

/// `rebalancer serve <service>` arguments exporting to `collector` (a URL).
fn serve_args(
    collector: &str,
    service: &str,
    address: &str,
    database: &std::path::Path,
    peers: &[(&str, String)],
    clock: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--otlp-endpoint",
        collector,
        "--service-name",
        service,
        "serve",
        service,
        "--listen",
        address,
        "--database-url",
        &format!("sqlite://{}", database.display()),
        "--insecure-accept-unauthenticated",
    ]
    .map(str::to_owned)
    .to_vec();
    for (flag, url) in peers {
        args.push((*flag).to_owned());
        args.push(url.clone());
    }
    args.extend(clock.iter().cloned());
    args
}

#[tokio::test]
async fn one_trace_from_evaluate_now_to_the_fills() {
    use rebalancer_proto::common::ApprovalMode;
    use rebalancer_proto::execution::account_service_client::AccountServiceClient;
    use rebalancer_proto::execution::run_service_client::RunServiceClient;
    use rebalancer_proto::execution::{ListRunsRequest, RunStatus, UpsertAccountRequest};
    use rebalancer_proto::monitor::EvaluateNowRequest;
    use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
    use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
    use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest};

    let (receiver, collector) = start_receiver().await;
    let collector = format!("http://{collector}");
    let dir = tempfile::tempdir().expect("temp dir");
    let [target_address, monitor_address, execution_address] =
        [0, 1, 2].map(|_| format!("127.0.0.1:{}", free_port()));
    let url = |address: &str| format!("http://{address}");
    // One simulated clock, a Monday morning in New York, a minute a second.
    let clock = [
        "--sim-start",
        "2026-03-02T15:00:00Z",
        "--sim-epoch",
        &chrono::Utc::now().to_rfc3339(),
        "--speed",
        "60",
    ]
    .map(str::to_owned);
    let environment = [("OTEL_BSP_SCHEDULE_DELAY", "200"), ("RUST_LOG", "warn")];
    let mut target = Process::spawn_with_env(
        "target",
        &serve_args(
            &collector,
            "target",
            &target_address,
            &dir.path().join("target.db"),
            &[("--execution-url", url(&execution_address))],
            &clock,
        ),
        dir.path(),
        &environment,
    );
    let mut execution = Process::spawn_with_env(
        "execution",
        &serve_args(
            &collector,
            "execution",
            &execution_address,
            &dir.path().join("execution.db"),
            &[
                ("--target-url", url(&target_address)),
                ("--monitor-url", url(&monitor_address)),
            ],
            &clock,
        ),
        dir.path(),
        &environment,
    );
    let mut monitor = Process::spawn_with_env(
        "monitor",
        &serve_args(
            &collector,
            "monitor",
            &monitor_address,
            &dir.path().join("monitor.db"),
            &[
                ("--target-url", url(&target_address)),
                ("--execution-url", url(&execution_address)),
            ],
            &clock,
        ),
        dir.path(),
        &environment,
    );
    let channel = |address: &str| lazy_channel(&ClientOptions::new(url(address))).expect("channel");
    target.wait_ready(&channel(&target_address)).await;
    execution.wait_ready(&channel(&execution_address)).await;
    monitor.wait_ready(&channel(&monitor_address)).await;

    let firm = CallContext::tenant("firm-a");
    let portfolio = PortfolioServiceClient::new(channel(&target_address))
        .create_portfolio(firm.request(CreatePortfolioRequest {
            name: "Balanced".to_owned(),
            weights: vec![
                rebalancer_tests::weight("", "5"),
                rebalancer_tests::weight("SPY", "60"),
                rebalancer_tests::weight("TLT", "35"),
            ],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio")
        .id;
    AccountServiceClient::new(channel(&execution_address))
        .upsert_account(firm.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "25000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    AssignmentServiceClient::new(channel(&target_address))
        .assign(firm.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio,
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Auto.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");

    // The operator's EvaluateNow, in a trace of the caller's.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut request = firm.request(EvaluateNowRequest {
        idempotency_key: "now-1".to_owned(),
        account_ids: vec!["acct-1".to_owned()],
        ..EvaluateNowRequest::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .expect("ascii"),
    );
    MonitorServiceClient::new(channel(&monitor_address))
        .evaluate_now(request)
        .await
        .expect("evaluate now");

    // The run the cycle opened is worked to the end ...
    let mut runs = RunServiceClient::new(channel(&execution_address));
    let started = Instant::now();
    loop {
        let listed = runs
            .list_runs(firm.request(ListRunsRequest {
                account_id: "acct-1".to_owned(),
                ..ListRunsRequest::default()
            }))
            .await
            .expect("runs")
            .into_inner()
            .runs;
        if listed.iter().any(|run| {
            matches!(
                run.status(),
                RunStatus::CompletedSuccess | RunStatus::CompletedAdjusted
            )
        }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run not completed: {listed:?}\n{}\n{}",
            monitor.log_tail(),
            execution.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ... and every step of it is in the caller's trace, from each service.
    let wanted = [
        (
            "monitor",
            "rebalancer.monitor.v1.MonitorService/EvaluateNow",
        ),
        ("monitor", "work_shard"),
        (
            "target",
            "rebalancer.target.v1.AssignmentService/StreamAssignments",
        ),
        (
            "execution",
            "rebalancer.execution.v1.AccountService/StreamHoldings",
        ),
        ("execution", "rebalancer.execution.v1.RunService/CreateRun"),
        ("execution", "transmit"),
        ("execution", "start_block"),
        ("execution", "work_slice"),
        ("execution", "child_order"),
        ("execution", "book_fills"),
        ("execution", "complete_runs"),
    ];
    let started = Instant::now();
    loop {
        let missing: Vec<_> = {
            let received = receiver.0.lock().expect("lock");
            wanted
                .iter()
                .filter(|(service, span)| {
                    !received.spans.iter().any(|(name, id, _, from)| {
                        name == span && from == service && hex(id) == trace_id
                    })
                })
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not in trace {trace_id}: {missing:?}; received: {:?}",
            receiver
                .0
                .lock()
                .expect("lock")
                .spans
                .iter()
                .map(|(name, id, _, from)| format!("{from}:{name}:{}", &hex(id)[..8]))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Probes are not traced (every process was polled for health).
    let received = receiver.0.lock().expect("lock");
    assert!(
        !received
            .spans
            .iter()
            .any(|(name, ..)| name.starts_with("grpc.health")),
        "health checks were traced"
    );
}

//! Traces and metrics reach a real OTLP/gRPC receiver (the collector's own
//! protocol, from `opentelemetry-proto`): `rebalancer serve target` exports
//! a server span named `package.Service/Method` that continues the caller's
//! W3C trace, and the RED histogram of the calls made (a client error among
//! them); its JSON log lines carry the request's trace id.

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

/// What the receiver got: spans (name, trace id, status code) and metric names.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<(String, Vec<u8>, i32)>,
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
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let code = span.status.map_or(0, |status| status.code);
                    received.spans.push((span.name, span.trace_id, code));
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

#[tokio::test]
async fn spans_and_metrics_reach_an_otlp_receiver() {
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

    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = [
        "--otlp-endpoint",
        &format!("http://{collector}"),
        "--log-format",
        "json",
        "serve",
        "target",
        "--listen",
        &address,
        "--database-url",
        &format!("sqlite://{}", dir.path().join("target.db").display()),
        "--insecure-accept-unauthenticated",
    ]
    .map(str::to_owned)
    .to_vec();
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
            let listed = received.spans.iter().any(|(name, id, _)| {
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

//! The three services as Kubernetes runs them, with every connection
//! encrypted: PostgreSQL over TLS (`sslmode=require`), mutual TLS between the
//! services and with their callers (certificates of one CA), tokens on top,
//! and health on the plaintext admin port for the probes. A caller without a
//! certificate, with one from another CA, or in plaintext is refused; a
//! renewed certificate is served without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rebalancer_kit::testing::TestDatabase;
use rebalancer_kit::testing::identity::{ISSUER, IdentityProvider};
use rebalancer_kit::tls::TlsOptions;
use rebalancer_proto::access::Role;
use rebalancer_proto::client::{CallContext, ClientOptions, TracedChannel, lazy_channel};
use rebalancer_proto::common::ApprovalMode;
use rebalancer_proto::execution::UpsertAccountRequest;
use rebalancer_proto::execution::account_service_client::AccountServiceClient;
use rebalancer_proto::monitor::monitor_service_client::MonitorServiceClient;
use rebalancer_proto::monitor::{CycleState, EvaluateNowRequest, GetCycleRequest};
use rebalancer_proto::target::assignment_service_client::AssignmentServiceClient;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{AssignRequest, CreatePortfolioRequest, ListPortfoliosRequest};
use rebalancer_tests::pki::{CertFiles, TestCa};
use rebalancer_tests::process::{Process, free_port};
use rebalancer_tests::weight;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// One service process and how to reach it.
struct Service {
    process: Process,
    url: String,
    admin: String,
}

fn client_tls(ca: &Path, identity: Option<&CertFiles>) -> Option<Arc<rustls::ClientConfig>> {
    TlsOptions {
        tls_ca_file: Some(ca.to_owned()),
        tls_cert_file: identity.map(|files| files.cert.clone()),
        tls_key_file: identity.map(|files| files.key.clone()),
        tls_client_ca_file: None,
    }
    .client_config()
    .expect("client tls")
}

fn channel(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> TracedChannel {
    lazy_channel(&ClientOptions::new(url).with_tls(tls)).expect("channel")
}

/// The leaf certificate `address` presents.
async fn presented(
    address: &str,
    ca: &Path,
    identity: &CertFiles,
) -> Option<CertificateDer<'static>> {
    let config = client_tls(ca, Some(identity))?;
    let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
    let name = ServerName::try_from("localhost").ok()?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .ok()?;
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first().cloned())
        .map(CertificateDer::into_owned)
}

/// `GET /metrics` on an admin port, over HTTP/1.1.
async fn scrape(admin: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = admin.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("admin port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn three_services_over_tls_with_mutual_tls_and_postgres_tls() {
    let (Some(target_db), Some(monitor_db), Some(execution_db)) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(dir.path(), "rebalancer-ca");
    let caller = ca.issue("caller", "caller");
    let stranger_ca = TestCa::new(dir.path(), "stranger-ca");
    let stranger = stranger_ca.issue("stranger", "caller");
    let idp = IdentityProvider::new();
    let auth = idp.options();
    let secret = auth.service_secret_file.clone().expect("service secret");

    let names = ["target", "monitor", "execution"];
    let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
    let url_of = |index: usize| format!("https://localhost:{}", ports[index].0);
    let databases = [&target_db, &monitor_db, &execution_db];
    let mut services = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let own = ca.issue(name, &format!("{name}.rebalancer"));
        let (port, admin_port) = ports[index];
        let mut args: Vec<String> = vec![
            "serve".into(),
            (*name).into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin_port}"),
            "--database-url".into(),
            format!("{}?sslmode=require", databases[index].url),
            "--target-url".into(),
            url_of(0),
            "--execution-url".into(),
            url_of(2),
            "--auth-issuer".into(),
            ISSUER.into(),
        ];
        for (flag, path) in [
            ("--auth-jwks-file", idp.jwks_file().to_owned()),
            ("--service-secret-file", secret.clone()),
            ("--tls-cert-file", own.cert.clone()),
            ("--tls-key-file", own.key.clone()),
            ("--tls-client-ca-file", ca.ca_file()),
            ("--tls-ca-file", ca.ca_file()),
        ] {
            args.push(flag.into());
            args.push(path.display().to_string());
        }
        let process = Process::spawn(name, &args, dir.path());
        services.push(Service {
            process,
            url: url_of(index),
            admin: format!("http://127.0.0.1:{admin_port}"),
        });
    }
    for service in &mut services {
        // Probes reach health in plaintext on the admin port.
        let admin = channel(&service.admin, None);
        service.process.wait_ready(&admin).await;
    }

    let trusted = client_tls(&ca.ca_file(), Some(&caller));
    let token = |roles: &[Role]| {
        CallContext::tenant("firm-a").with_token(idp.token("firm-a", "alice@firm-a", roles))
    };
    let advisor = token(&[Role::Advisor, Role::Operator]);

    // Refused: no client certificate, another CA's, plaintext.
    for (what, tls, url) in [
        (
            "no client certificate",
            client_tls(&ca.ca_file(), None),
            services[0].url.clone(),
        ),
        (
            "a stranger's certificate",
            client_tls(&ca.ca_file(), Some(&stranger)),
            services[0].url.clone(),
        ),
        (
            "plaintext",
            None,
            services[0].url.replace("https://", "http://"),
        ),
    ] {
        let answer = PortfolioServiceClient::new(channel(&url, tls))
            .list_portfolios(advisor.request(ListPortfoliosRequest::default()))
            .await;
        assert!(answer.is_err(), "{what} must be refused: {answer:?}");
    }

    // Accepted: the caller's certificate and token; the services call each
    // other over mutual TLS (target checks symbols with execution; the
    // monitor reads target and execution).
    let to_target = channel(&services[0].url, trusted.clone());
    let to_monitor = channel(&services[1].url, trusted.clone());
    let to_execution = channel(&services[2].url, trusted.clone());
    let weights = [weight("", "10"), weight("SPY", "90")];
    let portfolio = PortfolioServiceClient::new(to_target.clone())
        .create_portfolio(advisor.request(CreatePortfolioRequest {
            name: "Core".to_owned(),
            weights: weights.to_vec(),
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("portfolio over mTLS")
        .into_inner()
        .portfolio
        .expect("portfolio");
    AccountServiceClient::new(to_execution.clone())
        .upsert_account(advisor.request(UpsertAccountRequest {
            account_id: "acct-1".to_owned(),
            cash: "10000".to_owned(),
            ..UpsertAccountRequest::default()
        }))
        .await
        .expect("account");
    AssignmentServiceClient::new(to_target.clone())
        .assign(advisor.request(AssignRequest {
            account_id: "acct-1".to_owned(),
            portfolio_id: portfolio.id.clone(),
            rebalancing_enabled: true,
            approval_mode: ApprovalMode::Manual.into(),
            ..AssignRequest::default()
        }))
        .await
        .expect("assign");
    let mut monitor = MonitorServiceClient::new(to_monitor);
    let cycle = monitor
        .evaluate_now(advisor.request(EvaluateNowRequest {
            idempotency_key: "tls-check".to_owned(),
            account_ids: vec!["acct-1".to_owned()],
            ..EvaluateNowRequest::default()
        }))
        .await
        .expect("evaluate")
        .into_inner()
        .cycle
        .expect("cycle");
    let started = Instant::now();
    let cycle = loop {
        let current = monitor
            .get_cycle(advisor.request(GetCycleRequest {
                cycle_id: cycle.id.clone(),
            }))
            .await
            .expect("cycle")
            .into_inner()
            .cycle
            .expect("cycle");
        if current.state() == CycleState::Completed {
            break current;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cycle not completed: {current:?}\n{}",
            services[1].process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(cycle.accounts_evaluated, 1, "{cycle:?}");

    // Prometheus scrapes the admin port: the calls just made, by method and
    // status (RED), and the cycle's accounts.
    let target_metrics = scrape(&services[0].admin).await;
    assert!(
        target_metrics.contains(
            "rpc_server_call_duration_seconds_count{rpc_grpc_status_code=\"0\",rpc_method=\"/rebalancer.target.v1.PortfolioService/CreatePortfolio\"} 1"
        ),
        "{target_metrics}"
    );
    let monitor_metrics = scrape(&services[1].admin).await;
    assert!(
        monitor_metrics
            .contains("rebalancer_monitor_accounts_evaluated_total{tenant=\"firm-a\"} 1"),
        "{monitor_metrics}"
    );
    assert!(
        monitor_metrics
            .contains("rebalancer_monitor_cycle_duration_seconds_count{trigger=\"on_demand\"} 1"),
        "{monitor_metrics}"
    );
    // The database pool, the readiness round trip, and the changes recorded
    // (the event log's pass, every 200 ms).
    for (admin, needles) in [
        (
            &services[1].admin,
            [
                "rebalancer_db_pool_connections{database=\"monitor\",state=\"idle\"}",
                "rebalancer_readiness_check_duration_seconds_count{check=\"monitor database\"}",
                "rebalancer_events_total{status=\"CYCLE_STATE_COMPLETED\",type=\"EVENT_TYPE_CYCLE_STATE_CHANGED\"} 1",
            ],
        ),
        (
            &services[0].admin,
            [
                "rebalancer_db_pool_connections{database=\"target\",state=\"used\"}",
                "rebalancer_readiness{check=\"target database\"} 1",
                "rebalancer_events_total{status=\"ASSIGNMENT_STATUS_ACTIVE\",type=\"EVENT_TYPE_ASSIGNMENT_CREATED\"} 1",
            ],
        ),
    ] {
        let started = Instant::now();
        loop {
            let metrics = scrape(admin).await;
            if needles.iter().all(|needle| metrics.contains(needle)) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "missing {needles:?} in\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Every connection of the services to PostgreSQL is encrypted.
    let admin = sqlx::PgPool::connect(&rebalancer_kit::testing::postgres_admin_url())
        .await
        .expect("admin");
    let names: Vec<String> = databases
        .iter()
        .map(|db| db.url.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.datname::text, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&admin)
    .await
    .expect("pg_stat_ssl");
    assert!(!rows.is_empty(), "the services hold connections");
    assert!(rows.iter().all(|(_, ssl)| *ssl), "{rows:?}");
    for name in &names {
        assert!(rows.iter().any(|(db, _)| db == name), "{name}: {rows:?}");
    }
    admin.close().await;

    // A renewed certificate is served without a restart.
    let address = services[0].url.trim_start_matches("https://").to_owned();
    let before = presented(&address, &ca.ca_file(), &caller)
        .await
        .expect("a certificate");
    let renewed = ca.issue("target", "target.rebalancer");
    let renewed = CertificateDer::from_pem_file(&renewed.cert).expect("renewed");
    assert_ne!(before, renewed);
    let started = Instant::now();
    while presented(&address, &ca.ca_file(), &caller).await.as_ref() != Some(&renewed) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    PortfolioServiceClient::new(channel(&services[0].url, trusted))
        .list_portfolios(advisor.request(ListPortfoliosRequest::default()))
        .await
        .expect("served with the renewed certificate");
}

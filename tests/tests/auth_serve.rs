//! `rebalancer serve` as Kubernetes runs it, with authentication on: the
//! target and execution processes trust a JWKS file and sign their calls to
//! each other with a shared service secret. A call with only `x-tenant-id`
//! is refused; a user's token works, including where the target service
//! calls execution for the user (symbol checks); and `serve` refuses to
//! start with no way to authenticate callers.

use std::path::Path;
use std::process::Command;

use rebalancer_kit::testing::identity::{ISSUER, IdentityProvider};
use rebalancer_proto::access::Role;
use rebalancer_proto::client::{CallContext, ClientOptions, lazy_channel};
use rebalancer_proto::common::Weight;
use rebalancer_proto::target::portfolio_service_client::PortfolioServiceClient;
use rebalancer_proto::target::{CreatePortfolioRequest, ListPortfoliosRequest};
use rebalancer_tests::binary::{grpcurl, rebalancer_binary};
use rebalancer_tests::process::{Process, free_port};
use rebalancer_tests::weight;
use tonic::Code;

fn serve(
    service: &str,
    address: &str,
    database: &str,
    peer: &str,
    idp: &IdentityProvider,
    dir: &Path,
) -> Process {
    let options = idp.options();
    let secret = options.service_secret_file.expect("secret file");
    let mut args: Vec<String> = [
        "serve",
        service,
        "--listen",
        address,
        "--database-url",
        database,
        "--target-url",
        peer,
        "--execution-url",
        peer,
        "--auth-issuer",
        ISSUER,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend([
        "--auth-jwks-file".to_owned(),
        idp.jwks_file().display().to_string(),
        "--service-secret-file".to_owned(),
        secret.display().to_string(),
    ]);
    Process::spawn(service, &args, dir)
}

#[tokio::test]
async fn serve_refuses_header_only_calls_and_services_call_each_other_as_themselves() {
    let idp = IdentityProvider::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let target_address = format!("127.0.0.1:{}", free_port());
    let execution_address = format!("127.0.0.1:{}", free_port());
    let target_url = format!("http://{target_address}");
    let execution_url = format!("http://{execution_address}");
    let mut execution = serve(
        "execution",
        &execution_address,
        &database("execution.db"),
        &target_url,
        &idp,
        dir.path(),
    );
    let mut target = serve(
        "target",
        &target_address,
        &database("target.db"),
        &execution_url,
        &idp,
        dir.path(),
    );
    let to_target = lazy_channel(&ClientOptions::new(target_url.clone())).expect("channel");
    let to_execution = lazy_channel(&ClientOptions::new(execution_url.clone())).expect("channel");
    execution.wait_ready(&to_execution).await;
    target.wait_ready(&to_target).await;

    // Reflection (public, like health) lists what this process serves only.
    if let Some(grpcurl) = grpcurl() {
        let listed = Command::new(grpcurl)
            .args(["-plaintext", &target_address, "list"])
            .output()
            .expect("grpcurl list");
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains("rebalancer.target.v1.PortfolioService"),
            "{listed}"
        );
        assert!(
            listed.contains("rebalancer.target.v1.TenantService"),
            "{listed}"
        );
        assert!(!listed.contains("rebalancer.execution.v1"), "{listed}");
        assert!(!listed.contains("rebalancer.monitor.v1"), "{listed}");
    }

    let mut portfolios = PortfolioServiceClient::new(to_target);
    let refused = portfolios
        .list_portfolios(CallContext::tenant("firm-a").request(ListPortfoliosRequest::default()))
        .await
        .expect_err("a header is not a credential");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let advisor = CallContext::tenant("firm-a").with_token(idp.token(
        "firm-a",
        "alice@firm-a",
        &[Role::Advisor],
    ));
    let weights = [weight("", "10"), weight("SPY", "90")];
    // Unknown symbols are refused by the execution service's asset master:
    // the target service reached it with its service token.
    let unknown = portfolios
        .create_portfolio(advisor.request(CreatePortfolioRequest {
            name: "Typo".to_owned(),
            weights: vec![
                weights[0].clone(),
                Weight {
                    symbol: "SPYY".to_owned(),
                    ..weights[1].clone()
                },
            ],
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect_err("unknown symbol");
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    let created = portfolios
        .create_portfolio(advisor.request(CreatePortfolioRequest {
            name: "Core".to_owned(),
            weights: weights.to_vec(),
            ..CreatePortfolioRequest::default()
        }))
        .await
        .expect("advisor creates a portfolio")
        .into_inner()
        .portfolio
        .expect("portfolio");
    assert_eq!(created.name, "Core");
}

#[test]
fn serve_without_a_way_to_authenticate_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(rebalancer_binary())
        .args(["serve", "target", "--listen", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .env_remove("REBALANCER_INSECURE_ACCEPT_UNAUTHENTICATED")
        .env_remove("REBALANCER_AUTH_JWKS_FILES")
        .env_remove("REBALANCER_AUTH_JWKS_URLS")
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no way to authenticate callers"),
        "{stderr}"
    );
}

//! The provider against canned AWS responses from a stub server on 127.0.0.1.
//!
//! These cover behaviour that moto 5.2.5 does not model: endpoints that wait for acceptance or
//! are rejected, endpoints without DNS entries, throttling, and server errors on creates that
//! take no idempotency token.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use linkplan_aws::{AwsProvider, ProviderOptions};
use linkplan_engine::provider::{ErrorKind, NoProgress, Provider, StepProgress, StepRequest};
use linkplan_engine::resource::{
    AliasRecord, AliasRecords, Endpoint, Resource, SecurityGroup, Value, VpcAttribute,
    VpcDnsAttribute, outputs, tags_for,
};
use linkplan_engine::stack::{Context, Credentials};
use linkplan_engine::step::{Action, Step};

mod support;

const REGION: &str = "us-east-1";
const EC2_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Sets dummy credentials and points the default endpoint at a closed local port, so that no
/// call of these tests can reach AWS even if a client missed the stub's URL.
fn environment() {
    static ONCE: Once = Once::new();
    // SAFETY: runs once, before any test of this binary builds a client or reads these
    // variables: each test calls environment() first and waits here.
    ONCE.call_once(|| unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", REGION);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/linkplan-test-config");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/linkplan-test-credentials",
        );
        std::env::remove_var("AWS_PROFILE");
        // The SDK's HTTP client honours proxy variables, and loopback needs no proxy.
        std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
        for proxy in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
        ] {
            std::env::remove_var(proxy);
        }
        for service in ["EC2", "ROUTE_53", "STS"] {
            std::env::remove_var(format!("AWS_ENDPOINT_URL_{service}"));
        }
    });
}

/// One canned response: HTTP status and XML body.
type Answer = (u16, String);

/// A stub AWS endpoint on 127.0.0.1 that replies to each request with `respond(request text)`
/// and keeps every request.
struct Stub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    fn start(respond: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let Some(request) = support::read_request(&mut client) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&request).to_string();
                kept.lock().unwrap().push(text.clone());
                let (status, body) = respond(&text);
                let head = format!(
                    "HTTP/1.1 {status} Stub\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
                     x-amzn-requestid: stub-request\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = client.write_all(head.as_bytes());
                let _ = client.write_all(body.as_bytes());
            }
        });
        Stub { endpoint, requests }
    }

    fn count(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    }
}

fn ec2_answer(action: &str, inner: &str) -> Answer {
    let body = format!(
        "<{action}Response xmlns=\"{EC2_NAMESPACE}\"><requestId>stub</requestId>{inner}\
         </{action}Response>"
    );
    (200, body)
}

fn ec2_error(status: u16, code: &str, message: &str) -> Answer {
    let body = format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>\
         </Errors><RequestID>stub-error</RequestID></Response>"
    );
    (status, body)
}

fn context() -> Context {
    Context {
        region: REGION.to_string(),
        credentials: Credentials::default(),
    }
}

async fn provider(endpoint: &str, max_attempts: u32) -> AwsProvider {
    environment();
    let options = ProviderOptions {
        endpoint_url: Some(endpoint.to_string()),
        max_attempts,
        ..ProviderOptions::default()
    };
    AwsProvider::new(&[context()], &options).await.unwrap()
}

struct Recorder(Mutex<Vec<String>>);

impl StepProgress for Recorder {
    fn waiting(&self, status: &str) {
        self.0.lock().unwrap().push(status.to_string());
    }
}

// ---- Endpoint waits -------------------------------------------------------------------------

const ENDPOINT_ID: &str = "vpce-0123456789abcdef0";

fn endpoint_step() -> Step {
    Step {
        address: "endpoint.agents".into(),
        action: Action::Create,
        context: context(),
        id: None,
        reason: None,
        depends_on: Vec::new(),
        before: None,
        after: Some(Resource::Endpoint(Endpoint {
            service_name: "com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef".to_string(),
            vpc_id: "vpc-0123456789abcdef0".to_string(),
            subnet_ids: vec!["subnet-0123456789abcdef0".to_string()],
            security_group_ids: vec![Value::known("sg-0123456789abcdef0")],
            private_dns_enabled: false,
            tags: tags_for("stub", &"endpoint.agents".into(), "agents"),
        })),
    }
}

fn endpoint_item(state: &str, dns_entries: &str, last_error: &str) -> String {
    format!(
        "<vpcEndpointSet><item><vpcEndpointId>{ENDPOINT_ID}</vpcEndpointId>\
         <vpcEndpointType>Interface</vpcEndpointType><vpcId>vpc-0123456789abcdef0</vpcId>\
         <serviceName>com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef</serviceName>\
         <state>{state}</state><privateDnsEnabled>false</privateDnsEnabled>\
         <dnsEntrySet>{dns_entries}</dnsEntrySet>{last_error}</item></vpcEndpointSet>"
    )
}

const DNS_ENTRIES: &str = "<item><dnsName>vpce-0123456789abcdef0-us-east-1a-1x2y3z.vpce-svc-0ecb.\
    us-east-1.vpce.amazonaws.com</dnsName><hostedZoneId>Z7HUB22UULQXV</hostedZoneId></item>\
    <item><dnsName>vpce-0123456789abcdef0-1x2y3z.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com\
    </dnsName><hostedZoneId>Z7HUB22UULQXV</hostedZoneId></item>";

/// Starts a stub that creates the endpoint and lists no endpoint by VPC. It replies to each
/// describe by id with the next of `states`, and the last one repeats.
fn endpoint_stub(states: Vec<(&'static str, &'static str, &'static str)>) -> Stub {
    let next = Mutex::new(0usize);
    Stub::start(move |request| {
        if request.contains("Action=CreateVpcEndpoint") {
            let inner =
                format!("<vpcEndpoint><vpcEndpointId>{ENDPOINT_ID}</vpcEndpointId></vpcEndpoint>");
            return ec2_answer("CreateVpcEndpoint", &inner);
        }
        if request.contains("Action=DescribeVpcEndpoints") && request.contains("VpcEndpointId.1=") {
            let mut index = next.lock().unwrap();
            let (state, dns, error) = states[(*index).min(states.len() - 1)];
            *index += 1;
            return ec2_answer("DescribeVpcEndpoints", &endpoint_item(state, dns, error));
        }
        if request.contains("Action=DescribeVpcEndpoints") {
            return ec2_answer("DescribeVpcEndpoints", "<vpcEndpointSet/>");
        }
        ec2_error(
            400,
            "UnsupportedOperation",
            "the stub does not answer this request",
        )
    })
}

#[tokio::test]
async fn endpoint_waits_through_pending_acceptance() {
    let stub = endpoint_stub(vec![
        ("pendingAcceptance", DNS_ENTRIES, ""),
        ("pendingAcceptance", DNS_ENTRIES, ""),
        ("pending", DNS_ENTRIES, ""),
        ("available", DNS_ENTRIES, ""),
    ]);
    let provider = provider(&stub.endpoint, 1).await;
    let step = endpoint_step();
    let progress = Recorder(Mutex::new(Vec::new()));
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-wait",
        wait_timeout: Duration::from_secs(60),
        progress: &progress,
    };
    let outputs = provider.apply(&request).await.unwrap();

    assert_eq!(outputs[outputs::ID], ENDPOINT_ID);
    // The regional entry comes second in the response and is picked by its name.
    assert_eq!(
        outputs[outputs::DNS_NAME],
        "vpce-0123456789abcdef0-1x2y3z.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"
    );
    assert_eq!(outputs[outputs::DNS_ZONE_ID], "Z7HUB22UULQXV");
    assert_eq!(stub.count("VpcEndpointId.1="), 4, "one describe per state");
    let statuses = progress.0.lock().unwrap().clone();
    assert_eq!(
        statuses,
        [
            format!("endpoint {ENDPOINT_ID} pendingAcceptance"),
            format!("endpoint {ENDPOINT_ID} pending"),
        ]
    );
}

#[tokio::test]
async fn rejected_endpoint_fails_at_once() {
    let last_error = "<lastError><code>Client.Rejected</code><message>rejected by the service \
                      owner</message></lastError>";
    let stub = endpoint_stub(vec![
        ("pendingAcceptance", DNS_ENTRIES, ""),
        ("rejected", DNS_ENTRIES, last_error),
    ]);
    let provider = provider(&stub.endpoint, 1).await;
    let step = endpoint_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-rejected",
        wait_timeout: Duration::from_secs(600),
        progress: &NoProgress,
    };
    let started = Instant::now();
    let error = provider.apply(&request).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Terminal, "{error}");
    assert!(error.message.contains("rejected"), "{}", error.message);
    assert!(
        error.message.contains("rejected by the service owner"),
        "{}",
        error.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn pending_acceptance_times_out_with_reason() {
    let stub = endpoint_stub(vec![("pendingAcceptance", DNS_ENTRIES, "")]);
    let provider = provider(&stub.endpoint, 1).await;
    let step = endpoint_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-timeout",
        wait_timeout: Duration::from_secs(3),
        progress: &NoProgress,
    };
    let error = provider.apply(&request).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(
        error.message.contains("still pendingAcceptance after 3 s"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("waiting for the service provider to accept"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn endpoint_without_dns_entries_fails() {
    let stub = endpoint_stub(vec![("available", "", "")]);
    let provider = provider(&stub.endpoint, 1).await;
    let step = endpoint_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-no-dns",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let error = provider.apply(&request).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Other, "{error}");
    assert!(
        error.message.contains("no regional DNS entry"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("no alias record can be built"),
        "{}",
        error.message
    );
}

// ---- Errors linkplan raises itself -----------------------------------------------------------

/// Starts a stub that rejects every request, for calls that must fail before any request.
fn rejecting_stub() -> Stub {
    Stub::start(|_| ec2_error(400, "UnsupportedOperation", "no request is expected"))
}

#[tokio::test]
async fn undo_error_reads_as_sentence() {
    let stub = rejecting_stub();
    let provider = provider(&stub.endpoint, 1).await;
    // The update to undo gave the endpoint its group, so undoing it would leave none.
    let mut step = endpoint_step();
    step.action = Action::Update;
    step.id = Some(ENDPOINT_ID.to_string());
    let mut before = step.after.clone();
    if let Some(Resource::Endpoint(endpoint)) = &mut before {
        endpoint.security_group_ids.clear();
    }
    step.before = before;
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: true,
        token: "token-undo",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let error = provider
        .undo(&request, &Default::default())
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        format!(
            "linkplan undo of the endpoint update in us-east-1 failed: endpoint {ENDPOINT_ID} \
             would have no security group, and AWS would attach the VPC's default group: give it \
             at least one group"
        )
    );
    assert_eq!(stub.count("Action="), 0, "a request was sent");
}

#[tokio::test]
async fn apply_error_reads_as_sentence() {
    let stub = rejecting_stub();
    let provider = provider(&stub.endpoint, 1).await;
    let step = endpoint_step();
    let token = "t".repeat(100);
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: &token,
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let error = provider.apply(&request).await.unwrap_err();

    assert!(
        error
            .to_string()
            .starts_with("linkplan endpoint creation in us-east-1 failed: idempotency token `t"),
        "{error}"
    );
    assert_eq!(stub.count("Action="), 0, "a request was sent");
}

// ---- Throttling -----------------------------------------------------------------------------

fn attribute_step() -> Step {
    let state = |enabled| {
        Resource::VpcAttribute(VpcAttribute {
            vpc_id: "vpc-0123456789abcdef0".to_string(),
            attribute: VpcDnsAttribute::DnsHostnames,
            enabled,
        })
    };
    Step {
        address: "vpc.hub.dns_hostnames".into(),
        action: Action::Update,
        context: context(),
        id: None,
        reason: None,
        depends_on: Vec::new(),
        before: Some(state(false)),
        after: Some(state(true)),
    }
}

/// Starts a stub that throttles the first `throttled` ModifyVpcAttribute calls with HTTP 503.
fn throttling_stub(throttled: usize) -> Stub {
    let calls = Mutex::new(0usize);
    Stub::start(move |request| {
        if !request.contains("Action=ModifyVpcAttribute") {
            return ec2_error(
                400,
                "UnsupportedOperation",
                "the stub does not answer this request",
            );
        }
        let mut calls = calls.lock().unwrap();
        *calls += 1;
        if *calls <= throttled {
            ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.")
        } else {
            ec2_answer("ModifyVpcAttribute", "<return>true</return>")
        }
    })
}

#[tokio::test]
async fn throttled_call_is_retried() {
    let stub = throttling_stub(2);
    let provider = provider(&stub.endpoint, 5).await;
    let step = attribute_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-throttle",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    provider.apply(&request).await.unwrap();
    assert_eq!(stub.count("Action=ModifyVpcAttribute"), 3);
}

#[tokio::test]
async fn throttling_past_max_attempts_reports_them() {
    let stub = throttling_stub(usize::MAX);
    let provider = provider(&stub.endpoint, 3).await;
    let step = attribute_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-throttle-out",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let error = provider.apply(&request).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Throttled, "{error}");
    assert_eq!(error.code.as_deref(), Some("RequestLimitExceeded"));
    assert_eq!(error.operation, "ModifyVpcAttribute");
    assert_eq!(error.region, REGION);
    assert_eq!(error.attempts, 3);
    assert_eq!(stub.count("Action=ModifyVpcAttribute"), 3);
}

#[tokio::test]
async fn prior_request_not_complete_is_retried() {
    let batches = Mutex::new(0usize);
    let stub = Stub::start(move |request| {
        if request.contains("/rrset") {
            let mut calls = batches.lock().unwrap();
            *calls += 1;
            if *calls <= 2 {
                let body = "<ErrorResponse><Error><Type>Sender</Type>\
                            <Code>PriorRequestNotComplete</Code><Message>The request was \
                            rejected because Route 53 was still processing a prior request.\
                            </Message></Error><RequestId>stub</RequestId></ErrorResponse>";
                return (400, body.to_string());
            }
            let body = "<ChangeResourceRecordSetsResponse><ChangeInfo><Id>/change/C1</Id>\
                        <Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt>\
                        </ChangeInfo></ChangeResourceRecordSetsResponse>";
            return (200, body.to_string());
        }
        if request.contains("/change/C1") {
            let body = "<GetChangeResponse><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status>\
                        <SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo>\
                        </GetChangeResponse>";
            return (200, body.to_string());
        }
        (404, "not handled by the stub".to_string())
    });
    let provider = provider(&stub.endpoint, 5).await;
    let step = Step {
        address: "records".into(),
        action: Action::Create,
        context: context(),
        id: None,
        reason: None,
        depends_on: Vec::new(),
        before: None,
        after: Some(Resource::AliasRecords(AliasRecords {
            zone_id: Value::known("Z0123456789ABCDEFGHIJ"),
            records: vec![AliasRecord {
                name: "agents.deepsecurity.trendmicro.com".to_string(),
                record_type: "A".to_string(),
                target_dns_name: Value::known("vpce-1-a.vpce-svc-1.us-east-1.vpce.amazonaws.com"),
                target_zone_id: Value::known("Z7HUB22UULQXV"),
                evaluate_target_health: false,
            }],
        })),
    };
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-prior",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    provider.apply(&request).await.unwrap();
    assert_eq!(stub.count("/rrset"), 3, "two refusals, then the batch");
    assert_eq!(
        stub.count("/change/C1"),
        1,
        "the change is read until INSYNC"
    );
}

// ---- Creates without an idempotency token ---------------------------------------------------

fn group_step() -> Step {
    Step {
        address: "security_group.endpoints".into(),
        action: Action::Create,
        context: context(),
        id: None,
        reason: None,
        depends_on: Vec::new(),
        before: None,
        after: Some(Resource::SecurityGroup(SecurityGroup {
            vpc_id: "vpc-0123456789abcdef0".to_string(),
            group_name: "linkplan-endpoints".to_string(),
            description: "endpoints".to_string(),
            tags: tags_for(
                "stub",
                &"security_group.endpoints".into(),
                "linkplan-endpoints",
            ),
        })),
    }
}

fn tagged_group() -> String {
    "<securityGroupInfo><item><groupId>sg-0123456789abcdef0</groupId>\
     <groupName>linkplan-endpoints</groupName><vpcId>vpc-0123456789abcdef0</vpcId><tagSet>\
     <item><key>linkplan:stack</key><value>stub</value></item>\
     <item><key>linkplan:address</key><value>security_group.endpoints</value></item>\
     </tagSet></item></securityGroupInfo>"
        .to_string()
}

/// Starts a stub whose CreateSecurityGroup always fails with HTTP 500. The group shows up in
/// DescribeSecurityGroups from describe number `visible_from` on.
fn failing_create_stub(visible_from: usize) -> Stub {
    let describes = Mutex::new(0usize);
    Stub::start(move |request| {
        if request.contains("Action=CreateSecurityGroup") {
            return ec2_error(500, "InternalError", "An internal error has occurred");
        }
        if request.contains("Action=DescribeSecurityGroups") {
            let mut count = describes.lock().unwrap();
            *count += 1;
            let inner = if *count >= visible_from {
                tagged_group()
            } else {
                "<securityGroupInfo/>".to_string()
            };
            return ec2_answer("DescribeSecurityGroups", &inner);
        }
        ec2_error(
            400,
            "UnsupportedOperation",
            "the stub does not answer this request",
        )
    })
}

#[tokio::test]
async fn untokened_create_is_not_retried_blindly() {
    let stub = failing_create_stub(usize::MAX);
    let provider = provider(&stub.endpoint, 5).await;
    let step = group_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-sg",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let error = provider.apply(&request).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert_eq!(error.code.as_deref(), Some("InternalError"));
    assert_eq!(
        error.attempts, 1,
        "the SDK did not retry the create by itself"
    );
    // Three calls in all: a first attempt calls at once, and each further call follows a
    // describe that found no group.
    assert_eq!(stub.count("Action=CreateSecurityGroup"), 3);
    assert_eq!(stub.count("Action=DescribeSecurityGroups"), 2);
}

#[tokio::test]
async fn failed_create_finds_group_before_calling_again() {
    // The first attempt creates at once; the describe that follows its failure finds the group.
    let stub = failing_create_stub(1);
    let provider = provider(&stub.endpoint, 5).await;
    let step = group_step();
    let request = StepRequest {
        step: &step,
        stack: "stub",
        earlier_attempt: false,
        token: "token-sg",
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    };
    let outputs = provider.apply(&request).await.unwrap();

    assert_eq!(outputs[outputs::ID], "sg-0123456789abcdef0");
    assert_eq!(stub.count("Action=CreateSecurityGroup"), 1);
}

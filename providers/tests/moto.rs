//! The provider against moto 5.2.5 in server mode, on 127.0.0.1 only.
//!
//! One moto server serves the whole test binary. It is started from the virtualenv that
//! `scripts/local-aws install` makes, under a shell that stops it when this process exits, and
//! its URL is put in `AWS_ENDPOINT_URL` with dummy credentials before any client is built.
//! Tests that check request bodies go through [`Recorder`], a local proxy that keeps each
//! request. When moto cannot be started, every test prints why and returns without checking
//! anything; set `LINKPLAN_REQUIRE_MOTO=1` to make that a failure instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use linkplan_aws::{AwsProvider, ProviderOptions};
use linkplan_engine::observed::{Observed, ServiceLookup};
use linkplan_engine::provider::{NoProgress, Outputs, Provider, StepRequest};
use linkplan_engine::resource::{
    AliasRecord, AliasRecords, AssociationAuthorization, Endpoint, HostedZone, IngressRule,
    PeeringAcceptance, PeeringConnection, Resource, Route, SecurityGroup, Value, VpcAttribute,
    VpcDnsAttribute, ZoneAssociation, outputs, tags_for,
};
use linkplan_engine::stack::{
    Context, Credentials, Hub, Service, Spoke, Stack, SubnetPolicy, Zone,
};
use linkplan_engine::step::{Action, Step};

mod support;

const HUB_REGION: &str = "us-east-1";
const SPOKE_REGION: &str = "us-west-2";
const START_TIMEOUT: Duration = Duration::from_secs(20);

// ---- The moto server ------------------------------------------------------------------------

struct Moto {
    endpoint: String,
    /// The watchdog shell; its stdin closes when this process exits, and it then stops moto.
    _watchdog: Mutex<Child>,
}

static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("providers/ is in the repository")
        .into()
}

/// Returns the venv's bin directory, installing moto with `scripts/local-aws install` when it is
/// missing, or into /tmp/linkplan-venv when that script is absent.
fn moto_bin() -> Result<PathBuf, String> {
    let root = repo_root();
    let script = root.join("scripts/local-aws");
    let venv = if script.exists() {
        root.join(".venv")
    } else {
        PathBuf::from("/tmp/linkplan-venv")
    };
    let bin = venv.join("bin");
    if bin.join("moto_server").exists() {
        return Ok(bin);
    }
    let status = if script.exists() {
        Command::new(&script).arg("install").status()
    } else {
        Command::new("sh")
            .arg("-c")
            .arg(
                "python3 -m venv /tmp/linkplan-venv && \
                 /tmp/linkplan-venv/bin/pip install --quiet 'moto[server]==5.2.5'",
            )
            .status()
    };
    match status {
        Ok(status) if status.success() && bin.join("moto_server").exists() => Ok(bin),
        Ok(status) => Err(format!(
            "installing moto into {} failed ({status})",
            venv.display()
        )),
        Err(error) => Err(format!(
            "installing moto into {} failed: {error}",
            venv.display()
        )),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_moto() -> Result<Moto, String> {
    let bin = moto_bin()?;
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("linkplan-provider-moto-{port}.log"));
    // The shell starts moto, then blocks reading its stdin, a pipe from this process. When this
    // process exits for any reason the pipe closes, the read returns, and the shell stops moto.
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" -H 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 & pid=$!; read _; kill "$pid""#)
        .arg(bin.join("moto_server"))
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|error| format!("could not run sh to start moto: {error}"))?;

    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if moto_answers(port) {
            return Ok(Moto {
                endpoint,
                _watchdog: Mutex::new(watchdog),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    Err(format!(
        "moto did not answer on {endpoint} within {START_TIMEOUT:?}; its log:\n{tail}"
    ))
}

fn moto_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.")
}

/// Returns moto's endpoint, or `None` after printing why the test is skipped.
fn moto() -> Option<String> {
    let moto = MOTO.get_or_init(|| {
        let moto = start_moto()?;
        // SAFETY: this runs once, inside OnceLock::get_or_init, before any test has built an
        // SDK client or read these variables: every test calls moto() first and waits here.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", HUB_REGION);
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            // Keep the developer's own profiles and credentials out of the tests.
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
            std::env::remove_var("AWS_SESSION_TOKEN");
            for service in ["EC2", "ROUTE_53", "STS"] {
                std::env::remove_var(format!("AWS_ENDPOINT_URL_{service}"));
            }
        }
        Ok(moto)
    });
    match moto {
        Ok(moto) => Some(moto.endpoint.clone()),
        Err(reason) => {
            if std::env::var("LINKPLAN_REQUIRE_MOTO").as_deref() == Ok("1") {
                panic!("moto is required (LINKPLAN_REQUIRE_MOTO=1) but could not start: {reason}");
            }
            // Written to stderr directly so that the message shows although the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: moto could not be started: {reason}"
            );
            None
        }
    }
}

// ---- A recording proxy ----------------------------------------------------------------------

/// A proxy on 127.0.0.1 in front of moto that keeps every request's first line and body.
struct Recorder {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || relay(client, &upstream, &kept));
            }
        });
        Recorder { endpoint, requests }
    }

    /// Returns the recorded requests whose text contains `needle`.
    fn matching(&self, needle: &str) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }
}

/// Relays one request and its response. moto replies with `Connection: close`, and the request
/// is rewritten to ask for that too, so that each connection carries one exchange.
fn relay(mut client: TcpStream, upstream: &str, kept: &Mutex<Vec<String>>) {
    let Some(request) = support::read_request(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&request).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let first_line = head.lines().next().unwrap_or_default();
    kept.lock().unwrap().push(format!("{first_line}\n{body}"));

    let head: Vec<&str> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let mut forwarded = head.join("\r\n").into_bytes();
    forwarded.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    forwarded.extend_from_slice(body.as_bytes());
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(&forwarded).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = server.read_to_end(&mut response);
    let _ = client.write_all(&response);
}

// ---- Fixtures -------------------------------------------------------------------------------

async fn sdk_config(endpoint: &str, region: &str) -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_types::region::Region::new(region.to_string()))
        .load()
        .await
}

async fn ec2_client(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config(endpoint, region).await)
}

/// A VPC with two subnets (us-east-1a and us-east-1b in the hub region) and its main table.
struct TestVpc {
    vpc_id: String,
    subnet_ids: Vec<String>,
    route_table_id: String,
}

async fn create_vpc(ec2: &aws_sdk_ec2::Client, cidr_prefix: &str, zones: &[&str]) -> TestVpc {
    let vpc = ec2
        .create_vpc()
        .cidr_block(format!("{cidr_prefix}.0.0/16"))
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnet_ids = Vec::new();
    for (index, zone) in zones.iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("{cidr_prefix}.{index}.0/24"))
            .availability_zone(*zone)
            .send()
            .await
            .unwrap();
        subnet_ids.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let tables = ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let route_table_id = tables.route_tables()[0]
        .route_table_id()
        .unwrap()
        .to_string();
    TestVpc {
        vpc_id,
        subnet_ids,
        route_table_id,
    }
}

/// Creates `count` endpoint services (an NLB and its service configurations) with boto3.
fn create_endpoint_services(endpoint: &str, count: usize) -> Vec<String> {
    let bin = moto_bin().expect("moto runs, so its venv exists");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/endpoint_service.py");
    let output = Command::new(bin.join("python"))
        .arg(script)
        .arg(endpoint)
        .arg(count.to_string())
        .output()
        .expect("python of the venv runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    answer["service_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap().to_string())
        .collect()
}

fn stack(name: &str, hub: &TestVpc, services: &[String], zone: &str) -> Stack {
    Stack {
        name: name.to_string(),
        hub: Hub {
            region: HUB_REGION.to_string(),
            vpc_id: hub.vpc_id.clone(),
            subnet_ids: hub.subnet_ids.clone(),
            security_group_ids: Vec::new(),
            client_cidrs: Vec::new(),
            route_table_ids: vec![hub.route_table_id.clone()],
            subnet_policy: SubnetPolicy::Fail,
            credentials: Credentials::default(),
            endpoint_quota: linkplan_engine::stack::DEFAULT_ENDPOINT_QUOTA,
        },
        services: services
            .iter()
            .enumerate()
            .map(|(index, service_name)| Service {
                host: format!("host{index}"),
                service_name: service_name.clone(),
                private_dns: false,
            })
            .collect(),
        zone: Zone {
            name: zone.to_string(),
            adopt: None,
        },
        spokes: Vec::new(),
        backend: Default::default(),
    }
}

fn hub_context() -> Context {
    Context {
        region: HUB_REGION.to_string(),
        credentials: Credentials::default(),
    }
}

fn spoke_context() -> Context {
    Context {
        region: SPOKE_REGION.to_string(),
        credentials: Credentials::default(),
    }
}

async fn provider(endpoint: Option<&str>) -> AwsProvider {
    let options = ProviderOptions {
        endpoint_url: endpoint.map(str::to_string),
        // moto returns HTML errors for unknown operations, and retrying them only slows tests.
        max_attempts: 2,
        ..ProviderOptions::default()
    };
    AwsProvider::new(&[hub_context(), spoke_context()], &options)
        .await
        .unwrap()
}

fn step(address: &str, action: Action, context: Context) -> Step {
    Step {
        address: address.into(),
        action,
        context,
        id: None,
        reason: None,
        depends_on: Vec::new(),
        before: None,
        after: None,
    }
}

/// Returns a first attempt of `step`.
fn request<'a>(step: &'a Step, stack: &'a str, token: &'a str) -> StepRequest<'a> {
    StepRequest {
        step,
        stack,
        token,
        earlier_attempt: false,
        wait_timeout: Duration::from_secs(30),
        progress: &NoProgress,
    }
}

/// Returns a repeat of `step`, as in a resumed run after an attempt whose outcome was lost.
fn repeated<'a>(step: &'a Step, stack: &'a str, token: &'a str) -> StepRequest<'a> {
    StepRequest {
        earlier_attempt: true,
        ..request(step, stack, token)
    }
}

async fn read(provider: &AwsProvider, stack: &Stack) -> Observed {
    provider
        .read(stack)
        .await
        .unwrap_or_else(|error| panic!("read failed: {error}"))
}

// ---- Tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn read_of_fresh_vpc() {
    let Some(endpoint) = moto() else { return };
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let west_ec2 = ec2_client(&endpoint, SPOKE_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.10", &["us-east-1a", "us-east-1b"]).await;
    let spoke = create_vpc(&west_ec2, "10.11", &["us-west-2a"]).await;
    let services = create_endpoint_services(&endpoint, 1);
    let unknown_service = "com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef".to_string();

    let mut stack = stack(
        "read-test",
        &hub,
        &[services[0].clone(), unknown_service.clone()],
        "read.example",
    );
    stack
        .hub
        .subnet_ids
        .push("subnet-0123456789abcdef0".to_string());
    stack.spokes.push(Spoke {
        name: "west".to_string(),
        region: SPOKE_REGION.to_string(),
        vpc_id: spoke.vpc_id.clone(),
        route_table_ids: vec![
            spoke.route_table_id.clone(),
            "rtb-0123456789abcdef0".to_string(),
        ],
        account_id: None,
        credentials: Credentials::default(),
    });
    stack.spokes.push(Spoke {
        name: "gone".to_string(),
        region: SPOKE_REGION.to_string(),
        vpc_id: "vpc-0123456789abcdef0".to_string(),
        route_table_ids: Vec::new(),
        account_id: None,
        credentials: Credentials::default(),
    });

    let provider = provider(Some(&endpoint)).await;
    let observed = read(&provider, &stack).await;

    assert_eq!(observed.identities.len(), 2, "one identity per context");
    assert_eq!(observed.identities[0].1.account_id, "123456789012");

    let vpc = observed.vpc(&hub.vpc_id).expect("hub VPC is read");
    assert_eq!(vpc.region, HUB_REGION);
    assert_eq!(vpc.cidrs, ["10.10.0.0/16".parse().unwrap()]);
    assert!(vpc.dns_support, "moto turns DNS support on for a new VPC");
    assert!(
        !vpc.dns_hostnames,
        "moto leaves DNS hostnames off for a new VPC"
    );
    assert_eq!(vpc.amazon_dns, Some(true));
    assert_eq!(vpc.internet_route, Some(false));
    assert_eq!(
        observed.vpc(&spoke.vpc_id).map(|v| v.region.as_str()),
        Some(SPOKE_REGION)
    );
    assert_eq!(
        observed.vpcs.get("vpc-0123456789abcdef0"),
        Some(&None),
        "absent VPC is None"
    );

    let subnet = observed
        .subnet(&hub.subnet_ids[0])
        .expect("hub subnet is read");
    assert_eq!(subnet.vpc_id, hub.vpc_id);
    assert_eq!(subnet.availability_zone, "us-east-1a");
    assert_eq!(
        Some(&subnet.availability_zone_id),
        observed.zone_ids[HUB_REGION].get("us-east-1a"),
        "subnet zone id matches the region's zone map"
    );
    assert_eq!(
        observed.subnets.get("subnet-0123456789abcdef0"),
        Some(&None)
    );
    assert!(
        observed.zone_ids.contains_key(SPOKE_REGION),
        "spoke region zone map is read"
    );

    match &observed.services[&services[0]] {
        ServiceLookup::Found(service) => {
            assert!(!service.availability_zone_ids.is_empty());
            assert!(
                service
                    .availability_zone_ids
                    .iter()
                    .all(|id| id.starts_with("use1-az"))
            );
            assert_eq!(service.private_dns_name, None);
        }
        other => panic!("service should be found: {other:?}"),
    }
    assert!(matches!(
        observed.services[&unknown_service],
        ServiceLookup::NotFound { .. }
    ));

    assert!(observed.endpoints.is_empty());
    assert!(observed.peerings.is_empty());
    assert!(observed.hosted_zones.is_empty());
    assert!(observed.route_table(&hub.route_table_id).is_some());
    let spoke_table = observed
        .route_table(&spoke.route_table_id)
        .expect("spoke table is read");
    assert_eq!(spoke_table.vpc_id, spoke.vpc_id);
    assert!(spoke_table.routes.iter().any(|r| r.target == "local"));
    assert_eq!(
        observed.route_tables.get("rtb-0123456789abcdef0"),
        Some(&None)
    );
}

fn endpoint_step(stack: &str, hub: &TestVpc, service: &str, group: &str) -> Step {
    let address = "endpoint.host0";
    let mut step = step(address, Action::Create, hub_context());
    step.after = Some(Resource::Endpoint(Endpoint {
        service_name: service.to_string(),
        vpc_id: hub.vpc_id.clone(),
        subnet_ids: hub.subnet_ids.clone(),
        security_group_ids: vec![Value::known(group)],
        private_dns_enabled: false,
        tags: tags_for(stack, &address.into(), "linkplan-host0"),
    }));
    step
}

async fn create_group(ec2: &aws_sdk_ec2::Client, vpc_id: &str, name: &str) -> String {
    let group = ec2
        .create_security_group()
        .group_name(name)
        .description("endpoint test group")
        .vpc_id(vpc_id)
        .send()
        .await
        .unwrap();
    group.group_id().unwrap().to_string()
}

#[tokio::test]
async fn endpoint_create_sends_private_dns_false() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.20", &["us-east-1a", "us-east-1b"]).await;
    let services = create_endpoint_services(&endpoint, 1);
    let group = create_group(&hub_ec2, &hub.vpc_id, "endpoint-test").await;
    let stack = stack("endpoint-test", &hub, &services, "endpoint.example");
    let provider = provider(Some(&recorder.endpoint)).await;

    let step = endpoint_step(&stack.name, &hub, &services[0], &group);
    let outputs = provider
        .apply(&request(&step, &stack.name, "token-endpoint-1"))
        .await
        .unwrap();

    let id = outputs[outputs::ID].clone();
    assert!(id.starts_with("vpce-"), "{id}");
    assert!(outputs[outputs::DNS_NAME].starts_with(&id), "{outputs:?}");
    assert!(!outputs[outputs::DNS_ZONE_ID].is_empty());
    let creates = recorder.matching("Action=CreateVpcEndpoint");
    assert_eq!(creates.len(), 1);
    assert!(
        creates[0].contains("PrivateDnsEnabled=false"),
        "{}",
        creates[0]
    );
    assert!(
        creates[0].contains("ClientToken=token-endpoint-1"),
        "{}",
        creates[0]
    );
    // A first attempt looks for no earlier endpoint, and moto's response is already
    // `available`, so the create is the step's only call.
    assert_eq!(
        recorder.matching("Action=DescribeVpcEndpoints").len(),
        0,
        "a first attempt with an available answer makes no describe call"
    );

    let observed = read(&provider, &stack).await;
    let state = observed
        .endpoints
        .iter()
        .find(|e| e.endpoint_id == id)
        .expect("endpoint read");
    assert_eq!(
        state.private_dns_enabled,
        Some(false),
        "moto reads back true when omitted"
    );
    assert_eq!(state.state, "available");
    assert_eq!(state.security_group_ids, [group]);
    assert_eq!(
        state.tags.get("linkplan:address").map(String::as_str),
        Some("endpoint.host0")
    );

    let found = provider
        .find_created(&request(&step, &stack.name, "token-endpoint-1"))
        .await;
    assert_eq!(found.unwrap(), Some(outputs.clone()));

    // A second apply of the same step (a resumed run) takes the endpoint it made before.
    let again = provider
        .apply(&repeated(&step, &stack.name, "token-endpoint-1"))
        .await
        .unwrap();
    assert_eq!(again, outputs);
    assert_eq!(recorder.matching("Action=CreateVpcEndpoint").len(), 1);

    provider
        .undo(&request(&step, &stack.name, "token-endpoint-1"), &outputs)
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    let state = observed.endpoints.iter().find(|e| e.endpoint_id == id);
    assert!(
        state.is_none_or(|e| e.is_gone()),
        "undo deletes the endpoint: {state:?}"
    );
    let found = provider
        .find_created(&request(&step, &stack.name, "token-endpoint-1"))
        .await;
    assert_eq!(found.unwrap(), None);

    // Undoing again succeeds.
    provider
        .undo(&request(&step, &stack.name, "token-endpoint-1"), &outputs)
        .await
        .unwrap();
}

#[tokio::test]
async fn endpoint_update_changes_subnets_and_groups() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.21", &["us-east-1a", "us-east-1b"]).await;
    let services = create_endpoint_services(&endpoint, 1);
    let first = create_group(&hub_ec2, &hub.vpc_id, "first").await;
    let second = create_group(&hub_ec2, &hub.vpc_id, "second").await;
    let stack = stack("endpoint-update", &hub, &services, "update.example");
    let provider = provider(Some(&recorder.endpoint)).await;

    let mut create = endpoint_step(&stack.name, &hub, &services[0], &first);
    if let Some(Resource::Endpoint(endpoint)) = &mut create.after {
        endpoint.subnet_ids = vec![hub.subnet_ids[0].clone()];
    }
    let created = provider
        .apply(&request(&create, &stack.name, "token-update-1"))
        .await
        .unwrap();
    let id = created[outputs::ID].clone();

    let mut update = step("endpoint.host0", Action::Update, hub_context());
    update.id = Some(id.clone());
    update.before = create.after.clone();
    let mut after = create.after.clone().unwrap();
    if let Resource::Endpoint(endpoint) = &mut after {
        endpoint.subnet_ids = hub.subnet_ids.clone();
        endpoint.security_group_ids = vec![Value::known(&second)];
    }
    update.after = Some(after);
    provider
        .apply(&request(&update, &stack.name, "token-update-2"))
        .await
        .unwrap();

    let modifies = recorder.matching("Action=ModifyVpcEndpoint");
    assert_eq!(modifies.len(), 1, "one ModifyVpcEndpoint call");
    assert!(
        modifies[0].contains(&format!("AddSubnetId.1={}", hub.subnet_ids[1])),
        "{}",
        modifies[0]
    );
    assert!(
        modifies[0].contains(&format!("AddSecurityGroupId.1={second}")),
        "{}",
        modifies[0]
    );
    assert!(
        modifies[0].contains(&format!("RemoveSecurityGroupId.1={first}")),
        "{}",
        modifies[0]
    );
    assert!(!modifies[0].contains("RemoveSubnetId"), "{}", modifies[0]);

    let observed = read(&provider, &stack).await;
    let state = observed
        .endpoints
        .iter()
        .find(|e| e.endpoint_id == id)
        .unwrap();
    assert_eq!(state.subnet_ids.len(), 2);

    provider
        .undo(
            &request(&update, &stack.name, "token-update-2"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    let modifies = recorder.matching("Action=ModifyVpcEndpoint");
    assert_eq!(modifies.len(), 2);
    assert!(
        modifies[1].contains(&format!("RemoveSubnetId.1={}", hub.subnet_ids[1])),
        "{}",
        modifies[1]
    );
    assert!(
        modifies[1].contains(&format!("AddSecurityGroupId.1={first}")),
        "{}",
        modifies[1]
    );
    let observed = read(&provider, &stack).await;
    let state = observed
        .endpoints
        .iter()
        .find(|e| e.endpoint_id == id)
        .unwrap();
    assert_eq!(state.subnet_ids, [hub.subnet_ids[0].clone()]);

    provider
        .undo(&request(&create, &stack.name, "token-update-1"), &created)
        .await
        .unwrap();
}

#[tokio::test]
async fn zone_and_alias_records_round_trip() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.30", &["us-east-1a"]).await;
    let zone_name = "zone-test.example";
    let stack = stack("zone-test", &hub, &[], zone_name);
    let provider = provider(Some(&recorder.endpoint)).await;

    let mut zone_step = step("zone", Action::Create, hub_context());
    zone_step.after = Some(Resource::HostedZone(HostedZone {
        name: zone_name.to_string(),
        vpc_id: hub.vpc_id.clone(),
        vpc_region: HUB_REGION.to_string(),
        comment: "linkplan test zone".to_string(),
        tags: tags_for(&stack.name, &"zone".into(), zone_name),
    }));
    let zone_outputs = provider
        .apply(&request(&zone_step, &stack.name, "token-zone-1"))
        .await
        .unwrap();
    let zone_id = zone_outputs[outputs::ID].clone();
    assert!(!zone_id.starts_with("/hostedzone/"), "{zone_id}");
    // A first attempt looks for no zone by caller reference, and moto's change is INSYNC in
    // the create's response, so nothing is polled.
    assert_eq!(
        recorder.matching("/hostedzonesbyname").len(),
        0,
        "a first attempt makes no lookup"
    );
    assert_eq!(
        recorder.matching("GET /2013-04-01/change/").len(),
        0,
        "an INSYNC answer is not polled"
    );

    let observed = read(&provider, &stack).await;
    assert_eq!(
        observed.hosted_zones.len(),
        1,
        "{:?}",
        observed.hosted_zones
    );
    let zone = &observed.hosted_zones[0];
    assert_eq!(zone.zone_id, zone_id);
    assert_eq!(zone.name, zone_name);
    assert!(zone.private);
    assert_eq!(zone.vpcs, [(hub.vpc_id.clone(), HUB_REGION.to_string())]);
    assert_eq!(
        zone.tags.get("linkplan:stack").map(String::as_str),
        Some("zone-test")
    );

    let found = provider
        .find_created(&request(&zone_step, &stack.name, "token-zone-1"))
        .await;
    assert_eq!(found.unwrap(), Some(zone_outputs.clone()));
    // A retry with the same token takes the zone it made, where moto alone would make another.
    let again = provider
        .apply(&repeated(&zone_step, &stack.name, "token-zone-1"))
        .await
        .unwrap();
    assert_eq!(again, zone_outputs);

    let record = |host: &str, target: &str| AliasRecord {
        name: format!("{host}.{zone_name}"),
        record_type: "A".to_string(),
        target_dns_name: Value::known(target),
        target_zone_id: Value::known("Z7HUB22UULQXV"),
        evaluate_target_health: false,
    };
    let first = AliasRecords {
        zone_id: Value::known(&zone_id),
        records: vec![
            record(
                "agents",
                "vpce-1-aaaa.vpce-svc-1.us-east-1.vpce.amazonaws.com",
            ),
            record(
                "relay",
                "vpce-2-bbbb.vpce-svc-2.us-east-1.vpce.amazonaws.com",
            ),
        ],
    };
    let mut create = step("records", Action::Create, hub_context());
    create.after = Some(Resource::AliasRecords(first.clone()));
    provider
        .apply(&request(&create, &stack.name, "token-records-1"))
        .await
        .unwrap();

    let batches = recorder.matching("ChangeResourceRecordSetsRequest");
    assert_eq!(batches.len(), 1, "one change batch");
    assert_eq!(
        batches[0].matches("<Action>UPSERT</Action>").count(),
        2,
        "{}",
        batches[0]
    );
    assert!(!batches[0].contains("<Action>CREATE</Action>"));

    let observed = read(&provider, &stack).await;
    let records = &observed.records[&zone_id];
    let agents = records
        .iter()
        .find(|r| r.name == format!("agents.{zone_name}"))
        .unwrap();
    let alias = agents.alias.as_ref().unwrap();
    assert_eq!(
        alias.dns_name,
        "vpce-1-aaaa.vpce-svc-1.us-east-1.vpce.amazonaws.com"
    );
    assert_eq!(alias.hosted_zone_id, "Z7HUB22UULQXV");
    assert_eq!(agents.record_type, "A");
    let found = provider
        .find_created(&request(&create, &stack.name, "token-records-1"))
        .await;
    assert_eq!(found.unwrap(), Some(Outputs::new()));

    // Update: agents moves to another endpoint, relay goes, app comes.
    let second = AliasRecords {
        zone_id: Value::known(&zone_id),
        records: vec![
            record(
                "agents",
                "vpce-3-cccc.vpce-svc-1.us-east-1.vpce.amazonaws.com",
            ),
            record("app", "vpce-4-dddd.vpce-svc-4.us-east-1.vpce.amazonaws.com"),
        ],
    };
    let mut update = step("records", Action::Update, hub_context());
    update.before = Some(Resource::AliasRecords(first.clone()));
    update.after = Some(Resource::AliasRecords(second.clone()));
    provider
        .apply(&request(&update, &stack.name, "token-records-2"))
        .await
        .unwrap();
    let batches = recorder.matching("ChangeResourceRecordSetsRequest");
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[1].matches("<Action>UPSERT</Action>").count(),
        2,
        "{}",
        batches[1]
    );
    assert_eq!(
        batches[1].matches("<Action>DELETE</Action>").count(),
        1,
        "{}",
        batches[1]
    );
    let names = |observed: &Observed| -> Vec<String> {
        let mut names: Vec<String> = observed.records[&zone_id]
            .iter()
            .filter(|r| r.record_type == "A")
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        names
    };
    let observed = read(&provider, &stack).await;
    assert_eq!(
        names(&observed),
        [format!("agents.{zone_name}"), format!("app.{zone_name}")]
    );

    provider
        .undo(
            &request(&update, &stack.name, "token-records-2"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    assert_eq!(
        names(&observed),
        [format!("agents.{zone_name}"), format!("relay.{zone_name}")]
    );
    let agents = observed.records[&zone_id]
        .iter()
        .find(|r| r.name.starts_with("agents."))
        .unwrap();
    assert!(
        agents
            .alias
            .as_ref()
            .unwrap()
            .dns_name
            .starts_with("vpce-1-")
    );

    provider
        .undo(
            &request(&create, &stack.name, "token-records-1"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    assert!(names(&observed).is_empty(), "{:?}", names(&observed));
    // Undoing the create again finds nothing to delete and succeeds.
    provider
        .undo(
            &request(&create, &stack.name, "token-records-1"),
            &Outputs::new(),
        )
        .await
        .unwrap();

    provider
        .undo(
            &request(&zone_step, &stack.name, "token-zone-1"),
            &zone_outputs,
        )
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    assert!(
        observed.hosted_zones.is_empty(),
        "{:?}",
        observed.hosted_zones
    );
    provider
        .undo(
            &request(&zone_step, &stack.name, "token-zone-1"),
            &zone_outputs,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn zone_association_sends_vpc_region() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let west_ec2 = ec2_client(&endpoint, SPOKE_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.70", &["us-east-1a"]).await;
    let spoke = create_vpc(&west_ec2, "10.71", &["us-west-2a"]).await;
    let zone_name = "association.example";
    let mut stack = stack("association-test", &hub, &[], zone_name);
    stack.spokes.push(Spoke {
        name: "west".to_string(),
        region: SPOKE_REGION.to_string(),
        vpc_id: spoke.vpc_id.clone(),
        route_table_ids: Vec::new(),
        account_id: None,
        credentials: Credentials::default(),
    });
    let provider = provider(Some(&recorder.endpoint)).await;

    let mut zone_step = step("zone", Action::Create, hub_context());
    zone_step.after = Some(Resource::HostedZone(HostedZone {
        name: zone_name.to_string(),
        vpc_id: hub.vpc_id.clone(),
        vpc_region: HUB_REGION.to_string(),
        comment: String::new(),
        tags: tags_for(&stack.name, &"zone".into(), zone_name),
    }));
    let zone = provider
        .apply(&request(&zone_step, &stack.name, "token-az-zone"))
        .await
        .unwrap();
    let zone_id = zone[outputs::ID].clone();

    let mut association = step("zone.association.west", Action::Create, spoke_context());
    association.after = Some(Resource::ZoneAssociation(ZoneAssociation {
        zone_id: Value::known(&zone_id),
        vpc_id: spoke.vpc_id.clone(),
        vpc_region: SPOKE_REGION.to_string(),
    }));
    provider
        .apply(&request(&association, &stack.name, "token-az"))
        .await
        .unwrap();
    let associates = recorder.matching("AssociateVPCWithHostedZoneRequest");
    assert_eq!(associates.len(), 1);
    assert!(
        associates[0].contains("<VPCRegion>us-west-2</VPCRegion>"),
        "{}",
        associates[0]
    );

    let observed = read(&provider, &stack).await;
    let zone_state = observed
        .hosted_zones
        .iter()
        .find(|z| z.zone_id == zone_id)
        .unwrap();
    let mut expected = vec![
        (hub.vpc_id.clone(), HUB_REGION.to_string()),
        (spoke.vpc_id.clone(), SPOKE_REGION.to_string()),
    ];
    expected.sort();
    assert_eq!(zone_state.vpcs, expected);
    let found = provider
        .find_created(&request(&association, &stack.name, "token-az"))
        .await;
    assert_eq!(found.unwrap(), Some(Outputs::new()));
    // Associating again counts as done.
    provider
        .apply(&request(&association, &stack.name, "token-az"))
        .await
        .unwrap();

    provider
        .undo(
            &request(&association, &stack.name, "token-az"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    let zone_state = observed
        .hosted_zones
        .iter()
        .find(|z| z.zone_id == zone_id)
        .unwrap();
    assert_eq!(
        zone_state.vpcs,
        [(hub.vpc_id.clone(), HUB_REGION.to_string())]
    );
    provider
        .undo(
            &request(&association, &stack.name, "token-az"),
            &Outputs::new(),
        )
        .await
        .unwrap();

    provider
        .undo(&request(&zone_step, &stack.name, "token-az-zone"), &zone)
        .await
        .unwrap();
}

#[tokio::test]
async fn association_authorization_missing_in_moto() {
    let Some(endpoint) = moto() else { return };
    let provider = provider(Some(&endpoint)).await;
    let mut authorization = step("zone.authorization.west", Action::Create, hub_context());
    authorization.after = Some(Resource::AssociationAuthorization(
        AssociationAuthorization {
            zone_id: Value::known("Z0000000000000000000"),
            vpc_id: "vpc-0123456789abcdef0".to_string(),
            vpc_region: SPOKE_REGION.to_string(),
        },
    ));
    let error = provider
        .apply(&request(&authorization, "authorization", "token-auth"))
        .await
        .expect_err("moto 5.2.5 does not implement CreateVPCAssociationAuthorization");
    assert_eq!(error.service, "route53");
    assert_eq!(error.operation, "CreateVPCAssociationAuthorization");
    assert!(error.message.contains("HTTP 404"), "{error}");
}

#[tokio::test]
async fn alias_zone_id_with_dot_is_rejected() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let provider = provider(Some(&recorder.endpoint)).await;
    let mut create = step("records", Action::Create, hub_context());
    create.after = Some(Resource::AliasRecords(AliasRecords {
        zone_id: Value::known("Z0000000000000"),
        records: vec![AliasRecord {
            name: "agents.reject.example".to_string(),
            record_type: "A".to_string(),
            target_dns_name: Value::known("Z7HUB22UULQXV"),
            target_zone_id: Value::known("vpce-1-aaaa.vpce-svc-1.us-east-1.vpce.amazonaws.com"),
            evaluate_target_health: false,
        }],
    }));
    let error = provider
        .apply(&request(&create, "reject", "token-reject"))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        linkplan_engine::provider::ErrorKind::InvalidRequest
    );
    assert!(
        error.message.contains("agents.reject.example"),
        "{}",
        error.message
    );
    assert!(
        recorder
            .matching("ChangeResourceRecordSetsRequest")
            .is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn vpc_attribute_update_one_call_each() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.40", &["us-east-1a"]).await;
    let stack = stack("attribute-test", &hub, &[], "attribute.example");
    let provider = provider(Some(&recorder.endpoint)).await;

    let attribute_step = |attribute, before, after| {
        let mut step = step(
            &format!("vpc.{}", hub.vpc_id),
            Action::Update,
            hub_context(),
        );
        let state = |enabled| {
            Resource::VpcAttribute(VpcAttribute {
                vpc_id: hub.vpc_id.clone(),
                attribute,
                enabled,
            })
        };
        step.before = Some(state(before));
        step.after = Some(state(after));
        step
    };
    let support = attribute_step(VpcDnsAttribute::DnsSupport, true, true);
    let hostnames = attribute_step(VpcDnsAttribute::DnsHostnames, false, true);

    provider
        .apply(&request(&support, &stack.name, "token-attr-1"))
        .await
        .unwrap();
    provider
        .apply(&request(&hostnames, &stack.name, "token-attr-2"))
        .await
        .unwrap();
    let calls = recorder.matching("Action=ModifyVpcAttribute");
    assert_eq!(calls.len(), 2, "one call per attribute");
    assert!(
        calls[0].contains("EnableDnsSupport.Value=true"),
        "{}",
        calls[0]
    );
    assert!(!calls[0].contains("EnableDnsHostnames"), "{}", calls[0]);
    assert!(
        calls[1].contains("EnableDnsHostnames.Value=true"),
        "{}",
        calls[1]
    );
    assert!(!calls[1].contains("EnableDnsSupport"), "{}", calls[1]);

    let vpc = read(&provider, &stack)
        .await
        .vpc(&hub.vpc_id)
        .cloned()
        .unwrap();
    assert!(vpc.dns_support);
    assert!(vpc.dns_hostnames);

    provider
        .undo(
            &request(&hostnames, &stack.name, "token-attr-2"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    let vpc = read(&provider, &stack)
        .await
        .vpc(&hub.vpc_id)
        .cloned()
        .unwrap();
    assert!(!vpc.dns_hostnames, "undo sets hostnames back to false");
    assert!(vpc.dns_support);
}

#[tokio::test]
async fn group_by_name_read_when_untagged() {
    let Some(endpoint) = moto() else { return };
    let recorder = Recorder::start(&endpoint);
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.55", &["us-east-1a"]).await;
    let stack = stack("name-read", &hub, &[], "name-read.example");
    let provider = provider(Some(&recorder.endpoint)).await;
    let name = linkplan_engine::planner::security_group_name(&stack.name);
    let by_name = || {
        recorder
            .matching("Action=DescribeSecurityGroups")
            .iter()
            .filter(|r| r.contains(&format!("Value.1={name}")))
            .count()
    };

    // An untagged group of linkplan's name in the hub VPC is read, so the plan can report it.
    let untagged = create_group(&hub_ec2, &hub.vpc_id, &name).await;
    let observed = read(&provider, &stack).await;
    assert!(
        observed
            .security_groups
            .iter()
            .any(|g| g.group_id == untagged),
        "the untagged group of linkplan's name is read: {:?}",
        observed.security_groups
    );
    assert_eq!(by_name(), 1, "the group was looked up by its name");

    // Once the group carries the stack's tag, the read by tag finds it and there is no other.
    hub_ec2
        .create_tags()
        .resources(&untagged)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("linkplan:stack")
                .value(&stack.name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    assert!(
        observed
            .security_groups
            .iter()
            .any(|g| g.group_id == untagged),
        "the tagged group is read"
    );
    assert_eq!(
        by_name(),
        1,
        "no second read by name once the group is tagged"
    );
}

#[tokio::test]
async fn security_group_and_ingress_rule() {
    let Some(endpoint) = moto() else { return };
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.50", &["us-east-1a"]).await;
    let stack = stack("group-test", &hub, &[], "group.example");
    let provider = provider(Some(&endpoint)).await;

    let address = "security_group.endpoints";
    let mut group_step = step(address, Action::Create, hub_context());
    group_step.after = Some(Resource::SecurityGroup(SecurityGroup {
        vpc_id: hub.vpc_id.clone(),
        group_name: "linkplan-endpoints".to_string(),
        description: "Workload Security endpoints".to_string(),
        tags: tags_for(&stack.name, &address.into(), "linkplan-endpoints"),
    }));
    let group = provider
        .apply(&request(&group_step, &stack.name, "token-sg"))
        .await
        .unwrap();
    let group_id = group[outputs::ID].clone();
    assert!(group_id.starts_with("sg-"));
    let found = provider
        .find_created(&request(&group_step, &stack.name, "token-sg"))
        .await;
    assert_eq!(found.unwrap(), Some(group.clone()));
    let again = provider
        .apply(&repeated(&group_step, &stack.name, "token-sg"))
        .await
        .unwrap();
    assert_eq!(again, group, "a retry takes the group it made");

    let rule = |cidr: &str| {
        let mut step = step(&format!("ingress.{cidr}"), Action::Create, hub_context());
        step.after = Some(Resource::IngressRule(IngressRule {
            group_id: Value::known(&group_id),
            protocol: "tcp".to_string(),
            port: 443,
            cidr: cidr.to_string(),
            description: "agents".to_string(),
        }));
        step
    };
    let ipv4 = rule("10.50.0.0/16");
    let ipv6 = rule("2600:1f18:1234:5600::/56");
    for step in [&ipv4, &ipv6] {
        provider
            .apply(&request(step, &stack.name, "token-rule"))
            .await
            .unwrap();
        // Authorizing again hits InvalidPermission.Duplicate, which counts as done.
        provider
            .apply(&request(step, &stack.name, "token-rule"))
            .await
            .unwrap();
    }

    let observed = read(&provider, &stack).await;
    let state = observed
        .security_groups
        .iter()
        .find(|g| g.group_id == group_id)
        .unwrap();
    let sources: Vec<&str> = state.ingress.iter().map(|p| p.source.as_str()).collect();
    assert!(sources.contains(&"10.50.0.0/16"), "{sources:?}");
    assert!(sources.contains(&"2600:1f18:1234:5600::/56"), "{sources:?}");
    assert!(
        state
            .ingress
            .iter()
            .all(|p| p.protocol == "tcp" && p.from_port == Some(443))
    );
    let found = provider
        .find_created(&request(&ipv4, &stack.name, "token-rule"))
        .await;
    assert_eq!(found.unwrap(), Some(Outputs::new()));

    for step in [&ipv4, &ipv6] {
        provider
            .undo(&request(step, &stack.name, "token-rule"), &Outputs::new())
            .await
            .unwrap();
        provider
            .undo(&request(step, &stack.name, "token-rule"), &Outputs::new())
            .await
            .unwrap();
    }
    let observed = read(&provider, &stack).await;
    let state = observed
        .security_groups
        .iter()
        .find(|g| g.group_id == group_id)
        .unwrap();
    assert!(state.ingress.is_empty(), "{:?}", state.ingress);

    provider
        .undo(&request(&group_step, &stack.name, "token-sg"), &group)
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    assert!(
        observed
            .security_groups
            .iter()
            .all(|g| g.group_id != group_id)
    );
    provider
        .undo(&request(&group_step, &stack.name, "token-sg"), &group)
        .await
        .unwrap();
}

#[tokio::test]
async fn peering_across_regions() {
    let Some(endpoint) = moto() else { return };
    let hub_ec2 = ec2_client(&endpoint, HUB_REGION).await;
    let west_ec2 = ec2_client(&endpoint, SPOKE_REGION).await;
    let hub = create_vpc(&hub_ec2, "10.60", &["us-east-1a"]).await;
    let spoke = create_vpc(&west_ec2, "10.61", &["us-west-2a"]).await;
    let mut stack = stack("peering-test", &hub, &[], "peering.example");
    stack.spokes.push(Spoke {
        name: "west".to_string(),
        region: SPOKE_REGION.to_string(),
        vpc_id: spoke.vpc_id.clone(),
        route_table_ids: vec![spoke.route_table_id.clone()],
        account_id: None,
        credentials: Credentials::default(),
    });
    let provider = provider(Some(&endpoint)).await;

    let address = "peering.west";
    let mut connection = step(address, Action::Create, hub_context());
    connection.after = Some(Resource::PeeringConnection(PeeringConnection {
        requester_vpc_id: hub.vpc_id.clone(),
        accepter_vpc_id: spoke.vpc_id.clone(),
        accepter_region: SPOKE_REGION.to_string(),
        accepter_owner_id: None,
        tags: tags_for(&stack.name, &address.into(), "linkplan-west"),
    }));
    let created = provider
        .apply(&request(&connection, &stack.name, "token-pcx"))
        .await
        .unwrap();
    let peering_id = created[outputs::ID].clone();
    assert!(peering_id.starts_with("pcx-"));
    let found = provider
        .find_created(&request(&connection, &stack.name, "token-pcx"))
        .await;
    assert_eq!(found.unwrap(), Some(created.clone()));

    let mut acceptance = step("peering.west.accept", Action::Create, spoke_context());
    acceptance.after = Some(Resource::PeeringAcceptance(PeeringAcceptance {
        peering_id: Value::known(&peering_id),
        requester_region: HUB_REGION.to_string(),
    }));
    provider
        .apply(&request(&acceptance, &stack.name, "token-accept"))
        .await
        .unwrap();
    // Accepting an active connection again counts as done.
    provider
        .apply(&request(&acceptance, &stack.name, "token-accept"))
        .await
        .unwrap();

    let mut route = step("route.west", Action::Create, spoke_context());
    route.after = Some(Resource::Route(Route {
        route_table_id: spoke.route_table_id.clone(),
        destination_cidr: "10.60.0.0/16".to_string(),
        peering_id: Value::known(&peering_id),
    }));
    provider
        .apply(&request(&route, &stack.name, "token-route"))
        .await
        .unwrap();
    provider
        .apply(&request(&route, &stack.name, "token-route"))
        .await
        .unwrap();

    let observed = read(&provider, &stack).await;
    assert_eq!(observed.peerings.len(), 1, "{:?}", observed.peerings);
    let peering = &observed.peerings[0];
    assert_eq!(peering.peering_id, peering_id);
    assert_eq!(peering.status, "active");
    assert_eq!(peering.requester_region, HUB_REGION);
    assert_eq!(peering.accepter_region, SPOKE_REGION);
    assert_eq!(
        peering.tags.get("linkplan:address").map(String::as_str),
        Some(address)
    );
    let table = observed.route_table(&spoke.route_table_id).unwrap();
    let to_hub = table
        .routes
        .iter()
        .find(|r| r.destination_cidr == "10.60.0.0/16")
        .unwrap();
    assert_eq!(to_hub.target, peering_id);

    provider
        .undo(
            &request(&route, &stack.name, "token-route"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    provider
        .undo(
            &request(&route, &stack.name, "token-route"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    provider
        .undo(
            &request(&acceptance, &stack.name, "token-accept"),
            &Outputs::new(),
        )
        .await
        .unwrap();
    provider
        .undo(&request(&connection, &stack.name, "token-pcx"), &created)
        .await
        .unwrap();
    let observed = read(&provider, &stack).await;
    let table = observed.route_table(&spoke.route_table_id).unwrap();
    assert!(
        table
            .routes
            .iter()
            .all(|r| r.destination_cidr != "10.60.0.0/16")
    );
    assert!(
        observed
            .peerings
            .iter()
            .all(|p| p.peering_id != peering_id || p.is_dead())
    );
    provider
        .undo(&request(&connection, &stack.name, "token-pcx"), &created)
        .await
        .unwrap();
}

#[tokio::test]
async fn endpoint_url_from_environment() {
    let Some(endpoint) = moto() else { return };
    let provider = provider(None).await;
    assert_eq!(provider.endpoint_url().as_deref(), Some(endpoint.as_str()));

    let explicit = provider_with(Some("http://127.0.0.1:9")).await;
    assert_eq!(
        explicit.endpoint_url().as_deref(),
        Some("http://127.0.0.1:9")
    );
}

async fn provider_with(endpoint: Option<&str>) -> AwsProvider {
    let options = ProviderOptions {
        endpoint_url: endpoint.map(str::to_string),
        ..Default::default()
    };
    AwsProvider::new(&[hub_context()], &options).await.unwrap()
}

#[tokio::test]
async fn unanswered_call_fails_within_timeouts() {
    let Some(_endpoint) = moto() else { return };
    // A listener that accepts connections and never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let options = ProviderOptions {
        endpoint_url: Some(silent.clone()),
        timeouts: linkplan_aws::Timeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(1),
            attempt: Duration::from_secs(2),
            operation: Duration::from_secs(4),
        },
        max_attempts: 2,
    };
    let provider = AwsProvider::new(&[hub_context()], &options).await.unwrap();
    let hub = TestVpc {
        vpc_id: "vpc-0123456789abcdef0".to_string(),
        subnet_ids: Vec::new(),
        route_table_id: "rtb-0123456789abcdef0".to_string(),
    };
    let stack = stack("silent", &hub, &[], "silent.example");
    let started = Instant::now();
    let error = provider.read(&stack).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error.kind,
            linkplan_engine::provider::ErrorKind::Timeout
                | linkplan_engine::provider::ErrorKind::Transient
        ),
        "{error}"
    );
    assert!(error.message.contains("did not answer within"), "{error}");
    assert!(error.message.contains(&silent), "{error}");
    assert!(error.attempts >= 1);
    drop(held);
}

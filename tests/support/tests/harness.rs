//! Tests of the test harness itself against a real moto server.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use linkplan_testkit::{MotoServer, VpcSpec, moto, unique_name};

const SERVICE_NAME_PREFIX: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-";

/// Set by `moto_stops_with_test_process` for the child test binary it runs.
const PRINT_PORT_VARIABLE: &str = "LINKPLAN_TESTKIT_PRINT_MOTO_PORT";

fn answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

fn string_set<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    values.into_iter().map(str::to_owned).collect()
}

#[test]
fn moto_listens_on_loopback() {
    let server = moto();
    assert_eq!(server.endpoint, format!("http://127.0.0.1:{}", server.port));
    assert!(answers(server.port));
}

#[test]
fn moto_is_shared_per_binary() {
    assert!(std::ptr::eq(moto(), moto()));
}

#[tokio::test]
async fn provider_side_is_idempotent() {
    // A private server, because a raw provider-side run beside the cached one of the shared
    // server could race it and add a second set of services.
    let server = MotoServer::start().expect("a private moto server");
    let first = server.fixture(&["provider-side", "--region", "us-east-1"]);
    let second = server.fixture(&["provider-side", "--region", "us-east-1"]);
    assert_eq!(first["services"], second["services"]);
    assert_eq!(first["provider_vpc_id"], second["provider_vpc_id"]);

    let typed = server.provider_side();
    assert_eq!(first["services"]["relay"], typed.services.relay.as_str());
    assert_eq!(first["services"]["app"], typed.services.app.as_str());
    assert_eq!(typed, server.provider_side());

    let ec2 = server.ec2("us-east-1").await;
    let configurations = ec2
        .describe_vpc_endpoint_service_configurations()
        .send()
        .await
        .expect("DescribeVpcEndpointServiceConfigurations on moto")
        .service_configurations
        .unwrap_or_default();
    assert_eq!(configurations.len(), 4);
    for configuration in &configurations {
        assert_eq!(configuration.acceptance_required(), Some(false));
        assert_eq!(configuration.network_load_balancer_arns().len(), 1);
    }
    let tags: BTreeSet<String> = configurations
        .iter()
        .flat_map(|configuration| configuration.tags())
        .filter(|tag| tag.key() == Some("Name"))
        .filter_map(|tag| tag.value().map(str::to_owned))
        .collect();
    assert_eq!(tags, string_set(["relay", "agents", "dsmim", "app"]));
}

#[test]
fn provider_side_creates_four_services() {
    let provider = moto().provider_side();
    assert_eq!(provider.region, "us-east-1");
    for (host, name) in provider.services.by_host() {
        assert!(
            name.starts_with(SERVICE_NAME_PREFIX),
            "service of {host} is {name}"
        );
    }
    let names: BTreeSet<&str> = provider.services.by_host().map(|(_, name)| name).into();
    assert_eq!(names.len(), 4);
    assert_eq!(
        provider.az_ids,
        ["use1-az1", "use1-az2", "use1-az4"].map(str::to_owned)
    );
    assert_eq!(
        provider.availability_zones,
        ["us-east-1b", "us-east-1c", "us-east-1d"].map(str::to_owned)
    );
}

#[tokio::test]
async fn vpc_subnets_use_requested_az_ids() {
    let server = moto();
    let name = unique_name("harness-zones");
    let spec = VpcSpec::new("us-east-1", "10.31.0.0/16", &["use1-az2", "use1-az4"])
        .dns_hostnames(false)
        .name(&name);
    let vpc = server.vpc(spec);
    assert_eq!(vpc.region, "us-east-1");
    assert_eq!(vpc.name, name);
    assert_eq!(vpc.cidrs, ["10.31.0.0/16"]);
    assert_eq!(vpc.subnet_ids.len(), 2);
    assert!(!vpc.dns_hostnames);
    assert!(vpc.dns_support);

    let ec2 = server.ec2("us-east-1").await;
    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(vpc.subnet_ids.clone()))
        .send()
        .await
        .expect("DescribeSubnets on moto")
        .subnets
        .unwrap_or_default();
    let zone_ids: BTreeSet<String> = subnets
        .iter()
        .filter_map(|subnet| subnet.availability_zone_id().map(str::to_owned))
        .collect();
    assert_eq!(zone_ids, string_set(["use1-az2", "use1-az4"]));
    for subnet in &subnets {
        assert_eq!(subnet.vpc_id(), Some(vpc.vpc_id.as_str()));
    }
    for (subnet, expected_az_id) in vpc.subnets.iter().zip(["use1-az2", "use1-az4"]) {
        assert_eq!(subnet.az_id, expected_az_id);
    }

    let hostnames = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc.vpc_id)
        .attribute(VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .expect("DescribeVpcAttribute enableDnsHostnames on moto");
    let hostnames = hostnames
        .enable_dns_hostnames()
        .and_then(|value| value.value());
    assert_eq!(hostnames, Some(false));
    let support = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc.vpc_id)
        .attribute(VpcAttributeName::EnableDnsSupport)
        .send()
        .await
        .expect("DescribeVpcAttribute enableDnsSupport on moto");
    let support = support.enable_dns_support().and_then(|value| value.value());
    assert_eq!(support, Some(true));

    let tables = ec2
        .describe_route_tables()
        .set_route_table_ids(Some(vpc.route_table_ids.clone()))
        .send()
        .await
        .expect("DescribeRouteTables on moto")
        .route_tables
        .unwrap_or_default();
    assert_eq!(tables.len(), 1);
    let associated: BTreeSet<String> = tables[0]
        .associations()
        .iter()
        .filter_map(|association| association.subnet_id().map(str::to_owned))
        .collect();
    assert_eq!(
        associated,
        string_set(vpc.subnet_ids.iter().map(String::as_str))
    );
}

#[tokio::test]
async fn vpc_options_are_applied() {
    let server = moto();
    let spec = VpcSpec::new("us-east-1", "10.32.0.0/16", &["use1-az1"])
        .secondary_cidr("10.33.0.0/16")
        .dns_hostnames(true)
        .internet_gateway()
        .name(&unique_name("harness-options"));
    let vpc = server.vpc(spec);
    assert_eq!(vpc.cidrs, ["10.32.0.0/16", "10.33.0.0/16"]);
    assert!(vpc.dns_hostnames);
    let gateway_id = vpc
        .internet_gateway_id
        .clone()
        .expect("an internet gateway id");

    let ec2 = server.ec2("us-east-1").await;
    let hostnames = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc.vpc_id)
        .attribute(VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .expect("DescribeVpcAttribute enableDnsHostnames on moto");
    let hostnames = hostnames
        .enable_dns_hostnames()
        .and_then(|value| value.value());
    assert_eq!(hostnames, Some(true));

    let tables = ec2
        .describe_route_tables()
        .set_route_table_ids(Some(vpc.route_table_ids.clone()))
        .send()
        .await
        .expect("DescribeRouteTables on moto")
        .route_tables
        .unwrap_or_default();
    let default_route = tables[0]
        .routes()
        .iter()
        .find(|route| route.destination_cidr_block() == Some("0.0.0.0/0"))
        .expect("a 0.0.0.0/0 route");
    assert_eq!(default_route.gateway_id(), Some(gateway_id.as_str()));
}

#[test]
fn vpc_maps_zone_ids_per_region() {
    let server = moto();
    // moto 5.2.5 maps zone ids to names as one fixed account would, not in letter order.
    let cases = [
        ("eu-west-1", "euw1-az1", "eu-west-1b"),
        ("eu-west-1", "euw1-az3", "eu-west-1a"),
        ("us-west-2", "usw2-az1", "us-west-2b"),
        ("us-east-1", "use1-az6", "us-east-1a"),
    ];
    for (index, (region, az_id, expected_az)) in cases.into_iter().enumerate() {
        let cidr = format!("10.{}.0.0/16", 40 + index);
        let vpc = server.vpc(VpcSpec::new(region, &cidr, &[az_id]));
        assert_eq!(vpc.region, region);
        assert_eq!(vpc.subnets[0].az_id, az_id);
        assert_eq!(vpc.subnets[0].az, expected_az, "zone name of {az_id}");
    }
}

#[test]
fn vpc_carves_small_cidrs() {
    let vpc = moto().vpc(VpcSpec::new(
        "us-east-1",
        "10.50.0.0/24",
        &["use1-az1", "use1-az2", "use1-az4"],
    ));
    let cidrs: Vec<&str> = vpc
        .subnets
        .iter()
        .map(|subnet| subnet.cidr.as_str())
        .collect();
    assert_eq!(cidrs, ["10.50.0.0/26", "10.50.0.64/26", "10.50.0.128/26"]);
}

#[tokio::test]
async fn vpc_rejects_unknown_az_id() {
    let server = moto();
    let name = unique_name("harness-bad-zone");
    let error = server
        .try_fixture(&[
            "vpc",
            "--region",
            "eu-west-1",
            "--cidr",
            "10.60.0.0/16",
            "--az-ids",
            "euw1-az1,use1-az1",
            "--name",
            &name,
        ])
        .expect_err("use1-az1 is not a zone of eu-west-1");
    assert_eq!(error.status.and_then(|status| status.code()), Some(1));
    assert!(
        error.stderr.contains("use1-az1"),
        "stderr: {}",
        error.stderr
    );
    assert!(
        error.stderr.contains("eu-west-1"),
        "stderr: {}",
        error.stderr
    );

    // The zone ids are checked before anything is created.
    let ec2 = server.ec2("eu-west-1").await;
    let vpcs = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values(&name).build())
        .send()
        .await
        .expect("DescribeVpcs on moto")
        .vpcs
        .unwrap_or_default();
    assert!(vpcs.is_empty(), "found {vpcs:?}");
}

/// Runs `local_aws.py reset` with ENDPOINT in a Python whose sockets and DNS lookups raise,
/// so the check cannot send a request even if it fails. Returns the exit code and stderr.
fn run_reset_offline(root: &Path, endpoint: &str) -> (Option<i32>, String) {
    const OFFLINE_RESET: &str = r#"
import socket
import sys

def no_network(*args, **kwargs):
    raise OSError("network disabled by the harness test")

socket.socket.connect = no_network
socket.create_connection = no_network
socket.getaddrinfo = no_network

sys.path.insert(0, "scripts")
import local_aws

sys.exit(local_aws.main(["--endpoint-url", sys.argv[1], "reset"]))
"#;
    let output = moto()
        .command(root.join(".venv/bin/python"))
        .arg("-c")
        .arg(OFFLINE_RESET)
        .arg(endpoint)
        .current_dir(root)
        // Without this, an empty endpoint argument would fall back to the variable.
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("failed to run the venv's python");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn fixture_rejects_remote_endpoints() {
    let root = moto().repository_root();
    let rejected = [
        "https://ec2.us-east-1.amazonaws.com",
        "http://10.0.0.1:5000",
        "http://127.0.0.1.example.com:5000",
        "http://localhost@example.com:5000",
        "ftp://127.0.0.1:5000",
        "",
    ];
    for endpoint in rejected {
        let (code, stderr) = run_reset_offline(root, endpoint);
        assert_eq!(code, Some(2), "endpoint {endpoint:?}, stderr: {stderr}");
        assert!(
            !stderr.contains("network disabled"),
            "endpoint {endpoint:?}, stderr: {stderr}"
        );
    }
    // A loopback endpoint passes the check and fails only on the disabled network.
    for endpoint in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
        let (code, stderr) = run_reset_offline(root, endpoint);
        assert_eq!(code, Some(1), "endpoint {endpoint:?}, stderr: {stderr}");
        assert!(
            stderr.contains("network disabled"),
            "endpoint {endpoint:?}, stderr: {stderr}"
        );
    }
}

#[test]
fn env_isolates_child_processes() {
    let server = moto();
    let env: std::collections::HashMap<String, String> = server.env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], server.endpoint);
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "testing");
    // Both files read as empty, so no profile of the developer's can reach a child process.
    for variable in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        let contents = std::fs::read(&env[variable]).unwrap_or_default();
        assert!(
            contents.is_empty(),
            "{variable} = {} is not empty",
            env[variable]
        );
    }
}

#[test]
fn command_env_reaches_moto() {
    // boto3 here resolves endpoint, region and credentials from the environment alone, as
    // a child linkplan process does.
    const DESCRIBE_VPCS: &str = r#"
import boto3

vpcs = boto3.client("ec2").describe_vpcs()["Vpcs"]
print(len(vpcs))
"#;
    let server = moto();
    let root = server.repository_root();
    let output = server
        .command(root.join(".venv/bin/python"))
        .arg("-c")
        .arg(DESCRIBE_VPCS)
        .output()
        .expect("failed to run the venv's python");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    let count: usize = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a VPC count on stdout");
    // moto makes a default VPC in every region.
    assert!(count >= 1);
}

#[test]
fn unique_names_differ() {
    let first = unique_name("stack");
    let second = unique_name("stack");
    assert_ne!(first, second);
    assert!(first.starts_with("stack-"));
}

#[test]
fn private_server_stops_on_drop() {
    let server = MotoServer::start().expect("a private moto server");
    let port = server.port;
    assert_ne!(port, moto().port);
    assert!(answers(port));
    drop(server);
    assert!(!answers(port));
}

/// Prints the shared server's port when run by `moto_stops_with_test_process`, and does
/// nothing otherwise.
#[test]
fn print_moto_port_for_parent() {
    if std::env::var_os(PRINT_PORT_VARIABLE).is_some() {
        println!("moto-port={}", moto().port);
    }
}

#[test]
fn moto_stops_with_test_process() {
    let executable = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(executable)
        .args(["print_moto_port_for_parent", "--exact", "--nocapture"])
        .env(PRINT_PORT_VARIABLE, "1")
        .output()
        .expect("failed to run this test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout}");
    let port: u16 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("moto-port="))
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("no moto-port line in the child's stdout: {stdout}"));

    // The launcher notices the closed pipe at once, and the kernel frees the port as it exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !answers(port),
        "moto on port {port} outlived its test process"
    );
}

//! Tests of the fault proxy against the real moto server, through the AWS SDK for Rust.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use linkplan_testkit::{
    Fault, FaultProxy, InjectedError, Outcome, ProxyError, VpcSpec, moto, stalled_listener,
    unique_name,
};

const REGION: &str = "us-east-1";

/// Backoff of the retrying clients, short so that retry tests take milliseconds.
const FAST_BACKOFF: Duration = Duration::from_millis(10);

fn key(service: &str, operation: &str) -> (String, String) {
    (service.to_owned(), operation.to_owned())
}

fn start_proxy() -> FaultProxy {
    FaultProxy::start(&moto().endpoint)
}

/// Builds an EC2 client on the proxy that returns the first error without retrying.
async fn ec2_without_retries(proxy: &FaultProxy) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::config::Builder::from(&proxy.sdk_config(REGION).await)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

async fn ec2_with_fast_retries(proxy: &FaultProxy) -> aws_sdk_ec2::Client {
    let retries = RetryConfig::standard().with_initial_backoff(FAST_BACKOFF);
    let config = aws_sdk_ec2::config::Builder::from(&proxy.sdk_config(REGION).await)
        .retry_config(retries)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

async fn route53_without_retries(proxy: &FaultProxy) -> aws_sdk_route53::Client {
    let config = aws_sdk_route53::config::Builder::from(&proxy.sdk_config(REGION).await)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

async fn route53_with_fast_retries(proxy: &FaultProxy) -> aws_sdk_route53::Client {
    let retries = RetryConfig::standard().with_initial_backoff(FAST_BACKOFF);
    let config = aws_sdk_route53::config::Builder::from(&proxy.sdk_config(REGION).await)
        .retry_config(retries)
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

/// Builds an EC2 client for `endpoint` that gives up 1 s after it sent a request.
async fn ec2_with_read_timeout(endpoint: &str) -> aws_sdk_ec2::Client {
    let timeouts = TimeoutConfig::builder()
        .read_timeout(Duration::from_secs(1))
        .build();
    let config = aws_sdk_ec2::config::Builder::from(&moto().sdk_config(REGION).await)
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

fn name_tags(resource_type: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

async fn vpc_ids_named(ec2: &aws_sdk_ec2::Client, name: &str) -> Vec<String> {
    let output = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .expect("DescribeVpcs on moto");
    output
        .vpcs()
        .iter()
        .filter_map(|vpc| vpc.vpc_id().map(str::to_owned))
        .collect()
}

/// Creates a public hosted zone directly on moto, so the proxy does not count it.
async fn create_zone(name: &str) -> String {
    let route53 = moto().route53().await;
    let output = route53
        .create_hosted_zone()
        .name(format!("{name}.example."))
        .caller_reference(name)
        .send()
        .await
        .expect("CreateHostedZone on moto");
    let id = output.hosted_zone().map(|zone| zone.id().to_owned());
    id.expect("CreateHostedZone returns the zone")
}

fn upsert_a_record(zone_name: &str) -> ChangeBatch {
    let record = ResourceRecord::builder()
        .value("10.0.0.10")
        .build()
        .expect("a valid resource record");
    let record_set = ResourceRecordSet::builder()
        .name(format!("relay.{zone_name}.example."))
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(record)
        .build()
        .expect("a valid record set");
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(record_set)
        .build()
        .expect("a valid change");
    ChangeBatch::builder()
        .changes(change)
        .build()
        .expect("a valid change batch")
}

#[tokio::test]
async fn forwarded_describe_returns_moto_data() {
    let server = moto();
    let name = unique_name("proxy-forward");
    let vpc = server.vpc(VpcSpec::new(REGION, "10.60.0.0/16", &["use1-az1"]).name(&name));
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;

    let output = ec2
        .describe_vpcs()
        .vpc_ids(&vpc.vpc_id)
        .send()
        .await
        .expect("DescribeVpcs through the proxy");

    assert_eq!(output.vpcs().len(), 1);
    assert_eq!(output.vpcs()[0].vpc_id(), Some(vpc.vpc_id.as_str()));
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].service, "ec2");
    assert_eq!(requests[0].operation, "DescribeVpcs");
    assert!(!requests[0].mutating);
    assert_eq!(requests[0].mutating_index, None);
    assert_eq!(requests[0].outcome, Outcome::Forwarded { status: 200 });
}

#[tokio::test]
async fn nth_mutating_fails_with_code() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    let name = unique_name("proxy-nth");
    proxy.fail_nth_mutating(
        2,
        InjectedError::new(
            400,
            "InvalidParameterValue",
            "injected for the second mutation",
        ),
    );

    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.61.0.0/16")
        .send()
        .await
        .expect("the first mutation is forwarded")
        .vpc()
        .and_then(|vpc| vpc.vpc_id())
        .expect("CreateVpc returns the VPC id")
        .to_owned();
    ec2.describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("a describe is not a mutation, so it is forwarded");
    let tag = Tag::builder().key("Name").value(&name).build();
    let error = ec2
        .create_tags()
        .resources(&vpc_id)
        .tags(tag.clone())
        .send()
        .await
        .expect_err("the second mutation fails");
    let third = ec2.create_tags().resources(&vpc_id).tags(tag).send().await;

    assert_eq!(error.code(), Some("InvalidParameterValue"));
    assert_eq!(error.message(), Some("injected for the second mutation"));
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(status, Some(400));
    assert!(third.is_ok(), "the third mutation is forwarded: {third:?}");
    assert_eq!(proxy.mutating_count(), 3);
    let outcomes: Vec<(String, Option<u32>, Outcome)> = proxy
        .requests()
        .into_iter()
        .map(|record| (record.operation, record.mutating_index, record.outcome))
        .collect();
    let failed = Outcome::Failed {
        status: 400,
        code: "InvalidParameterValue".to_owned(),
    };
    let forwarded = Outcome::Forwarded { status: 200 };
    let expected = vec![
        ("CreateVpc".to_owned(), Some(1), forwarded.clone()),
        ("DescribeVpcs".to_owned(), None, forwarded.clone()),
        ("CreateTags".to_owned(), Some(2), failed),
        ("CreateTags".to_owned(), Some(3), forwarded),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(
        vpc_ids_named(&moto().ec2(REGION).await, &name).await,
        [vpc_id]
    );
}

#[tokio::test]
async fn route53_prior_request_not_complete_is_parsed() {
    let zone_name = unique_name("proxy-prior");
    let zone_id = create_zone(&zone_name).await;
    let proxy = start_proxy();
    let route53 = route53_without_retries(&proxy).await;
    proxy.fail_operation(
        "ChangeResourceRecordSets",
        2,
        InjectedError::new(
            400,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        ),
    );

    let mut errors = Vec::new();
    for _ in 0..2 {
        let result = route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(upsert_a_record(&zone_name))
            .send()
            .await;
        errors.push(result.expect_err("the first two changes fail"));
    }
    let third = route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(upsert_a_record(&zone_name))
        .send()
        .await;

    for error in &errors {
        assert_eq!(error.code(), Some("PriorRequestNotComplete"));
        let modeled = error
            .as_service_error()
            .is_some_and(|error| error.is_prior_request_not_complete());
        assert!(
            modeled,
            "the SDK maps the code to its modeled error: {error:?}"
        );
    }
    assert!(third.is_ok(), "the third change is forwarded: {third:?}");
    let counts = proxy.counts();
    assert_eq!(counts[&key("route53", "ChangeResourceRecordSets")], 3);
    assert_eq!(proxy.mutating_count(), 3);
}

#[tokio::test]
async fn route53_retries_past_injected_errors() {
    let zone_name = unique_name("proxy-retry");
    let zone_id = create_zone(&zone_name).await;
    let proxy = start_proxy();
    let route53 = route53_with_fast_retries(&proxy).await;
    proxy.fail_operation(
        "ChangeResourceRecordSets",
        2,
        InjectedError::new(400, "PriorRequestNotComplete", "still processing"),
    );
    proxy.fail_operation(
        "ListResourceRecordSets",
        1,
        InjectedError::new(400, "Throttling", "Rate exceeded"),
    );

    let change = route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(upsert_a_record(&zone_name))
        .send()
        .await;
    let list = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await;

    assert!(
        change.is_ok(),
        "the SDK retries PriorRequestNotComplete: {change:?}"
    );
    let list = list.expect("the SDK retries Throttling");
    let names: Vec<&str> = list
        .resource_record_sets()
        .iter()
        .map(|record_set| record_set.name())
        .collect();
    assert!(names.contains(&format!("relay.{zone_name}.example.").as_str()));
    let counts = proxy.counts();
    assert_eq!(counts[&key("route53", "ChangeResourceRecordSets")], 3);
    assert_eq!(counts[&key("route53", "ListResourceRecordSets")], 2);
}

#[tokio::test]
async fn ec2_describe_retries_past_503() {
    let proxy = start_proxy();
    let ec2 = ec2_with_fast_retries(&proxy).await;
    proxy.fail_operation(
        "DescribeVpcs",
        1,
        InjectedError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
    );

    let result = ec2.describe_vpcs().send().await;

    assert!(
        result.is_ok(),
        "the SDK retries RequestLimitExceeded: {result:?}"
    );
    let outcomes: Vec<Outcome> = proxy
        .requests()
        .into_iter()
        .map(|record| record.outcome)
        .collect();
    let failed = Outcome::Failed {
        status: 503,
        code: "RequestLimitExceeded".to_owned(),
    };
    assert_eq!(outcomes, [failed, Outcome::Forwarded { status: 200 }]);
}

#[tokio::test]
async fn throttling_uses_each_service_code() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    let route53 = route53_without_retries(&proxy).await;
    let sts_config = aws_sdk_sts::config::Builder::from(&proxy.sdk_config(REGION).await)
        .retry_config(RetryConfig::disabled())
        .build();
    let sts = aws_sdk_sts::Client::from_conf(sts_config);
    proxy.throttle_fraction(1, 2);

    let ec2_first = ec2.describe_vpcs().send().await;
    let ec2_second = ec2.describe_vpcs().send().await;
    let route53_first = route53.list_hosted_zones().send().await;
    let route53_second = route53.list_hosted_zones().send().await;
    let sts_first = sts.get_caller_identity().send().await;
    let sts_second = sts.get_caller_identity().send().await;

    assert!(ec2_first.is_ok(), "{ec2_first:?}");
    let ec2_error = ec2_second.expect_err("every second request is throttled");
    assert_eq!(ec2_error.code(), Some("RequestLimitExceeded"));
    let ec2_status = ec2_error
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(ec2_status, Some(503));
    assert!(route53_first.is_ok(), "{route53_first:?}");
    let route53_error = route53_second.expect_err("every second request is throttled");
    assert_eq!(route53_error.code(), Some("Throttling"));
    assert_eq!(route53_error.message(), Some("Rate exceeded"));
    assert!(sts_first.is_ok(), "{sts_first:?}");
    let sts_error = sts_second.expect_err("every second request is throttled");
    assert_eq!(sts_error.code(), Some("Throttling"));
    assert_eq!(sts_error.message(), Some("Rate exceeded"));
}

#[tokio::test]
async fn counts_group_by_service_and_operation() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    let route53 = route53_without_retries(&proxy).await;
    let sts = aws_sdk_sts::Client::new(&proxy.sdk_config(REGION).await);

    ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    ec2.describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");
    route53
        .list_hosted_zones()
        .send()
        .await
        .expect("ListHostedZones");
    sts.get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");

    let expected: BTreeMap<(String, String), u32> = [
        (key("ec2", "DescribeSubnets"), 1),
        (key("ec2", "DescribeVpcs"), 2),
        (key("route53", "ListHostedZones"), 1),
        (key("sts", "GetCallerIdentity"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(proxy.counts(), expected);
    assert_eq!(proxy.mutating_count(), 0);

    proxy.reset_counts();
    assert!(proxy.counts().is_empty());
    assert!(proxy.requests().is_empty());
}

#[tokio::test]
async fn dropped_connection_keeps_created_vpc() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    let name = unique_name("proxy-drop");
    proxy.drop_nth_mutating(1);

    let result = ec2
        .create_vpc()
        .cidr_block("10.62.0.0/16")
        .tag_specifications(name_tags(ResourceType::Vpc, &name))
        .send()
        .await;

    let error = result.expect_err("the client gets no response");
    assert!(
        matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a closed connection, not a service error: {error:?}"
    );
    let created = vpc_ids_named(&moto().ec2(REGION).await, &name).await;
    assert_eq!(created.len(), 1, "moto made the VPC before the drop");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].operation, "CreateVpc");
    assert_eq!(
        requests[0].outcome,
        Outcome::Dropped {
            upstream_status: 200
        }
    );
}

#[tokio::test]
async fn stall_trips_read_timeout() {
    let proxy = start_proxy();
    let ec2 = ec2_with_read_timeout(&proxy.endpoint()).await;
    proxy.stall_operation("DescribeVpcs", 1);

    let started = Instant::now();
    let stalled = ec2.describe_vpcs().send().await;
    let elapsed = started.elapsed();
    let next = ec2.describe_vpcs().send().await;

    let error = stalled.expect_err("the stalled request times out");
    let timed_out = matches!(&error, SdkError::DispatchFailure(failure) if failure.is_timeout())
        || matches!(&error, SdkError::TimeoutError(_));
    assert!(timed_out, "a timeout error: {error:?}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "timed out after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "timed out after {elapsed:?}"
    );
    assert!(next.is_ok(), "the stall applied once: {next:?}");
    let outcomes: Vec<Outcome> = proxy
        .requests()
        .into_iter()
        .map(|record| record.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [Outcome::Stalled, Outcome::Forwarded { status: 200 }]
    );
}

#[tokio::test]
async fn stalled_listener_trips_read_timeout() {
    let listener = stalled_listener();
    let ec2 = ec2_with_read_timeout(&listener.endpoint()).await;

    let started = Instant::now();
    let result = ec2.describe_vpcs().send().await;
    let elapsed = started.elapsed();

    let error = result.expect_err("the listener never answers");
    let timed_out = matches!(&error, SdkError::DispatchFailure(failure) if failure.is_timeout())
        || matches!(&error, SdkError::TimeoutError(_));
    assert!(timed_out, "a timeout error: {error:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "timed out after {elapsed:?}"
    );
    assert!(listener.endpoint().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn delay_slows_every_request() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    let delay = Duration::from_millis(300);
    proxy.set_delay(delay);

    let started = Instant::now();
    ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let delayed = started.elapsed();
    proxy.clear_faults();
    let started = Instant::now();
    ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let undelayed = started.elapsed();

    assert!(delayed >= delay, "took {delayed:?}");
    assert!(undelayed < delayed, "took {undelayed:?} without the delay");
}

#[tokio::test]
async fn fault_operation_applies_to_one_operation() {
    let proxy = start_proxy();
    let ec2 = ec2_without_retries(&proxy).await;
    proxy.fault_operation(
        "DescribeSubnets",
        1,
        Fault::Error(InjectedError::new(500, "InternalError", "injected")),
    );

    let error = ec2
        .describe_subnets()
        .send()
        .await
        .expect_err("the rule fails the first DescribeSubnets");
    let other = ec2.describe_vpcs().send().await;

    assert_eq!(error.code(), Some("InternalError"));
    assert!(other.is_ok(), "other operations are forwarded: {other:?}");
}

#[tokio::test]
async fn unreachable_upstream_returns_502() {
    // Binding and closing a listener leaves a loopback port with nothing on it.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"));
    let ec2 = ec2_without_retries(&proxy).await;

    let error = ec2
        .describe_vpcs()
        .send()
        .await
        .expect_err("nothing listens upstream");

    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(status, Some(502));
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert!(matches!(
        requests[0].outcome,
        Outcome::UpstreamFailed { .. }
    ));
}

#[test]
fn non_loopback_upstream_is_rejected() {
    let upstreams = [
        "http://169.254.169.254:80",
        "http://10.1.2.3:5000",
        "http://ec2.us-east-1.amazonaws.com:80",
        "http://[2001:db8::1]:80",
    ];
    for upstream in upstreams {
        let result = FaultProxy::try_start(upstream);
        assert!(
            matches!(result, Err(ProxyError::NonLoopbackUpstream { .. })),
            "{upstream}: {result:?}"
        );
    }
}

#[test]
#[should_panic(expected = "must be a loopback address")]
fn start_panics_for_remote_upstream() {
    let _ = FaultProxy::start("http://192.0.2.1:80");
}

#[test]
fn proxy_listens_on_loopback() {
    let proxy = start_proxy();
    assert!(proxy.endpoint().starts_with("http://127.0.0.1:"));
    assert!(proxy.upstream().ip().is_loopback());
    let env: BTreeMap<String, String> = proxy.env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], proxy.endpoint());
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
}

/// A synchronous test with a child process: the proxy runs on its own thread, and botocore
/// reads AWS_ENDPOINT_URL from the environment that `command` sets.
#[test]
fn child_process_goes_through_proxy() {
    let server = moto();
    let proxy = start_proxy();
    let python = server.repository_root().join(".venv/bin/python");
    let script = "import boto3; boto3.client('ec2').describe_vpcs()";

    let output = proxy
        .command(python)
        .arg("-c")
        .arg(script)
        .output()
        .expect("the venv's Python runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "boto3 failed: {stderr}");
    assert_eq!(
        proxy.counts(),
        [(key("ec2", "DescribeVpcs"), 1)].into_iter().collect()
    );
}

//! The hub setup end to end against moto: plan, apply, re-plan, destroy.

mod common;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use common::{assert_golden, hub_config, redact, run, workdir, write_config};
use linkplan_testkit::{VpcSpec, moto, unique_name};

/// An inbound rule as (protocol, from port, to port, CIDRs).
type Rule<'a> = (Option<&'a str>, Option<i32>, Option<i32>, Vec<&'a str>);

fn tag(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_lifecycle_against_moto() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("hub");
    let hub = server.vpc(
        VpcSpec::new("us-east-1", "10.30.0.0/16", &["use1-az1", "use1-az2"]).dns_hostnames(false),
    );
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    let plan_path = format!("plans/{stack}.plan");

    // Plan: exit 2 with --detailed-exitcode, a plan file at the default path.
    let planned = run(server, &dir, &["plan", "--detailed-exitcode"]).expect_code(2);
    assert!(
        planned
            .stdout
            .contains("Plan: 8 to add, 1 to change, 0 to destroy."),
        "{}",
        planned.stdout
    );
    assert!(dir.join(&plan_path).exists());

    run(server, &dir, &["apply", "--auto-approve", &plan_path]).expect_code(0);

    // Endpoints: one per service, private DNS off, tagged.
    let ec2 = server.ec2("us-east-1").await;
    let described = ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&hub.vpc_id).build())
        .send()
        .await
        .unwrap();
    let endpoints: Vec<_> = described
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().map(|s| s.as_str().to_ascii_lowercase()) != Some("deleted".into()))
        .collect();
    assert_eq!(endpoints.len(), 4);
    let mut by_host = BTreeMap::new();
    for endpoint in &endpoints {
        assert_eq!(
            endpoint.private_dns_enabled(),
            Some(false),
            "{:?}",
            endpoint.vpc_endpoint_id()
        );
        assert_eq!(
            tag(endpoint.tags(), "linkplan:stack").as_deref(),
            Some(stack.as_str())
        );
        let address = tag(endpoint.tags(), "linkplan:address").unwrap();
        by_host.insert(
            address.trim_start_matches("endpoint.").to_string(),
            *endpoint,
        );
    }
    for (host, service_name) in provider.services.by_host() {
        assert_eq!(
            by_host[host].service_name(),
            Some(service_name),
            "endpoint.{host}"
        );
    }

    // DNS support and hostnames on.
    for attribute in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
    ] {
        let read = ec2
            .describe_vpc_attribute()
            .vpc_id(&hub.vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .unwrap();
        let value = read
            .enable_dns_support()
            .or(read.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(value, Some(true), "{attribute:?}");
    }

    // The managed group: 443 from the hub CIDR and nothing else.
    let groups = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("tag:linkplan:stack")
                .values(&stack)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 1);
    let group = &groups.security_groups()[0];
    let rules: Vec<Rule> = group
        .ip_permissions()
        .iter()
        .map(|p| {
            (
                p.ip_protocol(),
                p.from_port(),
                p.to_port(),
                p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![(Some("tcp"), Some(443), Some(443), vec!["10.30.0.0/16"])]
    );
    for endpoint in &endpoints {
        let groups: Vec<&str> = endpoint
            .groups()
            .iter()
            .filter_map(|g| g.group_id())
            .collect();
        assert_eq!(groups, vec![group.group_id().unwrap()]);
    }

    // The zone: private, associated with the hub VPC, with one alias per host.
    let route53 = server.route53().await;
    let zones = route53
        .list_hosted_zones_by_vpc()
        .vpc_id(&hub.vpc_id)
        .vpc_region("us-east-1".into())
        .send()
        .await
        .unwrap();
    let ours: Vec<_> = zones
        .hosted_zone_summaries()
        .iter()
        .filter(|z| z.name() == "deepsecurity.trendmicro.com.")
        .collect();
    assert_eq!(ours.len(), 1);
    let zone_id = ours[0].hosted_zone_id().to_string();
    let zone = route53.get_hosted_zone().id(&zone_id).send().await.unwrap();
    assert_eq!(
        zone.hosted_zone()
            .and_then(|z| z.config())
            .map(|c| c.private_zone()),
        Some(true)
    );
    let records = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    for (host, endpoint) in &by_host {
        let name = format!("{host}.deepsecurity.trendmicro.com.");
        let record = records
            .resource_record_sets()
            .iter()
            .find(|r| r.name() == name && r.r#type().as_str() == "A")
            .unwrap_or_else(|| panic!("no A record {name}"));
        let alias = record.alias_target().expect("an alias record");
        let entry = &endpoint.dns_entries()[0];
        assert_eq!(
            alias.dns_name().trim_end_matches('.'),
            entry.dns_name().unwrap(),
            "{name}"
        );
        assert_eq!(
            alias.hosted_zone_id(),
            entry.hosted_zone_id().unwrap(),
            "{name}"
        );
        assert_ne!(
            alias.hosted_zone_id(),
            zone_id.trim_start_matches("/hostedzone/"),
            "{name}"
        );
    }

    // A second plan finds nothing to do.
    let again = run(
        server,
        &dir,
        &["plan", "--detailed-exitcode", "--out", "plans/again.plan"],
    )
    .expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // Destroy leaves nothing tagged with the stack, and the zone is gone.
    let destroy = run(
        server,
        &dir,
        &["plan", "--destroy", "--out", "plans/destroy.plan"],
    )
    .expect_code(0);
    assert!(
        destroy
            .stdout
            .contains("0 to add, 0 to change, 7 to destroy"),
        "{}",
        destroy.stdout
    );
    run(
        server,
        &dir,
        &["apply", "--auto-approve", "plans/destroy.plan"],
    )
    .expect_code(0);
    let left = ec2
        .describe_vpc_endpoints()
        .filters(
            Filter::builder()
                .name("tag:linkplan:stack")
                .values(&stack)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let live: Vec<_> = left
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            !matches!(
                e.state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .as_deref(),
                Some("deleted" | "deleting")
            )
        })
        .collect();
    assert!(live.is_empty(), "{live:?}");
    let groups = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("tag:linkplan:stack")
                .values(&stack)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups().is_empty());
    assert!(
        route53.get_hosted_zone().id(&zone_id).send().await.is_err(),
        "zone {zone_id} still exists"
    );

    // A plan that was applied is refused the second time.
    let twice = run(
        server,
        &dir,
        &["apply", "--auto-approve", "plans/destroy.plan"],
    )
    .expect_code(1);
    assert!(
        twice.stderr.contains("was already applied"),
        "{}",
        twice.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_without_terminal_needs_auto_approve() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("confirm");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.31.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);

    let refused = run(server, &dir, &["apply", "p.plan"]).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("error: apply needs confirmation, but no terminal is attached"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("help: review the plan, then run apply again with --auto-approve")
    );

    let ec2 = server.ec2("us-east-1").await;
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&hub.vpc_id).build())
        .send()
        .await
        .unwrap();
    assert!(endpoints.vpc_endpoints().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_hub_plan_text_is_pinned() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("golden");
    let hub = server.vpc(
        VpcSpec::new("us-east-1", "10.32.0.0/16", &["use1-az1", "use1-az2"]).dns_hostnames(false),
    );
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));

    let planned = run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    let services = &provider.services;
    // Plans list subnets sorted, so the placeholders follow the sorted order of the random ids.
    let mut subnets = hub.subnet_ids.clone();
    subnets.sort();
    let text = redact(
        &planned.stdout,
        &[
            (&hub.vpc_id, "vpc-HUB"),
            (&subnets[0], "subnet-A"),
            (&subnets[1], "subnet-B"),
            (
                &services.relay,
                "com.amazonaws.vpce.us-east-1.vpce-svc-RELAY",
            ),
            (
                &services.agents,
                "com.amazonaws.vpce.us-east-1.vpce-svc-AGENTS",
            ),
            (
                &services.dsmim,
                "com.amazonaws.vpce.us-east-1.vpce-svc-DSMIM",
            ),
            (&services.app, "com.amazonaws.vpce.us-east-1.vpce-svc-APP"),
            (&stack, "STACK"),
        ],
    );
    assert_golden("fresh-hub-plan.txt", &text);

    // The same state planned again gives a byte-identical plan file.
    run(server, &dir, &["plan", "--out", "q.plan"]).expect_code(0);
    let first = std::fs::read(dir.join("p.plan")).unwrap();
    let second = std::fs::read(dir.join("q.plan")).unwrap();
    assert!(first == second, "two plans of the same state differ");

    // `show` prints the same text from the file, then the warnings recorded when planning.
    let shown = run(server, &dir, &["show", "p.plan"]).expect_code(0);
    assert!(
        shown.stdout.starts_with(&planned.stdout),
        "show differs from plan:\n{}",
        shown.stdout
    );
}

//! The AWS calls of a plan against moto, counted by the loopback proxy: a no-change plan reads
//! each kind of object once per region (DNS attributes once per VPC), and `-v` reports the
//! same counts the proxy saw.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Run, hub_config, run_via, workdir, write_config};
use linkplan_testkit::{FaultProxy, LocalVpc, VpcSpec, moto, unique_name};

/// Calls by (service, operation), as the proxy counts them.
type Counts = BTreeMap<(String, String), u32>;

/// A stack applied through a proxy: the hub in us-east-1 and spokes in `regions`.
struct Applied {
    proxy: FaultProxy,
    dir: PathBuf,
    spokes: usize,
    regions: usize,
}

/// Returns the config of a stack on `hub` with `spokes`, and a zone name of its own, so that
/// the zones other tests of this binary make do not show up in its reads.
fn stack_config(stack: &str, hub: &LocalVpc, spokes: &[LocalVpc]) -> String {
    let provider = moto().provider_side();
    let mut config = hub_config(stack, hub, &provider).replace(
        "subnet_ids = [",
        &format!(
            "route_table_ids = [\"{}\"]\nsubnet_ids = [",
            hub.route_table_ids[0]
        ),
    );
    config.push_str(&format!("\n[zone]\nname = \"{stack}.example.internal\"\n"));
    for (index, spoke) in spokes.iter().enumerate() {
        config.push_str(&format!(
            "\n[[spoke]]\nname = \"spoke{index}\"\nregion = \"{}\"\nvpc_id = \"{}\"\nroute_table_ids = [\"{}\"]\n",
            spoke.region, spoke.vpc_id, spoke.route_table_ids[0]
        ));
    }
    config
}

/// Builds and applies a hub with four spokes in three regions, two of them in us-west-2 and
/// one in the hub's own region, through a new proxy.
fn applied_stack(prefix: &str, second_octet: u8) -> Applied {
    let server = moto();
    let stack = unique_name(prefix);
    let cidr = |offset: u8| format!("10.{}.0.0/16", second_octet + offset);
    let hub = server.vpc(VpcSpec::new(
        "us-east-1",
        &cidr(0),
        &["use1-az1", "use1-az2"],
    ));
    let spokes = vec![
        server.vpc(VpcSpec::new("us-east-1", &cidr(1), &["use1-az1"])),
        server.vpc(VpcSpec::new("eu-west-1", &cidr(2), &["euw1-az1"])),
        server.vpc(VpcSpec::new("us-west-2", &cidr(3), &["usw2-az1"])),
        server.vpc(VpcSpec::new("us-west-2", &cidr(4), &["usw2-az2"])),
    ];
    let dir = workdir(&stack);
    write_config(&dir, &stack_config(&stack, &hub, &spokes));

    let proxy = FaultProxy::start(&server.endpoint);
    run_via(&proxy, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    run_via(&proxy, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    Applied {
        proxy,
        dir,
        spokes: spokes.len(),
        regions: 3,
    }
}

/// Runs `linkplan ARGS` through the stack's proxy and returns the run with the calls it made.
fn counted(stack: &Applied, args: &[&str]) -> (Run, Counts) {
    stack.proxy.reset_counts();
    let run = run_via(&stack.proxy, &stack.dir, args);
    (run, stack.proxy.counts())
}

fn calls(counts: &Counts, service: &str, operation: &str) -> u32 {
    counts
        .get(&(service.to_string(), operation.to_string()))
        .copied()
        .unwrap_or(0)
}

#[test]
fn no_change_plan_reads_in_batches() {
    let stack = applied_stack("perf-batch", 60);
    let (_, counts) = counted(
        &stack,
        &["plan", "--detailed-exitcode", "--out", "again.plan"],
    );
    let vpcs = u32::try_from(stack.spokes + 1).expect("a few VPCs");
    let regions = u32::try_from(stack.regions).expect("a few regions");
    let report = format!("{counts:#?}");

    // DescribeVpcAttribute takes one VPC and one attribute, so it is the one per-VPC read.
    assert_eq!(
        calls(&counts, "ec2", "DescribeVpcAttribute"),
        2 * vpcs,
        "{report}"
    );
    for operation in [
        "DescribeVpcs",
        "DescribeRouteTables",
        "DescribeAvailabilityZones",
        "DescribeDhcpOptions",
        "DescribeVpcPeeringConnections",
    ] {
        let made = calls(&counts, "ec2", operation);
        assert!(
            made <= regions,
            "{operation}: {made} calls for {regions} regions\n{report}"
        );
    }
    for operation in [
        "DescribeSubnets",
        "DescribeVpcEndpoints",
        "DescribeVpcEndpointServices",
    ] {
        assert_eq!(calls(&counts, "ec2", operation), 1, "{operation}\n{report}");
    }
    // The groups are read by the stack's tag. The stack's group is among them, so the read by
    // the name linkplan gives its group, which looks for an untagged group of that name, is not
    // needed.
    assert_eq!(
        calls(&counts, "ec2", "DescribeSecurityGroups"),
        1,
        "{report}"
    );
    for operation in [
        "ListHostedZonesByName",
        "GetHostedZone",
        "ListTagsForResources",
        "ListResourceRecordSets",
    ] {
        assert_eq!(
            calls(&counts, "route53", operation),
            1,
            "{operation}\n{report}"
        );
    }
    // Every VPC is associated with the zone, which GetHostedZone lists.
    assert_eq!(
        calls(&counts, "route53", "ListHostedZonesByVPC"),
        0,
        "{report}"
    );
    assert_eq!(calls(&counts, "sts", "GetCallerIdentity"), 1, "{report}");

    let batched = [
        "DescribeVpcAttribute",
        "DescribeVpcs",
        "DescribeRouteTables",
        "DescribeAvailabilityZones",
        "DescribeDhcpOptions",
        "DescribeVpcPeeringConnections",
        "DescribeSubnets",
        "DescribeVpcEndpoints",
        "DescribeSecurityGroups",
        "DescribeVpcEndpointServices",
        "ListHostedZonesByName",
        "GetHostedZone",
        "ListTagsForResources",
        "ListResourceRecordSets",
        "GetCallerIdentity",
    ];
    for (_, operation) in counts.keys() {
        assert!(
            batched.contains(&operation.as_str()),
            "{operation} is outside the batched reads\n{report}"
        );
    }
    // Per VPC, per region (five kinds), the hub's five calls, four Route 53 calls and STS.
    let bound = 2 * vpcs + 5 * regions + 5 + 4 + 1;
    let total: u32 = counts.values().sum();
    assert!(total <= bound, "{total} calls, more than {bound}\n{report}");
}

/// Returns the `CALLS` column of `service operation` in a `-v` report, or `None`.
fn reported_calls(stderr: &str, service: &str, operation: &str) -> Option<u32> {
    stderr.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next() != Some(service) || fields.next() != Some(operation) {
            return None;
        }
        fields.next()?.parse().ok()
    })
}

/// Returns the total of the `AWS calls: N (retries not included: R)` line.
fn reported_total(stderr: &str) -> Option<u32> {
    let line = stderr.lines().find(|l| l.starts_with("AWS calls: "))?;
    line["AWS calls: ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn verbose_plan_prints_call_counts() {
    let stack = applied_stack("perf-verbose", 70);
    let (run, counts) = counted(&stack, &["plan", "-v", "--out", "again.plan"]);
    let run = run.expect_code(0);

    let total: u32 = counts.values().sum();
    assert_eq!(reported_total(&run.stderr), Some(total), "{}", run.stderr);
    assert!(
        run.stderr.contains("(retries not included: 0)"),
        "{}",
        run.stderr
    );
    for ((service, operation), made) in &counts {
        assert_eq!(
            reported_calls(&run.stderr, service, operation),
            Some(*made),
            "{service} {operation}\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("AWS calls by step:"), "{}", run.stderr);
}

#[test]
fn call_counts_only_with_verbose() {
    let server = moto();
    let stack = unique_name("perf-quiet");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.80.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    write_config(&dir, &stack_config(&stack, &hub, &[]));
    let proxy = FaultProxy::start(&server.endpoint);
    let run = run_via(&proxy, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    assert!(!run.stderr.contains("AWS calls"), "{}", run.stderr);

    // The report of an apply adds the calls of each step.
    proxy.reset_counts();
    let run = run_via(&proxy, &dir, &["apply", "-v", "--auto-approve", "p.plan"]).expect_code(0);
    let counts = proxy.counts();
    let total: u32 = counts.values().sum();
    assert_eq!(reported_total(&run.stderr), Some(total), "{}", run.stderr);
    assert!(run.stderr.contains("AWS calls by step:"), "{}", run.stderr);
    let relay = run
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("endpoint.relay "))
        .unwrap_or_else(|| panic!("no line for endpoint.relay\n{}", run.stderr));
    let relay_calls: u32 = relay
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no call count in {relay:?}"));
    assert!(relay_calls >= 1, "{relay}");
    assert_eq!(calls(&counts, "ec2", "CreateVpcEndpoint"), 4);
}

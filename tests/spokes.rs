//! Spokes in other regions, peered to the hub, against moto.

mod common;

use aws_sdk_ec2::types::Filter;
use common::{hub_config, run, workdir, write_config};
use linkplan_testkit::{LocalVpc, VpcSpec, moto, unique_name};

/// Reports whether `tags` carry `linkplan:stack` = `stack`. moto ignores `tag:` filters on
/// peering connections, so tests check the tags themselves.
fn of_stack(tags: &[aws_sdk_ec2::types::Tag], stack: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some("linkplan:stack") && t.value() == Some(stack))
}

fn spoke_table(name: &str, spoke: &LocalVpc) -> String {
    format!(
        "\n[[spoke]]\nname = \"{name}\"\nregion = \"{}\"\nvpc_id = \"{}\"\nroute_table_ids = [\"{}\"]\n",
        spoke.region, spoke.vpc_id, spoke.route_table_ids[0]
    )
}

/// Returns the hub-only config with `route_table_ids` of the hub set.
fn hub_with_routes(stack: &str, hub: &LocalVpc) -> String {
    let provider = moto().provider_side();
    hub_config(stack, hub, &provider).replace(
        "subnet_ids = [",
        &format!(
            "route_table_ids = [\"{}\"]\nsubnet_ids = [",
            hub.route_table_ids[0]
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn spokes_in_two_regions() {
    let server = moto();
    let stack = unique_name("spokes");
    let hub = server.vpc(VpcSpec::new(
        "us-east-1",
        "10.40.0.0/16",
        &["use1-az1", "use1-az2"],
    ));
    let europe =
        server.vpc(VpcSpec::new("eu-west-1", "10.41.0.0/16", &["euw1-az1"]).dns_hostnames(false));
    let oregon =
        server.vpc(VpcSpec::new("us-west-2", "10.42.0.0/16", &["usw2-az1"]).dns_hostnames(false));
    let dir = workdir(&stack);
    let config = format!(
        "{}{}{}",
        hub_with_routes(&stack, &hub),
        spoke_table("eu-web", &europe),
        spoke_table("us-app", &oregon)
    );
    write_config(&dir, &config);

    let planned = run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    assert!(
        planned
            .stdout
            .contains("# peering_acceptance.eu-web will be created (in eu-west-1)"),
        "{}",
        planned.stdout
    );
    assert!(
        planned
            .stdout
            .contains("# zone_association.us-app will be created (in us-west-2)"),
        "{}",
        planned.stdout
    );
    run(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);

    let hub_ec2 = server.ec2("us-east-1").await;
    let peerings = hub_ec2
        .describe_vpc_peering_connections()
        .filters(
            Filter::builder()
                .name("tag:linkplan:stack")
                .values(&stack)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let live: Vec<_> = peerings
        .vpc_peering_connections()
        .iter()
        .filter(|p| of_stack(p.tags(), &stack))
        .filter(|p| p.status().and_then(|s| s.code()).map(|c| c.as_str()) == Some("active"))
        .collect();
    assert_eq!(live.len(), 2, "{:?}", peerings.vpc_peering_connections());

    for (spoke, spoke_cidr) in [(&europe, "10.41.0.0/16"), (&oregon, "10.42.0.0/16")] {
        let peering = live
            .iter()
            .find(|p| p.accepter_vpc_info().and_then(|v| v.vpc_id()) == Some(spoke.vpc_id.as_str()))
            .unwrap_or_else(|| panic!("no active peering to {}", spoke.vpc_id));
        let peering_id = peering.vpc_peering_connection_id().unwrap();
        assert_eq!(
            peering.accepter_vpc_info().and_then(|v| v.region()),
            Some(spoke.region.as_str())
        );

        // Routes both ways: the spoke CIDR in the hub table, the hub CIDR in the spoke table.
        let hub_table = hub_ec2
            .describe_route_tables()
            .route_table_ids(&hub.route_table_ids[0])
            .send()
            .await
            .unwrap();
        let to_spoke = hub_table.route_tables()[0]
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some(spoke_cidr))
            .unwrap_or_else(|| panic!("no hub route to {spoke_cidr}"));
        assert_eq!(to_spoke.vpc_peering_connection_id(), Some(peering_id));
        let spoke_ec2 = server.ec2(&spoke.region).await;
        let spoke_table = spoke_ec2
            .describe_route_tables()
            .route_table_ids(&spoke.route_table_ids[0])
            .send()
            .await
            .unwrap();
        let to_hub = spoke_table.route_tables()[0]
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("10.40.0.0/16"))
            .unwrap_or_else(|| panic!("no route to the hub in {}", spoke.region));
        assert_eq!(to_hub.vpc_peering_connection_id(), Some(peering_id));

        // DNS hostnames were turned on in the spoke.
        let hostnames = spoke_ec2
            .describe_vpc_attribute()
            .vpc_id(&spoke.vpc_id)
            .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .unwrap();
        assert_eq!(
            hostnames.enable_dns_hostnames().and_then(|v| v.value()),
            Some(true),
            "{}",
            spoke.vpc_id
        );
    }

    // The endpoints' group allows 443 from the hub and both spokes.
    let groups = hub_ec2
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
    let mut sources: Vec<&str> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|p| p.from_port() == Some(443) && p.to_port() == Some(443))
        .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
        .collect();
    sources.sort();
    assert_eq!(sources, ["10.40.0.0/16", "10.41.0.0/16", "10.42.0.0/16"]);

    // The zone lists all three VPCs, each with its own region.
    let route53 = server.route53().await;
    let zones = route53
        .list_hosted_zones_by_vpc()
        .vpc_id(&hub.vpc_id)
        .vpc_region("us-east-1".into())
        .send()
        .await
        .unwrap();
    let zone_id = zones
        .hosted_zone_summaries()
        .iter()
        .find(|z| z.name() == "deepsecurity.trendmicro.com.")
        .map(|z| z.hosted_zone_id().to_string())
        .expect("the zone is associated with the hub");
    let zone = route53.get_hosted_zone().id(&zone_id).send().await.unwrap();
    let mut vpcs: Vec<(String, String)> = zone
        .vpcs()
        .iter()
        .map(|v| {
            (
                v.vpc_id().unwrap_or_default().to_string(),
                v.vpc_region()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    vpcs.sort();
    let mut expected = vec![
        (hub.vpc_id.clone(), "us-east-1".to_string()),
        (europe.vpc_id.clone(), "eu-west-1".to_string()),
        (oregon.vpc_id.clone(), "us-west-2".to_string()),
    ];
    expected.sort();
    assert_eq!(vpcs, expected);

    // A second plan has no changes; destroy removes everything.
    run(
        server,
        &dir,
        &["plan", "--detailed-exitcode", "--out", "again.plan"],
    )
    .expect_code(0);
    run(
        server,
        &dir,
        &["plan", "--destroy", "--out", "destroy.plan"],
    )
    .expect_code(0);
    run(server, &dir, &["apply", "--auto-approve", "destroy.plan"]).expect_code(0);
    let after = hub_ec2
        .describe_vpc_peering_connections()
        .filters(
            Filter::builder()
                .name("tag:linkplan:stack")
                .values(&stack)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let left: Vec<_> = after
        .vpc_peering_connections()
        .iter()
        .filter(|p| of_stack(p.tags(), &stack))
        .filter(|p| {
            !matches!(
                p.status().and_then(|s| s.code()).map(|c| c.as_str()),
                Some("deleted" | "deleting")
            )
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let hub_table = hub_ec2
        .describe_route_tables()
        .route_table_ids(&hub.route_table_ids[0])
        .send()
        .await
        .unwrap();
    let peering_routes: Vec<_> = hub_table.route_tables()[0]
        .routes()
        .iter()
        .filter(|r| r.vpc_peering_connection_id().is_some())
        .collect();
    assert!(peering_routes.is_empty(), "{peering_routes:?}");
    assert!(
        route53.get_hosted_zone().id(&zone_id).send().await.is_err(),
        "zone {zone_id} still exists"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overlap_with_secondary_block_fails_plan() {
    let server = moto();
    let stack = unique_name("overlap");
    let hub = server.vpc(
        VpcSpec::new("us-east-1", "10.50.0.0/16", &["use1-az1"]).secondary_cidr("10.51.0.0/16"),
    );
    let spoke = server.vpc(VpcSpec::new("eu-west-1", "10.51.128.0/17", &["euw1-az1"]));
    let dir = workdir(&stack);
    write_config(
        &dir,
        &format!(
            "{}{}",
            hub_with_routes(&stack, &hub),
            spoke_table("eu", &spoke)
        ),
    );

    let failed = run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(1);
    let expected = format!(
        "error: CIDR blocks of the hub (`{}`: 10.50.0.0/16, 10.51.0.0/16) and spoke `eu` (`{}`: 10.51.128.0/17) overlap: 10.51.0.0/16 overlaps 10.51.128.0/17",
        hub.vpc_id, spoke.vpc_id
    );
    assert!(failed.stderr.contains(&expected), "{}", failed.stderr);
    assert!(!dir.join("p.plan").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicting_route_fails_and_identical_is_kept() {
    let server = moto();
    let stack = unique_name("routes");
    let hub =
        server.vpc(VpcSpec::new("us-east-1", "10.60.0.0/16", &["use1-az1"]).internet_gateway());
    let spoke = server.vpc(VpcSpec::new("eu-west-1", "10.61.0.0/16", &["euw1-az1"]));
    let dir = workdir(&stack);
    write_config(
        &dir,
        &format!(
            "{}{}",
            hub_with_routes(&stack, &hub),
            spoke_table("eu", &spoke)
        ),
    );

    // A route to the spoke's CIDR over another target makes the plan fail, naming it.
    let hub_ec2 = server.ec2("us-east-1").await;
    let gateway = hub
        .internet_gateway_id
        .clone()
        .expect("the fixture made a gateway");
    hub_ec2
        .create_route()
        .route_table_id(&hub.route_table_ids[0])
        .destination_cidr_block("10.61.0.0/16")
        .gateway_id(&gateway)
        .send()
        .await
        .unwrap();
    let failed = run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(1);
    let expected = format!(
        "error: route table `{}` of the hub already routes 10.61.0.0/16 to `{gateway}`",
        hub.route_table_ids[0]
    );
    assert!(failed.stderr.contains(&expected), "{}", failed.stderr);
    assert!(!dir.join("p.plan").exists());

    // Without the conflict, apply; the routes it made are then identical and left alone.
    hub_ec2
        .delete_route()
        .route_table_id(&hub.route_table_ids[0])
        .destination_cidr_block("10.61.0.0/16")
        .send()
        .await
        .unwrap();
    run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    run(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    let again = run(
        server,
        &dir,
        &["plan", "--detailed-exitcode", "--out", "q.plan"],
    )
    .expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_spoke_is_cleaned_up_and_can_return() {
    let server = moto();
    let stack = unique_name("removed");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.80.0.0/16", &["use1-az1"]));
    let spoke = server.vpc(VpcSpec::new("eu-west-1", "10.81.0.0/16", &["euw1-az1"]));
    let dir = workdir(&stack);
    let hub_only = hub_with_routes(&stack, &hub);
    let with_spoke = format!("{hub_only}{}", spoke_table("eu", &spoke));
    write_config(&dir, &with_spoke);
    run(server, &dir, &["plan", "--out", "1.plan"]).expect_code(0);
    run(server, &dir, &["apply", "--auto-approve", "1.plan"]).expect_code(0);

    // Without the spoke, the plan removes the hub's routes and the zone association before
    // the peering, and warns about the routes in the spoke's own tables.
    write_config(&dir, &hub_only);
    let removal = run(server, &dir, &["plan", "--out", "2.plan"]).expect_code(0);
    let route = format!(
        "# route.eu.{}.10.81.0.0/16 will be destroyed",
        hub.route_table_ids[0]
    );
    assert!(removal.stdout.contains(&route), "{}", removal.stdout);
    assert!(
        removal
            .stdout
            .contains("# zone_association.eu will be destroyed"),
        "{}",
        removal.stdout
    );
    assert!(
        removal.stdout.contains("# peering.eu will be destroyed"),
        "{}",
        removal.stdout
    );
    assert!(
        removal.stderr.contains("are not removed"),
        "{}",
        removal.stderr
    );
    run(server, &dir, &["apply", "--auto-approve", "2.plan"]).expect_code(0);

    let hub_ec2 = server.ec2("us-east-1").await;
    let tables = hub_ec2
        .describe_route_tables()
        .route_table_ids(&hub.route_table_ids[0])
        .send()
        .await
        .unwrap();
    let over_peering: Vec<_> = tables.route_tables()[0]
        .routes()
        .iter()
        .filter(|r| r.vpc_peering_connection_id().is_some())
        .collect();
    assert!(over_peering.is_empty(), "{over_peering:?}");
    let route53 = server.route53().await;
    let zones = route53
        .list_hosted_zones_by_vpc()
        .vpc_id(&spoke.vpc_id)
        .vpc_region("eu-west-1".into())
        .send()
        .await
        .unwrap();
    let associated: Vec<_> = zones
        .hosted_zone_summaries()
        .iter()
        .filter(|z| z.name() == "deepsecurity.trendmicro.com.")
        .collect();
    assert!(
        associated.is_empty(),
        "the zone is still associated with the spoke: {associated:?}"
    );
    run(
        server,
        &dir,
        &["plan", "--detailed-exitcode", "--out", "3.plan"],
    )
    .expect_code(0);

    // Back in the config, the spoke's leftover route over the dead peering is replaced.
    write_config(&dir, &with_spoke);
    let back = run(server, &dir, &["plan", "--out", "4.plan"]).expect_code(0);
    let old = format!(
        "# route.eu.{}.10.80.0.0/16.old will be destroyed",
        spoke.route_table_ids[0]
    );
    assert!(back.stdout.contains(&old), "{}", back.stdout);
    run(server, &dir, &["apply", "--auto-approve", "4.plan"]).expect_code(0);
    let again = run(
        server,
        &dir,
        &["plan", "--detailed-exitcode", "--out", "5.plan"],
    )
    .expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

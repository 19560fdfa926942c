//! `linkplan verify` against moto and a DNS server on 127.0.0.1 that serves the zone as
//! linkplan applied it: each alias resolves to the private addresses of its endpoint's network
//! interfaces, as the Route 53 resolver does inside the VPC.

mod common;

use std::path::PathBuf;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType,
};
use common::{Run, hub_config, run, workdir, write_config};
use linkplan_testkit::{
    DnsServer, ZoneRecords, local_zone_records, moto, stack_zone_id, unique_name,
};

const ZONE: &str = "deepsecurity.trendmicro.com";

/// A hub stack that linkplan planned and applied on moto.
struct Applied {
    stack: String,
    dir: PathBuf,
}

fn apply_hub(prefix: &str, cidr: &str) -> Applied {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name(prefix);
    let hub = server.vpc(linkplan_testkit::VpcSpec::new(
        "us-east-1",
        cidr,
        &["use1-az1", "use1-az2"],
    ));
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    run(server, &dir, &["plan"]).expect_code(0);
    let plan = format!("plans/{stack}.plan");
    run(server, &dir, &["apply", "--auto-approve", &plan]).expect_code(0);
    Applied { stack, dir }
}

async fn zone_records(stack: &str) -> ZoneRecords {
    local_zone_records(&moto().endpoint, "us-east-1", stack, ZONE)
        .await
        .expect("the applied zone is read from moto")
}

fn verify(applied: &Applied, dns: &DnsServer) -> Run {
    let resolver = dns.address.to_string();
    run(moto(), &applied.dir, &["verify", "--resolver", &resolver])
}

/// Returns the table row of `name` on stdout, split on runs of spaces.
fn row<'a>(run: &'a Run, name: &str) -> Vec<&'a str> {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{}", run.stdout));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_on_applied_zone() {
    let applied = apply_hub("verify-ok", "10.71.0.0/16");
    let records = zone_records(&applied.stack).await;
    assert_eq!(records.len(), 4, "{records:?}");
    let dns = DnsServer::start(ZONE, &records).unwrap();

    let run = verify(&applied, &dns).expect_code(0);

    let header: Vec<&str> = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "EXPECTED", "ANSWERED", "VERDICT"]);
    assert_eq!(run.stdout.lines().count(), 5, "{}", run.stdout);
    for host in ["agents", "app", "dsmim", "relay"] {
        let name = format!("{host}.{ZONE}");
        let mut served = records[&name].clone();
        served.sort();
        let served: Vec<String> = served.iter().map(ToString::to_string).collect();
        let cells = row(&run, &name);
        assert_eq!(cells.len(), 4, "{}", run.stdout);
        assert_eq!(cells[0], name);
        // Expected addresses are sorted, but returned ones come in the server's order.
        assert_eq!(cells[1], served.join(", "));
        let mut answered: Vec<&str> = cells[2].split(", ").collect();
        answered.sort_by_key(|a| a.parse::<std::net::Ipv4Addr>().unwrap());
        assert_eq!(answered, served);
        assert_eq!(cells[3], "ok");
    }
    assert!(
        run.stderr
            .contains("All 4 names resolve to the private addresses of their endpoints."),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_record_with_wrong_target() {
    let applied = apply_hub("verify-wrong", "10.72.0.0/16");
    let route53 = moto().route53().await;

    // Point the `agents` alias at the `relay` endpoint, as a hand edit of the zone would.
    let zone_id = stack_zone_id(&route53, &applied.stack, ZONE)
        .await
        .expect("the stack's zone exists");
    let sets = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    let relay = sets
        .resource_record_sets()
        .iter()
        .find(|s| s.name() == format!("relay.{ZONE}."))
        .and_then(|s| s.alias_target())
        .expect("the relay alias exists")
        .clone();
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(
            ResourceRecordSet::builder()
                .name(format!("agents.{ZONE}."))
                .r#type(RrType::A)
                .alias_target(
                    AliasTarget::builder()
                        .dns_name(relay.dns_name())
                        .hosted_zone_id(relay.hosted_zone_id())
                        .evaluate_target_health(false)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
    let records = zone_records(&applied.stack).await;
    let dns = DnsServer::start(ZONE, &records).unwrap();

    let run = verify(&applied, &dns).expect_code(5);

    let agents = format!("agents.{ZONE}");
    assert_eq!(
        row(&run, &agents).last(),
        Some(&"MISMATCH"),
        "{}",
        run.stdout
    );
    for host in ["app", "dsmim", "relay"] {
        let name = format!("{host}.{ZONE}");
        assert_eq!(row(&run, &name).last(), Some(&"ok"), "{}", run.stdout);
    }
    let relay_addresses: Vec<String> = records[&format!("relay.{ZONE}")]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        run.stderr.contains(&format!(
            "error: 1 of 4 names do not resolve to the private addresses of their endpoints: \
             `{agents}` (MISMATCH)"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("answered {}", relay_addresses.join(", "))),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "help: the zone's records point elsewhere: run `linkplan plan` to see the drift, \
             then apply it"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_name_without_answer() {
    let applied = apply_hub("verify-nxdomain", "10.73.0.0/16");
    let mut records = zone_records(&applied.stack).await;
    let app = format!("app.{ZONE}");
    records.remove(&app);
    let dns = DnsServer::start(ZONE, &records).unwrap();

    let run = verify(&applied, &dns).expect_code(5);

    assert_eq!(row(&run, &app).last(), Some(&"NO ANSWER"), "{}", run.stdout);
    assert!(
        run.stdout.contains("no A record (NXDOMAIN or empty)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(&format!("`{app}` (NO ANSWER)")),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_before_apply_asks_for_apply() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("verify-new");
    let hub = server.vpc(linkplan_testkit::VpcSpec::new(
        "us-east-1",
        "10.74.0.0/16",
        &["use1-az1"],
    ));
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));

    // No DNS server listens on port 9 of 127.0.0.1, so verify must stop before any query.
    let run = run(server, &dir, &["verify", "--resolver", "127.0.0.1:9"]).expect_code(1);

    let expected = format!(
        "error: `agents.{ZONE}` has no endpoint in the live state: `endpoint.agents` of stack \
         `{stack}` was not found in VPC `{}`\nhelp: run linkplan plan and apply first",
        hub.vpc_id
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(
        run.stderr.contains("4 errors; no name was resolved"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

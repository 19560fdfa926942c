//! Plan files against moto: the text, JSON and Markdown views of a hub-plus-spoke plan,
//! determinism, every refusal of `apply` (none of which may make a mutating call), and drift.

mod common;

use std::path::Path;

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType, Vpc, VpcRegion,
};
use common::{
    Run, assert_golden, hub_and_spoke_config, linkplan_via, redact, run_via, workdir, write_config,
};
use linkplan_testkit::{FaultProxy, LocalVpc, ProviderSide, VpcSpec, moto, unique_name};

const ZONE_NAME: &str = "deepsecurity.trendmicro.com";

/// A hub with a route table and DNS on, and a spoke in eu-west-1 with DNS hostnames off.
struct Setup {
    stack: String,
    hub: LocalVpc,
    spoke: LocalVpc,
    provider: ProviderSide,
    dir: std::path::PathBuf,
}

fn setup(prefix: &str, hub_cidr: &str, spoke_cidr: &str) -> Setup {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name(prefix);
    let hub = server
        .vpc(VpcSpec::new("us-east-1", hub_cidr, &["use1-az1", "use1-az2"]).dns_hostnames(true));
    // Steps run in address order where nothing orders them, and route addresses contain the
    // random table ids: a spoke table sorting after the hub's keeps the golden views stable.
    let spoke = loop {
        let spoke = server.vpc(VpcSpec::new("eu-west-1", spoke_cidr, &["euw1-az1"]));
        if spoke.route_table_ids[0] > hub.route_table_ids[0] {
            break spoke;
        }
    };
    let dir = workdir(&stack);
    let config = hub_and_spoke_config(&stack, &hub, "eu-web", &spoke, &provider);
    write_config(&dir, &config);
    Setup {
        stack,
        hub,
        spoke,
        provider,
        dir,
    }
}

impl Setup {
    /// Replaces every random id and name of the setup with a stable placeholder.
    fn redact(&self, text: &str, proxy: &FaultProxy, plan: &Path) -> String {
        let services = &self.provider.services;
        let mut subnets = self.hub.subnet_ids.clone();
        subnets.sort();
        let json =
            run_via(proxy, &self.dir, &["show", "--format", "json", &path(plan)]).expect_code(0);
        let document: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let plan_id = document["plan_id"].as_str().unwrap().to_string();
        let config_digest = document["config_digest"].as_str().unwrap().to_string();
        let endpoint = proxy.endpoint();
        redact(
            text,
            &[
                (&self.hub.vpc_id, "vpc-HUB"),
                (&self.spoke.vpc_id, "vpc-SPOKE"),
                (&self.hub.route_table_ids[0], "rtb-HUB"),
                (&self.spoke.route_table_ids[0], "rtb-SPOKE"),
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
                (&plan_id, "PLANID"),
                (&config_digest, "sha256:CONFIG"),
                (&endpoint, "http://127.0.0.1:PORT"),
                (&self.stack, "STACK"),
            ],
        )
    }
}

fn path(plan: &Path) -> String {
    plan.display().to_string()
}

/// Returns the number of interface endpoints in `vpc`, read straight from moto.
async fn endpoint_count(vpc: &LocalVpc) -> usize {
    moto()
        .ec2(&vpc.region)
        .await
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&vpc.vpc_id).build())
        .send()
        .await
        .unwrap()
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_some_and(|s| s.as_str() != "deleted"))
        .count()
}

/// Runs a rejected `apply` of `plan` through `proxy` and returns it, asserting exit code 1 and
/// that no mutating request reached the API.
fn rejected_apply(proxy: &FaultProxy, dir: &Path, plan: &str, env: &[(&str, &str)]) -> Run {
    proxy.reset_counts();
    let mut command = linkplan_via(proxy, dir);
    command.args(["apply", "--auto-approve", plan]);
    for (key, value) in env {
        command.env(key, value);
    }
    let run = Run::from(command.output().expect("linkplan runs")).expect_code(1);
    assert_eq!(
        proxy.mutating_count(),
        0,
        "a rejected apply made a mutating call:\n{}",
        run.stderr
    );
    run
}

/// Returns the first `error:` line of `stderr` and the lines after it.
fn error_text(stderr: &str) -> &str {
    let start = stderr
        .find("error:")
        .unwrap_or_else(|| panic!("no error in:\n{stderr}"));
    &stderr[start..]
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_and_spoke_views_are_pinned_and_deterministic() {
    let setup = setup("views", "10.70.0.0/16", "10.71.0.0/16");
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = &setup.dir;
    let planned = run_via(&proxy, dir, &["plan", "--out", "p.plan"]).expect_code(0);
    let plan = dir.join("p.plan");

    assert_golden(
        "hub-spoke-plan.txt",
        &setup.redact(&planned.stdout, &proxy, &plan),
    );
    let json = run_via(&proxy, dir, &["show", "--format", "json", "p.plan"]).expect_code(0);
    assert_golden(
        "hub-spoke-plan.json",
        &setup.redact(&json.stdout, &proxy, &plan),
    );
    let markdown = run_via(&proxy, dir, &["show", "--format", "markdown", "p.plan"]).expect_code(0);
    assert_golden(
        "hub-spoke-plan.md",
        &setup.redact(&markdown.stdout, &proxy, &plan),
    );

    // The JSON lists every step with address, action, before and after.
    let document: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for step in document["steps"].as_array().unwrap() {
        for key in ["address", "action", "before", "after"] {
            assert!(step.get(key).is_some(), "step without `{key}`: {step}");
        }
    }

    // The same state planned again gives a byte-identical file.
    run_via(&proxy, dir, &["plan", "--out", "q.plan"]).expect_code(0);
    assert!(
        std::fs::read(&plan).unwrap() == std::fs::read(dir.join("q.plan")).unwrap(),
        "two plans of the same state differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_refusals_make_no_mutating_call() {
    let setup = setup("refusals", "10.72.0.0/16", "10.73.0.0/16");
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = &setup.dir;
    run_via(&proxy, dir, &["plan", "--out", "p.plan"]).expect_code(0);
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();

    // An edited file.
    let edited = text.replacen("linkplan-", "linkplan-x-", 1);
    assert_ne!(edited, text);
    std::fs::write(dir.join("edited.plan"), edited).unwrap();
    let run = rejected_apply(&proxy, dir, "edited.plan", &[]);
    assert_eq!(
        error_text(&run.stderr),
        "error: plan file `edited.plan` was changed after it was written: its digest does not match\n\
         help: plan files must not be edited: run `linkplan plan` again and review the new file\n"
    );

    // A file of another format version.
    let version = format!(
        "format_version = {}\n",
        linkplan_engine::plan_file::FORMAT_VERSION
    );
    std::fs::write(
        dir.join("future.plan"),
        text.replacen(&version, "format_version = 99\n", 1),
    )
    .unwrap();
    let run = rejected_apply(&proxy, dir, "future.plan", &[]);
    assert_eq!(
        error_text(&run.stderr),
        format!(
            "error: plan file `future.plan` has format version 99, but this linkplan reads version {}\n\
             help: run the linkplan version that wrote the plan, or plan again with this one\n",
            linkplan_engine::plan_file::FORMAT_VERSION
        )
    );

    // Another endpoint than the plan was made against.
    let other = FaultProxy::start(&moto().endpoint);
    let run = rejected_apply(&other, dir, "p.plan", &[]);
    assert_eq!(
        error_text(&run.stderr),
        format!(
            "error: plan `p.plan` was made against {}, but this run would call {}\n\
             help: set AWS_ENDPOINT_URL or --endpoint-url as it was when planning, or plan again\n",
            proxy.endpoint(),
            other.endpoint()
        )
    );
    assert_eq!(proxy.mutating_count(), 0);

    // Credentials of another account: moto gives a role's session the role's account.
    let sts = aws_sdk_sts::Client::new(&moto().sdk_config("us-east-1").await);
    let assumed = sts
        .assume_role()
        .role_arn("arn:aws:iam::111111111111:role/other-team")
        .role_session_name("refusal-test")
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().expect("moto returns credentials");
    let run = rejected_apply(
        &proxy,
        dir,
        "p.plan",
        &[
            ("AWS_ACCESS_KEY_ID", credentials.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key()),
            ("AWS_SESSION_TOKEN", credentials.session_token()),
        ],
    );
    assert!(
        error_text(&run.stderr).starts_with(
            "error: plan `p.plan` was made for account 123456789012 in us-east-1, but the credentials now belong to 111111111111\n\
             help: use the credentials the plan was made with, or plan again\n"
        ),
        "{}",
        run.stderr
    );

    // A change in the live state since the plan: DNS hostnames turned off on the hub.
    moto()
        .ec2("us-east-1")
        .await
        .modify_vpc_attribute()
        .vpc_id(&setup.hub.vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let run = rejected_apply(&proxy, dir, "p.plan", &[]);
    let hub = &setup.hub.vpc_id;
    assert_eq!(
        error_text(&run.stderr),
        format!(
            "error: plan `p.plan` is stale: `vpc/{hub}` changed since it was made\n  \
             - `vpc/{hub}`: dns_hostnames was true when planned, is now false\n\
             help: run `linkplan plan` again and review the new plan\n"
        )
    );
    assert_eq!(endpoint_count(&setup.hub).await, 0, "nothing was created");
    let journals: Vec<_> = std::fs::read_dir(dir.join(".linkplan").join(&setup.stack))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        !journals
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "journal")),
        "a rejected apply left a journal: {journals:?}"
    );

    // A fresh plan applies; applying it again is refused.
    run_via(&proxy, dir, &["plan", "--out", "fresh.plan"]).expect_code(0);
    run_via(&proxy, dir, &["apply", "--auto-approve", "fresh.plan"]).expect_code(0);
    assert_eq!(endpoint_count(&setup.hub).await, 4);
    let run = rejected_apply(&proxy, dir, "fresh.plan", &[]);
    let shown = run_via(&proxy, dir, &["show", "--format", "json", "fresh.plan"]).expect_code(0);
    let document: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        error_text(&run.stderr),
        format!(
            "error: plan `fresh.plan` (id {}) was already applied\n\
             help: run `linkplan plan` to see what is left to change, and apply the new plan\n",
            document["plan_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        endpoint_count(&setup.hub).await,
        4,
        "nothing more was created"
    );
}

/// Returns the id of the private zone named [`ZONE_NAME`] associated with `vpc`.
async fn zone_of(vpc: &LocalVpc) -> String {
    let route53 = moto().route53().await;
    let zones = route53
        .list_hosted_zones_by_vpc()
        .vpc_id(&vpc.vpc_id)
        .vpc_region(VpcRegion::from(vpc.region.as_str()))
        .send()
        .await
        .unwrap();
    let summary = zones
        .hosted_zone_summaries()
        .iter()
        .find(|z| z.name().trim_end_matches('.') == ZONE_NAME)
        .expect("the stack's zone is on the VPC");
    summary.hosted_zone_id().to_string()
}

/// Returns the alias target of `name` in zone `zone_id`.
async fn alias_of(zone_id: &str, name: &str) -> AliasTarget {
    let records = moto()
        .route53()
        .await
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .unwrap();
    records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == name && r.r#type() == &RrType::A)
        .and_then(|r| r.alias_target().cloned())
        .unwrap_or_else(|| panic!("no alias at {name}"))
}

/// Points the A alias `name` of zone `zone_id` at `target`, as someone would by hand.
async fn point_alias(zone_id: &str, name: &str, target: &AliasTarget) {
    let record = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(target.clone())
        .build()
        .unwrap();
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(record)
        .build()
        .unwrap();
    moto()
        .route53()
        .await
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_made_changes_show_as_drift() {
    let setup = setup("drift", "10.74.0.0/16", "10.75.0.0/16");
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = &setup.dir;
    run_via(&proxy, dir, &["plan", "--out", "p.plan"]).expect_code(0);
    run_via(&proxy, dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);

    // Someone points relay at the app endpoint, and shares the zone with a third VPC.
    let zone_id = zone_of(&setup.hub).await;
    let relay = format!("relay.{ZONE_NAME}");
    let expected_alias = alias_of(&zone_id, &relay).await;
    let app = alias_of(&zone_id, &format!("app.{ZONE_NAME}")).await;
    let route53 = moto().route53().await;
    point_alias(&zone_id, &relay, &app).await;
    let third = moto().vpc(VpcSpec::new("us-west-2", "10.76.0.0/16", &["usw2-az1"]));
    route53
        .associate_vpc_with_hosted_zone()
        .hosted_zone_id(&zone_id)
        .vpc(
            Vpc::builder()
                .vpc_id(&third.vpc_id)
                .vpc_region(VpcRegion::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let planned = run_via(&proxy, dir, &["plan", "--out", "drift.plan"]).expect_code(0);
    let app_target = app.dns_name().trim_end_matches('.').to_lowercase();
    let relay_target = expected_alias
        .dns_name()
        .trim_end_matches('.')
        .to_lowercase();
    let expected = format!(
        "Drift: objects changed outside linkplan since the stack was applied\n  \
         ! association of zone {zone_id} with VPC {vpc}: VPC {vpc} in us-west-2 was associated outside linkplan\n      \
         left alone: it is neither the hub nor a spoke of the config; add it as a spoke to manage it\n  \
         ! record {relay}: alias to {app_target}, where linkplan points it at {relay_target}\n      \
         restored: records will be updated in place\n",
        zone_id = zone_id.trim_start_matches("/hostedzone/"),
        vpc = third.vpc_id,
    );
    assert!(
        planned.stdout.starts_with(&expected),
        "expected drift:\n{expected}\ngot:\n{}",
        planned.stdout
    );
    assert!(
        planned
            .stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        planned.stdout
    );
    let markdown =
        run_via(&proxy, dir, &["show", "--format", "markdown", "drift.plan"]).expect_code(0);
    assert!(
        markdown.stdout.contains("#### Drift"),
        "{}",
        markdown.stdout
    );

    run_via(&proxy, dir, &["apply", "--auto-approve", "drift.plan"]).expect_code(0);
    let restored = alias_of(&zone_id, &relay).await;
    assert_eq!(
        restored.dns_name().trim_end_matches('.').to_lowercase(),
        relay_target,
        "the relay record points at the relay endpoint again"
    );
    let zone = route53.get_hosted_zone().id(&zone_id).send().await.unwrap();
    assert!(
        zone.vpcs()
            .iter()
            .any(|v| v.vpc_id() == Some(third.vpc_id.as_str())),
        "the third VPC is still associated"
    );

    // Only the third VPC is left as drift, with no step.
    let again = run_via(&proxy, dir, &["plan", "--out", "again.plan"]).expect_code(0);
    assert!(
        again.stdout.contains("was associated outside linkplan"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // The same change by hand once more gives a plan of the same steps, which must still
    // apply: it records the plan applied before it, so it is not the one already applied.
    point_alias(&zone_id, &relay, &app).await;
    run_via(&proxy, dir, &["plan", "--out", "recurring.plan"]).expect_code(0);
    let first = std::fs::read_to_string(dir.join("drift.plan")).unwrap();
    let second = std::fs::read_to_string(dir.join("recurring.plan")).unwrap();
    assert_ne!(
        first, second,
        "the second plan names the plan applied before it"
    );
    run_via(&proxy, dir, &["apply", "--auto-approve", "recurring.plan"]).expect_code(0);
    let restored = alias_of(&zone_id, &relay).await;
    assert_eq!(
        restored.dns_name().trim_end_matches('.').to_lowercase(),
        relay_target
    );
}

//! Faults at every mutating call of a hub-plus-spoke apply, through the fault proxy in front of
//! moto: a failed call must roll everything back, and a killed process must leave a journal that
//! `apply --resume` finishes with exactly one of each object, or that `rollback` cleans up.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use common::{
    Run, apply_stalled_at, hub_and_spoke_config, interrupt, linkplan_via, run_via, terminate,
    workdir, write_config,
};
use linkplan_testkit::{FaultProxy, InjectedError, LocalVpc, Outcome, VpcSpec, moto, unique_name};

/// Serializes the tests of this file. Each drives a long run of applies against the shared
/// moto server, and running them one at a time keeps timing-sensitive steps (a stall, a kill,
/// a lock) clear of the load the others put on the server.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One stack: a hub in us-east-1 and a spoke in eu-west-1, both with DNS hostnames off.
struct Setup {
    stack: String,
    dir: PathBuf,
    hub: LocalVpc,
    spoke: LocalVpc,
}

impl Setup {
    fn new(prefix: &str, octet: u8) -> Setup {
        let server = moto();
        let provider = server.provider_side();
        let stack = unique_name(prefix);
        let hub = server.vpc(
            VpcSpec::new("us-east-1", &format!("10.{octet}.0.0/16"), &["use1-az1"])
                .dns_hostnames(false),
        );
        let spoke_cidr = format!("172.{}.0.0/16", 16 + octet % 16);
        let spoke =
            server.vpc(VpcSpec::new("eu-west-1", &spoke_cidr, &["euw1-az1"]).dns_hostnames(false));
        let dir = workdir(&stack);
        let config = hub_and_spoke_config(&stack, &hub, "eu", &spoke, &provider);
        write_config(&dir, &config);
        Setup {
            stack,
            dir,
            hub,
            spoke,
        }
    }

    fn plan(&self, proxy: &FaultProxy) {
        run_via(proxy, &self.dir, &["plan", "--out", "p.plan"]).expect_code(0);
    }

    fn of_stack(&self, tags: &[aws_sdk_ec2::types::Tag]) -> bool {
        tags.iter()
            .any(|t| t.key() == Some("linkplan:stack") && t.value() == Some(self.stack.as_str()))
    }

    /// Counts what the stack has in AWS: live endpoints, groups, live peerings, zones on the hub
    /// VPC, routes over a peering in both tables, and the DNS hostnames of both VPCs.
    async fn census(&self) -> Census {
        let server = moto();
        let hub_ec2 = server.ec2("us-east-1").await;
        let spoke_ec2 = server.ec2("eu-west-1").await;
        let gone = |state: Option<&str>| {
            matches!(
                state,
                Some("deleted" | "deleting" | "rejected" | "failed" | "expired")
            )
        };

        let endpoints = hub_ec2
            .describe_vpc_endpoints()
            .filters(
                Filter::builder()
                    .name("vpc-id")
                    .values(&self.hub.vpc_id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let endpoints = endpoints
            .vpc_endpoints()
            .iter()
            .filter(|e| self.of_stack(e.tags()))
            .filter(|e| {
                !gone(
                    e.state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .as_deref(),
                )
            })
            .count();
        let groups = hub_ec2
            .describe_security_groups()
            .filters(
                Filter::builder()
                    .name("vpc-id")
                    .values(&self.hub.vpc_id)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .security_groups()
            .iter()
            .filter(|g| self.of_stack(g.tags()))
            .count();
        let peerings = hub_ec2
            .describe_vpc_peering_connections()
            .send()
            .await
            .unwrap()
            .vpc_peering_connections()
            .iter()
            .filter(|p| self.of_stack(p.tags()))
            .filter(|p| !gone(p.status().and_then(|s| s.code()).map(|c| c.as_str())))
            .count();
        let route53 = server.route53().await;
        let zones = route53
            .list_hosted_zones_by_vpc()
            .vpc_id(&self.hub.vpc_id)
            .vpc_region("us-east-1".into())
            .send()
            .await
            .unwrap()
            .hosted_zone_summaries()
            .iter()
            .filter(|z| z.name() == "deepsecurity.trendmicro.com.")
            .count();
        let mut routes = 0;
        for (ec2, table) in [
            (&hub_ec2, &self.hub.route_table_ids[0]),
            (&spoke_ec2, &self.spoke.route_table_ids[0]),
        ] {
            let tables = ec2
                .describe_route_tables()
                .route_table_ids(table)
                .send()
                .await
                .unwrap();
            routes += tables.route_tables()[0]
                .routes()
                .iter()
                .filter(|r| r.vpc_peering_connection_id().is_some())
                .count();
        }
        let mut hostnames = Vec::new();
        for (ec2, vpc) in [
            (&hub_ec2, &self.hub.vpc_id),
            (&spoke_ec2, &self.spoke.vpc_id),
        ] {
            let read = ec2
                .describe_vpc_attribute()
                .vpc_id(vpc)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send()
                .await
                .unwrap();
            hostnames.push(
                read.enable_dns_hostnames()
                    .and_then(|v| v.value())
                    .unwrap_or(false),
            );
        }
        Census {
            endpoints,
            groups,
            peerings,
            zones,
            routes,
            hostnames,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Census {
    endpoints: usize,
    groups: usize,
    peerings: usize,
    zones: usize,
    routes: usize,
    hostnames: Vec<bool>,
}

const NOTHING: Census = Census {
    endpoints: 0,
    groups: 0,
    peerings: 0,
    zones: 0,
    routes: 0,
    hostnames: Vec::new(),
};

fn nothing() -> Census {
    Census {
        hostnames: vec![false, false],
        ..NOTHING
    }
}

fn everything() -> Census {
    Census {
        endpoints: 4,
        groups: 1,
        peerings: 1,
        zones: 1,
        routes: 2,
        hostnames: vec![true, true],
    }
}

/// Applies a fresh stack through `proxy` and returns how many mutating calls the apply made.
async fn mutations_of_clean_apply(proxy: &FaultProxy) -> u32 {
    let setup = Setup::new("count", 100);
    setup.plan(proxy);
    proxy.reset_counts();
    run_via(proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    let count = proxy.mutating_count();
    assert_eq!(
        setup.census().await,
        everything(),
        "the clean apply built the whole stack"
    );
    assert!(
        count >= 16,
        "a hub-plus-spoke apply makes at least one call per step, not {count}"
    );
    count
}

fn describe(run: &Run) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_at_every_mutation_rolls_back() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let total = mutations_of_clean_apply(&proxy).await;

    for n in 1..=total {
        let setup = Setup::new("fail", (n % 90) as u8 + 101);
        setup.plan(&proxy);
        proxy.clear_faults();
        proxy.reset_counts();
        proxy.fail_nth_mutating(
            n,
            InjectedError::new(400, "InvalidParameterValue", "injected failure"),
        );
        let failed = run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]);
        proxy.clear_faults();
        assert_eq!(
            failed.code,
            3,
            "failure at mutation {n} of {total} did not roll back cleanly\n{}",
            describe(&failed)
        );
        assert!(
            failed.stderr.contains("InvalidParameterValue"),
            "mutation {n}: the error is not named\n{}",
            describe(&failed)
        );
        assert_eq!(
            setup.census().await,
            nothing(),
            "mutation {n} of {total} left something behind"
        );
    }
}

/// Starts an apply of `setup` through `proxy` that stalls after mutation `n` reaches moto,
/// waits for the stall, and kills the process with SIGKILL.
fn kill_after_mutation(proxy: &FaultProxy, setup: &Setup, n: u32) {
    let mut child = apply_stalled_at(proxy, &setup.dir, n, &[]);
    child.kill().expect("SIGKILL is sent");
    child.wait().unwrap();
    proxy.clear_faults();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_every_mutation_then_resume_or_rollback() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let total = mutations_of_clean_apply(&proxy).await;

    for n in 1..=total {
        // Resume finishes the plan with exactly one of each object.
        let resumed = Setup::new("resume", (n % 90) as u8 + 11);
        resumed.plan(&proxy);
        kill_after_mutation(&proxy, &resumed, n);
        let unfinished =
            run_via(&proxy, &resumed.dir, &["apply", "--auto-approve", "p.plan"]).expect_code(1);
        assert!(
            unfinished.stderr.contains("has an unfinished run"),
            "mutation {n}\n{}",
            describe(&unfinished)
        );
        let run = run_via(
            &proxy,
            &resumed.dir,
            &["apply", "--auto-approve", "--resume", "p.plan"],
        );
        assert_eq!(
            run.code,
            0,
            "resume after a kill at mutation {n} of {total} failed\n{}",
            describe(&run)
        );
        assert_eq!(
            resumed.census().await,
            everything(),
            "resume after mutation {n} of {total}"
        );
        let again = run_via(
            &proxy,
            &resumed.dir,
            &["plan", "--detailed-exitcode", "--out", "q.plan"],
        );
        assert_eq!(
            again.code,
            0,
            "after resuming from mutation {n}, a new plan has changes\n{}",
            describe(&again)
        );

        // Rollback removes what the killed run made.
        let rolled = Setup::new("rollback", (n % 90) as u8 + 11);
        rolled.plan(&proxy);
        kill_after_mutation(&proxy, &rolled, n);
        let run = run_via(
            &proxy,
            &rolled.dir,
            &["rollback", "--auto-approve", "p.plan"],
        );
        assert_eq!(
            run.code,
            0,
            "rollback after a kill at mutation {n} of {total} failed\n{}",
            describe(&run)
        );
        assert_eq!(
            rolled.census().await,
            nothing(),
            "rollback after mutation {n} of {total}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_third_of_calls_still_applies() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("throttled", 200);
    setup.plan(&proxy);
    proxy.clear_faults();
    proxy.reset_counts();
    proxy.throttle_fraction(1, 3);
    let run = run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]);
    proxy.clear_faults();
    assert_eq!(
        run.code,
        0,
        "an apply with a third of its calls throttled failed\n{}",
        describe(&run)
    );
    let throttled = proxy
        .requests()
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .count();
    assert!(throttled > 0, "no call was throttled");
    assert_eq!(setup.census().await, everything());
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_cap_exceeded_rolls_back_naming_code() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("capped", 201);
    setup.plan(&proxy);
    proxy.clear_faults();
    proxy.reset_counts();
    let busy = InjectedError::new(
        400,
        "PriorRequestNotComplete",
        "The request was rejected because Route 53 was still processing a prior request.",
    );
    proxy.fail_operation("ChangeResourceRecordSets", 1000, busy);
    let run = run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]);
    proxy.clear_faults();
    assert_eq!(
        run.code,
        3,
        "the capped apply did not roll back cleanly\n{}",
        describe(&run)
    );
    assert!(
        run.stderr.contains(
            "route53 ChangeResourceRecordSets in us-east-1 failed: PriorRequestNotComplete"
        ),
        "the error does not name the operation and code\n{}",
        describe(&run)
    );
    assert!(
        run.stderr.contains("5 attempts"),
        "the error does not give the attempts\n{}",
        describe(&run)
    );
    assert_eq!(setup.census().await, nothing());
}

/// Stalls an apply of `setup` at its fourth mutation, sends it one signal with `send`, and
/// checks that the step in flight ends (its call times out) and everything is undone.
async fn one_signal_rolls_back(proxy: &FaultProxy, setup: &Setup, send: fn(u32)) {
    setup.plan(proxy);
    let child = apply_stalled_at(
        proxy,
        &setup.dir,
        4,
        &["--read-timeout", "3", "--max-attempts", "1"],
    );
    send(child.id());
    let run = Run::from(child.wait_with_output().unwrap());
    proxy.clear_faults();
    assert_eq!(
        run.code,
        3,
        "an interrupted apply did not roll back\n{}",
        describe(&run)
    );
    assert!(
        run.stderr
            .contains("Interrupted: finishing the steps in flight, then rolling back"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        setup.census().await,
        nothing(),
        "the interrupted apply left something behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_rolls_back_and_second_exits() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);

    // One Ctrl-C: the step in flight ends (its call times out), then everything is undone.
    one_signal_rolls_back(&proxy, &Setup::new("interrupt", 202), interrupt).await;

    // A second Ctrl-C exits at once and keeps the journal for --resume.
    let setup = Setup::new("interrupt-twice", 203);
    setup.plan(&proxy);
    let child = apply_stalled_at(&proxy, &setup.dir, 4, &[]);
    interrupt(child.id());
    std::thread::sleep(Duration::from_millis(300));
    interrupt(child.id());
    let run = Run::from(child.wait_with_output().unwrap());
    proxy.clear_faults();
    assert_eq!(
        run.code,
        130,
        "a second Ctrl-C did not exit at once\n{}",
        describe(&run)
    );
    let resumed = run_via(
        &proxy,
        &setup.dir,
        &["apply", "--auto-approve", "--resume", "p.plan"],
    );
    assert_eq!(
        resumed.code,
        0,
        "the run left by a second Ctrl-C does not resume\n{}",
        describe(&resumed)
    );
    assert_eq!(setup.census().await, everything());
}

/// Starts a slowed-down apply of `setup`'s `p.plan` through `proxy`, and returns it once it
/// holds the stack's lock. Every call takes 150 ms, so the lock is held for seconds.
fn start_slow_apply(proxy: &FaultProxy, setup: &Setup) -> std::process::Child {
    proxy.set_delay(Duration::from_millis(150));
    let apply = linkplan_via(proxy, &setup.dir)
        .args(["apply", "--auto-approve", "p.plan"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = setup.dir.join(".linkplan").join(&setup.stack).join("lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lock.exists() {
        assert!(
            Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    apply
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_applies_run_one_at_a_time() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("concurrent", 204);
    setup.plan(&proxy);
    std::fs::copy(setup.dir.join("p.plan"), setup.dir.join("same.plan")).unwrap();

    let first = start_slow_apply(&proxy, &setup);
    let second = run_via(
        &proxy,
        &setup.dir,
        &["apply", "--auto-approve", "same.plan"],
    );
    let first = Run::from(first.wait_with_output().unwrap());
    proxy.set_delay(Duration::ZERO);

    assert_eq!(
        first.code,
        0,
        "the first apply failed\n{}",
        describe(&first)
    );
    assert_eq!(
        second.code,
        1,
        "the second apply was not refused\n{}",
        describe(&second)
    );
    let expected = format!("error: stack `{}` is locked by process", setup.stack);
    assert!(
        second.stderr.contains(&expected),
        "the holder is not named\n{}",
        describe(&second)
    );
    assert_eq!(
        setup.census().await,
        everything(),
        "the stack was built once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_rolls_back_like_ctrl_c() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    one_signal_rolls_back(&proxy, &Setup::new("terminate", 205), terminate).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_in_two_folders_run_one_at_a_time() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("two-folders", 206);
    setup.plan(&proxy);
    let elsewhere = setup.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(setup.dir.join("p.plan"), elsewhere.join("p.plan")).unwrap();

    // Each copy has a backend folder of its own beside it, so only the host lock keeps the
    // two runs apart.
    let first = start_slow_apply(&proxy, &setup);
    let second = run_via(&proxy, &elsewhere, &["apply", "--auto-approve", "p.plan"]);
    let first = Run::from(first.wait_with_output().unwrap());
    proxy.set_delay(Duration::ZERO);

    assert_eq!(
        first.code,
        0,
        "the first apply failed\n{}",
        describe(&first)
    );
    assert_eq!(
        second.code,
        1,
        "the copy in another folder was not refused\n{}",
        describe(&second)
    );
    let expected = format!("error: stack `{}` is locked by process", setup.stack);
    assert!(
        second.stderr.contains(&expected),
        "the holder is not named\n{}",
        describe(&second)
    );
    assert!(
        second.stderr.contains("from a plan file in another folder"),
        "the help does not explain the host lock\n{}",
        describe(&second)
    );
    assert_eq!(
        setup.census().await,
        everything(),
        "the stack was built once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_run_is_superseded_by_newer_plan() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("superseded", 207);
    setup.plan(&proxy);
    // One step at a time, the run is killed after the same call every time, before the hub's
    // zone is made. A zone made and not yet tagged would stop the new plan, which cannot tell
    // it from a zone made by hand.
    let mut child = apply_stalled_at(&proxy, &setup.dir, 2, &["--parallelism", "1"]);
    child.kill().expect("SIGKILL is sent");
    child.wait().unwrap();
    proxy.clear_faults();
    let killed_plan = std::fs::read(setup.dir.join("p.plan")).unwrap();

    // The killed run's plan file is kept: a new plan may not be written over it.
    let kept = run_via(&proxy, &setup.dir, &["plan", "--out", "p.plan"]).expect_code(1);
    assert!(
        kept.stderr.contains("whose run did not finish"),
        "{}",
        describe(&kept)
    );
    assert_eq!(
        std::fs::read(setup.dir.join("p.plan")).unwrap(),
        killed_plan,
        "the plan file of the unfinished run was changed"
    );

    // A new plan, written elsewhere, includes what the killed run left and completes the stack.
    run_via(&proxy, &setup.dir, &["plan", "--out", "q.plan"]).expect_code(0);
    run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "q.plan"]).expect_code(0);
    assert_eq!(setup.census().await, everything());

    // The killed run can be neither resumed nor rolled back over the newer plan.
    for args in [
        &["apply", "--auto-approve", "--resume", "p.plan"][..],
        &["rollback", "--auto-approve", "p.plan"][..],
    ] {
        let refused = run_via(&proxy, &setup.dir, args).expect_code(1);
        assert!(
            refused.stderr.contains("applied after plan `p.plan`"),
            "{args:?}\n{}",
            describe(&refused)
        );
        assert_eq!(
            setup.census().await,
            everything(),
            "{args:?} changed the stack"
        );
    }

    // Its plan file is no longer needed, so a new plan may take its place.
    run_via(&proxy, &setup.dir, &["plan", "--out", "p.plan"]).expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_under_unfinished_run_supersedes_it() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("rolled-under", 208);
    setup.plan(&proxy);
    run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    std::fs::rename(setup.dir.join("p.plan"), setup.dir.join("built.plan")).unwrap();

    // A destroy, made after the stack was built, is killed half way.
    run_via(
        &proxy,
        &setup.dir,
        &["plan", "--destroy", "--out", "p.plan"],
    )
    .expect_code(0);
    let mut child = apply_stalled_at(&proxy, &setup.dir, 2, &["--parallelism", "1"]);
    child.kill().expect("SIGKILL is sent");
    child.wait().unwrap();
    proxy.clear_faults();

    // The plan that built the stack is rolled back under it.
    let rolled = run_via(
        &proxy,
        &setup.dir,
        &["rollback", "--auto-approve", "built.plan"],
    );
    assert_eq!(rolled.code, 0, "{}", describe(&rolled));
    assert!(
        rolled.stdout.contains("will undo, in this order:"),
        "the rollback lists what it undoes\n{}",
        describe(&rolled)
    );

    // The destroy's run saw a stack that no longer exists: it may not resume.
    let refused = run_via(
        &proxy,
        &setup.dir,
        &["apply", "--auto-approve", "--resume", "p.plan"],
    )
    .expect_code(1);
    assert!(
        refused.stderr.contains("rolled back after plan `p.plan`"),
        "{}",
        describe(&refused)
    );
    assert_eq!(setup.census().await, nothing());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_of_applied_destroy_is_rejected() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("destroyed", 209);
    setup.plan(&proxy);
    run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    run_via(
        &proxy,
        &setup.dir,
        &["plan", "--destroy", "--out", "d.plan"],
    )
    .expect_code(0);
    run_via(&proxy, &setup.dir, &["apply", "--auto-approve", "d.plan"]).expect_code(0);

    let refused = run_via(
        &proxy,
        &setup.dir,
        &["rollback", "--auto-approve", "d.plan"],
    )
    .expect_code(1);
    assert!(
        refused
            .stderr
            .contains("has nothing to roll back: its run only deleted objects"),
        "{}",
        describe(&refused)
    );
    assert!(
        refused.stderr.contains("help: run `linkplan plan`"),
        "{}",
        describe(&refused)
    );
    // The journal is untouched, so the destroy's plan file can be replaced.
    run_via(&proxy, &setup.dir, &["plan", "--out", "d.plan"]).expect_code(0);
}

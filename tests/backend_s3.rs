//! The S3 backend end to end: `linkplan` runs from separate working copies that share nothing
//! but a bucket on moto, as CI jobs on different machines would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use aws_sdk_s3::primitives::ByteStream;
use common::{
    Run, apply_stalled_at, hub_config, linkplan_via, run, run_via, workdir, write_config,
};
use linkplan_testkit::{FaultProxy, LocalVpc, VpcSpec, moto, unique_name};

/// Serializes the tests of this file: the proxy delays and kills below are timing-sensitive.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn s3() -> aws_sdk_s3::Client {
    moto().s3("us-east-1").await
}

/// A hub-only stack whose backend is a bucket of its own, planned in a first working copy.
struct Setup {
    stack: String,
    bucket: String,
    hub: LocalVpc,
    /// The working copy with the config, where `plan` runs.
    first: PathBuf,
}

impl Setup {
    async fn new(prefix: &str, octet: u8) -> Setup {
        let server = moto();
        let stack = unique_name(prefix);
        let bucket = server.bucket("lp-state").await;
        Setup::with_bucket(&stack, bucket, octet, server)
    }

    fn with_bucket(
        stack: &str,
        bucket: String,
        octet: u8,
        server: &linkplan_testkit::MotoServer,
    ) -> Setup {
        let provider = server.provider_side();
        let hub = server.vpc(VpcSpec::new(
            "us-east-1",
            &format!("10.{octet}.0.0/16"),
            &["use1-az1"],
        ));
        let first = workdir(stack);
        let config = hub_config(stack, &hub, &provider)
            + &format!(
                "\n[backend]\ntype = \"s3\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n"
            );
        write_config(&first, &config);
        Setup {
            stack: stack.to_string(),
            bucket,
            hub,
            first,
        }
    }

    /// Returns a second working copy that holds only a copy of the plan file.
    fn second_copy(&self) -> PathBuf {
        let dir = workdir(&format!("{}-second", self.stack));
        std::fs::copy(self.first.join("p.plan"), dir.join("p.plan")).unwrap();
        dir
    }

    async fn object_exists(&self, key: &str) -> bool {
        let head = s3()
            .await
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        head.is_ok()
    }

    /// Counts what the stack has in AWS: endpoints that are not gone, security groups and
    /// zones on the hub VPC.
    async fn census(&self) -> (usize, usize, usize) {
        let ec2 = moto().ec2("us-east-1").await;
        let of_stack = |name: &str| {
            [
                Filter::builder()
                    .name("vpc-id")
                    .values(&self.hub.vpc_id)
                    .build(),
                Filter::builder().name(name).values(&self.stack).build(),
            ]
        };
        let endpoints = ec2
            .describe_vpc_endpoints()
            .set_filters(Some(of_stack("tag:linkplan:stack").to_vec()))
            .send()
            .await
            .unwrap()
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                let state = e.state().map(|s| s.as_str().to_ascii_lowercase());
                !matches!(state.as_deref(), Some("deleted" | "deleting"))
            })
            .count();
        let groups = ec2
            .describe_security_groups()
            .set_filters(Some(of_stack("tag:linkplan:stack").to_vec()))
            .send()
            .await
            .unwrap()
            .security_groups()
            .len();
        let zones = moto()
            .route53()
            .await
            .list_hosted_zones_by_vpc()
            .vpc_id(&self.hub.vpc_id)
            .vpc_region("us-east-1".into())
            .send()
            .await
            .unwrap()
            .hosted_zone_summaries()
            .len();
        (endpoints, groups, zones)
    }
}

const EVERYTHING: (usize, usize, usize) = (4, 1, 1);
const NOTHING: (usize, usize, usize) = (0, 0, 0);

fn describe(run: &Run) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr)
}

fn apply_in(proxy: &FaultProxy, dir: &Path) -> std::process::Child {
    linkplan_via(proxy, dir)
        .args(["apply", "--auto-approve", "p.plan"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("linkplan starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_from_two_copies_run_once() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let setup = Setup::new("s3-twice", 150).await;
    run_via(&proxy, &setup.first, &["plan", "--out", "p.plan"]).expect_code(0);
    let second = setup.second_copy();

    // Every call is slowed down, so that both runs overlap for seconds.
    proxy.set_delay(Duration::from_millis(150));
    let one = apply_in(&proxy, &setup.first);
    let two = apply_in(&proxy, &second);
    let one = Run::from(one.wait_with_output().unwrap());
    let two = Run::from(two.wait_with_output().unwrap());
    proxy.set_delay(Duration::ZERO);

    let (winner, loser) = if one.code == 0 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    assert_eq!(winner.code, 0, "no apply proceeded\n{}", describe(winner));
    assert_eq!(loser.code, 1, "both applies proceeded\n{}", describe(loser));
    let expected = format!("error: stack `{}` is locked by process", setup.stack);
    assert!(loser.stderr.contains(&expected), "{}", describe(loser));
    let help = format!(
        "help: wait for that run to finish; if it died, run `linkplan unlock {} --force --plan p.plan`",
        setup.stack
    );
    assert!(loser.stderr.contains(&help), "{}", describe(loser));
    assert_eq!(setup.census().await, EVERYTHING, "the stack was built once");
    assert!(
        !setup
            .object_exists(&format!("linkplan/{}/lock", setup.stack))
            .await,
        "the lock was not released"
    );

    // Once applied, the plan is refused from either copy.
    for dir in [&setup.first, &second] {
        let again = run_via(&proxy, dir, &["apply", "--auto-approve", "p.plan"]).expect_code(1);
        assert!(
            again.stderr.contains("was already applied"),
            "{}",
            describe(&again)
        );
    }
    assert_eq!(setup.census().await, EVERYTHING);
}

/// Starts an apply in `dir` that stalls after mutation `n` reaches moto, then kills it.
fn kill_after_mutation(proxy: &FaultProxy, dir: &Path, n: u32) {
    let mut child = apply_stalled_at(proxy, dir, n, &[]);
    child.kill().expect("SIGKILL is sent");
    child.wait().unwrap();
    proxy.clear_faults();
}

/// Plans a stack, kills its apply after mutation `n`, and removes the dead run's lock from a
/// second working copy, as a CI job on another machine would. Returns the stack and that copy.
async fn crash_then_unlock_elsewhere(proxy: &FaultProxy, n: u32, octet: u8) -> (Setup, PathBuf) {
    let setup = Setup::new("s3-crash", octet).await;
    run_via(proxy, &setup.first, &["plan", "--out", "p.plan"]).expect_code(0);
    kill_after_mutation(proxy, &setup.first, n);

    let second = setup.second_copy();
    let stack = setup.stack.as_str();
    let locked = run_via(
        proxy,
        &second,
        &["apply", "--auto-approve", "--resume", "p.plan"],
    );
    assert_eq!(locked.code, 1, "mutation {n}\n{}", describe(&locked));
    assert!(
        locked
            .stderr
            .contains(&format!("stack `{stack}` is locked by process")),
        "mutation {n}: the dead run's lock is not reported\n{}",
        describe(&locked)
    );

    let shown = run_via(proxy, &second, &["unlock", stack, "--plan", "p.plan"]);
    assert_eq!(shown.code, 1, "mutation {n}\n{}", describe(&shown));
    let removed = run_via(
        proxy,
        &second,
        &["unlock", stack, "--force", "--plan", "p.plan"],
    );
    assert_eq!(removed.code, 0, "mutation {n}\n{}", describe(&removed));
    assert!(
        removed.stdout.contains(&format!(
            "Removed the lock of stack `{stack}`, held by process"
        )),
        "{}",
        describe(&removed)
    );
    (setup, second)
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_resumed_from_other_copy() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    // The mutations counted include the backend's own: the lock (1), the start of the journal
    // (2) and each intent and outcome around the AWS calls. So these kills fall after the
    // first AWS call, in the middle and near the end of the run.
    for (round, n) in [5u32, 10, 16].into_iter().enumerate() {
        let (setup, second) = crash_then_unlock_elsewhere(&proxy, n, 160 + round as u8).await;
        let stack = setup.stack.as_str();

        let unfinished = run_via(&proxy, &second, &["apply", "--auto-approve", "p.plan"]);
        assert_eq!(
            unfinished.code,
            1,
            "mutation {n}\n{}",
            describe(&unfinished)
        );
        let journal = format!(
            "recorded in s3://{}/linkplan/{stack}/journal/",
            setup.bucket
        );
        assert!(
            unfinished.stderr.contains("has an unfinished run"),
            "mutation {n}\n{}",
            describe(&unfinished)
        );
        assert!(
            unfinished.stderr.contains(&journal),
            "mutation {n}: the journal is not named\n{}",
            describe(&unfinished)
        );

        let resumed = run_via(
            &proxy,
            &second,
            &["apply", "--auto-approve", "--resume", "p.plan"],
        );
        assert_eq!(
            resumed.code,
            0,
            "resume after a kill at mutation {n} failed\n{}",
            describe(&resumed)
        );
        assert_eq!(
            setup.census().await,
            EVERYTHING,
            "resume after mutation {n}"
        );
        let refused = run_via(&proxy, &setup.first, &["apply", "--auto-approve", "p.plan"]);
        assert!(
            refused.stderr.contains("was already applied"),
            "mutation {n}: the first copy may apply the plan again\n{}",
            describe(&refused)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_rolled_back_from_other_copy() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let (setup, second) = crash_then_unlock_elsewhere(&proxy, 10, 165).await;
    let rolled = run_via(&proxy, &second, &["rollback", "--auto-approve", "p.plan"]);
    assert_eq!(rolled.code, 0, "{}", describe(&rolled));
    assert_eq!(setup.census().await, NOTHING, "the rollback left something");
    assert!(
        !setup
            .object_exists(&format!("linkplan/{}/lock", setup.stack))
            .await,
        "the rollback did not release the lock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unlock_by_config_shows_then_removes() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new("s3-unlock", 170).await;
    let key = format!("linkplan/{}/lock", setup.stack);
    let holder =
        serde_json::json!({ "host": "ci-runner-7", "pid": 4242, "since": "2026-12-04T10:00:00Z" });
    s3().await
        .put_object()
        .bucket(&setup.bucket)
        .key(&key)
        .body(ByteStream::from(holder.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    let stack = setup.stack.as_str();

    let shown = run(
        moto(),
        &setup.first,
        &["unlock", stack, "--config", "linkplan.toml"],
    );
    assert_eq!(shown.code, 1, "{}", describe(&shown));
    assert!(
        shown.stderr.contains(&format!(
            "error: stack `{stack}` is locked by process 4242 on ci-runner-7 since 2026-12-04T10:00:00Z"
        )),
        "{}",
        describe(&shown)
    );
    assert!(
        setup.object_exists(&key).await,
        "unlock without --force removed the lock"
    );

    let other = run(
        moto(),
        &setup.first,
        &["unlock", "web", "--config", "linkplan.toml"],
    );
    assert_eq!(other.code, 1);
    assert!(
        other.stderr.contains(&format!(
            "config `linkplan.toml` is for stack `{stack}`, not `web`"
        )),
        "{}",
        describe(&other)
    );

    let removed = run(
        moto(),
        &setup.first,
        &["unlock", stack, "--force", "--config", "linkplan.toml"],
    )
    .expect_code(0);
    assert!(
        removed.stdout.contains(&format!(
            "Removed the lock of stack `{stack}`, held by process 4242 on ci-runner-7"
        )),
        "{}",
        describe(&removed)
    );
    assert!(!setup.object_exists(&key).await);

    let unlocked = run(
        moto(),
        &setup.first,
        &["unlock", stack, "--config", "linkplan.toml"],
    )
    .expect_code(0);
    assert!(
        unlocked
            .stdout
            .contains(&format!("is not locked (no s3://{}/{key})", setup.bucket)),
        "{}",
        describe(&unlocked)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_stops_plan_and_apply_before_changes() {
    let _serial = SERIAL.lock().await;
    let bucket = unique_name("lp-missing");
    let setup = Setup::with_bucket(&unique_name("s3-missing"), bucket, 171, moto());
    let expect_missing = |failed: &Run, key: &str| {
        let expected = format!(
            "error: failed to read `s3://{}/linkplan/{}/{key}",
            setup.bucket, setup.stack
        );
        assert!(failed.stderr.contains(&expected), "{}", describe(failed));
        assert!(
            failed.stderr.contains("NoSuchBucket"),
            "{}",
            describe(failed)
        );
        assert!(
            failed.stderr.contains(&format!(
                "help: create the bucket `{}` in us-east-1",
                setup.bucket
            )),
            "{}",
            describe(failed)
        );
    };

    // `plan` reads the stack's last applied plan from the backend, so it fails first.
    let failed = run(moto(), &setup.first, &["plan", "--out", "p.plan"]).expect_code(1);
    expect_missing(&failed, "last-applied");
    assert!(
        !setup.first.join("p.plan").exists(),
        "a plan file was written"
    );

    // A bucket deleted between plan and apply stops the apply before any change.
    let s3 = moto().s3("us-east-1").await;
    s3.create_bucket()
        .bucket(&setup.bucket)
        .send()
        .await
        .unwrap();
    run(moto(), &setup.first, &["plan", "--out", "p.plan"]).expect_code(0);
    s3.delete_bucket()
        .bucket(&setup.bucket)
        .send()
        .await
        .unwrap();
    let failed = run(moto(), &setup.first, &["apply", "--auto-approve", "p.plan"]).expect_code(1);
    expect_missing(&failed, "applied/");
    assert_eq!(setup.census().await, NOTHING, "the stack was changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_plan_keeps_backend_on_emulator() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new("s3-endpoint", 172).await;
    run(moto(), &setup.first, &["plan", "--out", "p.plan"]).expect_code(0);
    // Only S3 has an endpoint now, another loopback port where nothing listens: the backend
    // must refuse the plan before it sends anything.
    let output = moto()
        .command(env!("CARGO_BIN_EXE_linkplan"))
        .current_dir(&setup.first)
        .stdin(Stdio::null())
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
        .args(["apply", "--auto-approve", "p.plan"])
        .output()
        .unwrap();
    let refused = Run::from(output).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("but its S3 backend would call http://127.0.0.1:9"),
        "{}",
        describe(&refused)
    );
    assert_eq!(setup.census().await, NOTHING);
}

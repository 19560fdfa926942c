//! The safety of apply against moto: the stack's lock, unfinished runs, resume and rollback.

mod common;

use std::path::Path;

use aws_sdk_ec2::types::Filter;
use common::{hub_config, run, workdir, write_config};
use linkplan_testkit::{LocalVpc, VpcSpec, moto, unique_name};

/// Writes the lock of `stack` beside the plans in `dir`, naming a holder on this host, and
/// starts a process that holds its advisory lock for 30 s, as a running apply does. Returns
/// that process, whose id the file names.
fn hold_lock(dir: &Path, stack: &str) -> std::process::Child {
    let lock_dir = dir.join(".linkplan").join(stack);
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lock = lock_dir.join("lock");
    std::fs::write(&lock, "").unwrap();
    // flock(1) of util-linux takes the same advisory lock as linkplan's File::try_lock. With
    // -o only flock itself holds it, not its `sleep`, so killing flock releases it.
    let holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) runs");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let named =
        serde_json::json!({ "host": host, "pid": holder.id(), "since": "2026-12-04T10:00:00Z" });
    std::fs::write(&lock, named.to_string()).unwrap();
    // The advisory lock is taken once flock(1) runs; a non-blocking attempt fails from then on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::process::Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "flock(1) never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    holder
}

/// Returns the ids of the endpoints of `stack` in `hub` that are not gone.
async fn live_endpoints(hub: &LocalVpc, stack: &str) -> Vec<String> {
    let ec2 = moto().ec2("us-east-1").await;
    let described = ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&hub.vpc_id).build())
        .send()
        .await
        .unwrap();
    described
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            e.tags()
                .iter()
                .any(|t| t.key() == Some("linkplan:stack") && t.value() == Some(stack))
        })
        .filter(|e| {
            !matches!(
                e.state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .as_deref(),
                Some("deleted" | "deleting")
            )
        })
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_stack_names_the_holder() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("locked");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.70.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);

    // A live process holds the lock: the apply is rejected and changes nothing.
    let mut holder = hold_lock(&dir, &stack);
    let refused = run(server, &dir, &["apply", "--auto-approve", "p.plan"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let refused = refused.expect_code(1);
    let expected = format!(
        "error: stack `{stack}` is locked by process {} on",
        holder.id()
    );
    assert!(refused.stderr.contains(&expected), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("since 2026-12-04T10:00:00Z"),
        "{}",
        refused.stderr
    );
    assert!(
        live_endpoints(&hub, &stack).await.is_empty(),
        "the locked apply made endpoints"
    );

    // The holder is gone now: the next apply takes the lock over and runs.
    run(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    assert_eq!(live_endpoints(&hub, &stack).await.len(), 4);
    assert!(
        !dir.join(".linkplan").join(&stack).join("lock").exists(),
        "the lock is released"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unlock_shows_holder_then_removes_lock() {
    let dir = workdir(&unique_name("unlock"));
    let lock_dir = dir.join("plans/.linkplan/web");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let holder =
        serde_json::json!({ "host": "ci-runner-7", "pid": 4242, "since": "2026-12-04T10:00:00Z" });
    std::fs::write(lock_dir.join("lock"), holder.to_string()).unwrap();

    let shown = common::run_offline(&dir, &["unlock", "web"]).expect_code(1);
    assert!(
        shown.stderr.contains(
            "error: stack `web` is locked by process 4242 on ci-runner-7 since 2026-12-04T10:00:00Z"
        ),
        "{}",
        shown.stderr
    );
    assert!(
        lock_dir.join("lock").exists(),
        "unlock without --force removed the lock"
    );

    let removed = common::run_offline(&dir, &["unlock", "web", "--force"]).expect_code(0);
    assert!(
        removed.stdout.contains("Removed the lock of stack `web`"),
        "{}",
        removed.stdout
    );
    assert!(!lock_dir.join("lock").exists());
}

#[test]
fn silent_endpoint_fails_within_timeouts() {
    let listener = linkplan_testkit::stalled_listener();
    let dir = workdir(&unique_name("silent"));
    let config = "name = \"silent\"\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-0123456789abcdef0\"\n\
                  subnet_ids = [\"subnet-0123456789abcdef0\"]\n";
    write_config(&dir, config);

    let started = std::time::Instant::now();
    let output = moto()
        .command(env!("CARGO_BIN_EXE_linkplan"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", listener.endpoint())
        .args(["plan", "--read-timeout", "1", "--max-attempts", "2"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let run = common::Run::from(output).expect_code(1);

    // Two attempts of one second each, plus the backoff between them, stay well under 30 s.
    assert!(
        elapsed < std::time::Duration::from_secs(30),
        "plan took {elapsed:?}"
    );
    // The reads run in parallel, so whichever call gives up first is the one reported.
    assert!(
        run.stderr.contains(" in us-east-1 failed: the endpoint "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("did not answer within 1 s (the read timeout)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 attempts"), "{}", run.stderr);
    assert!(!dir.join("plans").exists(), "a plan was written");
}

#[test]
fn unlock_rejects_invalid_stack_name() {
    let dir = workdir(&unique_name("unlock-name"));
    // A lock-shaped file outside the backend folder, which `../../zz` would name.
    let outside = dir.join("zz/lock");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, "{}").unwrap();
    std::fs::create_dir_all(dir.join("plans/.linkplan")).unwrap();

    for stack in ["../../zz", "a/b", "..", "Web", ""] {
        let refused = common::run_offline(&dir, &["unlock", stack, "--force"]).expect_code(1);
        assert!(
            refused
                .stderr
                .contains(&format!("error: invalid stack name `{stack}`")),
            "{}",
            refused.stderr
        );
        assert!(
            refused
                .stderr
                .contains("help: pass the `name` of the stack's config"),
            "{}",
            refused.stderr
        );
        assert!(
            outside.exists(),
            "unlock {stack:?} removed a file outside the backend"
        );
    }
    let with_plan = ["unlock", "../../zz", "--force", "--plan", "missing.plan"];
    let refused = common::run_offline(&dir, &with_plan).expect_code(1);
    assert!(
        refused.stderr.contains("invalid stack name"),
        "the name is checked before the plan file is read: {}",
        refused.stderr
    );
    assert!(outside.exists());
}

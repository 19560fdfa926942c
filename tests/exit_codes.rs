//! One test per exit code of `docs/exit-codes.md`, each provoked through the binary: offline for
//! 0 and 1, against moto for 2, through the fault proxy for 3, 4 and 130, and with a local DNS
//! server for 5.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{
    HubStack, Run, hub_stack, interrupt, linkplan_via, run, run_offline, run_via, wait_for_stall,
    workdir, write_config,
};
use linkplan_testkit::{DnsServer, FaultProxy, InjectedError, VpcSpec, ZoneRecords, moto};

/// Serializes the tests that stall or fail calls, so the timing of one does not depend on the
/// load of another.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates a hub-only stack with DNS hostnames off and plans it into `p.plan`, then returns its
/// folder. The plan starts with a VPC attribute step that completes before any endpoint is made.
fn planned_hub(prefix: &str, cidr: &str, proxy: &FaultProxy) -> PathBuf {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        prefix,
        VpcSpec::new("us-east-1", cidr, &["use1-az1"]).dns_hostnames(false),
    );
    run_via(proxy, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    dir
}

fn describe(run: &Run) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr)
}

#[test]
fn code_0_valid_config() {
    let dir = workdir("exit-0");
    write_config(
        &dir,
        "name = \"exit-zero\"\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-0123456789abcdef0\"\n\
         subnet_ids = [\"subnet-0123456789abcdef0\"]\n",
    );
    run_offline(&dir, &["validate"]).expect_code(0);
    run_offline(&dir, &["iam-policy"]).expect_code(0);
    run_offline(&dir, &["completions", "bash"]).expect_code(0);
}

#[test]
fn code_1_invalid_config() {
    let dir = workdir("exit-1-config");
    write_config(&dir, "name = \"Not A Name\"\n");
    let failed = run_offline(&dir, &["validate"]).expect_code(1);
    assert!(failed.stderr.contains("error:"), "{}", describe(&failed));
}

#[test]
fn code_1_usage_error() {
    // clap's own code for a usage error is 2, which means "changes present" to linkplan.
    let dir = workdir("exit-1-usage");
    let failed = run_offline(&dir, &["plan", "--no-such-flag"]).expect_code(1);
    assert!(
        failed.stderr.contains("--no-such-flag"),
        "{}",
        describe(&failed)
    );
}

#[test]
fn code_1_edited_plan_file() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = planned_hub("exit-1-plan", "10.71.0.0/16", &proxy);
    let path = dir.join("p.plan");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("destroy = 0", "destroy = 1", 1)).unwrap();
    let refused = run_via(&proxy, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(1);
    assert!(
        refused.stderr.contains("was changed after it was written"),
        "{}",
        describe(&refused)
    );
    assert!(refused.stderr.contains("help:"), "{}", describe(&refused));
}

#[test]
fn code_2_plan_with_changes() {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        "exit-2",
        VpcSpec::new("us-east-1", "10.72.0.0/16", &["use1-az1"]),
    );
    run(server, &dir, &["plan", "--detailed-exitcode"]).expect_code(2);
    // Without the flag, changes are not an error.
    run(server, &dir, &["plan"]).expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn code_3_failed_apply_rolled_back() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = planned_hub("exit-3", "10.73.0.0/16", &proxy);
    proxy.fail_operation(
        "CreateVpcEndpoint",
        1000,
        InjectedError::new(400, "InvalidParameter", "injected failure"),
    );
    let failed = run_via(&proxy, &dir, &["apply", "--auto-approve", "p.plan"]);
    proxy.clear_faults();
    assert_eq!(failed.code, 3, "{}", describe(&failed));
    assert!(
        failed
            .stderr
            .contains("The stack is as it was before this apply."),
        "{}",
        describe(&failed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn code_4_failed_apply_without_rollback() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = planned_hub("exit-4", "10.74.0.0/16", &proxy);
    proxy.fail_operation(
        "CreateVpcEndpoint",
        1000,
        InjectedError::new(400, "InvalidParameter", "injected failure"),
    );
    let failed = run_via(
        &proxy,
        &dir,
        &["apply", "--auto-approve", "--no-rollback", "p.plan"],
    );
    proxy.clear_faults();
    assert_eq!(failed.code, 4, "{}", describe(&failed));
    assert!(
        failed.stderr.contains("Completed and not rolled back:"),
        "{}",
        describe(&failed)
    );
    assert!(
        failed.stderr.contains(
            "help: fix the cause above, then finish the plan with `linkplan apply --resume p.plan`"
        ),
        "{}",
        describe(&failed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn code_130_second_interrupt() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = planned_hub("exit-130", "10.75.0.0/16", &proxy);
    proxy.reset_counts();
    proxy.stall_nth_mutating_after_forward(1);
    let child = linkplan_via(&proxy, &dir)
        .args(["apply", "--auto-approve", "p.plan"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("linkplan starts");
    wait_for_stall(&proxy);
    interrupt(child.id());
    std::thread::sleep(Duration::from_millis(300));
    interrupt(child.id());
    let stopped = Run::from(child.wait_with_output().expect("linkplan exits"));
    proxy.clear_faults();
    assert_eq!(stopped.code, 130, "{}", describe(&stopped));
    assert!(
        stopped.stderr.contains("Exiting at once"),
        "{}",
        describe(&stopped)
    );
}

#[test]
fn code_5_verify_without_answer() {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        "exit-5",
        VpcSpec::new("us-east-1", "10.76.0.0/16", &["use1-az1"]),
    );
    run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    run(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);

    // A server of the zone with no record returns NXDOMAIN for every host.
    let dns = DnsServer::start("deepsecurity.trendmicro.com", &ZoneRecords::new())
        .expect("the local DNS server starts");
    let resolver = dns.address.to_string();
    let failed = run(server, &dir, &["verify", "--resolver", &resolver]).expect_code(5);
    assert!(failed.stderr.contains("NO ANSWER"), "{}", describe(&failed));
}

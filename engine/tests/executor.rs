//! Tests of the apply executor against the in-memory provider, on tokio's paused clock.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use linkplan_engine::apply::{
    ApplyError, ApplyOptions, ApplyReport, Executor, Quiet, idempotency_token, rollback_candidates,
};
use linkplan_engine::journal::{Backend, Entry, LocalBackend, Outcome};
use linkplan_engine::plan_file::Plan;
use linkplan_engine::planner::Mode;
use linkplan_engine::provider::{ErrorKind, ProviderError};
use linkplan_engine::resource::{Address, Resource, Value, outputs};
use linkplan_engine::stack::Stack;
use tokio::sync::watch;

use support::{CallKind, FailureTiming, FakeCloud};

/// One plan, the fake it runs against and the local backend that keeps its journal.
struct Harness {
    plan: Plan,
    cloud: Arc<FakeCloud>,
    backend: LocalBackend,
    root: PathBuf,
}

impl Harness {
    /// Plans config `text` against a hub with nothing of the stack yet.
    fn new(name: &str, text: &str) -> Self {
        let stack = support::stack_from(text);
        let observed = support::empty_hub(&stack);
        Harness::with_observed(name, stack, observed.clone(), Mode::Apply)
    }

    fn with_observed(
        name: &str,
        stack: Stack,
        observed: linkplan_engine::observed::Observed,
        mode: Mode,
    ) -> Self {
        let plan = support::plan_for(&stack, &observed, mode);
        let root = support::scratch_dir(name);
        Harness {
            plan,
            cloud: Arc::new(FakeCloud::new(observed)),
            backend: LocalBackend::new(&root),
            root,
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.root
            .join(&self.plan.stack_name)
            .join(format!("{}.journal", self.plan.id()))
    }

    /// Applies the plan with a cancel channel that is never sent on.
    async fn apply(&self, options: ApplyOptions) -> ApplyReport {
        let (sender, cancel) = watch::channel(false);
        let report = self.apply_with(options, cancel).await;
        drop(sender);
        report
    }

    async fn apply_with(
        &self,
        options: ApplyOptions,
        cancel: watch::Receiver<bool>,
    ) -> ApplyReport {
        let provider = Arc::clone(&self.cloud);
        let executor = Executor::new(provider, Arc::new(Quiet), options, cancel);
        let mut journal = self
            .backend
            .journal(&self.plan.stack_name, &self.plan.id())
            .await
            .expect("the journal opens");
        executor
            .apply(&self.plan, journal.as_mut())
            .await
            .expect("the apply runs")
    }

    async fn entries(&self) -> Vec<Entry> {
        let journal = self
            .backend
            .journal(&self.plan.stack_name, &self.plan.id())
            .await
            .expect("the journal opens");
        journal.entries().await.expect("the journal reads")
    }
}

fn options(parallelism: usize, rollback: bool) -> ApplyOptions {
    ApplyOptions {
        parallelism,
        wait_timeout: Duration::from_secs(60),
        rollback,
    }
}

fn addresses(names: &[&str]) -> Vec<Address> {
    names.iter().map(|n| Address::from(*n)).collect()
}

fn failed_addresses(report: &ApplyReport) -> Vec<Address> {
    report.failed.iter().map(|(a, _)| a.clone()).collect()
}

fn endpoint_failure() -> ProviderError {
    let message = "endpoint vpce-0000000000000009 reached state failed";
    support::provider_error(ErrorKind::Terminal, "CreateVpcEndpoint", message)
}

/// Sets delays on the default four-service plan so steps complete in a known order: zone,
/// security group, ingress rule, then the endpoints app, dsmim and relay. `endpoint.agents`
/// returns first of the endpoints, while the others are still in flight.
fn stagger(cloud: &FakeCloud) {
    cloud.set_delay("zone", Duration::from_millis(5));
    cloud.set_delay("security_group.endpoints", Duration::from_millis(10));
    cloud.set_delay("endpoint.agents", Duration::from_millis(2));
    cloud.set_delay("ingress.10.0.0.0/16", Duration::from_millis(15));
    cloud.set_delay("endpoint.app", Duration::from_millis(20));
    cloud.set_delay("endpoint.dsmim", Duration::from_millis(30));
    cloud.set_delay("endpoint.relay", Duration::from_millis(40));
}

#[tokio::test(start_paused = true)]
async fn steps_run_after_dependencies() {
    let harness = Harness::new("after-dependencies", support::HUB_CONFIG);
    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the apply completes: {report:?}"
    );

    let calls = harness.cloud.calls();
    for step in &harness.plan.steps {
        let started = calls
            .iter()
            .position(|c| c.kind == CallKind::Apply && c.address == step.address)
            .unwrap_or_else(|| panic!("{} was applied", step.address));
        for dependency in &step.depends_on {
            let finished = calls
                .iter()
                .position(|c| c.kind == CallKind::Applied && c.address == *dependency);
            assert!(
                finished.is_some_and(|f| f < started),
                "{} starts only after its dependency {dependency} has completed",
                step.address
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn references_are_resolved_before_apply() {
    let harness = Harness::new("references", support::HUB_CONFIG);
    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the apply completes: {report:?}"
    );

    let records = harness
        .cloud
        .applied_step("records")
        .expect("the records step was applied");
    let Some(Resource::AliasRecords(after)) = &records.after else {
        panic!("the records step writes alias records: {records:?}");
    };
    let zone = harness.cloud.object("zone").expect("the zone was created");
    assert_eq!(
        after.zone_id,
        Value::known(&zone[outputs::ID]),
        "the records go into the zone the zone step created"
    );
    for host in ["agents", "app", "dsmim", "relay"] {
        let name = format!("{host}.deepsecurity.trendmicro.com");
        let record = after
            .records
            .iter()
            .find(|r| r.name == name)
            .expect("a record per host");
        let endpoint = harness
            .cloud
            .object(&format!("endpoint.{host}"))
            .expect("an endpoint");
        assert_eq!(
            record.target_dns_name,
            Value::known(&endpoint[outputs::DNS_NAME]),
            "{name} points at the DNS name its endpoint returned"
        );
        assert_eq!(
            record.target_zone_id,
            Value::known(support::ENDPOINT_ZONE_ID),
            "{name} uses the hosted zone id of the endpoint's DNS entry"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn parallelism_bounds_steps_in_flight() {
    // Once the security group exists, five steps are free to run: the ingress rule and the
    // four endpoints.
    for parallelism in 1..=5 {
        let harness = Harness::new("parallelism", support::HUB_CONFIG);
        let report = harness.apply(options(parallelism, true)).await;
        assert_eq!(
            report.outcome(),
            Outcome::Applied,
            "the apply completes: {report:?}"
        );
        assert_eq!(
            harness.cloud.max_in_flight(),
            parallelism,
            "with parallelism {parallelism}, that many steps and no more run at once"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn zero_parallelism_runs_one_step_at_a_time() {
    let harness = Harness::new("zero-parallelism", support::ONE_SERVICE_CONFIG);
    let report = harness.apply(options(0, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "every step runs: {report:?}"
    );
    assert!(
        report.not_started.is_empty(),
        "no step is left out: {:?}",
        report.not_started
    );
    assert_eq!(harness.cloud.max_in_flight(), 1, "one step runs at a time");
}

#[tokio::test(start_paused = true)]
async fn failure_stops_dependents_and_rolls_back() {
    let harness = Harness::new("failure", support::HUB_CONFIG);
    stagger(&harness.cloud);
    harness
        .cloud
        .fail_at("endpoint.agents", FailureTiming::Before, endpoint_failure());
    let report = harness.apply(options(8, true)).await;

    let calls = harness.cloud.calls();
    let failed_at = calls
        .iter()
        .position(|c| c.kind == CallKind::ApplyFailed)
        .expect("the endpoint's apply failed");
    assert!(
        !calls[failed_at..].iter().any(|c| c.kind == CallKind::Apply),
        "no step starts after the failure: {:?}",
        harness.cloud.addresses(CallKind::Apply)
    );
    assert!(
        !harness
            .cloud
            .addresses(CallKind::Apply)
            .contains(&Address::from("records")),
        "the records, which depend on the failed endpoint, never start"
    );
    for in_flight in [
        "ingress.10.0.0.0/16",
        "endpoint.app",
        "endpoint.dsmim",
        "endpoint.relay",
    ] {
        let finished = calls[failed_at..]
            .iter()
            .any(|c| c.kind == CallKind::Applied && c.address.as_str() == in_flight);
        assert!(
            finished,
            "{in_flight}, in flight at the failure, runs to completion"
        );
    }

    let completed = harness.cloud.addresses(CallKind::Applied);
    let expected_completed = addresses(&[
        "zone",
        "security_group.endpoints",
        "ingress.10.0.0.0/16",
        "endpoint.app",
        "endpoint.dsmim",
        "endpoint.relay",
    ]);
    assert_eq!(
        completed, expected_completed,
        "the delays give this order of completion"
    );
    let mut reversed = completed.clone();
    reversed.reverse();
    assert_eq!(
        harness.cloud.addresses(CallKind::Undo),
        reversed,
        "completed steps are undone in reverse order of completion"
    );
    assert!(
        harness.cloud.object_addresses().is_empty(),
        "nothing the apply made is left"
    );

    assert_eq!(
        report.rolled_back, reversed,
        "the report lists the undone steps in order"
    );
    assert_eq!(
        failed_addresses(&report),
        addresses(&["endpoint.agents"]),
        "the report names the failure"
    );
    assert_eq!(
        report.not_started,
        addresses(&["records"]),
        "the report lists the steps never started"
    );
    assert!(
        report.completed.is_empty(),
        "no completed step is left after the rollback"
    );
    assert!(
        report.not_rolled_back.is_empty(),
        "every undo succeeded: {:?}",
        report.not_rolled_back
    );
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the outcome is a full rollback"
    );

    let entries = harness.entries().await;
    let finished = entries.last().expect("the journal has entries");
    let expected = Entry::Finished {
        outcome: Outcome::RolledBack,
    };
    assert_eq!(*finished, expected, "the journal ends with the outcome");
}

#[tokio::test(start_paused = true)]
async fn failed_create_with_object_is_undone() {
    let harness = Harness::new("left-behind", support::HUB_CONFIG);
    stagger(&harness.cloud);
    harness.cloud.fail_at(
        "endpoint.agents",
        FailureTiming::AfterCreate,
        endpoint_failure(),
    );
    let report = harness.apply(options(8, true)).await;

    assert_eq!(
        harness.cloud.addresses(CallKind::FindCreated),
        addresses(&["endpoint.agents"]),
        "the failed create is looked for"
    );
    let undo = harness
        .cloud
        .calls()
        .into_iter()
        .find(|c| c.kind == CallKind::Undo && c.address.as_str() == "endpoint.agents")
        .expect("the endpoint the failed create made is undone");
    assert_eq!(
        undo.undo_outputs.get(outputs::ID).map(String::as_str),
        Some("vpce-0000000000000003"),
        "the undo gets the id find_created returned"
    );
    assert!(
        harness.cloud.object("endpoint.agents").is_none(),
        "the endpoint is gone"
    );
    assert!(
        report
            .rolled_back
            .contains(&Address::from("endpoint.agents")),
        "the report lists the endpoint as rolled back: {:?}",
        report.rolled_back
    );
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the outcome is a full rollback"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_off_keeps_completed_steps() {
    let harness = Harness::new("no-rollback", support::HUB_CONFIG);
    stagger(&harness.cloud);
    // The third call is endpoint.agents, because the security group and the zone go first.
    harness.cloud.fail_nth_apply(3, endpoint_failure());
    let report = harness.apply(options(8, false)).await;
    let failed = failed_addresses(&report);
    assert_eq!(
        failed,
        addresses(&["endpoint.agents"]),
        "the endpoint fails"
    );

    assert!(
        harness.cloud.addresses(CallKind::Undo).is_empty(),
        "nothing is undone"
    );
    assert!(
        harness.cloud.addresses(CallKind::FindCreated).is_empty(),
        "nothing is looked for"
    );
    let expected = addresses(&[
        "zone",
        "security_group.endpoints",
        "ingress.10.0.0.0/16",
        "endpoint.app",
        "endpoint.dsmim",
        "endpoint.relay",
    ]);
    assert_eq!(
        report.completed, expected,
        "the report lists the completed steps in order"
    );
    let mut expected_objects = expected.clone();
    expected_objects.sort();
    assert_eq!(
        harness.cloud.object_addresses(),
        expected_objects,
        "the completed steps' objects are kept"
    );
    assert_eq!(
        report.outcome(),
        Outcome::Failed,
        "the outcome says the stack is half applied"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_off_with_object_left_is_failed() {
    let harness = Harness::new("no-rollback-left", support::ONE_SERVICE_CONFIG);
    let error = support::provider_error(ErrorKind::Timeout, "CreateSecurityGroup", "timed out");
    harness.cloud.fail_at(
        "security_group.endpoints",
        FailureTiming::AfterCreate,
        error,
    );
    let report = harness.apply(options(1, false)).await;

    assert!(
        report.completed.is_empty(),
        "no step completed: {:?}",
        report.completed
    );
    assert!(
        harness.cloud.object("security_group.endpoints").is_some(),
        "the failed create left its group behind"
    );
    assert_eq!(
        report.outcome(),
        Outcome::Failed,
        "without a rollback the outcome never claims that the stack is as it was"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_undo_is_reported_and_others_undone() {
    let harness = Harness::new("undo-fails", support::HUB_CONFIG);
    stagger(&harness.cloud);
    harness
        .cloud
        .fail_at("endpoint.agents", FailureTiming::Before, endpoint_failure());
    let error = support::provider_error(ErrorKind::Conflict, "DeleteHostedZone", "zone not empty");
    harness.cloud.fail_undo("zone", error);
    let report = harness.apply(options(8, true)).await;

    let not_undone: Vec<&Address> = report.not_rolled_back.iter().map(|(a, _)| a).collect();
    assert_eq!(
        not_undone,
        [&Address::from("zone")],
        "the report names the failed undo"
    );
    assert!(
        report.not_rolled_back[0].1.contains("zone not empty"),
        "the report gives the reason: {}",
        report.not_rolled_back[0].1
    );
    assert_eq!(
        report.rolled_back.len(),
        5,
        "the other completed steps are undone: {report:?}"
    );
    assert_eq!(
        report.completed,
        addresses(&["zone"]),
        "the zone is still in place"
    );
    assert_eq!(
        report.outcome(),
        Outcome::Failed,
        "a partial rollback is a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_dns_output_fails_records_and_undoes_endpoint() {
    let harness = Harness::new("no-dns", support::ONE_SERVICE_CONFIG);
    harness.cloud.omit_dns_entries("endpoint.agents");
    let report = harness.apply(options(8, true)).await;

    assert!(
        !harness
            .cloud
            .addresses(CallKind::Apply)
            .contains(&Address::from("records")),
        "the records never reach the provider"
    );
    assert_eq!(
        failed_addresses(&report),
        addresses(&["records"]),
        "the records step fails"
    );
    let message = &report.failed[0].1.message;
    assert!(
        message.contains("endpoint.agents.dns_name"),
        "the error names the missing output: {message}"
    );
    assert!(
        report
            .rolled_back
            .contains(&Address::from("endpoint.agents")),
        "the endpoint made in this run is removed: {:?}",
        report.rolled_back
    );
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the outcome is a full rollback"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_scheduling_and_rolls_back() {
    let harness = Harness::new("cancel", support::HUB_CONFIG);
    let (sender, cancel) = watch::channel(false);
    harness
        .cloud
        .cancel_when_started("security_group.endpoints", sender);
    let report = harness.apply_with(options(2, true), cancel).await;

    assert_eq!(
        harness.cloud.addresses(CallKind::Apply),
        addresses(&["security_group.endpoints", "zone"]),
        "only the steps started before the cancel run"
    );
    assert_eq!(
        harness.cloud.addresses(CallKind::Applied),
        addresses(&["security_group.endpoints", "zone"]),
        "the steps in flight finish"
    );
    assert_eq!(
        report.rolled_back,
        addresses(&["zone", "security_group.endpoints"]),
        "the completed steps are undone in reverse order of completion"
    );
    assert!(report.cancelled, "the report says the run was cancelled");
    assert_eq!(
        report.not_started.len(),
        6,
        "the other steps never start: {:?}",
        report.not_started
    );
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the outcome is a full rollback"
    );
}

#[test]
fn dropped_cancel_sender_does_not_stall_apply() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let outcome = runtime.block_on(async {
            let harness = Harness::new("dropped-sender", support::ONE_SERVICE_CONFIG);
            let (sender, cancel) = watch::channel(false);
            drop(sender);
            harness.apply_with(options(8, true), cancel).await.outcome()
        });
        let _ = done.send(outcome);
    });
    let outcome = finished.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        outcome,
        Ok(Outcome::Applied),
        "an apply whose cancel sender is gone runs to the end instead of spinning"
    );
}

#[tokio::test(start_paused = true)]
async fn journal_holds_intent_before_each_call() {
    let harness = Harness::new("journal", support::HUB_CONFIG);
    harness.cloud.check_journal(&harness.journal_path());
    stagger(&harness.cloud);
    harness.cloud.fail_at(
        "endpoint.agents",
        FailureTiming::AfterCreate,
        endpoint_failure(),
    );
    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the apply rolls back: {report:?}"
    );

    for call in harness.cloud.calls() {
        assert_eq!(
            call.intent_journaled,
            Some(true),
            "the intent of {:?} {} was journaled before the call",
            call.kind,
            call.address
        );
    }

    let entries = harness.entries().await;
    for (index, entry) in entries.iter().enumerate() {
        let (Entry::Completed { address, .. } | Entry::Failed { address, .. }) = entry else {
            continue;
        };
        let has_intent = entries[..index]
            .iter()
            .any(|e| matches!(e, Entry::Intent { address: a, .. } if a == address));
        assert!(
            has_intent,
            "the outcome of {address} follows its intent in the journal"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tokens_are_short_distinct_and_derived() {
    let harness = Harness::new("tokens", support::HUB_CONFIG);
    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the apply completes: {report:?}"
    );

    let plan_id = harness.plan.id();
    let mut seen = std::collections::BTreeSet::new();
    for entry in harness.entries().await {
        let Entry::Intent { address, token, .. } = entry else {
            continue;
        };
        assert!(
            token.len() <= 64,
            "token `{token}` of {address} fits in 64 characters"
        );
        assert!(token.is_ascii(), "token `{token}` of {address} is ASCII");
        assert_eq!(
            token,
            idempotency_token(&plan_id, &address),
            "the token of {address} is derived from the plan id and the address"
        );
        assert!(
            seen.insert(token.clone()),
            "token `{token}` of {address} is used by one step only"
        );
    }
    assert_eq!(
        seen.len(),
        harness.plan.steps.len(),
        "every step has a token"
    );
    for call in harness.cloud.calls() {
        assert_eq!(
            call.token,
            idempotency_token(&plan_id, &call.address),
            "the provider gets the journaled token for {}",
            call.address
        );
        assert!(
            !call.earlier_attempt,
            "the first run of {} has no earlier attempt",
            call.address
        );
    }
}

/// Plans the one-service config against a hub whose VPC has DNS hostnames off, so the plan
/// has an update step, `vpc.hub.dns_hostnames`, that fails with an error of `kind`.
async fn failed_update(name: &str, kind: ErrorKind) -> (Harness, ApplyReport) {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = support::empty_hub(&stack);
    if let Some(Some(vpc)) = observed.vpcs.get_mut(&stack.hub.vpc_id) {
        vpc.dns_hostnames = false;
    }
    let harness = Harness::with_observed(name, stack, observed, Mode::Apply);
    let address = "vpc.hub.dns_hostnames";
    assert!(
        harness
            .plan
            .steps
            .iter()
            .any(|s| s.address.as_str() == address),
        "the plan turns DNS hostnames on"
    );
    let error = support::provider_error(kind, "ModifyVpcAttribute", "no response");
    harness.cloud.fail_at(address, FailureTiming::Before, error);
    let report = harness.apply(options(8, true)).await;
    (harness, report)
}

fn undo_calls(harness: &Harness, address: &str) -> usize {
    harness
        .cloud
        .calls()
        .iter()
        .filter(|c| c.kind == CallKind::Undo && c.address.as_str() == address)
        .count()
}

#[tokio::test(start_paused = true)]
async fn timed_out_update_is_undone() {
    let (harness, report) = failed_update("timed-out-update", ErrorKind::Timeout).await;
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the run is undone: {report:?}"
    );
    assert!(
        report
            .rolled_back
            .contains(&Address::from("vpc.hub.dns_hostnames")),
        "a change whose call timed out may have taken effect, so it is undone: {report:?}"
    );
    assert_eq!(undo_calls(&harness, "vpc.hub.dns_hostnames"), 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_update_is_not_undone() {
    let (harness, report) = failed_update("rejected-update", ErrorKind::InvalidRequest).await;
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the run is undone: {report:?}"
    );
    assert_eq!(
        undo_calls(&harness, "vpc.hub.dns_hostnames"),
        0,
        "a rejected change did nothing, so there is nothing to undo"
    );
}

#[tokio::test(start_paused = true)]
async fn pausing_steps_give_up_their_slot() {
    let harness = Harness::new("pauses", support::HUB_CONFIG);
    let waiting = [
        "endpoint.agents",
        "endpoint.app",
        "endpoint.dsmim",
        "endpoint.relay",
    ];
    for address in waiting {
        harness.cloud.set_wait(address, Duration::from_secs(100));
    }
    let started = tokio::time::Instant::now();
    let report = harness.apply(options(1, true)).await;
    let elapsed = started.elapsed();

    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the apply completes: {report:?}"
    );
    assert_eq!(harness.cloud.max_in_flight(), 1, "one step calls at a time");
    // Holding the slot through each wait would take 400 s, one endpoint after another.
    assert!(
        elapsed < Duration::from_secs(150),
        "the four waits overlap, but the apply took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn apply_after_rollback_uses_new_tokens() {
    let harness = Harness::new("again", support::HUB_CONFIG);
    let error = support::provider_error(ErrorKind::Terminal, "ChangeResourceRecordSets", "bad");
    harness
        .cloud
        .fail_at("records", FailureTiming::Before, error);
    let first = harness.apply(options(8, true)).await;
    assert_eq!(
        first.outcome(),
        Outcome::RolledBack,
        "the first run is undone: {first:?}"
    );
    harness.cloud.clear_failures();
    let first_calls = harness.cloud.calls().len();
    let second = harness.apply(options(8, true)).await;
    assert_eq!(
        second.outcome(),
        Outcome::Applied,
        "the second run completes: {second:?}"
    );

    let calls = harness.cloud.calls();
    let token_of = |calls: &[support::Call], address: &str| {
        calls
            .iter()
            .find(|c| c.kind == CallKind::Apply && c.address.as_str() == address)
            .map(|c| c.token.clone())
            .expect("the step was applied")
    };
    let address = "endpoint.agents";
    assert_eq!(
        token_of(&calls[..first_calls], address),
        idempotency_token(&harness.plan.id(), &Address::from(address)),
        "the first run uses the plan's first tokens"
    );
    assert_ne!(
        token_of(&calls[first_calls..], address),
        token_of(&calls[..first_calls], address),
        "after a rollback, AWS would answer the old token with the deleted object"
    );
    assert!(
        calls[first_calls..].iter().all(|c| !c.earlier_attempt),
        "everything the first run made was removed, so nothing is looked for"
    );
}

#[tokio::test(start_paused = true)]
async fn second_apply_skips_completed_steps() {
    let harness = Harness::new("resume", support::HUB_CONFIG);
    let error = support::provider_error(ErrorKind::Throttled, "ChangeResourceRecordSets", "rate");
    harness
        .cloud
        .fail_at("records", FailureTiming::Before, error);
    let first = harness.apply(options(8, false)).await;
    assert_eq!(
        failed_addresses(&first),
        addresses(&["records"]),
        "the first run fails at the records"
    );

    harness.cloud.clear_failures();
    let first_calls = harness.cloud.calls().len();
    let second = harness.apply(options(8, false)).await;
    assert_eq!(
        second.outcome(),
        Outcome::Applied,
        "the second run completes: {second:?}"
    );

    let calls = harness.cloud.calls();
    let applied_again: Vec<&Address> = calls[first_calls..]
        .iter()
        .filter(|c| c.kind == CallKind::Apply)
        .map(|c| &c.address)
        .collect();
    assert_eq!(
        applied_again,
        [&Address::from("records")],
        "only the failed step runs again"
    );
    let tokens: Vec<&str> = calls
        .iter()
        .filter(|c| c.kind == CallKind::Apply && c.address.as_str() == "records")
        .map(|c| c.token.as_str())
        .collect();
    assert_eq!(tokens.len(), 2, "the records step was called in both runs");
    assert_eq!(tokens[0], tokens[1], "the retried step keeps its token");

    let records = harness
        .cloud
        .applied_step("records")
        .expect("the records step was applied");
    assert!(
        records
            .after
            .as_ref()
            .is_some_and(|r| r.references().is_empty()),
        "the records are resolved from the outputs the first run journaled"
    );
    assert_eq!(
        second.completed.len(),
        harness.plan.steps.len(),
        "every step is now completed"
    );
}

#[tokio::test(start_paused = true)]
async fn cross_account_association_undone_in_reverse() {
    let stack = support::stack_from(&format!(
        "{}{}",
        support::ONE_SERVICE_CONFIG,
        r#"
[[spoke]]
name = "eu"
region = "eu-west-1"
vpc_id = "vpc-0000bbbb"
account_id = "222222222222"
profile = "spoke"
"#
    ));
    let mut observed = support::empty_hub(&stack);
    let spoke_vpc = support::vpc(
        support::SPOKE_VPC,
        "eu-west-1",
        support::OTHER_ACCOUNT,
        &["10.9.0.0/16"],
    );
    observed
        .vpcs
        .insert(support::SPOKE_VPC.to_string(), Some(spoke_vpc));
    let spoke_context = stack.spoke_context(&stack.spokes[0]);
    observed
        .identities
        .push((spoke_context, support::identity(support::OTHER_ACCOUNT)));
    let harness = Harness::with_observed("cross-account", stack, observed, Mode::Apply);

    // The records fail last, once the authorization has been granted, used and revoked.
    let error = support::provider_error(ErrorKind::Transient, "apply", "connection reset");
    harness
        .cloud
        .set_delay("records", Duration::from_millis(100));
    harness
        .cloud
        .fail_at("records", FailureTiming::Before, error);
    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::RolledBack,
        "the apply rolls back: {report:?}"
    );

    let undone = harness.cloud.addresses(CallKind::Undo);
    let position = |address: &str| {
        undone
            .iter()
            .position(|a| a.as_str() == address)
            .unwrap_or_else(|| panic!("{address} is undone: {undone:?}"))
    };
    let revoke = position("zone_authorization.eu.revoke");
    let association = position("zone_association.eu");
    let authorization = position("zone_authorization.eu");
    assert!(
        revoke < association,
        "the authorization is granted again before the disassociation"
    );
    assert!(
        association < authorization,
        "the VPC is disassociated before the authorization goes"
    );
}

#[tokio::test(start_paused = true)]
async fn journal_cut_by_crash_stays_readable_after_resume() {
    let harness = Harness::new("cut-journal", support::ONE_SERVICE_CONFIG);
    let error = support::provider_error(ErrorKind::Throttled, "ChangeResourceRecordSets", "rate");
    harness
        .cloud
        .fail_at("records", FailureTiming::Before, error);
    harness.apply(options(8, false)).await;

    // A crash in the middle of a write leaves the last line cut short.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(harness.journal_path())
        .expect("the journal exists");
    std::io::Write::write_all(&mut file, b"{\"event\":\"compl").expect("the cut line is written");
    drop(file);

    harness.cloud.clear_failures();
    let report = harness.apply(options(8, false)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the resumed run completes: {report:?}"
    );
    let journal = harness
        .backend
        .journal(&harness.plan.stack_name, &harness.plan.id())
        .await
        .expect("the journal opens");
    let entries = journal.entries().await;
    assert!(
        entries.is_ok(),
        "the journal written after the cut line is still readable: {:?}",
        entries.err()
    );
    let last = entries.ok().and_then(|e| e.last().cloned());
    let expected = Entry::Finished {
        outcome: Outcome::Applied,
    };
    assert_eq!(
        last,
        Some(expected),
        "the resumed run's outcome is the last entry"
    );
}

/// Runs the hub plan with the records step failing and rollback off, then removes the outcome
/// of `endpoint.agents` from the journal, as a crash between its call and its journal entry
/// would leave it.
async fn crashed_after_agents_endpoint(name: &str) -> Harness {
    let harness = Harness::new(name, support::HUB_CONFIG);
    let error = support::provider_error(ErrorKind::Throttled, "ChangeResourceRecordSets", "rate");
    harness
        .cloud
        .fail_at("records", FailureTiming::Before, error);
    harness.apply(options(8, false)).await;
    harness.cloud.clear_failures();

    let path = harness.journal_path();
    let text = std::fs::read_to_string(&path).expect("the journal reads");
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            !(line.contains("\"event\":\"completed\"") && line.contains("\"endpoint.agents\""))
        })
        .filter(|line| !line.contains("\"event\":\"finished\""))
        .collect();
    assert!(
        kept.len() < text.lines().count(),
        "the journal had the endpoint's outcome"
    );
    std::fs::write(&path, format!("{}\n", kept.join("\n"))).expect("the journal is rewritten");
    harness
}

#[tokio::test(start_paused = true)]
async fn resume_repeats_create_with_missing_outcome() {
    let harness = crashed_after_agents_endpoint("resume-repeat").await;
    let made = harness
        .cloud
        .object("endpoint.agents")
        .expect("the crashed run made the endpoint");
    let before = harness.cloud.calls().len();

    let report = harness.apply(options(8, true)).await;
    assert_eq!(
        report.outcome(),
        Outcome::Applied,
        "the resumed run completes: {report:?}"
    );

    let calls = &harness.cloud.calls()[before..];
    let repeated: Vec<&str> = calls
        .iter()
        .filter(|c| c.kind == CallKind::Apply && c.address.as_str() == "endpoint.agents")
        .map(|c| c.token.as_str())
        .collect();
    let token = idempotency_token(&harness.plan.id(), &Address::from("endpoint.agents"));
    assert_eq!(
        repeated,
        [token.as_str()],
        "the unfinished create runs again with its token"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.kind == CallKind::Apply)
            .all(|c| c.earlier_attempt),
        "the steps started in the crashed run (the endpoint, and the records that failed) are \
         told that an earlier attempt may have made their object"
    );
    assert_eq!(
        harness.cloud.object("endpoint.agents"),
        Some(made),
        "the repeated create returns the object the first attempt made"
    );
    let records = harness
        .cloud
        .applied_step("records")
        .expect("the records step ran");
    assert!(
        records
            .after
            .as_ref()
            .is_some_and(|r| r.references().is_empty()),
        "the records use the endpoint's outputs"
    );
    assert_eq!(
        harness.cloud.object_addresses().len(),
        harness.plan.steps.len(),
        "exactly one object per step"
    );
}

#[tokio::test(start_paused = true)]
async fn journal_rollback_removes_unfinished_create() {
    let harness = crashed_after_agents_endpoint("rollback-journal").await;
    assert!(
        harness.cloud.object("endpoint.agents").is_some(),
        "the crashed run made the endpoint"
    );

    let (_sender, cancel) = watch::channel(false);
    let provider = Arc::clone(&harness.cloud);
    let executor = Executor::new(provider, Arc::new(Quiet), options(8, true), cancel);
    let mut journal = harness
        .backend
        .journal(&harness.plan.stack_name, &harness.plan.id())
        .await
        .expect("the journal opens");
    let report = executor
        .roll_back_journal(&harness.plan, journal.as_mut())
        .await
        .expect("the rollback runs");

    assert!(
        report.not_rolled_back.is_empty(),
        "every step is undone: {report:?}"
    );
    assert!(
        report.completed.is_empty(),
        "nothing stays in place: {report:?}"
    );
    assert!(
        report
            .rolled_back
            .contains(&Address::from("endpoint.agents")),
        "the unfinished create is undone"
    );
    assert!(
        harness.cloud.object_addresses().is_empty(),
        "no object is left: {:?}",
        harness.cloud.object_addresses()
    );
    let entries = harness.entries().await;
    assert!(
        matches!(
            entries.last(),
            Some(Entry::Finished {
                outcome: Outcome::RolledBack
            })
        ),
        "the journal ends rolled back"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_after_partial_rollback_uses_new_tokens() {
    let harness = Harness::new("partial-undo", support::HUB_CONFIG);
    stagger(&harness.cloud);
    harness
        .cloud
        .fail_at("endpoint.agents", FailureTiming::Before, endpoint_failure());
    let error = support::provider_error(ErrorKind::Conflict, "DeleteHostedZone", "zone not empty");
    harness.cloud.fail_undo("zone", error);
    let first = harness.apply(options(8, true)).await;
    assert_eq!(
        first.outcome(),
        Outcome::Failed,
        "the zone stays: {first:?}"
    );
    harness.cloud.clear_failures();
    let first_calls = harness.cloud.calls().len();

    let second = harness.apply(options(8, true)).await;
    assert_eq!(
        second.outcome(),
        Outcome::Applied,
        "the resumed run completes: {second:?}"
    );
    let calls = harness.cloud.calls();
    let tokens_of = |calls: &[support::Call], address: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.kind == CallKind::Apply && c.address.as_str() == address)
            .map(|c| c.token.clone())
            .collect()
    };
    // The group was created, then undone by the partial rollback: its first token would
    // return the deleted group on AWS.
    let address = "security_group.endpoints";
    let before = tokens_of(&calls[..first_calls], address);
    let after = tokens_of(&calls[first_calls..], address);
    assert_eq!(before.len(), 1, "the first run creates the group once");
    assert_eq!(after.len(), 1, "the resumed run creates it again");
    assert_ne!(after, before, "the undone group gets a new token");
    assert!(
        tokens_of(&calls[first_calls..], "zone").is_empty(),
        "the zone, still in place, is not created again"
    );
}

#[tokio::test(start_paused = true)]
async fn apply_after_cut_off_rollback_is_rejected() {
    let harness = crashed_after_agents_endpoint("cut-rollback").await;
    let mut journal = harness
        .backend
        .journal(&harness.plan.stack_name, &harness.plan.id())
        .await
        .expect("the journal opens");
    // A rollback started undoing the zone and was killed before its outcome.
    journal
        .append(&Entry::UndoIntent {
            address: Address::from("zone"),
        })
        .await
        .expect("the journal is written");
    let before = harness.cloud.calls().len();

    let (_sender, cancel) = watch::channel(false);
    let provider = Arc::clone(&harness.cloud);
    let executor = Executor::new(provider, Arc::new(Quiet), options(8, true), cancel);
    let result = executor.apply(&harness.plan, journal.as_mut()).await;
    assert!(
        matches!(result, Err(ApplyError::RollbackUnfinished)),
        "the resume is rejected: {result:?}"
    );
    assert_eq!(
        harness.cloud.calls().len(),
        before,
        "nothing is called after a cut-off rollback"
    );

    let report = executor
        .roll_back_journal(&harness.plan, journal.as_mut())
        .await
        .expect("the rollback runs");
    assert!(
        report.completed.is_empty() && report.not_rolled_back.is_empty(),
        "the rollback finishes, the zone's undo repeated: {report:?}"
    );
    assert!(
        harness.cloud.object_addresses().is_empty(),
        "no object is left: {:?}",
        harness.cloud.object_addresses()
    );
}

#[tokio::test(start_paused = true)]
async fn timed_out_create_not_found_is_not_rolled_back() {
    let harness = Harness::new("timed-out-create", support::HUB_CONFIG);
    stagger(&harness.cloud);
    let timeout = support::provider_error(ErrorKind::Timeout, "CreateHostedZone", "timed out");
    harness
        .cloud
        .fail_at("zone", FailureTiming::Before, timeout);
    let report = harness.apply(options(8, true)).await;

    let left: Vec<&Address> = report.not_rolled_back.iter().map(|(a, _)| a).collect();
    assert_eq!(
        left,
        [&Address::from("zone")],
        "the zone's create may still take effect: {report:?}"
    );
    assert!(
        report.not_rolled_back[0].1.contains("may still appear"),
        "{}",
        report.not_rolled_back[0].1
    );
    assert_eq!(
        report.outcome(),
        Outcome::Failed,
        "the stack is not known to be as before"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_candidates_skip_deletes() {
    let harness = crashed_after_agents_endpoint("candidates").await;
    let candidates = rollback_candidates(&harness.entries().await);
    assert_eq!(
        candidates.first(),
        Some(&Address::from("endpoint.agents")),
        "the create whose outcome is missing comes first: {candidates:?}"
    );
    assert!(
        candidates.contains(&Address::from("zone")),
        "completed steps follow: {candidates:?}"
    );

    let stack = support::stack_from(support::HUB_CONFIG);
    let mut applied = support::empty_hub(&stack);
    let fresh = support::plan_for(&stack, &applied, Mode::Apply);
    support::applied::apply_steps(&mut applied, &fresh.steps);
    let destroy = Harness::with_observed("candidates-destroy", stack, applied, Mode::Destroy);
    let report = destroy.apply(options(8, true)).await;
    assert!(
        report.completed.len() > 5,
        "the destroy deleted the stack: {report:?}"
    );
    assert!(
        rollback_candidates(&destroy.entries().await).is_empty(),
        "a destroy's deletes cannot be undone"
    );
}

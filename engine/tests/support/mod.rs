//! Test support for the engine: [`FakeCloud`], an in-memory [`Provider`], and builders of
//! configs, observed state and plans.
//!
//! Each test file that declares `mod support;` uses only part of this module.
#![allow(dead_code)]

pub mod applied;
pub mod synthetic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use linkplan_engine::config;
use linkplan_engine::graph;
use linkplan_engine::journal::Entry;
use linkplan_engine::observed::{
    DnsEntry, EndpointState, HostedZoneState, Identity, Observed, PeeringState, RecordState,
    RouteState, RouteTableState, ServiceLookup, ServiceState, SubnetState, VpcState,
};
use linkplan_engine::plan_file::{Plan, PlanOrigin};
use linkplan_engine::planner::{self, Mode};
use linkplan_engine::provider::{ErrorKind, Outputs, Provider, ProviderError, StepRequest};
use linkplan_engine::resource::{Address, Resource, TAG_ADDRESS, TAG_STACK, Tags, outputs};
use linkplan_engine::stack::{Context, Stack};
use linkplan_engine::step::{Action, Step};
use linkplan_engine::verify::NetworkInterfaceState;
use tokio::sync::watch;

/// The hub's account in every fixture.
pub const HUB_ACCOUNT: &str = "111111111111";
/// The account of a spoke VPC owned by someone else.
pub const OTHER_ACCOUNT: &str = "222222222222";
/// The hosted zone id AWS reports in the DNS entries of interface endpoints in us-east-1.
pub const ENDPOINT_ZONE_ID: &str = "Z7HUB22UULQXV";
pub const HUB_VPC: &str = "vpc-0000aaaa";
pub const SPOKE_VPC: &str = "vpc-0000bbbb";

/// A config with the hub only: two subnets and the four default Workload Security services.
pub const HUB_CONFIG: &str = r#"
name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0000aaaa"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
"#;

/// A config with one endpoint service, for tests that need few steps.
pub const ONE_SERVICE_CONFIG: &str = r#"
name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0000aaaa"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[services]
agents = "com.amazonaws.vpce.us-east-1.vpce-svc-0000000a"
"#;

/// Parses config `text` into a stack, panicking with every diagnostic when it is invalid.
pub fn stack_from(text: &str) -> Stack {
    match config::parse("linkplan.toml", text) {
        Ok(loaded) => loaded.stack,
        Err(diagnostics) => panic!("the test config is invalid:\n{diagnostics}"),
    }
}

/// Returns the live state of a hub that has nothing of the stack yet. The hub VPC has DNS on
/// and 10.0.0.0/16, and the config's subnets are in zones `use1-az1`, `use1-az2`, and so on.
/// Every service of the stack is offered in `use1-az1`, `use1-az2` and `use1-az4`, without a
/// private DNS name.
pub fn empty_hub(stack: &Stack) -> Observed {
    let mut observed = Observed::default();
    observed
        .identities
        .push((stack.hub_context(), identity(HUB_ACCOUNT)));
    observed.vpcs.insert(
        stack.hub.vpc_id.clone(),
        Some(vpc(
            &stack.hub.vpc_id,
            &stack.hub.region,
            HUB_ACCOUNT,
            &["10.0.0.0/16"],
        )),
    );
    let zone_names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];
    for (index, subnet_id) in stack.hub.subnet_ids.iter().enumerate() {
        let subnet = SubnetState {
            subnet_id: subnet_id.clone(),
            vpc_id: stack.hub.vpc_id.clone(),
            availability_zone: zone_names[index % zone_names.len()].to_string(),
            availability_zone_id: format!("use1-az{}", index % zone_names.len() + 1),
            cidr: format!("10.0.{index}.0/24"),
        };
        observed.subnets.insert(subnet_id.clone(), Some(subnet));
    }
    let zone_ids = zone_names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.to_string(), format!("use1-az{}", index + 1)))
        .collect();
    observed.zone_ids.insert(stack.hub.region.clone(), zone_ids);
    for service in &stack.services {
        let state = ServiceState {
            service_name: service.service_name.clone(),
            availability_zone_ids: strings(&["use1-az1", "use1-az2", "use1-az4"]),
            acceptance_required: false,
            private_dns_name: None,
        };
        observed
            .services
            .insert(service.service_name.clone(), ServiceLookup::Found(state));
    }
    observed
}

pub fn identity(account_id: &str) -> Identity {
    Identity {
        account_id: account_id.to_string(),
        arn: format!("arn:aws:iam::{account_id}:user/test"),
    }
}

/// Returns a VPC with DNS support and DNS hostnames on.
pub fn vpc(vpc_id: &str, region: &str, owner_id: &str, cidrs: &[&str]) -> VpcState {
    VpcState {
        vpc_id: vpc_id.to_string(),
        region: region.to_string(),
        owner_id: owner_id.to_string(),
        cidrs: cidrs
            .iter()
            .map(|c| c.parse().expect("a valid CIDR"))
            .collect(),
        dns_support: true,
        dns_hostnames: true,
        amazon_dns: Some(true),
        internet_route: Some(true),
    }
}

/// Returns the tags linkplan puts on the object at `address` of stack `stack`.
pub fn stack_tags(stack: &str, address: &str) -> Tags {
    Tags::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ADDRESS.to_string(), address.to_string()),
        ("Name".to_string(), format!("{stack}-{address}")),
    ])
}

/// Returns the regional DNS entry of endpoint `endpoint_id` for service `service_name`.
pub fn regional_entry(endpoint_id: &str, service_name: &str) -> DnsEntry {
    let service_id = service_name.rsplit('.').next().unwrap_or_default();
    DnsEntry {
        dns_name: format!("{endpoint_id}-1x2y3z4w.{service_id}.us-east-1.vpce.amazonaws.com"),
        hosted_zone_id: ENDPOINT_ZONE_ID.to_string(),
    }
}

/// Returns the zonal DNS entry of endpoint `endpoint_id` in availability zone `zone`.
pub fn zonal_entry(endpoint_id: &str, service_name: &str, zone: &str) -> DnsEntry {
    let service_id = service_name.rsplit('.').next().unwrap_or_default();
    DnsEntry {
        dns_name: format!(
            "{endpoint_id}-1x2y3z4w-{zone}.{service_id}.us-east-1.vpce.amazonaws.com"
        ),
        hosted_zone_id: ENDPOINT_ZONE_ID.to_string(),
    }
}

/// Returns an `available` endpoint of stack `stack` at `endpoint.<host>`, with the stack's
/// subnets and `groups`, private DNS off, and its regional DNS entry.
pub fn live_endpoint(
    stack: &Stack,
    host: &str,
    endpoint_id: &str,
    groups: &[&str],
) -> EndpointState {
    let service = stack
        .services
        .iter()
        .find(|s| s.host == host)
        .unwrap_or_else(|| panic!("the stack has no service `{host}`"));
    EndpointState {
        endpoint_id: endpoint_id.to_string(),
        vpc_id: stack.hub.vpc_id.clone(),
        service_name: service.service_name.clone(),
        state: "available".to_string(),
        subnet_ids: stack.hub.subnet_ids.clone(),
        security_group_ids: strings(groups),
        private_dns_enabled: Some(false),
        dns_entries: vec![regional_entry(endpoint_id, &service.service_name)],
        network_interface_ids: Vec::new(),
        tags: stack_tags(&stack.name, &format!("endpoint.{host}")),
        last_error: None,
    }
}

/// Returns a private zone named `name` associated with `vpcs`, as (VPC id, region).
pub fn private_zone(
    zone_id: &str,
    name: &str,
    tags: Tags,
    vpcs: &[(&str, &str)],
) -> HostedZoneState {
    HostedZoneState {
        zone_id: zone_id.to_string(),
        name: name.to_string(),
        private: true,
        comment: String::new(),
        tags,
        vpcs: vpcs
            .iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect(),
    }
}

/// Returns an `A` alias record at `name` pointing at `dns_name` in hosted zone `zone_id`.
pub fn alias_record(name: &str, dns_name: &str, zone_id: &str) -> RecordState {
    RecordState {
        name: name.to_string(),
        record_type: "A".to_string(),
        alias: Some(linkplan_engine::observed::AliasTargetState {
            dns_name: dns_name.to_string(),
            hosted_zone_id: zone_id.to_string(),
            evaluate_target_health: false,
        }),
        values: Vec::new(),
        ttl: None,
        set_identifier: None,
    }
}

/// Returns a peering between the hub and spoke VPCs with status `status`.
pub fn peering(peering_id: &str, spoke_region: &str, status: &str, tags: Tags) -> PeeringState {
    PeeringState {
        peering_id: peering_id.to_string(),
        requester_vpc_id: HUB_VPC.to_string(),
        requester_region: "us-east-1".to_string(),
        requester_owner_id: HUB_ACCOUNT.to_string(),
        accepter_vpc_id: SPOKE_VPC.to_string(),
        accepter_region: spoke_region.to_string(),
        accepter_owner_id: HUB_ACCOUNT.to_string(),
        status: status.to_string(),
        status_message: None,
        tags,
    }
}

/// Returns route table `table_id` of `vpc_id` with the given (destination, target) routes.
pub fn route_table(table_id: &str, vpc_id: &str, routes: &[(&str, &str)]) -> RouteTableState {
    RouteTableState {
        route_table_id: table_id.to_string(),
        vpc_id: vpc_id.to_string(),
        routes: routes
            .iter()
            .map(|(destination, target)| RouteState {
                destination_cidr: destination.to_string(),
                target: target.to_string(),
                state: "active".to_string(),
            })
            .collect(),
    }
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// Plans `stack` against `observed` and returns the steps in execution order, panicking with
/// the diagnostics when the planner reports errors.
pub fn ordered_steps(stack: &Stack, observed: &Observed, mode: Mode) -> Vec<Step> {
    let planned = match planner::plan(stack, observed, mode) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning failed:\n{errors}"),
    };
    order_steps(&planned.steps)
}

/// Returns `steps` in the order [`graph::order_steps`] gives.
pub fn order_steps(steps: &[Step]) -> Vec<Step> {
    graph::order_steps(steps.to_vec()).expect("the steps form a graph without cycles")
}

/// Builds the plan file contents for `stack` and `observed` the way `linkplan plan` does.
pub fn plan_for(stack: &Stack, observed: &Observed, mode: Mode) -> Plan {
    let planned = match planner::plan(stack, observed, mode) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning failed:\n{errors}"),
    };
    let warnings = planned
        .warnings
        .0
        .iter()
        .map(|w| w.summary.clone())
        .collect();
    let origin = PlanOrigin {
        config_digest: "sha256:0000".to_string(),
        ..PlanOrigin::default()
    };
    Plan::new(stack, observed, planned, mode, warnings, origin).expect("the steps can be ordered")
}

/// Returns a new, empty folder under the system's temporary folder, unique to this process
/// and call.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join("linkplan-engine-tests")
        .join(format!("{name}-{}-{serial}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temporary folder can be created");
    dir
}

/// Returns an error as a provider would report it for a call of operation `operation`.
pub fn provider_error(kind: ErrorKind, operation: &str, message: &str) -> ProviderError {
    ProviderError::new(kind, "ec2", operation, "us-east-1", message)
}

/// The kind of a call the fake recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `apply` was called.
    Apply,
    /// `apply` returned `Ok`.
    Applied,
    /// `apply` returned `Err`.
    ApplyFailed,
    Undo,
    FindCreated,
}

/// One call into the fake, or the return of an `apply` call.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub address: Address,
    pub token: String,
    /// Whether the request marked the step as repeated, so that its object may exist.
    pub earlier_attempt: bool,
    /// The step as the provider received it, references resolved.
    pub step: Step,
    /// The outputs `undo` was given, empty for the other kinds.
    pub undo_outputs: Outputs,
    /// Whether the journal contained the call's intent when the call began (see
    /// [`FakeCloud::check_journal`]); `None` unless that was called.
    pub intent_journaled: Option<bool>,
}

/// When a planned failure of an `apply` call happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureTiming {
    /// The call fails before anything is made.
    Before,
    /// The object is made, then the call fails, like an endpoint that never becomes available.
    AfterCreate,
}

#[derive(Debug, Clone)]
enum Trigger {
    /// The Nth `apply` call, counting from 1.
    NthApply(usize),
    Address(Address),
}

#[derive(Debug, Clone)]
struct PlannedFailure {
    trigger: Trigger,
    timing: FailureTiming,
    error: ProviderError,
}

/// An object the fake made, with the token of the call that made it.
#[derive(Debug, Clone)]
struct CloudObject {
    token: String,
    outputs: Outputs,
}

#[derive(Default)]
struct CloudState {
    next_id: u64,
    objects: BTreeMap<Address, CloudObject>,
    calls: Vec<Call>,
    apply_calls: usize,
    in_flight: usize,
    max_in_flight: usize,
    failures: Vec<PlannedFailure>,
    undo_failures: BTreeMap<Address, ProviderError>,
    delays: BTreeMap<Address, Duration>,
    waits: BTreeMap<Address, Duration>,
    without_dns: BTreeSet<Address>,
    cancel_on_start: Option<(Address, watch::Sender<bool>)>,
    journal: Option<PathBuf>,
    network_interfaces: BTreeMap<String, NetworkInterfaceState>,
}

/// An in-memory provider.
///
/// `apply` makes objects keyed by step address with generated ids (`vpce-0000000000000001`,
/// `sg-0000000000000002`, ...) and returns the outputs the planner's references need (`id`,
/// plus `dns_name` and `dns_zone_id` for endpoints). A create repeated with the token that
/// made the object returns that object, as an idempotent AWS create does. Every call is
/// recorded in order, with the step as received.
///
/// Each `apply` sleeps (10 ms unless set per address) while it counts as in flight, so tests
/// can check the parallelism bound. Tests run it on tokio's paused clock, which makes the
/// sleeps instant and their order exact.
///
/// `read` returns the base observed state given to [`FakeCloud::new`], unchanged.
pub struct FakeCloud {
    base: Observed,
    default_delay: Duration,
    state: Mutex<CloudState>,
}

impl FakeCloud {
    pub fn new(base: Observed) -> Self {
        FakeCloud {
            base,
            default_delay: Duration::from_millis(10),
            state: Mutex::new(CloudState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state
            .lock()
            .expect("the fake's state is never poisoned")
    }

    /// Adds network interface `id` with `addresses`, for `read_network_interfaces`.
    pub fn add_network_interface(&self, id: &str, addresses: &[std::net::Ipv4Addr]) {
        let interface = NetworkInterfaceState {
            interface_id: id.to_string(),
            private_ipv4: addresses.to_vec(),
        };
        self.state()
            .network_interfaces
            .insert(id.to_string(), interface);
    }

    /// Makes the `n`th `apply` call, counting from 1, fail with `error` before making anything.
    pub fn fail_nth_apply(&self, n: usize, error: ProviderError) {
        let trigger = Trigger::NthApply(n);
        let failure = PlannedFailure {
            trigger,
            timing: FailureTiming::Before,
            error,
        };
        self.state().failures.push(failure);
    }

    /// Makes every `apply` of the step at `address` fail with `error`, at `timing`.
    pub fn fail_at(&self, address: &str, timing: FailureTiming, error: ProviderError) {
        let trigger = Trigger::Address(Address::from(address));
        self.state().failures.push(PlannedFailure {
            trigger,
            timing,
            error,
        });
    }

    /// Removes every planned `apply` failure.
    pub fn clear_failures(&self) {
        self.state().failures.clear();
    }

    /// Makes every `undo` of the step at `address` fail with `error`.
    pub fn fail_undo(&self, address: &str, error: ProviderError) {
        self.state()
            .undo_failures
            .insert(Address::from(address), error);
    }

    /// Sets how long `apply` of the step at `address` takes.
    pub fn set_delay(&self, address: &str, delay: Duration) {
        self.state().delays.insert(Address::from(address), delay);
    }

    /// Makes `apply` of the step at `address` wait for its object for `wait` after its call,
    /// pausing through the request's progress as a provider's poll does. A pausing step does
    /// not count as in flight.
    pub fn set_wait(&self, address: &str, wait: Duration) {
        self.state().waits.insert(Address::from(address), wait);
    }

    /// Makes the endpoint created at `address` report no DNS entries: its outputs have `id`
    /// only.
    pub fn omit_dns_entries(&self, address: &str) {
        self.state().without_dns.insert(Address::from(address));
    }

    /// Sends `true` on `sender` when `apply` of the step at `address` starts.
    pub fn cancel_when_started(&self, address: &str, sender: watch::Sender<bool>) {
        self.state().cancel_on_start = Some((Address::from(address), sender));
    }

    /// Makes every later call check that the journal at `path` already contains its intent: an
    /// `intent` entry with the call's address and token, or an `undo_intent` before an undo.
    /// The result is recorded in [`Call::intent_journaled`].
    pub fn check_journal(&self, path: &Path) {
        self.state().journal = Some(path.to_path_buf());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Returns the addresses of the calls of `kind`, in call order.
    pub fn addresses(&self, kind: CallKind) -> Vec<Address> {
        let state = self.state();
        state
            .calls
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.address.clone())
            .collect()
    }

    /// Returns the step the last `apply` call at `address` received.
    pub fn applied_step(&self, address: &str) -> Option<Step> {
        let state = self.state();
        let mut calls = state.calls.iter().rev();
        calls
            .find(|c| c.kind == CallKind::Apply && c.address.as_str() == address)
            .map(|c| c.step.clone())
    }

    /// Returns the maximum number of `apply` calls in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// Returns the outputs of the object the fake keeps at `address`.
    pub fn object(&self, address: &str) -> Option<Outputs> {
        self.state()
            .objects
            .get(&Address::from(address))
            .map(|o| o.outputs.clone())
    }

    /// Returns the addresses of the objects the fake keeps, sorted.
    pub fn object_addresses(&self) -> Vec<Address> {
        self.state().objects.keys().cloned().collect()
    }

    fn record(&self, kind: CallKind, request: &StepRequest<'_>, undo_outputs: Outputs) {
        let mut state = self.state();
        let intent_journaled = state
            .journal
            .as_deref()
            .map(|path| journal_has_intent(path, kind, &request.step.address, request.token));
        state.calls.push(Call {
            kind,
            address: request.step.address.clone(),
            token: request.token.to_string(),
            earlier_attempt: request.earlier_attempt,
            step: request.step.clone(),
            undo_outputs,
            intent_journaled,
        });
    }

    /// Returns the failure planned for the `apply` call that is number `call` at `address`.
    fn planned_failure(
        state: &CloudState,
        call: usize,
        address: &Address,
    ) -> Option<PlannedFailure> {
        state
            .failures
            .iter()
            .find(|f| match &f.trigger {
                Trigger::NthApply(n) => *n == call,
                Trigger::Address(a) => a == address,
            })
            .cloned()
    }

    /// Makes or finds the object of a create step and returns its outputs.
    fn create(state: &mut CloudState, step: &Step, token: &str) -> Outputs {
        if let Some(existing) = state.objects.get(&step.address)
            && existing.token == token
        {
            return existing.outputs.clone();
        }
        state.next_id += 1;
        let serial = state.next_id;
        let omit_dns = state.without_dns.contains(&step.address);
        let outputs = outputs_of(step, serial, omit_dns);
        let object = CloudObject {
            token: token.to_string(),
            outputs: outputs.clone(),
        };
        state.objects.insert(step.address.clone(), object);
        outputs
    }
}

/// Returns the outputs of a new object for `step`, its id made from `serial`.
fn outputs_of(step: &Step, serial: u64, omit_dns: bool) -> Outputs {
    let mut found = Outputs::new();
    let mut id = |prefix: &str| {
        let id = format!("{prefix}-{serial:016x}");
        found.insert(outputs::ID.to_string(), id.clone());
        id
    };
    match step.resource() {
        Resource::Endpoint(endpoint) => {
            let endpoint_id = id("vpce");
            if !omit_dns {
                let entry = regional_entry(&endpoint_id, &endpoint.service_name);
                found.insert(outputs::DNS_NAME.to_string(), entry.dns_name);
                found.insert(outputs::DNS_ZONE_ID.to_string(), entry.hosted_zone_id);
            }
        }
        Resource::SecurityGroup(_) => {
            id("sg");
        }
        Resource::IngressRule(_) => {
            id("sgr");
        }
        Resource::PeeringConnection(_) => {
            id("pcx");
        }
        Resource::HostedZone(_) => {
            let zone_id = step.id.clone().unwrap_or_else(|| format!("Z{serial:016}"));
            found.insert(outputs::ID.to_string(), zone_id);
        }
        Resource::PeeringAcceptance(acceptance) => {
            let peering_id = acceptance.peering_id.as_known().unwrap_or_default();
            found.insert(outputs::ID.to_string(), peering_id.to_string());
        }
        Resource::VpcAttribute(_)
        | Resource::AliasRecords(_)
        | Resource::Route(_)
        | Resource::ZoneAssociation(_)
        | Resource::AssociationAuthorization(_) => {}
    }
    found
}

/// Reports whether the journal at `path` contains the intent a call of `kind` needs first: an
/// `undo_intent` for `address` before an undo, an `intent` with `token` before the others.
fn journal_has_intent(path: &Path, kind: CallKind, address: &Address, token: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut entries = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Entry>(line).ok());
    entries.any(|entry| match (kind, entry) {
        (CallKind::Undo, Entry::UndoIntent { address: a }) => a == *address,
        (CallKind::Undo, _) => false,
        (
            _,
            Entry::Intent {
                address: a,
                token: t,
                ..
            },
        ) => a == *address && t == token,
        _ => false,
    })
}

/// Returns an error for a step that reached the provider with an unresolved reference.
fn unresolved_error(step: &Step) -> Option<ProviderError> {
    let resources = [step.before.as_ref(), step.after.as_ref()];
    let unresolved = resources
        .into_iter()
        .flatten()
        .any(|r| !r.references().is_empty());
    let message = format!(
        "step {} reached the provider with an unresolved reference",
        step.address
    );
    unresolved.then(|| provider_error(ErrorKind::InvalidRequest, "apply", &message))
}

#[async_trait]
impl Provider for FakeCloud {
    async fn read(&self, _stack: &Stack) -> Result<Observed, ProviderError> {
        Ok(self.base.clone())
    }

    async fn apply(&self, request: &StepRequest<'_>) -> Result<Outputs, ProviderError> {
        let step = request.step;
        self.record(CallKind::Apply, request, Outputs::new());
        let (delay, failure) = {
            let mut state = self.state();
            state.apply_calls += 1;
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
            if let Some((address, sender)) = &state.cancel_on_start
                && *address == step.address
            {
                let _ = sender.send(true);
            }
            let delay = state
                .delays
                .get(&step.address)
                .copied()
                .unwrap_or(self.default_delay);
            (
                delay,
                Self::planned_failure(&state, state.apply_calls, &step.address),
            )
        };

        tokio::time::sleep(delay).await;
        let wait = self.state().waits.get(&step.address).copied();
        if let Some(wait) = wait {
            self.state().in_flight -= 1;
            request.progress.pause(wait).await;
            let mut state = self.state();
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
        }

        let result = {
            let mut state = self.state();
            state.in_flight -= 1;
            let creates = matches!(
                step.action,
                Action::Create | Action::Replace | Action::Adopt
            );
            match (failure, unresolved_error(step)) {
                (_, Some(error)) => Err(error),
                (Some(failure), None) => {
                    if failure.timing == FailureTiming::AfterCreate && creates {
                        Self::create(&mut state, step, request.token);
                    }
                    Err(failure.error)
                }
                (None, None) if creates => Ok(Self::create(&mut state, step, request.token)),
                (None, None) if step.action == Action::Delete => {
                    state.objects.remove(&step.address);
                    Ok(Outputs::new())
                }
                (None, None) => {
                    let id = step
                        .id
                        .iter()
                        .map(|id| (outputs::ID.to_string(), id.clone()));
                    Ok(id.collect())
                }
            }
        };
        let kind = if result.is_ok() {
            CallKind::Applied
        } else {
            CallKind::ApplyFailed
        };
        self.record(kind, request, Outputs::new());
        result
    }

    async fn undo(
        &self,
        request: &StepRequest<'_>,
        outputs: &Outputs,
    ) -> Result<(), ProviderError> {
        self.record(CallKind::Undo, request, outputs.clone());
        let mut state = self.state();
        if let Some(error) = state.undo_failures.get(&request.step.address) {
            return Err(error.clone());
        }
        if matches!(request.step.action, Action::Create | Action::Replace) {
            state.objects.remove(&request.step.address);
        }
        Ok(())
    }

    async fn find_created(
        &self,
        request: &StepRequest<'_>,
    ) -> Result<Option<Outputs>, ProviderError> {
        self.record(CallKind::FindCreated, request, Outputs::new());
        let state = self.state();
        let found = state
            .objects
            .get(&request.step.address)
            .filter(|o| o.token == request.token);
        Ok(found.map(|o| o.outputs.clone()))
    }

    async fn read_network_interfaces(
        &self,
        _context: &Context,
        ids: &[String],
    ) -> Result<Vec<NetworkInterfaceState>, ProviderError> {
        let state = self.state();
        let found = ids.iter().filter_map(|id| state.network_interfaces.get(id));
        Ok(found.cloned().collect())
    }

    fn endpoint_url(&self) -> Option<String> {
        None
    }
}

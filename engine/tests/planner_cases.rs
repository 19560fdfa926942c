//! Planner and check tests over hand-built observed state, for failure cases that tools doing
//! this job have hit: each test states the expected plan or diagnostic.

mod support;

use linkplan_engine::checks;
use linkplan_engine::diagnostics::Diagnostics;
use linkplan_engine::graph;
use linkplan_engine::observed::{
    IngressPermission, Observed, RecordState, SecurityGroupState, ServiceLookup, ServiceState,
    SubnetState,
};
use linkplan_engine::planner::{self, Mode, Planned};
use linkplan_engine::resource::{
    Address, AliasRecord, AliasRecords, Endpoint, Resource, Value, VpcAttribute, VpcDnsAttribute,
};
use linkplan_engine::stack::{Context, Stack};
use linkplan_engine::step::{Action, Step};

use support::{ENDPOINT_ZONE_ID, HUB_ACCOUNT, HUB_VPC, OTHER_ACCOUNT, SPOKE_VPC};

const ZONE_NAME: &str = "deepsecurity.trendmicro.com";
/// The id of the stack's own private zone in the converged fixtures.
const ZONE_ID: &str = "ZPHZ0000000001";
/// The id of the group linkplan manages in the converged fixtures.
const GROUP_ID: &str = "sg-0000000e";
const AGENTS_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-0000000a";
const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-0000000b";

/// A config with two services and two hub subnets. `{hub}` is replaced by extra `[hub]` keys.
const TWO_SERVICES: &str = r#"
name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0000aaaa"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
{hub}

[services]
agents = "com.amazonaws.vpce.us-east-1.vpce-svc-0000000a"
relay = "com.amazonaws.vpce.us-east-1.vpce-svc-0000000b"
"#;

/// A spoke in eu-west-1 with one route table. `{spoke}` is replaced by extra `[[spoke]]` keys.
const SPOKE: &str = r#"
[[spoke]]
name = "eu"
region = "eu-west-1"
vpc_id = "vpc-0000bbbb"
route_table_ids = ["rtb-0000000b"]
{spoke}
"#;

fn two_services(hub: &str) -> Stack {
    support::stack_from(&TWO_SERVICES.replace("{hub}", hub))
}

/// Returns the one-service config with hub route table `rtb-0000000a`.
fn hub_with_route_table() -> String {
    support::ONE_SERVICE_CONFIG.replace(
        "subnet_ids = [",
        "route_table_ids = [\"rtb-0000000a\"]\nsubnet_ids = [",
    )
}

/// Returns the one-service stack with a spoke in eu-west-1 and a hub route table.
fn with_spoke(spoke: &str) -> Stack {
    let hub = hub_with_route_table();
    support::stack_from(&format!("{hub}{}", SPOKE.replace("{spoke}", spoke)))
}

fn record_name(host: &str) -> String {
    format!("{host}.{ZONE_NAME}")
}

fn endpoint_id(index: usize) -> String {
    format!("vpce-{:08x}", index + 1)
}

/// Returns the live state of a stack that was applied and has not changed since: the group
/// (managed, or the config's), an endpoint per service, the tagged zone and its records.
fn converged(stack: &Stack) -> Observed {
    let mut observed = support::empty_hub(stack);
    let ingress = vec![IngressPermission {
        protocol: "tcp".to_string(),
        from_port: Some(443),
        to_port: Some(443),
        source: "10.0.0.0/16".to_string(),
    }];
    let groups: Vec<String> = if stack.hub.manages_security_group() {
        let address = "security_group.endpoints";
        observed.security_groups.push(SecurityGroupState {
            group_id: GROUP_ID.to_string(),
            group_name: planner::security_group_name(&stack.name),
            description: String::new(),
            vpc_id: HUB_VPC.to_string(),
            tags: support::stack_tags(&stack.name, address),
            ingress,
        });
        vec![GROUP_ID.to_string()]
    } else {
        for group_id in &stack.hub.security_group_ids {
            observed.security_groups.push(SecurityGroupState {
                group_id: group_id.clone(),
                group_name: group_id.clone(),
                description: String::new(),
                vpc_id: HUB_VPC.to_string(),
                tags: Default::default(),
                ingress: ingress.clone(),
            });
        }
        stack.hub.security_group_ids.clone()
    };
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();

    let mut records = Vec::new();
    for (index, service) in stack.services.iter().enumerate() {
        let id = endpoint_id(index);
        let endpoint = support::live_endpoint(stack, &service.host, &id, &groups);
        let target = support::regional_entry(&id, &service.service_name).dns_name;
        records.push(support::alias_record(
            &record_name(&service.host),
            &target,
            ENDPOINT_ZONE_ID,
        ));
        observed.endpoints.push(endpoint);
    }
    let tags = support::stack_tags(&stack.name, "zone");
    let zone = support::private_zone(ZONE_ID, ZONE_NAME, tags, &[(HUB_VPC, "us-east-1")]);
    observed.hosted_zones.push(zone);
    observed.records.insert(ZONE_ID.to_string(), records);
    observed
}

/// Adds the spoke VPC, 10.9.0.0/16 owned by `owner`, and both route tables without routes.
fn add_spoke(observed: &mut Observed, owner: &str) {
    let vpc = support::vpc(SPOKE_VPC, "eu-west-1", owner, &["10.9.0.0/16"]);
    observed.vpcs.insert(SPOKE_VPC.to_string(), Some(vpc));
    let hub_table = support::route_table("rtb-0000000a", HUB_VPC, &[("10.0.0.0/16", "local")]);
    let spoke_table = support::route_table("rtb-0000000b", SPOKE_VPC, &[("10.9.0.0/16", "local")]);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(hub_table));
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), Some(spoke_table));
}

fn plan(stack: &Stack, observed: &Observed) -> Planned {
    match planner::plan(stack, observed, Mode::Apply) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning failed:\n{errors}"),
    }
}

fn plan_errors(stack: &Stack, observed: &Observed) -> Diagnostics {
    match planner::plan(stack, observed, Mode::Apply) {
        Ok(planned) => panic!(
            "the plan should fail, but has steps {:?}",
            addresses(&planned.steps)
        ),
        Err(errors) => errors,
    }
}

fn summaries(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics.0.iter().map(|d| d.summary.clone()).collect()
}

fn error_summaries(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics.errors().map(|d| d.summary.clone()).collect()
}

fn addresses(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.address.to_string()).collect()
}

fn step<'a>(steps: &'a [Step], address: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.address.as_str() == address)
        .unwrap_or_else(|| panic!("no step `{address}` among {:?}", addresses(steps)))
}

fn endpoint_after(steps: &[Step], address: &str) -> Endpoint {
    match &step(steps, address).after {
        Some(Resource::Endpoint(endpoint)) => endpoint.clone(),
        other => panic!("{address} creates or changes an endpoint: {other:?}"),
    }
}

fn records_of(resource: Option<&Resource>) -> AliasRecords {
    match resource {
        Some(Resource::AliasRecords(records)) => records.clone(),
        other => panic!("expected alias records, found {other:?}"),
    }
}

/// Returns the position of each of `names` in the execution order of `steps`.
fn positions(steps: &[Step], names: &[&str]) -> Vec<usize> {
    let order = addresses(&support::order_steps(steps));
    names
        .iter()
        .map(|name| {
            order
                .iter()
                .position(|a| a == name)
                .unwrap_or_else(|| panic!("no step `{name}` in {order:?}"))
        })
        .collect()
}

fn set_service(
    observed: &mut Observed,
    service_name: &str,
    zones: &[&str],
    private_dns: Option<&str>,
) {
    let state = ServiceState {
        service_name: service_name.to_string(),
        availability_zone_ids: support::strings(zones),
        acceptance_required: false,
        private_dns_name: private_dns.map(str::to_string),
    };
    observed
        .services
        .insert(service_name.to_string(), ServiceLookup::Found(state));
}

fn add_subnet(observed: &mut Observed, subnet_id: &str, zone_name: &str, zone_id: &str) {
    let subnet = SubnetState {
        subnet_id: subnet_id.to_string(),
        vpc_id: HUB_VPC.to_string(),
        availability_zone: zone_name.to_string(),
        availability_zone_id: zone_id.to_string(),
        cidr: "10.0.9.0/24".to_string(),
    };
    observed.subnets.insert(subnet_id.to_string(), Some(subnet));
}

// Private DNS.

#[test]
fn endpoints_leave_private_dns_off() {
    let stack = support::stack_from(support::HUB_CONFIG);
    let planned = plan(&stack, &support::empty_hub(&stack));
    for host in ["agents", "app", "dsmim", "relay"] {
        let endpoint = endpoint_after(&planned.steps, &format!("endpoint.{host}"));
        assert!(
            !endpoint.private_dns_enabled,
            "endpoint.{host} is planned with private DNS off"
        );
    }
}

#[test]
fn requested_private_dns_is_planned_on() {
    let text = support::ONE_SERVICE_CONFIG.replace(
        "agents = \"com.amazonaws.vpce.us-east-1.vpce-svc-0000000a\"",
        "agents = { service_name = \"com.amazonaws.vpce.us-east-1.vpce-svc-0000000a\", \
         private_dns = true }",
    );
    let stack = support::stack_from(&text);
    let mut observed = support::empty_hub(&stack);
    let zones = ["use1-az1", "use1-az2"];
    set_service(
        &mut observed,
        AGENTS_SERVICE,
        &zones,
        Some("agents.example.com"),
    );

    assert!(
        !checks::check(&stack, &observed).has_errors(),
        "the service publishes a name"
    );
    let endpoint = endpoint_after(&plan(&stack, &observed).steps, "endpoint.agents");
    assert!(
        endpoint.private_dns_enabled,
        "the endpoint is planned with private DNS on"
    );
}

#[test]
fn private_dns_without_service_name_is_error() {
    let text = support::ONE_SERVICE_CONFIG.replace(
        "agents = \"com.amazonaws.vpce.us-east-1.vpce-svc-0000000a\"",
        "agents = { service_name = \"com.amazonaws.vpce.us-east-1.vpce-svc-0000000a\", \
         private_dns = true }",
    );
    let stack = support::stack_from(&text);
    let findings = checks::check(&stack, &support::empty_hub(&stack));

    let errors: Vec<_> = findings.errors().collect();
    assert_eq!(errors.len(), 1, "one error: {findings}");
    assert_eq!(
        errors[0].summary,
        "private DNS cannot be enabled for endpoint `agents`: service \
         `com.amazonaws.vpce.us-east-1.vpce-svc-0000000a` publishes no private DNS name",
        "the summary names the endpoint and the service"
    );
    assert_eq!(
        errors[0].detail.as_deref(),
        Some(
            "the names are published through the private zone deepsecurity.trendmicro.com \
             that linkplan manages"
        ),
        "the detail says where the names come from"
    );
    assert_eq!(
        errors[0].help.as_deref(),
        Some("drop `private_dns` from [services.agents] or set it to false"),
        "the help says to drop the key or set it false"
    );
}

// Subnets in zones a service does not offer.

/// Returns a stack with subnets in use1-az1, use1-az2 and use1-az3, and `policy` set.
fn three_subnets(policy: &str) -> (Stack, Observed) {
    let hub = format!("subnet_policy = \"{policy}\"");
    let text = TWO_SERVICES.replace("{hub}", &hub).replace(
        "\"subnet-0000000b\"]",
        "\"subnet-0000000b\", \"subnet-0000000c\"]",
    );
    let stack = support::stack_from(&text);
    let mut observed = support::empty_hub(&stack);
    set_service(
        &mut observed,
        AGENTS_SERVICE,
        &["use1-az1", "use1-az2", "use1-az4"],
        None,
    );
    set_service(
        &mut observed,
        RELAY_SERVICE,
        &["use1-az1", "use1-az2", "use1-az3"],
        None,
    );
    (stack, observed)
}

#[test]
fn subnet_in_unoffered_zone_is_error() {
    let (stack, observed) = three_subnets("fail");
    let errors = plan_errors(&stack, &observed);

    assert_eq!(
        error_summaries(&errors),
        [format!(
            "subnet `subnet-0000000c` is in zone use1-az3 (us-east-1c), which endpoint service \
             `{AGENTS_SERVICE}` for `agents` does not offer"
        )],
        "one error, for the one endpoint whose service lacks the zone"
    );
    assert_eq!(
        errors.0[0].detail.as_deref(),
        Some("the service offers use1-az1, use1-az2, use1-az4"),
        "the detail lists the offered zones"
    );
}

#[test]
fn subnet_filter_drops_subnet_for_one_endpoint() {
    let (stack, observed) = three_subnets("filter");
    let planned = plan(&stack, &observed);

    let agents = endpoint_after(&planned.steps, "endpoint.agents");
    let relay = endpoint_after(&planned.steps, "endpoint.relay");
    assert_eq!(
        agents.subnet_ids,
        ["subnet-0000000a", "subnet-0000000b"],
        "the agents endpoint leaves out the subnet its service does not offer"
    );
    assert_eq!(
        relay.subnet_ids,
        ["subnet-0000000a", "subnet-0000000b", "subnet-0000000c"],
        "the relay endpoint, whose service offers every zone, keeps all subnets"
    );
    assert_eq!(
        summaries(&planned.warnings),
        [format!(
            "subnet `subnet-0000000c` is in zone use1-az3 (us-east-1c), which endpoint service \
             `{AGENTS_SERVICE}` for `agents` does not offer; it is left out of endpoint.agents"
        )],
        "one warning names the subnet and the endpoint"
    );
}

#[test]
fn subnet_zones_compare_ids_not_names() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = support::empty_hub(&stack);
    set_service(
        &mut observed,
        AGENTS_SERVICE,
        &["use1-az1", "use1-az2"],
        None,
    );
    // Zone names are mapped per account, so these names mean nothing against the service's ids.
    add_subnet(&mut observed, "subnet-0000000a", "us-east-1c", "use1-az1");
    add_subnet(&mut observed, "subnet-0000000b", "us-east-1a", "use1-az3");

    let errors = plan_errors(&stack, &observed);
    let summaries = error_summaries(&errors);
    assert_eq!(
        summaries.len(),
        1,
        "only one subnet is rejected: {summaries:?}"
    );
    assert!(
        summaries[0].starts_with("subnet `subnet-0000000b` is in zone use1-az3 (us-east-1a)"),
        "the subnet whose zone id is not offered is rejected, whatever its zone name: {}",
        summaries[0]
    );
}

// Security groups of existing endpoints.

#[test]
fn converged_stack_plans_nothing() {
    let stack = support::stack_from(support::HUB_CONFIG);
    let planned = plan(&stack, &converged(&stack));
    assert!(
        planned.steps.is_empty(),
        "no step: {:?}",
        addresses(&planned.steps)
    );
}

#[test]
fn applied_plan_of_many_spokes_plans_nothing() {
    let stack = support::stack_from(&support::synthetic::config_text(50));
    let mut observed = support::synthetic::observed_before_apply(&stack);
    let first = support::plan_for(&stack, &observed, Mode::Apply);
    assert!(first.steps.len() > 50 * 4, "a step per spoke object");

    support::applied::apply_steps(&mut observed, &first.steps);
    let findings = checks::check(&stack, &observed);
    assert!(!findings.has_errors(), "checks: {findings}");
    let again = plan(&stack, &observed);
    assert!(
        again.steps.is_empty(),
        "no step: {:?}",
        addresses(&again.steps)
    );
    assert!(again.drift.is_empty(), "no drift: {:?}", again.drift);
    let objects = first.steps.len() + first.unchanged.len();
    assert_eq!(again.unchanged.len(), objects);
}

#[test]
fn endpoint_with_wanted_groups_plans_nothing() {
    let hub = "security_group_ids = [\"sg-0000000b\", \"sg-0000000a\"]";
    let stack = two_services(hub);
    let mut observed = converged(&stack);
    for endpoint in &mut observed.endpoints {
        endpoint.security_group_ids = support::strings(&["sg-0000000a", "sg-0000000b"]);
        endpoint.subnet_ids.reverse();
    }

    let planned = plan(&stack, &observed);
    assert!(
        planned.steps.is_empty(),
        "no step: {:?}",
        addresses(&planned.steps)
    );
    assert!(
        planned
            .unchanged
            .contains(&Address::from("endpoint.agents")),
        "the endpoint is reported unchanged"
    );
}

/// Returns the warnings about named groups that do not let a hub client in, for the
/// two-service stack with `hub` keys, converged, after `edit` changes its live state. Fails when
/// the check reports an error.
fn named_group_warnings(hub: &str, edit: impl FnOnce(&mut Observed)) -> Vec<String> {
    let stack = two_services(&format!("security_group_ids = [\"sg-0000000a\"]\n{hub}"));
    let mut observed = converged(&stack);
    edit(&mut observed);
    let findings = checks::check(&stack, &observed);
    assert!(!findings.has_errors(), "no errors: {findings}");
    findings
        .warnings()
        .map(|w| w.summary.clone())
        .filter(|summary| summary.contains("do not allow TCP"))
        .collect()
}

#[test]
fn named_group_covering_hub_passes() {
    let warnings = named_group_warnings("", |_| {});
    assert!(
        warnings.is_empty(),
        "the group allows 443 from the hub VPC: {warnings:?}"
    );
}

#[test]
fn named_group_missing_hub_rule_warns() {
    let warnings = named_group_warnings("", |observed| {
        observed.security_groups[0].ingress[0].from_port = Some(80);
        observed.security_groups[0].ingress[0].to_port = Some(80);
    });
    assert_eq!(
        warnings,
        [
            "the groups of `hub.security_group_ids` do not allow TCP 443 from 10.0.0.0/16 of the hub VPC"
        ],
        "a group that lets the hub in on port 80 only leaves the endpoints unreachable"
    );
}

#[test]
fn named_group_missing_client_cidr_warns() {
    let warnings = named_group_warnings(
        "client_cidrs = [\"10.0.1.0/24\", \"192.168.0.0/24\"]",
        |_| {},
    );
    assert_eq!(
        warnings,
        [
            "the groups of `hub.security_group_ids` do not allow TCP 443 from 192.168.0.0/24 of `hub.client_cidrs`"
        ],
        "10.0.1.0/24 is inside the allowed 10.0.0.0/16, and 192.168.0.0/24 is not"
    );
}

#[test]
fn named_group_missing_spoke_rule_is_error() {
    let text = format!(
        "{}{}",
        support::ONE_SERVICE_CONFIG.replace(
            "subnet_ids = [",
            "security_group_ids = [\"sg-0000000a\"]\nroute_table_ids = [\"rtb-0000000a\"]\nsubnet_ids = [",
        ),
        SPOKE.replace("{spoke}", "")
    );
    let stack = support::stack_from(&text);
    let mut observed = converged(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);

    let errors: Vec<String> = checks::check(&stack, &observed)
        .errors()
        .map(|e| e.summary.clone())
        .collect();
    assert!(
        errors.contains(
            &"the groups of `hub.security_group_ids` do not allow TCP 443 from 10.9.0.0/16 of spoke `eu`"
                .to_string()
        ),
        "the group lets only the hub in: {errors:?}"
    );
}

#[test]
fn group_change_is_one_update() {
    let hub = "security_group_ids = [\"sg-0000000a\", \"sg-0000000c\"]";
    let stack = two_services(hub);
    let mut observed = converged(&stack);
    for endpoint in &mut observed.endpoints {
        if endpoint
            .tags
            .get("linkplan:address")
            .is_some_and(|a| a == "endpoint.agents")
        {
            endpoint.security_group_ids = support::strings(&["sg-0000000a"]);
        }
    }

    let planned = plan(&stack, &observed);
    assert_eq!(addresses(&planned.steps), ["endpoint.agents"], "one step");
    let update = step(&planned.steps, "endpoint.agents");
    assert_eq!(update.action, Action::Update, "the groups change in place");
    assert_eq!(
        update.id.as_deref(),
        Some("vpce-00000001"),
        "the step changes the live endpoint"
    );
    let Some(Resource::Endpoint(before)) = &update.before else {
        panic!("the update has the endpoint as read: {update:?}");
    };
    assert_eq!(
        before.security_group_ids,
        [Value::known("sg-0000000a")],
        "before holds the live groups"
    );
    assert_eq!(
        endpoint_after(&planned.steps, "endpoint.agents").security_group_ids,
        [Value::known("sg-0000000a"), Value::known("sg-0000000c")],
        "after holds the configured groups"
    );
}

// Alias records.

#[test]
fn alias_targets_endpoint_dns_zone() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed.records.clear();
    // The relay endpoint does not exist yet, so its record refers to the step creating it.
    observed
        .endpoints
        .retain(|e| e.service_name == AGENTS_SERVICE);

    let planned = plan(&stack, &observed);
    let records = step(&planned.steps, "records");
    assert_eq!(records.action, Action::Create, "the records are created");
    let after = records_of(records.after.as_ref());
    assert_eq!(
        after.zone_id,
        Value::known(ZONE_ID),
        "the records go into the stack's zone"
    );
    let agents_target = support::regional_entry(&endpoint_id(0), AGENTS_SERVICE).dns_name;
    let relay = Address::from("endpoint.relay");
    let expected = vec![
        AliasRecord {
            name: record_name("agents"),
            record_type: "A".to_string(),
            target_dns_name: Value::known(&agents_target),
            target_zone_id: Value::known(ENDPOINT_ZONE_ID),
            evaluate_target_health: false,
        },
        AliasRecord {
            name: record_name("relay"),
            record_type: "A".to_string(),
            target_dns_name: Value::output(&relay, "dns_name"),
            target_zone_id: Value::output(&relay, "dns_zone_id"),
            evaluate_target_health: false,
        },
    ];
    assert_eq!(
        after.records, expected,
        "each alias targets its endpoint's DNS entry and that entry's zone, not the private zone"
    );
    assert!(
        records.depends_on.contains(&relay),
        "the records wait for the endpoint they refer to"
    );
}

#[test]
fn dns_entry_order_does_not_change_plan() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut zonal_first = converged(&stack);
    let id = endpoint_id(0);
    zonal_first.endpoints[0].dns_entries = vec![
        support::zonal_entry(&id, AGENTS_SERVICE, "us-east-1a"),
        support::zonal_entry(&id, AGENTS_SERVICE, "us-east-1b"),
        support::regional_entry(&id, AGENTS_SERVICE),
    ];
    let mut reordered = zonal_first.clone();
    reordered.endpoints[0].dns_entries.reverse();

    let first = plan(&stack, &zonal_first);
    let second = plan(&stack, &reordered);
    assert!(
        first.steps.is_empty(),
        "zonal entries first: no step: {:?}",
        addresses(&first.steps)
    );
    assert!(
        second.steps.is_empty(),
        "reordered entries: no step: {:?}",
        addresses(&second.steps)
    );
}

#[test]
fn dns_entry_order_does_not_change_fingerprints() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut zonal_first = converged(&stack);
    let id = endpoint_id(0);
    zonal_first.endpoints[0].dns_entries = vec![
        support::zonal_entry(&id, AGENTS_SERVICE, "us-east-1a"),
        support::regional_entry(&id, AGENTS_SERVICE),
    ];
    let mut reordered = zonal_first.clone();
    reordered.endpoints[0].dns_entries.reverse();

    assert_eq!(
        zonal_first.snapshot(&stack),
        reordered.snapshot(&stack),
        "a describe that lists the same DNS entries in another order does not make a plan stale"
    );
}

#[test]
fn endpoint_without_dns_entries_is_error() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    observed.endpoints[0].dns_entries.clear();

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [
            "endpoint `vpce-00000001` (endpoint.agents) reports no regional DNS entry, so no alias \
             record can point at it"
        ],
        "the error names the endpoint and says no alias can be built"
    );
}

#[test]
fn invalid_alias_zone_id_is_error() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    observed.records.clear();
    // A DNS name where the hosted zone id belongs, as a swapped pair would read.
    let entry = &mut observed.endpoints[0].dns_entries[0];
    entry.hosted_zone_id = entry.dns_name.clone();

    let errors = plan_errors(&stack, &observed);
    let dns_name = support::regional_entry(&endpoint_id(0), AGENTS_SERVICE).dns_name;
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "endpoint `vpce-00000001` (endpoint.agents) reports `{dns_name}` as the hosted zone \
             id of its DNS entry, which is not a hosted zone id"
        )],
        "the error names the endpoint and the invalid zone id"
    );
}

// Existing records.

#[test]
fn identical_alias_plans_no_step() {
    let stack = two_services("");
    let planned = plan(&stack, &converged(&stack));
    assert!(
        planned.steps.is_empty(),
        "no step: {:?}",
        addresses(&planned.steps)
    );
    assert!(
        planned.unchanged.contains(&Address::from("records")),
        "the records are reported unchanged"
    );
}

#[test]
fn changed_alias_is_one_update() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    let old_target = support::regional_entry("vpce-0000000f", RELAY_SERVICE).dns_name;
    let records = observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records");
    records[1] = support::alias_record(&record_name("relay"), &old_target, ENDPOINT_ZONE_ID);
    let live_before = records.clone();

    let planned = plan(&stack, &observed);
    assert_eq!(
        addresses(&planned.steps),
        ["records"],
        "one step for all records"
    );
    let update = step(&planned.steps, "records");
    assert_eq!(
        update.action,
        Action::Update,
        "the records are updated, never created again"
    );
    assert_eq!(
        update.reason.as_deref(),
        Some("a record was changed outside linkplan"),
        "the step says the record drifted"
    );
    let before = records_of(update.before.as_ref());
    let before_targets: Vec<Value> = before
        .records
        .iter()
        .map(|r| r.target_dns_name.clone())
        .collect();
    let live_targets: Vec<Value> = live_before
        .iter()
        .map(|r| Value::known(&r.alias.as_ref().expect("an alias").dns_name))
        .collect();
    assert_eq!(
        before_targets, live_targets,
        "before holds both live records, for the rollback"
    );
    let after = records_of(update.after.as_ref());
    let relay_target = support::regional_entry(&endpoint_id(1), RELAY_SERVICE).dns_name;
    assert_eq!(
        after.records[1].target_dns_name,
        Value::known(&relay_target),
        "after points the relay record at the live endpoint"
    );
    assert_eq!(
        after.records.len(),
        2,
        "after holds every record of the zone"
    );
}

#[test]
fn cname_at_managed_name_is_error() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    let records = observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records");
    records[1] = RecordState {
        name: record_name("relay"),
        record_type: "CNAME".to_string(),
        alias: None,
        values: support::strings(&["relay.example.com"]),
        ttl: Some(300),
        set_identifier: None,
    };

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "record `relay.{ZONE_NAME}` (CNAME relay.example.com) already exists in zone \
             `{ZONE_ID}`, where linkplan manages an A alias"
        )],
        "the error names the record, its type and the zone"
    );
}

// VPC DNS attributes.

fn dns_update(address: &str, attribute: VpcDnsAttribute, depends_on: &[&str]) -> Step {
    let resource = |enabled| {
        Resource::VpcAttribute(VpcAttribute {
            vpc_id: HUB_VPC.to_string(),
            attribute,
            enabled,
        })
    };
    Step {
        address: Address::from(address),
        action: Action::Update,
        context: Context {
            region: "us-east-1".to_string(),
            credentials: Default::default(),
        },
        id: Some(HUB_VPC.to_string()),
        reason: None,
        depends_on: depends_on.iter().map(|a| Address::from(*a)).collect(),
        before: Some(resource(false)),
        after: Some(resource(true)),
    }
}

#[test]
fn dns_support_and_hostnames_off_plan_two_updates() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    let vpc = observed
        .vpcs
        .get_mut(HUB_VPC)
        .and_then(Option::as_mut)
        .expect("the hub VPC");
    vpc.dns_support = false;
    vpc.dns_hostnames = false;

    let planned = plan(&stack, &observed);
    let expected = vec![
        dns_update("vpc.hub.dns_support", VpcDnsAttribute::DnsSupport, &[]),
        dns_update(
            "vpc.hub.dns_hostnames",
            VpcDnsAttribute::DnsHostnames,
            &["vpc.hub.dns_support"],
        ),
    ];
    assert_eq!(
        support::order_steps(&planned.steps),
        expected,
        "support is turned on first, then hostnames, in two steps"
    );
}

#[test]
fn only_hostnames_off_plans_one_update() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    let vpc = observed
        .vpcs
        .get_mut(HUB_VPC)
        .and_then(Option::as_mut)
        .expect("the hub VPC");
    vpc.dns_hostnames = false;

    let planned = plan(&stack, &observed);
    let expected = vec![dns_update(
        "vpc.hub.dns_hostnames",
        VpcDnsAttribute::DnsHostnames,
        &[],
    )];
    assert_eq!(planned.steps, expected, "only hostnames are turned on");
}

// The private zone.

/// Returns the empty hub with zone `ZEXIST1` of the stack's name, made outside linkplan.
fn with_foreign_zone(stack: &Stack, vpc: &str, private: bool) -> Observed {
    let mut observed = support::empty_hub(stack);
    let mut zone = support::private_zone(
        "ZEXIST1",
        ZONE_NAME,
        Default::default(),
        &[(vpc, "us-east-1")],
    );
    if !private {
        zone.private = false;
        zone.vpcs.clear();
    }
    observed.hosted_zones.push(zone);
    observed
}

#[test]
fn foreign_zone_on_hub_is_error() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let errors = plan_errors(&stack, &with_foreign_zone(&stack, HUB_VPC, true));

    assert_eq!(
        error_summaries(&errors),
        [format!(
            "private zone `ZEXIST1` named {ZONE_NAME} is already associated with the hub VPC \
             `{HUB_VPC}` and is not owned by stack `web`"
        )],
        "the error names the zone and the VPC"
    );
    assert_eq!(
        errors.0[0].help.as_deref(),
        Some("to let linkplan manage it, set `adopt = \"ZEXIST1\"` under [zone]"),
        "the help names the option that adopts it"
    );
}

#[test]
fn untagged_zone_of_stopped_run_names_resume() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = with_foreign_zone(&stack, HUB_VPC, true);
    observed.hosted_zones[0].comment =
        "Workload Security over PrivateLink, linkplan stack web".to_string();
    let errors = plan_errors(&stack, &observed);

    assert_eq!(errors.0.len(), 1, "one error: {errors}");
    assert_eq!(
        errors.0[0].detail.as_deref(),
        Some("its comment shows that a run of this stack created it and stopped before tagging it"),
        "the detail tells where the zone comes from"
    );
    let help = errors.0[0].help.as_deref().unwrap_or_default();
    assert!(
        help.starts_with("finish that run with `linkplan apply --resume PLANFILE`"),
        "the help names resume first: {help}"
    );
}

#[test]
fn owned_zone_is_not_created() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = with_foreign_zone(&stack, HUB_VPC, true);
    observed.hosted_zones[0].tags = support::stack_tags("web", "zone");

    let planned = plan(&stack, &observed);
    assert!(
        !addresses(&planned.steps).contains(&"zone".to_string()),
        "the zone the stack tagged is not created again"
    );
    assert!(
        planned.unchanged.contains(&Address::from("zone")),
        "the zone is unchanged"
    );
    let records = records_of(step(&planned.steps, "records").after.as_ref());
    assert_eq!(
        records.zone_id,
        Value::known("ZEXIST1"),
        "the records go into that zone"
    );
}

#[test]
fn adopted_zone_plans_adopt_step() {
    let text = format!(
        "{}\n[zone]\nadopt = \"ZEXIST1\"\n",
        support::ONE_SERVICE_CONFIG
    );
    let stack = support::stack_from(&text);
    let planned = plan(&stack, &with_foreign_zone(&stack, HUB_VPC, true));

    let adopt = step(&planned.steps, "zone");
    assert_eq!(adopt.action, Action::Adopt, "the zone is adopted");
    assert_eq!(
        adopt.id.as_deref(),
        Some("ZEXIST1"),
        "the adopted zone is the one named"
    );
    let Some(Resource::HostedZone(after)) = &adopt.after else {
        panic!("the adopt step has the zone after: {adopt:?}");
    };
    assert_eq!(
        after.tags.get("linkplan:stack").map(String::as_str),
        Some("web"),
        "adopting tags the zone with the stack"
    );
}

/// Returns the empty hub with zone `ZEXIST1` on the hub VPC, tagged as the zone of linkplan
/// stack `other-stack`.
fn with_other_stacks_zone(stack: &Stack) -> Observed {
    let mut observed = with_foreign_zone(stack, HUB_VPC, true);
    observed.hosted_zones[0].tags = support::stack_tags("other-stack", "zone");
    observed
}

#[test]
fn adopting_other_stacks_zone_is_error() {
    let text = format!(
        "{}\n[zone]\nadopt = \"ZEXIST1\"\n",
        support::ONE_SERVICE_CONFIG
    );
    let stack = support::stack_from(&text);
    let errors = plan_errors(&stack, &with_other_stacks_zone(&stack));

    assert_eq!(
        error_summaries(&errors),
        ["zone `ZEXIST1` named in `zone.adopt` belongs to linkplan stack `other-stack`"],
        "the error names the zone and the stack that owns it"
    );
    assert_eq!(
        errors.0[0].detail.as_deref(),
        Some("adopting it would tag it as stack `web`, whose `plan --destroy` deletes it"),
        "the detail says what adopting would do"
    );
    assert_eq!(
        errors.0[0].help.as_deref(),
        Some(
            "destroy stack `other-stack` first, or, if that stack is no longer used, remove the \
             zone's `linkplan:stack` and `linkplan:address` tags; then plan again"
        ),
        "the help says how to free the zone"
    );
}

#[test]
fn other_stacks_zone_on_hub_is_error() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let errors = plan_errors(&stack, &with_other_stacks_zone(&stack));

    assert_eq!(
        error_summaries(&errors),
        [format!(
            "private zone `ZEXIST1` named {ZONE_NAME} is already associated with the hub VPC \
             `{HUB_VPC}` and belongs to linkplan stack `other-stack`"
        )],
        "the error names the stack that owns the zone"
    );
    assert_eq!(
        errors.0[0].help.as_deref(),
        Some("remove the VPC from stack `other-stack`, or destroy that stack, then plan again"),
        "the help does not suggest adopting another stack's zone"
    );
}

#[test]
fn step_reasons_read_as_clauses() {
    // Views print a step's reason after "because", so each reason needs its own subject.
    let text = format!(
        "{}\n[zone]\nadopt = \"ZEXIST1\"\n",
        support::ONE_SERVICE_CONFIG
    );
    let stack = support::stack_from(&text);
    let planned = plan(&stack, &with_foreign_zone(&stack, HUB_VPC, true));
    assert_eq!(
        step(&planned.steps, "zone").reason.as_deref(),
        Some("it is named in `zone.adopt`")
    );

    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    observed.security_groups[0].ingress.push(IngressPermission {
        protocol: "tcp".to_string(),
        from_port: Some(443),
        to_port: Some(443),
        source: "192.168.0.0/24".to_string(),
    });
    let planned = plan(&stack, &observed);
    let removed: Vec<&Step> = planned
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", addresses(&planned.steps));
    assert_eq!(
        removed[0].reason.as_deref(),
        Some("it is not among the client CIDRs of the config")
    );
}

#[test]
fn unrelated_same_name_zones_are_ignored() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = with_foreign_zone(&stack, HUB_VPC, false);
    let other_vpc = "vpc-0000cccc";
    let private = support::private_zone(
        "ZOTHER1",
        ZONE_NAME,
        Default::default(),
        &[(other_vpc, "us-east-1")],
    );
    observed.hosted_zones.push(private);

    let planned = plan(&stack, &observed);
    assert_eq!(
        step(&planned.steps, "zone").action,
        Action::Create,
        "a new zone is created"
    );
}

#[test]
fn spoke_on_foreign_zone_is_error() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    let vpcs = [(SPOKE_VPC, "eu-west-1")];
    let zone = support::private_zone("ZEXIST1", ZONE_NAME, Default::default(), &vpcs);
    observed.hosted_zones.push(zone);

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "spoke VPC `{SPOKE_VPC}` is already associated with another private zone named \
             {ZONE_NAME} (`ZEXIST1`)"
        )],
        "the error names the spoke VPC and the zone"
    );
}

// Spokes.

#[test]
fn spoke_route_table_errors_name_spoke() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), None);
    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        ["route table `rtb-0000000b` of spoke `eu` not found in eu-west-1"]
    );
    assert_eq!(
        errors.0[0].help.as_deref(),
        Some("check the ids in the `route_table_ids` of spoke `eu`")
    );

    let hub_table = support::route_table("rtb-0000000b", HUB_VPC, &[]);
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), Some(hub_table));
    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "route table `rtb-0000000b` of spoke `eu` belongs to VPC `{HUB_VPC}`, not `{SPOKE_VPC}`"
        )]
    );
}

#[test]
fn hub_route_table_errors_name_hub() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), None);
    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        ["route table `rtb-0000000a` of the hub not found in us-east-1"]
    );
    assert_eq!(
        errors.0[0].help.as_deref(),
        Some("check the ids in `hub.route_table_ids`")
    );
}

#[test]
fn hub_route_table_error_is_reported_once() {
    let second = "\n[[spoke]]\nname = \"us\"\nregion = \"us-west-2\"\nvpc_id = \"vpc-0000cccc\"\n";
    let stack = with_spoke(second);
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    let other = support::vpc("vpc-0000cccc", "us-west-2", HUB_ACCOUNT, &["10.8.0.0/16"]);
    observed
        .vpcs
        .insert("vpc-0000cccc".to_string(), Some(other));
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), None);
    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        ["route table `rtb-0000000a` of the hub not found in us-east-1"],
        "two spokes, one error"
    );
}

#[test]
fn spoke_steps_run_in_their_contexts() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    let planned = plan(&stack, &observed);
    let steps = &planned.steps;

    let association = step(steps, "zone_association.eu");
    assert_eq!(
        association.context.region, "eu-west-1",
        "the association runs for the spoke"
    );
    let Some(Resource::ZoneAssociation(after)) = &association.after else {
        panic!("the association step associates the zone: {association:?}");
    };
    assert_eq!(
        after.vpc_region, "eu-west-1",
        "the association sends the spoke's own region"
    );

    let spoke_context = stack.spoke_context(&stack.spokes[0]);
    let hub_context = stack.hub_context();
    assert_eq!(
        step(steps, "peering.eu").context,
        hub_context,
        "the hub requests the peering"
    );
    assert_eq!(
        step(steps, "peering_acceptance.eu").context,
        spoke_context,
        "the spoke's region accepts the peering"
    );
    let hub_route = "route.eu.rtb-0000000a.10.9.0.0/16";
    let spoke_route = "route.eu.rtb-0000000b.10.0.0.0/16";
    assert_eq!(
        step(steps, hub_route).context,
        hub_context,
        "the hub's route is made in the hub"
    );
    assert_eq!(
        step(steps, spoke_route).context,
        spoke_context,
        "the spoke's route, in the spoke"
    );
    for route in [hub_route, spoke_route] {
        assert_eq!(
            step(steps, route).depends_on,
            [Address::from("peering_acceptance.eu")],
            "{route} waits for the acceptance"
        );
    }
}

/// Returns a stack whose spoke VPC is owned by another account, and its live state. With
/// `credentials`, the spoke names a profile whose identity is in that account.
fn cross_account(credentials: bool) -> (Stack, Observed) {
    let spoke = if credentials {
        "account_id = \"222222222222\"\nprofile = \"spoke\""
    } else {
        "account_id = \"222222222222\""
    };
    let stack = with_spoke(spoke);
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, OTHER_ACCOUNT);
    let spoke_context = stack.spoke_context(&stack.spokes[0]);
    if credentials {
        observed
            .identities
            .push((spoke_context, support::identity(OTHER_ACCOUNT)));
    } else {
        observed
            .identities
            .push((spoke_context, support::identity(HUB_ACCOUNT)));
    }
    (stack, observed)
}

#[test]
fn cross_account_spoke_without_credentials_is_error() {
    let (stack, observed) = cross_account(false);
    let findings = checks::check(&stack, &observed);

    let errors: Vec<_> = findings.errors().collect();
    assert_eq!(errors.len(), 1, "one error: {findings}");
    assert_eq!(
        errors[0].summary,
        "spoke `eu` is in account 222222222222, but linkplan has no credentials for that account",
        "the summary names the spoke and its account"
    );
    assert_eq!(
        errors[0].help.as_deref(),
        Some("set `profile` or `role_arn` of spoke `eu` to credentials of account 222222222222"),
        "the help says how to supply the credentials"
    );
}

#[test]
fn cross_account_spoke_plans_authorize_associate_revoke() {
    let (stack, observed) = cross_account(true);
    let findings = checks::check(&stack, &observed);
    assert!(
        !findings.has_errors(),
        "the spoke's credentials are enough: {findings}"
    );
    let planned = plan(&stack, &observed);
    let steps = &planned.steps;

    let order = positions(
        steps,
        &[
            "zone_authorization.eu",
            "zone_association.eu",
            "zone_authorization.eu.revoke",
        ],
    );
    assert!(
        order[0] < order[1],
        "the authorization comes before the association"
    );
    assert!(
        order[1] < order[2],
        "the revocation comes after the association"
    );

    let hub = stack.hub_context();
    let spoke = stack.spoke_context(&stack.spokes[0]);
    assert_eq!(
        step(steps, "zone_authorization.eu").context,
        hub,
        "the zone's account authorizes"
    );
    assert_eq!(
        step(steps, "zone_association.eu").context,
        spoke,
        "the VPC's account associates"
    );
    assert_eq!(
        step(steps, "zone_authorization.eu.revoke").context,
        hub,
        "the zone's account revokes"
    );
    assert_eq!(
        step(steps, "zone_authorization.eu.revoke").action,
        Action::Delete,
        "a revocation"
    );
    assert_eq!(
        step(steps, "peering_acceptance.eu").context,
        spoke,
        "the VPC's account accepts"
    );
    let Some(Resource::PeeringConnection(peering)) = &step(steps, "peering.eu").after else {
        panic!("the peering step requests a connection");
    };
    assert_eq!(
        peering.accepter_owner_id.as_deref(),
        Some(OTHER_ACCOUNT),
        "the request names the accepter's account"
    );
}

// Overlapping CIDRs.

#[test]
fn overlap_through_secondary_block_is_error() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    let hub = observed
        .vpcs
        .get_mut(HUB_VPC)
        .and_then(Option::as_mut)
        .expect("the hub VPC");
    hub.cidrs = vec![
        "10.0.0.0/16".parse().unwrap(),
        "10.1.0.0/16".parse().unwrap(),
    ];
    let spoke = observed
        .vpcs
        .get_mut(SPOKE_VPC)
        .and_then(Option::as_mut)
        .expect("the spoke VPC");
    spoke.cidrs = vec!["10.1.128.0/17".parse().unwrap()];

    let findings = checks::check(&stack, &observed);
    assert_eq!(
        error_summaries(&findings),
        [format!(
            "CIDR blocks of the hub (`{HUB_VPC}`: 10.0.0.0/16, 10.1.0.0/16) and spoke `eu` \
             (`{SPOKE_VPC}`: 10.1.128.0/17) overlap: 10.1.0.0/16 overlaps 10.1.128.0/17"
        )],
        "the error names both VPCs and all their blocks"
    );
}

// Routes.

#[test]
fn route_to_other_target_is_error() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    observed.peerings.push(support::peering(
        "pcx-00000001",
        "eu-west-1",
        "active",
        Default::default(),
    ));
    let routes = [("10.0.0.0/16", "local"), ("10.9.0.0/16", "tgw-0000000f")];
    let table = support::route_table("rtb-0000000a", HUB_VPC, &routes);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(table));

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        ["route table `rtb-0000000a` of the hub already routes 10.9.0.0/16 to `tgw-0000000f`"],
        "the error names the table, the destination and the current target"
    );
}

#[test]
fn same_route_to_same_peering_plans_nothing() {
    let stack = with_spoke("");
    let mut observed = support::empty_hub(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);
    observed.peerings.push(support::peering(
        "pcx-00000001",
        "eu-west-1",
        "active",
        Default::default(),
    ));
    let hub_routes = [("10.0.0.0/16", "local"), ("10.9.0.0/16", "pcx-00000001")];
    let spoke_routes = [("10.9.0.0/16", "local"), ("10.0.0.0/16", "pcx-00000001")];
    let hub_table = support::route_table("rtb-0000000a", HUB_VPC, &hub_routes);
    let spoke_table = support::route_table("rtb-0000000b", SPOKE_VPC, &spoke_routes);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(hub_table));
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), Some(spoke_table));

    let planned = plan(&stack, &observed);
    let planned_routes: Vec<String> = addresses(&planned.steps)
        .into_iter()
        .filter(|a| a.starts_with("route."))
        .collect();
    assert!(
        planned_routes.is_empty(),
        "no route step: {planned_routes:?}"
    );
    assert!(
        !addresses(&planned.steps)
            .iter()
            .any(|a| a.starts_with("peering")),
        "the active peering needs no step"
    );
}

// Destroy and endpoints that are gone.

/// Returns the converged one-service stack with an active peering to the spoke, routes over it
/// in both tables and the zone associated with the spoke.
fn converged_with_spoke() -> (Stack, Observed) {
    let stack = with_spoke("");
    let mut observed = converged(&stack);
    add_spoke(&mut observed, HUB_ACCOUNT);

    let spoke_clients = IngressPermission {
        protocol: "tcp".to_string(),
        from_port: Some(443),
        to_port: Some(443),
        source: "10.9.0.0/16".to_string(),
    };
    observed.security_groups[0].ingress.push(spoke_clients);

    let tags = support::stack_tags("web", "peering.eu");
    observed.peerings.push(support::peering(
        "pcx-00000001",
        "eu-west-1",
        "active",
        tags,
    ));

    let hub_routes = [("10.0.0.0/16", "local"), ("10.9.0.0/16", "pcx-00000001")];
    let spoke_routes = [("10.9.0.0/16", "local"), ("10.0.0.0/16", "pcx-00000001")];
    let hub_table = support::route_table("rtb-0000000a", HUB_VPC, &hub_routes);
    let spoke_table = support::route_table("rtb-0000000b", SPOKE_VPC, &spoke_routes);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(hub_table));
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), Some(spoke_table));
    observed.hosted_zones[0]
        .vpcs
        .push((SPOKE_VPC.to_string(), "eu-west-1".to_string()));
    (stack, observed)
}

#[test]
fn converged_spoke_plans_nothing() {
    let (stack, observed) = converged_with_spoke();
    let planned = plan(&stack, &observed);
    assert!(
        planned.steps.is_empty(),
        "no step: {:?}",
        addresses(&planned.steps)
    );
}

#[test]
fn renamed_spoke_keeps_its_peering() {
    let (_, observed) = converged_with_spoke();
    let hub = hub_with_route_table();
    let renamed = SPOKE
        .replace("name = \"eu\"", "name = \"europe\"")
        .replace("{spoke}", "");
    let stack = support::stack_from(&format!("{hub}{renamed}"));
    let planned = plan(&stack, &observed);

    assert!(
        planned.steps.is_empty(),
        "the peering and its routes are kept: {:?}",
        addresses(&planned.steps)
    );
    let warnings = summaries(&planned.warnings);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("carries the address tag `peering.eu`")),
        "the stale tag is named: {warnings:?}"
    );
}

#[test]
fn destroy_after_spoke_rename_removes_its_routes() {
    let (_, observed) = converged_with_spoke();
    let hub = hub_with_route_table();
    let renamed = SPOKE
        .replace("name = \"eu\"", "name = \"europe\"")
        .replace("{spoke}", "");
    let stack = support::stack_from(&format!("{hub}{renamed}"));
    let planned = match planner::plan(&stack, &observed, Mode::Destroy) {
        Ok(planned) => planned,
        Err(errors) => panic!("the destroy is planned: {errors}"),
    };

    let mut planned_addresses = addresses(&planned.steps);
    planned_addresses.sort();
    let expected = [
        "records",
        "route.europe.rtb-0000000a.10.9.0.0/16",
        "route.europe.rtb-0000000b.10.0.0.0/16",
        "zone_association.europe",
    ];
    for address in expected {
        assert!(
            planned_addresses.iter().any(|a| a == address),
            "{address} is planned: {planned_addresses:?}"
        );
    }
    let associations = planned_addresses
        .iter()
        .filter(|a| a.starts_with("zone_association."))
        .count();
    assert_eq!(associations, 1, "one disassociation: {planned_addresses:?}");
    let warnings = summaries(&planned.warnings);
    assert!(
        !warnings.iter().any(|w| w.contains("are not removed")),
        "the spoke's routes are removed: {warnings:?}"
    );
}

#[test]
fn destroy_deletes_in_reverse_dependency_order() {
    let (stack, mut observed) = converged_with_spoke();
    let mut ghost = support::live_endpoint(&stack, "agents", "vpce-0000000f", &[GROUP_ID]);
    ghost.state = "deleted".to_string();
    observed.endpoints.push(ghost);
    let planned = match planner::plan(&stack, &observed, Mode::Destroy) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning the destroy failed:\n{errors}"),
    };
    let steps = &planned.steps;

    let mut expected = vec![
        "endpoint.agents",
        "peering.eu",
        "records",
        "route.eu.rtb-0000000a.10.9.0.0/16",
        "route.eu.rtb-0000000b.10.0.0.0/16",
        "security_group.endpoints",
        "zone",
        "zone_association.eu",
    ];
    expected.sort();
    let mut planned_addresses = addresses(steps);
    planned_addresses.sort();
    assert_eq!(
        planned_addresses, expected,
        "every object of the stack is deleted once"
    );
    assert!(
        steps.iter().all(|s| s.action == Action::Delete),
        "every step is a delete"
    );
    assert_eq!(
        step(steps, "endpoint.agents").id.as_deref(),
        Some("vpce-00000001"),
        "the live endpoint is deleted, not the one already deleted"
    );

    let pairs = [
        ("records", "zone"),
        ("records", "endpoint.agents"),
        ("zone_association.eu", "zone"),
        ("endpoint.agents", "security_group.endpoints"),
        ("route.eu.rtb-0000000a.10.9.0.0/16", "peering.eu"),
        ("route.eu.rtb-0000000b.10.0.0.0/16", "peering.eu"),
    ];
    for (first, second) in pairs {
        let order = positions(steps, &[first, second]);
        assert!(order[0] < order[1], "{first} is deleted before {second}");
    }
}

#[test]
fn gone_endpoint_is_neither_deleted_nor_adopted() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = support::empty_hub(&stack);
    let mut deleted = support::live_endpoint(&stack, "agents", "vpce-0000000e", &[GROUP_ID]);
    deleted.state = "deleted".to_string();
    let mut deleting = support::live_endpoint(&stack, "agents", "vpce-0000000f", &[GROUP_ID]);
    deleting.state = "deleting".to_string();
    deleting.tags = support::stack_tags("web", "endpoint.old");
    observed.endpoints = vec![deleted, deleting];

    let planned = plan(&stack, &observed);
    let create = step(&planned.steps, "endpoint.agents");
    assert_eq!(create.action, Action::Create, "a clean create is planned");
    assert_eq!(
        create.id, None,
        "the create does not take over the deleted endpoint"
    );
    assert!(
        !planned.steps.iter().any(|s| s.action == Action::Delete),
        "no endpoint is deleted again: {:?}",
        addresses(&planned.steps)
    );

    let destroy = match planner::plan(&stack, &observed, Mode::Destroy) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning the destroy failed:\n{errors}"),
    };
    assert!(
        destroy.steps.is_empty(),
        "a destroy has nothing to delete: {:?}",
        addresses(&destroy.steps)
    );
}

#[test]
fn other_teams_zones_do_not_change_fingerprints() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let observed = converged(&stack);
    let mut with_other = observed.clone();
    let mut other = with_other.hosted_zones[0].clone();
    other.zone_id = "Z0OTHERTEAM0000000000".to_string();
    other.tags.clear();
    other.vpcs = vec![("vpc-0ffffffffffffffff".to_string(), "us-east-1".to_string())];
    with_other.hosted_zones.push(other.clone());
    assert_eq!(
        observed.snapshot(&stack),
        with_other.snapshot(&stack),
        "a same-name zone on another team's VPC does not make a plan stale"
    );

    let mut on_hub = observed.clone();
    other.vpcs = vec![(stack.hub.vpc_id.clone(), "us-east-1".to_string())];
    on_hub.hosted_zones.push(other);
    assert_ne!(
        observed.snapshot(&stack),
        on_hub.snapshot(&stack),
        "a same-name zone that appears on the hub VPC does"
    );
}

/// Returns the drift of `planned` as `object: found => response` lines.
fn drift_lines(planned: &Planned) -> Vec<String> {
    planned
        .drift
        .iter()
        .map(|d| {
            let response = match (&d.restored_by, &d.left_alone) {
                (Some(address), _) => format!("restored by {address}"),
                (None, Some(reason)) => format!("left alone: {reason}"),
                (None, None) => "left alone".to_string(),
            };
            format!("{}: {} => {response}", d.object, d.found)
        })
        .collect()
}

#[test]
fn retargeted_record_is_drift_restored_by_records() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    let wrong = support::regional_entry("vpce-0000000f", RELAY_SERVICE).dns_name;
    let records = observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records");
    records[1] = support::alias_record(&record_name("relay"), &wrong, ENDPOINT_ZONE_ID);

    let planned = plan(&stack, &observed);
    let wanted = support::regional_entry(&endpoint_id(1), RELAY_SERVICE).dns_name;
    assert_eq!(
        drift_lines(&planned),
        [format!(
            "record relay.{ZONE_NAME}: alias to {wrong}, where linkplan points it at {wanted} => restored by records"
        )],
        "the hand-made change is drift, put back by the records step"
    );
}

#[test]
fn deleted_record_is_drift() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records")
        .remove(1);

    let planned = plan(&stack, &observed);
    assert_eq!(addresses(&planned.steps), ["records"]);
    let lines = drift_lines(&planned);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "record relay.{ZONE_NAME}: missing; linkplan points it at "
        )),
        "{lines:?}"
    );
}

#[test]
fn new_service_record_is_not_drift() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    // The relay endpoint and its record were never made: the service is new in the config.
    observed.endpoints.remove(1);
    observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records")
        .remove(1);

    let planned = plan(&stack, &observed);
    assert!(
        planned.drift.is_empty(),
        "a record for a new service is a change of the config: {:?}",
        drift_lines(&planned)
    );
}

#[test]
fn dns_turned_off_on_associated_vpc_is_drift() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed
        .vpcs
        .get_mut(HUB_VPC)
        .and_then(Option::as_mut)
        .expect("the hub VPC")
        .dns_hostnames = false;

    let planned = plan(&stack, &observed);
    assert_eq!(
        drift_lines(&planned),
        [format!(
            "VPC {HUB_VPC} attribute enableDnsHostnames: turned off, so the VPC no longer resolves the private zone => restored by vpc.hub.dns_hostnames"
        )]
    );
}

#[test]
fn dns_off_on_fresh_vpc_is_not_drift() {
    let stack = two_services("");
    let mut observed = support::empty_hub(&stack);
    observed
        .vpcs
        .get_mut(HUB_VPC)
        .and_then(Option::as_mut)
        .expect("the hub VPC")
        .dns_hostnames = false;
    let planned = plan(&stack, &observed);
    assert!(planned.drift.is_empty(), "{:?}", drift_lines(&planned));
}

#[test]
fn removed_spoke_association_is_drift() {
    let (stack, mut observed) = converged_with_spoke();
    observed.hosted_zones[0]
        .vpcs
        .retain(|(vpc, _)| vpc != SPOKE_VPC);

    let planned = plan(&stack, &observed);
    assert_eq!(addresses(&planned.steps), ["zone_association.eu"]);
    assert_eq!(
        drift_lines(&planned),
        [format!(
            "association of zone {ZONE_ID} with VPC {SPOKE_VPC}: missing, though the spoke's peering is in place => restored by zone_association.eu"
        )]
    );
}

#[test]
fn hand_associated_vpc_is_left_alone() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed.hosted_zones[0]
        .vpcs
        .push(("vpc-0000cccc".to_string(), "us-west-2".to_string()));

    let planned = plan(&stack, &observed);
    assert!(
        planned.steps.is_empty(),
        "nothing touches the third VPC: {:?}",
        addresses(&planned.steps)
    );
    assert_eq!(
        drift_lines(&planned),
        [format!(
            "association of zone {ZONE_ID} with VPC vpc-0000cccc: VPC vpc-0000cccc in us-west-2 was associated outside linkplan => left alone: it is neither the hub nor a spoke of the config; add it as a spoke to manage it"
        )]
    );
}

#[test]
fn stack_name_reused_on_other_hub_is_error() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    // The same stack name, applied before to another hub VPC.
    for endpoint in &mut observed.endpoints {
        endpoint.vpc_id = "vpc-0000ffff".to_string();
    }
    observed.security_groups[0].vpc_id = "vpc-0000ffff".to_string();
    observed.hosted_zones[0].vpcs = vec![("vpc-0000ffff".to_string(), "us-east-1".to_string())];

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "stack `web` already has objects outside the hub VPC `{HUB_VPC}`: endpoint `vpce-00000001` in `vpc-0000ffff`, endpoint `vpce-00000002` in `vpc-0000ffff`, security group `{GROUP_ID}` in `vpc-0000ffff`, zone `{ZONE_ID}` on `vpc-0000ffff`"
        )]
    );
}

#[test]
fn untagged_group_with_linkplan_name_is_error() {
    let stack = two_services("");
    let mut observed = support::empty_hub(&stack);
    observed.security_groups.push(SecurityGroupState {
        group_id: "sg-0000000f".to_string(),
        group_name: planner::security_group_name("web"),
        description: String::new(),
        vpc_id: HUB_VPC.to_string(),
        tags: Default::default(),
        ingress: Vec::new(),
    });

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [
            "security group `sg-0000000f` in the hub VPC is named linkplan-web-endpoints, the name linkplan gives the stack's group, but does not carry the stack's tags"
        ]
    );
}

#[test]
fn two_tagged_groups_are_error() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    let mut twin = observed.security_groups[0].clone();
    twin.group_id = "sg-0000000f".to_string();
    observed.security_groups.push(twin);

    let errors = plan_errors(&stack, &observed);
    assert_eq!(
        error_summaries(&errors),
        [format!(
            "2 security groups carry the address `security_group.endpoints`: {GROUP_ID}, sg-0000000f"
        )]
    );
}

fn destroy_errors(stack: &Stack, observed: &Observed) -> Vec<String> {
    match planner::plan(stack, observed, Mode::Destroy) {
        Ok(planned) => panic!("the destroy should fail: {:?}", addresses(&planned.steps)),
        Err(errors) => error_summaries(&errors),
    }
}

#[test]
fn destroy_with_foreign_record_is_error() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records")
        .push(RecordState {
            name: format!("help.{ZONE_NAME}"),
            record_type: "CNAME".to_string(),
            alias: None,
            values: vec!["docs.example.com".to_string()],
            ttl: Some(300),
            set_identifier: None,
        });

    assert_eq!(
        destroy_errors(&stack, &observed),
        [format!(
            "zone `{ZONE_ID}` holds records linkplan did not write: help.{ZONE_NAME} (CNAME)"
        )]
    );
}

#[test]
fn destroy_of_shared_zone_is_error() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    observed.hosted_zones[0]
        .vpcs
        .push(("vpc-0000cccc".to_string(), "us-west-2".to_string()));

    assert_eq!(
        destroy_errors(&stack, &observed),
        [format!(
            "zone `{ZONE_ID}` is also associated with vpc-0000cccc, which are neither the hub nor a spoke of the config"
        )]
    );
}

#[test]
fn destroy_after_spoke_left_config() {
    let (_, observed) = converged_with_spoke();
    // The spoke is gone from the config, but its peering, routes and association remain.
    let stack = support::stack_from(&hub_with_route_table());
    let planned = match planner::plan(&stack, &observed, Mode::Destroy) {
        Ok(planned) => planned,
        Err(errors) => panic!("the destroy is planned: {errors}"),
    };

    let [association, zone] = positions(&planned.steps, &["zone_association.eu", "zone"])[..]
    else {
        unreachable!("two positions for two names")
    };
    assert!(
        association < zone,
        "the spoke's VPC leaves the zone before the zone is deleted"
    );
    let zone_step = step(&planned.steps, "zone");
    assert!(
        zone_step
            .depends_on
            .contains(&Address::from("zone_association.eu")),
        "the zone waits for the association: {:?}",
        zone_step.depends_on
    );
}

#[test]
fn destroy_ignores_apex_soa_and_ns() {
    let stack = two_services("");
    let mut observed = converged(&stack);
    let records = observed
        .records
        .get_mut(ZONE_ID)
        .expect("the zone's records");
    for kind in ["SOA", "NS"] {
        records.push(RecordState {
            name: ZONE_NAME.to_string(),
            record_type: kind.to_string(),
            alias: None,
            values: vec!["ns-1.awsdns-00.com.".to_string()],
            ttl: Some(900),
            set_identifier: None,
        });
    }

    let planned = planner::plan(&stack, &observed, Mode::Destroy).unwrap_or_else(|errors| {
        panic!("the records Route 53 makes with a zone block nothing:\n{errors}")
    });
    assert!(
        addresses(&planned.steps).contains(&"zone".to_string()),
        "the zone is deleted: {:?}",
        addresses(&planned.steps)
    );
}

// Destroy of several objects with one address tag.

/// The id of a second zone tagged as the stack's `zone`.
const SECOND_ZONE_ID: &str = "ZPHZ0000000002";

/// Plans the destroy of `stack` and returns its steps in execution order, panicking when the
/// planner or the ordering fails.
fn destroy_in_order(stack: &Stack, observed: &Observed) -> Vec<Step> {
    let planned = match planner::plan(stack, observed, Mode::Destroy) {
        Ok(planned) => planned,
        Err(errors) => panic!("planning the destroy failed:\n{errors}"),
    };
    match graph::order_steps(planned.steps) {
        Ok(steps) => steps,
        Err(error) => panic!("the destroy steps cannot be ordered: {error}"),
    }
}

/// Adds a copy of the stack's zone as `SECOND_ZONE_ID`, with the same tags and VPCs and no
/// records.
fn add_second_zone(observed: &mut Observed) {
    let mut second = observed.hosted_zones[0].clone();
    second.zone_id = SECOND_ZONE_ID.to_string();
    observed.hosted_zones.push(second);
}

fn sorted_strings(values: &[String]) -> Vec<String> {
    let mut values = values.to_vec();
    values.sort();
    values
}

/// Asserts that each pair's first address comes before its second in `order`.
fn assert_runs_before(order: &[String], pairs: &[(&str, &str)]) {
    for (first, second) in pairs {
        let position = |name: &str| {
            order
                .iter()
                .position(|a| a == name)
                .unwrap_or_else(|| panic!("no step `{name}` in {order:?}"))
        };
        assert!(
            position(first) < position(second),
            "{first} runs before {second}: {order:?}"
        );
    }
}

#[test]
fn destroy_deletes_duplicate_endpoints() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    // Listed first, so that the ids and not the read order decide which keeps the address.
    let duplicate = support::live_endpoint(&stack, "agents", "vpce-00000009", &[GROUP_ID]);
    observed.endpoints.insert(0, duplicate);

    let steps = destroy_in_order(&stack, &observed);
    let order = addresses(&steps);
    assert_eq!(
        sorted_strings(&order),
        [
            "endpoint.agents",
            "endpoint.agents.vpce-00000009",
            "records",
            "security_group.endpoints",
            "zone",
        ],
        "both endpoints are deleted"
    );
    let first = step(&steps, "endpoint.agents");
    assert_eq!(
        first.id.as_deref(),
        Some("vpce-00000001"),
        "the lowest id keeps the address"
    );
    assert_eq!(first.reason, None, "the first endpoint needs no reason");
    let second = step(&steps, "endpoint.agents.vpce-00000009");
    assert_eq!(second.id.as_deref(), Some("vpce-00000009"));
    assert_eq!(
        second.reason.as_deref(),
        Some("`vpce-00000001` carries the same tag `linkplan:address = endpoint.agents`"),
        "the plan says why the address has a suffix"
    );
    assert_runs_before(
        &order,
        &[
            ("records", "endpoint.agents"),
            ("records", "endpoint.agents.vpce-00000009"),
            ("endpoint.agents", "security_group.endpoints"),
            ("endpoint.agents.vpce-00000009", "security_group.endpoints"),
        ],
    );
}

#[test]
fn destroy_deletes_duplicate_zones() {
    let (stack, mut observed) = converged_with_spoke();
    add_second_zone(&mut observed);
    let records = observed.records[ZONE_ID].clone();
    observed.records.insert(SECOND_ZONE_ID.to_string(), records);

    let steps = destroy_in_order(&stack, &observed);
    let order = addresses(&steps);
    assert_eq!(
        sorted_strings(&order),
        [
            "endpoint.agents",
            "peering.eu",
            "records",
            "records.ZPHZ0000000002",
            "route.eu.rtb-0000000a.10.9.0.0/16",
            "route.eu.rtb-0000000b.10.0.0.0/16",
            "security_group.endpoints",
            "zone",
            "zone.ZPHZ0000000002",
            "zone_association.eu",
            "zone_association.eu.ZPHZ0000000002",
        ],
        "both zones, their records and their spoke associations are deleted"
    );
    for address in ["zone", "records", "zone_association.eu"] {
        assert_eq!(
            step(&steps, address).id.as_deref(),
            Some(ZONE_ID),
            "{address} is of the zone with the lowest id"
        );
        let suffixed = format!("{address}.{SECOND_ZONE_ID}");
        assert_eq!(
            step(&steps, &suffixed).id.as_deref(),
            Some(SECOND_ZONE_ID),
            "{suffixed} is of the second zone"
        );
    }
    assert_runs_before(
        &order,
        &[
            ("records.ZPHZ0000000002", "zone.ZPHZ0000000002"),
            ("zone_association.eu.ZPHZ0000000002", "zone.ZPHZ0000000002"),
            ("records.ZPHZ0000000002", "endpoint.agents"),
            ("records", "zone"),
            ("zone_association.eu", "zone"),
        ],
    );
}

#[test]
fn destroy_checks_every_duplicate_zone() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    add_second_zone(&mut observed);
    let help = RecordState {
        name: format!("help.{ZONE_NAME}"),
        record_type: "CNAME".to_string(),
        alias: None,
        values: vec!["docs.example.com".to_string()],
        ttl: Some(300),
        set_identifier: None,
    };
    observed
        .records
        .insert(SECOND_ZONE_ID.to_string(), vec![help]);

    assert_eq!(
        destroy_errors(&stack, &observed),
        [format!(
            "zone `{SECOND_ZONE_ID}` holds records linkplan did not write: help.{ZONE_NAME} (CNAME)"
        )],
        "the second zone cannot be deleted with another team's record in it"
    );
}

#[test]
fn destroy_deletes_duplicate_peerings() {
    let (stack, mut observed) = converged_with_spoke();
    let tags = support::stack_tags("web", "peering.eu");
    let duplicate = support::peering("pcx-00000002", "eu-west-1", "active", tags);
    // Listed first, so that the ids and not the read order decide which keeps the address.
    observed.peerings.insert(0, duplicate);
    let hub_routes = [
        ("10.0.0.0/16", "local"),
        ("10.9.0.0/16", "pcx-00000001"),
        ("10.10.0.0/16", "pcx-00000002"),
    ];
    let hub_table = support::route_table("rtb-0000000a", HUB_VPC, &hub_routes);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(hub_table));

    let steps = destroy_in_order(&stack, &observed);
    let order = addresses(&steps);
    for address in [
        "peering.eu",
        "peering.eu.pcx-00000002",
        "route.eu.rtb-0000000a.10.10.0.0/16",
    ] {
        assert!(
            order.contains(&address.to_string()),
            "{address} is planned: {order:?}"
        );
    }
    assert_eq!(
        step(&steps, "peering.eu").id.as_deref(),
        Some("pcx-00000001"),
        "the lowest id keeps the address"
    );
    assert_eq!(
        step(&steps, "peering.eu.pcx-00000002").id.as_deref(),
        Some("pcx-00000002")
    );
    assert_runs_before(
        &order,
        &[
            (
                "route.eu.rtb-0000000a.10.10.0.0/16",
                "peering.eu.pcx-00000002",
            ),
            ("route.eu.rtb-0000000a.10.9.0.0/16", "peering.eu"),
        ],
    );
}

#[test]
fn destroy_deletes_duplicate_security_groups() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    let mut duplicate = observed.security_groups[0].clone();
    duplicate.group_id = "sg-0000000f".to_string();
    duplicate.group_name = "linkplan-web-endpoints-copy".to_string();
    observed.security_groups.push(duplicate);

    let steps = destroy_in_order(&stack, &observed);
    let order = addresses(&steps);
    assert_eq!(
        step(&steps, "security_group.endpoints").id.as_deref(),
        Some(GROUP_ID),
        "the lowest id keeps the address"
    );
    assert_eq!(
        step(&steps, "security_group.endpoints.sg-0000000f")
            .id
            .as_deref(),
        Some("sg-0000000f")
    );
    assert_runs_before(
        &order,
        &[
            ("endpoint.agents", "security_group.endpoints"),
            ("endpoint.agents", "security_group.endpoints.sg-0000000f"),
        ],
    );
}

#[test]
fn destroy_address_clash_is_error() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    // An endpoint whose address tag was edited to the suffixed address of another one.
    let mut edited = support::live_endpoint(&stack, "agents", "vpce-00000002", &[GROUP_ID]);
    edited.tags = support::stack_tags("web", "endpoint.agents.vpce-00000009");
    let duplicate = support::live_endpoint(&stack, "agents", "vpce-00000009", &[GROUP_ID]);
    observed.endpoints.extend([edited, duplicate]);

    assert_eq!(
        destroy_errors(&stack, &observed),
        [
            "no unique step address for `vpce-00000009`: `endpoint.agents` is taken by `vpce-00000001`, and `endpoint.agents.vpce-00000009` by `vpce-00000002`"
        ]
    );
}

#[test]
fn removed_service_duplicates_are_deleted() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let mut observed = converged(&stack);
    // Two endpoints of a service since removed from the config, with one address tag.
    for id in ["vpce-00000007", "vpce-00000005"] {
        let mut orphan = support::live_endpoint(&stack, "agents", id, &[GROUP_ID]);
        orphan.tags = support::stack_tags("web", "endpoint.old");
        observed.endpoints.push(orphan);
    }

    let planned = plan(&stack, &observed);
    let steps = support::order_steps(&planned.steps);
    assert_eq!(
        sorted_strings(&addresses(&steps)),
        ["endpoint.old", "endpoint.old.vpce-00000007"],
        "both endpoints are deleted"
    );
    assert_eq!(
        step(&steps, "endpoint.old").id.as_deref(),
        Some("vpce-00000005"),
        "the lowest id keeps the address"
    );
}

#[test]
fn removed_spoke_duplicate_peerings_are_deleted() {
    let (_, mut observed) = converged_with_spoke();
    let stack = support::stack_from(&hub_with_route_table());
    let tags = support::stack_tags("web", "peering.eu");
    observed.peerings.push(support::peering(
        "pcx-00000002",
        "eu-west-1",
        "active",
        tags,
    ));

    let planned = plan(&stack, &observed);
    let steps = support::order_steps(&planned.steps);
    let order = addresses(&steps);
    assert_eq!(
        sorted_strings(&order),
        [
            "ingress.10.9.0.0/16",
            "peering.eu",
            "peering.eu.pcx-00000002",
            "route.eu.rtb-0000000a.10.9.0.0/16",
            "zone_association.eu",
        ],
        "both peerings are deleted, and the spoke VPC is disassociated once"
    );
    assert_eq!(
        step(&steps, "peering.eu.pcx-00000002").id.as_deref(),
        Some("pcx-00000002")
    );
    assert_runs_before(
        &order,
        &[
            ("zone_association.eu", "peering.eu"),
            ("zone_association.eu", "peering.eu.pcx-00000002"),
        ],
    );
}

//! Diffing the wanted objects of a stack against the observed ones, into steps.
//!
//! Each wanted object has a stable address. The planner finds its live counterpart by the
//! `linkplan:stack` and `linkplan:address` tags, or by content for objects that carry no tags
//! (rules, routes, records, associations), and emits a step only where they differ. Values of
//! objects created in the same apply are [`Value::Output`] references, resolved by the executor.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::observed::{
    EndpointState, HostedZoneState, IngressPermission, Observed, PeeringState, RecordState,
    ServiceLookup, regional_dns_entry,
};
use crate::resource::{
    self, Address, AliasRecord, AliasRecords, AssociationAuthorization, Endpoint, HostedZone,
    IngressRule, PeeringAcceptance, PeeringConnection, Resource, Route, SecurityGroup, TAG_ADDRESS,
    TAG_STACK, Value, VpcAttribute, VpcDnsAttribute, ZoneAssociation, outputs, tags_for,
};
use crate::saas::WORKLOAD_SECURITY;
use crate::stack::{Context, Spoke, Stack, SubnetPolicy};
use crate::step::{Action, Drift, Step};

mod destroy;
mod index;

/// Whether a plan converges the stack on its config or removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Apply,
    Destroy,
}

/// The steps of a plan, unordered, and what needed no change.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub steps: Vec<Step>,
    /// Addresses of wanted objects that already match.
    pub unchanged: Vec<Address>,
    /// Warnings found while planning, such as subnets left out of an endpoint.
    pub warnings: Diagnostics,
    /// Objects changed outside linkplan, sorted.
    pub drift: Vec<Drift>,
}

/// Returns the steps that take the live state `observed` to what `stack` describes.
///
/// # Errors
/// Every conflict that no step can resolve, such as a record of another type at a managed
/// name, a route to another target, or two endpoints carrying the same address tag.
pub fn plan(stack: &Stack, observed: &Observed, mode: Mode) -> Result<Planned, Diagnostics> {
    let mut planner = Planner {
        stack,
        observed,
        index: index::Index::new(stack, observed),
        planned: Planned::default(),
        errors: Diagnostics::default(),
        reported: HashSet::new(),
        claimed: HashMap::new(),
    };
    planner.objects_of_other_hub();
    if !planner.errors.has_errors() {
        match mode {
            Mode::Apply => planner.converge(),
            Mode::Destroy => planner.destroy(),
        }
    }
    if planner.errors.has_errors() {
        return Err(planner.errors);
    }
    let mut planned = planner.planned;
    planned.drift.sort();
    planned.drift.dedup();
    let addresses: BTreeSet<Address> = planned.steps.iter().map(|s| s.address.clone()).collect();
    for step in &mut planned.steps {
        step.depends_on
            .retain(|a| addresses.contains(a) && *a != step.address);
        step.depends_on.sort();
        step.depends_on.dedup();
    }
    Ok(planned)
}

/// Returns the comment linkplan gives the private zone it creates for stack `stack`.
fn zone_comment(stack: &str) -> String {
    format!("Workload Security over PrivateLink, linkplan stack {stack}")
}

/// Returns the name of the security group linkplan creates for a stack's endpoints.
pub fn security_group_name(stack: &str) -> String {
    format!("linkplan-{stack}-endpoints")
}

pub mod addresses {
    //! Addresses of the objects of a stack.
    use crate::resource::{Address, VpcDnsAttribute};

    pub fn vpc_attribute(owner: &str, attribute: VpcDnsAttribute) -> Address {
        let name = match attribute {
            VpcDnsAttribute::DnsSupport => "dns_support",
            VpcDnsAttribute::DnsHostnames => "dns_hostnames",
        };
        Address::new(&["vpc", owner, name])
    }

    pub fn security_group() -> Address {
        Address::from("security_group.endpoints")
    }

    pub fn ingress(cidr: &str) -> Address {
        Address::new(&["ingress", cidr])
    }

    pub fn endpoint(host: &str) -> Address {
        Address::new(&["endpoint", host])
    }

    pub fn zone() -> Address {
        Address::from("zone")
    }

    pub fn records() -> Address {
        Address::from("records")
    }

    pub fn peering(spoke: &str) -> Address {
        Address::new(&["peering", spoke])
    }

    pub fn peering_acceptance(spoke: &str) -> Address {
        Address::new(&["peering_acceptance", spoke])
    }

    pub fn route(spoke: &str, route_table: &str, cidr: &str) -> Address {
        Address::new(&["route", spoke, route_table, cidr])
    }

    pub fn zone_association(spoke: &str) -> Address {
        Address::new(&["zone_association", spoke])
    }

    pub fn zone_authorization(spoke: &str) -> Address {
        Address::new(&["zone_authorization", spoke])
    }

    pub fn zone_authorization_revoke(spoke: &str) -> Address {
        Address::new(&["zone_authorization", spoke, "revoke"])
    }
}

struct Planner<'a> {
    stack: &'a Stack,
    observed: &'a Observed,
    index: index::Index<'a>,
    planned: Planned,
    errors: Diagnostics,
    /// Summaries of the errors recorded so far.
    reported: HashSet<String>,
    /// Addresses given out by [`Planner::claim`], each with the id of its object.
    claimed: HashMap<Address, String>,
}

/// The step address [`Planner::claim`] gives a live object.
struct Claim {
    address: Address,
    /// The id of the object that got the plain address first, when this object got the
    /// address followed by its own id.
    first: Option<String>,
}

/// An object's id when it exists and is kept, or a reference to the step that creates it.
struct Handle {
    value: Value,
    /// The creating or replacing step, to depend on.
    step: Option<Address>,
}

impl Handle {
    fn known(id: &str) -> Self {
        Handle {
            value: Value::known(id),
            step: None,
        }
    }

    fn pending(address: &Address, output: &str) -> Self {
        Handle {
            value: Value::output(address, output),
            step: Some(address.clone()),
        }
    }
}

impl<'a> Planner<'a> {
    fn hub_context(&self) -> Context {
        self.stack.hub_context()
    }

    fn push(&mut self, step: Step) {
        self.planned.steps.push(step);
    }

    fn unchanged(&mut self, address: Address) {
        self.planned.unchanged.push(address);
    }

    /// Records an error once: the hub's side is planned again for each spoke, so the same
    /// finding about a hub route table would otherwise repeat per spoke.
    fn error(&mut self, diagnostic: Diagnostic) {
        if self.reported.insert(diagnostic.summary.clone()) {
            self.errors.push(diagnostic);
        }
    }

    /// Reports `object` as changed outside linkplan, restored by step `restored_by`.
    fn drifted(&mut self, object: String, found: String, restored_by: &Address) {
        self.planned.drift.push(Drift {
            object,
            found,
            restored_by: Some(restored_by.clone()),
            left_alone: None,
        });
    }

    /// Returns the records read from zone `zone_id`, none when it was not read.
    fn zone_records(&self, zone_id: &str) -> &'a [RecordState] {
        let observed = self.observed;
        observed
            .records
            .get(zone_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Returns the stack's live private zone: the one tagged as its `zone`, or the one named
    /// in `zone.adopt`.
    fn owned_zone(&self) -> Option<&'a HostedZoneState> {
        let observed = self.observed;
        observed.hosted_zones.iter().find(|z| {
            z.private
                && z.name == self.stack.zone.name
                && (self.has_address(&z.tags, &addresses::zone())
                    || self.stack.zone.adopt.as_deref() == Some(z.zone_id.as_str()))
        })
    }

    /// Reports whether linkplan set up DNS for `vpc_id` before: only a VPC with DNS support
    /// and hostnames on is associated with the stack's zone.
    fn associated_with_owned_zone(&self, vpc_id: &str) -> bool {
        self.owned_zone()
            .is_some_and(|z| self.index.zone_vpc_region(&z.zone_id, vpc_id).is_some())
    }

    /// Returns the stack's own active peering with `spoke`, which proves an earlier apply.
    fn owned_active_peering(&self, spoke: &Spoke) -> Option<&'a PeeringState> {
        self.live_peering(spoke)
            .filter(|p| self.owned_by_stack(&p.tags) && p.status == "active")
    }

    fn owned_by_stack(&self, tags: &resource::Tags) -> bool {
        tags.get(TAG_STACK).is_some_and(|s| *s == self.stack.name)
    }

    /// Returns the stack named in the `linkplan:stack` tag of `tags` when it is another
    /// stack than this one.
    fn other_stack<'t>(&self, tags: &'t resource::Tags) -> Option<&'t str> {
        tags.get(TAG_STACK)
            .map(String::as_str)
            .filter(|name| *name != self.stack.name)
    }

    /// Returns the address an object of this stack carries in its tags, or `None` for an
    /// object of another stack or of no stack.
    fn stack_address(&self, tags: &resource::Tags) -> Option<Address> {
        if !self.owned_by_stack(tags) {
            return None;
        }
        tags.get(TAG_ADDRESS).map(|a| Address(a.clone()))
    }

    fn has_address(&self, tags: &resource::Tags, address: &Address) -> bool {
        self.owned_by_stack(tags) && tags.get(TAG_ADDRESS).is_some_and(|a| a == address.as_str())
    }

    /// Returns a unique step address for live object `id`, whose tags or kind give it
    /// `address`. Several objects can carry one address tag, as when a resumed apply created
    /// an endpoint again on moto 5.2.5, which ignores the `ClientToken` of CreateVpcEndpoint.
    /// The first object to claim the address keeps it, and each other one gets the address
    /// followed by its own id, such as `endpoint.agents.vpce-0abc`.
    ///
    /// Records an error and returns `None` when that address is taken too, which only address
    /// tags edited by hand can cause.
    fn claim(&mut self, address: &Address, id: &str) -> Option<Claim> {
        let Some(first) = self.claimed.get(address).cloned() else {
            self.claimed.insert(address.clone(), id.to_string());
            return Some(Claim {
                address: address.clone(),
                first: None,
            });
        };
        let suffixed = Address(format!("{address}.{id}"));
        if let Some(other) = self.claimed.get(&suffixed) {
            self.error(
                Diagnostic::error(format!(
                    "no unique step address for `{id}`: `{address}` is taken by `{first}`, and `{suffixed}` by `{other}`"
                ))
                .with_help(format!(
                    "correct the `{TAG_ADDRESS}` tag of one of these objects, or delete `{id}` by hand, then plan again"
                )),
            );
            return None;
        }
        self.claimed.insert(suffixed.clone(), id.to_string());
        Some(Claim {
            address: suffixed,
            first: Some(first),
        })
    }

    /// Returns the private zones tagged as the stack's `zone`, whatever their name, sorted by
    /// id. There can be more than one, such as after an apply with a changed `zone.name`,
    /// which creates a zone of the new name and leaves the old one.
    fn stack_zones(&self) -> Vec<&'a HostedZoneState> {
        let observed = self.observed;
        let zone_address = addresses::zone();
        let mut zones: Vec<&'a HostedZoneState> = observed
            .hosted_zones
            .iter()
            .filter(|z| z.private && self.has_address(&z.tags, &zone_address))
            .collect();
        zones.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
        zones
    }

    /// Rejects a stack whose tagged objects belong to another hub VPC, as when a stack name is
    /// reused for a second hub: planning on would delete the first hub's spokes and point its
    /// records away from its endpoints.
    fn objects_of_other_hub(&mut self) {
        let hub = self.stack.hub.vpc_id.as_str();
        let mut found: Vec<String> = Vec::new();
        for endpoint in &self.observed.endpoints {
            if !endpoint.is_gone() && self.owned_by_stack(&endpoint.tags) && endpoint.vpc_id != hub
            {
                found.push(format!(
                    "endpoint `{}` in `{}`",
                    endpoint.endpoint_id, endpoint.vpc_id
                ));
            }
        }
        for group in &self.observed.security_groups {
            if self.owned_by_stack(&group.tags) && group.vpc_id != hub {
                found.push(format!(
                    "security group `{}` in `{}`",
                    group.group_id, group.vpc_id
                ));
            }
        }
        for zone in &self.observed.hosted_zones {
            if self.has_address(&zone.tags, &addresses::zone())
                && !zone.vpcs.iter().any(|(vpc, _)| vpc == hub)
            {
                let vpcs: Vec<&str> = zone.vpcs.iter().map(|(vpc, _)| vpc.as_str()).collect();
                found.push(format!(
                    "zone `{}` on `{}`",
                    zone.zone_id,
                    vpcs.join("`, `")
                ));
            }
        }
        for peering in &self.observed.peerings {
            if !peering.is_dead()
                && self.owned_by_stack(&peering.tags)
                && peering.requester_vpc_id != hub
                && peering.accepter_vpc_id != hub
            {
                found.push(format!(
                    "peering `{}` of `{}`",
                    peering.peering_id, peering.requester_vpc_id
                ));
            }
        }
        if found.is_empty() {
            return;
        }
        self.error(
            Diagnostic::error(format!(
                "stack `{}` already has objects outside the hub VPC `{hub}`: {}",
                self.stack.name,
                found.join(", ")
            ))
            .with_detail("a stack has one hub; these objects carry its tags but belong to another VPC")
            .with_help("give this config another `name`, or set `hub.vpc_id` back to the VPC the stack was applied to"),
        );
    }

    fn converge(&mut self) {
        let hub_vpc = self.stack.hub.vpc_id.clone();
        let hub_context = self.hub_context();
        let hub_dns = self.vpc_dns("hub", &hub_vpc, &hub_context);
        let group = self.security_group();
        self.ingress_rules(group.as_ref());
        let endpoints = self.endpoints(group.as_ref());
        let zone = self.zone(&hub_dns);
        if let Some(zone) = &zone {
            self.records(zone, &endpoints);
        }
        let stack = self.stack;
        for spoke in &stack.spokes {
            self.spoke(spoke, zone.as_ref());
        }
        self.orphan_peerings();
        self.foreign_associations();
    }

    /// Reports VPCs associated with the stack's zone that are neither the hub nor a spoke of
    /// the config, nor a removed spoke this plan disassociates. linkplan leaves them alone:
    /// someone chose to share the zone with them.
    fn foreign_associations(&mut self) {
        let Some(zone) = self.owned_zone() else {
            return;
        };
        let disassociated: BTreeSet<String> = self
            .planned
            .steps
            .iter()
            .filter_map(|s| match &s.before {
                Some(Resource::ZoneAssociation(a)) if s.action == Action::Delete => {
                    Some(a.vpc_id.clone())
                }
                _ => None,
            })
            .collect();
        for (vpc, region) in &zone.vpcs {
            let managed = *vpc == self.stack.hub.vpc_id
                || self.index.is_spoke_vpc(vpc)
                || disassociated.contains(vpc);
            if managed {
                continue;
            }
            self.planned.drift.push(Drift {
                object: format!("association of zone {} with VPC {vpc}", zone.zone_id),
                found: format!("VPC {vpc} in {region} was associated outside linkplan"),
                restored_by: None,
                left_alone: Some(
                    "it is neither the hub nor a spoke of the config; add it as a spoke to manage it"
                        .to_string(),
                ),
            });
        }
    }

    /// Plans DNS support, then DNS hostnames, on one VPC, and returns the steps to wait for.
    fn vpc_dns(&mut self, owner: &str, vpc_id: &str, context: &Context) -> Vec<Address> {
        let Some(vpc) = self.observed.vpc(vpc_id) else {
            self.error(
                Diagnostic::error(format!("VPC `{vpc_id}` of {} not found in {}", describe_owner(owner), context.region))
                    .with_help("check the VPC id and region in the config, and that the credentials are for its account"),
            );
            return Vec::new();
        };
        let mut waits = Vec::new();
        let attributes = [
            (VpcDnsAttribute::DnsSupport, vpc.dns_support),
            (VpcDnsAttribute::DnsHostnames, vpc.dns_hostnames),
        ];
        for (attribute, enabled) in attributes {
            let address = addresses::vpc_attribute(owner, attribute);
            if enabled {
                self.unchanged(address);
                continue;
            }
            if self.associated_with_owned_zone(vpc_id) {
                self.drifted(
                    format!("VPC {vpc_id} attribute {}", attribute.api_name()),
                    "turned off, so the VPC no longer resolves the private zone".to_string(),
                    &address,
                );
            }
            let resource = |enabled| {
                Resource::VpcAttribute(VpcAttribute {
                    vpc_id: vpc_id.to_string(),
                    attribute,
                    enabled,
                })
            };
            self.push(Step {
                address: address.clone(),
                action: Action::Update,
                context: context.clone(),
                id: Some(vpc_id.to_string()),
                reason: None,
                // AWS needs DNS support on before it accepts DNS hostnames.
                depends_on: waits.clone(),
                before: Some(resource(false)),
                after: Some(resource(true)),
            });
            waits.push(address);
        }
        waits
    }

    fn security_group(&mut self) -> Option<Handle> {
        if !self.stack.hub.manages_security_group() {
            return None;
        }
        let address = addresses::security_group();
        let found: Vec<_> = self
            .observed
            .security_groups
            .iter()
            .filter(|g| self.has_address(&g.tags, &address))
            .collect();
        if found.len() > 1 {
            let ids: Vec<&str> = found.iter().map(|g| g.group_id.as_str()).collect();
            self.error(
                Diagnostic::error(format!(
                    "{} security groups carry the address `{address}`: {}",
                    ids.len(),
                    ids.join(", ")
                ))
                .with_help("delete all but one of them, then plan again"),
            );
            return None;
        }
        if let Some(group) = found.first() {
            self.unchanged(address);
            return Some(Handle::known(&group.group_id));
        }
        let name = security_group_name(&self.stack.name);
        // EC2 rejects a second group of the same name in a VPC, but only at apply.
        if let Some(group) = self
            .observed
            .security_groups
            .iter()
            .find(|g| g.vpc_id == self.stack.hub.vpc_id && g.group_name == name)
        {
            self.error(
                Diagnostic::error(format!(
                    "security group `{}` in the hub VPC is named {name}, the name linkplan gives the stack's group, but does not carry the stack's tags",
                    group.group_id
                ))
                .with_help(format!(
                    "delete it, or tag it `linkplan:stack = {}` and `linkplan:address = {address}` to let linkplan manage it",
                    self.stack.name
                )),
            );
            return None;
        }
        self.push(Step {
            address: address.clone(),
            action: Action::Create,
            context: self.hub_context(),
            id: None,
            reason: None,
            depends_on: Vec::new(),
            before: None,
            after: Some(Resource::SecurityGroup(SecurityGroup {
                vpc_id: self.stack.hub.vpc_id.clone(),
                group_name: name.clone(),
                description: format!(
                    "Workload Security endpoints of linkplan stack {}: TCP {} from clients",
                    self.stack.name, WORKLOAD_SECURITY.port
                ),
                tags: tags_for(&self.stack.name, &address, &name),
            })),
        });
        Some(Handle::pending(&address, outputs::ID))
    }

    /// Returns the CIDRs allowed to reach the endpoints, each with the side it is for.
    fn client_cidrs(&self) -> Vec<(IpNet, String)> {
        let mut cidrs: Vec<(IpNet, String)> = Vec::new();
        if self.stack.hub.client_cidrs.is_empty() {
            if let Some(vpc) = self.observed.vpc(&self.stack.hub.vpc_id) {
                cidrs.extend(vpc.cidrs.iter().map(|c| (*c, "hub".to_string())));
            }
        } else {
            cidrs.extend(
                self.stack
                    .hub
                    .client_cidrs
                    .iter()
                    .map(|c| (*c, "hub".to_string())),
            );
        }
        let mut listed: HashSet<IpNet> = cidrs.iter().map(|(c, _)| *c).collect();
        for spoke in &self.stack.spokes {
            if let Some(vpc) = self.observed.vpc(&spoke.vpc_id) {
                for cidr in &vpc.cidrs {
                    if listed.insert(*cidr) {
                        cidrs.push((*cidr, format!("spoke {}", spoke.name)));
                    }
                }
            }
        }
        cidrs
    }

    fn ingress_rules(&mut self, group: Option<&Handle>) {
        let Some(group) = group else { return };
        let port = WORKLOAD_SECURITY.port;
        let observed = match &group.value {
            Value::Known(id) => self
                .observed
                .security_groups
                .iter()
                .find(|g| &g.group_id == id),
            Value::Output { .. } => None,
        };
        let wanted = self.client_cidrs();
        let is_ours = |permission: &IngressPermission| {
            permission.protocol == "tcp"
                && permission.from_port == Some(port.into())
                && permission.to_port == Some(port.into())
        };
        let allowed: HashSet<&str> = observed
            .iter()
            .flat_map(|g| &g.ingress)
            .filter(|p| is_ours(p))
            .map(|p| p.source.as_str())
            .collect();
        for (cidr, side) in &wanted {
            let address = addresses::ingress(&cidr.to_string());
            if allowed.contains(cidr.to_string().as_str()) {
                self.unchanged(address);
                continue;
            }
            self.push(Step {
                address,
                action: Action::Create,
                context: self.hub_context(),
                id: None,
                reason: None,
                depends_on: group.step.iter().cloned().collect(),
                before: None,
                after: Some(Resource::IngressRule(IngressRule {
                    group_id: group.value.clone(),
                    protocol: "tcp".to_string(),
                    port,
                    cidr: cidr.to_string(),
                    description: format!("Workload Security clients: {side}"),
                })),
            });
        }

        // Rules on the managed group that the config no longer lists are removed, so the
        // group never allows more than the listed clients.
        let Some(observed) = observed else { return };
        let listed: HashSet<String> = wanted.iter().map(|(c, _)| c.to_string()).collect();
        for permission in &observed.ingress {
            if listed.contains(&permission.source) && is_ours(permission) {
                continue;
            }
            let rule = IngressRule {
                group_id: Value::known(&observed.group_id),
                protocol: permission.protocol.clone(),
                port: permission
                    .from_port
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0),
                cidr: permission.source.clone(),
                description: String::new(),
            };
            self.push(Step {
                address: addresses::ingress(&permission.source),
                action: Action::Delete,
                context: self.hub_context(),
                id: Some(observed.group_id.clone()),
                reason: Some("it is not among the client CIDRs of the config".to_string()),
                depends_on: Vec::new(),
                before: Some(Resource::IngressRule(rule)),
                after: None,
            });
        }
    }

    /// Returns the subnets endpoint `host` can use, applying the subnet policy to subnets in
    /// zones its service does not offer.
    fn endpoint_subnets(&mut self, host: &str, service_name: &str) -> Vec<String> {
        let Some(ServiceLookup::Found(service)) = self.observed.services.get(service_name) else {
            return self.stack.hub.subnet_ids.clone();
        };
        let mut subnets = Vec::new();
        for subnet_id in &self.stack.hub.subnet_ids {
            let Some(subnet) = self.observed.subnet(subnet_id) else {
                subnets.push(subnet_id.clone());
                continue;
            };
            if service
                .availability_zone_ids
                .contains(&subnet.availability_zone_id)
            {
                subnets.push(subnet_id.clone());
                continue;
            }
            let summary = format!(
                "subnet `{subnet_id}` is in zone {} ({}), which endpoint service `{service_name}` for `{host}` does not offer",
                subnet.availability_zone_id, subnet.availability_zone
            );
            let detail = format!(
                "the service offers {}",
                service.availability_zone_ids.join(", ")
            );
            match self.stack.hub.subnet_policy {
                SubnetPolicy::Fail => self.error(
                    Diagnostic::error(summary).with_detail(detail).with_help(
                        "use subnets in the offered zones, or set `hub.subnet_policy = \"filter\"` to leave such subnets out",
                    ),
                ),
                SubnetPolicy::Filter => self.planned.warnings.push(
                    Diagnostic::warning(format!("{summary}; it is left out of endpoint.{host}")).with_detail(detail),
                ),
            }
        }
        if subnets.is_empty() && self.stack.hub.subnet_policy == SubnetPolicy::Filter {
            self.error(
                Diagnostic::error(format!(
                    "no subnet of `hub.subnet_ids` is in a zone endpoint.{host} can use"
                ))
                .with_help("add a subnet in one of the zones the service offers"),
            );
        }
        subnets.sort();
        subnets
    }

    fn endpoints(&mut self, group: Option<&Handle>) -> BTreeMap<String, EndpointHandle> {
        let mut handles = BTreeMap::new();
        let group_ids: Vec<Value> = match group {
            Some(handle) => vec![handle.value.clone()],
            None => {
                let mut ids: Vec<Value> = self
                    .stack
                    .hub
                    .security_group_ids
                    .iter()
                    .map(Value::known)
                    .collect();
                ids.sort();
                ids
            }
        };
        for service in &self.stack.services {
            let address = addresses::endpoint(&service.host);
            let subnet_ids = self.endpoint_subnets(&service.host, &service.service_name);
            let wanted = Endpoint {
                service_name: service.service_name.clone(),
                vpc_id: self.stack.hub.vpc_id.clone(),
                subnet_ids,
                security_group_ids: group_ids.clone(),
                private_dns_enabled: service.private_dns,
                tags: tags_for(
                    &self.stack.name,
                    &address,
                    &format!("{}-{}", self.stack.name, service.host),
                ),
            };
            let found: Vec<&EndpointState> = self
                .observed
                .endpoints
                .iter()
                .filter(|e| !e.is_gone() && self.has_address(&e.tags, &address))
                .collect();
            if found.len() > 1 {
                let ids: Vec<&str> = found.iter().map(|e| e.endpoint_id.as_str()).collect();
                self.error(
                    Diagnostic::error(format!(
                        "{} endpoints carry the address `{address}`: {}",
                        ids.len(),
                        ids.join(", ")
                    ))
                    .with_help("delete all but one of them, then plan again"),
                );
                continue;
            }
            let mut depends_on: Vec<Address> =
                group.and_then(|g| g.step.clone()).into_iter().collect();
            let handle = match found.first() {
                None => {
                    self.push(Step {
                        address: address.clone(),
                        action: Action::Create,
                        context: self.hub_context(),
                        id: None,
                        reason: None,
                        depends_on,
                        before: None,
                        after: Some(Resource::Endpoint(wanted)),
                    });
                    EndpointHandle::pending(&address)
                }
                Some(live) => {
                    let before = Endpoint {
                        service_name: live.service_name.clone(),
                        vpc_id: live.vpc_id.clone(),
                        subnet_ids: sorted(&live.subnet_ids),
                        security_group_ids: sorted(&live.security_group_ids)
                            .iter()
                            .map(Value::known)
                            .collect(),
                        private_dns_enabled: live.private_dns_enabled.unwrap_or(false),
                        tags: wanted.tags.clone(),
                    };
                    let action = if before.service_name != wanted.service_name
                        || before.vpc_id != wanted.vpc_id
                    {
                        Some(Action::Replace)
                    } else if before != wanted {
                        Some(Action::Update)
                    } else {
                        None
                    };
                    match action {
                        None => {
                            self.unchanged(address.clone());
                            self.live_endpoint_handle(&address, live)
                        }
                        Some(action) => {
                            if action == Action::Update {
                                depends_on.clear();
                                depends_on.extend(group.and_then(|g| g.step.clone()));
                            }
                            self.push(Step {
                                address: address.clone(),
                                action,
                                context: self.hub_context(),
                                id: Some(live.endpoint_id.clone()),
                                reason: None,
                                depends_on,
                                before: Some(Resource::Endpoint(before)),
                                after: Some(Resource::Endpoint(wanted)),
                            });
                            if action == Action::Replace {
                                EndpointHandle::pending(&address)
                            } else {
                                self.live_endpoint_handle(&address, live)
                            }
                        }
                    }
                }
            };
            handles.insert(service.host.clone(), handle);
        }
        self.orphan_endpoints();
        handles
    }

    fn live_endpoint_handle(&mut self, address: &Address, live: &EndpointState) -> EndpointHandle {
        match regional_dns_entry(&live.endpoint_id, &live.dns_entries) {
            Some(entry) if !is_hosted_zone_id(&entry.hosted_zone_id) => {
                // Route 53 would reject such an alias target only at apply, after the
                // endpoints are made.
                self.error(
                    Diagnostic::error(format!(
                        "endpoint `{}` ({address}) reports `{}` as the hosted zone id of its DNS \
                         entry, which is not a hosted zone id",
                        live.endpoint_id, entry.hosted_zone_id
                    ))
                    .with_detail(
                        "an alias target needs a zone id of at most 32 letters and digits, \
                         such as Z7HUB22UULQXV",
                    )
                    .with_help("describe the endpoint to check its DNS entries, then plan again"),
                );
                EndpointHandle {
                    dns_name: Value::known(""),
                    zone_id: Value::known(""),
                    step: None,
                }
            }
            Some(entry) => EndpointHandle {
                dns_name: Value::known(&entry.dns_name),
                zone_id: Value::known(&entry.hosted_zone_id),
                step: None,
            },
            None => {
                self.error(
                    Diagnostic::error(format!(
                        "endpoint `{}` ({address}) reports no regional DNS entry, so no alias record can point at it",
                        live.endpoint_id
                    ))
                    .with_detail(format!("its state is {}", live.state))
                    .with_help("wait until the endpoint is available, or delete it and plan again"),
                );
                EndpointHandle {
                    dns_name: Value::known(""),
                    zone_id: Value::known(""),
                    step: None,
                }
            }
        }
    }

    /// Plans the removal of endpoints the stack made for services no longer in the config.
    fn orphan_endpoints(&mut self) {
        let wanted: BTreeSet<Address> = self
            .stack
            .services
            .iter()
            .map(|s| addresses::endpoint(&s.host))
            .collect();
        let observed = self.observed;
        let mut orphans: Vec<(Address, &EndpointState)> = observed
            .endpoints
            .iter()
            .filter(|e| !e.is_gone())
            .filter_map(|e| self.stack_address(&e.tags).map(|address| (address, e)))
            .filter(|(address, _)| {
                !wanted.contains(address) && address.as_str().starts_with("endpoint.")
            })
            .collect();
        // In id order, so that the first of several endpoints with one address tag keeps it.
        orphans.sort_by(|a, b| a.1.endpoint_id.cmp(&b.1.endpoint_id));
        for (address, endpoint) in orphans {
            let Some(claim) = self.claim(&address, &endpoint.endpoint_id) else {
                continue;
            };
            self.push(delete_endpoint_step(
                self.hub_context(),
                &claim.address,
                endpoint,
                "its service is no longer in the config",
            ));
        }
    }

    fn zone(&mut self, hub_dns: &[Address]) -> Option<ZoneHandle<'a>> {
        let observed = self.observed;
        let address = addresses::zone();
        let zone_name = &self.stack.zone.name;
        let hub_vpc = &self.stack.hub.vpc_id;
        let private_zones: Vec<&'a HostedZoneState> = observed
            .hosted_zones
            .iter()
            .filter(|z| z.private && &z.name == zone_name)
            .collect();

        let tagged: Vec<&'a HostedZoneState> = private_zones
            .iter()
            .copied()
            .filter(|z| self.has_address(&z.tags, &address))
            .collect();
        if tagged.len() > 1 {
            let ids: Vec<&str> = tagged.iter().map(|z| z.zone_id.as_str()).collect();
            self.error(
                Diagnostic::error(format!(
                    "{} hosted zones carry the address `zone` of this stack: {}",
                    ids.len(),
                    ids.join(", ")
                ))
                .with_help(
                    "delete the extra zones, or remove their linkplan tags, then plan again",
                ),
            );
            return None;
        }
        if let Some(zone) = tagged.first() {
            self.unchanged(address);
            return Some(ZoneHandle {
                id: Handle::known(&zone.zone_id),
                live: Some(zone),
            });
        }

        if let Some(adopt) = &self.stack.zone.adopt {
            let Some(zone) = private_zones.iter().copied().find(|z| &z.zone_id == adopt) else {
                self.error(
                    Diagnostic::error(format!("zone `{adopt}` named in `zone.adopt` is not a private zone named {zone_name}"))
                        .with_help("check the zone id with `aws route53 list-hosted-zones-by-name`"),
                );
                return None;
            };
            // Adopting re-tags the zone, so the other stack would lose it, and a destroy of
            // this stack would delete it.
            if let Some(other) = self.other_stack(&zone.tags) {
                self.error(
                    Diagnostic::error(format!(
                        "zone `{adopt}` named in `zone.adopt` belongs to linkplan stack `{other}`"
                    ))
                    .with_detail(format!(
                        "adopting it would tag it as stack `{}`, whose `plan --destroy` deletes it",
                        self.stack.name
                    ))
                    .with_help(format!(
                        "destroy stack `{other}` first, or, if that stack is no longer used, remove the zone's `{TAG_STACK}` and `{TAG_ADDRESS}` tags; then plan again"
                    )),
                );
                return None;
            }
            if !zone.vpcs.iter().any(|(vpc, _)| vpc == hub_vpc) {
                self.error(
                    Diagnostic::error(format!("zone `{adopt}` named in `zone.adopt` is not associated with the hub VPC `{hub_vpc}`"))
                        .with_help("associate it with the hub VPC first, or remove `zone.adopt` to let linkplan create a zone"),
                );
                return None;
            }
            let tags = tags_for(&self.stack.name, &address, zone_name);
            let resource = |tags| {
                Resource::HostedZone(HostedZone {
                    name: zone.name.clone(),
                    vpc_id: hub_vpc.clone(),
                    vpc_region: self.stack.hub.region.clone(),
                    comment: zone.comment.clone(),
                    tags,
                })
            };
            self.push(Step {
                address: address.clone(),
                action: Action::Adopt,
                context: self.hub_context(),
                id: Some(zone.zone_id.clone()),
                reason: Some("it is named in `zone.adopt`".to_string()),
                depends_on: Vec::new(),
                before: Some(resource(zone.tags.clone())),
                after: Some(resource(tags)),
            });
            return Some(ZoneHandle {
                id: Handle::known(&zone.zone_id),
                live: Some(zone),
            });
        }

        // A second private zone of the same name on the hub VPC would be refused by Route 53
        // with ConflictingDomainExists, after the endpoints were already made.
        if let Some(zone) = private_zones
            .iter()
            .copied()
            .find(|z| z.vpcs.iter().any(|(vpc, _)| vpc == hub_vpc))
        {
            let diagnostic = match self.other_stack(&zone.tags) {
                Some(other) => Diagnostic::error(format!(
                    "private zone `{}` named {zone_name} is already associated with the hub VPC `{hub_vpc}` and belongs to linkplan stack `{other}`",
                    zone.zone_id
                ))
                .with_detail("Route 53 allows one private zone of a name per VPC, and a zone of another stack cannot be adopted")
                .with_help(format!(
                    "remove the VPC from stack `{other}`, or destroy that stack, then plan again"
                )),
                None => {
                    let diagnostic = Diagnostic::error(format!(
                        "private zone `{}` named {zone_name} is already associated with the hub VPC `{hub_vpc}` and is not owned by stack `{}`",
                        zone.zone_id, self.stack.name
                    ));
                    // The zone is tagged by a call after its create, so a run stopped between
                    // the two leaves it untagged, with the comment linkplan gives it.
                    if zone.comment == zone_comment(&self.stack.name) {
                        diagnostic
                            .with_detail("its comment shows that a run of this stack created it and stopped before tagging it")
                            .with_help(format!("finish that run with `linkplan apply --resume PLANFILE` or undo it with `linkplan rollback PLANFILE`; or, to keep the zone, set `adopt = \"{}\"` under [zone]", zone.zone_id))
                    } else {
                        diagnostic.with_help(format!("to let linkplan manage it, set `adopt = \"{}\"` under [zone]", zone.zone_id))
                    }
                }
            };
            self.error(diagnostic);
            return None;
        }

        self.push(Step {
            address: address.clone(),
            action: Action::Create,
            context: self.hub_context(),
            id: None,
            reason: None,
            depends_on: hub_dns.to_vec(),
            before: None,
            after: Some(Resource::HostedZone(HostedZone {
                name: zone_name.clone(),
                vpc_id: hub_vpc.clone(),
                vpc_region: self.stack.hub.region.clone(),
                comment: zone_comment(&self.stack.name),
                tags: tags_for(&self.stack.name, &address, zone_name),
            })),
        });
        Some(ZoneHandle {
            id: Handle::pending(&address, outputs::ID),
            live: None,
        })
    }

    fn records(&mut self, zone: &ZoneHandle, endpoints: &BTreeMap<String, EndpointHandle>) {
        let address = addresses::records();
        let live_records: &[RecordState] = zone
            .live
            .map(|z| self.zone_records(&z.zone_id))
            .unwrap_or_default();

        let mut wanted = Vec::new();
        let mut before = Vec::new();
        let mut depends_on: Vec<Address> = zone.id.step.iter().cloned().collect();
        for service in &self.stack.services {
            let Some(endpoint) = endpoints.get(&service.host) else {
                continue;
            };
            let name = self.stack.zone.record_name(&service.host);
            depends_on.extend(endpoint.step.iter().cloned());
            let record = AliasRecord {
                name: name.clone(),
                record_type: "A".to_string(),
                target_dns_name: endpoint.dns_name.clone(),
                target_zone_id: endpoint.zone_id.clone(),
                evaluate_target_health: false,
            };
            // Only an A record or a CNAME at the name keeps the alias from being written: other
            // types, such as TXT or AAAA, can sit beside it.
            let blocking = |r: &&RecordState| {
                r.name == name && matches!(r.record_type.as_str(), "A" | "CNAME")
            };
            for live in live_records.iter().filter(blocking) {
                match (&live.alias, live.record_type.as_str()) {
                    (Some(alias), "A") if live.set_identifier.is_none() => before.push(AliasRecord {
                        name: name.clone(),
                        record_type: "A".to_string(),
                        target_dns_name: Value::known(&alias.dns_name),
                        target_zone_id: Value::known(&alias.hosted_zone_id),
                        evaluate_target_health: alias.evaluate_target_health,
                    }),
                    _ => self.error(
                        Diagnostic::error(format!(
                            "record `{name}` ({}) already exists in zone `{}`, where linkplan manages an A alias",
                            describe_record(live),
                            zone.live.map(|z| z.zone_id.as_str()).unwrap_or_default()
                        ))
                        .with_help("delete that record, or take it out of the zone, then plan again"),
                    ),
                }
            }
            wanted.push(record);
        }

        // Records the stack wrote for services no longer in the config point at endpoints that
        // are being deleted, so they go too.
        let orphan_names: BTreeSet<String> = self
            .planned
            .steps
            .iter()
            .filter(|s| s.action == Action::Delete && s.address.as_str().starts_with("endpoint."))
            .filter_map(|s| {
                s.address
                    .as_str()
                    .strip_prefix("endpoint.")
                    .map(|h| self.stack.zone.record_name(h))
            })
            .collect();
        for live in live_records
            .iter()
            .filter(|r| orphan_names.contains(&r.name))
        {
            if let (Some(alias), "A") = (&live.alias, live.record_type.as_str()) {
                before.push(AliasRecord {
                    name: live.name.clone(),
                    record_type: "A".to_string(),
                    target_dns_name: Value::known(&alias.dns_name),
                    target_zone_id: Value::known(&alias.hosted_zone_id),
                    evaluate_target_health: alias.evaluate_target_health,
                });
            }
        }

        before.sort_by(|a, b| a.name.cmp(&b.name));
        wanted.sort_by(|a, b| a.name.cmp(&b.name));
        if before == wanted {
            self.unchanged(address);
            return;
        }
        let drifted = self.record_drift(zone, &before, &wanted, &address);
        let action = if before.is_empty() {
            Action::Create
        } else {
            Action::Update
        };
        self.push(Step {
            address,
            action,
            context: self.hub_context(),
            id: zone.id.value.as_known().map(str::to_string),
            reason: drifted.then(|| "a record was changed outside linkplan".to_string()),
            depends_on,
            before: (!before.is_empty()).then(|| {
                Resource::AliasRecords(AliasRecords {
                    zone_id: zone.id.value.clone(),
                    records: before,
                })
            }),
            after: Some(Resource::AliasRecords(AliasRecords {
                zone_id: zone.id.value.clone(),
                records: wanted,
            })),
        });
    }

    /// Rejects the destruction of `zone` while it holds records or VPC associations that
    /// linkplan did not make: Route 53 refuses to delete a zone with records in it, which would
    /// stop a destroy half way, and deleting the zone would drop the other VPCs' names. The
    /// VPCs in `disassociated` are taken off the zone by steps of the same plan.
    fn zone_holds_only_ours(&mut self, zone: &HostedZoneState, disassociated: &[&str]) {
        let managed_names: BTreeSet<String> = self
            .stack
            .services
            .iter()
            .map(|s| self.stack.zone.record_name(&s.host))
            .collect();
        let foreign: Vec<String> = self
            .zone_records(&zone.zone_id)
            .iter()
            .filter(|r| !(r.name == zone.name && matches!(r.record_type.as_str(), "SOA" | "NS")))
            .filter(|r| {
                !(managed_names.contains(&r.name) && r.record_type == "A" && r.alias.is_some())
            })
            .map(|r| format!("{} ({})", r.name, r.record_type))
            .collect();
        if !foreign.is_empty() {
            self.error(
                Diagnostic::error(format!(
                    "zone `{}` holds records linkplan did not write: {}",
                    zone.zone_id,
                    foreign.join(", ")
                ))
                .with_detail("Route 53 deletes only an empty zone, so the destroy would stop half way")
                .with_help("delete those records or move them to another zone, then plan the destroy again"),
            );
        }
        let ours: BTreeSet<&str> = std::iter::once(self.stack.hub.vpc_id.as_str())
            .chain(self.stack.spokes.iter().map(|s| s.vpc_id.as_str()))
            .chain(disassociated.iter().copied())
            .collect();
        let others: Vec<&str> = zone
            .vpcs
            .iter()
            .map(|(vpc, _)| vpc.as_str())
            .filter(|vpc| !ours.contains(vpc))
            .collect();
        if !others.is_empty() {
            self.error(
                Diagnostic::error(format!(
                    "zone `{}` is also associated with {}, which are neither the hub nor a spoke of the config",
                    zone.zone_id,
                    others.join(", ")
                ))
                .with_detail("deleting the zone would take the Workload Security names away from those VPCs too")
                .with_help("disassociate those VPCs from the zone, or add them as spokes, then plan the destroy again"),
            );
        }
    }

    /// Reports the records of the stack's zone that differ from what linkplan wrote, and
    /// whether there are any. Only records whose endpoint already exists can have drifted:
    /// the others were never written.
    fn record_drift(
        &mut self,
        zone: &ZoneHandle,
        before: &[AliasRecord],
        wanted: &[AliasRecord],
        address: &Address,
    ) -> bool {
        let zone_is_ours = zone
            .live
            .is_some_and(|z| self.has_address(&z.tags, &addresses::zone()));
        let mut drifted = false;
        for record in wanted {
            let Some(target) = record.target_dns_name.as_known() else {
                continue;
            };
            let found = match before.iter().find(|b| b.name == record.name) {
                Some(live) if live == record => continue,
                Some(live) => format!(
                    "alias to {}, where linkplan points it at {target}",
                    live.target_dns_name.as_known().unwrap_or_default()
                ),
                None if zone_is_ours => format!("missing; linkplan points it at {target}"),
                None => continue,
            };
            drifted = true;
            self.drifted(format!("record {}", record.name), found, address);
        }
        drifted
    }

    fn spoke(&mut self, spoke: &Spoke, zone: Option<&ZoneHandle>) {
        let context = self.stack.spoke_context(spoke);
        let spoke_dns = self.vpc_dns(&spoke.name, &spoke.vpc_id, &context);
        let peering = self.peering(spoke, &context);
        if let Some(peering) = &peering {
            self.routes(spoke, &context, peering);
        }
        if let Some(zone) = zone {
            self.zone_association(spoke, &context, zone, &spoke_dns);
        }
    }

    /// Reports whether `route` is a leftover of this stack: a blackhole, or a route over a
    /// peering connection that is dead or carries the stack's tag.
    fn is_stale_route(&self, route: &crate::observed::RouteState) -> bool {
        if !route.target.starts_with("pcx-") {
            return false;
        }
        if route.state == "blackhole" {
            return true;
        }
        match self.index.peering(&route.target) {
            None => false,
            Some(peering) => peering.is_dead() || self.owned_by_stack(&peering.tags),
        }
    }

    /// Returns the live peering between the hub and `spoke`, ignoring dead ones.
    fn live_peering(&self, spoke: &Spoke) -> Option<&'a PeeringState> {
        self.index
            .live_peering_between(&self.stack.hub.vpc_id, &spoke.vpc_id)
    }

    fn peering(&mut self, spoke: &Spoke, context: &Context) -> Option<Handle> {
        let address = addresses::peering(&spoke.name);
        let acceptance = addresses::peering_acceptance(&spoke.name);
        let hub_account = self
            .observed
            .account(&self.hub_context())
            .map(str::to_string);
        let spoke_owner = self.observed.vpc(&spoke.vpc_id).map(|v| v.owner_id.clone());

        let (handle, pending_acceptance) = match self.live_peering(spoke) {
            Some(live) => {
                self.unchanged(address.clone());
                (
                    Handle::known(&live.peering_id),
                    live.status == "pending-acceptance",
                )
            }
            None => {
                let accepter_owner_id =
                    spoke_owner.filter(|owner| Some(owner) != hub_account.as_ref());
                let name = format!("{}-{}", self.stack.name, spoke.name);
                self.push(Step {
                    address: address.clone(),
                    action: Action::Create,
                    context: self.hub_context(),
                    id: None,
                    reason: None,
                    depends_on: Vec::new(),
                    before: None,
                    after: Some(Resource::PeeringConnection(PeeringConnection {
                        requester_vpc_id: self.stack.hub.vpc_id.clone(),
                        accepter_vpc_id: spoke.vpc_id.clone(),
                        accepter_region: spoke.region.clone(),
                        accepter_owner_id,
                        tags: tags_for(&self.stack.name, &address, &name),
                    })),
                });
                (Handle::pending(&address, outputs::ID), true)
            }
        };
        if !pending_acceptance {
            self.unchanged(acceptance);
            return Some(handle);
        }
        self.push(Step {
            address: acceptance.clone(),
            action: Action::Create,
            context: context.clone(),
            id: handle.value.as_known().map(str::to_string),
            reason: None,
            depends_on: handle.step.iter().cloned().collect(),
            before: None,
            after: Some(Resource::PeeringAcceptance(PeeringAcceptance {
                peering_id: handle.value.clone(),
                requester_region: self.stack.hub.region.clone(),
            })),
        });
        Some(Handle {
            value: handle.value,
            step: Some(acceptance),
        })
    }

    fn routes(&mut self, spoke: &Spoke, context: &Context, peering: &Handle) {
        let hub_cidrs: Vec<IpNet> = self
            .observed
            .vpc(&self.stack.hub.vpc_id)
            .map(|v| v.cidrs.clone())
            .unwrap_or_default();
        let spoke_cidrs: Vec<IpNet> = self
            .observed
            .vpc(&spoke.vpc_id)
            .map(|v| v.cidrs.clone())
            .unwrap_or_default();
        // Each side's tables, with the owner and the config key that the errors name.
        let sides = [
            (
                self.stack.hub.route_table_ids.clone(),
                spoke_cidrs,
                self.hub_context(),
                &self.stack.hub.vpc_id,
                "the hub".to_string(),
                "`hub.route_table_ids`".to_string(),
            ),
            (
                spoke.route_table_ids.clone(),
                hub_cidrs,
                context.clone(),
                &spoke.vpc_id,
                format!("spoke `{}`", spoke.name),
                format!("the `route_table_ids` of spoke `{}`", spoke.name),
            ),
        ];
        for (tables, destinations, side_context, vpc_id, owner, key) in sides {
            for table_id in &tables {
                let Some(table) = self.observed.route_table(table_id) else {
                    self.error(
                        Diagnostic::error(format!(
                            "route table `{table_id}` of {owner} not found in {}",
                            side_context.region
                        ))
                        .with_help(format!("check the ids in {key}")),
                    );
                    continue;
                };
                if &table.vpc_id != vpc_id {
                    self.error(
                        Diagnostic::error(format!(
                            "route table `{table_id}` of {owner} belongs to VPC `{}`, not `{vpc_id}`",
                            table.vpc_id
                        ))
                        .with_help(format!("list only route tables of `{vpc_id}` in {key}")),
                    );
                    continue;
                }
                for destination in &destinations {
                    let destination = destination.to_string();
                    let address = addresses::route(&spoke.name, table_id, &destination);
                    match self.index.route(table_id, &destination) {
                        Some(route) if peering.value.as_known() == Some(route.target.as_str()) => {
                            self.unchanged(address);
                        }
                        Some(route) if self.is_stale_route(route) => {
                            // A route over a connection that is gone, or over an earlier
                            // peering of this stack, is linkplan's own leftover: replace it.
                            let old = Address(format!("{address}.old"));
                            self.push(Step {
                                address: old.clone(),
                                action: Action::Delete,
                                context: side_context.clone(),
                                id: Some(table_id.clone()),
                                reason: Some(format!("it routes over `{}`, which is gone or was replaced", route.target)),
                                depends_on: Vec::new(),
                                before: Some(Resource::Route(Route {
                                    route_table_id: table_id.clone(),
                                    destination_cidr: destination.clone(),
                                    peering_id: Value::known(&route.target),
                                })),
                                after: None,
                            });
                            let mut depends_on: Vec<Address> = peering.step.iter().cloned().collect();
                            depends_on.push(old);
                            self.push(Step {
                                address,
                                action: Action::Create,
                                context: side_context.clone(),
                                id: None,
                                reason: None,
                                depends_on,
                                before: None,
                                after: Some(Resource::Route(Route {
                                    route_table_id: table_id.clone(),
                                    destination_cidr: destination,
                                    peering_id: peering.value.clone(),
                                })),
                            });
                        }
                        Some(route) => self.error(
                            Diagnostic::error(format!(
                                "route table `{table_id}` of {owner} already routes {destination} to `{}`",
                                route.target
                            ))
                            .with_detail(format!("spoke `{}` needs that destination routed over its peering connection", spoke.name))
                            .with_help(format!("remove the route, or take the table out of {key}")),
                        ),
                        None => self.push(Step {
                            address,
                            action: Action::Create,
                            context: side_context.clone(),
                            id: None,
                            reason: None,
                            depends_on: peering.step.iter().cloned().collect(),
                            before: None,
                            after: Some(Resource::Route(Route {
                                route_table_id: table_id.clone(),
                                destination_cidr: destination,
                                peering_id: peering.value.clone(),
                            })),
                        }),
                    }
                }
            }
        }
    }

    fn zone_association(
        &mut self,
        spoke: &Spoke,
        context: &Context,
        zone: &ZoneHandle,
        spoke_dns: &[Address],
    ) {
        let address = addresses::zone_association(&spoke.name);
        let associated = |zone: &HostedZoneState| {
            self.index
                .zone_vpc_region(&zone.zone_id, &spoke.vpc_id)
                .is_some()
        };
        if zone.live.is_some_and(associated) {
            self.unchanged(address);
            return;
        }
        if let Some(other) = self.observed.hosted_zones.iter().find(|z| {
            z.private
                && z.name == self.stack.zone.name
                && Some(z.zone_id.as_str()) != zone.id.value.as_known()
                && associated(z)
        }) {
            self.error(
                Diagnostic::error(format!(
                    "spoke VPC `{}` is already associated with another private zone named {} (`{}`)",
                    spoke.vpc_id, other.name, other.zone_id
                ))
                .with_help("disassociate that zone from the spoke VPC, or leave the spoke out of the config"),
            );
            return;
        }
        if let (Some(live), Some(_)) = (zone.live, self.owned_active_peering(spoke)) {
            self.drifted(
                format!(
                    "association of zone {} with VPC {}",
                    live.zone_id, spoke.vpc_id
                ),
                "missing, though the spoke's peering is in place".to_string(),
                &address,
            );
        }
        let mut depends_on: Vec<Address> = zone.id.step.iter().cloned().collect();
        depends_on.extend(spoke_dns.iter().cloned());
        let hub_account = self.observed.account(&self.hub_context());
        let spoke_owner = self
            .observed
            .vpc(&spoke.vpc_id)
            .map(|v| v.owner_id.as_str());
        let cross_account =
            matches!((hub_account, spoke_owner), (Some(hub), Some(owner)) if hub != owner);
        if cross_account {
            let authorization = addresses::zone_authorization(&spoke.name);
            let resource = Resource::AssociationAuthorization(AssociationAuthorization {
                zone_id: zone.id.value.clone(),
                vpc_id: spoke.vpc_id.clone(),
                vpc_region: spoke.region.clone(),
            });
            self.push(Step {
                address: authorization.clone(),
                action: Action::Create,
                context: self.hub_context(),
                id: None,
                reason: Some(format!(
                    "the zone's account authorizes the association of a VPC of account {}",
                    spoke_owner.unwrap_or_default()
                )),
                depends_on: depends_on.clone(),
                before: None,
                after: Some(resource.clone()),
            });
            self.push(Step {
                address: addresses::zone_authorization_revoke(&spoke.name),
                action: Action::Delete,
                context: self.hub_context(),
                id: None,
                reason: Some(
                    "an authorization is no longer needed once the VPC is associated".to_string(),
                ),
                depends_on: vec![address.clone()],
                before: Some(resource),
                after: None,
            });
            depends_on.push(authorization);
        }
        self.push(Step {
            address,
            action: Action::Create,
            context: context.clone(),
            id: None,
            reason: None,
            depends_on,
            before: None,
            after: Some(Resource::ZoneAssociation(ZoneAssociation {
                zone_id: zone.id.value.clone(),
                vpc_id: spoke.vpc_id.clone(),
                vpc_region: spoke.region.clone(),
            })),
        });
    }

    /// Plans the removal of peerings the stack made for spokes no longer in the config.
    fn orphan_peerings(&mut self) {
        let wanted: BTreeSet<Address> = self
            .stack
            .spokes
            .iter()
            .map(|s| addresses::peering(&s.name))
            .collect();
        let observed = self.observed;
        let mut orphans: Vec<(Address, &PeeringState)> = observed
            .peerings
            .iter()
            .filter(|p| !p.is_dead())
            .filter_map(|p| self.stack_address(&p.tags).map(|address| (address, p)))
            .filter(|(address, _)| !wanted.contains(address))
            .collect();
        // In id order, so that the first of several peerings with one address tag keeps it.
        orphans.sort_by(|a, b| a.1.peering_id.cmp(&b.1.peering_id));
        for (address, peering) in orphans {
            // A peering that joins the hub to a VPC of the config is that spoke's, under an old
            // name: the renamed spoke's steps find it by its VPCs and keep it, with its routes.
            if let Some(spoke) = self.renamed_spoke_of(peering) {
                self.planned.warnings.push(
                    Diagnostic::warning(format!(
                        "peering `{}` of spoke `{}` carries the address tag `{address}` of an earlier name of that spoke; it is kept",
                        peering.peering_id, spoke.name
                    ))
                    .with_help(format!(
                        "set its tag `{TAG_ADDRESS}` to `{}` so that a destroy of the stack names it after the spoke",
                        addresses::peering(&spoke.name)
                    )),
                );
                continue;
            }
            let Some(claim) = self.claim(&address, &peering.peering_id) else {
                continue;
            };
            let dependents = self.orphan_spoke_cleanup(&address, peering);
            let mut step = delete_peering_step(
                self.hub_context(),
                &claim.address,
                peering,
                "its spoke is no longer in the config",
            );
            step.depends_on = dependents;
            self.push(step);
        }
    }

    /// Returns the spoke of the config whose VPC `peering` joins to the hub, if any.
    fn renamed_spoke_of(&self, peering: &PeeringState) -> Option<&'a Spoke> {
        let hub = self.stack.hub.vpc_id.as_str();
        let other = if peering.requester_vpc_id == hub {
            peering.accepter_vpc_id.as_str()
        } else if peering.accepter_vpc_id == hub {
            peering.requester_vpc_id.as_str()
        } else {
            return None;
        };
        self.index.spoke_in(other)
    }

    /// Plans the removal of what joins the hub to a spoke that left the config: the routes
    /// over its peering in the hub's route tables, and the associations of the stack's zones
    /// with its VPC.
    /// Returns their addresses, for the peering's deletion to wait for.
    ///
    /// NOTE: the spoke's own route tables are known only from its config, so routes back to
    /// the hub stay there; the plan warns about them.
    fn orphan_spoke_cleanup(
        &mut self,
        peering_address: &Address,
        peering: &PeeringState,
    ) -> Vec<Address> {
        let spoke = peering_address
            .as_str()
            .trim_start_matches("peering.")
            .to_string();
        let mut addresses_made = Vec::new();
        for table_id in &self.stack.hub.route_table_ids {
            for route in self.index.routes_over(table_id, &peering.peering_id) {
                let address = addresses::route(&spoke, table_id, &route.destination_cidr);
                addresses_made.push(address.clone());
                let mut step = delete_route_step(
                    self.hub_context(),
                    address,
                    table_id,
                    &route.destination_cidr,
                    &peering.peering_id,
                );
                step.reason = Some(format!("spoke `{spoke}` is no longer in the config"));
                self.push(step);
            }
        }
        let vpc_id = &peering.accepter_vpc_id;
        for zone in self.stack_zones() {
            let Some(region) = self.index.zone_vpc_region(&zone.zone_id, vpc_id) else {
                continue;
            };
            // Another peering with the VPC, such as a second one with the same address tag,
            // may have planned this disassociation already.
            if let Some(planned) = self.planned_disassociation(&zone.zone_id, vpc_id) {
                addresses_made.push(planned);
                continue;
            }
            let Some(claim) = self.claim(&addresses::zone_association(&spoke), &zone.zone_id)
            else {
                continue;
            };
            addresses_made.push(claim.address.clone());
            // The zone's account may disassociate any VPC from it, so the hub's credentials
            // do, with the VPC's region.
            let context = Context {
                region: region.to_string(),
                credentials: self.stack.hub.credentials.clone(),
            };
            let mut step = delete_association_step(context, claim.address, zone, vpc_id, region);
            step.reason = Some(format!("spoke `{spoke}` is no longer in the config"));
            self.push(step);
        }
        self.planned.warnings.push(
            Diagnostic::warning(format!(
                "routes to `{}` in the route tables of VPC `{}` (spoke `{spoke}`, no longer in the config) are not removed",
                peering.peering_id, peering.accepter_vpc_id
            ))
            .with_help("delete them by hand once the peering is gone: they point at nothing"),
        );
        addresses_made
    }

    /// Returns the address of the step of this plan that disassociates `vpc_id` from zone
    /// `zone_id`, if there is one.
    fn planned_disassociation(&self, zone_id: &str, vpc_id: &str) -> Option<Address> {
        self.planned
            .steps
            .iter()
            .find_map(|step| match &step.before {
                Some(Resource::ZoneAssociation(association))
                    if step.action == Action::Delete
                        && association.zone_id.as_known() == Some(zone_id)
                        && association.vpc_id == vpc_id =>
                {
                    Some(step.address.clone())
                }
                _ => None,
            })
    }
}

/// Regional DNS name and zone id of an endpoint, known or to come from its step.
struct EndpointHandle {
    dns_name: Value,
    zone_id: Value,
    step: Option<Address>,
}

impl EndpointHandle {
    fn pending(address: &Address) -> Self {
        EndpointHandle {
            dns_name: Value::output(address, outputs::DNS_NAME),
            zone_id: Value::output(address, outputs::DNS_ZONE_ID),
            step: Some(address.clone()),
        }
    }
}

struct ZoneHandle<'a> {
    id: Handle,
    live: Option<&'a HostedZoneState>,
}

fn delete_endpoint_step(
    context: Context,
    address: &Address,
    endpoint: &EndpointState,
    reason: &str,
) -> Step {
    Step {
        address: address.clone(),
        action: Action::Delete,
        context,
        id: Some(endpoint.endpoint_id.clone()),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        depends_on: Vec::new(),
        before: Some(Resource::Endpoint(Endpoint {
            service_name: endpoint.service_name.clone(),
            vpc_id: endpoint.vpc_id.clone(),
            subnet_ids: sorted(&endpoint.subnet_ids),
            security_group_ids: sorted(&endpoint.security_group_ids)
                .iter()
                .map(Value::known)
                .collect(),
            private_dns_enabled: endpoint.private_dns_enabled.unwrap_or(false),
            tags: endpoint.tags.clone(),
        })),
        after: None,
    }
}

/// Returns the step that deletes the route to `destination_cidr` over `peering_id` from route
/// table `table_id`.
fn delete_route_step(
    context: Context,
    address: Address,
    table_id: &str,
    destination_cidr: &str,
    peering_id: &str,
) -> Step {
    Step {
        address,
        action: Action::Delete,
        context,
        id: Some(table_id.to_string()),
        reason: None,
        depends_on: Vec::new(),
        before: Some(Resource::Route(Route {
            route_table_id: table_id.to_string(),
            destination_cidr: destination_cidr.to_string(),
            peering_id: Value::known(peering_id),
        })),
        after: None,
    }
}

/// Returns the step that disassociates VPC `vpc_id`, in `vpc_region`, from `zone`.
fn delete_association_step(
    context: Context,
    address: Address,
    zone: &HostedZoneState,
    vpc_id: &str,
    vpc_region: &str,
) -> Step {
    Step {
        address,
        action: Action::Delete,
        context,
        id: Some(zone.zone_id.clone()),
        reason: None,
        depends_on: Vec::new(),
        before: Some(Resource::ZoneAssociation(ZoneAssociation {
            zone_id: Value::known(&zone.zone_id),
            vpc_id: vpc_id.to_string(),
            vpc_region: vpc_region.to_string(),
        })),
        after: None,
    }
}

fn delete_peering_step(
    context: Context,
    address: &Address,
    peering: &PeeringState,
    reason: &str,
) -> Step {
    Step {
        address: address.clone(),
        action: Action::Delete,
        context,
        id: Some(peering.peering_id.clone()),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        depends_on: Vec::new(),
        before: Some(Resource::PeeringConnection(PeeringConnection {
            requester_vpc_id: peering.requester_vpc_id.clone(),
            accepter_vpc_id: peering.accepter_vpc_id.clone(),
            accepter_region: peering.accepter_region.clone(),
            accepter_owner_id: None,
            tags: peering.tags.clone(),
        })),
        after: None,
    }
}

/// Reports whether `id` has the shape of a Route 53 hosted zone id: 1 to 32 ASCII letters and
/// digits, without the `/hostedzone/` prefix.
fn is_hosted_zone_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

fn sorted(values: &[String]) -> Vec<String> {
    let mut values = values.to_vec();
    values.sort();
    values
}

fn describe_owner(owner: &str) -> String {
    if owner == "hub" {
        "the hub".to_string()
    } else {
        format!("spoke `{owner}`")
    }
}

fn describe_record(record: &RecordState) -> String {
    match (&record.alias, record.set_identifier.as_deref()) {
        (_, Some(id)) => format!("{} with routing policy set `{id}`", record.record_type),
        (Some(_), None) => format!("{} alias", record.record_type),
        (None, None) => format!("{} {}", record.record_type, record.values.join(" ")),
    }
}

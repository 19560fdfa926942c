//! The typed attributes of everything linkplan manages, shared by plans, steps and the provider.
//!
//! A [`Resource`] is what one object should look like (a step's `after`) or looked like when
//! planned (its `before`). Values that exist only once another step has run, such as the id of
//! an endpoint created in the same apply, are [`Value::Output`] references to that step.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Tag keys linkplan puts on every object it creates. Part of the public contract: scripts and
/// IAM conditions rely on them.
pub const TAG_STACK: &str = "linkplan:stack";
pub const TAG_ADDRESS: &str = "linkplan:address";
pub const TAG_NAME: &str = "Name";

/// Tags as key and value, sorted by key.
pub type Tags = BTreeMap<String, String>;

/// Returns the tags of the object at `address` in stack `stack`.
pub fn tags_for(stack: &str, address: &Address, name: &str) -> Tags {
    Tags::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ADDRESS.to_string(), address.to_string()),
        (TAG_NAME.to_string(), name.to_string()),
    ])
}

/// A stable, human-readable name of one step's object, such as `endpoint.agents` or
/// `route.eu-web.rtb-0abc.10.1.0.0/16`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(pub String);

impl Address {
    pub fn new(parts: &[&str]) -> Self {
        Address(parts.join("."))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Address {
    fn from(value: &str) -> Self {
        Address(value.to_string())
    }
}

/// A string attribute: known when planned, or an output of another step of the same plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Known(String),
    /// Output `output` (such as `id` or `dns_name`) of the step at `from`.
    Output {
        from: Address,
        output: String,
    },
}

impl Value {
    pub fn known(value: impl Into<String>) -> Self {
        Value::Known(value.into())
    }

    pub fn output(from: &Address, output: &str) -> Self {
        Value::Output {
            from: from.clone(),
            output: output.to_string(),
        }
    }

    /// Returns the value when it is known.
    pub fn as_known(&self) -> Option<&str> {
        match self {
            Value::Known(value) => Some(value),
            Value::Output { .. } => None,
        }
    }

    /// Returns the known value, or an error naming the unresolved reference.
    ///
    /// # Errors
    /// The value is still a reference: the executor resolves every reference before a step
    /// reaches the provider, so this points at a bug in the plan or the executor.
    pub fn require(&self) -> Result<&str, String> {
        match self {
            Value::Known(value) => Ok(value),
            Value::Output { from, output } => Err(format!("unresolved value {from}.{output}")),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Known(value) => f.write_str(value),
            Value::Output { .. } => f.write_str("(known after apply)"),
        }
    }
}

/// Standard outputs a step records for the steps that refer to it.
pub mod outputs {
    /// The object's AWS id (endpoint, group, zone, peering).
    pub const ID: &str = "id";
    /// An endpoint's regional DNS name.
    pub const DNS_NAME: &str = "dns_name";
    /// The hosted zone id of an endpoint's regional DNS entry, used as an alias target zone.
    pub const DNS_ZONE_ID: &str = "dns_zone_id";
}

/// One of the two DNS attributes of a VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VpcDnsAttribute {
    #[serde(rename = "enableDnsSupport")]
    DnsSupport,
    #[serde(rename = "enableDnsHostnames")]
    DnsHostnames,
}

impl VpcDnsAttribute {
    /// Returns the attribute's name in the EC2 API.
    pub fn api_name(self) -> &'static str {
        match self {
            VpcDnsAttribute::DnsSupport => "enableDnsSupport",
            VpcDnsAttribute::DnsHostnames => "enableDnsHostnames",
        }
    }
}

/// The attributes of one managed object, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    VpcAttribute(VpcAttribute),
    SecurityGroup(SecurityGroup),
    IngressRule(IngressRule),
    Endpoint(Endpoint),
    HostedZone(HostedZone),
    AliasRecords(AliasRecords),
    PeeringConnection(PeeringConnection),
    PeeringAcceptance(PeeringAcceptance),
    Route(Route),
    ZoneAssociation(ZoneAssociation),
    AssociationAuthorization(AssociationAuthorization),
}

impl Resource {
    /// Returns the kind's name as the plan file spells it, such as `endpoint`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::VpcAttribute(_) => "vpc_attribute",
            Resource::SecurityGroup(_) => "security_group",
            Resource::IngressRule(_) => "ingress_rule",
            Resource::Endpoint(_) => "endpoint",
            Resource::HostedZone(_) => "hosted_zone",
            Resource::AliasRecords(_) => "alias_records",
            Resource::PeeringConnection(_) => "peering_connection",
            Resource::PeeringAcceptance(_) => "peering_acceptance",
            Resource::Route(_) => "route",
            Resource::ZoneAssociation(_) => "zone_association",
            Resource::AssociationAuthorization(_) => "association_authorization",
        }
    }

    /// Returns every reference to another step's output in these attributes.
    pub fn references(&self) -> Vec<&Value> {
        let mut values: Vec<&Value> = Vec::new();
        match self {
            Resource::VpcAttribute(_)
            | Resource::SecurityGroup(_)
            | Resource::HostedZone(_)
            | Resource::PeeringConnection(_) => {}
            Resource::IngressRule(rule) => values.push(&rule.group_id),
            Resource::Endpoint(endpoint) => values.extend(&endpoint.security_group_ids),
            Resource::AliasRecords(records) => {
                values.push(&records.zone_id);
                for record in &records.records {
                    values.push(&record.target_dns_name);
                    values.push(&record.target_zone_id);
                }
            }
            Resource::PeeringAcceptance(acceptance) => values.push(&acceptance.peering_id),
            Resource::Route(route) => values.push(&route.peering_id),
            Resource::ZoneAssociation(association) => values.push(&association.zone_id),
            Resource::AssociationAuthorization(authorization) => {
                values.push(&authorization.zone_id)
            }
        }
        values.retain(|value| matches!(value, Value::Output { .. }));
        values
    }

    /// Replaces every reference with the known value `resolve` returns for it.
    ///
    /// # Errors
    /// The first reference `resolve` has no value for, as `step.output`.
    pub fn resolve(
        &mut self,
        resolve: &dyn Fn(&Address, &str) -> Option<String>,
    ) -> Result<(), String> {
        let mut result = Ok(());
        let mut fix = |value: &mut Value| {
            if let Value::Output { from, output } = value {
                match resolve(from, output) {
                    Some(known) => *value = Value::Known(known),
                    None if result.is_ok() => result = Err(format!("{from}.{output}")),
                    None => {}
                }
            }
        };
        match self {
            Resource::VpcAttribute(_)
            | Resource::SecurityGroup(_)
            | Resource::HostedZone(_)
            | Resource::PeeringConnection(_) => {}
            Resource::IngressRule(rule) => fix(&mut rule.group_id),
            Resource::Endpoint(endpoint) => endpoint.security_group_ids.iter_mut().for_each(fix),
            Resource::AliasRecords(records) => {
                fix(&mut records.zone_id);
                for record in &mut records.records {
                    fix(&mut record.target_dns_name);
                    fix(&mut record.target_zone_id);
                }
            }
            Resource::PeeringAcceptance(acceptance) => fix(&mut acceptance.peering_id),
            Resource::Route(route) => fix(&mut route.peering_id),
            Resource::ZoneAssociation(association) => fix(&mut association.zone_id),
            Resource::AssociationAuthorization(authorization) => fix(&mut authorization.zone_id),
        }
        result
    }
}

/// `enableDnsSupport` or `enableDnsHostnames` of one VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcAttribute {
    pub vpc_id: String,
    pub attribute: VpcDnsAttribute,
    pub enabled: bool,
}

/// The security group linkplan creates for the endpoints, when the config names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub vpc_id: String,
    pub group_name: String,
    pub description: String,
    pub tags: Tags,
}

// In the structs below, fields that can hold a step output (a `Value`, written as a table) come
// after every plain field. toml 1.2.2 writes a plan's `[[step]]` array in time quadratic in its
// length when a plain value follows a table in each element.

/// One inbound rule of the endpoints' group: a TCP port from one CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    pub protocol: String,
    pub port: u16,
    pub cidr: String,
    pub description: String,
    pub group_id: Value,
}

/// An interface VPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub service_name: String,
    pub vpc_id: String,
    /// Sorted subnet ids, at most one per availability zone.
    pub subnet_ids: Vec<String>,
    /// Sent explicitly on create: the API turns private DNS on when the field is left out.
    pub private_dns_enabled: bool,
    /// Sorted group ids; never empty, so AWS never falls back to the VPC's default group.
    pub security_group_ids: Vec<Value>,
    pub tags: Tags,
}

/// The private hosted zone, created associated with the hub VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedZone {
    /// Domain, lowercase, without a trailing dot.
    pub name: String,
    pub vpc_id: String,
    pub vpc_region: String,
    pub comment: String,
    pub tags: Tags,
}

/// All alias records of the zone, written in one all-or-nothing change batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecords {
    pub zone_id: Value,
    /// Sorted by name.
    pub records: Vec<AliasRecord>,
}

/// An `A` alias record pointing at an endpoint's regional DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// Fully qualified, lowercase, without a trailing dot.
    pub name: String,
    pub record_type: String,
    pub evaluate_target_health: bool,
    pub target_dns_name: Value,
    /// The hosted zone id of the endpoint's DNS entry, never the private zone's own id.
    pub target_zone_id: Value,
}

/// A VPC peering connection requested from the hub's region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringConnection {
    pub requester_vpc_id: String,
    pub accepter_vpc_id: String,
    pub accepter_region: String,
    /// Set only when the accepter VPC is in another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepter_owner_id: Option<String>,
    pub tags: Tags,
}

/// The acceptance of a peering connection, made from the accepter's region and account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringAcceptance {
    /// The hub's region, where the connection must also read `active` before routes are added.
    pub requester_region: String,
    pub peering_id: Value,
}

/// A route to a CIDR over a peering connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub route_table_id: String,
    pub destination_cidr: String,
    pub peering_id: Value,
}

/// The private zone associated with one more VPC, in that VPC's own region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneAssociation {
    pub vpc_id: String,
    pub vpc_region: String,
    pub zone_id: Value,
}

/// The zone account's permission for another account's VPC to associate with the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationAuthorization {
    pub vpc_id: String,
    pub vpc_region: String,
    pub zone_id: Value,
}

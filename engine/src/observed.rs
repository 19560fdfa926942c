//! The live state as the provider read it, normalized so that values meaning the same thing
//! compare equal: ids without prefixes, names lowercase without a trailing dot, states lowercase,
//! lists sorted.
//!
//! Absent objects are kept too (`None` in the maps keyed by id), because a plan depends on what
//! it did not find as much as on what it found.

use std::collections::{BTreeMap, HashSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::resource::{TAG_STACK, Tags};
use crate::stack::{Context, Stack};

/// Everything one read of a stack found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The account each context's credentials belong to.
    pub identities: Vec<(Context, Identity)>,
    /// VPCs named in the config, by id.
    pub vpcs: BTreeMap<String, Option<VpcState>>,
    /// Subnets named in the config, by id.
    pub subnets: BTreeMap<String, Option<SubnetState>>,
    /// Availability zone name to zone id, per region read.
    pub zone_ids: BTreeMap<String, BTreeMap<String, String>>,
    /// Endpoint services named in the config, by service name.
    pub services: BTreeMap<String, ServiceLookup>,
    /// Every interface endpoint in the hub VPC, by any creator, sorted by id. Endpoints that
    /// read `deleting` or `deleted` are kept here, and the planner treats them as absent.
    pub endpoints: Vec<EndpointState>,
    /// Groups named in the config, and groups tagged with the stack, sorted by id.
    pub security_groups: Vec<SecurityGroupState>,
    /// Hosted zones with the zone's name, public or private, sorted by id.
    pub hosted_zones: Vec<HostedZoneState>,
    /// The record sets of each hosted zone in `hosted_zones` that is private, by zone id.
    pub records: BTreeMap<String, Vec<RecordState>>,
    /// Peering connections between the hub VPC and any spoke VPC, or tagged with the stack.
    pub peerings: Vec<PeeringState>,
    /// Route tables named in the config, by id.
    pub route_tables: BTreeMap<String, Option<RouteTableState>>,
}

/// The account behind one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub account_id: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcState {
    pub vpc_id: String,
    pub region: String,
    pub owner_id: String,
    /// Associated IPv4 blocks, the primary first, secondary blocks after it.
    pub cidrs: Vec<IpNet>,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    /// Whether the VPC's DHCP options resolve through AmazonProvidedDNS; `None` when unknown.
    #[serde(default)]
    pub amazon_dns: Option<bool>,
    /// Whether any route table of the VPC has a default route to an internet or NAT gateway.
    #[serde(default)]
    pub internet_route: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetState {
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub cidr: String,
}

/// The result of DescribeVpcEndpointServices for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ServiceLookup {
    Found(ServiceState),
    /// `InvalidServiceName`: a wrong name, or an account the provider has not allowlisted.
    NotFound {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub service_name: String,
    /// Zones the service offers, as ids (`use1-az1`), sorted. Names the API reports are
    /// mapped to ids with the caller's own zone mapping.
    pub availability_zone_ids: Vec<String>,
    pub acceptance_required: bool,
    /// The service's published private DNS name; the Workload Security services have none.
    #[serde(default)]
    pub private_dns_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub endpoint_id: String,
    pub vpc_id: String,
    pub service_name: String,
    /// Lowercase state: pendingacceptance, pending, available, deleting, deleted, rejected,
    /// failed, expired, partial.
    pub state: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub private_dns_enabled: Option<bool>,
    /// DNS entries in the order the API returned them. The snapshot sorts them.
    pub dns_entries: Vec<DnsEntry>,
    #[serde(default)]
    pub network_interface_ids: Vec<String>,
    pub tags: Tags,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl EndpointState {
    /// Reports whether the endpoint is gone or going: such endpoints stay listed for a while
    /// after deletion and must be neither adopted nor deleted again.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "deleting" | "deleted")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DnsEntry {
    /// Lowercase, without a trailing dot.
    pub dns_name: String,
    pub hosted_zone_id: String,
}

/// Picks the regional DNS entry of endpoint `endpoint_id`: the one whose first label is the
/// endpoint id plus one suffix, such as `vpce-0abc-1x2y3z`. Zonal entries add the zone name
/// to that label, and private DNS names do not start with the endpoint id at all.
pub fn regional_dns_entry<'a>(endpoint_id: &str, entries: &'a [DnsEntry]) -> Option<&'a DnsEntry> {
    entries.iter().find(|entry| {
        let first_label = entry.dns_name.split('.').next().unwrap_or_default();
        first_label
            .strip_prefix(endpoint_id)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| !suffix.is_empty() && !suffix.contains('-'))
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupState {
    pub group_id: String,
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    pub vpc_id: String,
    pub tags: Tags,
    /// Inbound rules, one per protocol, port range and source, sorted.
    pub ingress: Vec<IngressPermission>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IngressPermission {
    /// Lowercase protocol name, or `-1` for all.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// A CIDR, IPv4 or IPv6, or a group id for rules that reference a group.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedZoneState {
    /// Without the `/hostedzone/` prefix.
    pub zone_id: String,
    /// Lowercase, without a trailing dot.
    pub name: String,
    pub private: bool,
    /// The zone's comment; empty when it has none or when it was not read.
    #[serde(default)]
    pub comment: String,
    pub tags: Tags,
    /// Associated VPCs as (VPC id, region), sorted. Empty for public zones.
    pub vpcs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordState {
    /// Lowercase, without a trailing dot.
    pub name: String,
    pub record_type: String,
    #[serde(default)]
    pub alias: Option<AliasTargetState>,
    /// Record values of a non-alias record, sorted.
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub ttl: Option<i64>,
    /// Set on weighted, latency and other routing-policy records.
    #[serde(default)]
    pub set_identifier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AliasTargetState {
    /// Lowercase, without a trailing dot.
    pub dns_name: String,
    pub hosted_zone_id: String,
    pub evaluate_target_health: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringState {
    pub peering_id: String,
    pub requester_vpc_id: String,
    pub requester_region: String,
    pub requester_owner_id: String,
    pub accepter_vpc_id: String,
    pub accepter_region: String,
    pub accepter_owner_id: String,
    /// Lowercase status code: initiating-request, pending-acceptance, provisioning, active,
    /// rejected, failed, expired, deleting, deleted.
    pub status: String,
    #[serde(default)]
    pub status_message: Option<String>,
    pub tags: Tags,
}

impl PeeringState {
    /// Reports whether the connection can no longer carry traffic or be accepted.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.status.as_str(),
            "rejected" | "failed" | "expired" | "deleting" | "deleted"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTableState {
    pub route_table_id: String,
    pub vpc_id: String,
    /// IPv4 routes, sorted by destination.
    pub routes: Vec<RouteState>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteState {
    pub destination_cidr: String,
    /// The target's id (`pcx-…`, `igw-…`, `nat-…`) or `local`.
    pub target: String,
    /// Lowercase: active or blackhole.
    pub state: String,
}

impl Observed {
    /// Returns what a plan records of the live state: per object or query read, keyed like
    /// `vpc/vpc-0abc`, the object's normalized value as compact JSON, `null` for an absent one.
    ///
    /// Two reads of an unchanged account give the same snapshot, so `apply` can tell whether
    /// anything the plan depended on changed since, and show the planned and current values.
    /// Lists of what a lookup found (`endpoints`, `peerings`, ...) have their own keys, so an
    /// object that appears since the plan counts as a change too. Hosted zones, their records
    /// and peerings count only where they concern `stack`: a same-name zone or a peering of
    /// another team's VPCs changes nothing the plan depends on.
    pub fn snapshot(&self, stack: &Stack) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        let mut add = |key: String, value: serde_json::Value| {
            values.insert(key, value.to_string());
        };
        for (context, identity) in &self.identities {
            add(identity_key(context), serde_json::json!(identity));
        }
        for (id, vpc) in &self.vpcs {
            add(format!("vpc/{id}"), serde_json::json!(vpc));
        }
        for (id, subnet) in &self.subnets {
            add(format!("subnet/{id}"), serde_json::json!(subnet));
        }
        for (name, service) in &self.services {
            add(
                format!("endpoint-service/{name}"),
                serde_json::json!(service),
            );
        }
        let mut endpoint_ids = Vec::new();
        for endpoint in self.endpoints.iter().filter(|e| !e.is_gone()) {
            // DNS entries are kept in API order, which can change between two reads.
            let mut endpoint = endpoint.clone();
            endpoint.dns_entries.sort();
            endpoint_ids.push(endpoint.endpoint_id.clone());
            add(
                format!("endpoint/{}", endpoint.endpoint_id),
                serde_json::json!(endpoint),
            );
        }
        endpoint_ids.sort();
        add("endpoints".to_string(), serde_json::json!(endpoint_ids));
        let mut group_ids = Vec::new();
        for group in &self.security_groups {
            group_ids.push(group.group_id.clone());
            add(
                format!("security-group/{}", group.group_id),
                serde_json::json!(group),
            );
        }
        group_ids.sort();
        add("security-groups".to_string(), serde_json::json!(group_ids));

        let vpcs: HashSet<&str> = std::iter::once(stack.hub.vpc_id.as_str())
            .chain(stack.spokes.iter().map(|s| s.vpc_id.as_str()))
            .collect();
        let owned = |tags: &Tags| tags.get(TAG_STACK).is_some_and(|s| *s == stack.name);
        let mut zone_ids = Vec::new();
        for zone in self.hosted_zones.iter().filter(|z| {
            owned(&z.tags)
                || stack.zone.adopt.as_deref() == Some(z.zone_id.as_str())
                || z.vpcs.iter().any(|(vpc, _)| vpcs.contains(vpc.as_str()))
        }) {
            zone_ids.push(zone.zone_id.clone());
            add(
                format!("hosted-zone/{}", zone.zone_id),
                serde_json::json!(zone),
            );
            if let Some(records) = self.records.get(&zone.zone_id) {
                add(
                    format!("records/{}", zone.zone_id),
                    serde_json::json!(records),
                );
            }
        }
        zone_ids.sort();
        add("hosted-zones".to_string(), serde_json::json!(zone_ids));

        let mut peering_ids = Vec::new();
        for peering in self
            .peerings
            .iter()
            // A deleted or failed connection stays listed for a while, and changes nothing a
            // plan does: the planner treats it as absent too.
            .filter(|p| !p.is_dead())
            .filter(|p| {
                owned(&p.tags)
                    || vpcs.contains(p.requester_vpc_id.as_str())
                        && vpcs.contains(p.accepter_vpc_id.as_str())
            })
        {
            peering_ids.push(peering.peering_id.clone());
            add(
                format!("peering/{}", peering.peering_id),
                serde_json::json!(peering),
            );
        }
        peering_ids.sort();
        add("peerings".to_string(), serde_json::json!(peering_ids));
        for (id, table) in &self.route_tables {
            add(format!("route-table/{id}"), serde_json::json!(table));
        }
        values
    }

    pub fn vpc(&self, id: &str) -> Option<&VpcState> {
        self.vpcs.get(id).and_then(Option::as_ref)
    }

    pub fn subnet(&self, id: &str) -> Option<&SubnetState> {
        self.subnets.get(id).and_then(Option::as_ref)
    }

    pub fn route_table(&self, id: &str) -> Option<&RouteTableState> {
        self.route_tables.get(id).and_then(Option::as_ref)
    }

    /// Returns the account of the credentials used for `context`.
    pub fn account(&self, context: &Context) -> Option<&str> {
        self.identities
            .iter()
            .find(|(c, _)| c == context)
            .map(|(_, identity)| identity.account_id.as_str())
    }
}

/// Returns the snapshot key of the identity behind `context`: its region, plus the profile
/// or role when set, so two sets of credentials in one region get two keys.
fn identity_key(context: &Context) -> String {
    let mut key = format!("identity/{}", context.region);
    for part in [&context.credentials.profile, &context.credentials.role_arn]
        .into_iter()
        .flatten()
    {
        key.push('/');
        key.push_str(part);
    }
    key
}

/// Formats bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> DnsEntry {
        DnsEntry {
            dns_name: name.to_string(),
            hosted_zone_id: "Z7HUB22UULQXV".to_string(),
        }
    }

    #[test]
    fn regional_entry_is_found_after_zonal_ones() {
        let entries = [
            entry("vpce-0abc-1x2y3z-us-east-1a.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"),
            entry("vpce-0abc-1x2y3z-us-east-1b.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"),
            entry("vpce-0abc-1x2y3z.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"),
        ];
        let found = regional_dns_entry("vpce-0abc", &entries).unwrap();
        assert_eq!(
            found.dns_name,
            "vpce-0abc-1x2y3z.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"
        );
    }

    #[test]
    fn regional_entry_ignores_private_dns_name() {
        let entries = [entry("agents.deepsecurity.trendmicro.com")];
        assert_eq!(regional_dns_entry("vpce-0abc", &entries), None);
    }

    #[test]
    fn regional_entry_of_empty_list_is_none() {
        assert_eq!(regional_dns_entry("vpce-0abc", &[]), None);
    }

    #[test]
    fn regional_entry_in_moto_form() {
        let entries = [entry(
            "vpce-0abc-k3j4h5g6.com.amazonaws.vpce.us-east-1.vpce-svc-1234abcd",
        )];
        assert!(regional_dns_entry("vpce-0abc", &entries).is_some());
    }
}

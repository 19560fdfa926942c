//! The EC2 half of `read`: one describe call per kind of object and region, pagination
//! followed, and the responses normalized into [`linkplan_engine::observed`] types.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    DhcpOptions, IpPermission, RouteTable, SecurityGroup, ServiceDetail, Subnet, Vpc,
    VpcAttributeName, VpcEndpoint, VpcPeeringConnection,
};
use ipnet::IpNet;
use linkplan_engine::observed::{
    DnsEntry, EndpointState, IngressPermission, PeeringState, RouteState, RouteTableState,
    SecurityGroupState, ServiceLookup, ServiceState, SubnetState, VpcState,
};
use linkplan_engine::provider::ProviderError;
use linkplan_engine::resource::TAG_STACK;
use linkplan_engine::stack::Stack;

use crate::errors::{is_not_found, send};
use crate::normalize::{dns_name, ec2_tags, filter};
use crate::read::join_bounded;
use crate::sdk_config::Ec2;

/// The option set id EC2 reports for a VPC that uses no DHCP option set, so AmazonProvidedDNS.
pub const NO_DHCP_OPTIONS: &str = "default";

/// VPCs of one region whose DNS attributes are read at once, two calls each. EC2 refills the
/// request tokens of describe calls at 20 per second per account and region, from a bucket
/// of 100, so the 16 calls in flight stay well inside a burst.
const MAX_ATTRIBUTE_READS: usize = 8;

/// Reads the VPCs `ids`; absent ones map to `None`.
///
/// DescribeVpcs by id fails as a whole with `InvalidVpcID.NotFound` when any id is absent, so
/// that case is read again with the `vpc-id` filter, which returns only the ones that exist.
pub async fn describe_vpcs(
    ec2: &Ec2,
    ids: &[String],
) -> Result<BTreeMap<String, Option<Vpc>>, ProviderError> {
    let mut found: Vec<Vpc> = Vec::new();
    let by_id = read_vpc_pages(ec2, Some(ids.to_vec()), None, &mut found).await;
    match by_id {
        Ok(()) => {}
        Err(error) if is_not_found(&error) => {
            found.clear();
            let by_filter = Some(vec![filter("vpc-id", ids.iter().cloned())]);
            read_vpc_pages(ec2, None, by_filter, &mut found).await?;
        }
        Err(error) => return Err(error),
    }

    let mut vpcs: BTreeMap<String, Option<Vpc>> = ids.iter().map(|id| (id.clone(), None)).collect();
    for vpc in found {
        if let Some(id) = vpc.vpc_id().map(str::to_string) {
            vpcs.insert(id, Some(vpc));
        }
    }
    Ok(vpcs)
}

async fn read_vpc_pages(
    ec2: &Ec2,
    ids: Option<Vec<String>>,
    filters: Option<Vec<aws_sdk_ec2::types::Filter>>,
    found: &mut Vec<Vpc>,
) -> Result<(), ProviderError> {
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_vpcs()
            .set_vpc_ids(ids.clone())
            .set_filters(filters.clone())
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeVpcs", request)?;
        found.extend(page.vpcs().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(()),
        }
    }
}

/// Reads `enableDnsSupport` and `enableDnsHostnames` of VPC `vpc_id`, one call each: the API
/// returns one attribute per call.
pub async fn describe_dns_attributes(
    ec2: &Ec2,
    vpc_id: &str,
) -> Result<(bool, bool), ProviderError> {
    let support = ec2
        .client
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(VpcAttributeName::EnableDnsSupport);
    let hostnames = ec2
        .client
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(VpcAttributeName::EnableDnsHostnames);
    let (support, hostnames) = tokio::try_join!(
        async { send!(ec2.site, "DescribeVpcAttribute", support) },
        async { send!(ec2.site, "DescribeVpcAttribute", hostnames) },
    )?;
    let support = support
        .enable_dns_support()
        .and_then(|v| v.value())
        .unwrap_or(false);
    let hostnames = hostnames
        .enable_dns_hostnames()
        .and_then(|v| v.value())
        .unwrap_or(false);
    Ok((support, hostnames))
}

/// Reads the DHCP option sets `ids`, by the `dhcp-options-id` filter so that a set deleted
/// meanwhile is simply missing from the response.
pub async fn describe_dhcp_options(
    ec2: &Ec2,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, DhcpOptions>, ProviderError> {
    let mut sets = BTreeMap::new();
    if ids.is_empty() {
        return Ok(sets);
    }
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_dhcp_options()
            .filters(filter("dhcp-options-id", ids.iter().cloned()))
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeDhcpOptions", request)?;
        for set in page.dhcp_options() {
            if let Some(id) = set.dhcp_options_id() {
                sets.insert(id.to_string(), set.clone());
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(sets),
        }
    }
}

/// Reads every route table of the VPCs `vpc_ids`.
pub async fn describe_route_tables_of_vpcs(
    ec2: &Ec2,
    vpc_ids: &[String],
) -> Result<Vec<RouteTable>, ProviderError> {
    describe_route_tables(ec2, filter("vpc-id", vpc_ids.iter().cloned())).await
}

/// Reads the route tables `ids` that exist, whatever their VPC.
pub async fn describe_route_tables_by_id(
    ec2: &Ec2,
    ids: &[String],
) -> Result<Vec<RouteTable>, ProviderError> {
    describe_route_tables(ec2, filter("route-table-id", ids.iter().cloned())).await
}

async fn describe_route_tables(
    ec2: &Ec2,
    by: aws_sdk_ec2::types::Filter,
) -> Result<Vec<RouteTable>, ProviderError> {
    let mut tables = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_route_tables()
            .filters(by.clone())
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeRouteTables", request)?;
        tables.extend(page.route_tables().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(tables),
        }
    }
}

/// Reads the region's availability zones as zone name to zone id.
pub async fn describe_zone_ids(ec2: &Ec2) -> Result<BTreeMap<String, String>, ProviderError> {
    let answer = send!(
        ec2.site,
        "DescribeAvailabilityZones",
        ec2.client.describe_availability_zones()
    )?;
    let zones = answer
        .availability_zones()
        .iter()
        .filter_map(|zone| Some((zone.zone_name()?.to_string(), zone.zone_id()?.to_string())))
        .collect();
    Ok(zones)
}

/// Reads the subnets `ids`; absent ones map to `None`. Same fallback as [`describe_vpcs`].
pub async fn describe_subnets(
    ec2: &Ec2,
    ids: &[String],
) -> Result<BTreeMap<String, Option<SubnetState>>, ProviderError> {
    let mut found: Vec<Subnet> = Vec::new();
    match read_subnet_pages(ec2, Some(ids.to_vec()), None, &mut found).await {
        Ok(()) => {}
        Err(error) if is_not_found(&error) => {
            found.clear();
            let by_filter = Some(vec![filter("subnet-id", ids.iter().cloned())]);
            read_subnet_pages(ec2, None, by_filter, &mut found).await?;
        }
        Err(error) => return Err(error),
    }

    let mut subnets: BTreeMap<String, Option<SubnetState>> =
        ids.iter().map(|id| (id.clone(), None)).collect();
    for subnet in found {
        let state = SubnetState {
            subnet_id: subnet.subnet_id().unwrap_or_default().to_string(),
            vpc_id: subnet.vpc_id().unwrap_or_default().to_string(),
            availability_zone: subnet.availability_zone().unwrap_or_default().to_string(),
            availability_zone_id: subnet
                .availability_zone_id()
                .unwrap_or_default()
                .to_string(),
            cidr: subnet.cidr_block().unwrap_or_default().to_string(),
        };
        subnets.insert(state.subnet_id.clone(), Some(state));
    }
    Ok(subnets)
}

/// Appends to `found` every subnet that `ids` and `filters` select, following pagination.
pub(crate) async fn read_subnet_pages(
    ec2: &Ec2,
    ids: Option<Vec<String>>,
    filters: Option<Vec<aws_sdk_ec2::types::Filter>>,
    found: &mut Vec<Subnet>,
) -> Result<(), ProviderError> {
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_subnets()
            .set_subnet_ids(ids.clone())
            .set_filters(filters.clone())
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeSubnets", request)?;
        found.extend(page.subnets().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(()),
        }
    }
}

/// Looks up the endpoint services `names` with [`describe_service_details`], and maps zone
/// names through `zone_ids` where the API reports no zone ids.
pub async fn describe_services(
    ec2: &Ec2,
    names: &[String],
    zone_ids: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ServiceLookup>, ProviderError> {
    let details = describe_service_details(ec2, names).await?;
    Ok(service_lookups(details, zone_ids))
}

/// The result of DescribeVpcEndpointServices for one service name: its details, or the reason
/// it was not returned.
pub type ServiceDetailLookup = Result<ServiceDetail, String>;

/// Reads the endpoint services `names`, by the `ServiceNames` parameter, without converting
/// them, so that the read can run before the zone mapping is known.
///
/// The whole call fails with `InvalidServiceName` when any name is unknown or not allowlisted
/// for the account, so that case is asked again one name at a time to tell which. The
/// `service-name` filter is avoided: moto 5.2.5 returns HTTP 500 for it.
pub async fn describe_service_details(
    ec2: &Ec2,
    names: &[String],
) -> Result<BTreeMap<String, ServiceDetailLookup>, ProviderError> {
    let mut lookups = BTreeMap::new();
    if names.is_empty() {
        return Ok(lookups);
    }
    match read_service_pages(ec2, names).await {
        Ok(details) => {
            for name in names {
                let lookup = match details.iter().find(|d| d.service_name() == Some(name)) {
                    Some(detail) => Ok(detail.clone()),
                    None => Err(format!("DescribeVpcEndpointServices did not return {name}")),
                };
                lookups.insert(name.clone(), lookup);
            }
        }
        Err(error) if error.code.as_deref() == Some("InvalidServiceName") && names.len() > 1 => {
            for name in names {
                let one = Box::pin(describe_service_details(ec2, std::slice::from_ref(name)));
                lookups.extend(one.await?);
            }
        }
        Err(error) if error.code.as_deref() == Some("InvalidServiceName") => {
            lookups.insert(names[0].clone(), Err(error.message));
        }
        Err(error) => return Err(error),
    }
    Ok(lookups)
}

/// Converts the results of [`describe_service_details`], with zone names mapped through
/// `zone_ids`.
pub fn service_lookups(
    details: BTreeMap<String, ServiceDetailLookup>,
    zone_ids: &BTreeMap<String, String>,
) -> BTreeMap<String, ServiceLookup> {
    details
        .into_iter()
        .map(|(name, lookup)| {
            let lookup = match lookup {
                Ok(detail) => ServiceLookup::Found(service_state(&detail, zone_ids)),
                Err(message) => ServiceLookup::NotFound { message },
            };
            (name, lookup)
        })
        .collect()
}

async fn read_service_pages(
    ec2: &Ec2,
    names: &[String],
) -> Result<Vec<ServiceDetail>, ProviderError> {
    let mut details = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_vpc_endpoint_services()
            .set_service_names(Some(names.to_vec()))
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeVpcEndpointServices", request)?;
        details.extend(page.service_details().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(details),
        }
    }
}

/// Converts a service detail, taking zone ids from the API when it reports them and mapping
/// zone names through the caller's own `zone_ids` otherwise. A name missing from the mapping
/// is kept as it is, so the planner reports it rather than silently losing the zone.
fn service_state(detail: &ServiceDetail, zone_ids: &BTreeMap<String, String>) -> ServiceState {
    let mut ids: Vec<String> = if detail.availability_zone_ids().is_empty() {
        detail
            .availability_zones()
            .iter()
            .map(|name| zone_ids.get(name).cloned().unwrap_or_else(|| name.clone()))
            .collect()
    } else {
        detail.availability_zone_ids().to_vec()
    };
    ids.sort();
    ids.dedup();
    ServiceState {
        service_name: detail.service_name().unwrap_or_default().to_string(),
        availability_zone_ids: ids,
        acceptance_required: detail.acceptance_required().unwrap_or(false),
        private_dns_name: detail
            .private_dns_name()
            .filter(|n| !n.is_empty())
            .map(dns_name),
    }
}

/// Reads every interface endpoint of VPC `vpc_id`, by the `vpc-id` filter. Endpoint ids go in
/// `VpcEndpointIds` elsewhere: moto 5.2.5 returns HTTP 500 for the `vpc-endpoint-id` filter.
pub async fn describe_endpoints_of_vpc(
    ec2: &Ec2,
    vpc_id: &str,
) -> Result<Vec<EndpointState>, ProviderError> {
    let mut endpoints = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", [vpc_id]))
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeVpcEndpoints", request)?;
        let interface = page.vpc_endpoints().iter().filter(|e| is_interface(e));
        endpoints.extend(interface.map(endpoint_state));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    endpoints.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    Ok(endpoints)
}

/// Reads endpoint `id`, or returns `None` when EC2 does not list it.
pub async fn describe_endpoint(
    ec2: &Ec2,
    id: &str,
) -> Result<Option<EndpointState>, ProviderError> {
    let request = ec2.client.describe_vpc_endpoints().vpc_endpoint_ids(id);
    match send!(ec2.site, "DescribeVpcEndpoints", request) {
        Ok(answer) => Ok(answer.vpc_endpoints().first().map(endpoint_state)),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

fn is_interface(endpoint: &VpcEndpoint) -> bool {
    endpoint
        .vpc_endpoint_type()
        .is_none_or(|kind| kind.as_str().eq_ignore_ascii_case("interface"))
}

/// Converts an endpoint. The state is lowercased from its raw string: aws-sdk-ec2 1.195 parses
/// the lowercase `available` the API sends as an unknown variant, so the typed variants are
/// not compared.
pub fn endpoint_state(endpoint: &VpcEndpoint) -> EndpointState {
    let mut subnet_ids = endpoint.subnet_ids().to_vec();
    subnet_ids.sort();
    let mut security_group_ids: Vec<String> = endpoint
        .groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    security_group_ids.sort();
    let mut network_interface_ids = endpoint.network_interface_ids().to_vec();
    network_interface_ids.sort();
    let dns_entries = endpoint
        .dns_entries()
        .iter()
        .filter_map(|entry| {
            Some(DnsEntry {
                dns_name: dns_name(entry.dns_name()?),
                hosted_zone_id: entry.hosted_zone_id()?.to_string(),
            })
        })
        .collect();
    let last_error = endpoint
        .last_error()
        .map(|error| match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.to_string(),
            (None, None) => String::new(),
        });
    EndpointState {
        endpoint_id: endpoint.vpc_endpoint_id().unwrap_or_default().to_string(),
        vpc_id: endpoint.vpc_id().unwrap_or_default().to_string(),
        service_name: endpoint.service_name().unwrap_or_default().to_string(),
        state: endpoint
            .state()
            .map(|s| s.as_str().to_ascii_lowercase())
            .unwrap_or_default(),
        subnet_ids,
        security_group_ids,
        private_dns_enabled: endpoint.private_dns_enabled(),
        dns_entries,
        network_interface_ids,
        tags: ec2_tags(endpoint.tags()),
        last_error: last_error.filter(|text| !text.is_empty()),
    }
}

/// Reads the groups of `stack`, merged by id. These are the groups of `hub.security_group_ids`
/// that exist (by the `group-id` filter when an id is absent) and the groups tagged with the
/// stack. When the stack manages its group, they include the hub VPC's group of the name
/// linkplan gives it.
pub async fn describe_security_groups(
    ec2: &Ec2,
    stack: &Stack,
) -> Result<Vec<SecurityGroupState>, ProviderError> {
    let ids = &stack.hub.security_group_ids;
    let named = async {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match read_group_pages(ec2, Some(ids.to_vec()), None).await {
            Err(error) if is_not_found(&error) => {
                read_group_pages(
                    ec2,
                    None,
                    Some(vec![filter("group-id", ids.iter().cloned())]),
                )
                .await
            }
            other => other,
        }
    };
    let tagged = read_group_pages(
        ec2,
        None,
        Some(vec![filter(
            &format!("tag:{TAG_STACK}"),
            [stack.name.as_str()],
        )]),
    );
    let (named, tagged) = tokio::try_join!(named, tagged)?;

    // A group that has the name linkplan would give the stack's group, but not its tags, would
    // make the group's creation fail at apply, and the planner reports it beforehand. Names are
    // unique in a VPC, so when the tagged groups include one of that name in the hub VPC, there
    // is no other to look for. A stack that attaches the config's groups makes none.
    let name = linkplan_engine::planner::security_group_name(&stack.name);
    let hub_vpc = stack.hub.vpc_id.as_str();
    let found_by_tag = tagged
        .iter()
        .any(|g| g.vpc_id() == Some(hub_vpc) && g.group_name() == Some(name.as_str()));
    let same_name = if stack.hub.manages_security_group() && !found_by_tag {
        let filters = vec![
            filter("vpc-id", [hub_vpc]),
            filter("group-name", [name.as_str()]),
        ];
        read_group_pages(ec2, None, Some(filters)).await?
    } else {
        Vec::new()
    };

    let mut groups: BTreeMap<String, SecurityGroupState> = BTreeMap::new();
    for group in named.iter().chain(&tagged).chain(&same_name) {
        let state = security_group_state(group);
        groups.insert(state.group_id.clone(), state);
    }
    Ok(groups.into_values().collect())
}

async fn read_group_pages(
    ec2: &Ec2,
    ids: Option<Vec<String>>,
    filters: Option<Vec<aws_sdk_ec2::types::Filter>>,
) -> Result<Vec<SecurityGroup>, ProviderError> {
    let mut groups = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_security_groups()
            .set_group_ids(ids.clone())
            .set_filters(filters.clone())
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeSecurityGroups", request)?;
        groups.extend(page.security_groups().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(groups),
        }
    }
}

pub fn security_group_state(group: &SecurityGroup) -> SecurityGroupState {
    let mut ingress: Vec<IngressPermission> = group
        .ip_permissions()
        .iter()
        .flat_map(flatten_permission)
        .collect();
    ingress.sort();
    ingress.dedup();
    SecurityGroupState {
        group_id: group.group_id().unwrap_or_default().to_string(),
        group_name: group.group_name().unwrap_or_default().to_string(),
        description: group.description().unwrap_or_default().to_string(),
        vpc_id: group.vpc_id().unwrap_or_default().to_string(),
        tags: ec2_tags(group.tags()),
        ingress,
    }
}

/// Splits one permission into one entry per source: IPv4 range, IPv6 range, referenced group
/// or prefix list.
pub fn flatten_permission(permission: &IpPermission) -> Vec<IngressPermission> {
    let protocol = permission
        .ip_protocol()
        .unwrap_or("-1")
        .to_ascii_lowercase();
    // EC2 reports -1 for both ports of an all-traffic rule; moto leaves them out.
    let (from_port, to_port) = match protocol.as_str() {
        "-1" => (None, None),
        _ => (permission.from_port(), permission.to_port()),
    };
    let sources = permission
        .ip_ranges()
        .iter()
        .filter_map(|range| range.cidr_ip())
        .chain(
            permission
                .ipv6_ranges()
                .iter()
                .filter_map(|range| range.cidr_ipv6()),
        )
        .chain(
            permission
                .user_id_group_pairs()
                .iter()
                .filter_map(|pair| pair.group_id()),
        )
        .chain(
            permission
                .prefix_list_ids()
                .iter()
                .filter_map(|list| list.prefix_list_id()),
        );
    sources
        .map(|source| IngressPermission {
            protocol: protocol.clone(),
            from_port,
            to_port,
            source: source.to_string(),
        })
        .collect()
}

/// Reads the peering connections whose side `side` (`requester-vpc-info` or
/// `accepter-vpc-info`) is one of `vpc_ids`.
pub async fn describe_peerings(
    ec2: &Ec2,
    side: &str,
    vpc_ids: &[String],
) -> Result<Vec<PeeringState>, ProviderError> {
    let by = filter(&format!("{side}.vpc-id"), vpc_ids.iter().cloned());
    let mut peerings = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = ec2
            .client
            .describe_vpc_peering_connections()
            .filters(by.clone())
            .set_next_token(token.take());
        let page = send!(ec2.site, "DescribeVpcPeeringConnections", request)?;
        peerings.extend(page.vpc_peering_connections().iter().map(peering_state));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(peerings),
        }
    }
}

/// Reads peering connection `id`; `None` when EC2 does not know it (yet, or any more).
pub async fn describe_peering(ec2: &Ec2, id: &str) -> Result<Option<PeeringState>, ProviderError> {
    let request = ec2
        .client
        .describe_vpc_peering_connections()
        .vpc_peering_connection_ids(id);
    match send!(ec2.site, "DescribeVpcPeeringConnections", request) {
        Ok(answer) => Ok(answer.vpc_peering_connections().first().map(peering_state)),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn peering_state(peering: &VpcPeeringConnection) -> PeeringState {
    let requester = peering.requester_vpc_info();
    let accepter = peering.accepter_vpc_info();
    let side = |info: Option<&aws_sdk_ec2::types::VpcPeeringConnectionVpcInfo>| {
        (
            info.and_then(|i| i.vpc_id())
                .unwrap_or_default()
                .to_string(),
            info.and_then(|i| i.region())
                .unwrap_or_default()
                .to_string(),
            info.and_then(|i| i.owner_id())
                .unwrap_or_default()
                .to_string(),
        )
    };
    let (requester_vpc_id, requester_region, requester_owner_id) = side(requester);
    let (accepter_vpc_id, accepter_region, accepter_owner_id) = side(accepter);
    let status = peering.status();
    PeeringState {
        peering_id: peering
            .vpc_peering_connection_id()
            .unwrap_or_default()
            .to_string(),
        requester_vpc_id,
        requester_region,
        requester_owner_id,
        accepter_vpc_id,
        accepter_region,
        accepter_owner_id,
        status: status
            .and_then(|s| s.code())
            .map(|code| code.as_str().to_ascii_lowercase())
            .unwrap_or_default(),
        status_message: status.and_then(|s| s.message()).map(str::to_string),
        tags: ec2_tags(peering.tags()),
    }
}

/// Builds the state of `vpc` from the describe responses of its region.
pub fn vpc_state(
    vpc: &Vpc,
    region: &str,
    (dns_support, dns_hostnames): (bool, bool),
    dhcp_sets: &BTreeMap<String, DhcpOptions>,
    route_tables: &[RouteTable],
) -> VpcState {
    let vpc_id = vpc.vpc_id().unwrap_or_default().to_string();
    let own_tables: Vec<&RouteTable> = route_tables
        .iter()
        .filter(|t| t.vpc_id() == Some(vpc_id.as_str()))
        .collect();
    VpcState {
        region: region.to_string(),
        owner_id: vpc.owner_id().unwrap_or_default().to_string(),
        cidrs: vpc_cidrs(vpc),
        dns_support,
        dns_hostnames,
        amazon_dns: amazon_dns(vpc.dhcp_options_id(), dhcp_sets),
        internet_route: Some(own_tables.iter().any(|t| has_internet_route(t))),
        vpc_id,
    }
}

/// Returns the primary IPv4 block, then the other associated blocks in the API's order.
fn vpc_cidrs(vpc: &Vpc) -> Vec<IpNet> {
    let mut cidrs: Vec<IpNet> = Vec::new();
    let primary = vpc.cidr_block().and_then(|c| c.parse::<IpNet>().ok());
    cidrs.extend(primary);
    for association in vpc.cidr_block_association_set() {
        let associated = association
            .cidr_block_state()
            .and_then(|s| s.state())
            .is_none_or(|state| state.as_str().eq_ignore_ascii_case("associated"));
        let cidr = association
            .cidr_block()
            .and_then(|c| c.parse::<IpNet>().ok());
        if let Some(cidr) = cidr
            && associated
            && !cidrs.contains(&cidr)
        {
            cidrs.push(cidr);
        }
    }
    cidrs
}

/// Reports whether the VPC's DHCP options resolve through AmazonProvidedDNS. That is the case
/// with no option set, or with `AmazonProvidedDNS` among `domain-name-servers`. Returns `None`
/// when the option set could not be read.
fn amazon_dns(set_id: Option<&str>, sets: &BTreeMap<String, DhcpOptions>) -> Option<bool> {
    let set_id = match set_id {
        None | Some(NO_DHCP_OPTIONS) => return Some(true),
        Some(id) => id,
    };
    let set = sets.get(set_id)?;
    let servers = set
        .dhcp_configurations()
        .iter()
        .filter(|config| config.key() == Some("domain-name-servers"))
        .flat_map(|config| config.values().iter().filter_map(|v| v.value()));
    Some(
        servers
            .into_iter()
            .any(|server| server.eq_ignore_ascii_case("AmazonProvidedDNS")),
    )
}

/// Reports whether `table` has an active `0.0.0.0/0` route to an internet gateway, a NAT
/// gateway or a transit gateway (the usual path to a central egress VPC).
fn has_internet_route(table: &RouteTable) -> bool {
    table.routes().iter().any(|route| {
        let default = route.destination_cidr_block() == Some("0.0.0.0/0");
        let active = route
            .state()
            .is_none_or(|s| s.as_str().eq_ignore_ascii_case("active"));
        let gateway = route.gateway_id().is_some_and(|id| id.starts_with("igw-"))
            || route.nat_gateway_id().is_some()
            || route.transit_gateway_id().is_some();
        default && active && gateway
    })
}

pub fn route_table_state(table: &RouteTable) -> RouteTableState {
    let mut routes: Vec<RouteState> = table
        .routes()
        .iter()
        .filter_map(|route| {
            let destination = route.destination_cidr_block()?;
            let target = route
                .gateway_id()
                .or(route.nat_gateway_id())
                .or(route.vpc_peering_connection_id())
                .or(route.transit_gateway_id())
                .or(route.network_interface_id())
                .or(route.instance_id())
                .or(route.local_gateway_id())
                .or(route.carrier_gateway_id())
                .or(route.egress_only_internet_gateway_id())
                .or(route.core_network_arn())
                .unwrap_or_default();
            Some(RouteState {
                destination_cidr: destination.to_string(),
                target: target.to_string(),
                state: route
                    .state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .unwrap_or_else(|| "active".to_string()),
            })
        })
        .collect();
    routes.sort();
    RouteTableState {
        route_table_id: table.route_table_id().unwrap_or_default().to_string(),
        vpc_id: table.vpc_id().unwrap_or_default().to_string(),
        routes,
    }
}

/// Reads the DNS attributes of the VPCs `ids`, [`MAX_ATTRIBUTE_READS`] VPCs at a time. It runs
/// alongside DescribeVpcs rather than after it, so a VPC that does not exist fails with
/// `InvalidVpcID.NotFound` and is left out of the result.
pub async fn describe_all_dns_attributes(
    ec2: &Ec2,
    ids: &[String],
) -> Result<BTreeMap<String, (bool, bool)>, ProviderError> {
    let reads = ids
        .iter()
        .map(|id| async move {
            match describe_dns_attributes(ec2, id).await {
                Ok(attributes) => Ok(Some((id.clone(), attributes))),
                Err(error) if is_not_found(&error) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .collect();
    let answers = join_bounded(reads, MAX_ATTRIBUTE_READS).await?;
    Ok(answers.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{
        AttributeValue, DhcpConfiguration, IpRange, Ipv6Range, Route, UserIdGroupPair,
    };

    use super::*;

    #[test]
    fn permission_flattens_per_source() {
        let permission = IpPermission::builder()
            .ip_protocol("TCP")
            .from_port(443)
            .to_port(443)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
            .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("2600:1f18::/56").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-0abc").build())
            .build();
        let flat = flatten_permission(&permission);
        let sources: Vec<&str> = flat.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(sources, ["10.0.0.0/16", "2600:1f18::/56", "sg-0abc"]);
        assert!(flat.iter().all(|p| p.protocol == "tcp"));
        assert!(
            flat.iter()
                .all(|p| p.from_port == Some(443) && p.to_port == Some(443))
        );
    }

    #[test]
    fn all_traffic_permission_has_no_ports() {
        let permission = IpPermission::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let flat = flatten_permission(&permission);
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].from_port, None);
        assert_eq!(flat[0].to_port, None);
    }

    fn dhcp_set(id: &str, servers: &[&str]) -> DhcpOptions {
        let values = servers
            .iter()
            .map(|s| AttributeValue::builder().value(*s).build())
            .collect();
        DhcpOptions::builder()
            .dhcp_options_id(id)
            .dhcp_configurations(
                DhcpConfiguration::builder()
                    .key("domain-name-servers")
                    .set_values(Some(values))
                    .build(),
            )
            .build()
    }

    #[test]
    fn amazon_dns_without_option_set() {
        assert_eq!(amazon_dns(Some("default"), &BTreeMap::new()), Some(true));
        assert_eq!(amazon_dns(None, &BTreeMap::new()), Some(true));
    }

    #[test]
    fn amazon_dns_from_option_set() {
        let sets = BTreeMap::from([
            (
                "dopt-1".to_string(),
                dhcp_set("dopt-1", &["AmazonProvidedDNS"]),
            ),
            (
                "dopt-2".to_string(),
                dhcp_set("dopt-2", &["10.0.0.2", "10.0.0.3"]),
            ),
        ]);
        assert_eq!(amazon_dns(Some("dopt-1"), &sets), Some(true));
        assert_eq!(amazon_dns(Some("dopt-2"), &sets), Some(false));
        assert_eq!(amazon_dns(Some("dopt-3"), &sets), None);
    }

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::builder()
            .route_table_id("rtb-1")
            .vpc_id("vpc-1")
            .set_routes(Some(routes))
            .build()
    }

    #[test]
    fn internet_route_needs_default_route_to_gateway() {
        let igw = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .build();
        let local = Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .build();
        let peer = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .vpc_peering_connection_id("pcx-1")
            .build();
        assert!(has_internet_route(&table(vec![local.clone(), igw])));
        assert!(!has_internet_route(&table(vec![local, peer])));
    }

    #[test]
    fn route_table_routes_are_sorted_with_targets() {
        let routes = vec![
            Route::builder()
                .destination_cidr_block("10.1.0.0/16")
                .vpc_peering_connection_id("pcx-1")
                .state(aws_sdk_ec2::types::RouteState::Blackhole)
                .build(),
            Route::builder()
                .destination_cidr_block("10.0.0.0/16")
                .gateway_id("local")
                .build(),
            Route::builder()
                .destination_ipv6_cidr_block("::/0")
                .gateway_id("igw-1")
                .build(),
        ];
        let state = route_table_state(&table(routes));
        assert_eq!(state.routes.len(), 2);
        assert_eq!(state.routes[0].destination_cidr, "10.0.0.0/16");
        assert_eq!(state.routes[0].target, "local");
        assert_eq!(state.routes[1].target, "pcx-1");
        assert_eq!(state.routes[1].state, "blackhole");
    }

    #[test]
    fn endpoint_state_lowercases_state() {
        let endpoint = VpcEndpoint::builder()
            .vpc_endpoint_id("vpce-1")
            .state(aws_sdk_ec2::types::State::from("pendingAcceptance"))
            .subnet_ids("subnet-b")
            .subnet_ids("subnet-a")
            .build();
        let state = endpoint_state(&endpoint);
        assert_eq!(state.state, "pendingacceptance");
        assert_eq!(state.subnet_ids, ["subnet-a", "subnet-b"]);
    }
}

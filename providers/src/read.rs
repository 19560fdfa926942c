//! `read`: everything a stack names or owns, with one describe call per kind of object and
//! region, regions read in parallel, Route 53 read alongside.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::try_join_all;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use linkplan_engine::observed::{
    EndpointState, Identity, Observed, PeeringState, RouteTableState, SecurityGroupState,
    ServiceLookup, SubnetState, VpcState,
};
use linkplan_engine::provider::ProviderError;
use linkplan_engine::resource::TAG_STACK;
use linkplan_engine::stack::{Context, Stack};

use crate::errors::send;
use crate::read_ec2 as ec2;
use crate::read_route53::{self as route53, VpcLookup};
use crate::sdk_config::{Clients, Ec2};

/// Regions read at the same time. Each region's read makes up to about ten calls at once, and
/// EC2 throttles per account and region, so this bounds the load rather than the wall time.
const MAX_PARALLEL_REGIONS: usize = 4;

/// The objects of one context (region and credentials) that the stack names.
#[derive(Debug, Clone)]
struct RegionGroup {
    context: Context,
    /// The hub's context: reads the subnets, services, endpoints and groups too.
    is_hub: bool,
    vpc_ids: Vec<String>,
    /// Spoke VPCs of this context, whose peerings are read from the accepter side.
    spoke_vpc_ids: Vec<String>,
    route_table_ids: Vec<String>,
    /// Whether this group reads the region's zone mapping: only the first group of a region,
    /// with the hub first, so the hub's account mapping is the one recorded.
    reads_zone_ids: bool,
}

/// The objects one context's read found.
#[derive(Debug, Default)]
struct RegionRead {
    vpcs: BTreeMap<String, Option<VpcState>>,
    route_tables: BTreeMap<String, Option<RouteTableState>>,
    zone_ids: Option<(String, BTreeMap<String, String>)>,
    subnets: BTreeMap<String, Option<SubnetState>>,
    services: BTreeMap<String, ServiceLookup>,
    endpoints: Vec<EndpointState>,
    security_groups: Vec<SecurityGroupState>,
    peerings: Vec<PeeringState>,
}

/// Runs `futures` with at most `limit` of them at once, and returns their outputs in order, or
/// the first error.
///
/// It takes a `Vec` rather than an iterator: a lazy iterator would keep its closure in the
/// returned future, and the `Send` check of `async_trait` then fails on the closure's
/// lifetimes.
pub async fn join_bounded<T, E, F>(futures: Vec<F>, limit: usize) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    stream::iter(futures).buffered(limit).try_collect().await
}

/// Reads the live state of `stack`.
pub async fn read(clients: &Clients, stack: &Stack) -> Result<Observed, ProviderError> {
    let groups = region_groups(stack);
    let regions = stream::iter(groups)
        .map(|group| async move { read_region(clients, stack, &group).await })
        .buffer_unordered(MAX_PARALLEL_REGIONS)
        .try_collect::<Vec<RegionRead>>();
    // Route 53 has the longest chain of dependent calls (zones by name, each zone, then its
    // records), so its first call is sent first.
    let (zones, identities, regions) = tokio::try_join!(
        read_zones(clients, stack),
        read_identities(clients, stack),
        regions
    )?;

    let mut observed = Observed {
        identities,
        hosted_zones: zones.hosted_zones,
        records: zones.records,
        ..Observed::default()
    };
    let mut peerings: Vec<PeeringState> = Vec::new();
    for region in regions {
        merge_found(&mut observed.vpcs, region.vpcs);
        merge_found(&mut observed.route_tables, region.route_tables);
        observed.zone_ids.extend(region.zone_ids);
        merge_found(&mut observed.subnets, region.subnets);
        observed.services.extend(region.services);
        observed.endpoints.extend(region.endpoints);
        observed.security_groups.extend(region.security_groups);
        peerings.extend(region.peerings);
    }
    observed
        .endpoints
        .sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    observed
        .security_groups
        .sort_by(|a, b| a.group_id.cmp(&b.group_id));
    observed.peerings = stack_peerings(stack, peerings);
    Ok(observed)
}

/// Groups the stack's VPCs and route tables by the context that reads them, the hub first.
fn region_groups(stack: &Stack) -> Vec<RegionGroup> {
    let mut groups = vec![RegionGroup {
        context: stack.hub_context(),
        is_hub: true,
        vpc_ids: vec![stack.hub.vpc_id.clone()],
        spoke_vpc_ids: Vec::new(),
        route_table_ids: stack.hub.route_table_ids.clone(),
        reads_zone_ids: true,
    }];
    for spoke in &stack.spokes {
        let context = stack.spoke_context(spoke);
        let index = match groups.iter().position(|g| g.context == context) {
            Some(index) => index,
            None => {
                let first_in_region = !groups.iter().any(|g| g.context.region == context.region);
                groups.push(RegionGroup {
                    context,
                    is_hub: false,
                    vpc_ids: Vec::new(),
                    spoke_vpc_ids: Vec::new(),
                    route_table_ids: Vec::new(),
                    reads_zone_ids: first_in_region,
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        push_unique(&mut group.vpc_ids, &spoke.vpc_id);
        // A spoke in the hub's own context is found through the hub's requester-side read.
        if !group.is_hub {
            push_unique(&mut group.spoke_vpc_ids, &spoke.vpc_id);
        }
        for table in &spoke.route_table_ids {
            push_unique(&mut group.route_table_ids, table);
        }
    }
    groups
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

/// Reads the identity behind each context's credentials, with one GetCallerIdentity per set of
/// credentials: the identity does not depend on the region, so the contexts that share
/// credentials share the response.
async fn read_identities(
    clients: &Clients,
    stack: &Stack,
) -> Result<Vec<(Context, Identity)>, ProviderError> {
    let contexts = stack.contexts();
    let mut first_of_credentials: Vec<&Context> = Vec::new();
    for context in &contexts {
        if !first_of_credentials
            .iter()
            .any(|c| c.credentials == context.credentials)
        {
            first_of_credentials.push(context);
        }
    }
    let lookups = first_of_credentials.iter().map(|context| async move {
        let sts = clients.sts(context)?;
        let answer = send!(
            sts.site,
            "GetCallerIdentity",
            sts.client.get_caller_identity()
        )?;
        let identity = Identity {
            account_id: answer.account().unwrap_or_default().to_string(),
            arn: answer.arn().unwrap_or_default().to_string(),
        };
        Ok::<_, ProviderError>((context.credentials.clone(), identity))
    });
    let identities = try_join_all(lookups).await?;
    let by_context = contexts
        .into_iter()
        .filter_map(|context| {
            let (_, identity) = identities
                .iter()
                .find(|(credentials, _)| *credentials == context.credentials)?;
            Some((context, identity.clone()))
        })
        .collect();
    Ok(by_context)
}

async fn read_region(
    clients: &Clients,
    stack: &Stack,
    group: &RegionGroup,
) -> Result<RegionRead, ProviderError> {
    let client = clients.ec2(&group.context)?;
    let region = group.context.region.as_str();
    tracing::debug!(region, vpcs = ?group.vpc_ids, "reading region");

    // First round: everything that needs only ids from the config. The DNS attributes and
    // the services need no response from DescribeVpcs or DescribeAvailabilityZones to be asked
    // for, so they are in this round too, and a no-change plan is one round deep in most
    // regions.
    let zone_ids = async {
        if group.reads_zone_ids {
            ec2::describe_zone_ids(client).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let hub = async {
        if group.is_hub {
            read_hub_objects(client, stack).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (vpcs, tables, zone_ids, hub, peerings, attributes) = tokio::try_join!(
        ec2::describe_vpcs(client, &group.vpc_ids),
        ec2::describe_route_tables_of_vpcs(client, &group.vpc_ids),
        zone_ids,
        hub,
        read_peerings(client, stack, group),
        ec2::describe_all_dns_attributes(client, &group.vpc_ids),
    )?;

    // Second round, only where the first found what it needs: custom DHCP option sets, and
    // route tables named in the config that are not in the VPCs' own.
    let dhcp_ids: BTreeSet<String> = vpcs
        .values()
        .flatten()
        .filter_map(|vpc| vpc.dhcp_options_id())
        .filter(|id| *id != ec2::NO_DHCP_OPTIONS)
        .map(str::to_string)
        .collect();
    let missing_tables: Vec<String> = group
        .route_table_ids
        .iter()
        .filter(|id| {
            !tables
                .iter()
                .any(|t| t.route_table_id() == Some(id.as_str()))
        })
        .cloned()
        .collect();
    let other_tables = async {
        if missing_tables.is_empty() {
            Ok(Vec::new())
        } else {
            ec2::describe_route_tables_by_id(client, &missing_tables).await
        }
    };
    let (dhcp_sets, other_tables) =
        tokio::try_join!(ec2::describe_dhcp_options(client, &dhcp_ids), other_tables)?;

    let no_zones = BTreeMap::new();
    let zone_map = zone_ids.as_ref().unwrap_or(&no_zones);
    let services = match &hub {
        Some(hub) => ec2::service_lookups(hub.services.clone(), zone_map),
        None => BTreeMap::new(),
    };
    let mut read = RegionRead {
        services,
        peerings,
        ..RegionRead::default()
    };
    for (id, vpc) in &vpcs {
        let state = vpc.as_ref().map(|vpc| {
            let attributes = attributes.get(id).copied().unwrap_or_default();
            ec2::vpc_state(vpc, region, attributes, &dhcp_sets, &tables)
        });
        read.vpcs.insert(id.clone(), state);
    }
    for id in &group.route_table_ids {
        let table = tables
            .iter()
            .chain(&other_tables)
            .find(|t| t.route_table_id() == Some(id.as_str()))
            .map(ec2::route_table_state);
        read.route_tables.insert(id.clone(), table);
    }
    if group.reads_zone_ids {
        read.zone_ids = zone_ids.map(|zones| (region.to_string(), zones));
    }
    if let Some(hub) = hub {
        read.subnets = hub.subnets;
        read.endpoints = hub.endpoints;
        read.security_groups = hub.security_groups;
    }
    Ok(read)
}

/// The objects only the hub's region holds.
struct HubObjects {
    subnets: BTreeMap<String, Option<SubnetState>>,
    endpoints: Vec<EndpointState>,
    security_groups: Vec<SecurityGroupState>,
    /// The endpoint services, converted once the zone mapping is read.
    services: BTreeMap<String, ec2::ServiceDetailLookup>,
}

async fn read_hub_objects(client: &Ec2, stack: &Stack) -> Result<HubObjects, ProviderError> {
    let names: Vec<String> = stack
        .services
        .iter()
        .map(|s| s.service_name.clone())
        .collect();
    let (subnets, endpoints, security_groups, services) = tokio::try_join!(
        ec2::describe_subnets(client, &stack.hub.subnet_ids),
        ec2::describe_endpoints_of_vpc(client, &stack.hub.vpc_id),
        ec2::describe_security_groups(client, stack),
        ec2::describe_service_details(client, &names),
    )?;
    Ok(HubObjects {
        subnets,
        endpoints,
        security_groups,
        services,
    })
}

/// Reads the peerings the hub requested (in the hub's context) or that a spoke VPC of this
/// context accepts.
async fn read_peerings(
    client: &Ec2,
    stack: &Stack,
    group: &RegionGroup,
) -> Result<Vec<PeeringState>, ProviderError> {
    let mut peerings = Vec::new();
    if group.is_hub {
        let hub = std::slice::from_ref(&stack.hub.vpc_id);
        peerings.extend(ec2::describe_peerings(client, "requester-vpc-info", hub).await?);
    }
    if !group.spoke_vpc_ids.is_empty() {
        let accepters = &group.spoke_vpc_ids;
        peerings.extend(ec2::describe_peerings(client, "accepter-vpc-info", accepters).await?);
    }
    Ok(peerings)
}

/// Keeps the peerings between the hub VPC and a spoke VPC, or tagged with the stack, merged by
/// id and sorted.
///
/// A cross-region peering is listed in both regions, and the two views are merged. Tags are
/// united, because tags set on one side are not copied to the other. The statuses differ for a
/// while after acceptance, and then the one that is not `active` is kept, so that the planner
/// never routes over a connection that is active on one side only.
fn stack_peerings(stack: &Stack, found: Vec<PeeringState>) -> Vec<PeeringState> {
    let spokes: BTreeSet<&str> = stack.spokes.iter().map(|s| s.vpc_id.as_str()).collect();
    let hub = stack.hub.vpc_id.as_str();
    let relevant = |p: &PeeringState| {
        let between = (p.requester_vpc_id == hub && spokes.contains(p.accepter_vpc_id.as_str()))
            || (p.accepter_vpc_id == hub && spokes.contains(p.requester_vpc_id.as_str()));
        between
            || p.tags
                .get(TAG_STACK)
                .is_some_and(|name| *name == stack.name)
    };

    let mut merged: BTreeMap<String, PeeringState> = BTreeMap::new();
    for peering in found {
        match merged.get_mut(&peering.peering_id) {
            None => {
                merged.insert(peering.peering_id.clone(), peering);
            }
            Some(seen) => {
                for (key, value) in peering.tags.clone() {
                    seen.tags.entry(key).or_insert(value);
                }
                if seen.status == "active" && peering.status != "active" {
                    seen.status = peering.status;
                    seen.status_message = peering.status_message;
                }
            }
        }
    }
    merged.into_values().filter(|p| relevant(p)).collect()
}

async fn read_zones(clients: &Clients, stack: &Stack) -> Result<route53::ZonesRead, ProviderError> {
    let hub_context = stack.hub_context();
    let hub = clients.route53(&hub_context)?;
    let mut vpcs: Vec<VpcLookup<'_>> = vec![VpcLookup {
        vpc_id: stack.hub.vpc_id.clone(),
        region: stack.hub.region.clone(),
        client: hub,
    }];
    for spoke in &stack.spokes {
        let seen = vpcs
            .iter()
            .any(|v| v.vpc_id == spoke.vpc_id && v.region == spoke.region);
        if !seen {
            vpcs.push(VpcLookup {
                vpc_id: spoke.vpc_id.clone(),
                region: spoke.region.clone(),
                client: clients.route53(&stack.spoke_context(spoke))?,
            });
        }
    }
    route53::read_zones(hub, &stack.zone.name, &vpcs).await
}

/// Adds the lookups of one region to those of the others. An id looked up in two regions, such
/// as a route table listed for both the hub and a spoke, counts as found if either found it.
fn merge_found<T>(into: &mut BTreeMap<String, Option<T>>, from: BTreeMap<String, Option<T>>) {
    for (id, found) in from {
        let entry = into.entry(id).or_insert(None);
        if found.is_some() {
            *entry = found;
        }
    }
}

#[cfg(test)]
mod tests {
    use linkplan_engine::resource::Tags;
    use linkplan_engine::stack::{Credentials, Hub, Spoke, SubnetPolicy, Zone};

    use super::*;

    fn stack() -> Stack {
        Stack {
            name: "ws".to_string(),
            hub: Hub {
                region: "us-east-1".to_string(),
                vpc_id: "vpc-hub".to_string(),
                subnet_ids: vec!["subnet-1".to_string()],
                security_group_ids: Vec::new(),
                client_cidrs: Vec::new(),
                route_table_ids: vec!["rtb-hub".to_string()],
                subnet_policy: SubnetPolicy::Fail,
                credentials: Credentials::default(),
                endpoint_quota: linkplan_engine::stack::DEFAULT_ENDPOINT_QUOTA,
            },
            services: Vec::new(),
            zone: Zone {
                name: "deepsecurity.trendmicro.com".to_string(),
                adopt: None,
            },
            spokes: vec![
                spoke("west", "us-west-2", "vpc-west"),
                spoke("east", "us-east-1", "vpc-east"),
                spoke("west2", "us-west-2", "vpc-west2"),
            ],
            backend: Default::default(),
        }
    }

    fn spoke(name: &str, region: &str, vpc: &str) -> Spoke {
        Spoke {
            name: name.to_string(),
            region: region.to_string(),
            vpc_id: vpc.to_string(),
            route_table_ids: vec![format!("rtb-{name}")],
            account_id: None,
            credentials: Credentials::default(),
        }
    }

    #[test]
    fn groups_share_contexts() {
        let groups = region_groups(&stack());
        assert_eq!(groups.len(), 2);
        assert!(groups[0].is_hub);
        assert_eq!(groups[0].vpc_ids, ["vpc-hub", "vpc-east"]);
        assert!(groups[0].spoke_vpc_ids.is_empty());
        assert_eq!(groups[0].route_table_ids, ["rtb-hub", "rtb-east"]);
        assert_eq!(groups[1].context.region, "us-west-2");
        assert_eq!(groups[1].spoke_vpc_ids, ["vpc-west", "vpc-west2"]);
        assert!(groups[1].reads_zone_ids);
    }

    #[test]
    fn foreign_spoke_skips_zone_ids() {
        let mut stack = stack();
        stack.spokes[1].credentials.profile = Some("other".to_string());
        let groups = region_groups(&stack);
        let other = groups.iter().find(|g| g.vpc_ids == ["vpc-east"]).unwrap();
        assert!(!other.reads_zone_ids);
        assert_eq!(other.spoke_vpc_ids, ["vpc-east"]);
    }

    fn peering(
        id: &str,
        requester: &str,
        accepter: &str,
        status: &str,
        tags: Tags,
    ) -> PeeringState {
        PeeringState {
            peering_id: id.to_string(),
            requester_vpc_id: requester.to_string(),
            requester_region: "us-east-1".to_string(),
            requester_owner_id: "111111111111".to_string(),
            accepter_vpc_id: accepter.to_string(),
            accepter_region: "us-west-2".to_string(),
            accepter_owner_id: "111111111111".to_string(),
            status: status.to_string(),
            status_message: None,
            tags,
        }
    }

    #[test]
    fn peerings_merge_by_id_and_keep_inactive_status() {
        let hub_tags = Tags::from([(TAG_STACK.to_string(), "ws".to_string())]);
        let found = vec![
            peering("pcx-1", "vpc-hub", "vpc-west", "active", Tags::new()),
            peering(
                "pcx-1",
                "vpc-hub",
                "vpc-west",
                "pending-acceptance",
                hub_tags.clone(),
            ),
        ];
        let merged = stack_peerings(&stack(), found);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, "pending-acceptance");
        assert_eq!(merged[0].tags, hub_tags);
    }

    #[test]
    fn peerings_to_other_vpcs_are_dropped_unless_tagged() {
        let ours = Tags::from([(TAG_STACK.to_string(), "ws".to_string())]);
        let found = vec![
            peering("pcx-1", "vpc-hub", "vpc-elsewhere", "active", Tags::new()),
            peering("pcx-2", "vpc-hub", "vpc-elsewhere", "active", ours),
            peering("pcx-3", "vpc-west", "vpc-hub", "active", Tags::new()),
        ];
        let ids: Vec<String> = stack_peerings(&stack(), found)
            .into_iter()
            .map(|p| p.peering_id)
            .collect();
        assert_eq!(ids, ["pcx-2", "pcx-3"]);
    }

    #[test]
    fn id_found_in_one_region_stays_found() {
        let mut merged = BTreeMap::from([("rtb-1".to_string(), Some(1))]);
        super::merge_found(&mut merged, BTreeMap::from([("rtb-1".to_string(), None)]));
        assert_eq!(
            merged["rtb-1"],
            Some(1),
            "a later region's miss does not hide it"
        );

        let mut merged = BTreeMap::from([("rtb-2".to_string(), None)]);
        super::merge_found(
            &mut merged,
            BTreeMap::from([("rtb-2".to_string(), Some(2))]),
        );
        assert_eq!(merged["rtb-2"], Some(2), "a later region's find counts");
    }
}

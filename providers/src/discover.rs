//! The reads of `linkplan init`: a VPC, its subnets and whether each is public, and the zones
//! each endpoint service offers, for writing a first config.
//!
//! # How a VPC is discovered
//! 1. DescribeVpcs reads the VPC and its IPv4 blocks. An absent VPC is an error.
//! 2. DescribeSubnets (by the `vpc-id` filter) and DescribeRouteTables read the subnets and
//!    the tables that route them. A subnet without a table of its own uses the VPC's main
//!    table. It is public when its table has a `0.0.0.0/0` route to an internet gateway.
//! 3. DescribeAvailabilityZones maps the account's zone names to zone ids, and
//!    DescribeVpcEndpointServices lists the zones (by id) each service offers.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{RouteTable, Subnet};
use ipnet::IpNet;
use linkplan_engine::observed::ServiceLookup;
use linkplan_engine::provider::ProviderError;
use linkplan_engine::stack::{Context, Credentials};

use crate::normalize::{ec2_tags, filter};
use crate::read_ec2;
use crate::sdk_config::{Clients, Ec2, ProviderOptions};

/// A subnet of the discovered VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredSubnet {
    pub subnet_id: String,
    /// Zone name in the caller's account, such as `us-east-1a`.
    pub availability_zone: String,
    /// Zone id, the same in every account, such as `use1-az1`.
    pub availability_zone_id: String,
    pub cidr: String,
    /// The `Name` tag, when the subnet has one.
    pub name: Option<String>,
    /// Whether the subnet's route table sends `0.0.0.0/0` to an internet gateway.
    pub public: bool,
}

/// The VPC, its subnets and the endpoint services, as `init` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub region: String,
    pub vpc_id: String,
    /// The `Name` tag of the VPC, when it has one.
    pub vpc_name: Option<String>,
    /// The primary IPv4 block first.
    pub cidrs: Vec<IpNet>,
    /// Sorted by zone id, then subnet id.
    pub subnets: Vec<DiscoveredSubnet>,
    /// The lookup of each requested service name, by that name.
    pub services: BTreeMap<String, ServiceLookup>,
}

/// A failure to discover a VPC.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("VPC `{vpc_id}` was not found in {region}")]
    VpcNotFound { vpc_id: String, region: String },
    #[error(transparent)]
    Aws(#[from] ProviderError),
}

/// Reads VPC `vpc_id` of `region`, its subnets and the zones of the endpoint services
/// `service_names`, with the standard credential chain and the connection settings of
/// `options`.
///
/// # Errors
/// [`DiscoverError::VpcNotFound`] when the VPC does not exist in the region, and
/// [`DiscoverError::Aws`] when a call fails. A service name that is unknown or not allowlisted
/// for the account is not an error: its lookup is [`ServiceLookup::NotFound`].
pub async fn discover(
    region: &str,
    vpc_id: &str,
    service_names: &[String],
    options: &ProviderOptions,
) -> Result<Discovery, DiscoverError> {
    let context = Context {
        region: region.to_string(),
        credentials: Credentials::default(),
    };
    let clients = Clients::build(std::slice::from_ref(&context), options).await?;
    let ec2 = clients.ec2(&context)?;

    let vpcs = read_ec2::describe_vpcs(ec2, &[vpc_id.to_string()]).await?;
    let Some(Some(vpc)) = vpcs.get(vpc_id) else {
        return Err(DiscoverError::VpcNotFound {
            vpc_id: vpc_id.to_string(),
            region: region.to_string(),
        });
    };
    let mut cidrs: Vec<IpNet> = Vec::new();
    let associated = vpc
        .cidr_block_association_set()
        .iter()
        .filter_map(|association| association.cidr_block());
    for cidr in vpc.cidr_block().into_iter().chain(associated) {
        if let Ok(cidr) = cidr.parse::<IpNet>()
            && !cidrs.contains(&cidr)
        {
            cidrs.push(cidr);
        }
    }

    let vpc_ids = [vpc_id.to_string()];
    let (subnets, tables, zone_ids) = tokio::try_join!(
        describe_subnets_of_vpc(ec2, vpc_id),
        read_ec2::describe_route_tables_of_vpcs(ec2, &vpc_ids),
        read_ec2::describe_zone_ids(ec2),
    )?;
    let services = read_ec2::describe_services(ec2, service_names, &zone_ids).await?;

    let mut subnets: Vec<DiscoveredSubnet> = subnets
        .iter()
        .map(|subnet| discovered_subnet(subnet, &tables))
        .collect();
    subnets.sort_by(|a, b| {
        (&a.availability_zone_id, &a.subnet_id).cmp(&(&b.availability_zone_id, &b.subnet_id))
    });
    Ok(Discovery {
        region: region.to_string(),
        vpc_id: vpc_id.to_string(),
        vpc_name: ec2_tags(vpc.tags()).get("Name").cloned(),
        cidrs,
        subnets,
        services,
    })
}

/// Reads every subnet of VPC `vpc_id`.
async fn describe_subnets_of_vpc(ec2: &Ec2, vpc_id: &str) -> Result<Vec<Subnet>, ProviderError> {
    let mut subnets = Vec::new();
    let by_vpc = Some(vec![filter("vpc-id", [vpc_id.to_string()])]);
    read_ec2::read_subnet_pages(ec2, None, by_vpc, &mut subnets).await?;
    Ok(subnets)
}

fn discovered_subnet(subnet: &Subnet, tables: &[RouteTable]) -> DiscoveredSubnet {
    let subnet_id = subnet.subnet_id().unwrap_or_default().to_string();
    let public = route_table_of(&subnet_id, tables).is_some_and(routes_to_internet_gateway);
    DiscoveredSubnet {
        availability_zone: subnet.availability_zone().unwrap_or_default().to_string(),
        availability_zone_id: subnet
            .availability_zone_id()
            .unwrap_or_default()
            .to_string(),
        cidr: subnet.cidr_block().unwrap_or_default().to_string(),
        name: ec2_tags(subnet.tags()).get("Name").cloned(),
        public,
        subnet_id,
    }
}

/// Returns the table that routes `subnet_id`: the one explicitly associated with it, else the
/// VPC's main table.
fn route_table_of<'a>(subnet_id: &str, tables: &'a [RouteTable]) -> Option<&'a RouteTable> {
    let explicit = tables.iter().find(|table| {
        table
            .associations()
            .iter()
            .any(|association| association.subnet_id() == Some(subnet_id))
    });
    explicit.or_else(|| {
        tables.iter().find(|table| {
            table
                .associations()
                .iter()
                .any(|association| association.main() == Some(true))
        })
    })
}

/// Reports whether `table` has a `0.0.0.0/0` route to an internet gateway. A default route to
/// a NAT or transit gateway leaves the subnet private.
fn routes_to_internet_gateway(table: &RouteTable) -> bool {
    table.routes().iter().any(|route| {
        route.destination_cidr_block() == Some("0.0.0.0/0")
            && route.gateway_id().is_some_and(|id| id.starts_with("igw-"))
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{Route, RouteTableAssociation};

    use super::*;

    fn table(id: &str, subnet: Option<&str>, main: bool, gateway: Option<&str>) -> RouteTable {
        let mut association = RouteTableAssociation::builder().main(main);
        if let Some(subnet) = subnet {
            association = association.subnet_id(subnet);
        }
        let mut builder = RouteTable::builder()
            .route_table_id(id)
            .associations(association.build());
        if let Some(gateway) = gateway {
            builder = builder.routes(
                Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(gateway)
                    .build(),
            );
        }
        builder.build()
    }

    #[test]
    fn explicit_table_wins_over_main() {
        let tables = [
            table("rtb-main", None, true, Some("igw-1")),
            table("rtb-private", Some("subnet-a"), false, None),
        ];
        let found = route_table_of("subnet-a", &tables).expect("a table routes the subnet");
        assert_eq!(found.route_table_id(), Some("rtb-private"));
    }

    #[test]
    fn subnet_without_table_uses_main() {
        let tables = [table("rtb-main", None, true, Some("igw-1"))];
        let found = route_table_of("subnet-b", &tables).expect("the main table routes it");
        assert_eq!(found.route_table_id(), Some("rtb-main"));
    }

    #[test]
    fn internet_gateway_route_is_public() {
        assert!(routes_to_internet_gateway(&table(
            "rtb-1",
            None,
            true,
            Some("igw-1")
        )));
    }

    #[test]
    fn nat_gateway_route_is_private() {
        let nat = RouteTable::builder()
            .routes(
                Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-1")
                    .build(),
            )
            .build();
        assert!(!routes_to_internet_gateway(&nat));
        assert!(!routes_to_internet_gateway(&table(
            "rtb-2", None, true, None
        )));
    }
}

//! Lookups into the observed state and the stack, built once per plan.
//!
//! The planner visits each spoke once, and for each it looks up a peering, routes, and the
//! zone's VPCs. Each of those lists grows with the number of spokes, so a search per lookup
//! would make a plan quadratic in its spokes. These maps keep each lookup constant.

use std::collections::HashMap;

use crate::observed::{Observed, PeeringState, RouteState};
use crate::stack::{Spoke, Stack};

pub(super) struct Index<'a> {
    peerings_by_id: HashMap<&'a str, &'a PeeringState>,
    /// Peerings that are not dead, by (requester VPC, accepter VPC), each with its position in
    /// the observed list.
    live_peerings: HashMap<(&'a str, &'a str), (usize, &'a PeeringState)>,
    /// Per route table id, its routes by destination CIDR.
    routes: HashMap<&'a str, HashMap<&'a str, &'a RouteState>>,
    /// Per route table id, its routes by target id.
    routes_by_target: HashMap<&'a str, HashMap<&'a str, Vec<&'a RouteState>>>,
    /// Per hosted zone id, its VPCs and their regions.
    zone_vpcs: HashMap<&'a str, HashMap<&'a str, &'a str>>,
    spokes_by_name: HashMap<&'a str, &'a Spoke>,
    spokes_by_vpc: HashMap<&'a str, &'a Spoke>,
}

impl<'a> Index<'a> {
    pub(super) fn new(stack: &'a Stack, observed: &'a Observed) -> Self {
        let mut index = Index {
            peerings_by_id: HashMap::new(),
            live_peerings: HashMap::new(),
            routes: HashMap::new(),
            routes_by_target: HashMap::new(),
            zone_vpcs: HashMap::new(),
            spokes_by_name: HashMap::new(),
            spokes_by_vpc: HashMap::new(),
        };
        for spoke in &stack.spokes {
            index.spokes_by_name.entry(&spoke.name).or_insert(spoke);
            index.spokes_by_vpc.entry(&spoke.vpc_id).or_insert(spoke);
        }
        for (position, peering) in observed.peerings.iter().enumerate() {
            index
                .peerings_by_id
                .entry(&peering.peering_id)
                .or_insert(peering);
            if !peering.is_dead() {
                let pair = (
                    peering.requester_vpc_id.as_str(),
                    peering.accepter_vpc_id.as_str(),
                );
                index
                    .live_peerings
                    .entry(pair)
                    .or_insert((position, peering));
            }
        }
        for table in observed.route_tables.values().flatten() {
            let by_destination = index.routes.entry(&table.route_table_id).or_default();
            let by_target = index
                .routes_by_target
                .entry(&table.route_table_id)
                .or_default();
            for route in &table.routes {
                by_destination
                    .entry(route.destination_cidr.as_str())
                    .or_insert(route);
                by_target
                    .entry(route.target.as_str())
                    .or_default()
                    .push(route);
            }
        }
        for zone in &observed.hosted_zones {
            let vpcs = index.zone_vpcs.entry(&zone.zone_id).or_default();
            for (vpc, region) in &zone.vpcs {
                vpcs.entry(vpc.as_str()).or_insert(region.as_str());
            }
        }
        index
    }

    pub(super) fn peering(&self, peering_id: &str) -> Option<&'a PeeringState> {
        self.peerings_by_id.get(peering_id).copied()
    }

    /// Returns the first listed peering between VPCs `a` and `b`, either way round, that is
    /// not dead.
    pub(super) fn live_peering_between(&self, a: &str, b: &str) -> Option<&'a PeeringState> {
        let forward = self.live_peerings.get(&(a, b));
        let backward = self.live_peerings.get(&(b, a));
        [forward, backward]
            .into_iter()
            .flatten()
            .min_by_key(|(position, _)| *position)
            .map(|(_, peering)| *peering)
    }

    /// Returns the first route of table `table_id` to `destination`.
    pub(super) fn route(&self, table_id: &str, destination: &str) -> Option<&'a RouteState> {
        self.routes.get(table_id)?.get(destination).copied()
    }

    /// Returns the routes of table `table_id` over target `target`, in the table's order.
    pub(super) fn routes_over(&self, table_id: &str, target: &str) -> Vec<&'a RouteState> {
        self.routes_by_target
            .get(table_id)
            .and_then(|targets| targets.get(target))
            .cloned()
            .unwrap_or_default()
    }

    /// Returns the region in which hosted zone `zone_id` is associated with `vpc_id`, if it is.
    pub(super) fn zone_vpc_region(&self, zone_id: &str, vpc_id: &str) -> Option<&'a str> {
        self.zone_vpcs.get(zone_id)?.get(vpc_id).copied()
    }

    pub(super) fn spoke(&self, name: &str) -> Option<&'a Spoke> {
        self.spokes_by_name.get(name).copied()
    }

    pub(super) fn is_spoke_vpc(&self, vpc_id: &str) -> bool {
        self.spokes_by_vpc.contains_key(vpc_id)
    }

    /// Returns the first spoke of the config in VPC `vpc_id`.
    pub(super) fn spoke_in(&self, vpc_id: &str) -> Option<&'a Spoke> {
        self.spokes_by_vpc.get(vpc_id).copied()
    }
}

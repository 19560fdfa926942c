//! Planning `plan --destroy`: the removal of every object that carries the stack's tags.
//!
//! Several live objects can carry one address tag, and each of them is deleted: the first by
//! id keeps the address, and each other one gets the address followed by its own id, such as
//! `endpoint.agents.vpce-0abc` (see [`Planner::claim`]). The records and associations of a
//! second zone take the zone's suffix in the same way, such as `records.Z0456`.

use crate::observed::{HostedZoneState, PeeringState};
use crate::resource::{
    Address, AliasRecord, AliasRecords, HostedZone, Resource, SecurityGroup, TAG_ADDRESS, Value,
};
use crate::step::{Action, Step};

use super::{
    Claim, Planner, addresses, delete_association_step, delete_endpoint_step, delete_peering_step,
    delete_route_step,
};

impl Planner<'_> {
    /// Plans the removal of everything the stack owns, each object after what depends on it.
    pub(super) fn destroy(&mut self) {
        // Peerings first: the peering of a spoke that left the config brings the removal of
        // the zone's association with its VPC, which each zone's step then waits for.
        let observed = self.observed;
        let mut peerings: Vec<&PeeringState> =
            observed.peerings.iter().filter(|p| !p.is_dead()).collect();
        peerings.sort_by(|a, b| a.peering_id.cmp(&b.peering_id));
        for peering in peerings {
            if let Some(address) = self.stack_address(&peering.tags) {
                self.destroy_peering(&address, peering);
            }
        }

        let mut record_steps = Vec::new();
        for zone in self.stack_zones() {
            record_steps.extend(self.destroy_zone(zone));
        }

        let endpoint_steps = self.destroy_endpoints(&record_steps);
        self.destroy_security_groups(&endpoint_steps);
    }

    /// Plans the removal of `zone`, after its records and its associations with spoke VPCs.
    /// Returns the address of the records' step, for the endpoints the records point at to
    /// wait for.
    fn destroy_zone(&mut self, zone: &HostedZoneState) -> Option<Address> {
        let hub = self.hub_context();
        let disassociated = self.planned_disassociations(zone);
        let disassociated_vpcs: Vec<&str> =
            disassociated.iter().map(|(_, vpc)| vpc.as_str()).collect();
        self.zone_holds_only_ours(zone, &disassociated_vpcs);
        let claim = self.claim(&addresses::zone(), &zone.zone_id)?;
        let mut zone_dependents: Vec<Address> = disassociated
            .iter()
            .map(|(address, _)| address.clone())
            .collect();

        let records_step = self.destroy_records(zone, &claim);
        zone_dependents.extend(records_step.clone());

        let stack = self.stack;
        for spoke in &stack.spokes {
            let Some(region) = self.index.zone_vpc_region(&zone.zone_id, &spoke.vpc_id) else {
                continue;
            };
            let address = addresses::zone_association(&spoke.name);
            let Some(association) = self.claim_zone_part(&claim, &address, zone) else {
                continue;
            };
            let context = stack.spoke_context(spoke);
            self.push(delete_association_step(
                context,
                association.address.clone(),
                zone,
                &spoke.vpc_id,
                region,
            ));
            zone_dependents.push(association.address);
        }

        self.push(Step {
            address: claim.address.clone(),
            action: Action::Delete,
            context: hub,
            id: Some(zone.zone_id.clone()),
            reason: duplicate_reason(&claim, &addresses::zone()),
            depends_on: zone_dependents,
            before: Some(Resource::HostedZone(HostedZone {
                name: zone.name.clone(),
                vpc_id: self.stack.hub.vpc_id.clone(),
                vpc_region: self.stack.hub.region.clone(),
                comment: zone.comment.clone(),
                tags: zone.tags.clone(),
            })),
            after: None,
        });
        records_step
    }

    /// Returns the steps planned so far that disassociate a VPC from `zone`, as (address, VPC
    /// id): those of spokes that left the config.
    fn planned_disassociations(&self, zone: &HostedZoneState) -> Vec<(Address, String)> {
        self.planned
            .steps
            .iter()
            .filter(|s| s.action == Action::Delete)
            .filter_map(|s| match &s.before {
                Some(Resource::ZoneAssociation(association))
                    if association.zone_id.as_known() == Some(zone.zone_id.as_str()) =>
                {
                    Some((s.address.clone(), association.vpc_id.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Returns the address of a step on part of `zone`, such as its records: `address`, or
    /// for a zone whose own address has a suffix, `address` with the same suffix.
    fn claim_zone_part(
        &mut self,
        zone_claim: &Claim,
        address: &Address,
        zone: &HostedZoneState,
    ) -> Option<Claim> {
        if zone_claim.first.is_none() {
            return self.claim(address, &zone.zone_id);
        }
        let suffixed = Address(format!("{address}.{}", zone.zone_id));
        self.claim(&suffixed, &zone.zone_id)
    }

    /// Plans the removal of the records linkplan wrote in `zone`, whose own step got
    /// `zone_claim`, and returns the step's address when there are any.
    fn destroy_records(&mut self, zone: &HostedZoneState, zone_claim: &Claim) -> Option<Address> {
        let records: Vec<AliasRecord> = self
            .zone_records(&zone.zone_id)
            .iter()
            .filter(|r| r.record_type == "A" && r.set_identifier.is_none())
            .filter(|r| {
                self.stack
                    .services
                    .iter()
                    .any(|s| self.stack.zone.record_name(&s.host) == r.name)
            })
            .filter_map(|r| {
                r.alias.as_ref().map(|alias| AliasRecord {
                    name: r.name.clone(),
                    record_type: "A".to_string(),
                    target_dns_name: Value::known(&alias.dns_name),
                    target_zone_id: Value::known(&alias.hosted_zone_id),
                    evaluate_target_health: alias.evaluate_target_health,
                })
            })
            .collect();
        if records.is_empty() {
            return None;
        }
        let claim = self.claim_zone_part(zone_claim, &addresses::records(), zone)?;
        self.push(Step {
            address: claim.address.clone(),
            action: Action::Delete,
            context: self.hub_context(),
            id: Some(zone.zone_id.clone()),
            reason: None,
            depends_on: Vec::new(),
            before: Some(Resource::AliasRecords(AliasRecords {
                zone_id: Value::known(&zone.zone_id),
                records,
            })),
            after: None,
        });
        Some(claim.address)
    }

    /// Plans the removal of `peering`, tagged with `address`, after the routes over it.
    fn destroy_peering(&mut self, address: &Address, peering: &PeeringState) {
        let hub = self.hub_context();
        let Some(claim) = self.claim(address, &peering.peering_id) else {
            return;
        };
        // By the name in its tag, or by its VPCs for a spoke renamed since the peering was made.
        let spoke = address
            .as_str()
            .strip_prefix("peering.")
            .and_then(|name| self.index.spoke(name))
            .or_else(|| self.renamed_spoke_of(peering));
        let mut route_steps = Vec::new();
        if let Some(spoke) = spoke {
            let sides = [
                (&self.stack.hub.route_table_ids, hub.clone()),
                (&spoke.route_table_ids, self.stack.spoke_context(spoke)),
            ];
            for (tables, context) in sides {
                for table_id in tables {
                    for route in self.index.routes_over(table_id, &peering.peering_id) {
                        let route_address =
                            addresses::route(&spoke.name, table_id, &route.destination_cidr);
                        route_steps.push(route_address.clone());
                        self.push(delete_route_step(
                            context.clone(),
                            route_address,
                            table_id,
                            &route.destination_cidr,
                            &peering.peering_id,
                        ));
                    }
                }
            }
        }
        if spoke.is_none() {
            route_steps.extend(self.orphan_spoke_cleanup(address, peering));
        }
        let mut step = delete_peering_step(hub, &claim.address, peering, "");
        step.reason = duplicate_reason(&claim, address);
        step.depends_on = route_steps;
        self.push(step);
    }

    /// Plans the removal of the stack's endpoints, after `record_steps`, the steps that delete
    /// the records pointing at them. Returns the addresses of the planned steps.
    fn destroy_endpoints(&mut self, record_steps: &[Address]) -> Vec<Address> {
        let hub = self.hub_context();
        let observed = self.observed;
        let mut endpoints: Vec<_> = observed.endpoints.iter().filter(|e| !e.is_gone()).collect();
        endpoints.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
        let mut endpoint_steps = Vec::new();
        for endpoint in endpoints {
            let Some(address) = self.stack_address(&endpoint.tags) else {
                continue;
            };
            let Some(claim) = self.claim(&address, &endpoint.endpoint_id) else {
                continue;
            };
            let mut step = delete_endpoint_step(hub.clone(), &claim.address, endpoint, "");
            step.reason = duplicate_reason(&claim, &address);
            step.depends_on = record_steps.to_vec();
            endpoint_steps.push(claim.address);
            self.push(step);
        }
        endpoint_steps
    }

    /// Plans the removal of every group tagged as the stack's, after `endpoint_steps`, the
    /// steps that delete the endpoints that may use them.
    fn destroy_security_groups(&mut self, endpoint_steps: &[Address]) {
        let hub = self.hub_context();
        let group_address = addresses::security_group();
        let observed = self.observed;
        let mut groups: Vec<_> = observed
            .security_groups
            .iter()
            .filter(|g| self.has_address(&g.tags, &group_address))
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        for group in groups {
            let Some(claim) = self.claim(&group_address, &group.group_id) else {
                continue;
            };
            self.push(Step {
                address: claim.address.clone(),
                action: Action::Delete,
                context: hub.clone(),
                id: Some(group.group_id.clone()),
                reason: duplicate_reason(&claim, &group_address),
                depends_on: endpoint_steps.to_vec(),
                before: Some(Resource::SecurityGroup(SecurityGroup {
                    vpc_id: group.vpc_id.clone(),
                    group_name: group.group_name.clone(),
                    description: group.description.clone(),
                    tags: group.tags.clone(),
                })),
                after: None,
            });
        }
    }
}

/// Returns the reason shown for deleting an object whose address tag another object carries
/// too, or `None` for the first object with that tag.
fn duplicate_reason(claim: &Claim, tagged: &Address) -> Option<String> {
    claim
        .first
        .as_ref()
        .map(|first| format!("`{first}` carries the same tag `{TAG_ADDRESS} = {tagged}`"))
}

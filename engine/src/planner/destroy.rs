//! Planning `plan --destroy`: the removal of every object that carries the stack's tags.

use crate::resource::{
    AliasRecord, AliasRecords, HostedZone, Resource, Route, SecurityGroup, Value, ZoneAssociation,
};
use crate::step::{Action, Step};

use super::{Planner, addresses, delete_endpoint_step, delete_peering_step};

impl Planner<'_> {
    /// Plans the removal of everything the stack owns, each object after what depends on it.
    pub(super) fn destroy(&mut self) {
        let hub = self.hub_context();
        let zone_address = addresses::zone();
        let zone = self
            .observed
            .hosted_zones
            .iter()
            .find(|z| z.private && self.has_address(&z.tags, &zone_address));
        let mut zone_dependents = Vec::new();
        let mut endpoint_dependents = Vec::new();

        if let Some(zone) = zone {
            self.zone_holds_only_ours(zone);
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
            if !records.is_empty() {
                let address = addresses::records();
                self.push(Step {
                    address: address.clone(),
                    action: Action::Delete,
                    context: hub.clone(),
                    id: Some(zone.zone_id.clone()),
                    reason: None,
                    depends_on: Vec::new(),
                    before: Some(Resource::AliasRecords(AliasRecords {
                        zone_id: Value::known(&zone.zone_id),
                        records,
                    })),
                    after: None,
                });
                zone_dependents.push(address.clone());
                endpoint_dependents.push(address);
            }
            for spoke in &self.stack.spokes {
                let vpc_id = &spoke.vpc_id;
                let Some(region) = self.index.zone_vpc_region(&zone.zone_id, vpc_id) else {
                    continue;
                };
                let address = addresses::zone_association(&spoke.name);
                self.push(Step {
                    address: address.clone(),
                    action: Action::Delete,
                    context: self.stack.spoke_context(spoke),
                    id: Some(zone.zone_id.clone()),
                    reason: None,
                    depends_on: Vec::new(),
                    before: Some(Resource::ZoneAssociation(ZoneAssociation {
                        zone_id: Value::known(&zone.zone_id),
                        vpc_id: vpc_id.clone(),
                        vpc_region: region.to_string(),
                    })),
                    after: None,
                });
                zone_dependents.push(address);
            }
            self.push(Step {
                address: zone_address.clone(),
                action: Action::Delete,
                context: hub.clone(),
                id: Some(zone.zone_id.clone()),
                reason: None,
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
        }

        for peering in &self.observed.peerings {
            if peering.is_dead() {
                continue;
            }
            let Some(address) = self.stack_address(&peering.tags) else {
                continue;
            };
            let spoke = address
                .as_str()
                .strip_prefix("peering.")
                .and_then(|name| self.index.spoke(name));
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
                            self.push(Step {
                                address: route_address,
                                action: Action::Delete,
                                context: context.clone(),
                                id: Some(table_id.clone()),
                                reason: None,
                                depends_on: Vec::new(),
                                before: Some(Resource::Route(Route {
                                    route_table_id: table_id.clone(),
                                    destination_cidr: route.destination_cidr.clone(),
                                    peering_id: Value::known(&peering.peering_id),
                                })),
                                after: None,
                            });
                        }
                    }
                }
            }
            if spoke.is_none() {
                route_steps.extend(self.orphan_spoke_cleanup(&address, peering));
            }
            let mut step = delete_peering_step(hub.clone(), &address, peering, "");
            step.reason = None;
            step.depends_on = route_steps;
            self.push(step);
        }

        let mut group_dependents = Vec::new();
        for endpoint in &self.observed.endpoints {
            if endpoint.is_gone() {
                continue;
            }
            let Some(address) = self.stack_address(&endpoint.tags) else {
                continue;
            };
            let mut step = delete_endpoint_step(hub.clone(), &address, endpoint, "");
            step.reason = None;
            step.depends_on = endpoint_dependents.clone();
            group_dependents.push(address);
            self.push(step);
        }

        let group_address = addresses::security_group();
        for group in &self.observed.security_groups {
            if !self.has_address(&group.tags, &group_address) {
                continue;
            }
            self.push(Step {
                address: group_address.clone(),
                action: Action::Delete,
                context: hub.clone(),
                id: Some(group.group_id.clone()),
                reason: None,
                depends_on: group_dependents.clone(),
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

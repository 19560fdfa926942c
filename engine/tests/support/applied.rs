//! An in-memory apply of a plan's steps onto an observed state, as AWS would take them.
//!
//! [`apply_steps`] gives the state a read would return after a successful apply, so that a
//! test or the `plan_scale` bench can plan again and expect no changes. It covers what a plan
//! of a new stack contains: creates, attribute updates and peering acceptances. Deletes are
//! not modeled.

use std::collections::BTreeMap;

use linkplan_engine::observed::{
    AliasTargetState, EndpointState, HostedZoneState, IngressPermission, Observed, PeeringState,
    RecordState, RouteState, SecurityGroupState,
};
use linkplan_engine::provider::Outputs;
use linkplan_engine::resource::{Address, Resource, VpcDnsAttribute, outputs};
use linkplan_engine::step::{Action, Step};

/// Applies `steps`, in execution order, to `observed`, giving each new object an id made from
/// its position.
///
/// # Panics
/// A step is a delete, or refers to an output that no earlier step returned.
pub fn apply_steps(observed: &mut Observed, steps: &[Step]) {
    let mut produced: BTreeMap<Address, Outputs> = BTreeMap::new();
    // New peerings by id, so that an acceptance finds its connection without a search.
    let mut peerings: BTreeMap<String, PeeringState> = BTreeMap::new();
    for (serial, step) in steps.iter().enumerate() {
        assert!(
            step.action != Action::Delete,
            "step {} deletes, which this apply does not model",
            step.address
        );
        let mut resource = step.resource().clone();
        let lookup =
            |from: &Address, output: &str| produced.get(from).and_then(|o| o.get(output)).cloned();
        resource
            .resolve(&lookup)
            .unwrap_or_else(|missing| panic!("step {} needs {missing}", step.address));
        let step_outputs = apply_resource(observed, &mut peerings, step, &resource, serial);
        produced.insert(step.address.clone(), step_outputs);
    }
    observed.peerings.extend(peerings.into_values());
    sort_lists(observed);
}

/// Applies one resolved step and returns its outputs.
fn apply_resource(
    observed: &mut Observed,
    peerings: &mut BTreeMap<String, PeeringState>,
    step: &Step,
    resource: &Resource,
    serial: usize,
) -> Outputs {
    let mut step_outputs = Outputs::new();
    let account = observed
        .account(&step.context)
        .unwrap_or_default()
        .to_string();
    match resource {
        Resource::VpcAttribute(attribute) => {
            let vpc = observed
                .vpcs
                .get_mut(&attribute.vpc_id)
                .and_then(Option::as_mut)
                .unwrap_or_else(|| panic!("VPC {} is not in the state", attribute.vpc_id));
            match attribute.attribute {
                VpcDnsAttribute::DnsSupport => vpc.dns_support = attribute.enabled,
                VpcDnsAttribute::DnsHostnames => vpc.dns_hostnames = attribute.enabled,
            }
        }
        Resource::SecurityGroup(group) => {
            let group_id = format!("sg-{serial:017x}");
            observed.security_groups.push(SecurityGroupState {
                group_id: group_id.clone(),
                group_name: group.group_name.clone(),
                description: group.description.clone(),
                vpc_id: group.vpc_id.clone(),
                tags: group.tags.clone(),
                ingress: Vec::new(),
            });
            step_outputs.insert(outputs::ID.to_string(), group_id);
        }
        Resource::IngressRule(rule) => {
            let group_id = known(&rule.group_id);
            let group = observed
                .security_groups
                .iter_mut()
                .find(|g| g.group_id == group_id)
                .unwrap_or_else(|| panic!("group {group_id} is not in the state"));
            group.ingress.push(IngressPermission {
                protocol: rule.protocol.clone(),
                from_port: Some(rule.port.into()),
                to_port: Some(rule.port.into()),
                source: rule.cidr.clone(),
            });
        }
        Resource::Endpoint(endpoint) => {
            let endpoint_id = format!("vpce-{serial:017x}");
            let entry = super::regional_entry(&endpoint_id, &endpoint.service_name);
            step_outputs.insert(outputs::ID.to_string(), endpoint_id.clone());
            step_outputs.insert(outputs::DNS_NAME.to_string(), entry.dns_name.clone());
            step_outputs.insert(
                outputs::DNS_ZONE_ID.to_string(),
                entry.hosted_zone_id.clone(),
            );
            observed.endpoints.push(EndpointState {
                endpoint_id,
                vpc_id: endpoint.vpc_id.clone(),
                service_name: endpoint.service_name.clone(),
                state: "available".to_string(),
                subnet_ids: endpoint.subnet_ids.clone(),
                security_group_ids: endpoint.security_group_ids.iter().map(known).collect(),
                private_dns_enabled: Some(endpoint.private_dns_enabled),
                dns_entries: vec![entry],
                network_interface_ids: Vec::new(),
                tags: endpoint.tags.clone(),
                last_error: None,
            });
        }
        Resource::HostedZone(zone) => {
            let zone_id = format!("Z{serial:020}");
            observed.hosted_zones.push(HostedZoneState {
                zone_id: zone_id.clone(),
                name: zone.name.clone(),
                private: true,
                comment: zone.comment.clone(),
                tags: zone.tags.clone(),
                vpcs: vec![(zone.vpc_id.clone(), zone.vpc_region.clone())],
            });
            observed.records.insert(zone_id.clone(), Vec::new());
            step_outputs.insert(outputs::ID.to_string(), zone_id);
        }
        Resource::AliasRecords(records) => {
            let zone_records = observed.records.entry(known(&records.zone_id)).or_default();
            for record in &records.records {
                zone_records
                    .retain(|r| r.name != record.name || r.record_type != record.record_type);
                zone_records.push(RecordState {
                    name: record.name.clone(),
                    record_type: record.record_type.clone(),
                    alias: Some(AliasTargetState {
                        dns_name: known(&record.target_dns_name),
                        hosted_zone_id: known(&record.target_zone_id),
                        evaluate_target_health: record.evaluate_target_health,
                    }),
                    values: Vec::new(),
                    ttl: None,
                    set_identifier: None,
                });
            }
        }
        Resource::PeeringConnection(peering) => {
            let peering_id = format!("pcx-{serial:017x}");
            let state = PeeringState {
                peering_id: peering_id.clone(),
                requester_vpc_id: peering.requester_vpc_id.clone(),
                requester_region: step.context.region.clone(),
                requester_owner_id: account.clone(),
                accepter_vpc_id: peering.accepter_vpc_id.clone(),
                accepter_region: peering.accepter_region.clone(),
                accepter_owner_id: peering.accepter_owner_id.clone().unwrap_or(account),
                status: "pending-acceptance".to_string(),
                status_message: None,
                tags: peering.tags.clone(),
            };
            peerings.insert(peering_id.clone(), state);
            step_outputs.insert(outputs::ID.to_string(), peering_id);
        }
        Resource::PeeringAcceptance(acceptance) => {
            let peering_id = known(&acceptance.peering_id);
            let peering = peerings
                .get_mut(&peering_id)
                .unwrap_or_else(|| panic!("peering {peering_id} is not in the state"));
            peering.status = "active".to_string();
            step_outputs.insert(outputs::ID.to_string(), peering_id);
        }
        Resource::Route(route) => {
            let table = observed
                .route_tables
                .get_mut(&route.route_table_id)
                .and_then(Option::as_mut)
                .unwrap_or_else(|| {
                    panic!("route table {} is not in the state", route.route_table_id)
                });
            table.routes.push(RouteState {
                destination_cidr: route.destination_cidr.clone(),
                target: known(&route.peering_id),
                state: "active".to_string(),
            });
        }
        Resource::ZoneAssociation(association) => {
            let zone_id = known(&association.zone_id);
            let zone = observed
                .hosted_zones
                .iter_mut()
                .find(|z| z.zone_id == zone_id)
                .unwrap_or_else(|| panic!("zone {zone_id} is not in the state"));
            zone.vpcs
                .push((association.vpc_id.clone(), association.vpc_region.clone()));
        }
        // An authorization leaves nothing that a read returns.
        Resource::AssociationAuthorization(_) => {}
    }
    step_outputs
}

fn known(value: &linkplan_engine::resource::Value) -> String {
    value
        .require()
        .unwrap_or_else(|error| panic!("{error}"))
        .to_string()
}

/// Sorts the lists a read returns sorted.
fn sort_lists(observed: &mut Observed) {
    observed
        .endpoints
        .sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    observed
        .security_groups
        .sort_by(|a, b| a.group_id.cmp(&b.group_id));
    for group in &mut observed.security_groups {
        group.ingress.sort();
    }
    observed
        .hosted_zones
        .sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
    for zone in &mut observed.hosted_zones {
        zone.vpcs.sort();
    }
    for records in observed.records.values_mut() {
        records.sort();
    }
    observed
        .peerings
        .sort_by(|a, b| a.peering_id.cmp(&b.peering_id));
    for table in observed.route_tables.values_mut().flatten() {
        table.routes.sort();
    }
}

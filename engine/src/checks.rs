//! Checks that need the live state, run before a plan is written. All findings are collected
//! and reported together; any error stops the plan.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::observed::{Observed, ServiceLookup};
use crate::saas::WORKLOAD_SECURITY;
use crate::stack::Stack;

/// Returns every problem with `stack` that the live state `observed` shows.
pub fn check(stack: &Stack, observed: &Observed) -> Diagnostics {
    let mut findings = Diagnostics::default();
    check_subnets(stack, observed, &mut findings);
    check_services(stack, observed, &mut findings);
    check_security_groups(stack, observed, &mut findings);
    check_spokes(stack, observed, &mut findings);
    check_overlaps(stack, observed, &mut findings);
    check_resolution(stack, observed, &mut findings);
    findings
}

fn check_subnets(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    let hub = &stack.hub;
    let mut by_zone: BTreeMap<&str, &str> = BTreeMap::new();
    for subnet_id in &hub.subnet_ids {
        let Some(subnet) = observed.subnet(subnet_id) else {
            findings.push(
                Diagnostic::error(format!(
                    "subnet `{subnet_id}` of `hub.subnet_ids` not found in {}",
                    hub.region
                ))
                .with_help("check the subnet id; it must be a subnet of the hub VPC"),
            );
            continue;
        };
        if subnet.vpc_id != hub.vpc_id {
            findings.push(
                Diagnostic::error(format!(
                    "subnet `{subnet_id}` belongs to VPC `{}`, not to the hub VPC `{}`",
                    subnet.vpc_id, hub.vpc_id
                ))
                .with_help("list only subnets of the hub VPC in `hub.subnet_ids`"),
            );
            // Its zone is unrelated to the hub's subnets, so it is left out of the zone check.
            continue;
        }
        let zone = subnet.availability_zone_id.as_str();
        if let Some(first) = by_zone.insert(zone, subnet_id) {
            findings.push(
                Diagnostic::error(format!(
                    "subnets `{first}` and `{subnet_id}` are both in zone {zone} ({})",
                    subnet.availability_zone
                ))
                .with_detail("an interface endpoint takes at most one subnet per availability zone")
                .with_help("keep one subnet per zone in `hub.subnet_ids`"),
            );
        }
    }
}

fn check_services(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    for service in &stack.services {
        match observed.services.get(&service.service_name) {
            None => {}
            Some(ServiceLookup::NotFound { message }) => findings.push(
                Diagnostic::error(format!(
                    "endpoint service `{}` for `{}` is not visible to this account",
                    service.service_name, service.host
                ))
                .with_detail(format!("DescribeVpcEndpointServices answered InvalidServiceName: {message}"))
                .with_help(
                    "check the service name; if it is right, ask the provider to allowlist this account for the service",
                ),
            ),
            Some(ServiceLookup::Found(found)) => {
                if service.private_dns && found.private_dns_name.is_none() {
                    findings.push(
                        Diagnostic::error(format!(
                            "private DNS cannot be enabled for endpoint `{}`: service `{}` publishes no private DNS name",
                            service.host, service.service_name
                        ))
                        .with_detail(format!(
                            "the names are published through the private zone {} that linkplan manages",
                            stack.zone.name
                        ))
                        .with_help(format!("drop `private_dns` from [services.{}] or set it to false", service.host)),
                    );
                }
                if found.acceptance_required {
                    findings.push(Diagnostic::warning(format!(
                        "endpoint service `{}` for `{}` requires the provider to accept each connection; apply waits for it",
                        service.service_name, service.host
                    )));
                }
            }
        }
    }
}

fn check_security_groups(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    for group_id in &stack.hub.security_group_ids {
        let Some(group) = observed
            .security_groups
            .iter()
            .find(|g| &g.group_id == group_id)
        else {
            findings.push(
                Diagnostic::error(format!(
                    "security group `{group_id}` of `hub.security_group_ids` not found"
                ))
                .with_help("check the group id, or remove the key to let linkplan manage a group"),
            );
            continue;
        };
        if group.vpc_id != stack.hub.vpc_id {
            findings.push(
                Diagnostic::error(format!(
                    "security group `{group_id}` belongs to VPC `{}`, not to the hub VPC",
                    group.vpc_id
                ))
                .with_help("list only groups of the hub VPC"),
            );
        }
    }
    for group in &observed.security_groups {
        let listed = stack.hub.security_group_ids.contains(&group.group_id);
        let managed = group
            .tags
            .get(crate::resource::TAG_STACK)
            .is_some_and(|s| *s == stack.name);
        if !(listed || managed && !stack.hub.manages_security_group()) {
            continue;
        }
        for permission in &group.ingress {
            if permission.source == "0.0.0.0/0" || permission.source == "::/0" {
                findings.push(
                    Diagnostic::error(format!(
                        "security group `{}` of the endpoints allows inbound traffic from {}",
                        group.group_id, permission.source
                    ))
                    .with_help("limit its inbound rules to the clients' CIDRs"),
                );
            }
        }
    }
    if !stack.hub.manages_security_group() {
        for spoke in &stack.spokes {
            let Some(vpc) = observed.vpc(&spoke.vpc_id) else {
                continue;
            };
            for cidr in &vpc.cidrs {
                let allowed = observed
                    .security_groups
                    .iter()
                    .filter(|g| stack.hub.security_group_ids.contains(&g.group_id))
                    .flat_map(|g| &g.ingress)
                    .any(|p| {
                        let port = i32::from(WORKLOAD_SECURITY.port);
                        let port_open = p.protocol == "-1"
                            || (p.protocol == "tcp"
                                && p.from_port.is_some_and(|f| f <= port)
                                && p.to_port.is_some_and(|t| t >= port));
                        let covers = p
                            .source
                            .parse::<IpNet>()
                            .is_ok_and(|source| source.contains(cidr));
                        port_open && covers
                    });
                if !allowed {
                    findings.push(
                        Diagnostic::error(format!(
                            "the groups of `hub.security_group_ids` do not allow TCP {} from {cidr} of spoke `{}`",
                            WORKLOAD_SECURITY.port, spoke.name
                        ))
                        .with_help("add that rule to one of the groups, or remove the key to let linkplan manage the group"),
                    );
                }
            }
        }
    }
}

fn check_spokes(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    let hub_account = observed.account(&stack.hub_context()).map(str::to_string);
    for spoke in &stack.spokes {
        let Some(vpc) = observed.vpc(&spoke.vpc_id) else {
            continue;
        };
        if let Some(configured) = &spoke.account_id {
            if configured != &vpc.owner_id {
                findings.push(
                    Diagnostic::error(format!(
                        "spoke `{}` names account {configured}, but VPC `{}` is owned by {}",
                        spoke.name, spoke.vpc_id, vpc.owner_id
                    ))
                    .with_help("correct `account_id` of the spoke"),
                );
            }
        }
        let cross_account = hub_account.as_ref().is_some_and(|hub| hub != &vpc.owner_id);
        let spoke_account = observed.account(&stack.spoke_context(spoke));
        if cross_account && spoke_account != Some(vpc.owner_id.as_str()) {
            findings.push(
                Diagnostic::error(format!(
                    "spoke `{}` is in account {}, but linkplan has no credentials for that account",
                    spoke.name, vpc.owner_id
                ))
                .with_detail(
                    "accepting the peering connection and associating the zone must be done by the spoke's account",
                )
                .with_help(format!(
                    "set `profile` or `role_arn` of spoke `{}` to credentials of account {}",
                    spoke.name, vpc.owner_id
                )),
            );
        }
    }
}

fn check_overlaps(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    let mut vpcs: Vec<(String, &str, &[IpNet])> = Vec::new();
    if let Some(hub) = observed.vpc(&stack.hub.vpc_id) {
        vpcs.push(("the hub".to_string(), &stack.hub.vpc_id, &hub.cidrs));
    }
    for spoke in &stack.spokes {
        if let Some(vpc) = observed.vpc(&spoke.vpc_id) {
            vpcs.push((format!("spoke `{}`", spoke.name), &spoke.vpc_id, &vpc.cidrs));
        }
    }
    for (i, (first_name, first_id, first_cidrs)) in vpcs.iter().enumerate() {
        for (second_name, second_id, second_cidrs) in &vpcs[i + 1..] {
            let overlapping: Vec<String> = first_cidrs
                .iter()
                .flat_map(|a| second_cidrs.iter().map(move |b| (a, b)))
                .filter(|(a, b)| a.contains(&b.network()) || b.contains(&a.network()))
                .map(|(a, b)| format!("{a} overlaps {b}"))
                .collect();
            if overlapping.is_empty() {
                continue;
            }
            let list = |cidrs: &[IpNet]| {
                cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            findings.push(
                Diagnostic::error(format!(
                    "CIDR blocks of {first_name} (`{first_id}`: {}) and {second_name} (`{second_id}`: {}) overlap: {}",
                    list(first_cidrs),
                    list(second_cidrs),
                    overlapping.join("; ")
                ))
                .with_detail("a peering connection between overlapping VPCs fails")
                .with_help("peer only VPCs whose IPv4 blocks, secondary ones included, do not overlap"),
            );
        }
    }
}

fn check_resolution(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    let mut vpcs = vec![("the hub".to_string(), stack.hub.vpc_id.as_str())];
    vpcs.extend(
        stack
            .spokes
            .iter()
            .map(|s| (format!("spoke `{}`", s.name), s.vpc_id.as_str())),
    );
    for (owner, vpc_id) in vpcs {
        let Some(vpc) = observed.vpc(vpc_id) else {
            continue;
        };
        if vpc.amazon_dns == Some(false) {
            findings.push(
                Diagnostic::warning(format!(
                    "VPC `{vpc_id}` of {owner} uses DHCP options without AmazonProvidedDNS, so its instances will not see the private zone"
                ))
                .with_help("forward the zone's domain to the VPC resolver, or use AmazonProvidedDNS"),
            );
        }
        if vpc.internet_route == Some(false) {
            findings.push(Diagnostic::warning(format!(
                "VPC `{vpc_id}` of {owner} has no route to the internet: agent traffic outside PrivateLink, such as the Smart Protection Network, will fail"
            )));
        }
    }
}

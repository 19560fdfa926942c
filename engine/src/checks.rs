//! Checks that need the live state, run before a plan is written. All findings are collected
//! and reported together; any error stops the plan.
//!
//! [`check`] looks at the config and the live state alone. [`check_plan`] runs once the steps
//! are known, for what depends on what the plan would do.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::observed::{IngressPermission, Observed, ServiceLookup};
use crate::planner::Mode;
use crate::resource::Resource;
use crate::saas::WORKLOAD_SECURITY;
use crate::stack::Stack;
use crate::step::{Action, Step};

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
        check_named_groups_allow_clients(stack, observed, findings);
    }
}

/// Checks that the groups of `hub.security_group_ids` allow TCP 443 from every client: the
/// hub's (`hub.client_cidrs`, or the hub VPC's blocks) and every spoke's blocks.
///
/// A block of a spoke in another region missing is an error: a peering across regions allows no
/// security group references, so a CIDR rule is the only way in. Other clients may be let in by
/// a rule that references their own group, which this check does not follow, so for them it is
/// a warning.
fn check_named_groups_allow_clients(
    stack: &Stack,
    observed: &Observed,
    findings: &mut Diagnostics,
) {
    // Each client block, the side it is for, and whether a missing rule is an error.
    let mut clients: Vec<(IpNet, String, bool)> = Vec::new();
    if stack.hub.client_cidrs.is_empty() {
        if let Some(vpc) = observed.vpc(&stack.hub.vpc_id) {
            let side = "the hub VPC".to_string();
            clients.extend(vpc.cidrs.iter().map(|c| (*c, side.clone(), false)));
        }
    } else {
        let side = "`hub.client_cidrs`".to_string();
        clients.extend(
            stack
                .hub
                .client_cidrs
                .iter()
                .map(|c| (*c, side.clone(), false)),
        );
    }
    for spoke in &stack.spokes {
        if let Some(vpc) = observed.vpc(&spoke.vpc_id) {
            let side = format!("spoke `{}`", spoke.name);
            let required = spoke.region != stack.hub.region;
            clients.extend(vpc.cidrs.iter().map(|c| (*c, side.clone(), required)));
        }
    }

    let port = i32::from(WORKLOAD_SECURITY.port);
    let rules: Vec<&IngressPermission> = observed
        .security_groups
        .iter()
        .filter(|g| stack.hub.security_group_ids.contains(&g.group_id))
        .flat_map(|g| &g.ingress)
        .collect();
    for (cidr, side, required) in clients {
        let allowed = rules.iter().any(|p| {
            let port_open = p.protocol == "-1"
                || (p.protocol == "tcp"
                    && p.from_port.is_some_and(|f| f <= port)
                    && p.to_port.is_some_and(|t| t >= port));
            let covers = p
                .source
                .parse::<IpNet>()
                .is_ok_and(|source| source.contains(&cidr));
            port_open && covers
        });
        if allowed {
            continue;
        }
        let summary = format!(
            "the groups of `hub.security_group_ids` do not allow TCP {port} from {cidr} of {side}"
        );
        let finding = if required {
            Diagnostic::error(summary).with_help(
                "add that rule to one of the groups, or remove the key to let linkplan manage the group",
            )
        } else {
            Diagnostic::warning(summary).with_help(
                "add that rule to one of the groups, unless a rule that references the clients' own group lets them in",
            )
        };
        findings.push(finding);
    }
}

fn check_spokes(stack: &Stack, observed: &Observed, findings: &mut Diagnostics) {
    let hub_account = observed.account(&stack.hub_context()).map(str::to_string);
    for spoke in &stack.spokes {
        let Some(vpc) = observed.vpc(&spoke.vpc_id) else {
            continue;
        };
        if let Some(configured) = &spoke.account_id
            && configured != &vpc.owner_id
        {
            findings.push(
                Diagnostic::error(format!(
                    "spoke `{}` names account {configured}, but VPC `{}` is owned by {}",
                    spoke.name, spoke.vpc_id, vpc.owner_id
                ))
                .with_help("correct `account_id` of the spoke"),
            );
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
    for (i, j) in overlapping_pairs(&vpcs) {
        let (first_name, first_id, first_cidrs) = &vpcs[i];
        let (second_name, second_id, second_cidrs) = &vpcs[j];
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

/// Returns the index pairs `(i, j)`, `i < j`, of the VPCs in `vpcs` whose blocks overlap,
/// sorted.
///
/// Two CIDR blocks overlap only when one contains the other. So, with the blocks sorted by
/// first address and the larger first, a block can overlap only the blocks on a stack of those
/// that contain it, at most 129 deep. That makes the check O(n log n) rather than a comparison
/// of every pair of VPCs.
fn overlapping_pairs(vpcs: &[(String, &str, &[IpNet])]) -> BTreeSet<(usize, usize)> {
    let mut blocks: Vec<(IpNet, usize)> = vpcs
        .iter()
        .enumerate()
        .flat_map(|(index, (_, _, cidrs))| cidrs.iter().map(move |cidr| (cidr.trunc(), index)))
        .collect();
    blocks.sort_by_key(|(cidr, _)| (cidr.network(), cidr.prefix_len()));

    let mut pairs = BTreeSet::new();
    let mut containing: Vec<(IpNet, usize)> = Vec::new();
    for (cidr, index) in blocks {
        while containing
            .last()
            .is_some_and(|(outer, _)| !outer.contains(&cidr.network()))
        {
            containing.pop();
        }
        for (_, outer_index) in &containing {
            if *outer_index != index {
                pairs.insert((index.min(*outer_index), index.max(*outer_index)));
            }
        }
        containing.push((cidr, index));
    }
    pairs
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

/// Returns the problems with the planned `steps` for `stack` in `mode`: an endpoint quota the
/// creates would exceed, and the names that the private zone would hide.
///
/// The hidden names are a warning only for plans that create the zone or associate it with
/// another VPC, so a plan without such a step stays quiet about a zone already in use.
pub fn check_plan(stack: &Stack, observed: &Observed, steps: &[Step], mode: Mode) -> Diagnostics {
    let mut findings = Diagnostics::default();
    if mode == Mode::Apply {
        check_endpoint_quota(stack, observed, steps, &mut findings);
        let hides_names = steps.iter().any(|s| {
            s.action == Action::Create
                && matches!(
                    s.resource(),
                    Resource::HostedZone(_) | Resource::ZoneAssociation(_)
                )
        });
        if hides_names {
            check_hidden_names(stack, &mut findings);
        }
    }
    findings
}

fn check_endpoint_quota(
    stack: &Stack,
    observed: &Observed,
    steps: &[Step],
    findings: &mut Diagnostics,
) {
    // A replace creates the new endpoint before it deletes the old one. Deletes are not
    // subtracted, because the executor may run them after the creates.
    let creates = steps
        .iter()
        .filter(|s| matches!(s.resource(), Resource::Endpoint(_)))
        .filter(|s| matches!(s.action, Action::Create | Action::Replace))
        .count();
    if creates == 0 {
        return;
    }
    // `observed.endpoints` lists every interface endpoint of the hub VPC, including those that
    // linkplan did not create.
    let existing = observed.endpoints.iter().filter(|e| !e.is_gone()).count();
    let quota = stack.hub.endpoint_quota as usize;
    if existing + creates <= quota {
        return;
    }
    findings.push(
        Diagnostic::error(format!(
            "VPC `{}` would hold {} interface endpoints, over its quota of {quota}: it has \
             {existing} and the plan creates {creates}",
            stack.hub.vpc_id,
            existing + creates
        ))
        .with_detail(
            "the quota counts every interface endpoint of the VPC, whoever created it; a \
             replaced endpoint counts twice until its old copy is deleted",
        )
        .with_help(
            "delete interface endpoints the VPC no longer needs, or have the quota raised in \
             Service Quotas and set `hub.endpoint_quota` to the new value",
        ),
    );
}

fn check_hidden_names(stack: &Stack, findings: &mut Diagnostics) {
    let zone = &stack.zone.name;
    let served: Vec<&str> = stack.services.iter().map(|s| s.host.as_str()).collect();
    let warning = format!(
        "the private zone `{zone}` answers NXDOMAIN for every name under it but {}, inside \
         each VPC it is associated with",
        served
            .iter()
            .map(|host| format!("`{}`", stack.zone.record_name(host)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let help = "when clients need another name under the zone, add it to [services] if an \
                endpoint service offers it, or add a record for it to the zone";
    if zone != WORKLOAD_SECURITY.zone_name {
        findings.push(Diagnostic::warning(warning).with_help(help));
        return;
    }
    let hidden: Vec<String> = WORKLOAD_SECURITY
        .other_hosts
        .iter()
        .filter(|(host, _)| !served.contains(host))
        .map(|(host, what)| format!("`{}` ({what})", stack.zone.record_name(host)))
        .collect();
    let mut detail = if hidden.is_empty() {
        "no other name under the zone is known to be in use".to_string()
    } else {
        format!(
            "names known to be in use that it hides: {}",
            hidden.join(", ")
        )
    };
    if !WORKLOAD_SECURITY.other_hosts_complete {
        detail.push_str(
            "; Trend Micro publishes no complete list of its names under the domain, so \
             agents may need others",
        );
    }
    findings.push(
        Diagnostic::warning(warning)
            .with_detail(detail)
            .with_help(help),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::EndpointState;
    use crate::planner::addresses;
    use crate::resource::{Endpoint, HostedZone, Tags};

    #[test]
    fn overlapping_pairs_match_every_pair_compared() {
        let cidrs: Vec<Vec<IpNet>> = [
            vec!["10.0.0.0/16"],
            vec!["10.0.1.0/24"],
            vec!["10.1.0.0/16", "10.0.0.0/8"],
            vec!["10.1.0.0/16"],
            vec!["192.168.0.0/24"],
            vec!["2600:1f18::/56", "172.16.0.0/12"],
            vec!["2600:1f18:0:10::/64"],
            vec!["172.31.0.0/16", "172.31.5.0/24"],
        ]
        .iter()
        .map(|blocks| blocks.iter().map(|b| b.parse().unwrap()).collect())
        .collect();
        let vpcs: Vec<(String, &str, &[IpNet])> = cidrs
            .iter()
            .map(|blocks| ("vpc".to_string(), "vpc-1", blocks.as_slice()))
            .collect();

        let mut expected = BTreeSet::new();
        for i in 0..vpcs.len() {
            for j in i + 1..vpcs.len() {
                let overlap = vpcs[i].2.iter().any(|a| {
                    vpcs[j]
                        .2
                        .iter()
                        .any(|b| a.contains(&b.network()) || b.contains(&a.network()))
                });
                if overlap {
                    expected.insert((i, j));
                }
            }
        }
        assert!(expected.contains(&(0, 1)));
        assert!(expected.contains(&(5, 6)));
        assert!(!expected.contains(&(4, 5)));
        assert_eq!(overlapping_pairs(&vpcs), expected);
    }

    const CONFIG: &str = r#"
name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0000aaaa"
subnet_ids = ["subnet-0000000a"]
endpoint_quota = 6
"#;

    fn stack() -> Stack {
        crate::config::parse("linkplan.toml", CONFIG)
            .expect("the test config is valid")
            .stack
    }

    fn live_endpoints(count: usize, state: &str) -> Vec<EndpointState> {
        (0..count)
            .map(|i| EndpointState {
                endpoint_id: format!("vpce-{state}-{i}"),
                vpc_id: "vpc-0000aaaa".to_string(),
                service_name: "com.amazonaws.vpce.us-east-1.vpce-svc-other".to_string(),
                state: state.to_string(),
                subnet_ids: Vec::new(),
                security_group_ids: Vec::new(),
                private_dns_enabled: Some(false),
                dns_entries: Vec::new(),
                network_interface_ids: Vec::new(),
                tags: Tags::new(),
                last_error: None,
            })
            .collect()
    }

    fn endpoint_step(host: &str, action: Action) -> Step {
        let stack = stack();
        let endpoint = Endpoint {
            service_name: format!("com.amazonaws.vpce.us-east-1.vpce-svc-{host}"),
            vpc_id: "vpc-0000aaaa".to_string(),
            subnet_ids: vec!["subnet-0000000a".to_string()],
            security_group_ids: Vec::new(),
            private_dns_enabled: false,
            tags: Tags::new(),
        };
        Step {
            address: addresses::endpoint(host),
            action,
            context: stack.hub_context(),
            id: None,
            reason: None,
            depends_on: Vec::new(),
            before: None,
            after: Some(Resource::Endpoint(endpoint)),
        }
    }

    fn zone_step(stack: &Stack) -> Step {
        let zone = HostedZone {
            name: stack.zone.name.clone(),
            vpc_id: stack.hub.vpc_id.clone(),
            vpc_region: stack.hub.region.clone(),
            comment: String::new(),
            tags: Tags::new(),
        };
        Step {
            address: addresses::zone(),
            action: Action::Create,
            context: stack.hub_context(),
            id: None,
            reason: None,
            depends_on: Vec::new(),
            before: None,
            after: Some(Resource::HostedZone(zone)),
        }
    }

    fn quota_errors(observed: &Observed, steps: &[Step]) -> Vec<String> {
        check_plan(&stack(), observed, steps, Mode::Apply)
            .errors()
            .map(|d| d.summary.clone())
            .collect()
    }

    #[test]
    fn quota_allows_plan_that_fills_it() {
        let observed = Observed {
            endpoints: live_endpoints(4, "available"),
            ..Observed::default()
        };
        let steps = [
            endpoint_step("agents", Action::Create),
            endpoint_step("relay", Action::Create),
        ];
        assert!(quota_errors(&observed, &steps).is_empty());
    }

    #[test]
    fn quota_rejects_one_over() {
        let observed = Observed {
            endpoints: live_endpoints(5, "available"),
            ..Observed::default()
        };
        let steps = [
            endpoint_step("agents", Action::Create),
            endpoint_step("relay", Action::Create),
        ];
        assert_eq!(
            quota_errors(&observed, &steps),
            [
                "VPC `vpc-0000aaaa` would hold 7 interface endpoints, over its quota of 6: it has 5 \
              and the plan creates 2"
            ]
        );
    }

    #[test]
    fn quota_counts_replace_and_pending_endpoints() {
        let mut endpoints = live_endpoints(4, "available");
        endpoints.extend(live_endpoints(1, "pendingacceptance"));
        let observed = Observed {
            endpoints,
            ..Observed::default()
        };
        let steps = [
            endpoint_step("agents", Action::Replace),
            endpoint_step("relay", Action::Create),
        ];
        assert_eq!(quota_errors(&observed, &steps).len(), 1);
    }

    #[test]
    fn quota_ignores_deleted_endpoints_and_updates() {
        let mut endpoints = live_endpoints(5, "available");
        endpoints.extend(live_endpoints(3, "deleted"));
        let observed = Observed {
            endpoints,
            ..Observed::default()
        };
        let steps = [
            endpoint_step("agents", Action::Create),
            endpoint_step("relay", Action::Update),
        ];
        assert!(quota_errors(&observed, &steps).is_empty());
    }

    #[test]
    fn quota_over_without_creates_is_not_an_error() {
        let observed = Observed {
            endpoints: live_endpoints(9, "available"),
            ..Observed::default()
        };
        let steps = [endpoint_step("relay", Action::Update)];
        assert!(quota_errors(&observed, &steps).is_empty());
    }

    #[test]
    fn destroy_plan_has_no_plan_findings() {
        let observed = Observed {
            endpoints: live_endpoints(9, "available"),
            ..Observed::default()
        };
        let steps = [endpoint_step("relay", Action::Create)];
        let findings = check_plan(&stack(), &observed, &steps, Mode::Destroy);
        assert!(findings.0.is_empty());
    }

    #[test]
    fn hidden_names_warning_for_other_zone_is_general() {
        let text = format!("{CONFIG}\n[zone]\nname = \"example.internal\"\n");
        let stack = crate::config::parse("linkplan.toml", &text)
            .expect("the test config is valid")
            .stack;
        let steps = [zone_step(&stack)];
        let findings = check_plan(&stack, &Observed::default(), &steps, Mode::Apply);
        let warnings: Vec<&Diagnostic> = findings.warnings().collect();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .summary
                .starts_with("the private zone `example.internal` answers NXDOMAIN"),
            "{}",
            warnings[0].summary
        );
        assert_eq!(warnings[0].detail, None);
    }

    #[test]
    fn hidden_names_leave_out_served_hosts() {
        let text = CONFIG.to_string()
            + "\n[services]\nhelp = \"com.amazonaws.vpce.us-east-1.vpce-svc-0000000a\"\n";
        let stack = crate::config::parse("linkplan.toml", &text)
            .expect("the test config is valid")
            .stack;
        let steps = [zone_step(&stack)];
        let findings = check_plan(&stack, &Observed::default(), &steps, Mode::Apply);
        let detail = findings.warnings().next().unwrap().detail.clone().unwrap();
        assert!(
            detail.starts_with(
                "names known to be in use that it hides: `automation.deepsecurity.trendmicro.com`"
            ),
            "{detail}"
        );
        assert!(!detail.contains("help.deepsecurity"), "{detail}");
    }

    #[test]
    fn hidden_names_quiet_without_zone_create() {
        let steps = [endpoint_step("relay", Action::Create)];
        let findings = check_plan(&stack(), &Observed::default(), &steps, Mode::Apply);
        assert_eq!(findings.warnings().count(), 0);
    }
}

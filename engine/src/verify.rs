//! `verify`: the addresses each name of the zone must resolve to, and the verdict on what DNS
//! returned.
//!
//! Inside a VPC associated with the zone, the Route 53 resolver responds to a query for an alias
//! record with the addresses of its target. So each host name must resolve to exactly the private
//! IPv4 addresses of its endpoint's network interfaces.
//!
//! 1. [`endpoints_to_verify`] finds the stack's endpoint of each service in the live state.
//! 2. The provider reads the network interfaces of those endpoints.
//! 3. [`expected_names`] maps each name to its interfaces' private addresses.
//! 4. The caller resolves each name, and [`verdict`] compares the response with what was expected.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::observed::{EndpointState, Observed};
use crate::planner::addresses;
use crate::resource::{TAG_ADDRESS, TAG_STACK};
use crate::stack::Stack;

/// A network interface as DescribeNetworkInterfaces returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterfaceState {
    pub interface_id: String,
    /// Every private IPv4 address of the interface, the primary first.
    pub private_ipv4: Vec<Ipv4Addr>,
}

/// The endpoint that serves one host name of the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointToVerify {
    /// The fully qualified name, lowercase, without a trailing dot.
    pub name: String,
    pub endpoint_id: String,
    /// Sorted.
    pub network_interface_ids: Vec<String>,
}

/// One name with the addresses DNS must return for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedName {
    /// The fully qualified name, lowercase, without a trailing dot.
    pub name: String,
    pub endpoint_id: String,
    /// The private IPv4 addresses of the endpoint's interfaces, sorted, without repeats.
    pub addresses: Vec<Ipv4Addr>,
}

/// The result of a DNS query for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The A records of the response, in the order they came.
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN, or a name without A records.
    NoRecords,
    /// The query failed, for example timed out. The text is the resolver's error.
    Failed(String),
}

/// The result of comparing one response with the expected addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly the expected addresses, all private.
    Match,
    /// Addresses other than the expected ones, or only some of them.
    Mismatch,
    /// An address outside the private ranges of RFC 1918 among those returned, which means the
    /// name resolves to the public service, not to the endpoint.
    Public,
    /// No address at all, or a failed query.
    NoAnswer,
}

impl Verdict {
    /// Returns the word the verify table shows.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Match => "ok",
            Verdict::Mismatch => "MISMATCH",
            Verdict::Public => "PUBLIC",
            Verdict::NoAnswer => "NO ANSWER",
        }
    }
}

/// Finds the stack's live endpoint of each service of `stack`, in service order.
///
/// # Errors
/// One diagnostic per service whose endpoint is missing (not applied yet, or deleted), is
/// present twice, or has no network interface yet.
pub fn endpoints_to_verify(
    stack: &Stack,
    observed: &Observed,
) -> Result<Vec<EndpointToVerify>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut endpoints = Vec::new();
    for service in &stack.services {
        let name = stack.zone.record_name(&service.host);
        let address = addresses::endpoint(&service.host);
        let found: Vec<&EndpointState> = observed
            .endpoints
            .iter()
            .filter(|e| !e.is_gone())
            .filter(|e| e.tags.get(TAG_STACK).is_some_and(|s| *s == stack.name))
            .filter(|e| {
                e.tags
                    .get(TAG_ADDRESS)
                    .is_some_and(|a| a == address.as_str())
            })
            .collect();
        match found.as_slice() {
            [] => errors.push(
                Diagnostic::error(format!(
                    "`{name}` has no endpoint in the live state: `{address}` of stack `{}` \
                     was not found in VPC `{}`",
                    stack.name, stack.hub.vpc_id
                ))
                .with_help("run linkplan plan and apply first"),
            ),
            [endpoint] if endpoint.network_interface_ids.is_empty() => errors.push(
                Diagnostic::error(format!(
                    "endpoint `{}` of `{name}` has no network interfaces (state {})",
                    endpoint.endpoint_id, endpoint.state
                ))
                .with_help("wait until the endpoint is available, then run linkplan verify again"),
            ),
            [endpoint] => endpoints.push(EndpointToVerify {
                name,
                endpoint_id: endpoint.endpoint_id.clone(),
                network_interface_ids: endpoint.network_interface_ids.clone(),
            }),
            several => {
                let ids: Vec<&str> = several.iter().map(|e| e.endpoint_id.as_str()).collect();
                errors.push(
                    Diagnostic::error(format!(
                        "{} endpoints carry the address `{address}` of `{name}`: {}",
                        ids.len(),
                        ids.join(", ")
                    ))
                    .with_help("delete all but one of them, then run linkplan plan and apply"),
                );
            }
        }
    }
    if errors.has_errors() {
        Err(errors)
    } else {
        Ok(endpoints)
    }
}

/// Maps each endpoint to the private addresses of its interfaces in `interfaces`.
///
/// # Errors
/// One diagnostic per endpoint with an interface that `interfaces` lacks, or whose interfaces
/// have no private IPv4 address.
pub fn expected_names(
    endpoints: &[EndpointToVerify],
    interfaces: &[NetworkInterfaceState],
) -> Result<Vec<ExpectedName>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut names = Vec::new();
    for endpoint in endpoints {
        let mut addresses = BTreeSet::new();
        for id in &endpoint.network_interface_ids {
            match interfaces.iter().find(|i| &i.interface_id == id) {
                Some(interface) => addresses.extend(interface.private_ipv4.iter().copied()),
                None => errors.push(
                    Diagnostic::error(format!(
                        "network interface `{id}` of endpoint `{}` (`{}`) was not found",
                        endpoint.endpoint_id, endpoint.name
                    ))
                    .with_help("the endpoint may be changing; run linkplan verify again"),
                ),
            }
        }
        if addresses.is_empty() {
            errors.push(
                Diagnostic::error(format!(
                    "the network interfaces of endpoint `{}` (`{}`) have no private IPv4 address",
                    endpoint.endpoint_id, endpoint.name
                ))
                .with_help("describe the endpoint's network interfaces to see why"),
            );
            continue;
        }
        names.push(ExpectedName {
            name: endpoint.name.clone(),
            endpoint_id: endpoint.endpoint_id.clone(),
            addresses: addresses.into_iter().collect(),
        });
    }
    if errors.has_errors() {
        Err(errors)
    } else {
        Ok(names)
    }
}

/// Compares `answer` with the `expected` addresses of one name.
///
/// A public address wins over a mismatch, because it means the query reached a resolver that
/// does not see the private zone, which is the more useful thing to report.
pub fn verdict(expected: &[Ipv4Addr], answer: &Answer) -> Verdict {
    let answered = match answer {
        Answer::Addresses(addresses) if !addresses.is_empty() => addresses,
        _ => return Verdict::NoAnswer,
    };
    if answered.iter().any(|address| !address.is_private()) {
        return Verdict::Public;
    }
    let answered: BTreeSet<Ipv4Addr> = answered.iter().copied().collect();
    let expected: BTreeSet<Ipv4Addr> = expected.iter().copied().collect();
    if answered == expected {
        Verdict::Match
    } else {
        Verdict::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn verdict_matches_same_set_in_any_order() {
        let expected = [ip("10.0.1.5"), ip("10.0.2.7")];
        let answer = Answer::Addresses(vec![ip("10.0.2.7"), ip("10.0.1.5")]);
        assert_eq!(verdict(&expected, &answer), Verdict::Match);
    }

    #[test]
    fn verdict_rejects_missing_address() {
        let expected = [ip("10.0.1.5"), ip("10.0.2.7")];
        let answer = Answer::Addresses(vec![ip("10.0.1.5")]);
        assert_eq!(verdict(&expected, &answer), Verdict::Mismatch);
    }

    #[test]
    fn verdict_rejects_extra_address() {
        let expected = [ip("10.0.1.5")];
        let answer = Answer::Addresses(vec![ip("10.0.1.5"), ip("192.168.3.3")]);
        assert_eq!(verdict(&expected, &answer), Verdict::Mismatch);
    }

    #[test]
    fn verdict_flags_public_address() {
        let expected = [ip("10.0.1.5")];
        let answer = Answer::Addresses(vec![ip("10.0.1.5"), ip("52.20.1.1")]);
        assert_eq!(verdict(&expected, &answer), Verdict::Public);
    }

    #[test]
    fn verdict_private_ranges_are_rfc1918() {
        for private in ["10.255.0.1", "172.16.0.1", "172.31.255.254", "192.168.0.1"] {
            let answer = Answer::Addresses(vec![ip(private)]);
            assert_eq!(
                verdict(&[ip(private)], &answer),
                Verdict::Match,
                "{private}"
            );
        }
        for public in ["172.32.0.1", "100.64.0.1", "169.254.169.253", "8.8.8.8"] {
            let answer = Answer::Addresses(vec![ip(public)]);
            assert_eq!(verdict(&[ip(public)], &answer), Verdict::Public, "{public}");
        }
    }

    #[test]
    fn verdict_without_records_is_no_answer() {
        let expected = [ip("10.0.1.5")];
        assert_eq!(verdict(&expected, &Answer::NoRecords), Verdict::NoAnswer);
        let failed = Answer::Failed("timed out".to_string());
        assert_eq!(verdict(&expected, &failed), Verdict::NoAnswer);
        let empty = Answer::Addresses(Vec::new());
        assert_eq!(verdict(&expected, &empty), Verdict::NoAnswer);
    }

    fn endpoint(id: &str, interfaces: &[&str]) -> EndpointToVerify {
        EndpointToVerify {
            name: "agents.deepsecurity.trendmicro.com".to_string(),
            endpoint_id: id.to_string(),
            network_interface_ids: interfaces.iter().map(|i| i.to_string()).collect(),
        }
    }

    fn interface(id: &str, addresses: &[&str]) -> NetworkInterfaceState {
        NetworkInterfaceState {
            interface_id: id.to_string(),
            private_ipv4: addresses.iter().map(|a| ip(a)).collect(),
        }
    }

    #[test]
    fn expected_names_unite_interfaces() {
        let endpoints = [endpoint("vpce-1", &["eni-1", "eni-2"])];
        let interfaces = [
            interface("eni-2", &["10.0.2.7"]),
            interface("eni-1", &["10.0.1.5"]),
            interface("eni-9", &["10.0.9.9"]),
        ];
        let names = expected_names(&endpoints, &interfaces).unwrap();
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].addresses, [ip("10.0.1.5"), ip("10.0.2.7")]);
    }

    #[test]
    fn expected_names_report_missing_interface() {
        let endpoints = [endpoint("vpce-1", &["eni-1", "eni-2"])];
        let interfaces = [interface("eni-1", &["10.0.1.5"])];
        let errors = expected_names(&endpoints, &interfaces).unwrap_err();
        let summaries: Vec<&str> = errors.0.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(
            summaries,
            ["network interface `eni-2` of endpoint `vpce-1` \
              (`agents.deepsecurity.trendmicro.com`) was not found"]
        );
    }
}

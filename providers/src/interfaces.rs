//! DescribeNetworkInterfaces for `verify`: the private addresses of the endpoints' interfaces.

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::NetworkInterface;
use linkplan_engine::provider::ProviderError;
use linkplan_engine::verify::NetworkInterfaceState;

use crate::errors::send;
use crate::normalize::filter;
use crate::sdk_config::Ec2;

/// Interface ids per request. EC2 takes up to 200 values per filter; a smaller batch keeps
/// each response to one or two pages.
const IDS_PER_REQUEST: usize = 100;

/// Reads the network interfaces `ids`, sorted by id. Absent ones are left out.
///
/// The ids go in the `network-interface-id` filter rather than the id list: with an id list,
/// one absent id fails the whole call with `InvalidNetworkInterfaceID.NotFound`.
pub async fn describe_network_interfaces(
    ec2: &Ec2,
    ids: &[String],
) -> Result<Vec<NetworkInterfaceState>, ProviderError> {
    let mut interfaces = Vec::new();
    for batch in ids.chunks(IDS_PER_REQUEST) {
        let mut token: Option<String> = None;
        loop {
            let request = ec2
                .client
                .describe_network_interfaces()
                .filters(filter("network-interface-id", batch.iter().cloned()))
                .set_next_token(token.take());
            let page = send!(ec2.site, "DescribeNetworkInterfaces", request)?;
            interfaces.extend(page.network_interfaces().iter().filter_map(interface_state));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
    }
    interfaces.sort_by(|a, b| a.interface_id.cmp(&b.interface_id));
    interfaces.dedup_by(|a, b| a.interface_id == b.interface_id);
    Ok(interfaces)
}

/// Converts an interface, the primary address first. Addresses that do not parse as IPv4 are
/// dropped; EC2 sends IPv6 addresses in other fields.
fn interface_state(interface: &NetworkInterface) -> Option<NetworkInterfaceState> {
    let interface_id = interface.network_interface_id()?.to_string();
    let mut listed: Vec<(bool, Ipv4Addr)> = interface
        .private_ip_addresses()
        .iter()
        .filter_map(|a| {
            let address = a.private_ip_address()?.parse().ok()?;
            Some((a.primary() != Some(true), address))
        })
        .collect();
    // The primary sorts first, because `false` sorts before `true`.
    listed.sort();
    let mut private_ipv4: Vec<Ipv4Addr> = listed.into_iter().map(|(_, a)| a).collect();
    let primary = interface.private_ip_address().and_then(|a| a.parse().ok());
    if let Some(primary) = primary
        && !private_ipv4.contains(&primary)
    {
        private_ipv4.insert(0, primary);
    }
    Some(NetworkInterfaceState {
        interface_id,
        private_ipv4,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::NetworkInterfacePrivateIpAddress;

    use super::*;

    fn address(ip: &str, primary: bool) -> NetworkInterfacePrivateIpAddress {
        NetworkInterfacePrivateIpAddress::builder()
            .private_ip_address(ip)
            .primary(primary)
            .build()
    }

    #[test]
    fn interface_lists_primary_first() {
        let interface = NetworkInterface::builder()
            .network_interface_id("eni-1")
            .private_ip_address("10.0.1.5")
            .private_ip_addresses(address("10.0.1.9", false))
            .private_ip_addresses(address("10.0.1.5", true))
            .build();
        let state = interface_state(&interface).unwrap();
        assert_eq!(state.interface_id, "eni-1");
        let expected: Vec<Ipv4Addr> =
            vec!["10.0.1.5".parse().unwrap(), "10.0.1.9".parse().unwrap()];
        assert_eq!(state.private_ipv4, expected);
    }

    #[test]
    fn interface_with_only_primary_field() {
        let interface = NetworkInterface::builder()
            .network_interface_id("eni-2")
            .private_ip_address("10.0.2.7")
            .build();
        let state = interface_state(&interface).unwrap();
        let expected: Vec<Ipv4Addr> = vec!["10.0.2.7".parse().unwrap()];
        assert_eq!(state.private_ipv4, expected);
    }

    #[test]
    fn interface_without_id_is_dropped() {
        let interface = NetworkInterface::builder()
            .private_ip_address("10.0.2.7")
            .build();
        assert!(interface_state(&interface).is_none());
    }
}

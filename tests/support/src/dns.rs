//! An authoritative DNS server on 127.0.0.1 for `linkplan verify`, and the records it serves
//! read from the local AWS API the way the Route 53 resolver returns them inside a VPC.
//!
//! Inside a VPC associated with a private zone, the resolver responds to a query for an alias
//! record to an interface endpoint with the private addresses of that endpoint's network
//! interfaces. [`local_zone_records`] rebuilds those responses from moto. Each alias record's
//! target DNS name is matched to the endpoint that has it among its DNS entries, and the
//! endpoint's interfaces give the addresses. [`DnsServer`] then serves them over UDP and TCP.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_route53::types::{RrType, TagResourceType};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

use crate::server::local_sdk_config;

/// Seconds clients may cache a response. It is short, so that a resolver's cache does not
/// serve a stale record to a test that changes it.
const TTL: u32 = 5;

/// How long a TCP connection may stay idle before the server closes it.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes buffered per TCP connection for outgoing responses.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Attempts to find a port free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 20;

/// The tag linkplan puts on everything it creates, with the stack name as its value.
const TAG_STACK: &str = "linkplan:stack";

/// Host names and the IPv4 addresses their A records return, names fully qualified,
/// lowercase, without a trailing dot.
pub type ZoneRecords = BTreeMap<String, Vec<Ipv4Addr>>;

/// An authoritative DNS server for one zone on 127.0.0.1, on an ephemeral port that UDP and
/// TCP share. It runs on a thread of its own and stops when dropped.
pub struct DnsServer {
    /// The address both the UDP socket and the TCP listener are bound to.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Starts a server for `zone` that serves the A records `records`.
    ///
    /// Queries for names under `zone` without a record return NXDOMAIN, as a private hosted zone
    /// does.
    ///
    /// # Errors
    /// A record outside `zone`, an invalid name, or no port free for both protocols.
    pub fn start(zone: &str, records: &ZoneRecords) -> anyhow::Result<DnsServer> {
        let catalog = catalog(zone, records)?;
        let (ready_sender, ready) = mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("local-dns".to_string())
            .spawn(move || serve(catalog, ready_sender, stopped))
            .context("failed to start the DNS server's thread")?;
        let address = ready
            .recv()
            .context("the DNS server's thread ended before it was ready")??;
        Ok(DnsServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds the catalog of one in-memory primary zone with an SOA record and `records`.
fn catalog(zone: &str, records: &ZoneRecords) -> anyhow::Result<Catalog> {
    let origin = fqdn(zone)?;
    let mut handler: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let serial = 1;
    let soa = SOA::new(
        fqdn(&format!("ns.{zone}"))?,
        fqdn(&format!("hostmaster.{zone}"))?,
        serial,
        3600,
        600,
        86400,
        TTL,
    );
    handler.upsert_mut(
        Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
        serial,
    );
    for (name, addresses) in records {
        let owner = fqdn(name)?;
        if !origin.zone_of(&owner) {
            bail!("record `{name}` is outside zone `{zone}`");
        }
        for address in addresses {
            let record = Record::from_rdata(owner.clone(), TTL, RData::A(A(*address)));
            handler.upsert_mut(record, serial);
        }
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    Ok(catalog)
}

fn fqdn(name: &str) -> anyhow::Result<Name> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| anyhow!("invalid DNS name `{name}`: {e}"))
}

/// Runs the server until `stopped` fires or its sender is dropped.
fn serve(
    catalog: Catalog,
    ready: mpsc::Sender<anyhow::Result<SocketAddr>>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(anyhow!(
                "failed to build the DNS server's runtime: {error}"
            )));
            return;
        }
    };
    runtime.block_on(async move {
        let (udp, tcp) = match bind_pair().await {
            Ok(pair) => pair,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let address = match udp.local_addr() {
            Ok(address) => address,
            Err(error) => {
                let _ = ready.send(Err(anyhow!(
                    "failed to read the DNS server's port: {error}"
                )));
                return;
            }
        };
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
        let _ = ready.send(Ok(address));
        let _ = stopped.await;
        let _ = server.shutdown_gracefully().await;
    });
}

/// Binds a UDP socket on an ephemeral port of 127.0.0.1, then a TCP listener on the same
/// port, trying again with another port when TCP finds it taken.
async fn bind_pair() -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("failed to bind a UDP socket on 127.0.0.1")?;
        let address = udp.local_addr()?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(anyhow!(
        "no port of 127.0.0.1 was free for both UDP and TCP after {BIND_ATTEMPTS} attempts: {}",
        last_error.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Reads the private zone `zone` of stack `stack` from the local AWS API at `endpoint`, and
/// returns the addresses the VPC resolver would return for its A records.
///
/// An alias record resolves to the private IPv4 addresses of the network interfaces of the
/// endpoint whose DNS entries contain the alias target. A plain A record resolves to its values.
///
/// # Errors
/// No zone or more than one zone of that name tagged with the stack, an alias whose target is
/// no endpoint's DNS name, or a failed call.
pub async fn local_zone_records(
    endpoint: &str,
    region: &str,
    stack: &str,
    zone: &str,
) -> anyhow::Result<ZoneRecords> {
    let config = local_sdk_config(endpoint, region).await;
    let route53 = aws_sdk_route53::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);

    let zone_id = stack_zone_id(&route53, stack, zone).await?;
    let (aliases, mut records) = zone_a_records(&route53, &zone_id).await?;
    let targets = endpoint_interfaces(&ec2).await?;
    let interface_ids: Vec<String> = targets.values().flatten().cloned().collect();
    let addresses = interface_addresses(&ec2, &interface_ids).await?;

    for (name, target) in aliases {
        let interfaces = targets.get(&target).ok_or_else(|| {
            anyhow!("alias `{name}` points at `{target}`, which is no endpoint's DNS name")
        })?;
        let answer: Vec<Ipv4Addr> = interfaces
            .iter()
            .filter_map(|id| addresses.get(id))
            .flatten()
            .copied()
            .collect();
        records.entry(name).or_default().extend(answer);
    }
    Ok(records)
}

/// Finds the one private zone named `zone` that carries the tag `linkplan:stack = stack`, and
/// returns its id without the `/hostedzone/` prefix.
pub async fn stack_zone_id(
    route53: &aws_sdk_route53::Client,
    stack: &str,
    zone: &str,
) -> anyhow::Result<String> {
    let absolute_name = format!("{}.", zone.trim_end_matches('.'));
    let listed = route53
        .list_hosted_zones_by_name()
        .dns_name(&absolute_name)
        .send()
        .await
        .context("ListHostedZonesByName failed")?;
    let mut found = Vec::new();
    for hosted in listed.hosted_zones() {
        let private = hosted.config().is_some_and(|c| c.private_zone());
        if !private || !hosted.name().eq_ignore_ascii_case(&absolute_name) {
            continue;
        }
        let id = hosted.id().trim_start_matches("/hostedzone/").to_string();
        let tags = route53
            .list_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(&id)
            .send()
            .await
            .with_context(|| format!("ListTagsForResource of zone {id} failed"))?;
        let tagged = tags.resource_tag_set().is_some_and(|set| {
            set.tags()
                .iter()
                .any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(stack))
        });
        if tagged {
            found.push(id);
        }
    }
    match found.as_slice() {
        [id] => Ok(id.clone()),
        [] => bail!("no private zone `{zone}` is tagged with stack `{stack}`"),
        several => bail!(
            "{} private zones `{zone}` are tagged with stack `{stack}`: {}",
            several.len(),
            several.join(", ")
        ),
    }
}

/// Returns the zone's A alias records as (name, target) and its plain A records.
async fn zone_a_records(
    route53: &aws_sdk_route53::Client,
    zone_id: &str,
) -> anyhow::Result<(Vec<(String, String)>, ZoneRecords)> {
    let mut aliases = Vec::new();
    let mut records = ZoneRecords::new();
    let mut start: Option<(String, RrType)> = None;
    loop {
        let mut request = route53.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, kind)) = start.take() {
            request = request.start_record_name(name).start_record_type(kind);
        }
        let page = request
            .send()
            .await
            .with_context(|| format!("ListResourceRecordSets of zone {zone_id} failed"))?;
        for set in page.resource_record_sets() {
            if set.r#type() != &RrType::A {
                continue;
            }
            let name = dns_name(set.name());
            if let Some(alias) = set.alias_target() {
                aliases.push((name, dns_name(alias.dns_name())));
                continue;
            }
            let values = set
                .resource_records()
                .iter()
                .filter_map(|r| r.value().parse::<Ipv4Addr>().ok());
            records.entry(name).or_default().extend(values);
        }
        match (
            page.is_truncated(),
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(name), Some(kind)) => start = Some((name.to_string(), kind.clone())),
            _ => return Ok((aliases, records)),
        }
    }
}

/// Maps each DNS name of every live interface endpoint in the region to its interface ids.
async fn endpoint_interfaces(
    ec2: &aws_sdk_ec2::Client,
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut targets = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_vpc_endpoints()
            .set_next_token(token.take())
            .send()
            .await
            .context("DescribeVpcEndpoints failed")?;
        for endpoint in page.vpc_endpoints() {
            let state = endpoint.state().map(|s| s.as_str().to_ascii_lowercase());
            if matches!(state.as_deref(), Some("deleted" | "deleting")) {
                continue;
            }
            for entry in endpoint.dns_entries() {
                if let Some(name) = entry.dns_name() {
                    targets.insert(dns_name(name), endpoint.network_interface_ids().to_vec());
                }
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(targets),
        }
    }
}

/// Returns the private IPv4 addresses of the interfaces `ids`, by interface id.
async fn interface_addresses(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<Ipv4Addr>>> {
    let mut addresses = BTreeMap::new();
    if ids.is_empty() {
        return Ok(addresses);
    }
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("network-interface-id")
        .set_values(Some(ids.to_vec()))
        .build();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_network_interfaces()
            .filters(filter.clone())
            .set_next_token(token.take())
            .send()
            .await
            .context("DescribeNetworkInterfaces failed")?;
        for interface in page.network_interfaces() {
            let Some(id) = interface.network_interface_id() else {
                continue;
            };
            let private = interface
                .private_ip_addresses()
                .iter()
                .filter_map(|a| a.private_ip_address()?.parse::<Ipv4Addr>().ok());
            addresses
                .entry(id.to_string())
                .or_insert_with(Vec::new)
                .extend(private);
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(addresses),
        }
    }
}

/// Lowercases a DNS name and drops its trailing dot.
fn dns_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rejects_record_outside_zone() {
        let records = ZoneRecords::from([(
            "agents.example.com".to_string(),
            vec![Ipv4Addr::new(10, 0, 0, 5)],
        )]);
        let error = catalog("deepsecurity.trendmicro.com", &records)
            .err()
            .expect("a record outside the zone is rejected");
        assert_eq!(
            error.to_string(),
            "record `agents.example.com` is outside zone `deepsecurity.trendmicro.com`"
        );
    }
}

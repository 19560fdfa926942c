//! `linkplan verify`: resolves each host name of the zone and checks that DNS returns exactly
//! the private addresses of the name's endpoint.
//!
//! 1. The config, checked offline, names the stack.
//! 2. The live state gives each name's endpoint, and DescribeNetworkInterfaces the addresses
//!    of that endpoint's network interfaces.
//! 3. Each name is resolved with the system resolver (inside a VPC, the VPC's own) or the
//!    server that `--resolver` names, and the responses are printed as a table on stdout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use linkplan_engine::config;
use linkplan_engine::verify::{self, Answer, ExpectedName, Verdict};

use crate::args::{GlobalArgs, VerifyArgs};
use crate::error::CliError;
use crate::exit;

/// The DNS port used when `--resolver` gives none.
const DNS_PORT: u16 = 53;

/// How long one query waits for a response, per attempt.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
const QUERY_ATTEMPTS: usize = 2;

/// One row of the verify table.
struct Row {
    expected: ExpectedName,
    answer: Answer,
    verdict: Verdict,
}

pub async fn run(args: &VerifyArgs, global: &GlobalArgs) -> Result<u8, CliError> {
    // 1. The config.
    let loaded = config::load(&args.config.config).map_err(|d| verify_errors(&d))?;
    let stack = loaded.stack;
    for warning in loaded.warnings.warnings() {
        eprintln!("{warning}");
    }

    // 2. The expected addresses, from the endpoints and their network interfaces.
    let provider = super::provider(&stack, global).await?;
    eprintln!("Reading the endpoints of stack `{}`...", stack.name);
    let observed = provider.read(&stack).await.map_err(super::aws_error)?;
    let endpoints =
        verify::endpoints_to_verify(&stack, &observed).map_err(|d| verify_errors(&d))?;
    let interface_ids: Vec<String> = endpoints
        .iter()
        .flat_map(|e| e.network_interface_ids.iter().cloned())
        .collect();
    let interfaces = provider
        .read_network_interfaces(&stack.hub_context(), &interface_ids)
        .await
        .map_err(super::aws_error)?;
    let expected =
        verify::expected_names(&endpoints, &interfaces).map_err(|d| verify_errors(&d))?;

    // 3. The responses.
    let resolver = build_resolver(args.resolver)?;
    let server = match args.resolver {
        Some(address) => format!("DNS server {address}"),
        None => "the system resolver".to_string(),
    };
    eprintln!("Resolving {} names with {server}...", expected.len());
    // The names are queried at once, so a server that never responds costs one timeout, not four.
    let mut queries = tokio::task::JoinSet::new();
    for (index, name) in expected.iter().enumerate() {
        let resolver = resolver.clone();
        let host = name.name.clone();
        queries.spawn(async move { (index, resolve(&resolver, &host).await) });
    }
    let mut answers: Vec<Option<Answer>> = (0..expected.len()).map(|_| None).collect();
    while let Some(joined) = queries.join_next().await {
        let (index, answer) = joined.map_err(|e| {
            CliError::new(format!("a DNS query failed: {e}"))
                .help("run `linkplan verify` again, with -vv for a debug log")
        })?;
        answers[index] = Some(answer);
    }
    let mut rows = Vec::with_capacity(expected.len());
    for (name, answer) in expected.into_iter().zip(answers) {
        let answer = answer.expect("every query was joined");
        let verdict = verify::verdict(&name.addresses, &answer);
        rows.push(Row {
            expected: name,
            answer,
            verdict,
        });
    }
    print!("{}", table(&rows));

    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.verdict != Verdict::Match)
        .collect();
    if failed.is_empty() {
        eprintln!(
            "\nAll {} names resolve to the private addresses of their endpoints.",
            rows.len()
        );
        return Ok(exit::OK);
    }
    Err(mismatch_error(&failed, rows.len(), &server))
}

/// Parses `ADDR[:PORT]` of `--resolver`: an IPv4 or IPv6 address, the IPv6 one in brackets
/// when a port follows, port 53 when none is given.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, DNS_PORT)),
        Err(_) => Err(format!(
            "`{text}` is not an IP address with an optional port, such as 10.0.0.2 or \
             127.0.0.1:5353"
        )),
    }
}

/// Builds the resolver: the system's configuration, or only `server` over UDP and TCP.
///
/// NOTE: the tests query only DNS servers on 127.0.0.1 through `server`, so the path that reads
/// the system's configuration (`/etc/resolv.conf`) runs only on real machines.
fn build_resolver(server: Option<SocketAddr>) -> Result<Resolver<TokioRuntimeProvider>, CliError> {
    let mut builder = match server {
        None => Resolver::builder_tokio().map_err(|e| {
            CliError::new(format!(
                "failed to read the system's DNS configuration: {e}"
            ))
            .help("pass the DNS server to ask with --resolver ADDR[:PORT]")
        })?,
        Some(address) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut connection| {
                    connection.port = address.port();
                    connection
                })
                .collect();
            let name_server = NameServerConfig::new(address.ip(), true, connections);
            let config = ResolverConfig::from_name_servers(vec![name_server]);
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = QUERY_TIMEOUT;
    options.attempts = QUERY_ATTEMPTS;
    if server.is_some() {
        // The check uses the named server's response, not the local hosts file.
        options.use_hosts_file = ResolveHosts::Never;
    }
    builder.build().map_err(|e| {
        CliError::new(format!("failed to set up the DNS resolver: {e}"))
            .help("check the --resolver address, or the system's DNS configuration without it")
    })
}

/// Queries the A records of `name`, as a fully qualified name so no search domain is added.
async fn resolve(resolver: &Resolver<TokioRuntimeProvider>, name: &str) -> Answer {
    match resolver.ipv4_lookup(format!("{name}.")).await {
        Ok(lookup) => {
            let addresses: Vec<Ipv4Addr> = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if addresses.is_empty() {
                Answer::NoRecords
            } else {
                Answer::Addresses(addresses)
            }
        }
        Err(error) if error.is_no_records_found() => Answer::NoRecords,
        Err(error) => Answer::Failed(error.to_string()),
    }
}

/// Formats the rows as a table with a header, columns padded to their widest cell.
fn table(rows: &[Row]) -> String {
    let header = ["NAME", "EXPECTED", "ANSWERED", "VERDICT"].map(str::to_string);
    let mut lines = vec![header];
    for row in rows {
        lines.push([
            row.expected.name.clone(),
            join(&row.expected.addresses),
            answer_text(&row.answer),
            row.verdict.label().to_string(),
        ]);
    }
    let mut widths = [0usize; 4];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn join(addresses: &[Ipv4Addr]) -> String {
    let texts: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Addresses(addresses) => join(addresses),
        Answer::NoRecords => "no A record (NXDOMAIN or empty)".to_string(),
        Answer::Failed(reason) => format!("query failed: {reason}"),
    }
}

/// Wraps the errors found before any query, in the config or in the endpoints and interfaces.
fn verify_errors(diagnostics: &linkplan_engine::diagnostics::Diagnostics) -> CliError {
    CliError::diagnostics_with_outcome(diagnostics, Some("no name was resolved"))
}

/// Builds the error for the names that failed, with advice for the worst verdict among them.
fn mismatch_error(failed: &[&Row], total: usize, server: &str) -> CliError {
    let names: Vec<String> = failed
        .iter()
        .map(|r| format!("`{}` ({})", r.expected.name, r.verdict.label()))
        .collect();
    let mut error = CliError::new(format!(
        "{} of {total} names do not resolve to the private addresses of their endpoints: {}",
        failed.len(),
        names.join(", ")
    ));
    for row in failed {
        error = error.detail(format!(
            "`{}`: expected {} (endpoint `{}`), {server} answered {}",
            row.expected.name,
            join(&row.expected.addresses),
            row.expected.endpoint_id,
            answer_text(&row.answer)
        ));
    }
    let verdicts: Vec<Verdict> = failed.iter().map(|r| r.verdict).collect();
    let help = if verdicts.contains(&Verdict::Public) {
        "the resolver does not see the private zone: run verify inside a VPC associated with \
         it, or pass that VPC's resolver with --resolver"
    } else if verdicts.contains(&Verdict::NoAnswer) {
        "check that the VPC is associated with the zone and uses AmazonProvidedDNS, and that \
         the zone has a record for each name; `linkplan plan` shows what is missing"
    } else {
        "the zone's records point elsewhere: run `linkplan plan` to see the drift, then apply it"
    };
    error.code = exit::VERIFY_FAILED;
    error.help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_without_port_uses_53() {
        assert_eq!(
            parse_resolver("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(parse_resolver("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_resolver("[fd00::2]").unwrap(),
            "[fd00::2]:53".parse().unwrap()
        );
    }

    #[test]
    fn resolver_with_port() {
        assert_eq!(
            parse_resolver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
    }

    #[test]
    fn resolver_rejects_host_name() {
        let error = parse_resolver("dns.example").unwrap_err();
        assert!(
            error.starts_with("`dns.example` is not an IP address"),
            "{error}"
        );
    }
}

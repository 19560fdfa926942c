//! `local-dns`: serves the private zone of a stack, as linkplan applied it on the local AWS
//! API, from an authoritative DNS server on 127.0.0.1, until the process is killed.
//!
//! Each alias record resolves to the private addresses of its endpoint's network interfaces,
//! which is what the Route 53 resolver returns inside a VPC associated with the zone. The first
//! line on stdout is the server's address, `127.0.0.1:PORT`, for `linkplan verify --resolver`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Parser;
use linkplan_testkit::{DnsServer, local_zone_records};

#[derive(Debug, Parser)]
#[command(
    name = "local-dns",
    about = "Serves a stack's private zone from the local AWS API on 127.0.0.1 until killed"
)]
struct Args {
    /// Stack whose zone to serve: the value of the zone's `linkplan:stack` tag
    #[arg(long)]
    stack: String,

    /// Domain of the private hosted zone
    #[arg(long, default_value = "deepsecurity.trendmicro.com")]
    zone: String,

    /// Region of the hub VPC, whose endpoints the aliases point at
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// The local AWS API, which must be on a loopback address
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_loopback_url(&args.endpoint_url) {
        bail!(
            "endpoint `{}` is not on the loopback interface; local-dns reads only a local AWS API",
            args.endpoint_url
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to build the runtime")?;
    let records = runtime.block_on(local_zone_records(
        &args.endpoint_url,
        &args.region,
        &args.stack,
        &args.zone,
    ))?;
    let server = DnsServer::start(&args.zone, &records)?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server.address)?;
    stdout.flush()?;
    drop(stdout);
    for (name, addresses) in &records {
        let texts: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        eprintln!("local-dns: {name} A {}", texts.join(", "));
    }

    // The server runs on its own thread, so this one only keeps the process alive.
    loop {
        std::thread::park();
    }
}

/// Reports whether `url` is `http://` or `https://` to 127.0.0.0/8, `localhost` or `[::1]`.
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host == "localhost" {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

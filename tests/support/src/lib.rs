//! Test harness of linkplan: one local moto server per test binary and the AWS fixtures
//! that tests build on it.
//!
//! Every test of a binary shares the server that [`moto`] starts, so each test works in its
//! own stack name ([`unique_name`]) and its own VPCs, and no test resets the server. A test
//! that needs an empty server starts a private one with [`MotoServer::start`].
//!
//! ```no_run
//! # async fn example() {
//! use linkplan_testkit::{moto, VpcSpec};
//!
//! let server = moto();
//! let provider = server.provider_side();
//! let vpc = server.vpc(VpcSpec::new("us-east-1", "10.20.0.0/16", &["use1-az1", "use1-az2"]));
//! let ec2 = server.ec2("us-east-1").await;
//! # let _ = (provider, vpc, ec2);
//! # }
//! ```

mod dns;
mod fixtures;
mod proxy;
mod server;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use dns::{DnsServer, ZoneRecords, local_zone_records, stack_zone_id};
pub use fixtures::{FixtureError, LocalSubnet, LocalVpc, ProviderServices, ProviderSide, VpcSpec};
pub use proxy::{
    Fault, FaultProxy, InjectedError, Outcome, ProxyError, RequestRecord, StalledListener,
    stalled_listener,
};
pub use server::MotoServer;

/// Returns this test binary's moto server, starting it on the first call.
///
/// The server runs until the test binary exits. It listens on a free port of 127.0.0.1.
///
/// # Panics
///
/// Panics, in this and every later call, when the server cannot be installed or started.
pub fn moto() -> &'static MotoServer {
    static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| MotoServer::start().map_err(|error| format!("{error:#}")));
    match server {
        Ok(server) => server,
        Err(error) => panic!("moto server failed to start: {error}"),
    }
}

/// Returns `PREFIX-PID-N`, a name that no other call in this process returns.
///
/// Tests of one binary share a moto server, so each uses such a name for its stack and
/// resources. The process id keeps names apart when two binaries use one server.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{sequence}", std::process::id())
}

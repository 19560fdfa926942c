//! Trend Micro Workload Security as data: the host names it is reached through and the
//! endpoint services that offer them in us-east-1.
//!
//! Nothing else in linkplan names these hosts or services, so another SaaS offered over
//! PrivateLink could be described by a second table of the same shape.

/// A SaaS reached through one private hosted zone with one alias record per host.
#[derive(Debug, Clone, Copy)]
pub struct Saas {
    /// The domain of the private hosted zone, without a trailing dot.
    pub zone_name: &'static str,
    /// The region whose endpoint services `services` lists.
    pub region: &'static str,
    /// Each host label under `zone_name` and the endpoint service that serves it.
    pub services: &'static [(&'static str, &'static str)],
    /// TCP port the agents and consoles connect to.
    pub port: u16,
    /// Other hosts under `zone_name` that clients are known to use, with what they serve.
    /// The private zone returns NXDOMAIN for them inside every VPC it is associated with.
    pub other_hosts: &'static [(&'static str, &'static str)],
    /// Whether `other_hosts` is the provider's complete list, or only the hosts known so far.
    pub other_hosts_complete: bool,
}

/// Workload Security (Deep Security as a service), as published for us-east-1.
pub const WORKLOAD_SECURITY: Saas = Saas {
    zone_name: "deepsecurity.trendmicro.com",
    region: "us-east-1",
    services: &[
        (
            "relay",
            "com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e",
        ),
        (
            "agents",
            "com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef",
        ),
        (
            "dsmim",
            "com.amazonaws.vpce.us-east-1.vpce-svc-01a733ad6b4b0afc1",
        ),
        (
            "app",
            "com.amazonaws.vpce.us-east-1.vpce-svc-04912367f0b0c73d9",
        ),
    ],
    port: 443,
    // NOTE: no complete list of the hosts under deepsecurity.trendmicro.com was found in Trend
    // Micro's public documentation. These two are hosts under the domain that public links of
    // Trend Micro point to (help.deepsecurity.trendmicro.com/..., and
    // automation.deepsecurity.trendmicro.com/... for the API guides). Agents may need others.
    other_hosts: &[
        ("help", "the Deep Security Help Center"),
        ("automation", "the Deep Security API guides"),
    ],
    other_hosts_complete: false,
};

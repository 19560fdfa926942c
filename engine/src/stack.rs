//! The validated form of a config: what the user wants, with every id checked offline.
//!
//! A [`Stack`] is embedded in each plan file, so `apply` can re-read the live state the plan was
//! made from without the config file.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One linkplan setup: a hub VPC with the endpoints and the zone, and the spokes peered to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// Stack name, the value of the `linkplan:stack` tag on everything linkplan creates.
    pub name: String,
    pub hub: Hub,
    /// Endpoint services, sorted by host.
    pub services: Vec<Service>,
    pub zone: Zone,
    /// Spoke VPCs, in config order.
    #[serde(default)]
    pub spokes: Vec<Spoke>,
    /// The store of the lock, the journals and the record of applied plans. The local backend
    /// is left out of plan files, so that plans of a stack without `[backend]` keep their ids.
    #[serde(default, skip_serializing_if = "BackendConfig::is_local")]
    pub backend: BackendConfig,
}

/// The backend setting of a stack, from the `[backend]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BackendConfig {
    /// A `.linkplan/` folder beside the plan file.
    #[default]
    Local,
    /// Objects in an S3 bucket, shared by every machine with access to it.
    S3(S3BackendConfig),
}

impl BackendConfig {
    pub fn is_local(&self) -> bool {
        matches!(self, BackendConfig::Local)
    }
}

/// An S3 backend: the bucket, the key prefix under it and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3BackendConfig {
    pub bucket: String,
    /// Prefix of every key the backend writes, empty or ending with `/`, such as `linkplan/`.
    pub prefix: String,
    /// Region of the bucket.
    pub region: String,
    /// Credentials for the bucket. Both empty means the standard AWS chain, not the hub's.
    #[serde(default, skip_serializing_if = "Credentials::is_default")]
    pub credentials: Credentials,
}

/// The VPC that contains the interface endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hub {
    pub region: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    /// Groups to attach to the endpoints. Empty means linkplan creates and manages one group.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// CIDRs allowed to reach the endpoints. Empty means the hub VPC's own CIDR blocks.
    #[serde(default)]
    pub client_cidrs: Vec<IpNet>,
    /// Hub route tables that get a route to each spoke.
    #[serde(default)]
    pub route_table_ids: Vec<String>,
    #[serde(default)]
    pub subnet_policy: SubnetPolicy,
    #[serde(default)]
    pub credentials: Credentials,
    /// Interface endpoints the hub VPC may hold, all creators counted. Plans that would go
    /// past it are rejected. Left out of plan files when it is the AWS default.
    #[serde(
        default = "default_endpoint_quota",
        skip_serializing_if = "is_default_endpoint_quota"
    )]
    pub endpoint_quota: u32,
}

/// The AWS default quota of interface endpoints per VPC, which an account can have raised.
pub const DEFAULT_ENDPOINT_QUOTA: u32 = 50;

fn default_endpoint_quota() -> u32 {
    DEFAULT_ENDPOINT_QUOTA
}

fn is_default_endpoint_quota(quota: &u32) -> bool {
    *quota == DEFAULT_ENDPOINT_QUOTA
}

impl Hub {
    /// Reports whether linkplan creates the endpoints' security group itself.
    pub fn manages_security_group(&self) -> bool {
        self.security_group_ids.is_empty()
    }
}

/// The handling of a hub subnet in a zone that an endpoint service does not offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetPolicy {
    /// Stop the plan with an error naming the subnet.
    #[default]
    Fail,
    /// Leave the subnet out of that endpoint only, with a warning.
    Filter,
}

/// One endpoint service and the host name it serves under the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// First label of the host name, e.g. `agents`.
    pub host: String,
    pub service_name: String,
    /// Whether to turn on the endpoint's private DNS. Always false for Workload Security,
    /// whose services publish no private DNS name.
    #[serde(default)]
    pub private_dns: bool,
}

/// The private hosted zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// Domain, lowercase, without a trailing dot.
    pub name: String,
    /// Id of an existing zone, created outside linkplan, to take over.
    #[serde(default)]
    pub adopt: Option<String>,
}

impl Zone {
    /// Returns the fully qualified name of `host` in this zone, lowercase, without a trailing dot.
    pub fn record_name(&self, host: &str) -> String {
        format!("{host}.{}", self.name)
    }
}

/// A VPC in another region or account, peered to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spoke {
    pub name: String,
    pub region: String,
    pub vpc_id: String,
    /// Spoke route tables that get a route to the hub.
    #[serde(default)]
    pub route_table_ids: Vec<String>,
    /// Owner of the VPC when it is not the hub's account.
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub credentials: Credentials,
}

/// The credential source of one side. Both empty means the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl Credentials {
    pub fn is_default(&self) -> bool {
        self.profile.is_none() && self.role_arn.is_none()
    }
}

/// A region reached with one set of credentials: the unit the provider keeps a client for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Context {
    pub region: String,
    #[serde(default, skip_serializing_if = "Credentials::is_default")]
    pub credentials: Credentials,
}

impl Stack {
    pub fn hub_context(&self) -> Context {
        Context {
            region: self.hub.region.clone(),
            credentials: self.hub.credentials.clone(),
        }
    }

    /// Returns the context of spoke `spoke`: its region, with the hub's credentials unless the
    /// spoke names its own.
    pub fn spoke_context(&self, spoke: &Spoke) -> Context {
        let credentials = if spoke.credentials.is_default() {
            self.hub.credentials.clone()
        } else {
            spoke.credentials.clone()
        };
        Context {
            region: spoke.region.clone(),
            credentials,
        }
    }

    /// Returns the hub context (for Route 53 and the hub region) followed by every spoke's,
    /// without repeats.
    pub fn contexts(&self) -> Vec<Context> {
        let mut contexts = vec![self.hub_context()];
        for spoke in &self.spokes {
            let context = self.spoke_context(spoke);
            if !contexts.contains(&context) {
                contexts.push(context);
            }
        }
        contexts
    }

    pub fn spoke(&self, name: &str) -> Option<&Spoke> {
        self.spokes.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "name = \"web\"\n[hub]\nregion = \"us-east-1\"\n\
                          vpc_id = \"vpc-0123456789abcdef0\"\n\
                          subnet_ids = [\"subnet-0123456789abcdef0\"]\n";

    fn stack(extra: &str) -> Stack {
        crate::config::parse("linkplan.toml", &format!("{CONFIG}{extra}"))
            .unwrap()
            .stack
    }

    #[test]
    fn local_backend_stays_out_of_plans() {
        let text = toml::to_string(&stack("")).unwrap();
        assert!(!text.contains("backend"), "{text}");
        let read: Stack = toml::from_str(&text).unwrap();
        assert_eq!(read.backend, BackendConfig::Local);
    }

    #[test]
    fn s3_backend_round_trips() {
        let stack = stack(
            "[backend]\ntype = \"s3\"\nbucket = \"acme-state\"\nregion = \"us-east-1\"\n\
             profile = \"state\"\n",
        );
        let text = toml::to_string(&stack).unwrap();
        assert!(text.contains("[backend]\ntype = \"s3\"\n"), "{text}");
        let read: Stack = toml::from_str(&text).unwrap();
        assert_eq!(read, stack);
    }
}

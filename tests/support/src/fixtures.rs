//! AWS fixtures on a moto server, made by `scripts/local_aws.py`.

use std::fmt;
use std::process::{ExitStatus, Output};

use serde::Deserialize;
use serde_json::Value;

use crate::server::{ACCESS_KEY_ID, MotoServer, SECRET_ACCESS_KEY, isolated_command};

/// A failed run of `scripts/local_aws.py`.
#[derive(Debug)]
pub struct FixtureError {
    pub args: Vec<String>,
    /// `None` when the script could not be started.
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self
            .status
            .map_or_else(|| "failed to start".to_owned(), |status| status.to_string());
        write!(
            formatter,
            "scripts/local_aws.py {} failed ({status}):\n{}",
            self.args.join(" "),
            self.stderr.trim_end()
        )
    }
}

impl std::error::Error for FixtureError {}

/// The endpoint service names of the four Trend Micro hosts, or their service ids.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ProviderServices {
    pub relay: String,
    pub agents: String,
    pub dsmim: String,
    pub app: String,
}

impl ProviderServices {
    /// Returns `(host, value)` pairs in the order relay, agents, dsmim, app.
    pub fn by_host(&self) -> [(&'static str, &str); 4] {
        [
            ("relay", &self.relay),
            ("agents", &self.agents),
            ("dsmim", &self.dsmim),
            ("app", &self.app),
        ]
    }
}

/// What Trend Micro runs in its own account: a provider VPC with a network load balancer
/// and an endpoint service per host.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ProviderSide {
    pub region: String,
    /// Service names such as `com.amazonaws.vpce.us-east-1.vpce-svc-1a2b3c4d`.
    pub services: ProviderServices,
    /// Service ids such as `vpce-svc-1a2b3c4d`.
    pub service_ids: ProviderServices,
    pub provider_vpc_id: String,
    /// Zone names that the services run in, sorted.
    pub availability_zones: Vec<String>,
    /// Zone ids of the same zones, sorted.
    pub az_ids: Vec<String>,
}

/// The request for a consumer VPC: the `vpc` subcommand of `scripts/local_aws.py`.
#[derive(Clone, Debug)]
pub struct VpcSpec {
    pub region: String,
    pub cidr: String,
    /// One subnet is made per zone id, in this order.
    pub az_ids: Vec<String>,
    pub secondary_cidr: Option<String>,
    /// `None` uses the default of a new VPC on AWS: off.
    pub dns_hostnames: Option<bool>,
    /// `None` uses the default of a new VPC on AWS: on.
    pub dns_support: Option<bool>,
    pub internet_gateway: bool,
    /// The Name tag. Subnets get `NAME-ZONEID`.
    pub name: Option<String>,
}

impl VpcSpec {
    pub fn new(region: &str, cidr: &str, az_ids: &[&str]) -> VpcSpec {
        VpcSpec {
            region: region.to_owned(),
            cidr: cidr.to_owned(),
            az_ids: az_ids.iter().map(|&id| id.to_owned()).collect(),
            secondary_cidr: None,
            dns_hostnames: None,
            dns_support: None,
            internet_gateway: false,
            name: None,
        }
    }

    pub fn secondary_cidr(mut self, cidr: &str) -> VpcSpec {
        self.secondary_cidr = Some(cidr.to_owned());
        self
    }

    pub fn dns_hostnames(mut self, enabled: bool) -> VpcSpec {
        self.dns_hostnames = Some(enabled);
        self
    }

    pub fn dns_support(mut self, enabled: bool) -> VpcSpec {
        self.dns_support = Some(enabled);
        self
    }

    pub fn internet_gateway(mut self) -> VpcSpec {
        self.internet_gateway = true;
        self
    }

    pub fn name(mut self, name: &str) -> VpcSpec {
        self.name = Some(name.to_owned());
        self
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "vpc".to_owned(),
            "--region".to_owned(),
            self.region.clone(),
            "--cidr".to_owned(),
            self.cidr.clone(),
            "--az-ids".to_owned(),
            self.az_ids.join(","),
        ];
        if let Some(cidr) = &self.secondary_cidr {
            args.extend(["--secondary-cidr".to_owned(), cidr.clone()]);
        }
        if let Some(enabled) = self.dns_hostnames {
            args.extend(["--dns-hostnames".to_owned(), enabled.to_string()]);
        }
        if let Some(enabled) = self.dns_support {
            args.extend(["--dns-support".to_owned(), enabled.to_string()]);
        }
        if self.internet_gateway {
            args.push("--internet-gateway".to_owned());
        }
        if let Some(name) = &self.name {
            args.extend(["--name".to_owned(), name.clone()]);
        }
        args
    }
}

/// A subnet of a [`LocalVpc`].
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LocalSubnet {
    pub id: String,
    /// Zone name, such as `us-east-1b`.
    pub az: String,
    /// Zone id, such as `use1-az1`.
    pub az_id: String,
    pub cidr: String,
}

/// A consumer VPC made by [`MotoServer::vpc`].
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LocalVpc {
    pub vpc_id: String,
    pub region: String,
    pub name: String,
    /// The primary CIDR first, then the secondary one if requested.
    pub cidrs: Vec<String>,
    /// In the order of [`VpcSpec::az_ids`].
    pub subnet_ids: Vec<String>,
    pub subnets: Vec<LocalSubnet>,
    /// The route table made for the subnets, which all subnets are associated with.
    pub route_table_ids: Vec<String>,
    /// The route table that AWS makes with the VPC. No subnet is associated with it.
    pub main_route_table_id: Option<String>,
    pub internet_gateway_id: Option<String>,
    /// The DNS attributes as DescribeVpcAttribute returned them after creation.
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

impl MotoServer {
    /// Runs `scripts/local_aws.py ARGS` against this server and parses the JSON it prints.
    ///
    /// # Panics
    ///
    /// Panics with the script's stderr when it fails or prints something other than JSON.
    pub fn fixture(&self, args: &[&str]) -> Value {
        self.try_fixture(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs `scripts/local_aws.py ARGS` like [`MotoServer::fixture`], but returns a failure
    /// as a [`FixtureError`] instead of panicking.
    ///
    /// This blocks the calling thread for the run, about a second, which async tests can
    /// afford.
    pub fn try_fixture(&self, args: &[&str]) -> Result<Value, FixtureError> {
        let root = self.repository_root();
        let mut command = isolated_command(root.join(".venv/bin/python"));
        command
            .arg(root.join("scripts/local_aws.py"))
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .current_dir(root)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let error = |status: Option<ExitStatus>, stderr: String| FixtureError {
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
            status,
            stderr,
        };
        let output: Output = command
            .output()
            .map_err(|failure| error(None, failure.to_string()))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(error(Some(output.status), stderr));
        }
        serde_json::from_slice(&output.stdout).map_err(|failure| {
            let stdout = String::from_utf8_lossy(&output.stdout);
            error(
                Some(output.status),
                format!("invalid JSON on stdout ({failure}): {stdout}\n{stderr}"),
            )
        })
    }

    /// Returns the us-east-1 provider side, creating it on the first call for this server.
    pub fn provider_side(&self) -> ProviderSide {
        self.provider_side_in("us-east-1")
    }

    /// Returns the provider side in `region`, creating it on the first call for this server.
    ///
    /// All tests of a binary share it. Outside us-east-1 the services run in every zone of
    /// the region.
    pub fn provider_side_in(&self, region: &str) -> ProviderSide {
        // The lock is held while the script runs, so concurrent tests create one provider
        // side, not one each.
        let mut cache = self
            .provider_sides
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(provider) = cache.get(region) {
            return provider.clone();
        }
        let value = self.fixture(&["provider-side", "--region", region]);
        let provider: ProviderSide =
            serde_json::from_value(value.clone()).unwrap_or_else(|error| {
                panic!("provider-side printed JSON of an unexpected shape ({error}): {value}")
            });
        cache.insert(region.to_owned(), provider.clone());
        provider
    }

    /// Creates a consumer VPC as `spec` describes.
    ///
    /// # Panics
    ///
    /// Panics with the script's stderr when it fails, for example for a zone id that the
    /// region lacks.
    pub fn vpc(&self, spec: VpcSpec) -> LocalVpc {
        let args = spec.to_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let value = self.fixture(&args);
        serde_json::from_value(value.clone()).unwrap_or_else(|error| {
            panic!("vpc printed JSON of an unexpected shape ({error}): {value}")
        })
    }
}

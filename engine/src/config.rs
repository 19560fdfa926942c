//! Loading `linkplan.toml`: parse with spans, then check every value offline.
//!
//! Parsing rejects unknown keys, wrong types and missing keys; validation then checks ids,
//! CIDRs, names and repeats. Every finding carries the file, line and column of the value, and
//! all of them are reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, SourceLocation};
use crate::saas::{Saas, WORKLOAD_SECURITY};
use crate::stack::{
    BackendConfig, Credentials, DEFAULT_ENDPOINT_QUOTA, Hub, S3BackendConfig, Service, Spoke,
    Stack, SubnetPolicy, Zone,
};

/// The config file name `plan` and `validate` read by default.
pub const DEFAULT_CONFIG_FILE: &str = "linkplan.toml";

/// The key prefix of an S3 backend without `backend.prefix`.
pub const DEFAULT_BACKEND_PREFIX: &str = "linkplan/";

/// The longest `backend.prefix` accepted. S3 keys may have 1,024 bytes, and the longest key the
/// backend adds after the prefix (a 64-character stack name and a journal entry) is far shorter.
const MAX_BACKEND_PREFIX_LEN: usize = 512;

/// A config that passed offline validation, with the text it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub stack: Stack,
    /// Warnings found while validating; errors make [`load`] fail instead.
    pub warnings: Diagnostics,
    /// The file's text, whose digest goes into the plan file.
    pub text: String,
}

/// Reads and validates the config at `path`.
///
/// # Errors
/// Every problem found, each located in the file; an unreadable file is one diagnostic.
pub fn load(path: &Path) -> Result<LoadedConfig, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        let summary = format!("failed to read config `{}`: {error}", path.display());
        let help = match error.kind() {
            std::io::ErrorKind::NotFound => {
                "run `linkplan init --vpc VPC_ID` to write one for your hub VPC, or name another file with --config"
            }
            _ => "check the path and its permissions",
        };
        Diagnostics(vec![Diagnostic::error(summary).with_help(help)])
    })?;
    parse(&path.display().to_string(), &text)
}

/// Validates config `text`, reporting locations against `file`.
///
/// # Errors
/// Every problem found, each located in the text.
pub fn parse(file: &str, text: &str) -> Result<LoadedConfig, Diagnostics> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| {
        let location = error
            .span()
            .map(|span| SourceLocation::at(file, text, span.start));
        let mut diagnostic =
            Diagnostic::error(format!("invalid config: {}", reword(error.message())))
                .with_help(help_for_parse_error(error.message()));
        if let Some(location) = location {
            diagnostic = diagnostic.at(location);
        }
        Diagnostics(vec![diagnostic])
    })?;
    let mut validator = Validator {
        file,
        text,
        findings: Diagnostics::default(),
    };
    let stack = validator.stack(raw, &WORKLOAD_SECURITY);
    let (errors, warnings): (Vec<_>, Vec<_>) = validator
        .findings
        .0
        .into_iter()
        .partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    Ok(LoadedConfig {
        stack,
        warnings: Diagnostics(warnings),
        text: text.to_string(),
    })
}

/// Rewords the TOML parser's serde phrasing ("field") into the config's terms ("key").
fn reword(message: &str) -> String {
    let message = message.trim_end();
    message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
}

fn help_for_parse_error(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove the key or correct its spelling; the keys are listed in docs/config.md"
    } else if message.contains("missing field") {
        "add the key; docs/config.md describes every required key"
    } else if message.contains("invalid type") {
        "change the value to the expected type"
    } else {
        "fix the TOML syntax at the marked position"
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Spanned<String>,
    hub: RawHub,
    #[serde(default)]
    services: Option<BTreeMap<Spanned<String>, Spanned<RawService>>>,
    #[serde(default)]
    zone: Option<RawZone>,
    #[serde(default)]
    spoke: Vec<Spanned<RawSpoke>>,
    #[serde(default)]
    backend: Option<Spanned<RawBackend>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    bucket: Option<Spanned<String>>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    region: Option<Spanned<String>>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default)]
    role_arn: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    region: Spanned<String>,
    vpc_id: Spanned<String>,
    subnet_ids: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    security_group_ids: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    client_cidrs: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    route_table_ids: Vec<Spanned<String>>,
    #[serde(default)]
    subnet_policy: Option<Spanned<String>>,
    #[serde(default)]
    endpoint_quota: Option<Spanned<i64>>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default)]
    role_arn: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    adopt: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpoke {
    name: Spanned<String>,
    region: Spanned<String>,
    vpc_id: Spanned<String>,
    #[serde(default)]
    route_table_ids: Vec<Spanned<String>>,
    #[serde(default)]
    account_id: Option<Spanned<String>>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default)]
    role_arn: Option<Spanned<String>>,
}

/// A `[services]` entry: a service name, or a table with the name and options.
struct RawService {
    service_name: Spanned<String>,
    private_dns: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceTable {
    service_name: Spanned<String>,
    #[serde(default)]
    private_dns: Option<Spanned<bool>>,
}

impl<'de> Deserialize<'de> for RawService {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ServiceVisitor;

        impl<'de> Visitor<'de> for ServiceVisitor {
            type Value = RawService;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an endpoint service name, or a table with `service_name`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawService, E> {
                // A bare string has no span of its own here: the entry's span locates it.
                Ok(RawService {
                    service_name: Spanned::new(0..0, value.to_string()),
                    private_dns: None,
                })
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<RawService, M::Error> {
                let table =
                    RawServiceTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawService {
                    service_name: table.service_name,
                    private_dns: table.private_dns,
                })
            }
        }

        deserializer.deserialize_any(ServiceVisitor)
    }
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    findings: Diagnostics,
}

impl Validator<'_> {
    fn locate(&self, span: Range<usize>) -> SourceLocation {
        SourceLocation::at(self.file, self.text, span.start)
    }

    fn error(&mut self, span: Range<usize>, summary: String, help: &str) {
        let location = self.locate(span);
        self.findings
            .push(Diagnostic::error(summary).with_help(help).at(location));
    }

    fn stack(&mut self, raw: RawConfig, saas: &Saas) -> Stack {
        let name = self.stack_name(&raw.name);
        let hub = self.hub(raw.hub);
        let services = self.services(raw.services, &hub.region, saas);
        let zone = self.zone(raw.zone, saas);
        let spokes = self.spokes(raw.spoke, &hub);
        let backend = raw
            .backend
            .map_or(BackendConfig::Local, |backend| self.backend(backend));
        Stack {
            name,
            hub,
            services,
            zone,
            spokes,
            backend,
        }
    }

    fn backend(&mut self, raw: Spanned<RawBackend>) -> BackendConfig {
        let table_span = raw.span();
        let raw = raw.into_inner();
        match raw.kind.get_ref().as_str() {
            "local" => {
                let s3_keys = [
                    ("bucket", &raw.bucket),
                    ("prefix", &raw.prefix),
                    ("region", &raw.region),
                    ("profile", &raw.profile),
                    ("role_arn", &raw.role_arn),
                ];
                for (key, value) in s3_keys {
                    if let Some(value) = value {
                        self.error(
                            value.span(),
                            format!("`backend.{key}` is set, but `backend.type` is \"local\""),
                            "set `type = \"s3\"` to keep the state in S3, or remove the key",
                        );
                    }
                }
                BackendConfig::Local
            }
            "s3" => BackendConfig::S3(self.s3_backend(raw, table_span)),
            other => {
                self.error(
                    raw.kind.span(),
                    format!("invalid `backend.type` `{other}`"),
                    "use \"local\" (the default) or \"s3\"",
                );
                BackendConfig::Local
            }
        }
    }

    fn s3_backend(&mut self, raw: RawBackend, table_span: Range<usize>) -> S3BackendConfig {
        let bucket = match &raw.bucket {
            Some(bucket) => {
                if !is_bucket_name(bucket.get_ref()) {
                    self.error(
                        bucket.span(),
                        format!("invalid `backend.bucket` `{}`", bucket.get_ref()),
                        "use an S3 bucket name: 3 to 63 lowercase letters, digits, hyphens and \
                         dots, starting and ending with a letter or digit",
                    );
                }
                bucket.get_ref().clone()
            }
            None => {
                self.error(
                    table_span.clone(),
                    "`backend.bucket` is missing for `type = \"s3\"`".to_string(),
                    "name the bucket that keeps the lock and the journals, such as \
                     `bucket = \"acme-linkplan-state\"`",
                );
                String::new()
            }
        };
        let region = match &raw.region {
            Some(region) => self.region(region),
            None => {
                self.error(
                    table_span,
                    "`backend.region` is missing for `type = \"s3\"`".to_string(),
                    "set the bucket's region, such as `region = \"us-east-1\"`",
                );
                String::new()
            }
        };
        let prefix = match &raw.prefix {
            Some(prefix) => {
                if !is_key_prefix(prefix.get_ref()) {
                    self.error(
                        prefix.span(),
                        format!("invalid `backend.prefix` `{}`", prefix.get_ref()),
                        "use segments of letters, digits and `-_.!*'()` that each end with `/`, \
                         such as \"linkplan/\", or \"\" for none",
                    );
                }
                prefix.get_ref().clone()
            }
            None => DEFAULT_BACKEND_PREFIX.to_string(),
        };
        let credentials = self.credentials(raw.profile, raw.role_arn, "the backend");
        S3BackendConfig {
            bucket,
            prefix,
            region,
            credentials,
        }
    }

    fn stack_name(&mut self, name: &Spanned<String>) -> String {
        let value = name.get_ref();
        if !is_stack_name(value) {
            self.error(
                name.span(),
                format!("invalid stack name `{value}`"),
                &format!("use {STACK_NAME_RULE}"),
            );
        }
        value.clone()
    }

    fn hub(&mut self, raw: RawHub) -> Hub {
        let region = self.region(&raw.region);
        let vpc_id = self.aws_id(&raw.vpc_id, "vpc", "hub.vpc_id");

        let subnet_ids = self.id_list(raw.subnet_ids.get_ref(), "subnet", "hub.subnet_ids");
        if subnet_ids.is_empty() {
            self.error(
                raw.subnet_ids.span(),
                "`hub.subnet_ids` is empty".to_string(),
                "list one subnet of the hub VPC per availability zone the endpoints should use",
            );
        }

        let security_group_ids = match &raw.security_group_ids {
            None => Vec::new(),
            Some(list) => {
                let ids = self.id_list(list.get_ref(), "sg", "hub.security_group_ids");
                if ids.is_empty() {
                    self.error(
                        list.span(),
                        "`hub.security_group_ids` is empty".to_string(),
                        "remove the key to let linkplan manage the endpoints' group, or list groups",
                    );
                }
                ids
            }
        };

        let client_cidrs = match &raw.client_cidrs {
            None => Vec::new(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error(
                        list.span(),
                        "`hub.client_cidrs` is empty".to_string(),
                        "remove the key to allow the hub VPC's own CIDR blocks, or list CIDRs",
                    );
                }
                self.cidrs(list.get_ref())
            }
        };

        let route_table_ids = self.id_list(&raw.route_table_ids, "rtb", "hub.route_table_ids");
        let subnet_policy = match &raw.subnet_policy {
            None => SubnetPolicy::Fail,
            Some(policy) => match policy.get_ref().as_str() {
                "fail" => SubnetPolicy::Fail,
                "filter" => SubnetPolicy::Filter,
                other => {
                    self.error(
                        policy.span(),
                        format!("invalid `hub.subnet_policy` `{other}`"),
                        "use \"fail\" (the default) or \"filter\"",
                    );
                    SubnetPolicy::Fail
                }
            },
        };
        let endpoint_quota = self.endpoint_quota(raw.endpoint_quota.as_ref());
        let credentials = self.credentials(raw.profile, raw.role_arn, "hub");
        Hub {
            region,
            vpc_id,
            subnet_ids,
            security_group_ids,
            client_cidrs,
            route_table_ids,
            subnet_policy,
            credentials,
            endpoint_quota,
        }
    }

    fn endpoint_quota(&mut self, raw: Option<&Spanned<i64>>) -> u32 {
        let Some(raw) = raw else {
            return DEFAULT_ENDPOINT_QUOTA;
        };
        match u32::try_from(*raw.get_ref()) {
            Ok(quota) if quota > 0 => quota,
            _ => {
                self.error(
                    raw.span(),
                    format!("invalid `hub.endpoint_quota` `{}`", raw.get_ref()),
                    "set the interface endpoint quota per VPC of the account, a positive integer \
                     (the AWS default is 50)",
                );
                DEFAULT_ENDPOINT_QUOTA
            }
        }
    }

    fn services(
        &mut self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<RawService>>>,
        hub_region: &str,
        saas: &Saas,
    ) -> Vec<Service> {
        let Some(raw) = raw else {
            let mut services: Vec<Service> = saas
                .services
                .iter()
                .map(|(host, name)| Service {
                    host: host.to_string(),
                    service_name: name.to_string(),
                    private_dns: false,
                })
                .collect();
            services.sort_by(|a, b| a.host.cmp(&b.host));
            // An invalid region is reported once, not again as a mismatch with every service.
            if is_region(hub_region) && hub_region != saas.region {
                self.findings.push(
                    Diagnostic::error(format!(
                        "the default endpoint services are in {}, but `hub.region` is {hub_region}",
                        saas.region
                    ))
                    .with_help(format!(
                        "set `hub.region = \"{}\"` and bring other regions in as spokes",
                        saas.region
                    )),
                );
            }
            return services;
        };

        let mut services = Vec::new();
        // The span of each service name, to find repeated names in the order of the file.
        let mut name_spans = Vec::new();
        for (host, entry) in raw {
            let entry_span = entry.span();
            let entry = entry.into_inner();
            if !is_dns_label(host.get_ref()) {
                self.error(
                    host.span(),
                    format!("invalid host `{}` in [services]", host.get_ref()),
                    "use the host's first label, such as `agents`: lowercase letters, digits, hyphens",
                );
            }
            let name_span = if entry.service_name.span().is_empty() {
                entry_span
            } else {
                entry.service_name.span()
            };
            let service_name = entry.service_name.into_inner();
            match service_region(&service_name) {
                None => self.error(
                    name_span.clone(),
                    format!("invalid endpoint service name `{service_name}` for `{}`", host.get_ref()),
                    "use the form com.amazonaws.vpce.REGION.vpce-svc-ID, as the provider publishes it",
                ),
                Some(region) if is_region(hub_region) && region != hub_region => self.error(
                    name_span.clone(),
                    format!(
                        "endpoint service `{service_name}` is in {region}, but `hub.region` is {hub_region}"
                    ),
                    "an interface endpoint must be in the service's region: set `hub.region` to it",
                ),
                Some(_) => {}
            }
            name_spans.push(name_span.clone());
            let private_dns = entry.private_dns.map(Spanned::into_inner).unwrap_or(false);
            services.push(Service {
                host: host.into_inner(),
                service_name,
                private_dns,
            });
        }
        self.repeated_service_names(&services, &name_spans);
        if services.is_empty() {
            self.findings.push(
                Diagnostic::error("[services] lists no endpoint service").with_help(
                    "remove [services] to use the Workload Security defaults, or list services",
                ),
            );
        }
        services
    }

    /// Reports each service name of `services` that an earlier host in the file has too.
    /// `name_spans` has the span of each service's name, in the same order.
    fn repeated_service_names(&mut self, services: &[Service], name_spans: &[Range<usize>]) {
        let mut in_file_order: Vec<(&Service, &Range<usize>)> =
            services.iter().zip(name_spans).collect();
        in_file_order.sort_by_key(|(_, span)| span.start);
        let mut first_host_of: BTreeMap<&str, &str> = BTreeMap::new();
        for (service, span) in in_file_order {
            let name = service.service_name.as_str();
            let Some(first) = first_host_of.get(name) else {
                first_host_of.insert(name, &service.host);
                continue;
            };
            self.error(
                span.clone(),
                format!(
                    "endpoint service `{name}` of `{}` is also the service of `{first}`",
                    service.host
                ),
                "give each host the endpoint service the provider published for it",
            );
        }
    }

    fn zone(&mut self, raw: Option<RawZone>, saas: &Saas) -> Zone {
        let raw = raw.unwrap_or(RawZone {
            name: None,
            adopt: None,
        });
        let name = match &raw.name {
            None => saas.zone_name.to_string(),
            Some(name) => {
                let normalized = name.get_ref().trim_end_matches('.').to_ascii_lowercase();
                if normalized.split('.').count() < 2 || !normalized.split('.').all(is_dns_label) {
                    self.error(
                        name.span(),
                        format!("invalid zone name `{}`", name.get_ref()),
                        "use a domain such as deepsecurity.trendmicro.com",
                    );
                }
                normalized
            }
        };
        let adopt = raw.adopt.map(|id| {
            let value = normalize_zone_id(id.get_ref());
            let valid = value.len() <= 32
                && value.starts_with('Z')
                && value
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !valid {
                self.error(
                    id.span(),
                    format!("invalid hosted zone id `{}` in `zone.adopt`", id.get_ref()),
                    "use the id Route 53 shows for the zone, such as Z0123456789ABCDEFGHIJ",
                );
            }
            value
        });
        Zone { name, adopt }
    }

    fn spokes(&mut self, raw: Vec<Spanned<RawSpoke>>, hub: &Hub) -> Vec<Spoke> {
        let mut names = BTreeSet::new();
        let mut vpcs = BTreeSet::from([hub.vpc_id.clone()]);
        // Each route table belongs to one VPC, so it is listed on one side only.
        let mut tables: BTreeMap<String, String> = hub
            .route_table_ids
            .iter()
            .map(|t| (t.clone(), "the hub".to_string()))
            .collect();
        let mut spokes = Vec::new();
        for spoke in raw {
            let spoke = spoke.into_inner();
            let name = spoke.name.get_ref().clone();
            if !is_dns_label(&name) {
                self.error(
                    spoke.name.span(),
                    format!("invalid spoke name `{name}`"),
                    "use lowercase letters, digits and hyphens, such as `eu-web`",
                );
            } else if name == "hub" || !names.insert(name.clone()) {
                self.error(
                    spoke.name.span(),
                    format!("spoke name `{name}` is used twice or is reserved"),
                    "give each [[spoke]] its own name, other than `hub`",
                );
            }
            let region = self.region(&spoke.region);
            let vpc_id = self.aws_id(&spoke.vpc_id, "vpc", "spoke.vpc_id");
            if !vpcs.insert(vpc_id.clone()) {
                self.error(
                    spoke.vpc_id.span(),
                    format!("VPC `{vpc_id}` of spoke `{name}` is already the hub or another spoke"),
                    "list each VPC once",
                );
            }
            let route_table_ids =
                self.id_list(&spoke.route_table_ids, "rtb", "spoke.route_table_ids");
            let owner_name = format!("spoke `{name}`");
            for id in &spoke.route_table_ids {
                let table = id.get_ref();
                // A table listed twice by this spoke is reported by `id_list`.
                let owner = tables.insert(table.clone(), owner_name.clone());
                if let Some(owner) = owner.filter(|o| *o != owner_name) {
                    self.error(
                        id.span(),
                        format!(
                            "route table `{table}` of spoke `{name}` is also listed for {owner}"
                        ),
                        "a route table belongs to one VPC: list it only for the hub or spoke in whose VPC it is",
                    );
                }
            }
            let account_id = spoke.account_id.map(|id| {
                let value = id.get_ref().clone();
                if value.len() != 12 || !value.chars().all(|c| c.is_ascii_digit()) {
                    self.error(
                        id.span(),
                        format!("invalid account id `{value}` for spoke `{name}`"),
                        "use the 12-digit AWS account id of the spoke VPC's owner",
                    );
                }
                value
            });
            let credentials =
                self.credentials(spoke.profile, spoke.role_arn, &format!("spoke `{name}`"));
            spokes.push(Spoke {
                name,
                region,
                vpc_id,
                route_table_ids,
                account_id,
                credentials,
            });
        }
        spokes
    }

    fn credentials(
        &mut self,
        profile: Option<Spanned<String>>,
        role_arn: Option<Spanned<String>>,
        owner: &str,
    ) -> Credentials {
        let role_arn = role_arn.map(|arn| {
            let value = arn.get_ref().clone();
            let valid = value.starts_with("arn:aws")
                && value.contains(":iam::")
                && value.contains(":role/");
            if !valid {
                self.error(
                    arn.span(),
                    format!("invalid role ARN `{value}` for {owner}"),
                    "use the form arn:aws:iam::ACCOUNT_ID:role/NAME",
                );
            }
            value
        });
        let profile = profile.map(|p| {
            if p.get_ref().trim().is_empty() {
                self.error(
                    p.span(),
                    format!("empty profile name for {owner}"),
                    "name a profile from ~/.aws/config",
                );
            }
            p.into_inner()
        });
        Credentials { profile, role_arn }
    }

    fn region(&mut self, region: &Spanned<String>) -> String {
        let value = region.get_ref();
        if !is_region(value) {
            self.error(
                region.span(),
                format!("invalid region `{value}`"),
                "use an AWS region code such as us-east-1",
            );
        }
        value.clone()
    }

    fn aws_id(&mut self, id: &Spanned<String>, prefix: &str, key: &str) -> String {
        let value = id.get_ref();
        if !is_aws_id(value, prefix) {
            self.error(
                id.span(),
                format!("invalid `{key}` `{value}`"),
                &format!("use an id of the form {prefix}- followed by 8 or 17 hexadecimal digits"),
            );
        }
        value.clone()
    }

    fn id_list(&mut self, ids: &[Spanned<String>], prefix: &str, key: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut list = Vec::new();
        for id in ids {
            let value = self.aws_id(id, prefix, key);
            if !seen.insert(value.clone()) {
                self.error(
                    id.span(),
                    format!("duplicate `{value}` in `{key}`"),
                    "list each id once",
                );
                continue;
            }
            list.push(value);
        }
        list
    }

    fn cidrs(&mut self, cidrs: &[Spanned<String>]) -> Vec<IpNet> {
        let mut list: Vec<IpNet> = Vec::new();
        for cidr in cidrs {
            let value = cidr.get_ref();
            let net: IpNet = match value.parse() {
                Ok(net) => net,
                Err(_) => {
                    self.error(
                        cidr.span(),
                        format!("invalid CIDR `{value}` in `hub.client_cidrs`"),
                        "use the form 10.0.0.0/16",
                    );
                    continue;
                }
            };
            if net.trunc() != net {
                self.error(
                    cidr.span(),
                    format!("CIDR `{value}` in `hub.client_cidrs` has host bits set"),
                    &format!("use `{}`", net.trunc()),
                );
                continue;
            }
            if net.prefix_len() == 0 {
                self.error(
                    cidr.span(),
                    format!("`hub.client_cidrs` opens the endpoints to every address (`{value}`)"),
                    "list the CIDRs of the workloads that use Workload Security",
                );
                continue;
            }
            // A few broad blocks, such as 0.0.0.0/1 and 128.0.0.0/1, open the endpoints as
            // widely as 0.0.0.0/0. No VPC is larger than a /16, and private ranges fit in a /8.
            let broadest = match net {
                IpNet::V4(_) => 8,
                IpNet::V6(_) => 32,
            };
            if net.prefix_len() < broadest {
                self.error(
                    cidr.span(),
                    format!(
                        "`{value}` in `hub.client_cidrs` is broader than a /{broadest}, wider than any VPC or private range"
                    ),
                    "list the CIDRs of the workloads that use Workload Security",
                );
                continue;
            }
            if list.contains(&net) {
                self.error(
                    cidr.span(),
                    format!("duplicate `{value}` in `hub.client_cidrs`"),
                    "list each CIDR once",
                );
                continue;
            }
            list.push(net);
        }
        list
    }
}

/// The rule for stack names, as the advice on an invalid one states it.
pub const STACK_NAME_RULE: &str =
    "1 to 64 lowercase letters, digits and hyphens, starting with a letter";

/// Reports whether `name` is a valid stack name: 1 to 64 lowercase letters, digits and hyphens,
/// starting with a letter. The backends use the name as a folder or key segment, so a valid
/// name has no `/`, `.` or `..`.
pub fn is_stack_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Reports whether `name` follows the naming rules of S3 general purpose buckets. A name has 3
/// to 63 lowercase letters, digits, hyphens and dots, and starts and ends with a letter or digit.
/// It has no two dots in a row and is not shaped like an IPv4 address.
pub fn is_bucket_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&name.len())
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name
            .chars()
            .all(|c| alphanumeric(c) || c == '-' || c == '.')
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// Reports whether `prefix` is a usable key prefix: empty, or segments of S3's safe key
/// characters that each end with `/`, with no leading `/` and no empty, `.` or `..` segment.
fn is_key_prefix(prefix: &str) -> bool {
    let Some(segments) = prefix.strip_suffix('/') else {
        return prefix.is_empty();
    };
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.!*'()".contains(c);
    prefix.len() <= MAX_BACKEND_PREFIX_LEN
        && segments.split('/').all(|segment| {
            !segment.is_empty() && segment != "." && segment != ".." && segment.chars().all(safe)
        })
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Reports whether `value` has the shape of an AWS region code, such as `us-east-1` or
/// `us-gov-west-1`.
pub fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// Reports whether `value` is an EC2 id with `prefix`, such as `vpc-0abc12de`.
pub fn is_aws_id(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

/// Returns the region inside an endpoint service name `com.amazonaws.vpce.REGION.vpce-svc-ID`.
pub fn service_region(service_name: &str) -> Option<&str> {
    let rest = service_name.strip_prefix("com.amazonaws.vpce.")?;
    let (region, service_id) = rest.split_once('.')?;
    (is_region(region) && is_aws_id(service_id, "vpce-svc")).then_some(region)
}

/// Strips the `/hostedzone/` prefix Route 53 puts on some zone ids.
pub fn normalize_zone_id(id: &str) -> String {
    id.trim().trim_start_matches("/hostedzone/").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "workload-security"
[hub]
region = "us-east-1"
vpc_id = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
"#;

    fn errors(text: &str) -> Vec<Diagnostic> {
        parse("linkplan.toml", text)
            .expect_err("config should be rejected")
            .0
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse("linkplan.toml", MINIMAL).unwrap();
        let hosts: Vec<&str> = config
            .stack
            .services
            .iter()
            .map(|s| s.host.as_str())
            .collect();
        assert_eq!(hosts, ["agents", "app", "dsmim", "relay"]);
        assert_eq!(config.stack.zone.name, "deepsecurity.trendmicro.com");
        assert!(config.stack.hub.manages_security_group());
        assert!(config.stack.services.iter().all(|s| !s.private_dns));
    }

    #[test]
    fn unknown_key_is_located() {
        let text = MINIMAL.replace(
            "region = \"us-east-1\"",
            "region = \"us-east-1\"\nsubnets = []",
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].summary.contains("unknown key `subnets`"),
            "{}",
            found[0].summary
        );
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (5, 1));
    }

    #[test]
    fn missing_key_is_named() {
        let text = MINIMAL.replace("vpc_id = \"vpc-0123456789abcdef0\"\n", "");
        let found = errors(&text);
        assert!(
            found[0].summary.contains("missing key `vpc_id`"),
            "{}",
            found[0].summary
        );
        assert!(found[0].location.is_some());
    }

    #[test]
    fn wrong_type_is_located() {
        let text = MINIMAL.replace("region = \"us-east-1\"", "region = 1");
        let found = errors(&text);
        assert!(
            found[0].summary.contains("invalid type"),
            "{}",
            found[0].summary
        );
        assert_eq!(found[0].location.as_ref().unwrap().line, 4);
    }

    #[test]
    fn duplicate_subnet_is_located() {
        let text = MINIMAL.replace("subnet-0123456789abcdef1", "subnet-0123456789abcdef0");
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "duplicate `subnet-0123456789abcdef0` in `hub.subnet_ids`"
        );
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (6, 43));
    }

    #[test]
    fn malformed_ids_are_all_reported() {
        let text = MINIMAL
            .replace("vpc-0123456789abcdef0", "vpc-XYZ")
            .replace("subnet-0123456789abcdef1", "sub-1");
        let found = errors(&text);
        let summaries: Vec<&str> = found.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "invalid `hub.vpc_id` `vpc-XYZ`",
                "invalid `hub.subnet_ids` `sub-1`"
            ]
        );
    }

    #[test]
    fn service_region_must_match_hub() {
        let text = format!(
            "{MINIMAL}[services]\nagents = \"com.amazonaws.vpce.eu-west-1.vpce-svc-0ecb2dc36c34b3aef\"\n"
        );
        let found = errors(&text);
        assert!(
            found[0]
                .summary
                .contains("is in eu-west-1, but `hub.region` is us-east-1")
        );
        assert_eq!(found[0].location.as_ref().unwrap().line, 8);
    }

    #[test]
    fn duplicate_service_name_is_located() {
        let text = format!(
            "{MINIMAL}[services]\n\
             agents = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef\"\n\
             relay = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef\"\n"
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "endpoint service `com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc36c34b3aef` of \
             `relay` is also the service of `agents`"
        );
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (9, 9));
    }

    #[test]
    fn duplicate_service_name_in_table_is_located() {
        let text = format!(
            "{MINIMAL}[services]\n\
             agents = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc3\"\n\
             [services.relay]\n\
             service_name = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc3\"\n"
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].summary.contains("is also the service of `agents`"),
            "{}",
            found[0].summary
        );
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (10, 16));
    }

    #[test]
    fn service_table_form_is_accepted() {
        let text = format!(
            "{MINIMAL}[services.agents]\nservice_name = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ecb2dc3\"\nprivate_dns = true\n"
        );
        let config = parse("linkplan.toml", &text).unwrap();
        assert_eq!(config.stack.services.len(), 1);
        assert!(config.stack.services[0].private_dns);
    }

    #[test]
    fn open_client_cidr_is_rejected() {
        let text = MINIMAL.replace("subnet_ids", "client_cidrs = [\"0.0.0.0/0\"]\nsubnet_ids");
        let found = errors(&text);
        assert!(
            found[0]
                .summary
                .contains("opens the endpoints to every address")
        );
    }

    #[test]
    fn broad_client_cidrs_are_rejected() {
        let text = MINIMAL.replace(
            "subnet_ids",
            "client_cidrs = [\"0.0.0.0/1\", \"128.0.0.0/1\", \"10.0.0.0/8\"]\nsubnet_ids",
        );
        let summaries: Vec<String> = errors(&text).into_iter().map(|d| d.summary).collect();
        assert_eq!(
            summaries,
            [
                "`0.0.0.0/1` in `hub.client_cidrs` is broader than a /8, wider than any VPC or private range",
                "`128.0.0.0/1` in `hub.client_cidrs` is broader than a /8, wider than any VPC or private range",
            ],
            "a /8 is accepted"
        );
    }

    #[test]
    fn cidr_with_host_bits_is_rejected() {
        let text = MINIMAL.replace("subnet_ids", "client_cidrs = [\"10.0.0.1/16\"]\nsubnet_ids");
        let found = errors(&text);
        assert_eq!(found[0].help.as_deref(), Some("use `10.0.0.0/16`"));
    }

    #[test]
    fn route_table_on_two_sides_is_rejected() {
        let hub = MINIMAL.replace(
            "subnet_ids",
            "route_table_ids = [\"rtb-0123456789abcdef0\"]\nsubnet_ids",
        );
        let spoke = |name: &str, vpc: &str| {
            format!(
                "[[spoke]]\nname = \"{name}\"\nregion = \"eu-west-1\"\nvpc_id = \"{vpc}\"\n\
                 route_table_ids = [\"rtb-0123456789abcdef0\"]\n"
            )
        };
        let text = format!(
            "{hub}{}{}",
            spoke("eu", "vpc-0123456789abcdef1"),
            spoke("us", "vpc-0123456789abcdef2")
        );
        let summaries: Vec<String> = errors(&text).into_iter().map(|d| d.summary).collect();
        assert_eq!(
            summaries,
            [
                "route table `rtb-0123456789abcdef0` of spoke `eu` is also listed for the hub",
                "route table `rtb-0123456789abcdef0` of spoke `us` is also listed for spoke `eu`",
            ]
        );
    }

    #[test]
    fn duplicate_spoke_vpc_is_rejected() {
        let text = format!(
            "{MINIMAL}[[spoke]]\nname = \"eu\"\nregion = \"eu-west-1\"\nvpc_id = \"vpc-0123456789abcdef0\"\n"
        );
        let found = errors(&text);
        assert!(
            found[0]
                .summary
                .contains("is already the hub or another spoke")
        );
    }

    #[test]
    fn region_shapes() {
        assert!(is_region("us-east-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(is_region("ap-southeast-2"));
        assert!(!is_region("useast1"));
        assert!(!is_region("us-east"));
        assert!(!is_region("US-EAST-1"));
    }

    #[test]
    fn service_region_parses() {
        let name = "com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e";
        assert_eq!(service_region(name), Some("us-east-1"));
        assert_eq!(service_region("com.amazonaws.us-east-1.s3"), None);
    }

    #[test]
    fn backend_defaults_to_local() {
        let config = parse("linkplan.toml", MINIMAL).unwrap();
        assert_eq!(config.stack.backend, BackendConfig::Local);
        let local = format!("{MINIMAL}[backend]\ntype = \"local\"\n");
        let config = parse("linkplan.toml", &local).unwrap();
        assert_eq!(config.stack.backend, BackendConfig::Local);
    }

    #[test]
    fn s3_backend_is_parsed() {
        let text = format!(
            "{MINIMAL}[backend]\ntype = \"s3\"\nbucket = \"acme-state\"\nregion = \"eu-west-1\"\n\
             role_arn = \"arn:aws:iam::123456789012:role/state\"\n"
        );
        let config = parse("linkplan.toml", &text).unwrap();
        let BackendConfig::S3(backend) = config.stack.backend else {
            panic!("not an S3 backend: {:?}", config.stack.backend);
        };
        assert_eq!(backend.bucket, "acme-state");
        assert_eq!(backend.prefix, DEFAULT_BACKEND_PREFIX);
        assert_eq!(backend.region, "eu-west-1");
        assert_eq!(
            backend.credentials.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/state")
        );
        assert_eq!(backend.credentials.profile, None);
    }

    #[test]
    fn s3_backend_errors_are_reported_together() {
        let text = format!(
            "{MINIMAL}[backend]\ntype = \"s3\"\nbucket = \"Acme_State\"\nprefix = \"/state\"\n"
        );
        let found = errors(&text);
        let summaries: Vec<&str> = found.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "invalid `backend.bucket` `Acme_State`",
                "`backend.region` is missing for `type = \"s3\"`",
                "invalid `backend.prefix` `/state`",
            ]
        );
        let bucket = found[0].location.as_ref().unwrap();
        assert_eq!((bucket.line, bucket.column), (9, 10));
        let table = found[1].location.as_ref().unwrap();
        assert_eq!(table.line, 7);
    }

    #[test]
    fn s3_backend_needs_bucket() {
        let text = format!("{MINIMAL}[backend]\ntype = \"s3\"\nregion = \"us-east-1\"\n");
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "`backend.bucket` is missing for `type = \"s3\"`"
        );
        assert!(found[0].help.as_deref().unwrap().contains("bucket = "));
    }

    #[test]
    fn local_backend_rejects_s3_keys() {
        let text = format!("{MINIMAL}[backend]\ntype = \"local\"\nbucket = \"acme-state\"\n");
        let found = errors(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "`backend.bucket` is set, but `backend.type` is \"local\""
        );
        assert_eq!(found[0].location.as_ref().unwrap().line, 9);
    }

    #[test]
    fn unknown_backend_type_is_located() {
        let found = errors(&format!("{MINIMAL}[backend]\ntype = \"gcs\"\n"));
        assert_eq!(found[0].summary, "invalid `backend.type` `gcs`");
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (8, 8));
        let missing = errors(&format!("{MINIMAL}[backend]\nbucket = \"acme-state\"\n"));
        assert!(
            missing[0].summary.contains("missing key `type`"),
            "{}",
            missing[0].summary
        );
    }

    #[test]
    fn stack_name_shapes() {
        assert!(is_stack_name("workload-security"));
        assert!(is_stack_name("a"));
        assert!(is_stack_name(&"a".repeat(64)));
        assert!(!is_stack_name(""));
        assert!(!is_stack_name(&"a".repeat(65)));
        assert!(!is_stack_name("Web"));
        assert!(!is_stack_name("1web"));
        assert!(!is_stack_name("-web"));
        assert!(!is_stack_name("web_1"));
        assert!(!is_stack_name("../../zz"));
        assert!(!is_stack_name("a/b"));
        assert!(!is_stack_name(".."));
    }

    #[test]
    fn bucket_name_shapes() {
        assert!(is_bucket_name("acme-linkplan-state"));
        assert!(is_bucket_name("acme.state.1"));
        assert!(!is_bucket_name("ab"));
        assert!(!is_bucket_name(&"a".repeat(64)));
        assert!(!is_bucket_name("Acme"));
        assert!(!is_bucket_name("-acme"));
        assert!(!is_bucket_name("acme-"));
        assert!(!is_bucket_name("acme..state"));
        assert!(!is_bucket_name("acme_state"));
        assert!(!is_bucket_name("192.168.5.4"));
    }

    #[test]
    fn key_prefix_shapes() {
        assert!(is_key_prefix(""));
        assert!(is_key_prefix("linkplan/"));
        assert!(is_key_prefix("teams/net-ops/linkplan/"));
        assert!(!is_key_prefix("linkplan"));
        assert!(!is_key_prefix("/linkplan/"));
        assert!(!is_key_prefix("a//b/"));
        assert!(!is_key_prefix("a/../b/"));
        assert!(!is_key_prefix("with space/"));
        assert!(!is_key_prefix(&format!(
            "{}/",
            "a".repeat(MAX_BACKEND_PREFIX_LEN)
        )));
    }
}

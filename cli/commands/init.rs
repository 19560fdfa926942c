//! `linkplan init`: discovers a VPC and writes a first, commented `linkplan.toml` for it.
//!
//! 1. Every argument is checked before any AWS call, with an error that names its flag. An
//!    existing config file is kept unless `--force` is given.
//! 2. The VPC, its subnets, their route tables and the zones each endpoint service offers are
//!    read (`linkplan_aws::discover`).
//! 3. One subnet is picked per zone that every service offers, a private one when the zone
//!    has one. A subnet is public when its route table sends `0.0.0.0/0` to an internet
//!    gateway.
//! 4. The config is rendered, checked with the same validation as `validate`, and written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use linkplan_aws::discover::{self, DiscoverError, DiscoveredSubnet, Discovery};
use linkplan_engine::config;
use linkplan_engine::observed::ServiceLookup;
use linkplan_engine::saas::WORKLOAD_SECURITY;

use crate::args::{GlobalArgs, InitArgs};
use crate::error::CliError;
use crate::exit;
use crate::progress;

/// Parses a `--service HOST=SERVICE_NAME` value, whose host must be one of the Workload
/// Security hosts.
pub fn parse_service(value: &str) -> Result<(String, String), String> {
    let Some((host, name)) = value.split_once('=') else {
        return Err(format!(
            "expected HOST=SERVICE_NAME, such as relay=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0, not `{value}`"
        ));
    };
    let host = host.trim();
    let label = !host.is_empty()
        && !host.starts_with('-')
        && !host.ends_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !label {
        return Err(format!(
            "invalid host `{host}`: use the host's first label, such as `relay`: lowercase \
             letters, digits and hyphens"
        ));
    }
    if !WORKLOAD_SECURITY
        .services
        .iter()
        .any(|(known, _)| *known == host)
    {
        return Err(format!(
            "unknown host `{host}`: use one of {}",
            known_hosts().join(", ")
        ));
    }
    if config::service_region(name.trim()).is_none() {
        return Err(format!(
            "invalid endpoint service name `{name}`: use the form \
             com.amazonaws.vpce.REGION.vpce-svc-ID"
        ));
    }
    Ok((host.to_string(), name.trim().to_string()))
}

pub async fn run(args: &InitArgs, global: &GlobalArgs) -> Result<u8, CliError> {
    // 1. Inputs, checked before any call.
    check_inputs(args)?;
    let services = services_of(args);
    check_services(&services)?;
    if services.is_empty() {
        return Err(CliError::new(format!(
            "no endpoint service is known for region {}",
            args.region
        ))
        .help("name each service with --service HOST=SERVICE_NAME"));
    }
    let names: Vec<String> = services.values().cloned().collect();

    // 2. The VPC and the services.
    let options = super::provider_options(global);
    let message = format!("Reading VPC `{}` in {}", args.vpc, args.region);
    let discovery = progress::wait_on(
        &message,
        discover::discover(&args.region, &args.vpc, &names, &options),
    )
    .await
    .map_err(|error| discover_error(error, args))?;

    // 3. The zones and subnets.
    let zones = offered_zones(&services, &discovery)?;
    let chosen = choose_subnets(&discovery.subnets, &zones.common);
    if chosen.is_empty() {
        let subnet_zones: BTreeSet<&str> = discovery
            .subnets
            .iter()
            .map(|s| s.availability_zone_id.as_str())
            .collect();
        return Err(CliError::new(format!(
            "VPC `{}` has no subnet in a zone every endpoint service offers",
            args.vpc
        ))
        .detail(format!(
            "zones every service offers: {}",
            list(&zones.common)
        ))
        .detail(format!(
            "zones of the VPC's subnets: {}",
            list(&subnet_zones)
        ))
        .help("create a subnet of the VPC in one of the offered zones, then run init again"));
    }
    for subnet in chosen.iter().filter(|s| s.public) {
        eprintln!(
            "warning: zone {} has only public subnets, so init picked public subnet `{}`",
            subnet.availability_zone_id, subnet.subnet_id
        );
    }

    // 4. The config file.
    let text = render(args, &discovery, &services, &zones, &chosen);
    if let Err(diagnostics) = config::parse(&args.config.display().to_string(), &text) {
        return Err(CliError::new(format!(
            "the config init generated for VPC `{}` is invalid:\n{diagnostics}",
            args.vpc
        ))
        .help(
            "this is a bug in linkplan; write the config by hand from plans/workload-security.toml",
        ));
    }
    write_config(&args.config, &text, args.force)?;

    let zone_ids: Vec<&str> = chosen
        .iter()
        .map(|s| s.availability_zone_id.as_str())
        .collect();
    println!(
        "Wrote `{}` for VPC `{}`: {} {} in {}.",
        args.config.display(),
        args.vpc,
        chosen.len(),
        if chosen.len() == 1 {
            "subnet"
        } else {
            "subnets"
        },
        zone_ids.join(", ")
    );
    println!(
        "Review it, then run `linkplan validate{0}` and `linkplan plan{0}`.",
        config_flag(&args.config)
    );
    Ok(exit::OK)
}

/// Checks every argument that needs no AWS call, so that a wrong one fails before the VPC is
/// read, with an error that names its flag.
fn check_inputs(args: &InitArgs) -> Result<(), CliError> {
    if args.config.is_dir() {
        return Err(
            CliError::new(format!("--config `{}` is a folder", args.config.display()))
                .help("name the config file to write, such as --config stacks/hub.toml"),
        );
    }
    if args.config.exists() && !args.force {
        return Err(CliError::new(format!(
            "config file `{}` already exists",
            args.config.display()
        ))
        .help("pass --force to overwrite it, or --config to write another file"));
    }
    if !config::is_aws_id(&args.vpc, "vpc") {
        return Err(
            CliError::new(format!("invalid VPC id `{}` in --vpc", args.vpc))
                .help("use an id of the form vpc- followed by 8 or 17 hexadecimal digits"),
        );
    }
    if !config::is_region(&args.region) {
        return Err(
            CliError::new(format!("invalid region `{}` in --region", args.region))
                .help("use an AWS region code such as us-east-1"),
        );
    }
    if !config::is_stack_name(&args.name) {
        return Err(
            CliError::new(format!("invalid stack name `{}` in --name", args.name))
                .help(format!("use {}", config::STACK_NAME_RULE)),
        );
    }
    let mut hosts = BTreeSet::new();
    for (host, name) in &args.services {
        if !hosts.insert(host) {
            return Err(
                CliError::new(format!("--service names host `{host}` twice"))
                    .help("pass one --service HOST=SERVICE_NAME per host"),
            );
        }
        let region = config::service_region(name).unwrap_or_default();
        if region != args.region {
            return Err(CliError::new(format!(
                "--service {host}={name} names a service in {region}, but --region is {}",
                args.region
            ))
            .help("interface endpoints reach services of their own region only; pass --region or another service"));
        }
    }
    Ok(())
}

/// Checks that no two hosts of `services` share an endpoint service, which `validate` rejects
/// in a config.
fn check_services(services: &BTreeMap<String, String>) -> Result<(), CliError> {
    let mut host_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (host, name) in services {
        if let Some(other) = host_of.insert(name, host) {
            return Err(CliError::new(format!(
                "endpoint service `{name}` would serve both `{other}` and `{host}`"
            ))
            .help(
                "give each host its own service: --service replaces the Workload Security \
                 default of one host",
            ));
        }
    }
    Ok(())
}

/// Returns the Workload Security hosts, in the order the provider lists them.
fn known_hosts() -> Vec<&'static str> {
    WORKLOAD_SECURITY
        .services
        .iter()
        .map(|(host, _)| *host)
        .collect()
}

/// Returns the service of each host. In the region of the Workload Security services these are
/// the defaults, each `--service` value replacing the default of its host. Another region has
/// no defaults, so there only the `--service` values are used.
fn services_of(args: &InitArgs) -> BTreeMap<String, String> {
    let mut services: BTreeMap<String, String> = BTreeMap::new();
    if args.region == WORKLOAD_SECURITY.region {
        for (host, name) in WORKLOAD_SECURITY.services {
            services.insert(host.to_string(), name.to_string());
        }
    }
    for (host, name) in &args.services {
        services.insert(host.clone(), name.clone());
    }
    services
}

fn discover_error(error: DiscoverError, args: &InitArgs) -> CliError {
    match error {
        DiscoverError::VpcNotFound { .. } => CliError::new(error.to_string()).help(format!(
            "check the VPC id, and that the credentials belong to the VPC's account; pass \
             --region when the VPC is not in {}",
            args.region
        )),
        DiscoverError::Aws(error) => super::aws_error(error),
    }
}

/// The zones the services offer, by zone id.
struct OfferedZones {
    /// Zones every service offers.
    common: BTreeSet<String>,
    /// Zones some but not all services offer, with the hosts that lack them.
    partial: BTreeMap<String, Vec<String>>,
}

fn offered_zones(
    services: &BTreeMap<String, String>,
    discovery: &Discovery,
) -> Result<OfferedZones, CliError> {
    let mut by_host: BTreeMap<&str, &[String]> = BTreeMap::new();
    let mut missing: Vec<String> = Vec::new();
    for (host, name) in services {
        match discovery.services.get(name) {
            Some(ServiceLookup::Found(state)) => {
                by_host.insert(host, &state.availability_zone_ids);
            }
            Some(ServiceLookup::NotFound { message }) => {
                missing.push(format!("`{name}` ({host}): {message}"));
            }
            None => missing.push(format!("`{name}` ({host}): not returned")),
        }
    }
    if !missing.is_empty() {
        let mut error = CliError::new(format!(
            "{} of the endpoint services {} not available to this account in {} \
             (InvalidServiceName)",
            missing.len(),
            if missing.len() == 1 { "is" } else { "are" },
            discovery.region
        ));
        for line in missing {
            error = error.detail(line);
        }
        return Err(error.help(
            "ask Trend Micro to allowlist the account for the services, or name others with \
             --service HOST=SERVICE_NAME",
        ));
    }

    let all: BTreeSet<String> = by_host
        .values()
        .flat_map(|zones| zones.iter())
        .cloned()
        .collect();
    let mut common = BTreeSet::new();
    let mut partial = BTreeMap::new();
    for zone in all {
        let lacking: Vec<String> = by_host
            .iter()
            .filter(|(_, zones)| !zones.contains(&zone))
            .map(|(host, _)| host.to_string())
            .collect();
        if lacking.is_empty() {
            common.insert(zone);
        } else {
            partial.insert(zone, lacking);
        }
    }
    Ok(OfferedZones { common, partial })
}

/// Picks one subnet per zone of `zones`: a private one when the zone has one, and among equals
/// the lowest subnet id, so that the same VPC always gives the same config.
fn choose_subnets<'a>(
    subnets: &'a [DiscoveredSubnet],
    zones: &BTreeSet<String>,
) -> Vec<&'a DiscoveredSubnet> {
    zones
        .iter()
        .filter_map(|zone| {
            subnets
                .iter()
                .filter(|s| &s.availability_zone_id == zone)
                .min_by(|a, b| (a.public, &a.subnet_id).cmp(&(b.public, &b.subnet_id)))
        })
        .collect()
}

/// Joins `items` with commas, or returns `none`.
fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn quoted(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

fn config_flag(path: &Path) -> String {
    if path == Path::new(config::DEFAULT_CONFIG_FILE) {
        String::new()
    } else {
        format!(" --config {}", path.display())
    }
}

fn describe_subnet(subnet: &DiscoveredSubnet) -> String {
    let kind = if subnet.public { "public" } else { "private" };
    let mut text = format!(
        "{} ({}), {kind}, {}",
        subnet.availability_zone_id, subnet.availability_zone, subnet.cidr
    );
    if let Some(name) = &subnet.name {
        let _ = write!(text, ", Name {name}");
    }
    text
}

/// Renders the config, commented in the manner of `plans/workload-security.toml`.
fn render(
    args: &InitArgs,
    discovery: &Discovery,
    services: &BTreeMap<String, String>,
    zones: &OfferedZones,
    chosen: &[&DiscoveredSubnet],
) -> String {
    let mut out = String::new();
    let vpc_label = match &discovery.vpc_name {
        Some(name) => format!("{} ({name})", discovery.vpc_id),
        None => discovery.vpc_id.clone(),
    };
    let _ = writeln!(
        out,
        "# linkplan config for VPC {vpc_label} in {},\n\
         # written by `linkplan init`.\n\
         #\n\
         # Review it, then run\n\
         #   linkplan validate{flag}\n\
         #   linkplan plan{flag}      # writes plans/{name}.plan for review\n\
         # Every key is described in docs/config.md; plans/workload-security.toml is a complete\n\
         # example.\n",
        discovery.region,
        flag = config_flag(&args.config),
        name = args.name,
    );
    let _ = writeln!(
        out,
        "# Stack name: the value of the `linkplan:stack` tag on everything linkplan creates, and\n\
         # the name of the plan file.\n\
         name = {}\n",
        quoted(&args.name)
    );

    render_hub(&mut out, discovery, zones, chosen);
    render_services(&mut out, services);
    let _ = writeln!(
        out,
        "\n[zone]\n\
         # The private hosted zone with one alias record per host. Inside the VPCs it is\n\
         # associated with, it answers for the whole domain.\n\
         name = {}",
        quoted(WORKLOAD_SECURITY.zone_name)
    );
    out
}

fn render_hub(
    out: &mut String,
    discovery: &Discovery,
    zones: &OfferedZones,
    chosen: &[&DiscoveredSubnet],
) {
    let cidrs: Vec<String> = discovery.cidrs.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "[hub]\n\
         region = {}\n\
         # IPv4 blocks: {}. The managed security group allows TCP 443 from all of them unless\n\
         # client_cidrs below says otherwise.\n\
         vpc_id = {}",
        quoted(&discovery.region),
        list(&cidrs),
        quoted(&discovery.vpc_id)
    );
    let _ = writeln!(
        out,
        "# One subnet per zone (by zone id) that every endpoint service offers, a private one\n\
         # where the zone has one.\n\
         subnet_ids = ["
    );
    for subnet in chosen {
        let _ = writeln!(
            out,
            "    {},   # {}",
            quoted(&subnet.subnet_id),
            describe_subnet(subnet)
        );
    }
    let _ = writeln!(out, "]");
    for (zone, lacking) in &zones.partial {
        let _ = writeln!(
            out,
            "# Zone {zone} is left out: {} not offered there.",
            lacking
                .iter()
                .map(|host| format!("`{host}` is"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let others: Vec<&DiscoveredSubnet> = discovery
        .subnets
        .iter()
        .filter(|s| !chosen.iter().any(|c| c.subnet_id == s.subnet_id))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "# Other subnets of the VPC:");
        for subnet in others {
            let _ = writeln!(out, "#   {}: {}", subnet.subnet_id, describe_subnet(subnet));
        }
    }
    let _ = writeln!(
        out,
        "# Optional: the CIDRs allowed to reach the endpoints on TCP 443 through the managed\n\
         # group. The default is every IPv4 block of the hub VPC.\n\
         # client_cidrs = [{}]\n\
         # Optional: \"filter\" leaves a subnet out of an endpoint whose service does not offer\n\
         # its zone, with a warning; the default \"fail\" stops the plan instead.\n\
         # subnet_policy = \"fail\"\n\
         # Optional: credentials for the hub account; the standard AWS chain by default.\n\
         # profile = \"security-hub\"",
        cidrs.first().map(|c| quoted(c)).unwrap_or_default()
    );
}

fn render_services(out: &mut String, services: &BTreeMap<String, String>) {
    let _ = writeln!(
        out,
        "\n# The endpoint service of each host under the zone: relay.{} and so on.\n\
         [services]",
        WORKLOAD_SECURITY.zone_name
    );
    let defaults: BTreeMap<&str, &str> = WORKLOAD_SECURITY.services.iter().copied().collect();
    let width = services.keys().map(String::len).max().unwrap_or(0);
    for (host, name) in services {
        let note = if defaults.get(host.as_str()) == Some(&name.as_str()) {
            "   # the Workload Security default"
        } else {
            ""
        };
        let _ = writeln!(out, "{host:<width$} = {}{note}", quoted(name));
    }
}

/// Writes `text` to `path`. Without `force` the file is created only if it does not exist, so a
/// file that appeared since the first check is kept as well.
fn write_config(path: &Path, text: &str, force: bool) -> Result<(), CliError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::new(format!(
                "failed to create folder `{}`: {e}",
                parent.display()
            ))
            .help("check the path and its permissions")
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let result = options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    result.map_err(|e| {
        let help = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "pass --force to overwrite it, or --config to write another file"
        } else {
            "check the path and its permissions"
        };
        CliError::new(format!("failed to write config `{}`: {e}", path.display())).help(help)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, public: bool) -> DiscoveredSubnet {
        DiscoveredSubnet {
            subnet_id: id.to_string(),
            availability_zone: format!("zone-of-{zone}"),
            availability_zone_id: zone.to_string(),
            cidr: "10.0.0.0/24".to_string(),
            name: None,
            public,
        }
    }

    #[test]
    fn private_subnet_is_preferred() {
        let subnets = [
            subnet("subnet-00000001", "use1-az1", true),
            subnet("subnet-00000002", "use1-az1", false),
        ];
        let zones = BTreeSet::from(["use1-az1".to_string()]);
        let chosen = choose_subnets(&subnets, &zones);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].subnet_id, "subnet-00000002");
    }

    #[test]
    fn public_subnet_is_used_when_alone() {
        let subnets = [subnet("subnet-00000001", "use1-az2", true)];
        let zones = BTreeSet::from(["use1-az2".to_string()]);
        let chosen = choose_subnets(&subnets, &zones);
        assert_eq!(chosen[0].subnet_id, "subnet-00000001");
    }

    #[test]
    fn zones_not_offered_are_skipped() {
        let subnets = [
            subnet("subnet-00000001", "use1-az1", false),
            subnet("subnet-00000003", "use1-az3", false),
        ];
        let zones = BTreeSet::from(["use1-az1".to_string(), "use1-az2".to_string()]);
        let chosen: Vec<&str> = choose_subnets(&subnets, &zones)
            .iter()
            .map(|s| s.subnet_id.as_str())
            .collect();
        assert_eq!(chosen, ["subnet-00000001"]);
    }

    #[test]
    fn lowest_id_wins_among_equals() {
        let subnets = [
            subnet("subnet-0000000b", "use1-az1", false),
            subnet("subnet-0000000a", "use1-az1", false),
        ];
        let zones = BTreeSet::from(["use1-az1".to_string()]);
        assert_eq!(
            choose_subnets(&subnets, &zones)[0].subnet_id,
            "subnet-0000000a"
        );
    }

    #[test]
    fn service_flag_is_parsed() {
        let parsed = parse_service("relay=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0");
        assert_eq!(
            parsed,
            Ok((
                "relay".to_string(),
                "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0".to_string()
            ))
        );
    }

    #[test]
    fn service_flag_without_equals_is_rejected() {
        let error = parse_service("relay").unwrap_err();
        assert!(error.contains("HOST=SERVICE_NAME"), "{error}");
    }

    #[test]
    fn service_flag_with_unknown_host_is_rejected() {
        let error = parse_service("agent=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0")
            .unwrap_err();
        assert_eq!(
            error,
            "unknown host `agent`: use one of relay, agents, dsmim, app"
        );
    }

    #[test]
    fn service_flag_with_bad_host_is_rejected() {
        let error = parse_service("Relay=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0")
            .unwrap_err();
        assert!(error.contains("invalid host"), "{error}");
    }
}

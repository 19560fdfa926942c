//! Building the SDK clients: one shared config per set of credentials, one EC2 and one STS client
//! per context, and one Route 53 client per set of credentials, all with the same timeouts,
//! retry policy and endpoint override.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::sdk_config::SharedCredentialsProvider;
use aws_types::service_config::ServiceConfigKey;
use linkplan_engine::provider::{ErrorKind, ProviderError};
use linkplan_engine::stack::{Context, Credentials};

use crate::errors::CallSite;
use crate::metrics::CallMetrics;

/// The region Route 53 requests are signed for, whatever the hub's region: Route 53 is a global
/// service whose API lives in us-east-1.
pub const ROUTE53_REGION: &str = "us-east-1";

/// Session name of the sessions linkplan opens with `AssumeRole`, visible in CloudTrail.
const ROLE_SESSION_NAME: &str = "linkplan";

/// Timeouts of every SDK call. The AWS SDK for Rust sets none by default, so without them a
/// stalled connection would hang a plan forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time to open a TCP (and TLS) connection. Default 3 s.
    pub connect: Duration,
    /// Time to wait for the first byte of a response once the request is sent. Default 20 s.
    pub read: Duration,
    /// Time one attempt of a call may take, from sending the request to reading the whole
    /// response. Default 30 s.
    pub attempt: Duration,
    /// Time one call may take, all retries and the backoff between them included. Default 90 s.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(20),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(90),
        }
    }
}

impl Timeouts {
    fn to_timeout_config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// Connection settings of the provider: endpoint override, timeouts and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOptions {
    /// One API endpoint for every client (EC2 in each region, Route 53, STS, and the S3 client
    /// of [`crate::S3Backend`]), such as a local emulator. `None` leaves the choice to the SDK's
    /// configuration: `AWS_ENDPOINT_URL`, the service-specific `AWS_ENDPOINT_URL_EC2`,
    /// `AWS_ENDPOINT_URL_ROUTE_53`, `AWS_ENDPOINT_URL_STS` and `AWS_ENDPOINT_URL_S3`, or
    /// `endpoint_url` in the profile.
    pub endpoint_url: Option<String>,
    pub timeouts: Timeouts,
    /// Attempts per call, the first one included; throttling, 5xx responses, timeouts and
    /// connection errors are retried with exponential backoff and jitter. Default 5, and 0 is
    /// treated as 1.
    pub max_attempts: u32,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            endpoint_url: None,
            timeouts: Timeouts::default(),
            max_attempts: 5,
        }
    }
}

/// An EC2 client for one context, with what its errors must report.
#[derive(Debug, Clone)]
pub struct Ec2 {
    pub client: aws_sdk_ec2::Client,
    pub site: CallSite,
}

/// A Route 53 client for one set of credentials.
#[derive(Debug, Clone)]
pub struct Route53 {
    pub client: aws_sdk_route53::Client,
    pub site: CallSite,
}

/// An STS client for one context.
#[derive(Debug, Clone)]
pub struct Sts {
    pub client: aws_sdk_sts::Client,
    pub site: CallSite,
}

/// Every client the provider was built with.
#[derive(Debug)]
pub struct Clients {
    ec2: BTreeMap<Context, Ec2>,
    sts: BTreeMap<Context, Sts>,
    route53: BTreeMap<Credentials, Route53>,
    /// The endpoint override every client uses, as recorded in plan files.
    pub endpoint_url: Option<String>,
    /// The calls of every client above.
    pub metrics: CallMetrics,
}

impl Clients {
    /// Builds the clients of `contexts`, loading each distinct set of credentials once.
    ///
    /// # Errors
    /// `InvalidRequest` when an endpoint override reaches some services but not others, since
    /// a plan made against an emulator must never send part of its calls to AWS.
    pub async fn build(
        contexts: &[Context],
        options: &ProviderOptions,
    ) -> Result<Clients, ProviderError> {
        let mut shared: BTreeMap<Credentials, SdkConfig> = BTreeMap::new();
        for context in contexts {
            if !shared.contains_key(&context.credentials) {
                let config = load_shared_config(&context.credentials, &context.region, options);
                shared.insert(context.credentials.clone(), config.await);
            }
        }

        let endpoints = ServiceEndpoints::resolve(shared.values())?;
        let metrics = CallMetrics::default();
        let site = |service: &'static str, region: &str, endpoint: &Option<String>| CallSite {
            service,
            region: region.to_string(),
            endpoint: endpoint.clone(),
            timeouts: options.timeouts,
        };

        let mut ec2 = BTreeMap::new();
        let mut sts = BTreeMap::new();
        for context in contexts {
            let regional = shared[&context.credentials]
                .to_builder()
                .region(Region::new(context.region.clone()))
                .build();
            let ec2_config = aws_sdk_ec2::config::Builder::from(&regional)
                .interceptor(metrics.counter("ec2"))
                .build();
            ec2.insert(
                context.clone(),
                Ec2 {
                    client: aws_sdk_ec2::Client::from_conf(ec2_config),
                    site: site("ec2", &context.region, &endpoints.ec2),
                },
            );
            let sts_config = aws_sdk_sts::config::Builder::from(&regional)
                .interceptor(metrics.counter("sts"))
                .build();
            sts.insert(
                context.clone(),
                Sts {
                    client: aws_sdk_sts::Client::from_conf(sts_config),
                    site: site("sts", &context.region, &endpoints.sts),
                },
            );
        }

        let mut route53 = BTreeMap::new();
        for (credentials, config) in &shared {
            let route53_config = aws_sdk_route53::config::Builder::from(config)
                .region(Region::from_static(ROUTE53_REGION))
                .interceptor(metrics.counter("route53"))
                .build();
            route53.insert(
                credentials.clone(),
                Route53 {
                    client: aws_sdk_route53::Client::from_conf(route53_config),
                    site: site("route53", ROUTE53_REGION, &endpoints.route53),
                },
            );
        }

        let endpoint_url = endpoints.summary();
        if let Some(url) = &endpoint_url {
            warn_if_proxied(url);
        }
        Ok(Clients {
            ec2,
            sts,
            route53,
            endpoint_url,
            metrics,
        })
    }

    /// Returns the EC2 client of `context`.
    ///
    /// # Errors
    /// `Other` when the provider was built without that context.
    pub fn ec2(&self, context: &Context) -> Result<&Ec2, ProviderError> {
        self.ec2
            .get(context)
            .ok_or_else(|| missing_context("ec2", context))
    }

    /// Returns an EC2 client for `region`: the one of `preferred` when it is in that region,
    /// else the first context of that region the provider was built with.
    pub fn ec2_in_region(&self, region: &str, preferred: &Context) -> Result<&Ec2, ProviderError> {
        if preferred.region == region
            && let Some(client) = self.ec2.get(preferred)
        {
            return Ok(client);
        }
        let first_in_region = self
            .ec2
            .iter()
            .find(|(context, _)| context.region == region);
        match first_in_region {
            Some((_, client)) => Ok(client),
            None => {
                let context = Context {
                    region: region.to_string(),
                    credentials: Credentials::default(),
                };
                Err(missing_context("ec2", &context))
            }
        }
    }

    pub fn sts(&self, context: &Context) -> Result<&Sts, ProviderError> {
        self.sts
            .get(context)
            .ok_or_else(|| missing_context("sts", context))
    }

    /// Returns the Route 53 client of the credentials of `context`.
    pub fn route53(&self, context: &Context) -> Result<&Route53, ProviderError> {
        self.route53
            .get(&context.credentials)
            .ok_or_else(|| missing_context("route53", context))
    }
}

/// Warns when a loopback endpoint would be reached through a proxy. With the latest behavior
/// version the SDK's HTTP client honours `HTTP_PROXY` and `HTTPS_PROXY`, and it bypasses
/// loopback addresses only when `NO_PROXY` names them.
fn warn_if_proxied(url: &str) {
    let loopback = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .find(|host| url.contains(*host));
    let Some(host) = loopback else { return };
    let proxy_set = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let bypass = ["NO_PROXY", "no_proxy"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .any(|rules| {
            rules
                .split(',')
                .any(|rule| rule.trim() == host.trim_matches(['[', ']']))
        });
    if proxy_set && !bypass {
        tracing::warn!(
            endpoint = url,
            "a proxy variable is set, so calls to the loopback endpoint {url} go through the \
             proxy: add {host} to NO_PROXY"
        );
    }
}

fn missing_context(service: &str, context: &Context) -> ProviderError {
    let credentials = match (&context.credentials.profile, &context.credentials.role_arn) {
        (None, None) => "the default credentials".to_string(),
        (Some(profile), None) => format!("profile `{profile}`"),
        (None, Some(role)) => format!("role `{role}`"),
        (Some(profile), Some(role)) => format!("role `{role}` over profile `{profile}`"),
    };
    ProviderError::new(
        ErrorKind::Other,
        service,
        "(client lookup)",
        &context.region,
        format!(
            "the provider has no {service} client for region {} with {credentials}: build it \
             with every context of the stack (Stack::contexts)",
            context.region
        ),
    )
}

/// Loads the shared config of one set of credentials, in `region`.
pub(crate) async fn load_shared_config(
    credentials: &Credentials,
    region: &str,
    options: &ProviderOptions,
) -> SdkConfig {
    let retry = RetryConfig::standard().with_max_attempts(options.max_attempts.max(1));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(options.timeouts.to_timeout_config())
        .retry_config(retry);
    if let Some(profile) = &credentials.profile {
        loader = loader.profile_name(profile);
    }
    // Set on the loader, the URL counts as programmatic configuration, which every service
    // config built from it (the STS client of AssumeRoleProvider included) prefers over the
    // service-specific variables such as AWS_ENDPOINT_URL_EC2.
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;

    let Some(role_arn) = &credentials.role_arn else {
        return config;
    };
    let provider = AssumeRoleProvider::builder(role_arn)
        .session_name(ROLE_SESSION_NAME)
        .configure(&config)
        .build()
        .await;
    config
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// Returns what is wrong with endpoint override `url`, or `None` for an http or https URL
/// with a host. The SDK rejects a malformed URL only when it builds the first request, with
/// that request's debug text as the message.
pub fn endpoint_url_problem(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            Some("it has no scheme such as http://".to_string())
        }
        Err(error) => Some(error.to_string()),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => Some(format!(
            "its scheme `{}` is not http or https",
            parsed.scheme()
        )),
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => {
            Some("it has no host".to_string())
        }
        Ok(_) => None,
    }
}

/// The endpoint URL each service's clients resolve to, `None` for the AWS default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEndpoints {
    ec2: Option<String>,
    route53: Option<String>,
    sts: Option<String>,
}

impl ServiceEndpoints {
    /// Resolves the endpoints of `configs` the way the SDK's service configs do.
    fn resolve<'a>(
        configs: impl Iterator<Item = &'a SdkConfig>,
    ) -> Result<ServiceEndpoints, ProviderError> {
        let mut found: Vec<(&'static str, Option<String>)> = Vec::new();
        for config in configs {
            for (service, service_id) in [("ec2", "EC2"), ("route53", "Route 53"), ("sts", "STS")] {
                let endpoint = resolved_endpoint(config, service_id);
                if !found.contains(&(service, endpoint.clone())) {
                    found.push((service, endpoint));
                }
            }
        }

        // A URL from a service-specific variable or profile key, such as AWS_ENDPOINT_URL_EC2,
        // reaches the SDK without the checks of the command line's override.
        for (service, url) in &found {
            let Some(url) = url else { continue };
            if let Some(problem) = endpoint_url_problem(url) {
                return Err(ProviderError::new(
                    ErrorKind::InvalidRequest,
                    "linkplan",
                    "(endpoint configuration)",
                    "",
                    format!(
                        "invalid endpoint URL `{url}` for {service}, from AWS_ENDPOINT_URL, a \
                         service-specific variable such as AWS_ENDPOINT_URL_EC2, or a profile's \
                         endpoint_url: {problem}; use an http or https URL with a host, such as \
                         http://127.0.0.1:5000"
                    ),
                ));
            }
        }

        let overridden = found.iter().filter(|(_, url)| url.is_some()).count();
        if overridden > 0 && overridden < found.len() {
            let listing: Vec<String> = found
                .iter()
                .map(|(service, url)| {
                    format!(
                        "{service} → {}",
                        url.as_deref().unwrap_or("the AWS default")
                    )
                })
                .collect();
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                "linkplan",
                "(endpoint configuration)",
                "",
                format!(
                    "an endpoint override reaches only some clients ({}): set AWS_ENDPOINT_URL, \
                     or --endpoint-url, so that every service uses the same endpoint",
                    listing.join(", ")
                ),
            ));
        }

        let pick = |service: &str| {
            let mut urls = found
                .iter()
                .filter(|(s, _)| *s == service)
                .map(|(_, url)| url);
            let first = urls.next().cloned().flatten();
            match urls.next() {
                Some(other) => Err(ProviderError::new(
                    ErrorKind::InvalidRequest,
                    "linkplan",
                    "(endpoint configuration)",
                    "",
                    format!(
                        "the profiles in use send {service} calls to different endpoints ({} and \
                         {}): use one endpoint per service",
                        first.as_deref().unwrap_or("the AWS default"),
                        other.as_deref().unwrap_or("the AWS default"),
                    ),
                )),
                None => Ok(first),
            }
        };
        Ok(ServiceEndpoints {
            ec2: pick("ec2")?,
            route53: pick("route53")?,
            sts: pick("sts")?,
        })
    }

    /// Returns the one override all services share, or each service's when they differ, as
    /// `ec2=URL route53=URL sts=URL`; `None` when every client uses the AWS default.
    fn summary(&self) -> Option<String> {
        let (ec2, route53, sts) = (
            self.ec2.as_ref()?,
            self.route53.as_ref()?,
            self.sts.as_ref()?,
        );
        if ec2 == route53 && route53 == sts {
            Some(ec2.clone())
        } else {
            Some(format!("ec2={ec2} route53={route53} sts={sts}"))
        }
    }
}

/// Returns the endpoint URL a client of service `service_id` built from `config` uses.
///
/// It repeats the rule of the generated `config::Builder::from(&SdkConfig)` in aws-sdk-ec2
/// 1.195, aws-sdk-route53 1.103, aws-sdk-sts 1.94 and aws-sdk-s3 1.116. A URL set in code wins. Otherwise the
/// service-specific variable or profile key (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_ROUTE_53`,
/// `AWS_ENDPOINT_URL_STS`) comes before the shared one (`AWS_ENDPOINT_URL`, `endpoint_url`).
pub(crate) fn resolved_endpoint(config: &SdkConfig, service_id: &str) -> Option<String> {
    if config.get_origin("endpoint_url").is_client_config() {
        return config.endpoint_url().map(str::to_string);
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("service id, variable and profile key are all set");
    config
        .service_config()
        .and_then(|loader| loader.load_config(key))
        .or_else(|| config.endpoint_url().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(ec2: Option<&str>, route53: Option<&str>, sts: Option<&str>) -> ServiceEndpoints {
        ServiceEndpoints {
            ec2: ec2.map(str::to_string),
            route53: route53.map(str::to_string),
            sts: sts.map(str::to_string),
        }
    }

    #[test]
    fn summary_of_shared_override_is_the_url() {
        let same = endpoints(
            Some("http://127.0.0.1:5000"),
            Some("http://127.0.0.1:5000"),
            None,
        );
        assert_eq!(same.summary(), None);
        let all = endpoints(
            Some("http://127.0.0.1:5000"),
            Some("http://127.0.0.1:5000"),
            Some("http://127.0.0.1:5000"),
        );
        assert_eq!(all.summary().as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn summary_of_split_override_names_each_service() {
        let split = endpoints(Some("http://a"), Some("http://b"), Some("http://a"));
        assert_eq!(
            split.summary().as_deref(),
            Some("ec2=http://a route53=http://b sts=http://a")
        );
    }

    #[test]
    fn programmatic_endpoint_is_resolved() {
        // The aws-config loader records a URL set in code with this origin.
        let mut builder = SdkConfig::builder().endpoint_url("http://127.0.0.1:5000");
        builder.insert_origin("endpoint_url", aws_types::origin::Origin::shared_config());
        let config = builder.build();
        assert_eq!(
            resolved_endpoint(&config, "EC2").as_deref(),
            Some("http://127.0.0.1:5000")
        );
    }

    #[test]
    fn shared_endpoint_applies_without_service_config() {
        let config = SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:5001")
            .build();
        let url = resolved_endpoint(&config, "Route 53");
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:5001"));
    }

    #[test]
    fn partial_override_is_rejected() {
        let with_url = SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:5000")
            .build();
        let without_url = SdkConfig::builder().build();
        let error = ServiceEndpoints::resolve([&with_url, &without_url].into_iter()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(
            error.message.contains("the AWS default"),
            "{}",
            error.message
        );
    }

    #[test]
    fn malformed_service_endpoint_is_rejected() {
        let config = SdkConfig::builder().endpoint_url("notaurl").build();
        let error = ServiceEndpoints::resolve(std::iter::once(&config)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(
            error
                .message
                .contains("invalid endpoint URL `notaurl` for ec2"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("it has no scheme such as http://"),
            "{}",
            error.message
        );
    }

    #[test]
    fn endpoint_url_problems_are_named() {
        assert_eq!(endpoint_url_problem("http://127.0.0.1:5000"), None);
        assert_eq!(endpoint_url_problem("https://[::1]:5000/"), None);
        assert_eq!(
            endpoint_url_problem("ftp://127.0.0.1").as_deref(),
            Some("its scheme `ftp` is not http or https")
        );
        assert_eq!(
            endpoint_url_problem("notaurl").as_deref(),
            Some("it has no scheme such as http://")
        );
    }

    #[test]
    fn default_timeouts_are_documented_values() {
        let timeouts = Timeouts::default();
        assert_eq!(timeouts.connect, Duration::from_secs(3));
        assert_eq!(timeouts.read, Duration::from_secs(20));
        assert_eq!(timeouts.attempt, Duration::from_secs(30));
        assert_eq!(timeouts.operation, Duration::from_secs(90));
    }
}

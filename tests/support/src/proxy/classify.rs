//! Classification of an AWS request by service, operation and whether it mutates.

use std::time::Instant;

use hyper::header::AUTHORIZATION;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method};

/// The service, operation and mutation flag of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    /// The SigV4 signing name, such as `ec2`, `route53` or `sts`, or `unknown`.
    pub service: String,
    /// The API operation, such as `CreateVpcEndpoint`. A request that matches no known
    /// operation gets `METHOD /path`.
    pub operation: String,
    pub mutating: bool,
    /// When the proxy read the request, before any delay.
    pub received: Instant,
}

/// The path prefix of every Route 53 API operation.
const ROUTE53_PREFIX: &str = "/2013-04-01/";

/// The `Version` parameter that the query-protocol SDKs send with every request.
const EC2_API_VERSION: &str = "2016-11-15";
const STS_API_VERSION: &str = "2011-06-15";

/// Verbs that start the name of every EC2 operation that changes state. The list covers
/// Create, Delete, Modify, Accept, Associate, Authorize, Revoke, Disassociate, Reject and
/// Replace, which linkplan uses, and the other verbs of EC2 operations that change state, such
/// as `AttachInternetGateway` or `RunInstances`. Describe, Get, List and Search do not change
/// state, so they are absent.
const EC2_MUTATING_VERBS: &[&str] = &[
    "Accept",
    "Allocate",
    "Assign",
    "Associate",
    "Attach",
    "Authorize",
    "Cancel",
    "Copy",
    "Create",
    "Delete",
    "Deregister",
    "Detach",
    "Disable",
    "Disassociate",
    "Enable",
    "Import",
    "Modify",
    "Reboot",
    "Register",
    "Reject",
    "Release",
    "Replace",
    "Reset",
    "Restore",
    "Revoke",
    "Run",
    "Start",
    "Stop",
    "Terminate",
    "Unassign",
];

/// Route 53 operations as (method, path after `/2013-04-01/`, name), where `*` matches one
/// path segment. The paths are those that aws-sdk-route53 1.103 builds in each operation's
/// `uri_base`. Query strings do not select operations.
const ROUTE53_OPERATIONS: &[(&str, &str, &str)] = &[
    ("GET", "accountlimit/*", "GetAccountLimit"),
    ("GET", "change/*", "GetChange"),
    ("GET", "checkeripranges", "GetCheckerIpRanges"),
    ("POST", "cidrcollection", "CreateCidrCollection"),
    ("GET", "cidrcollection", "ListCidrCollections"),
    ("GET", "cidrcollection/*", "ListCidrLocations"),
    ("POST", "cidrcollection/*", "ChangeCidrCollection"),
    ("DELETE", "cidrcollection/*", "DeleteCidrCollection"),
    ("GET", "cidrcollection/*/cidrblocks", "ListCidrBlocks"),
    ("POST", "delegationset", "CreateReusableDelegationSet"),
    ("GET", "delegationset", "ListReusableDelegationSets"),
    ("GET", "delegationset/*", "GetReusableDelegationSet"),
    ("DELETE", "delegationset/*", "DeleteReusableDelegationSet"),
    ("GET", "geolocation", "GetGeoLocation"),
    ("GET", "geolocations", "ListGeoLocations"),
    ("POST", "healthcheck", "CreateHealthCheck"),
    ("GET", "healthcheck", "ListHealthChecks"),
    ("GET", "healthcheck/*", "GetHealthCheck"),
    ("POST", "healthcheck/*", "UpdateHealthCheck"),
    ("DELETE", "healthcheck/*", "DeleteHealthCheck"),
    (
        "GET",
        "healthcheck/*/lastfailurereason",
        "GetHealthCheckLastFailureReason",
    ),
    ("GET", "healthcheck/*/status", "GetHealthCheckStatus"),
    ("GET", "healthcheckcount", "GetHealthCheckCount"),
    ("POST", "hostedzone", "CreateHostedZone"),
    ("GET", "hostedzone", "ListHostedZones"),
    ("GET", "hostedzone/*", "GetHostedZone"),
    ("POST", "hostedzone/*", "UpdateHostedZoneComment"),
    ("DELETE", "hostedzone/*", "DeleteHostedZone"),
    (
        "POST",
        "hostedzone/*/associatevpc",
        "AssociateVPCWithHostedZone",
    ),
    (
        "POST",
        "hostedzone/*/authorizevpcassociation",
        "CreateVPCAssociationAuthorization",
    ),
    (
        "GET",
        "hostedzone/*/authorizevpcassociation",
        "ListVPCAssociationAuthorizations",
    ),
    (
        "POST",
        "hostedzone/*/deauthorizevpcassociation",
        "DeleteVPCAssociationAuthorization",
    ),
    (
        "POST",
        "hostedzone/*/disable-dnssec",
        "DisableHostedZoneDNSSEC",
    ),
    (
        "POST",
        "hostedzone/*/disassociatevpc",
        "DisassociateVPCFromHostedZone",
    ),
    ("GET", "hostedzone/*/dnssec", "GetDNSSEC"),
    (
        "POST",
        "hostedzone/*/enable-dnssec",
        "EnableHostedZoneDNSSEC",
    ),
    ("POST", "hostedzone/*/features", "UpdateHostedZoneFeatures"),
    ("POST", "hostedzone/*/rrset", "ChangeResourceRecordSets"),
    ("GET", "hostedzone/*/rrset", "ListResourceRecordSets"),
    ("GET", "hostedzonecount", "GetHostedZoneCount"),
    ("GET", "hostedzonelimit/*/*", "GetHostedZoneLimit"),
    ("GET", "hostedzonesbyname", "ListHostedZonesByName"),
    ("GET", "hostedzonesbyvpc", "ListHostedZonesByVPC"),
    ("POST", "keysigningkey", "CreateKeySigningKey"),
    ("DELETE", "keysigningkey/*/*", "DeleteKeySigningKey"),
    (
        "POST",
        "keysigningkey/*/*/activate",
        "ActivateKeySigningKey",
    ),
    (
        "POST",
        "keysigningkey/*/*/deactivate",
        "DeactivateKeySigningKey",
    ),
    ("POST", "queryloggingconfig", "CreateQueryLoggingConfig"),
    ("GET", "queryloggingconfig", "ListQueryLoggingConfigs"),
    ("GET", "queryloggingconfig/*", "GetQueryLoggingConfig"),
    ("DELETE", "queryloggingconfig/*", "DeleteQueryLoggingConfig"),
    (
        "GET",
        "reusabledelegationsetlimit/*/*",
        "GetReusableDelegationSetLimit",
    ),
    ("POST", "tags/*", "ListTagsForResources"),
    ("GET", "tags/*/*", "ListTagsForResource"),
    ("POST", "tags/*/*", "ChangeTagsForResource"),
    ("GET", "testdnsanswer", "TestDNSAnswer"),
    ("GET", "trafficpolicies", "ListTrafficPolicies"),
    (
        "GET",
        "trafficpolicies/*/versions",
        "ListTrafficPolicyVersions",
    ),
    ("POST", "trafficpolicy", "CreateTrafficPolicy"),
    ("POST", "trafficpolicy/*", "CreateTrafficPolicyVersion"),
    ("GET", "trafficpolicy/*/*", "GetTrafficPolicy"),
    ("POST", "trafficpolicy/*/*", "UpdateTrafficPolicyComment"),
    ("DELETE", "trafficpolicy/*/*", "DeleteTrafficPolicy"),
    (
        "POST",
        "trafficpolicyinstance",
        "CreateTrafficPolicyInstance",
    ),
    ("GET", "trafficpolicyinstance/*", "GetTrafficPolicyInstance"),
    (
        "POST",
        "trafficpolicyinstance/*",
        "UpdateTrafficPolicyInstance",
    ),
    (
        "DELETE",
        "trafficpolicyinstance/*",
        "DeleteTrafficPolicyInstance",
    ),
    (
        "GET",
        "trafficpolicyinstancecount",
        "GetTrafficPolicyInstanceCount",
    ),
    (
        "GET",
        "trafficpolicyinstances",
        "ListTrafficPolicyInstances",
    ),
    (
        "GET",
        "trafficpolicyinstances/hostedzone",
        "ListTrafficPolicyInstancesByHostedZone",
    ),
    (
        "GET",
        "trafficpolicyinstances/trafficpolicy",
        "ListTrafficPolicyInstancesByPolicy",
    ),
];

/// The one Route 53 operation that uses POST without changing state: it sends a list of
/// resource ids in the body.
const ROUTE53_READ_ONLY_POSTS: &[&str] = &["ListTagsForResources"];

/// Classifies a request from its method, path, query string, headers and body.
pub(crate) fn classify(parts: &Parts, body: &[u8]) -> Call {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let action = form_value(body, "Action").or_else(|| form_value(query.as_bytes(), "Action"));
    let service = signing_service(&parts.headers)
        .or_else(|| guess_service(path, body))
        .unwrap_or_else(|| "unknown".to_owned());

    if service == "route53" || (action.is_none() && path.starts_with(ROUTE53_PREFIX)) {
        return classify_route53(service, &parts.method, path);
    }
    match action {
        Some(operation) => {
            let mutating = service != "sts" && is_mutating_query_action(&operation);
            Call {
                service,
                operation,
                mutating,
                received: Instant::now(),
            }
        }
        None => Call {
            service,
            operation: format!("{} {path}", parts.method),
            // A REST request of a service that the table does not cover mutates unless its
            // method is one that HTTP defines as safe.
            mutating: !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS),
            received: Instant::now(),
        },
    }
}

fn classify_route53(service: String, method: &Method, path: &str) -> Call {
    let operation = route53_operation(method, path);
    let mutating = match operation {
        Some(name) => *method != Method::GET && !ROUTE53_READ_ONLY_POSTS.contains(&name),
        None => matches!(*method, Method::POST | Method::DELETE),
    };
    Call {
        service,
        operation: operation.map_or_else(|| format!("{method} {path}"), str::to_owned),
        mutating,
        received: Instant::now(),
    }
}

/// Returns the Route 53 operation that `method` and `path` select, if any.
fn route53_operation(method: &Method, path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix(ROUTE53_PREFIX)?;
    let segments: Vec<&str> = rest.split('/').collect();
    ROUTE53_OPERATIONS
        .iter()
        .find(|(operation_method, pattern, _)| {
            *operation_method == method.as_str() && path_matches(pattern, &segments)
        })
        .map(|(_, _, name)| *name)
}

fn path_matches(pattern: &str, segments: &[&str]) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    pattern.len() == segments.len()
        && pattern
            .iter()
            .zip(segments)
            .all(|(expected, actual)| match *expected {
                "*" => !actual.is_empty(),
                literal => literal == *actual,
            })
}

fn is_mutating_query_action(action: &str) -> bool {
    EC2_MUTATING_VERBS.iter().any(|verb| {
        // A verb matches only as a whole word of the PascalCase name, so `Copy` would not
        // match an operation named `Copyright...`.
        action
            .strip_prefix(verb)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_uppercase))
    })
}

/// Returns the service of the SigV4 credential scope in the `Authorization` header:
/// `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn signing_service(headers: &HeaderMap) -> Option<String> {
    let authorization = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (_, credential) = authorization.split_once("Credential=")?;
    let scope = credential
        .split([',', ' '])
        .next()
        .unwrap_or(credential)
        .trim();
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [_, _, _, service, "aws4_request"] if !service.is_empty() => Some((*service).to_owned()),
        _ => None,
    }
}

/// Guesses the service of an unsigned request from the Route 53 path prefix or the API
/// version of a query-protocol body.
fn guess_service(path: &str, body: &[u8]) -> Option<String> {
    if path.starts_with(ROUTE53_PREFIX) {
        return Some("route53".to_owned());
    }
    match form_value(body, "Version")?.as_str() {
        EC2_API_VERSION => Some("ec2".to_owned()),
        STS_API_VERSION => Some("sts".to_owned()),
        _ => None,
    }
}

/// Returns the value of `key` in a form-encoded body or query string.
///
/// NOTE: values are not percent-decoded. That is enough for `Action` and `Version`, whose
/// values contain only letters, digits and hyphens.
fn form_value(form: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(form).ok()?;
    text.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key && !value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hyper::Request;

    use super::*;

    const EC2_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
        Credential=testing/20250101/us-east-1/ec2/aws4_request, \
        SignedHeaders=host;x-amz-date, Signature=0123";
    const ROUTE53_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
        Credential=testing/20250101/us-east-1/route53/aws4_request, \
        SignedHeaders=host;x-amz-date, Signature=0123";
    const STS_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
        Credential=testing/20250101/us-east-1/sts/aws4_request, \
        SignedHeaders=host;x-amz-date, Signature=0123";

    fn call(method: &str, uri: &str, authorization: Option<&str>, body: &str) -> Call {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(authorization) = authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        let (parts, ()) = builder.body(()).expect("a valid request").into_parts();
        classify(&parts, body.as_bytes())
    }

    #[test]
    fn ec2_create_is_mutating() {
        let body = "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId=vpc-1";
        let call = call("POST", "/", Some(EC2_AUTHORIZATION), body);
        assert_eq!(call.service, "ec2");
        assert_eq!(call.operation, "CreateVpcEndpoint");
        assert!(call.mutating);
    }

    #[test]
    fn ec2_mutating_verbs() {
        let cases = [
            ("AcceptVpcPeeringConnection", true),
            ("AssociateRouteTable", true),
            ("AttachInternetGateway", true),
            ("AuthorizeSecurityGroupIngress", true),
            ("DeleteVpcEndpoints", true),
            ("DisassociateRouteTable", true),
            ("ModifyVpcAttribute", true),
            ("RejectVpcPeeringConnection", true),
            ("ReplaceRoute", true),
            ("RevokeSecurityGroupIngress", true),
            ("RunInstances", true),
            ("DescribeVpcEndpoints", false),
            ("DescribeVpcAttribute", false),
            ("GetManagedPrefixListEntries", false),
            ("SearchTransitGatewayRoutes", false),
        ];
        for (action, expected) in cases {
            let body = format!("Action={action}&Version=2016-11-15");
            let call = call("POST", "/", Some(EC2_AUTHORIZATION), &body);
            assert_eq!(call.mutating, expected, "{action}");
        }
    }

    #[test]
    fn sts_never_mutates() {
        let body = "Action=AssumeRole&Version=2011-06-15";
        let call = call("POST", "/", Some(STS_AUTHORIZATION), body);
        assert_eq!(call.service, "sts");
        assert_eq!(call.operation, "AssumeRole");
        assert!(!call.mutating);
    }

    #[test]
    fn unsigned_query_uses_version() {
        let ec2 = call("POST", "/", None, "Action=DescribeVpcs&Version=2016-11-15");
        assert_eq!(ec2.service, "ec2");
        let sts = call(
            "POST",
            "/",
            None,
            "Action=GetCallerIdentity&Version=2011-06-15",
        );
        assert_eq!(sts.service, "sts");
    }

    #[test]
    fn route53_operations_by_path() {
        let cases = [
            ("POST", "/2013-04-01/hostedzone", "CreateHostedZone", true),
            ("GET", "/2013-04-01/hostedzone", "ListHostedZones", false),
            ("GET", "/2013-04-01/hostedzone/Z1", "GetHostedZone", false),
            (
                "DELETE",
                "/2013-04-01/hostedzone/Z1",
                "DeleteHostedZone",
                true,
            ),
            (
                "POST",
                "/2013-04-01/hostedzone/Z1/rrset",
                "ChangeResourceRecordSets",
                true,
            ),
            (
                "GET",
                "/2013-04-01/hostedzone/Z1/rrset?name=a.example.&type=A",
                "ListResourceRecordSets",
                false,
            ),
            ("GET", "/2013-04-01/change/C1", "GetChange", false),
            (
                "POST",
                "/2013-04-01/hostedzone/Z1/associatevpc",
                "AssociateVPCWithHostedZone",
                true,
            ),
            (
                "GET",
                "/2013-04-01/hostedzonesbyvpc?vpcid=vpc-1&vpcregion=us-east-1",
                "ListHostedZonesByVPC",
                false,
            ),
            (
                "POST",
                "/2013-04-01/tags/hostedzone",
                "ListTagsForResources",
                false,
            ),
            (
                "POST",
                "/2013-04-01/tags/hostedzone/Z1",
                "ChangeTagsForResource",
                true,
            ),
            (
                "GET",
                "/2013-04-01/tags/hostedzone/Z1",
                "ListTagsForResource",
                false,
            ),
            (
                "GET",
                "/2013-04-01/trafficpolicyinstances/hostedzone?id=Z1",
                "ListTrafficPolicyInstancesByHostedZone",
                false,
            ),
        ];
        for (method, uri, operation, mutating) in cases {
            let call = call(method, uri, Some(ROUTE53_AUTHORIZATION), "");
            assert_eq!(call.service, "route53", "{method} {uri}");
            assert_eq!(call.operation, operation, "{method} {uri}");
            assert_eq!(call.mutating, mutating, "{method} {uri}");
        }
    }

    #[test]
    fn route53_unknown_path_keeps_method() {
        let call = call(
            "POST",
            "/2013-04-01/nosuchthing",
            Some(ROUTE53_AUTHORIZATION),
            "",
        );
        assert_eq!(call.operation, "POST /2013-04-01/nosuchthing");
        assert!(call.mutating);
    }

    #[test]
    fn route53_table_has_unique_entries() {
        let names: BTreeSet<&str> = ROUTE53_OPERATIONS.iter().map(|entry| entry.2).collect();
        assert_eq!(names.len(), ROUTE53_OPERATIONS.len());
        let routes: BTreeSet<(&str, &str)> = ROUTE53_OPERATIONS
            .iter()
            .map(|(method, path, _)| (*method, *path))
            .collect();
        assert_eq!(routes.len(), ROUTE53_OPERATIONS.len());
        // aws-sdk-route53 1.103 has 71 operations.
        assert_eq!(ROUTE53_OPERATIONS.len(), 71);
    }

    #[test]
    fn unsigned_route53_path_is_route53() {
        let call = call("GET", "/2013-04-01/change/C1", None, "");
        assert_eq!(call.service, "route53");
        assert_eq!(call.operation, "GetChange");
    }
}

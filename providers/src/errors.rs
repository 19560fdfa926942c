//! Turning SDK errors into [`ProviderError`]s that keep AWS's evidence: service, operation,
//! region, error code, message, request id and the attempts made.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use linkplan_engine::provider::{ErrorKind, ProviderError};

use crate::sdk_config::Timeouts;

/// The destination of a call (service, region, endpoint), recorded in the errors it returns.
#[derive(Debug, Clone)]
pub struct CallSite {
    /// `ec2`, `route53` or `sts`.
    pub service: &'static str,
    pub region: String,
    /// The endpoint override the client uses, `None` for the AWS default.
    pub endpoint: Option<String>,
    pub timeouts: Timeouts,
}

/// Sends a fluent request with an attempt counter and converts its error, as
/// `send!(site, "OperationName", client.operation().field(value))`.
macro_rules! send {
    ($site:expr, $operation:literal, $request:expr) => {{
        let attempts = $crate::errors::AttemptCounter::default();
        let result = $request
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        result.map_err(|error| $site.error($operation, error, attempts.get()))
    }};
}
pub(crate) use send;

/// Like [`send!`], for EC2 calls that neither take an idempotency token nor fail harmlessly
/// when repeated: only throttled attempts, which AWS did not perform, are retried.
macro_rules! send_without_blind_retry {
    ($site:expr, $operation:literal, $error:ty, $request:expr) => {{
        let attempts = $crate::errors::AttemptCounter::default();
        let classifier = $crate::retry::ThrottlingOnly::<$error>::new();
        let config = aws_sdk_ec2::config::Builder::default().retry_classifier(classifier);
        let result = $request
            .customize()
            .config_override(config)
            .interceptor(attempts.clone())
            .send()
            .await;
        result.map_err(|error| $site.error($operation, error, attempts.get()))
    }};
}
pub(crate) use send_without_blind_retry;

/// Counts the attempts of one call, retries included: the orchestrator calls
/// `read_before_attempt` once per attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptCounter(Arc<AtomicU32>);

impl AttemptCounter {
    /// Returns the attempts counted, at least 1: a request that failed before its first attempt
    /// (while it was being built) still counts as one call.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed).max(1)
    }
}

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "linkplan attempt counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl CallSite {
    /// Converts the SDK error of `operation` after `attempts` attempts.
    pub fn error<E>(
        &self,
        operation: &str,
        error: SdkError<E, HttpResponse>,
        attempts: u32,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let request_id = error.request_id().map(str::to_string);
        let mut converted = match &error {
            SdkError::ServiceError(service_error) => {
                let inner = service_error.err();
                let status = service_error.raw().status().as_u16();
                match inner.code() {
                    Some(code) => {
                        let message = inner
                            .message()
                            .map(str::to_string)
                            .unwrap_or_else(|| error_chain(inner));
                        let request_id =
                            request_id.or_else(|| inner.meta().request_id().map(String::from));
                        ProviderError {
                            code: Some(code.to_string()),
                            message,
                            request_id,
                            ..self.base(kind_of(Some(code), Some(status)), operation)
                        }
                    }
                    // The body was not an AWS error document, such as moto's HTML error pages.
                    None => ProviderError {
                        message: not_an_aws_error(status, operation),
                        request_id,
                        ..self.base(kind_of(None, Some(status)), operation)
                    },
                }
            }
            SdkError::ResponseError(response_error) => {
                let status = response_error.raw().status().as_u16();
                ProviderError {
                    message: not_an_aws_error(status, operation),
                    request_id,
                    ..self.base(kind_of(None, Some(status)), operation)
                }
            }
            SdkError::TimeoutError(_) => {
                let detail = error_chain(&error);
                let (limit, name) = if detail.contains("operation attempt timeout") {
                    (self.timeouts.attempt, "attempt")
                } else {
                    (self.timeouts.operation, "operation")
                };
                let message = self.no_answer_message(limit.as_secs(), name, &detail);
                ProviderError {
                    message,
                    ..self.base(ErrorKind::Timeout, operation)
                }
            }
            SdkError::DispatchFailure(failure) => {
                let detail = error_chain(&error);
                let (kind, message) = if failure.is_timeout() {
                    let (limit, name) = if detail.contains("HTTP connect timeout") {
                        (self.timeouts.connect, "connect")
                    } else {
                        (self.timeouts.read, "read")
                    };
                    (
                        ErrorKind::Transient,
                        self.no_answer_message(limit.as_secs(), name, &detail),
                    )
                } else if failure.is_io() {
                    let message = format!("could not reach {}: {detail}", self.endpoint_name());
                    (ErrorKind::Transient, message)
                } else if has_source::<CredentialsError>(&error) {
                    // Identity resolution fails before the request is sent, as a dispatch
                    // failure of kind "other".
                    let message = format!(
                        "no usable credentials: {detail}; check the profile or role in the \
                         config, or the AWS_* variables of the environment"
                    );
                    (ErrorKind::Unauthorized, message)
                } else {
                    (
                        ErrorKind::Other,
                        format!("the request was not sent: {detail}"),
                    )
                };
                ProviderError {
                    message,
                    ..self.base(kind, operation)
                }
            }
            SdkError::ConstructionFailure(_) => {
                let message = format!("the request could not be built: {}", error_chain(&error));
                ProviderError {
                    message,
                    ..self.base(ErrorKind::Other, operation)
                }
            }
            _ => {
                let message = error_chain(&error);
                ProviderError {
                    message,
                    ..self.base(ErrorKind::Other, operation)
                }
            }
        };
        converted.attempts = attempts;
        tracing::debug!(
            service = self.service,
            operation,
            region = %self.region,
            code = converted.code.as_deref().unwrap_or(""),
            attempts,
            "AWS call failed: {}",
            converted.message
        );
        converted
    }

    /// Builds an error of this site that did not come from an AWS response.
    pub fn failure(
        &self,
        kind: ErrorKind,
        operation: &str,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError::new(kind, self.service, operation, &self.region, message)
    }

    fn base(&self, kind: ErrorKind, operation: &str) -> ProviderError {
        ProviderError::new(kind, self.service, operation, &self.region, String::new())
    }

    fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Some(url) => format!("the endpoint {url}"),
            None => format!("the AWS {} endpoint in {}", self.service, self.region),
        }
    }

    fn no_answer_message(&self, seconds: u64, timeout: &str, detail: &str) -> String {
        format!(
            "{} did not answer within {seconds} s (the {timeout} timeout): {detail}",
            self.endpoint_name()
        )
    }
}

/// Returns the messages of `error` and its sources, joined by `: `. A message already contained
/// in the one before it is left out, since SDK errors often repeat their source's text.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts
            .last()
            .is_some_and(|previous| previous.contains(&text))
        {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// Reports whether an error of type `T` is in the source chain of `error`.
fn has_source<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = next {
        if current.is::<T>() {
            return true;
        }
        next = current.source();
    }
    false
}

fn not_an_aws_error(status: u16, operation: &str) -> String {
    let mut message = format!(
        "the endpoint answered HTTP {status} with a body that is not an AWS error response"
    );
    if status == 404 {
        message.push_str(&format!(" (it may not implement {operation})"));
    }
    message
}

/// Returns the kind of an AWS error with `code` and HTTP `status`.
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(kind) = code.and_then(kind_of_code) {
        return kind;
    }
    match status {
        Some(status) if status >= 500 => ErrorKind::Transient,
        Some(401 | 403) => ErrorKind::Unauthorized,
        _ => ErrorKind::Other,
    }
}

/// Error codes returned when the caller is not allowed to make the call.
const UNAUTHORIZED_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "NotAuthorizedException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "OptInRequired",
    "Blocked",
];

/// Error codes of a request that conflicts with the object's current state.
const CONFLICT_CODES: &[&str] = &[
    "DependencyViolation",
    "HostedZoneNotEmpty",
    "ConflictingDomainExists",
    "HostedZoneAlreadyExists",
    "RouteAlreadyExists",
    "InvalidPermission.Duplicate",
    "InvalidGroup.Duplicate",
    "InvalidGroup.InUse",
    "VpcPeeringConnectionAlreadyExists",
    "InvalidStateTransition",
    "IncorrectState",
    "InvalidVpcPeeringConnectionState.DnsHostnamesDisabled",
    "InvalidVpcPeeringConnectionID.InvalidState",
    "ConcurrentModification",
    "LastVPCAssociation",
    "PublicZoneVPCAssociation",
    "ConflictingTypes",
];

/// Error codes of requests AWS rejected for their parameters. Codes starting with `Invalid`,
/// `Malformed` or `Missing` are treated the same way.
const INVALID_REQUEST_CODES: &[&str] = &[
    "IdempotentParameterMismatch",
    "InvalidServiceName",
    "InvalidChangeBatch",
    "InvalidInput",
    "DuplicateSubnetsInSameZone",
    "ValidationError",
    "UnsupportedOperation",
    "OperationNotPermitted",
    "InvalidVPCId",
];

/// Error codes the service returns when it failed on its side.
const SERVER_ERROR_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
];

/// Returns the kind of AWS error code `code`, or `None` when the code alone does not decide it.
pub fn kind_of_code(code: &str) -> Option<ErrorKind> {
    if UNAUTHORIZED_CODES.contains(&code) || code.starts_with("AccessDenied") {
        return Some(ErrorKind::Unauthorized);
    }
    // The SDK's retry classifier retries exactly these codes as throttling.
    if aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code) {
        return Some(ErrorKind::Throttled);
    }
    if code.ends_with("NotFound") || code.starts_with("NoSuch") {
        return Some(ErrorKind::NotFound);
    }
    if CONFLICT_CODES.contains(&code) {
        return Some(ErrorKind::Conflict);
    }
    if INVALID_REQUEST_CODES.contains(&code)
        || code.starts_with("Invalid")
        || code.starts_with("Malformed")
        || code.starts_with("Missing")
    {
        return Some(ErrorKind::InvalidRequest);
    }
    if SERVER_ERROR_CODES.contains(&code) {
        return Some(ErrorKind::Transient);
    }
    None
}

/// Reports whether `error` means the object is absent, so that a delete counts as done.
pub fn is_not_found(error: &ProviderError) -> bool {
    error.kind == ErrorKind::NotFound
}

/// Reports whether `error` has AWS error code `code`.
pub fn has_code(error: &ProviderError, code: &str) -> bool {
    error.code.as_deref() == Some(code)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn site() -> CallSite {
        CallSite {
            service: "ec2",
            region: "us-west-2".to_string(),
            endpoint: Some("http://127.0.0.1:5000".to_string()),
            timeouts: Timeouts::default(),
        }
    }

    fn response(status: u16) -> HttpResponse {
        let mut response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        response.headers_mut().insert("x-amzn-requestid", "req-123");
        response
    }

    #[test]
    fn service_error_keeps_evidence() {
        let meta = ErrorMetadata::builder()
            .code("InvalidVpcID.NotFound")
            .message("The vpc ID 'vpc-1' does not exist")
            .build();
        let error = SdkError::service_error(DescribeVpcsError::generic(meta), response(400));
        let converted = site().error("DescribeVpcs", error, 1);
        assert_eq!(converted.kind, ErrorKind::NotFound);
        assert_eq!(converted.service, "ec2");
        assert_eq!(converted.operation, "DescribeVpcs");
        assert_eq!(converted.region, "us-west-2");
        assert_eq!(converted.code.as_deref(), Some("InvalidVpcID.NotFound"));
        assert_eq!(converted.message, "The vpc ID 'vpc-1' does not exist");
        assert_eq!(converted.request_id.as_deref(), Some("req-123"));
        assert_eq!(converted.attempts, 1);
    }

    #[test]
    fn throttled_service_error_reports_attempts() {
        let meta = ErrorMetadata::builder()
            .code("RequestLimitExceeded")
            .message("slow down")
            .build();
        let error = SdkError::service_error(DescribeVpcsError::generic(meta), response(503));
        let converted = site().error("DescribeVpcs", error, 5);
        assert_eq!(converted.kind, ErrorKind::Throttled);
        assert_eq!(converted.attempts, 5);
        assert!(converted.to_string().contains("5 attempts"), "{converted}");
    }

    #[test]
    fn unparsable_404_says_operation_may_be_missing() {
        let error: SdkError<DescribeVpcsError, HttpResponse> =
            SdkError::response_error("not XML", response(404));
        let converted = site().error("CreateVPCAssociationAuthorization", error, 1);
        assert_eq!(converted.kind, ErrorKind::Other);
        assert!(
            converted.message.contains("HTTP 404"),
            "{}",
            converted.message
        );
        assert!(
            converted
                .message
                .contains("CreateVPCAssociationAuthorization")
        );
    }

    #[test]
    fn operation_timeout_names_endpoint_and_seconds() {
        let source = "operation timeout (all attempts including retries) occurred after 90s";
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::timeout_error(source);
        let converted = site().error("DescribeVpcEndpoints", error, 3);
        assert_eq!(converted.kind, ErrorKind::Timeout);
        assert!(
            converted
                .message
                .starts_with("the endpoint http://127.0.0.1:5000 did not answer within 90 s"),
            "{}",
            converted.message
        );
        assert_eq!(converted.attempts, 3);
    }

    #[test]
    fn attempt_timeout_uses_attempt_limit() {
        let source = "operation attempt timeout (single attempt) occurred after 30s";
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::timeout_error(source);
        let converted = site().error("DescribeVpcs", error, 1);
        assert!(
            converted
                .message
                .contains("within 30 s (the attempt timeout)"),
            "{}",
            converted.message
        );
    }

    #[test]
    fn read_timeout_is_transient_with_seconds() {
        let source = ConnectorError::timeout("HTTP read timeout occurred after 20s".into());
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::dispatch_failure(source);
        let converted = site().error("DescribeVpcs", error, 5);
        assert_eq!(converted.kind, ErrorKind::Transient);
        assert!(
            converted.message.contains("within 20 s (the read timeout)"),
            "{}",
            converted.message
        );
    }

    #[test]
    fn connect_timeout_uses_connect_limit() {
        let mut site = site();
        site.timeouts.connect = Duration::from_secs(7);
        let source = ConnectorError::timeout("HTTP connect timeout occurred after 7s".into());
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::dispatch_failure(source);
        let converted = site.error("DescribeVpcs", error, 1);
        assert!(
            converted
                .message
                .contains("within 7 s (the connect timeout)"),
            "{}",
            converted.message
        );
    }

    #[test]
    fn missing_credentials_are_unauthorized() {
        let missing = CredentialsError::not_loaded("no providers in chain provided credentials");
        let source = ConnectorError::other(Box::new(missing), None);
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::dispatch_failure(source);
        let converted = site().error("DescribeVpcs", error, 1);
        assert_eq!(converted.kind, ErrorKind::Unauthorized);
        assert!(
            converted.message.starts_with("no usable credentials"),
            "{}",
            converted.message
        );
    }

    #[test]
    fn refused_connection_is_transient() {
        let source = ConnectorError::io("connection refused".into());
        let error: SdkError<DescribeVpcsError, HttpResponse> = SdkError::dispatch_failure(source);
        let converted = site().error("DescribeVpcs", error, 5);
        assert_eq!(converted.kind, ErrorKind::Transient);
        assert!(
            converted
                .message
                .starts_with("could not reach the endpoint http://127.0.0.1:5000")
        );
    }

    #[test]
    fn not_found_codes_map_to_not_found() {
        let codes = [
            "InvalidVpcID.NotFound",
            "InvalidSubnetID.NotFound",
            "InvalidVpcEndpointId.NotFound",
            "InvalidGroup.NotFound",
            "InvalidRouteTableID.NotFound",
            "InvalidVpcPeeringConnectionID.NotFound",
            "InvalidRoute.NotFound",
            "InvalidPermission.NotFound",
            "NoSuchHostedZone",
            "NoSuchChange",
            "VPCAssociationNotFound",
            "VPCAssociationAuthorizationNotFound",
        ];
        for code in codes {
            assert_eq!(kind_of_code(code), Some(ErrorKind::NotFound), "{code}");
        }
    }

    #[test]
    fn conflict_codes_map_to_conflict() {
        let codes = [
            "DependencyViolation",
            "HostedZoneNotEmpty",
            "ConflictingDomainExists",
            "HostedZoneAlreadyExists",
            "RouteAlreadyExists",
            "InvalidPermission.Duplicate",
            "LastVPCAssociation",
        ];
        for code in codes {
            assert_eq!(kind_of_code(code), Some(ErrorKind::Conflict), "{code}");
        }
    }

    #[test]
    fn throttling_codes_map_to_throttled() {
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "PriorRequestNotComplete",
        ] {
            assert_eq!(kind_of_code(code), Some(ErrorKind::Throttled), "{code}");
        }
    }

    #[test]
    fn invalid_request_codes_map_to_invalid_request() {
        let codes = [
            "InvalidParameter",
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "InvalidServiceName",
            "IdempotentParameterMismatch",
            "InvalidChangeBatch",
            "MissingParameter",
            "InvalidVpcEndpointId.Malformed",
        ];
        for code in codes {
            assert_eq!(
                kind_of_code(code),
                Some(ErrorKind::InvalidRequest),
                "{code}"
            );
        }
    }

    #[test]
    fn unauthorized_codes_map_to_unauthorized() {
        let codes = [
            "UnauthorizedOperation",
            "AccessDenied",
            "AccessDeniedException",
            "InvalidClientTokenId",
            "AuthFailure",
            "NotAuthorizedException",
        ];
        for code in codes {
            assert_eq!(kind_of_code(code), Some(ErrorKind::Unauthorized), "{code}");
        }
    }

    #[test]
    fn status_decides_when_code_is_unknown() {
        assert_eq!(kind_of(None, Some(500)), ErrorKind::Transient);
        assert_eq!(kind_of(None, Some(503)), ErrorKind::Transient);
        assert_eq!(
            kind_of(Some("SomethingNew"), Some(502)),
            ErrorKind::Transient
        );
        assert_eq!(kind_of(None, Some(403)), ErrorKind::Unauthorized);
        assert_eq!(kind_of(None, Some(404)), ErrorKind::Other);
        assert_eq!(
            kind_of(Some("InternalError"), Some(500)),
            ErrorKind::Transient
        );
    }

    #[test]
    fn known_code_wins_over_status() {
        assert_eq!(
            kind_of(Some("RequestLimitExceeded"), Some(503)),
            ErrorKind::Throttled
        );
        assert_eq!(kind_of(Some("Throttling"), Some(400)), ErrorKind::Throttled);
    }
}

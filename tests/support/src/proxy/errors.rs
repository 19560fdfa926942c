//! AWS error responses in the XML shape of each service, so that the SDK parses their codes.

use std::fmt::Write as _;

/// An AWS error that the proxy returns in place of the service's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedError {
    /// The HTTP status code, such as 400 or 503.
    pub status: u16,
    /// The AWS error code, such as `PriorRequestNotComplete`.
    pub code: String,
    pub message: String,
}

impl InjectedError {
    /// Builds an error with an HTTP status, an AWS error code and a message.
    ///
    /// # Panics
    ///
    /// Panics when `status` is not an HTTP error status (400 to 599).
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        assert!(
            (400..600).contains(&status),
            "an injected error needs an HTTP status from 400 to 599, not {status}"
        );
        InjectedError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Returns the error that `service` sends when it throttles a request.
    ///
    /// EC2 returns 503 `RequestLimitExceeded` "Request limit exceeded.", the status, code and
    /// text that EC2 error reports of the AWS SDK for Java and jclouds show. Route 53 returns
    /// 400 `Throttling` "Rate exceeded", as the AWS knowledge center article "avoid throttling
    /// errors in Route 53" states. STS returns the same, as STS responses quoted in public bug
    /// reports show. Other services get 400 `Throttling` too.
    pub fn throttling(service: &str) -> Self {
        match service {
            "ec2" => InjectedError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
            _ => InjectedError::new(400, "Throttling", "Rate exceeded"),
        }
    }
}

/// Renders `error` as the XML body that `service` sends, with `request_id` in it.
///
/// The shapes match the error parsers of the AWS SDK for Rust: `ec2_query_errors.rs` of
/// aws-sdk-ec2 1.195 reads `Response/Errors/Error/{Code,Message}`, and
/// `rest_xml_wrapped_errors.rs` of aws-sdk-route53 1.103 and aws-sdk-sts 1.94 reads
/// `ErrorResponse/Error/{Code,Message}`.
pub(crate) fn error_body(service: &str, error: &InjectedError, request_id: &str) -> String {
    let code = escape(&error.code);
    let message = escape(&error.message);
    let request_id = escape(request_id);
    // AWS marks errors that the caller caused as Sender and its own failures as Receiver.
    let fault_type = if error.status < 500 {
        "Sender"
    } else {
        "Receiver"
    };
    let mut body = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    body.push('\n');
    // Writing to a String cannot fail.
    let _ = match service {
        "ec2" => write!(
            body,
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>\
             </Errors><RequestID>{request_id}</RequestID></Response>"
        ),
        "route53" => write!(
            body,
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error>\
             <Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>"
        ),
        "sts" => write!(
            body,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>"
        ),
        // The other query-protocol services use the STS shape without its namespace.
        _ => write!(
            body,
            "<ErrorResponse><Error><Type>{fault_type}</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>{request_id}</RequestId>\
             </ErrorResponse>"
        ),
    };
    body
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_body_shape() {
        let error = InjectedError::new(400, "InvalidParameterValue", "bad <value>");
        let body = error_body("ec2", &error, "req-1");
        assert!(body.contains(
            "<Response><Errors><Error><Code>InvalidParameterValue</Code>\
             <Message>bad &lt;value&gt;</Message></Error></Errors>\
             <RequestID>req-1</RequestID></Response>"
        ));
    }

    #[test]
    fn route53_body_shape() {
        let error = InjectedError::new(400, "PriorRequestNotComplete", "busy");
        let body = error_body("route53", &error, "req-2");
        assert!(body.contains(
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error>\
             <Type>Sender</Type><Code>PriorRequestNotComplete</Code><Message>busy</Message>\
             </Error><RequestId>req-2</RequestId></ErrorResponse>"
        ));
    }

    #[test]
    fn sts_body_marks_server_errors() {
        let error = InjectedError::new(500, "InternalFailure", "oops");
        let body = error_body("sts", &error, "req-3");
        assert!(body.contains(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Receiver</Type>"
        ));
        assert!(body.contains("<Code>InternalFailure</Code>"));
    }

    #[test]
    fn throttling_by_service() {
        assert_eq!(InjectedError::throttling("ec2").status, 503);
        assert_eq!(
            InjectedError::throttling("ec2").code,
            "RequestLimitExceeded"
        );
        assert_eq!(InjectedError::throttling("route53").status, 400);
        assert_eq!(InjectedError::throttling("route53").code, "Throttling");
        assert_eq!(InjectedError::throttling("sts").code, "Throttling");
    }

    #[test]
    #[should_panic(expected = "from 400 to 599")]
    fn success_status_is_rejected() {
        let _ = InjectedError::new(200, "Ok", "not an error");
    }
}

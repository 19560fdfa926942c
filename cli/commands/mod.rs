//! One module per command.

pub mod apply;
pub mod completions;
pub mod iam_policy;
pub mod init;
pub mod plan;
pub mod rollback;
pub mod show;
pub mod unlock;
pub mod validate;
pub mod verify;

use std::sync::Arc;

use std::time::Duration;

use linkplan_aws::{AwsProvider, ProviderOptions, Timeouts};
use linkplan_engine::provider::{CallCounts, Provider, ProviderError};
use linkplan_engine::stack::Stack;

use crate::args::GlobalArgs;
use crate::error::CliError;

/// Builds the AWS provider for every context of `stack`.
pub async fn provider(stack: &Stack, global: &GlobalArgs) -> Result<Arc<dyn Provider>, CliError> {
    let options = provider_options(global);
    let provider = AwsProvider::new(&stack.contexts(), &options)
        .await
        .map_err(aws_error)?;
    Ok(Arc::new(provider))
}

/// Checks that `url`, the endpoint override read from `source` (`--endpoint-url` or
/// `AWS_ENDPOINT_URL`), is an http or https URL with a host. The AWS SDK rejects a malformed
/// one only when it builds the first request, with that request's debug text as the message.
pub fn check_endpoint_url(url: &str, source: &str) -> Result<(), CliError> {
    let Some(problem) = linkplan_aws::endpoint_url_problem(url) else {
        return Ok(());
    };
    let unset = if source == "AWS_ENDPOINT_URL" {
        "unset AWS_ENDPOINT_URL"
    } else {
        "leave out --endpoint-url"
    };
    Err(CliError::new(format!(
        "invalid endpoint URL `{url}` in {source}: {problem}"
    ))
    .help(format!(
        "use an http or https URL with a host, such as http://127.0.0.1:5000, or {unset} \
                 to call the AWS endpoints"
    )))
}

/// Returns the endpoint, timeouts and retries of the global flags.
pub fn provider_options(global: &GlobalArgs) -> ProviderOptions {
    let defaults = Timeouts::default();
    let connect = Duration::from_secs(global.connect_timeout);
    let read = Duration::from_secs(global.read_timeout);
    // One attempt may take longer than the read timeout (a slow body), never less.
    let attempt = defaults.attempt.max(connect + read);
    let timeouts = Timeouts {
        connect,
        read,
        attempt,
        operation: defaults.operation.max(attempt),
    };
    ProviderOptions {
        endpoint_url: global.endpoint_url.clone(),
        timeouts,
        max_attempts: global.max_attempts,
    }
}

/// Prints the AWS calls `provider` made on stderr, by service and operation, then by step
/// when steps made calls. Only with `-v` or more.
pub fn print_call_counts(provider: &dyn Provider, global: &GlobalArgs) {
    if global.verbose > 0 {
        eprint!("{}", call_counts_text(&provider.call_counts()));
    }
}

/// Formats `counts` as tables, retries counted apart from calls.
pub fn call_counts_text(counts: &CallCounts) -> String {
    let total = counts.total();
    let mut text = format!(
        "\nAWS calls: {} (retries not included: {})\n",
        total.calls, total.retries
    );
    text.push_str(&format!(
        "  {:<8} {:<38} {:>6} {:>8}\n",
        "SERVICE", "OPERATION", "CALLS", "RETRIES"
    ));
    for ((service, operation), count) in &counts.operations {
        text.push_str(&format!(
            "  {service:<8} {operation:<38} {:>6} {:>8}\n",
            count.calls, count.retries
        ));
    }
    if !counts.steps.is_empty() {
        text.push_str("AWS calls by step:\n");
        text.push_str(&format!(
            "  {:<47} {:>6} {:>8}\n",
            "STEP", "CALLS", "RETRIES"
        ));
        for (step, count) in &counts.steps {
            text.push_str(&format!(
                "  {step:<47} {:>6} {:>8}\n",
                count.calls, count.retries
            ));
        }
    }
    text
}

/// Writes `bytes` to stdout. A reader that closed the pipe early, as `| head` does, is not an
/// error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;

    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::new(format!("failed to write to stdout: {e}"))
                .help("check the file or pipe that stdout goes to"))
        }
        _ => Ok(()),
    }
}

/// Returns the advice for AWS error `code` when docs/troubleshooting.md gives more for it than
/// for its kind.
fn help_for_code(code: &str) -> Option<&'static str> {
    let help = match code {
        "InvalidServiceName" => {
            "check the service names in [services], and ask Trend Micro to allowlist the account for them (docs/troubleshooting.md#invalidservicename)"
        }
        "ConflictingDomainExists" => {
            "another private zone of that name is on the VPC; adopt it with `adopt` under [zone], or remove its association (docs/troubleshooting.md#conflictingdomainexists)"
        }
        "HostedZoneNotEmpty" | "DependencyViolation" => {
            "something outside the stack still uses the object; remove it, then run the command again (docs/troubleshooting.md#hostedzonenotempty-dependencyviolation)"
        }
        "IdempotentParameterMismatch" => {
            "run `linkplan plan` again, which gives every step a new token (docs/troubleshooting.md#idempotentparametermismatch)"
        }
        _ => return None,
    };
    Some(help)
}

/// Turns a provider error into a command error with advice for its code or kind.
pub fn aws_error(error: ProviderError) -> CliError {
    use linkplan_engine::provider::ErrorKind;
    if let Some(help) = error.code.as_deref().and_then(help_for_code) {
        return CliError::new(error.to_string()).help(help);
    }
    let help = match error.kind {
        ErrorKind::Unauthorized => {
            "check the credentials and that their IAM policy allows the call (`linkplan iam-policy` lists what linkplan calls)"
        }
        ErrorKind::Timeout | ErrorKind::Transient => {
            "check the network path to the AWS endpoint, then run the command again"
        }
        ErrorKind::Throttled => {
            "the account's API rate limit was hit; run the command again in a minute"
        }
        _ => "see the AWS error above; docs/troubleshooting.md lists common codes",
    };
    CliError::new(error.to_string()).help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_with_scheme_and_host_pass() {
        for url in [
            "http://127.0.0.1:5000",
            "https://ec2.us-east-1.amazonaws.com",
            "http://localhost:4566/",
            "http://[::1]:5000",
        ] {
            assert!(check_endpoint_url(url, "--endpoint-url").is_ok(), "{url}");
        }
    }

    #[test]
    fn malformed_endpoint_urls_are_named() {
        let cases = [
            ("notaurl", "it has no scheme such as http://"),
            ("127.0.0.1:5000", "it has no scheme such as http://"),
            (
                "localhost:5000",
                "its scheme `localhost` is not http or https",
            ),
            ("ftp://127.0.0.1", "its scheme `ftp` is not http or https"),
            ("http://", "empty host"),
            ("http://127.0.0.1:99999", "invalid port number"),
        ];
        for (url, problem) in cases {
            let error = check_endpoint_url(url, "--endpoint-url").unwrap_err();
            assert_eq!(
                error.message,
                format!("invalid endpoint URL `{url}` in --endpoint-url: {problem}")
            );
            let help = error.help.unwrap_or_default();
            assert!(help.contains("such as http://127.0.0.1:5000"), "{help}");
            assert!(help.contains("leave out --endpoint-url"), "{help}");
        }
    }

    #[test]
    fn endpoint_url_from_environment_is_named() {
        let error = check_endpoint_url("notaurl", "AWS_ENDPOINT_URL").unwrap_err();
        assert_eq!(
            error.message,
            "invalid endpoint URL `notaurl` in AWS_ENDPOINT_URL: it has no scheme such as http://"
        );
        let help = error.help.unwrap_or_default();
        assert!(help.contains("unset AWS_ENDPOINT_URL"), "{help}");
    }
}

//! One module per command.

pub mod apply;
pub mod plan;
pub mod rollback;
pub mod show;
pub mod unlock;
pub mod validate;

use std::sync::Arc;

use std::time::Duration;

use linkplan_aws::{AwsProvider, ProviderOptions, Timeouts};
use linkplan_engine::provider::{Provider, ProviderError};
use linkplan_engine::stack::Stack;

use crate::args::GlobalArgs;
use crate::error::CliError;

/// Builds the AWS provider for every context of `stack`.
pub async fn provider(stack: &Stack, global: &GlobalArgs) -> Result<Arc<dyn Provider>, CliError> {
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
    let options = ProviderOptions {
        endpoint_url: global.endpoint_url.clone(),
        timeouts,
        max_attempts: global.max_attempts,
    };
    let provider = AwsProvider::new(&stack.contexts(), &options)
        .await
        .map_err(aws_error)?;
    Ok(Arc::new(provider))
}

/// Turns a provider error into a command error with advice for its kind.
pub fn aws_error(error: ProviderError) -> CliError {
    use linkplan_engine::provider::ErrorKind;
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

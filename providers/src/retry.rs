//! Retry classification beyond the SDK's own.
//!
//! The SDK's classifiers (aws-runtime 1.5.16 and aws-smithy-runtime 1.9.4) already retry every
//! code linkplan meets when throttled: `AwsErrorCodeClassifier` lists `Throttling`,
//! `RequestLimitExceeded` and `PriorRequestNotComplete` in `THROTTLING_ERRORS`, and
//! `TransientErrorClassifier` and `HttpStatusCodeClassifier` retry timeouts, connection errors
//! and HTTP 500, 502, 503 and 504. So no classifier is added for those.
//!
//! What the SDK does not know is which calls are safe to repeat. It retries a timed-out
//! `CreateSecurityGroup` as readily as a `DescribeVpcs`, although the first attempt may have
//! created the group. [`ThrottlingOnly`] narrows the retries of such calls to throttling, which
//! AWS rejects before doing anything; the caller then re-reads the state before trying again.

use std::error::Error as StdError;
use std::marker::PhantomData;

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A retry classifier that allows retries of throttled attempts only, for operation error `E`.
#[derive(Debug)]
pub struct ThrottlingOnly<E> {
    _error: PhantomData<fn() -> E>,
}

impl<E> ThrottlingOnly<E> {
    pub fn new() -> Self {
        ThrottlingOnly {
            _error: PhantomData,
        }
    }
}

impl<E> ClassifyRetry for ThrottlingOnly<E>
where
    E: StdError + ProvideErrorMetadata + Send + Sync + 'static,
{
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let error = match ctx.output_or_error() {
            Some(Err(error)) => error,
            Some(Ok(_)) | None => return RetryAction::NoActionIndicated,
        };
        let code = OrchestratorError::as_operation_error(error)
            .and_then(|error| error.downcast_ref::<E>())
            .and_then(|error| error.code());
        match code {
            Some(code) if aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code) => {
                RetryAction::throttling_error()
            }
            _ => RetryAction::RetryForbidden,
        }
    }

    fn name(&self) -> &'static str {
        "linkplan throttling only"
    }

    /// Runs after every SDK classifier, so that its decision is final.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

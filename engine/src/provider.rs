//! The provider trait: how the engine reads the live state and changes it, without knowing the
//! SDK behind it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::observed::Observed;
use crate::stack::{Context, Stack};
use crate::step::Step;
use crate::verify::NetworkInterfaceState;

/// Outputs of a finished step, such as `id` and `dns_name`, for the steps that refer to it.
pub type Outputs = BTreeMap<String, String>;

/// Reports what a step is waiting for, so a view can show progress, and paces its waits.
#[async_trait]
pub trait StepProgress: Send + Sync {
    /// Called when the step starts waiting or its wait changes, e.g. "endpoint state pending".
    fn waiting(&self, status: &str);

    /// Sleeps for `duration` between two probes of a wait. The executor lets another step run
    /// in the step's slot meanwhile, so a provider's waits sleep through this method.
    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A progress sink that ignores every report.
pub struct NoProgress;

impl StepProgress for NoProgress {
    fn waiting(&self, _status: &str) {}
}

/// One call into the provider to perform or undo a step.
pub struct StepRequest<'a> {
    /// The step with every reference resolved to a known value.
    pub step: &'a Step,
    pub stack: &'a str,
    /// Idempotency token derived from the plan and the step: at most 64 ASCII characters, the
    /// same on every retry of the step, different for every other step.
    pub token: &'a str,
    /// Whether an earlier run of the plan started this step since its last full rollback, so
    /// that the step's object may exist already. Without one, nothing can carry this step's
    /// tags or token yet, and a create need not look for an earlier attempt's object.
    pub earlier_attempt: bool,
    /// How long the step may wait for its object to become usable (or gone, on undo).
    pub wait_timeout: Duration,
    pub progress: &'a dyn StepProgress,
}

/// Reads and changes the objects of a stack. Implemented over the AWS SDK, and in memory for
/// the engine's tests.
///
/// # Contract
/// - `read` reads everything the stack's config names or the stack owns, absent objects
///   included, and normalizes values as [`Observed`] documents. It changes nothing.
/// - `apply` performs one step and returns only once its object is usable: an endpoint
///   `available`, a peering `active`, a Route 53 change `INSYNC`. It fails rather than wait
///   past `wait_timeout`. Created objects carry the tags of [`crate::resource::tags_for`].
/// - `apply` is safe to repeat with the same request and token. A repeat has `earlier_attempt`
///   set. It finds what an earlier, interrupted attempt made (by tags, caller reference or
///   content) instead of making a twin, and finishes what that attempt left undone. Resume
///   relies on this. A first attempt may skip that lookup, but must still not
///   make a twin when the SDK retries a call whose answer was lost.
/// - `undo` reverses a step `apply` completed, given the outputs it returned, and waits until
///   the reversal has taken effect (an endpoint `deleted` before its group is deleted). Undoing
///   an already undone step succeeds.
/// - `find_created` looks for the object a create step may have made before linkplan lost
///   track of it (a crash between the call and the journal), by tags and idempotency token.
#[async_trait]
pub trait Provider: Send + Sync {
    async fn read(&self, stack: &Stack) -> Result<Observed, ProviderError>;

    async fn apply(&self, request: &StepRequest<'_>) -> Result<Outputs, ProviderError>;

    async fn undo(&self, request: &StepRequest<'_>, outputs: &Outputs)
    -> Result<(), ProviderError>;

    async fn find_created(
        &self,
        request: &StepRequest<'_>,
    ) -> Result<Option<Outputs>, ProviderError>;

    /// Reads the network interfaces `ids` in the region of `context`, for `verify`. Interfaces
    /// EC2 does not list are left out of the result. It changes nothing.
    async fn read_network_interfaces(
        &self,
        context: &Context,
        ids: &[String],
    ) -> Result<Vec<NetworkInterfaceState>, ProviderError>;

    /// Returns the API endpoint override in use, if any, recorded in plan files.
    fn endpoint_url(&self) -> Option<String>;

    /// Returns the API calls made since the provider was built. The default, for providers
    /// that make no remote calls, is empty.
    fn call_counts(&self) -> CallCounts {
        CallCounts::default()
    }
}

/// The calls of one operation, or of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCount {
    /// Calls made, each counted once however many attempts it took.
    pub calls: u64,
    /// Attempts after the first of a call, not included in `calls`.
    pub retries: u64,
}

/// The API calls a provider made, by service and operation, and by the step that made them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Keyed by service (`ec2`, `route53`, `sts`) and operation (`DescribeVpcs`).
    pub operations: BTreeMap<(String, String), CallCount>,
    /// Keyed by step address. Calls made outside a step, such as the reads of a plan, are
    /// only in `operations`.
    pub steps: BTreeMap<String, CallCount>,
}

impl CallCounts {
    /// Returns the sum over every operation.
    pub fn total(&self) -> CallCount {
        let mut total = CallCount::default();
        for count in self.operations.values() {
            total.calls += count.calls;
            total.retries += count.retries;
        }
        total
    }
}

/// What went wrong with a provider call, as far as retrying and reporting need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The request conflicts with the object's current state (it exists, is in use, ...).
    Conflict,
    /// AWS rejected the request's parameters.
    InvalidRequest,
    /// Credentials are missing or not allowed to make the call.
    Unauthorized,
    /// Throttled, and retries ran out.
    Throttled,
    /// A network failure or a 5xx, and retries ran out.
    Transient,
    /// The call or a wait ran past its deadline.
    Timeout,
    /// The object reached a state it cannot leave, such as a `failed` peering.
    Terminal,
    Other,
}

/// An error from a provider call, keeping the evidence AWS returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// `ec2`, `route53` or `sts`.
    pub service: String,
    /// The API operation, such as `CreateVpcEndpoint`.
    pub operation: String,
    pub region: String,
    /// The AWS error code, such as `InvalidParameter`.
    #[serde(default)]
    pub code: Option<String>,
    pub message: String,
    #[serde(default)]
    pub request_id: Option<String>,
    /// Attempts made, retries included.
    pub attempts: u32,
}

impl ProviderError {
    /// Builds an error that did not come from an AWS response, such as a wait that timed out.
    pub fn new(
        kind: ErrorKind,
        service: &str,
        operation: &str,
        region: &str,
        message: impl Into<String>,
    ) -> Self {
        ProviderError {
            kind,
            service: service.to_string(),
            operation: operation.to_string(),
            region: region.to_string(),
            code: None,
            message: message.into(),
            request_id: None,
            attempts: 1,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} in {} failed: ",
            self.service, self.operation, self.region
        )?;
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{}", self.message)?;
        let mut evidence = Vec::new();
        if let Some(id) = &self.request_id {
            evidence.push(format!("request id {id}"));
        }
        if self.attempts > 1 {
            evidence.push(format!("{} attempts", self.attempts));
        }
        if !evidence.is_empty() {
            write!(f, " ({})", evidence.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

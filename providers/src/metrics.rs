//! Counting the AWS calls the provider makes, by service and operation, and by plan step.
//!
//! Every SDK client gets a [`CallCounter`] interceptor over one shared [`CallMetrics`]. The
//! SDK's orchestrator calls `read_before_serialization` once per call and `read_before_attempt`
//! once per attempt, so retries are counted apart from calls. `read_before_execution` would
//! be too early: for a client's interceptors it runs before the operation's name is in the
//! config bag. Calls that the SDK makes on its
//! own, such as the STS call of an `AssumeRole` credentials provider, go through clients
//! linkplan does not build and are not counted.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use linkplan_engine::provider::{CallCount, CallCounts};

tokio::task_local! {
    /// The address of the step whose calls the current task makes.
    static STEP: String;
}

/// Runs `future` with its calls counted for step `address` as well.
pub async fn in_step<F: Future>(address: String, future: F) -> F::Output {
    STEP.scope(address, future).await
}

/// The call counts of every client of one provider.
#[derive(Debug, Clone, Default)]
pub struct CallMetrics(Arc<Mutex<CallCounts>>);

impl CallMetrics {
    /// Returns an interceptor that counts the calls of a `service` client into these metrics.
    pub fn counter(&self, service: &'static str) -> CallCounter {
        CallCounter {
            service,
            metrics: self.clone(),
        }
    }

    /// Returns the counts so far.
    pub fn snapshot(&self) -> CallCounts {
        self.lock().clone()
    }

    fn record(&self, service: &str, operation: &str, count: CallCount) {
        let step = STEP.try_with(Clone::clone).ok();
        let mut counts = self.lock();
        let key = (service.to_string(), operation.to_string());
        add(counts.operations.entry(key).or_default(), count);
        if let Some(step) = step {
            add(counts.steps.entry(step).or_default(), count);
        }
    }

    /// Locks the counts, and uses them even after a panic poisoned the lock: each update is
    /// one addition, so a panic cannot leave them half changed.
    fn lock(&self) -> MutexGuard<'_, CallCounts> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn add(total: &mut CallCount, count: CallCount) {
    total.calls += count.calls;
    total.retries += count.retries;
}

/// Marks, in a call's config bag, that its first attempt has started.
#[derive(Debug, Clone)]
struct Attempted;

impl Storable for Attempted {
    type Storer = StoreReplace<Self>;
}

/// The interceptor that counts one client's calls and retries.
#[derive(Debug, Clone)]
pub struct CallCounter {
    service: &'static str,
    metrics: CallMetrics,
}

impl CallCounter {
    fn operation(cfg: &ConfigBag) -> String {
        cfg.load::<Metadata>()
            .map_or_else(|| "(unknown)".to_string(), |m| m.name().to_string())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "linkplan call counter"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let count = CallCount {
            calls: 1,
            retries: 0,
        };
        self.metrics
            .record(self.service, &Self::operation(cfg), count);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Attempted>().is_none() {
            cfg.interceptor_state().store_put(Attempted);
            return Ok(());
        }
        let count = CallCount {
            calls: 0,
            retries: 1,
        };
        self.metrics
            .record(self.service, &Self::operation(cfg), count);
        Ok(())
    }
}

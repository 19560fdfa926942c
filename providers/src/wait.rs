//! Polling an object until it reaches a wanted state, with backoff and a deadline.
//!
//! The SDK has no waiter for interface endpoints and none for peering acceptance across
//! regions, so every wait of the provider goes through [`poll`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use linkplan_engine::provider::{ProviderError, StepProgress};

/// Delay before the second probe; each later delay doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The outcome of one probe.
pub enum Probe<T> {
    /// The object reached the wanted state.
    Ready(T),
    /// Still in progress, with a status for the progress view, such as
    /// `endpoint vpce-0abc pendingAcceptance`.
    Pending(String),
}

/// The reason a wait ended without the wanted state.
#[derive(Debug)]
pub enum WaitError {
    /// A probe failed, or saw a state the object cannot leave.
    Failed(ProviderError),
    /// The budget ran out; `status` is the last pending status seen.
    TimedOut { status: String, waited: Duration },
}

impl From<ProviderError> for WaitError {
    fn from(error: ProviderError) -> Self {
        WaitError::Failed(error)
    }
}

/// Probes until `probe` returns [`Probe::Ready`], fails, or `budget` has passed.
///
/// The first probe runs at once. Later ones follow after 1 s, 2 s, 4 s, then every 10 s, each
/// delay shortened by up to a fifth at random so that parallel waits spread out, and cut so
/// that no probe starts after the deadline. Each new pending status is reported to `progress`
/// once, and the delays are slept through `progress`, which lets the executor run another step
/// meanwhile.
pub async fn poll<T, F, Fut>(
    budget: Duration,
    progress: &dyn StepProgress,
    mut probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Probe<T>, ProviderError>>,
{
    let started = Instant::now();
    let deadline = started + budget;
    let mut delay = FIRST_DELAY;
    let mut last_status: Option<String> = None;
    loop {
        match probe().await? {
            Probe::Ready(value) => return Ok(value),
            Probe::Pending(status) => {
                if last_status.as_deref() != Some(status.as_str()) {
                    tracing::info!(status = %status, "waiting");
                    progress.waiting(&status);
                    last_status = Some(status);
                }
            }
        }

        let now = Instant::now();
        if now >= deadline {
            let status = last_status.unwrap_or_default();
            return Err(WaitError::TimedOut {
                status,
                waited: now - started,
            });
        }
        let jittered = delay.mul_f64(rand::random_range(0.8..=1.0));
        progress.pause(jittered.min(deadline - now)).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Formats a wait duration for messages, in whole seconds.
pub fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use linkplan_engine::provider::NoProgress;

    use super::*;

    struct Recorder(Mutex<Vec<String>>);

    impl StepProgress for Recorder {
        fn waiting(&self, status: &str) {
            self.0.lock().unwrap().push(status.to_string());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn poll_returns_when_ready() {
        let mut calls = 0;
        let result = poll(Duration::from_secs(60), &NoProgress, || {
            calls += 1;
            let ready = calls == 3;
            async move {
                Ok(if ready {
                    Probe::Ready(calls)
                } else {
                    Probe::Pending("pending".into())
                })
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_times_out_with_last_status() {
        let result: Result<(), _> = poll(Duration::from_secs(30), &NoProgress, || async {
            Ok(Probe::Pending("endpoint vpce-1 pendingAcceptance".into()))
        })
        .await;
        match result {
            Err(WaitError::TimedOut { status, waited }) => {
                assert_eq!(status, "endpoint vpce-1 pendingAcceptance");
                assert!(waited >= Duration::from_secs(30), "{waited:?}");
                assert!(waited < Duration::from_secs(31), "{waited:?}");
            }
            _ => panic!("expected a timeout"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn poll_reports_each_status_once() {
        let recorder = Recorder(Mutex::new(Vec::new()));
        let statuses = ["a", "a", "b", "b"];
        let mut calls = 0;
        let result = poll(Duration::from_secs(600), &recorder, || {
            let status = statuses.get(calls).copied();
            calls += 1;
            async move {
                Ok(match status {
                    Some(status) => Probe::Pending(status.to_string()),
                    None => Probe::Ready(()),
                })
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}

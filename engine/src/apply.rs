//! The apply executor: runs a plan's steps in dependency order and undoes them on failure.
//!
//! # Guarantees
//! - A step starts only when every step it depends on has completed, and at most
//!   `parallelism` steps run at once. A step that pauses between two probes of a wait (an
//!   endpoint not yet `available`, say) gives its slot to another step for the pause, so long
//!   waits do not hold back steps that could call AWS meanwhile.
//! - Before a step's call, its intent (the resolved request and idempotency token) is in the
//!   journal. After the call, its outcome is. The token is derived from the plan id and the
//!   step address, so a retried call can never make a twin.
//! - When a step fails or the run is cancelled, no new step starts, steps in flight finish,
//!   and every completed step is undone in the reverse order of completion, which is a reverse
//!   dependency order. A create step that failed after AWS made its object (an endpoint that
//!   never became available, say) has that object found by its tags and removed too.
//! - An undo that fails is reported with its reason and the run goes on undoing the rest. The
//!   report lists what was undone and what could not be.
//!
//! # Caveats
//! Deletions cannot be undone: a destroy that fails half way leaves the deleted objects gone.
//! A restored alias record or attribute is briefly wrong between the change and the undo.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::graph::StepGraph;
use crate::journal::{BackendError, Entry, Journal, Outcome, RunStatus};
use crate::observed::hex;
use crate::plan_file::Plan;
use crate::provider::{ErrorKind, Outputs, Provider, ProviderError, StepProgress, StepRequest};
use crate::resource::Address;
use crate::step::{Action, Step};

/// Settings of one apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Steps running at once, at most, not counting steps that pause between two probes of a
    /// wait. Zero counts as one.
    pub parallelism: usize,
    /// How long one step may wait for its object (endpoint `available`, ...).
    pub wait_timeout: Duration,
    /// Undo completed steps when a step fails. Off keeps them, for debugging.
    pub rollback: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 8,
            wait_timeout: Duration::from_secs(600),
            rollback: true,
        }
    }
}

/// Receives progress of an apply, for display.
pub trait ApplyObserver: Send + Sync {
    fn step_started(&self, step: &Step);
    fn step_waiting(&self, address: &Address, status: &str);
    fn step_finished(&self, step: &Step, result: Result<&Outputs, &ProviderError>);
    fn undo_started(&self, address: &Address);
    fn undo_finished(&self, address: &Address, result: Result<(), &ProviderError>);
}

/// An observer that ignores every report.
pub struct Quiet;

impl ApplyObserver for Quiet {
    fn step_started(&self, _: &Step) {}
    fn step_waiting(&self, _: &Address, _: &str) {}
    fn step_finished(&self, _: &Step, _: Result<&Outputs, &ProviderError>) {}
    fn undo_started(&self, _: &Address) {}
    fn undo_finished(&self, _: &Address, _: Result<(), &ProviderError>) {}
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Steps completed, in order of completion; empty again after a full rollback.
    pub completed: Vec<Address>,
    /// The steps that failed, with their errors. Usually one; more when parallel steps fail.
    pub failed: Vec<(Address, ProviderError)>,
    /// Steps never started because the run stopped first.
    pub not_started: Vec<Address>,
    /// Steps undone, in the order they were undone.
    pub rolled_back: Vec<Address>,
    /// Steps whose undo failed or that cannot be undone, with the reason. With rollback off,
    /// the failed creates, which may have made an object.
    pub not_rolled_back: Vec<(Address, String)>,
    /// Whether the run stopped because it was cancelled.
    pub cancelled: bool,
}

impl ApplyReport {
    pub fn outcome(&self) -> Outcome {
        if self.failed.is_empty() && !self.cancelled {
            Outcome::Applied
        } else if self.not_rolled_back.is_empty() && self.completed.is_empty() {
            Outcome::RolledBack
        } else {
            Outcome::Failed
        }
    }
}

/// An error that keeps an apply from running at all.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The journal shows a rollback that stopped half way: an undo in flight may or may not
    /// have taken effect, so no step may build on it until the rollback is finished.
    #[error("the rollback of an earlier run of this plan stopped before its end")]
    RollbackUnfinished,
}

/// Returns the idempotency token of step `address` of plan `plan_id` in its first run: `lp-`
/// and 40 hex digits, within the 64 ASCII characters EC2's `ClientToken` allows.
pub fn idempotency_token(plan_id: &str, address: &Address) -> String {
    run_token(plan_id, address, 0)
}

/// Returns the token of step `address` for its attempt number `attempt`, counted from 0 and
/// raised by each rollback of the plan and each undo of the step.
///
/// AWS returns a token's first result: a `CreateVpcEndpoint` repeated with the token of an
/// endpoint that was since deleted returns that deleted endpoint, and a `CreateHostedZone`
/// repeated with the caller reference of a deleted zone fails with `HostedZoneAlreadyExists`.
/// So a step run again after its object was undone needs a new token, while a resumed run
/// keeps the token of each unfinished step.
pub fn run_token(plan_id: &str, address: &Address, attempt: usize) -> String {
    let input = match attempt {
        0 => format!("{plan_id}\n{address}"),
        n => format!("{plan_id}\n{address}\n{n}"),
    };
    format!("lp-{}", &hex(&Sha256::digest(input.as_bytes()))[..40])
}

/// Runs the steps of one plan against a provider.
pub struct Executor {
    provider: Arc<dyn Provider>,
    observer: Arc<dyn ApplyObserver>,
    options: ApplyOptions,
    cancel: watch::Receiver<bool>,
}

struct Finished {
    address: Address,
    step: Step,
    result: Result<Outputs, ProviderError>,
}

/// The apply slots: a step holds one while it runs, except while it pauses in a wait.
struct Slots {
    semaphore: Arc<Semaphore>,
    /// Notified when a pausing step gives up its slot, so that the scheduler can start
    /// another step.
    freed: Notify,
}

/// The slot a running step holds, given up while the step pauses.
struct HeldSlot {
    slots: Arc<Slots>,
    permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

struct ProgressRelay {
    observer: Arc<dyn ApplyObserver>,
    address: Address,
    /// `None` for undo, which runs one step at a time.
    slot: Option<HeldSlot>,
}

#[async_trait::async_trait]
impl StepProgress for ProgressRelay {
    fn waiting(&self, status: &str) {
        self.observer.step_waiting(&self.address, status);
    }

    async fn pause(&self, duration: Duration) {
        let Some(held) = &self.slot else {
            tokio::time::sleep(duration).await;
            return;
        };
        let permit = held.permit.lock().expect("no panic while held").take();
        drop(permit);
        held.slots.freed.notify_one();
        tokio::time::sleep(duration).await;
        // The semaphore is fair, so a step back from its pause gets the next free slot before
        // the scheduler starts a new step.
        let permit = Arc::clone(&held.slots.semaphore)
            .acquire_owned()
            .await
            .expect("the apply never closes its semaphore");
        *held.permit.lock().expect("no panic while held") = Some(permit);
    }
}

impl Executor {
    /// Creates an executor. Sending `true` on the channel behind `cancel` stops scheduling and
    /// starts the rollback.
    pub fn new(
        provider: Arc<dyn Provider>,
        observer: Arc<dyn ApplyObserver>,
        options: ApplyOptions,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        Executor {
            provider,
            observer,
            options,
            cancel,
        }
    }

    /// Applies `plan`, journaling into `journal`. Steps the journal already shows as completed
    /// (from an earlier, interrupted run) are not run again.
    ///
    /// # Errors
    /// The plan's steps cannot be ordered, or the journal cannot be written; in the second
    /// case the run stops before its next call.
    pub async fn apply(
        &self,
        plan: &Plan,
        journal: &mut dyn Journal,
    ) -> Result<ApplyReport, ApplyError> {
        let plan_id = plan.id();
        let graph = StepGraph::new(&plan.steps)?;
        let order = graph.order()?;
        let steps: BTreeMap<&Address, &Step> = plan.steps.iter().map(|s| (&s.address, s)).collect();

        let mut report = ApplyReport::default();
        let entries = journal.entries().await?;
        if RunStatus::of(&entries) == RunStatus::RollbackUnfinished {
            return Err(ApplyError::RollbackUnfinished);
        }
        let mut replayed = Replay::of(entries);
        let mut outputs = std::mem::take(&mut replayed.outputs);
        let mut resolved = std::mem::take(&mut replayed.resolved);
        let mut tokens = std::mem::take(&mut replayed.tokens);
        report.completed = std::mem::take(&mut replayed.completed);

        // A step whose call was made but whose outcome never reached the journal (a crash, a
        // killed process) may have done some or all of its work. It runs again with the same
        // token. By the provider's contract, the repeat finds what the earlier attempt made, by
        // tags, caller reference or content, and finishes the rest, such as a new zone's tags.
        for address in &replayed.unfinished {
            tracing::info!(%address, "running again a step whose outcome is missing from the journal");
        }

        let mut pending: BTreeSet<Address> = order
            .iter()
            .filter(|a| !outputs.contains_key(*a))
            .cloned()
            .collect();
        // Pending steps whose dependencies have all completed, by their position in `order`.
        // A completion adds its dependents here, so no step is looked at again until then.
        let position: BTreeMap<&Address, usize> =
            order.iter().enumerate().map(|(i, a)| (a, i)).collect();
        let is_ready = |address: &Address, outputs: &BTreeMap<Address, Outputs>| {
            steps[address]
                .depends_on
                .iter()
                .all(|d| outputs.contains_key(d))
        };
        let mut ready: BTreeSet<(usize, Address)> = pending
            .iter()
            .filter(|a| is_ready(a, &outputs))
            .map(|a| (position[a], a.clone()))
            .collect();
        let mut running: JoinSet<Finished> = JoinSet::new();
        let mut cancel = self.cancel.clone();
        // A closed channel can never cancel, and its `changed()` is ready at once, forever.
        let mut cancel_open = true;
        let mut stopping = false;
        // Zero would start nothing and report the untouched plan as applied.
        let slots = Arc::new(Slots {
            semaphore: Arc::new(Semaphore::new(self.options.parallelism.max(1))),
            freed: Notify::new(),
        });

        loop {
            if !stopping && *cancel.borrow() {
                report.cancelled = true;
                stopping = true;
            }
            if !stopping {
                while !ready.is_empty() {
                    let Ok(permit) = Arc::clone(&slots.semaphore).try_acquire_owned() else {
                        break;
                    };
                    let (_, address) = ready.pop_first().expect("the set is not empty");
                    pending.remove(&address);
                    let step = match resolve(steps[&address], &outputs) {
                        Ok(step) => step,
                        Err(missing) => {
                            let error = ProviderError::new(
                                ErrorKind::Other,
                                "linkplan",
                                "resolve",
                                &steps[&address].context.region,
                                format!(
                                    "step {address} needs {missing}, which that step did not return"
                                ),
                            );
                            journal
                                .append(&Entry::Failed {
                                    address: address.clone(),
                                    error: error.to_string(),
                                })
                                .await?;
                            report.failed.push((address, error));
                            stopping = true;
                            break;
                        }
                    };
                    // An unfinished step keeps the token of its intent, so that AWS can
                    // recognize the repeat. Any other step gets the token of this run.
                    let token = match tokens.get(&address) {
                        Some(token) if replayed.unfinished.contains(&address) => token.clone(),
                        _ => run_token(&plan_id, &address, replayed.attempt(&address)),
                    };
                    let earlier_attempt = replayed.attempted.contains(&address);
                    tokens.insert(address.clone(), token.clone());
                    journal
                        .append(&Entry::Intent {
                            address: address.clone(),
                            token: token.clone(),
                            step: Box::new(step.clone()),
                        })
                        .await?;
                    resolved.insert(address.clone(), step.clone());
                    self.observer.step_started(&step);
                    let provider = Arc::clone(&self.provider);
                    let observer = Arc::clone(&self.observer);
                    let stack = plan.stack_name.clone();
                    let wait_timeout = self.options.wait_timeout;
                    let slot = HeldSlot {
                        slots: Arc::clone(&slots),
                        permit: std::sync::Mutex::new(Some(permit)),
                    };
                    running.spawn(async move {
                        let progress = ProgressRelay {
                            observer,
                            address: address.clone(),
                            slot: Some(slot),
                        };
                        let request = StepRequest {
                            step: &step,
                            stack: &stack,
                            token: &token,
                            earlier_attempt,
                            wait_timeout,
                            progress: &progress,
                        };
                        let result = provider.apply(&request).await;
                        Finished {
                            address,
                            step,
                            result,
                        }
                    });
                }
            }
            if running.is_empty() {
                break;
            }

            let finished = tokio::select! {
                joined = running.join_next() => joined.expect("the set is not empty"),
                changed = cancel.changed(), if !stopping && cancel_open => {
                    cancel_open = changed.is_ok();
                    continue;
                }
                () = slots.freed.notified(), if !stopping => continue,
            };
            let finished = match finished {
                Ok(finished) => finished,
                Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
            };
            self.observer
                .step_finished(&finished.step, finished.result.as_ref());
            match finished.result {
                Ok(done) => {
                    journal
                        .append(&Entry::Completed {
                            address: finished.address.clone(),
                            outputs: done.clone(),
                        })
                        .await?;
                    report.completed.push(finished.address.clone());
                    outputs.insert(finished.address.clone(), done);
                    for dependent in graph.dependents(&finished.address) {
                        if pending.contains(&dependent) && is_ready(&dependent, &outputs) {
                            ready.insert((position[&dependent], dependent));
                        }
                    }
                }
                Err(error) => {
                    journal
                        .append(&Entry::Failed {
                            address: finished.address.clone(),
                            error: error.to_string(),
                        })
                        .await?;
                    report.failed.push((finished.address, error));
                    stopping = true;
                }
            }
        }

        report.not_started = order
            .iter()
            .filter(|a| pending.contains(*a))
            .cloned()
            .collect();
        if report.failed.is_empty() && !report.cancelled {
            journal
                .append(&Entry::Finished {
                    outcome: Outcome::Applied,
                })
                .await?;
            return Ok(report);
        }
        if self.options.rollback {
            let run = RunRecord {
                resolved: &resolved,
                outputs: &outputs,
                tokens: &tokens,
            };
            self.roll_back(plan, &mut report, &run, journal).await?;
        } else {
            // A failed create may have made its object, and nothing looks for it.
            for (address, _) in &report.failed {
                let creates = resolved
                    .get(address)
                    .is_some_and(|s| matches!(s.action, Action::Create | Action::Replace));
                if creates {
                    let reason = "rollback is off, so nothing looked for what this create made";
                    report
                        .not_rolled_back
                        .push((address.clone(), reason.to_string()));
                }
            }
        }
        journal
            .append(&Entry::Finished {
                outcome: report.outcome(),
            })
            .await?;
        Ok(report)
    }

    /// Undoes what an earlier run of `plan` did, as its journal records it: completed steps in
    /// reverse order of completion, and creates whose outcome is missing, looked up by tags.
    ///
    /// # Errors
    /// The journal cannot be read or written.
    pub async fn roll_back_journal(
        &self,
        plan: &Plan,
        journal: &mut dyn Journal,
    ) -> Result<ApplyReport, ApplyError> {
        let replayed = Replay::of(journal.entries().await?);
        let mut report = ApplyReport {
            completed: replayed.completed.clone(),
            ..ApplyReport::default()
        };

        // An unfinished create is handled as a failed one: looked up, then removed when found.
        // Any other unfinished step may have taken effect, and undoing it only restores the
        // values it started from, so it is undone as if it had completed.
        let mut outputs = replayed.outputs.clone();
        for address in &replayed.unfinished {
            let Some(step) = replayed.resolved.get(address) else {
                continue;
            };
            if !matches!(step.action, Action::Create | Action::Replace) {
                report.completed.push(address.clone());
                outputs.insert(address.clone(), Outputs::new());
                continue;
            }
            let error = ProviderError::new(
                ErrorKind::Other,
                "linkplan",
                "resume",
                &step.context.region,
                "the run stopped before this step's outcome was journaled",
            );
            report.failed.push((address.clone(), error));
        }

        let run = RunRecord {
            resolved: &replayed.resolved,
            outputs: &outputs,
            tokens: &replayed.tokens,
        };
        self.roll_back(plan, &mut report, &run, journal).await?;
        report.failed.clear();

        let outcome = if report.completed.is_empty() && report.not_rolled_back.is_empty() {
            Outcome::RolledBack
        } else {
            Outcome::Failed
        };
        journal.append(&Entry::Finished { outcome }).await?;
        Ok(report)
    }

    /// Undoes the completed steps of `report` in reverse order of completion, and removes what
    /// failed create steps may have left behind.
    async fn roll_back(
        &self,
        plan: &Plan,
        report: &mut ApplyReport,
        run: &RunRecord<'_>,
        journal: &mut dyn Journal,
    ) -> Result<(), BackendError> {
        let plan_id = plan.id();
        let RunRecord {
            resolved, outputs, ..
        } = *run;
        let mut undo: Vec<(Address, Option<Outputs>)> = report
            .completed
            .iter()
            .rev()
            .map(|a| (a.clone(), outputs.get(a).cloned()))
            .collect();
        // A failed create may still have made its object; it is looked up and removed first,
        // since anything that depends on it never ran.
        let failed_creates: Vec<Address> = report
            .failed
            .iter()
            .filter(|(a, _)| {
                resolved
                    .get(a)
                    .is_some_and(|s| matches!(s.action, Action::Create | Action::Replace))
            })
            .map(|(a, _)| a.clone())
            .collect();
        for address in failed_creates.into_iter().rev() {
            undo.insert(0, (address, None));
        }
        // A change whose call timed out or lost its connection may have taken effect, so it is
        // undone too. Its undo restores the `before` values, which changes nothing when the
        // call did not take effect.
        let failed_changes: Vec<Address> = report
            .failed
            .iter()
            .filter(|(a, error)| {
                outcome_unknown(error)
                    && resolved
                        .get(a)
                        .is_some_and(|s| matches!(s.action, Action::Update | Action::Adopt))
            })
            .map(|(a, _)| a.clone())
            .collect();
        for address in failed_changes.into_iter().rev() {
            undo.insert(0, (address, Some(Outputs::new())));
        }

        for (address, known_outputs) in undo {
            let Some(step) = resolved.get(&address) else {
                continue;
            };
            let token = run
                .tokens
                .get(&address)
                .cloned()
                .unwrap_or_else(|| idempotency_token(&plan_id, &address));
            let progress = ProgressRelay {
                observer: Arc::clone(&self.observer),
                address: address.clone(),
                slot: None,
            };
            let request = StepRequest {
                step,
                stack: &plan.stack_name,
                token: &token,
                earlier_attempt: true,
                wait_timeout: self.options.wait_timeout,
                progress: &progress,
            };
            let step_outputs = match known_outputs {
                Some(found) => found,
                None => match self.provider.find_created(&request).await {
                    Ok(Some(found)) => found,
                    // A create whose call timed out was sent, and may have been made all the
                    // same. AWS lists a new object only after a delay, so it may show later,
                    // and the stack is not known to be as before.
                    Ok(None) if timed_out(&report.failed, &address) => {
                        report.not_rolled_back.push((
                            address,
                            "its call timed out, and nothing it made was found yet; the object may still appear, so check with `linkplan plan`".to_string(),
                        ));
                        continue;
                    }
                    Ok(None) => continue,
                    Err(error) => {
                        report.not_rolled_back.push((
                            address,
                            format!("could not look for what it created: {error}"),
                        ));
                        continue;
                    }
                },
            };
            if step.action == Action::Delete && !undoable_delete(step) {
                report
                    .not_rolled_back
                    .push((address, "a delete cannot be undone".to_string()));
                continue;
            }
            journal
                .append(&Entry::UndoIntent {
                    address: address.clone(),
                })
                .await?;
            self.observer.undo_started(&address);
            let result = self.provider.undo(&request, &step_outputs).await;
            self.observer
                .undo_finished(&address, result.as_ref().map(|_| ()));
            match result {
                Ok(()) => {
                    journal
                        .append(&Entry::Undone {
                            address: address.clone(),
                        })
                        .await?;
                    report.completed.retain(|a| *a != address);
                    report.rolled_back.push(address);
                }
                Err(error) => {
                    journal
                        .append(&Entry::UndoFailed {
                            address: address.clone(),
                            error: error.to_string(),
                        })
                        .await?;
                    report.not_rolled_back.push((address, error.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Returns the steps a rollback of the runs in `entries`, a plan's journal, would undo or look
/// for, in the order it would: creates whose outcome is missing first, then completed steps in
/// reverse order of completion. Deletes are left out, since they cannot be undone.
pub fn rollback_candidates(entries: &[Entry]) -> Vec<Address> {
    let replayed = Replay::of(entries.to_vec());
    let undoable = |address: &Address| {
        replayed
            .resolved
            .get(address)
            .is_some_and(|s| s.action != Action::Delete || undoable_delete(s))
    };
    let unfinished = replayed.unfinished.iter().rev();
    let completed = replayed.completed.iter().rev();
    unfinished
        .chain(completed)
        .filter(|a| undoable(a))
        .cloned()
        .collect()
}

/// The record of the steps a run started, which its rollback reads.
struct RunRecord<'a> {
    /// The last resolved request of each started step.
    resolved: &'a BTreeMap<Address, Step>,
    /// The outputs of completed steps.
    outputs: &'a BTreeMap<Address, Outputs>,
    /// The token each started step was called with.
    tokens: &'a BTreeMap<Address, String>,
}

/// The state of a plan's runs so far, replayed from its journal.
#[derive(Debug, Default)]
struct Replay {
    /// Steps in place, in order of completion.
    completed: Vec<Address>,
    outputs: BTreeMap<Address, Outputs>,
    /// The last resolved request of each step that was started.
    resolved: BTreeMap<Address, Step>,
    /// The token of each step's last intent.
    tokens: BTreeMap<Address, String>,
    /// Steps whose call was made and whose outcome is missing, in order of their intents.
    unfinished: Vec<Address>,
    /// Steps started since the last full rollback: their objects may exist.
    attempted: BTreeSet<Address>,
    /// Runs that ended rolled back.
    rolled_back: usize,
    /// Undos of each step that completed.
    undone: BTreeMap<Address, usize>,
}

impl Replay {
    /// Returns the attempt number of the next run of step `address`, for its token: a new one
    /// after each rollback of the plan and each undo of the step, since either may have
    /// deleted the object an earlier token made.
    fn attempt(&self, address: &Address) -> usize {
        self.rolled_back + self.undone.get(address).copied().unwrap_or(0)
    }

    fn of(entries: Vec<Entry>) -> Self {
        let mut replay = Replay::default();
        for entry in entries {
            match entry {
                Entry::Intent {
                    address,
                    step,
                    token,
                } => {
                    replay.resolved.insert(address.clone(), *step);
                    replay.tokens.insert(address.clone(), token);
                    replay.attempted.insert(address.clone());
                    replay.unfinished.retain(|a| *a != address);
                    replay.unfinished.push(address);
                }
                Entry::Completed { address, outputs } => {
                    replay.unfinished.retain(|a| *a != address);
                    replay.completed.retain(|a| *a != address);
                    replay.completed.push(address.clone());
                    replay.outputs.insert(address, outputs);
                }
                Entry::Failed { address, .. } => replay.unfinished.retain(|a| *a != address),
                Entry::Finished {
                    outcome: Outcome::RolledBack,
                } => {
                    replay.rolled_back += 1;
                    replay.attempted.clear();
                }
                Entry::Undone { address } => {
                    replay.completed.retain(|a| *a != address);
                    replay.outputs.remove(&address);
                    *replay.undone.entry(address).or_default() += 1;
                }
                _ => {}
            }
        }
        replay
    }
}

/// Reports whether the step at `address` is among `failed` with a call that timed out.
fn timed_out(failed: &[(Address, ProviderError)], address: &Address) -> bool {
    failed
        .iter()
        .any(|(a, error)| a == address && error.kind == ErrorKind::Timeout)
}

/// Reports whether a step that failed with `error` may still have taken effect: its call timed
/// out, or its connection failed after the request may have been sent.
fn outcome_unknown(error: &ProviderError) -> bool {
    matches!(error.kind, ErrorKind::Timeout | ErrorKind::Transient)
}

/// Reports whether the delete `step` can be reversed: only revoking an association
/// authorization, which can be granted again.
fn undoable_delete(step: &Step) -> bool {
    matches!(
        step.before,
        Some(crate::resource::Resource::AssociationAuthorization(_))
    )
}

/// Returns `step` with every reference replaced by the output it names.
///
/// # Errors
/// The first output no completed step returned, as `address.output`. The graph runs a
/// referenced step first, so this means a provider left an output out.
fn resolve(step: &Step, outputs: &BTreeMap<Address, Outputs>) -> Result<Step, String> {
    let mut step = step.clone();
    let lookup =
        |from: &Address, output: &str| outputs.get(from).and_then(|o| o.get(output)).cloned();
    for resource in [step.before.as_mut(), step.after.as_mut()]
        .into_iter()
        .flatten()
    {
        resource.resolve(&lookup)?;
    }
    Ok(step)
}

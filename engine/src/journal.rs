//! The write-ahead journal of an apply, and the backend that keeps it with the stack's lock.
//!
//! Before each mutating call the executor appends the step's intent (the resolved request and
//! its idempotency token), and after it the outcome (the outputs AWS returned, which are what
//! an undo needs). [`LocalBackend`] flushes every entry to disk before the next call, so a
//! crash loses at most the outcome of the calls in flight, which `--resume` finds again by tags.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::provider::Outputs;
use crate::resource::Address;
use crate::step::Step;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// An apply or rollback started.
    Started {
        plan_id: String,
        stack: String,
        holder: Holder,
    },
    /// A step's call is about to be made with this resolved request.
    Intent {
        address: Address,
        token: String,
        step: Box<Step>,
    },
    /// The step finished; `outputs` is what undoing it needs.
    Completed {
        address: Address,
        outputs: Outputs,
    },
    Failed {
        address: Address,
        error: String,
    },
    /// A completed step is about to be undone.
    UndoIntent {
        address: Address,
    },
    Undone {
        address: Address,
    },
    UndoFailed {
        address: Address,
        error: String,
    },
    /// The run ended.
    Finished {
        outcome: Outcome,
    },
}

/// The end state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step completed.
    Applied,
    /// A step failed or the run was interrupted, and every completed step was undone.
    RolledBack,
    /// A step failed and some completed steps are still in place.
    Failed,
}

/// The process that runs or ran an apply, with enough detail to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339 time the run started.
    pub since: String,
}

impl Holder {
    /// Describes the current process.
    pub fn current() -> Self {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            since: humantime_now(),
        }
    }
}

impl Holder {
    /// Reports whether this holder ran on this host and its process no longer exists. Only
    /// Linux's `/proc` is consulted; elsewhere a holder is never taken for dead.
    pub fn is_dead_here(&self) -> bool {
        let proc = Path::new("/proc");
        self.host == hostname()
            && self.pid != 0
            && self.pid != std::process::id()
            && proc.join("self").exists()
            && !proc.join(self.pid.to_string()).exists()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on {} since {}",
            self.pid, self.host, self.since
        )
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// An error of the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("stack `{stack}` is locked by {holder}")]
    Locked { stack: String, holder: Holder },
    #[error("plan `{plan_id}` of stack `{stack}` was already applied")]
    AlreadyApplied { stack: String, plan_id: String },
    #[error("failed to {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("journal `{path}` is corrupt at line {line}: {reason}")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
}

/// An append-only journal of one plan's runs.
#[async_trait]
pub trait Journal: Send {
    /// Appends `entry`, durably, before returning.
    async fn append(&mut self, entry: &Entry) -> Result<(), BackendError>;

    /// Returns every entry written so far, oldest first.
    async fn entries(&self) -> Result<Vec<Entry>, BackendError>;

    /// Returns where the journal is, for messages.
    fn location(&self) -> String;
}

/// Held while an apply or rollback of a stack runs; dropping it releases the lock.
pub trait LockGuard: Send {}

/// Where a stack's lock, journals and record of applied plans live.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Takes the stack's lock.
    ///
    /// # Errors
    /// [`BackendError::Locked`], naming the holder, when another run has it.
    async fn lock(&self, stack: &str, holder: &Holder) -> Result<Box<dyn LockGuard>, BackendError>;

    /// Opens the journal of plan `plan_id`, creating it when new.
    async fn journal(&self, stack: &str, plan_id: &str) -> Result<Box<dyn Journal>, BackendError>;

    async fn is_applied(&self, stack: &str, plan_id: &str) -> Result<bool, BackendError>;

    /// Records that plan `plan_id` finished, so it is never applied again.
    async fn record_applied(&self, stack: &str, plan_id: &str) -> Result<(), BackendError>;
}

/// A backend in a local folder, by default `.linkplan/` beside the plan file.
///
/// Layout: `<root>/<stack>/lock` (the holder, as JSON), `<root>/<stack>/<plan id>.journal`
/// (one JSON entry per line) and `<root>/<stack>/applied/<plan id>` (empty markers).
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    /// Returns the backend folder for plan file `plan_path`: `.linkplan/` in its folder.
    pub fn beside(plan_path: &Path) -> Self {
        let folder = plan_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        LocalBackend::new(folder.join(".linkplan"))
    }

    fn stack_dir(&self, stack: &str) -> Result<PathBuf, BackendError> {
        let dir = self.root.join(stack);
        std::fs::create_dir_all(dir.join("applied")).map_err(|source| BackendError::Io {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        Ok(dir)
    }

    /// Removes the stack's lock, whatever process has it, and returns its holder.
    ///
    /// # Errors
    /// The lock file cannot be read or removed.
    pub fn break_lock(&self, stack: &str) -> Result<Option<Holder>, BackendError> {
        let path = self.root.join(stack).join("lock");
        let holder = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BackendError::Io {
                    action: "read",
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        std::fs::remove_file(&path).map_err(|source| BackendError::Io {
            action: "remove",
            path: path.display().to_string(),
            source,
        })?;
        Ok(holder)
    }
}

struct LocalLock {
    path: PathBuf,
}

impl LockGuard for LocalLock {}

impl Drop for LocalLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct LocalJournal {
    path: PathBuf,
    file: File,
}

#[async_trait]
impl Journal for LocalJournal {
    async fn append(&mut self, entry: &Entry) -> Result<(), BackendError> {
        let io = |source| BackendError::Io {
            action: "write",
            path: self.path.display().to_string(),
            source,
        };
        let mut line = serde_json::to_string(entry).expect("journal entries serialize");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    async fn entries(&self) -> Result<Vec<Entry>, BackendError> {
        read_entries(&self.path)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

fn read_entries(path: &Path) -> Result<Vec<Entry>, BackendError> {
    let file = File::open(path).map_err(|source| BackendError::Io {
        action: "read",
        path: path.display().to_string(),
        source,
    })?;
    let mut entries = Vec::new();
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| BackendError::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
    let last = lines.len();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            // A crash mid-write can leave the last line cut short; that entry never completed.
            Err(_) if index + 1 == last => break,
            Err(error) => {
                return Err(BackendError::Corrupt {
                    path: path.display().to_string(),
                    line: index + 1,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(entries)
}

/// Truncates the journal at `path` after its last complete line. A crash mid-write can leave
/// the last line cut short, and the next entry appended to it would make a line that no
/// longer reads, in the middle of the journal.
fn drop_cut_line(file: &File, path: &Path) -> Result<(), BackendError> {
    let io = |action, source| BackendError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read(path).map_err(|e| io("read", e))?;
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(());
    }
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64).map_err(|e| io("truncate", e))
}

#[async_trait]
impl Backend for LocalBackend {
    async fn lock(
        &self,
        stack: &str,
        current: &Holder,
    ) -> Result<Box<dyn LockGuard>, BackendError> {
        let path = self.stack_dir(stack)?.join("lock");
        let io = |action, source| BackendError::Io {
            action,
            path: path.display().to_string(),
            source,
        };
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let text = serde_json::to_string(current).expect("a holder serializes");
                file.write_all(text.as_bytes())
                    .map_err(|e| io("write", e))?;
                file.sync_all().map_err(|e| io("write", e))?;
                Ok(Box::new(LocalLock { path }))
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(|e| io("read", e))?;
                let holder: Holder = serde_json::from_str(&text).unwrap_or(Holder {
                    host: "unknown".to_string(),
                    pid: 0,
                    since: "unknown".to_string(),
                });
                // A holder on this host whose process is gone died without releasing the lock, for
                // example because it was killed. So nothing else can still be using the stack.
                if holder.is_dead_here() {
                    tracing::warn!(stack, %holder, "taking over the lock of a process that is gone");
                    std::fs::remove_file(&path).map_err(|e| io("remove", e))?;
                    return Box::pin(self.lock(stack, current)).await;
                }
                Err(BackendError::Locked {
                    stack: stack.to_string(),
                    holder,
                })
            }
            Err(error) => Err(io("create", error)),
        }
    }

    async fn journal(&self, stack: &str, plan_id: &str) -> Result<Box<dyn Journal>, BackendError> {
        let path = self.stack_dir(stack)?.join(format!("{plan_id}.journal"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| BackendError::Io {
                action: "open",
                path: path.display().to_string(),
                source,
            })?;
        drop_cut_line(&file, &path)?;
        Ok(Box::new(LocalJournal { path, file }))
    }

    async fn is_applied(&self, stack: &str, plan_id: &str) -> Result<bool, BackendError> {
        Ok(self.root.join(stack).join("applied").join(plan_id).exists())
    }

    async fn record_applied(&self, stack: &str, plan_id: &str) -> Result<(), BackendError> {
        let path = self.stack_dir(stack)?.join("applied").join(plan_id);
        File::create(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| BackendError::Io {
                action: "write",
                path: path.display().to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("linkplan-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn second_lock_names_holder() {
        let backend = LocalBackend::new(scratch("lock"));
        let holder = Holder {
            host: "ci-1".into(),
            pid: 42,
            since: "2026-01-01T00:00:00Z".into(),
        };
        let guard = backend.lock("web", &holder).await.unwrap();
        let error = backend.lock("web", &Holder::current()).await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "stack `web` is locked by process 42 on ci-1 since 2026-01-01T00:00:00Z"
        );
        drop(guard);
        assert!(backend.lock("web", &holder).await.is_ok());
    }

    #[tokio::test]
    async fn journal_round_trips_and_tolerates_cut_line() {
        let root = scratch("journal");
        let backend = LocalBackend::new(&root);
        let mut journal = backend.journal("web", "abc").await.unwrap();
        let entry = Entry::Completed {
            address: Address::from("zone"),
            outputs: Outputs::from([("id".into(), "Z1".into())]),
        };
        journal.append(&entry).await.unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(root.join("web/abc.journal"))
            .unwrap();
        file.write_all(b"{\"event\":\"compl").unwrap();
        assert_eq!(journal.entries().await.unwrap(), vec![entry]);
    }

    #[tokio::test]
    async fn applied_plans_are_recorded() {
        let backend = LocalBackend::new(scratch("applied"));
        assert!(!backend.is_applied("web", "abc").await.unwrap());
        backend.record_applied("web", "abc").await.unwrap();
        assert!(backend.is_applied("web", "abc").await.unwrap());
    }

    #[tokio::test]
    async fn lock_of_dead_process_is_taken_over() {
        let backend = LocalBackend::new(scratch("stale"));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let dead = Holder {
            host: hostname(),
            pid: child.id(),
            since: "2026-01-01T00:00:00Z".into(),
        };
        let guard = backend.lock("web", &dead).await.unwrap();
        std::mem::forget(guard);
        assert!(
            backend.lock("web", &Holder::current()).await.is_ok(),
            "the dead holder's lock stays"
        );
    }

    #[tokio::test]
    async fn lock_of_live_process_is_kept() {
        let backend = LocalBackend::new(scratch("live"));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let live = Holder {
            host: hostname(),
            pid: child.id(),
            since: "2026-01-01T00:00:00Z".into(),
        };
        let guard = backend.lock("web", &live).await.unwrap();
        std::mem::forget(guard);
        let error = backend.lock("web", &Holder::current()).await.err();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            matches!(error, Some(BackendError::Locked { .. })),
            "a live holder's lock was taken"
        );
    }
}

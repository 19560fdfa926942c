//! The write-ahead journal of an apply, and the backend that keeps it with the stack's lock.
//!
//! Before each mutating call the executor appends the step's intent (the resolved request and
//! its idempotency token), and after it the outcome (the outputs AWS returned, which are what
//! an undo needs). Every backend makes each entry durable before the next call: [`LocalBackend`]
//! flushes it to disk, and the S3 backend of the AWS provider crate writes one object per entry.
//! So a crash loses at most the outcome of the calls in flight, which `--resume` finds again by
//! tags.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
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

/// Where the runs recorded in one plan's journal stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// No step was started, or the last run ended with every completed step undone: the plan
    /// can be applied from the start.
    Clear,
    /// A run started steps and stopped before its end (a crash, a killed process), or ended
    /// with steps still in place. `apply --resume` finishes it and `rollback` undoes it.
    Unfinished,
    /// A rollback started undoing steps and stopped before its end. Only `rollback` may go on:
    /// the undo in flight may or may not have taken effect, so nothing may build on it.
    RollbackUnfinished,
    /// The last run completed every step.
    Applied,
}

impl RunStatus {
    /// Returns the status of the runs that `entries`, a plan's journal, record.
    pub fn of(entries: &[Entry]) -> Self {
        let mut status = RunStatus::Clear;
        for entry in entries {
            status = match (entry, status) {
                (Entry::Finished { outcome }, _) => match outcome {
                    Outcome::Applied => RunStatus::Applied,
                    Outcome::RolledBack => RunStatus::Clear,
                    Outcome::Failed => RunStatus::Unfinished,
                },
                (Entry::UndoIntent { .. }, _) => RunStatus::RollbackUnfinished,
                (_, RunStatus::RollbackUnfinished) => RunStatus::RollbackUnfinished,
                (Entry::Intent { .. }, _) => RunStatus::Unfinished,
                (_, status) => status,
            };
        }
        status
    }
}

/// The process that runs or ran an apply, with enough detail to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339 time the run started.
    pub since: String,
    /// The operating system user that ran the process, from `USER` or `LOGNAME`. It is empty
    /// when neither is set, and in holders written before the field existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

impl Holder {
    /// Describes the current process.
    pub fn current() -> Self {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            since: humantime_now(),
            user: username(),
        }
    }

    /// Stands for a lock whose content cannot be read, such as one cut short or written by
    /// another program.
    pub fn unreadable() -> Self {
        Holder {
            host: "unknown".to_string(),
            pid: 0,
            since: "unknown".to_string(),
            user: String::new(),
        }
    }
}

impl Holder {
    /// Reports whether this holder ran on this host.
    pub fn is_here(&self) -> bool {
        *self != Holder::unreadable() && self.host == hostname()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Holder::unreadable() {
            return f.write_str("an unreadable holder");
        }
        write!(
            f,
            "process {} on {} since {}",
            self.pid, self.host, self.since
        )?;
        if !self.user.is_empty() {
            write!(f, " (user {})", self.user)?;
        }
        Ok(())
    }
}

fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
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
    /// A call to a remote store failed. `help` is the advice for the `help:` line.
    #[error("failed to {action} `{location}`: {reason}")]
    Remote {
        action: &'static str,
        location: String,
        reason: String,
        help: String,
    },
}

impl BackendError {
    /// Returns advice for the error, for the `help:` line.
    pub fn help(&self) -> String {
        match self {
            BackendError::Locked { .. } => {
                "wait for that run to finish; if it died, remove its lock with `linkplan unlock`"
                    .to_string()
            }
            BackendError::AlreadyApplied { .. } => {
                "run `linkplan plan` to see what is left to change, and apply the new plan"
                    .to_string()
            }
            BackendError::Io { .. } => {
                "check that the folder exists and is writable, and that the disk has space"
                    .to_string()
            }
            BackendError::Corrupt { .. } => {
                "the journal was changed by hand or by another program; restore it from a copy, \
                 or remove it once the stack's state is checked"
                    .to_string()
            }
            BackendError::Remote { help, .. } => help.clone(),
        }
    }
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

    /// Returns the holder of the stack's lock, `None` when the stack is not locked.
    async fn lock_holder(&self, stack: &str) -> Result<Option<Holder>, BackendError>;

    /// Removes the stack's lock, whatever process has it, and returns its holder.
    async fn break_lock(&self, stack: &str) -> Result<Option<Holder>, BackendError>;

    /// Returns where the stack's lock is, for messages.
    fn lock_location(&self, stack: &str) -> String;

    /// Opens the journal of plan `plan_id`, creating it when new.
    async fn journal(&self, stack: &str, plan_id: &str) -> Result<Box<dyn Journal>, BackendError>;

    async fn is_applied(&self, stack: &str, plan_id: &str) -> Result<bool, BackendError>;

    /// Records that plan `plan_id` finished, so it is never applied again, and that it is the
    /// stack's last applied plan.
    async fn record_applied(&self, stack: &str, plan_id: &str) -> Result<(), BackendError>;

    /// Returns the id of the stack's last applied plan, if any. A new plan records it, so that
    /// two plans of the same state made after two different applies get different ids.
    async fn last_applied(&self, stack: &str) -> Result<Option<String>, BackendError>;
}

/// A backend in a local folder, by default `.linkplan/` beside the plan file.
///
/// Layout: `<root>/<stack>/lock` (the holder, as JSON), `<root>/<stack>/<plan id>.journal`
/// (one JSON entry per line), `<root>/<stack>/applied/<plan id>` (empty markers) and
/// `<root>/<stack>/last-applied` (the id of the last applied plan).
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

    fn lock_path(&self, stack: &str) -> PathBuf {
        self.root.join(stack).join("lock")
    }
}

/// A lock file held with an exclusive advisory lock (`flock` on Linux) for as long as the
/// guard lives. The operating system releases the advisory lock when the process ends, however
/// it ends, so a lock left by a killed process is taken over without a race between two runs.
struct FileLock {
    path: PathBuf,
    file: File,
}

impl LockGuard for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        // `unlock --force` may have removed this file, and another run may have taken a new
        // lock at the same path since; that one stays.
        if is_same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reports whether `path` still names the open `file`.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Reports whether `path` still exists; without inode numbers, it is taken to name `file`.
#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Takes the lock file at `path` for `current`, as the lock of `stack`.
///
/// The file contains its holder as JSON, for messages and for `unlock`. Exclusion comes from
/// the advisory lock, which every run on this host holds while it runs. So once the advisory
/// lock is free, a holder on this host is gone, even when its process id now names another
/// process. A holder on another host, or one that cannot be read, is still respected: it may
/// share the folder over a network file system that does not pass advisory locks on.
///
/// # Errors
/// [`BackendError::Locked`] when another run holds the lock, or an I/O error.
pub fn lock_file(
    path: &Path,
    stack: &str,
    current: &Holder,
) -> Result<Box<dyn LockGuard>, BackendError> {
    let io = |action, source| BackendError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    let locked = |holder: Holder| BackendError::Locked {
        stack: stack.to_string(),
        holder,
    };
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                return Err(locked(parse_holder(&text)));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io("lock", error)),
        }
        // The holder released the lock and removed its file between the open and the lock,
        // so this file is no longer the lock: open the path again.
        if !is_same_file(&file, path) {
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| io("read", e))?;
        if !text.trim().is_empty() {
            let holder = parse_holder(&text);
            if !holder.is_here() {
                return Err(locked(holder));
            }
            tracing::info!(stack, %holder, "taking over the lock of a process that is gone");
        }
        let text = serde_json::to_string(current).expect("a holder serializes");
        file.set_len(0).map_err(|e| io("write", e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("write", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("write", e))?;
        return Ok(Box::new(FileLock {
            path: path.to_path_buf(),
            file,
        }));
    }
}

/// Reads a lock file's holder; a file cut short or written by another program is unreadable.
fn parse_holder(text: &str) -> Holder {
    serde_json::from_str(text).unwrap_or_else(|_| Holder::unreadable())
}

struct LocalJournal {
    path: PathBuf,
    /// Opened at the first append, so that a run refused before its first entry leaves no
    /// empty journal behind.
    file: Option<File>,
}

impl LocalJournal {
    fn file(&mut self) -> Result<&mut File, BackendError> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|source| BackendError::Io {
                    action: "open",
                    path: self.path.display().to_string(),
                    source,
                })?;
            self.file = Some(file);
        }
        Ok(self
            .file
            .as_mut()
            .expect("the journal file was just opened"))
    }
}

#[async_trait]
impl Journal for LocalJournal {
    async fn append(&mut self, entry: &Entry) -> Result<(), BackendError> {
        let display = self.path.display().to_string();
        let io = |source| BackendError::Io {
            action: "write",
            path: display.clone(),
            source,
        };
        let mut line = serde_json::to_string(entry).expect("journal entries serialize");
        line.push('\n');
        let file = self.file()?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)
    }

    async fn entries(&self) -> Result<Vec<Entry>, BackendError> {
        read_entries(&self.path)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

fn read_entries(path: &Path) -> Result<Vec<Entry>, BackendError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
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
        lock_file(&path, stack, current)
    }

    async fn lock_holder(&self, stack: &str) -> Result<Option<Holder>, BackendError> {
        let path = self.lock_path(stack);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(parse_holder(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BackendError::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    async fn break_lock(&self, stack: &str) -> Result<Option<Holder>, BackendError> {
        let Some(holder) = self.lock_holder(stack).await? else {
            return Ok(None);
        };
        let path = self.lock_path(stack);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(holder)),
            // Its holder released it in the meantime.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BackendError::Io {
                action: "remove",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn lock_location(&self, stack: &str) -> String {
        self.lock_path(stack).display().to_string()
    }

    async fn journal(&self, stack: &str, plan_id: &str) -> Result<Box<dyn Journal>, BackendError> {
        let path = self.stack_dir(stack)?.join(format!("{plan_id}.journal"));
        let mut journal = LocalJournal { path, file: None };
        if journal.path.exists() {
            let path = journal.path.clone();
            drop_cut_line(journal.file()?, &path)?;
        }
        Ok(Box::new(journal))
    }

    async fn is_applied(&self, stack: &str, plan_id: &str) -> Result<bool, BackendError> {
        Ok(self.root.join(stack).join("applied").join(plan_id).exists())
    }

    async fn record_applied(&self, stack: &str, plan_id: &str) -> Result<(), BackendError> {
        let dir = self.stack_dir(stack)?;
        let path = dir.join("applied").join(plan_id);
        let io = |path: &Path, source| BackendError::Io {
            action: "write",
            path: path.display().to_string(),
            source,
        };
        File::create(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| io(&path, source))?;
        // Written beside, then renamed over, so a crash never leaves half an id.
        let last = dir.join("last-applied");
        let temporary = dir.join("last-applied.tmp");
        std::fs::write(&temporary, plan_id).map_err(|source| io(&temporary, source))?;
        std::fs::rename(&temporary, &last).map_err(|source| io(&last, source))
    }

    async fn last_applied(&self, stack: &str) -> Result<Option<String>, BackendError> {
        let path = self.root.join(stack).join("last-applied");
        match std::fs::read_to_string(&path) {
            Ok(id) => Ok(Some(id.trim().to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BackendError::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            }),
        }
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
            user: String::new(),
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
    async fn broken_lock_returns_holder() {
        let backend = LocalBackend::new(scratch("break"));
        assert_eq!(backend.break_lock("web").await.unwrap(), None);
        let holder = Holder::current();
        let guard = backend.lock("web", &holder).await.unwrap();
        std::mem::forget(guard);
        assert_eq!(
            backend.lock_holder("web").await.unwrap(),
            Some(holder.clone())
        );
        assert_eq!(backend.break_lock("web").await.unwrap(), Some(holder));
        assert_eq!(backend.lock_holder("web").await.unwrap(), None);
    }

    #[test]
    fn holder_names_user_when_known() {
        let holder = Holder {
            host: "ci-1".into(),
            pid: 42,
            since: "2026-01-01T00:00:00Z".into(),
            user: "deploy".into(),
        };
        assert_eq!(
            holder.to_string(),
            "process 42 on ci-1 since 2026-01-01T00:00:00Z (user deploy)"
        );
        let old: Holder =
            serde_json::from_str(r#"{"host":"ci-1","pid":42,"since":"2026-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(old.user, "");
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

    fn intent(address: &str) -> Entry {
        let step = Step {
            address: Address::from(address),
            action: crate::step::Action::Update,
            id: None,
            reason: None,
            depends_on: Vec::new(),
            context: crate::stack::Context {
                region: "us-east-1".into(),
                credentials: Default::default(),
            },
            before: None,
            after: None,
        };
        Entry::Intent {
            address: Address::from(address),
            token: "lp-1".into(),
            step: Box::new(step),
        }
    }

    #[test]
    fn run_status_follows_journal() {
        let zone = || Address::from("zone");
        let finished = |outcome| Entry::Finished { outcome };
        let cases: Vec<(&str, Vec<Entry>, RunStatus)> = vec![
            ("empty", vec![], RunStatus::Clear),
            ("crashed", vec![intent("zone")], RunStatus::Unfinished),
            (
                "applied",
                vec![intent("zone"), finished(Outcome::Applied)],
                RunStatus::Applied,
            ),
            (
                "rolled back",
                vec![intent("zone"), finished(Outcome::RolledBack)],
                RunStatus::Clear,
            ),
            (
                "failed with steps in place",
                vec![intent("zone"), finished(Outcome::Failed)],
                RunStatus::Unfinished,
            ),
            (
                "rollback cut off",
                vec![
                    intent("zone"),
                    Entry::UndoIntent { address: zone() },
                    Entry::Undone { address: zone() },
                ],
                RunStatus::RollbackUnfinished,
            ),
            (
                "rollback finished",
                vec![
                    intent("zone"),
                    Entry::UndoIntent { address: zone() },
                    Entry::Undone { address: zone() },
                    finished(Outcome::RolledBack),
                ],
                RunStatus::Clear,
            ),
        ];
        for (name, entries, expected) in cases {
            assert_eq!(RunStatus::of(&entries), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn applied_plans_are_recorded() {
        let backend = LocalBackend::new(scratch("applied"));
        assert!(!backend.is_applied("web", "abc").await.unwrap());
        backend.record_applied("web", "abc").await.unwrap();
        assert!(backend.is_applied("web", "abc").await.unwrap());
    }

    /// Returns the holder of a process that ran on this host and has ended.
    fn dead_holder() -> Holder {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        Holder {
            host: hostname(),
            pid: child.id(),
            since: "2026-01-01T00:00:00Z".into(),
            user: String::new(),
        }
    }

    /// Writes the lock file a killed run leaves: its holder, with no advisory lock held.
    fn write_lock(root: &Path, stack: &str, holder: &Holder) {
        std::fs::create_dir_all(root.join(stack)).unwrap();
        let text = serde_json::to_string(holder).unwrap();
        std::fs::write(root.join(stack).join("lock"), text).unwrap();
    }

    #[tokio::test]
    async fn lock_of_dead_process_is_taken_over() {
        let root = scratch("stale");
        write_lock(&root, "web", &dead_holder());
        let backend = LocalBackend::new(&root);
        assert!(
            backend.lock("web", &Holder::current()).await.is_ok(),
            "the dead holder's lock stays"
        );
    }

    #[test]
    fn dead_lock_is_taken_over_once() {
        let root = scratch("race");
        write_lock(&root, "web", &dead_holder());
        let path = root.join("web").join("lock");
        let barrier = std::sync::Barrier::new(8);
        let taken: Vec<bool> = std::thread::scope(|scope| {
            let attempts: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let guard = lock_file(&path, "web", &Holder::current());
                        // Every attempt ends before any guard is dropped.
                        barrier.wait();
                        guard.is_ok()
                    })
                })
                .collect();
            attempts.into_iter().map(|a| a.join().unwrap()).collect()
        });
        let winners = taken.iter().filter(|t| **t).count();
        assert_eq!(winners, 1, "one run takes the dead run's lock: {taken:?}");
    }

    #[tokio::test]
    async fn released_lock_keeps_a_newer_lock() {
        let backend = LocalBackend::new(scratch("newer"));
        let first = backend.lock("web", &dead_holder()).await.unwrap();
        backend.break_lock("web").await.unwrap();
        let second_holder = Holder {
            host: "ci-2".into(),
            pid: 7,
            since: "2026-01-01T00:00:00Z".into(),
            user: String::new(),
        };
        let _second = backend.lock("web", &second_holder).await.unwrap();
        drop(first);
        assert_eq!(
            backend.lock_holder("web").await.unwrap(),
            Some(second_holder),
            "releasing the broken lock removed the newer one"
        );
    }

    #[tokio::test]
    async fn lock_with_reused_pid_is_taken_over() {
        // A killed run's lock file whose process id now names another live process, as after
        // a reboot: no advisory lock is held, so the run is gone.
        let root = scratch("reused");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let reused = Holder {
            host: hostname(),
            pid: child.id(),
            since: "2026-01-01T00:00:00Z".into(),
            user: String::new(),
        };
        write_lock(&root, "web", &reused);
        let taken = LocalBackend::new(&root)
            .lock("web", &Holder::current())
            .await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(taken.is_ok(), "the lock of a gone run was kept");
    }

    #[tokio::test]
    async fn lock_of_other_host_is_kept() {
        let root = scratch("elsewhere");
        let other = Holder {
            host: "ci-9".into(),
            pid: 42,
            since: "2026-01-01T00:00:00Z".into(),
            user: String::new(),
        };
        write_lock(&root, "web", &other);
        let error = LocalBackend::new(&root)
            .lock("web", &Holder::current())
            .await
            .err();
        assert!(
            matches!(error, Some(BackendError::Locked { .. })),
            "the lock of a run on another host was taken"
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
            user: String::new(),
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

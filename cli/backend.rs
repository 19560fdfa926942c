//! The backend of a stack's lock, journals and applied plans, as the stack's `[backend]` table
//! sets it: a `.linkplan/` folder beside the plan file, or an S3 bucket.

use std::path::{Path, PathBuf};

use linkplan_aws::S3Backend;
use linkplan_engine::journal::{
    Backend, BackendError, Entry, Holder, Journal, LocalBackend, LockGuard, lock_file,
};
use linkplan_engine::observed::hex;
use linkplan_engine::plan_file::Plan;
use linkplan_engine::stack::{BackendConfig, Stack};
use sha2::{Digest, Sha256};

use crate::args::GlobalArgs;
use crate::error::CliError;

/// Builds the backend of `plan`, read from `plan_path`.
///
/// # Errors
/// The plan was made against an endpoint override, such as a local emulator, and the S3
/// backend would call another endpoint. Nothing is sent before this check.
pub async fn for_plan(
    plan: &Plan,
    plan_path: &Path,
    global: &GlobalArgs,
) -> Result<Box<dyn Backend>, CliError> {
    let BackendConfig::S3(config) = &plan.stack.backend else {
        return Ok(Box::new(LocalBackend::beside(plan_path)));
    };
    let backend = S3Backend::new(config, &super::commands::provider_options(global)).await;
    if let Some(planned) = &plan.endpoint_url
        && backend.endpoint_url() != Some(planned.as_str())
    {
        return Err(CliError::new(format!(
            "plan `{}` was made against {planned}, but its S3 backend would call {}",
            plan_path.display(),
            backend.endpoint_url().unwrap_or("the AWS default endpoint")
        ))
        .help("set AWS_ENDPOINT_URL or --endpoint-url as it was when planning, or plan again"));
    }
    Ok(Box::new(backend))
}

/// Builds the backend of `stack`, whose plan files go to `plan_path` by default.
pub async fn for_stack(stack: &Stack, plan_path: &Path, global: &GlobalArgs) -> Box<dyn Backend> {
    match &stack.backend {
        BackendConfig::Local => Box::new(LocalBackend::beside(plan_path)),
        BackendConfig::S3(config) => {
            Box::new(S3Backend::new(config, &super::commands::provider_options(global)).await)
        }
    }
}

/// Locks held together; dropping the guard releases each.
struct Locks(#[allow(dead_code)] Vec<Box<dyn LockGuard>>);

impl LockGuard for Locks {}

/// Takes the lock of `plan`'s stack for `holder`, then opens the plan's journal and reads its
/// entries. The lock is held for as long as the returned guard lives.
///
/// The local backend's folder follows the plan file. So with that backend, the run also takes
/// a lock of the plan's hub VPC for this user on this host ([`host_lock_path`]), and two copies
/// of a plan in two folders cannot run at once.
///
/// # Errors
/// The stack is locked by another run (with the exact `unlock` command), or the backend fails.
pub async fn lock_and_open(
    backend: &dyn Backend,
    plan: &Plan,
    plan_path: &Path,
    holder: &Holder,
) -> Result<(Box<dyn LockGuard>, Box<dyn Journal>, Vec<Entry>), CliError> {
    // The stack's lock first, so that a second run from the same folder gets that lock's
    // message, and the host lock stops only runs from other folders.
    let mut locks = vec![
        backend
            .lock(&plan.stack_name, holder)
            .await
            .map_err(|e| CliError::new(e.to_string()).help(unlock_help(plan_path, plan)))?,
    ];
    if plan.stack.backend == BackendConfig::Local {
        let path = host_lock_path(plan)?;
        let lock = lock_file(&path, &plan.stack_name, holder).map_err(|e| {
            CliError::new(e.to_string()).help(format!(
                "another linkplan run on this host is changing hub VPC `{}`, from a plan file in \
                 another folder (lock {}); wait for it to finish",
                plan.stack.hub.vpc_id,
                path.display()
            ))
        })?;
        locks.push(lock);
    }
    let lock: Box<dyn LockGuard> = Box::new(Locks(locks));
    let journal = backend
        .journal(&plan.stack_name, &plan.id())
        .await
        .map_err(backend_error)?;
    let entries = journal.entries().await.map_err(backend_error)?;
    Ok((lock, journal, entries))
}

/// Returns the path of the host lock of `plan`'s hub: one file per AWS endpoint, hub account,
/// region and VPC, under `$XDG_STATE_HOME/linkplan/locks` (by default
/// `~/.local/state/linkplan/locks`). The file exists only while a run holds it.
///
/// # Errors
/// The folder cannot be created.
pub fn host_lock_path(plan: &Plan) -> Result<PathBuf, CliError> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|dir| !dir.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    let folder = state.join("linkplan").join("locks");
    std::fs::create_dir_all(&folder).map_err(|e| {
        CliError::new(format!("failed to create {}: {e}", folder.display()))
            .help("set XDG_STATE_HOME to a folder this user can write")
    })?;
    let hub = plan.stack.hub_context();
    let account = plan
        .accounts
        .iter()
        .find(|a| a.context == hub)
        .map_or("", |a| a.account_id.as_str());
    let name = hub_lock_name(
        plan.endpoint_url.as_deref(),
        account,
        &hub.region,
        &plan.stack.hub.vpc_id,
    );
    Ok(folder.join(name))
}

/// Returns the file name of the host lock of hub `vpc_id`: the VPC id, then a digest of the
/// endpoint, account, region and VPC.
fn hub_lock_name(endpoint_url: Option<&str>, account: &str, region: &str, vpc_id: &str) -> String {
    // `http://127.0.0.1:5000/` and `http://127.0.0.1:5000` name one endpoint, as for the
    // endpoint check of apply.
    let endpoint = endpoint_url.map_or("aws", |url| url.trim_end_matches('/'));
    let identity = format!("{endpoint}\n{account}\n{region}\n{vpc_id}");
    let digest = hex(&Sha256::digest(identity.as_bytes()));
    format!("{vpc_id}-{}.lock", &digest[..16])
}

/// The part of a rollback marker between the plan id and the run number. After `linkplan
/// rollback` undoes anything, the stack's last applied plan is recorded as
/// `<plan id>-rollback-<n>`, since the state is no longer the one plans made before it saw.
const ROLLBACK_MARKER: &str = "-rollback-";

/// Returns the marker that records the `run`-th rollback of plan `plan_id` as the stack's last
/// change.
pub fn rollback_marker(plan_id: &str, run: usize) -> String {
    format!("{plan_id}{ROLLBACK_MARKER}{run}")
}

/// Reports whether the stack's last change `last` leaves `plan` a state it planned for: no
/// other plan was applied or rolled back since `plan` was made. When `allow_applied`, `plan`
/// itself may be the last applied plan, as for a rollback of a run that completed.
pub fn plan_is_current_with(last: Option<&str>, plan: &Plan, allow_applied: bool) -> bool {
    let plan_id = plan.id();
    let own_rollback = last.is_some_and(|l| {
        l.strip_prefix(plan_id.as_str())
            .is_some_and(|rest| rest.starts_with(ROLLBACK_MARKER))
    });
    last == plan.after_plan.as_deref()
        || own_rollback
        || (allow_applied && last == Some(plan_id.as_str()))
}

/// Rejects going on with a run of `plan` when the stack has had another plan applied or
/// rolled back since `plan` was made. Resuming the run would act on a stale plan, and undoing
/// it would pull objects from under the newer state. `allow_applied` is as for
/// [`plan_is_current_with`].
///
/// # Errors
/// The stack changed since, or the backend cannot be read.
pub async fn check_not_superseded(
    backend: &dyn Backend,
    plan: &Plan,
    plan_path: &Path,
    command: &str,
    allow_applied: bool,
) -> Result<(), CliError> {
    let last = backend
        .last_applied(&plan.stack_name)
        .await
        .map_err(backend_error)?;
    if plan_is_current_with(last.as_deref(), plan, allow_applied) {
        return Ok(());
    }
    let change = match last.as_deref().and_then(|l| l.split_once(ROLLBACK_MARKER)) {
        Some((rolled_back, _)) => format!("had plan {rolled_back} rolled back"),
        None => format!(
            "had plan {} applied",
            last.as_deref().unwrap_or("(none recorded)")
        ),
    };
    Err(CliError::new(format!(
        "stack `{}` {change} after plan `{}` (id {}) was made, so {command} would act on a \
         state that plan never saw",
        plan.stack_name,
        plan_path.display(),
        plan.id()
    ))
    .help(
        "run `linkplan plan` to plan from the live state, which includes what this plan's run \
         left, and apply that plan",
    ))
}

/// Turns a backend error into a command error with its advice.
pub fn backend_error(error: BackendError) -> CliError {
    let help = error.help();
    CliError::new(error.to_string()).help(help)
}

/// Returns the advice for a locked stack, with the exact `unlock` command for the backend of
/// `plan`, read from `plan_path`.
pub fn unlock_help(plan_path: &Path, plan: &Plan) -> String {
    let stack = &plan.stack_name;
    match &plan.stack.backend {
        BackendConfig::Local => {
            let folder = plan_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            format!(
                "wait for that run to finish; if it died on another host, run `linkplan unlock \
                 {stack} --force --backend-dir {}`",
                folder.join(".linkplan").display()
            )
        }
        BackendConfig::S3(_) => format!(
            "wait for that run to finish; if it died, run `linkplan unlock {stack} --force --plan \
             {}`",
            plan_path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_lock_ignores_trailing_slash() {
        let name = |url| hub_lock_name(url, "111111111111", "us-east-1", "vpc-0abc");
        assert_eq!(
            name(Some("http://127.0.0.1:5000/")),
            name(Some("http://127.0.0.1:5000"))
        );
        assert_ne!(name(Some("http://127.0.0.1:5000")), name(None));
        assert!(name(None).starts_with("vpc-0abc-"));
    }
}

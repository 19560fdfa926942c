//! The backend of a stack's lock, journals and applied plans, as the stack's `[backend]` table
//! sets it: a `.linkplan/` folder beside the plan file, or an S3 bucket.

use std::path::Path;

use linkplan_aws::S3Backend;
use linkplan_engine::journal::{
    Backend, BackendError, Entry, Holder, Journal, LocalBackend, LockGuard,
};
use linkplan_engine::plan_file::Plan;
use linkplan_engine::stack::{BackendConfig, Stack};

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

/// Takes the lock of `plan`'s stack for `holder`, then opens the plan's journal and reads its
/// entries. The lock is held for as long as the returned guard lives.
///
/// # Errors
/// The stack is locked by another run (with the exact `unlock` command), or the backend fails.
pub async fn lock_and_open(
    backend: &dyn Backend,
    plan: &Plan,
    plan_path: &Path,
    holder: &Holder,
) -> Result<(Box<dyn LockGuard>, Box<dyn Journal>, Vec<Entry>), CliError> {
    let lock = backend
        .lock(&plan.stack_name, holder)
        .await
        .map_err(|e| CliError::new(e.to_string()).help(unlock_help(plan_path, plan)))?;
    let journal = backend
        .journal(&plan.stack_name, &plan.id())
        .await
        .map_err(backend_error)?;
    let entries = journal.entries().await.map_err(backend_error)?;
    Ok((lock, journal, entries))
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

//! `linkplan unlock`: removes a stack's lock left by an apply that died.
//!
//! The next apply takes over a local lock held by a dead process on the same host. This command
//! is for the other cases, after checking that the holder is really gone: a local lock of a run
//! on another host, and every S3 lock, which is never taken over.
//!
//! The lock is looked up in the backend of `--config` or `--plan` when one is given, and in the
//! local folder `--backend-dir` otherwise.

use std::path::{Path, PathBuf};

use linkplan_engine::config;
use linkplan_engine::journal::{Backend, LocalBackend};
use linkplan_engine::plan_file;

use crate::args::{GlobalArgs, UnlockArgs};
use crate::backend::backend_error;
use crate::error::CliError;
use crate::exit;

pub async fn run(args: &UnlockArgs, global: &GlobalArgs) -> Result<u8, CliError> {
    // The name becomes a folder of the local backend and a key segment of the S3 one, so a
    // name such as `../x` must never reach a backend.
    if !config::is_stack_name(&args.stack) {
        return Err(
            CliError::new(format!("invalid stack name `{}`", args.stack)).help(format!(
                "pass the `name` of the stack's config: {}",
                config::STACK_NAME_RULE
            )),
        );
    }
    let backend = backend_of(args, global).await?;
    let location = backend.lock_location(&args.stack);
    let Some(holder) = backend
        .lock_holder(&args.stack)
        .await
        .map_err(backend_error)?
    else {
        println!("Stack `{}` is not locked (no {location}).", args.stack);
        return Ok(exit::OK);
    };
    if !args.force {
        return Err(
            CliError::new(format!("stack `{}` is locked by {holder}", args.stack))
                .help("check that this run is gone, then run the command again with --force"),
        );
    }
    match backend
        .break_lock(&args.stack)
        .await
        .map_err(backend_error)?
    {
        Some(holder) => println!(
            "Removed the lock of stack `{}`, held by {holder}.",
            args.stack
        ),
        None => println!(
            "Stack `{}` is not locked any more: its holder released the lock.",
            args.stack
        ),
    }
    Ok(exit::OK)
}

/// Returns the backend that holds the lock of `args.stack`.
async fn backend_of(args: &UnlockArgs, global: &GlobalArgs) -> Result<Box<dyn Backend>, CliError> {
    if let Some(path) = &args.config {
        let loaded = config::load(path)
            .map_err(|d| CliError::diagnostics_with_outcome(&d, Some("no lock was removed")))?;
        check_stack(&args.stack, &loaded.stack.name, "config", path)?;
        // `plan` writes plans/<name>.plan by default, so a local lock is in plans/.linkplan.
        let plan_path = PathBuf::from("plans").join(format!("{}.plan", loaded.stack.name));
        return Ok(crate::backend::for_stack(&loaded.stack, &plan_path, global).await);
    }
    if let Some(path) = &args.plan {
        let plan =
            plan_file::read(path).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
        check_stack(&args.stack, &plan.stack_name, "plan file", path)?;
        return crate::backend::for_plan(&plan, path, global).await;
    }
    Ok(Box::new(LocalBackend::new(&args.backend_dir)))
}

/// Rejects a config or plan file of another stack than the one to unlock.
fn check_stack(stack: &str, found: &str, kind: &str, path: &Path) -> Result<(), CliError> {
    if stack == found {
        return Ok(());
    }
    Err(CliError::new(format!(
        "{kind} `{}` is for stack `{found}`, not `{stack}`",
        path.display()
    ))
    .help(format!(
        "run `linkplan unlock {found}`, or name the {kind} of stack `{stack}`"
    )))
}

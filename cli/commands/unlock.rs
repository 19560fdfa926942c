//! `linkplan unlock`: removes a stack's lock left by an apply that died on another host.
//!
//! The next apply takes over a lock held by a dead process on the same host. This command is
//! for the other cases, after checking that the holder is really gone.

use linkplan_engine::journal::LocalBackend;

use crate::args::UnlockArgs;
use crate::error::CliError;
use crate::exit;

pub fn run(args: &UnlockArgs) -> Result<u8, CliError> {
    let backend = LocalBackend::new(&args.backend_dir);
    let lock = args.backend_dir.join(&args.stack).join("lock");
    let Ok(text) = std::fs::read_to_string(&lock) else {
        println!(
            "Stack `{}` is not locked (no {}).",
            args.stack,
            lock.display()
        );
        return Ok(exit::OK);
    };
    let holder = serde_json::from_str::<linkplan_engine::journal::Holder>(&text)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| "an unreadable holder".to_string());
    if !args.force {
        return Err(
            CliError::new(format!("stack `{}` is locked by {holder}", args.stack))
                .help("check that this run is gone, then run the command again with --force"),
        );
    }
    backend
        .break_lock(&args.stack)
        .map_err(|e| CliError::new(e.to_string()))?;
    println!(
        "Removed the lock of stack `{}`, held by {holder}.",
        args.stack
    );
    Ok(exit::OK)
}

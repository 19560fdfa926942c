//! `linkplan apply`: executes a reviewed plan file exactly, or rejects it.
//!
//! Before its first mutation, apply checks, in order: the file's version and digest, that the
//! plan was not applied already, the AWS endpoint, the stack's lock and the plan's earlier runs.
//! It then checks the accounts and that nothing the plan read has changed since, or, for a
//! resumed run, that no newer plan was applied. The confirmation comes last.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use linkplan_engine::apply::{ApplyError, ApplyOptions, ApplyReport, Executor};
use linkplan_engine::journal::{Entry, Holder, Outcome, RunStatus};
use linkplan_engine::observed::Observed;
use linkplan_engine::plan_file::{self, Plan};
use linkplan_engine::provider::Provider;
use linkplan_engine::staleness;

use crate::args::{ApplyArgs, GlobalArgs};
use crate::error::CliError;
use crate::exit;
use crate::progress::LinePrinter;
use crate::render::{self, Palette};

pub async fn run(args: &ApplyArgs, global: &GlobalArgs, palette: &Palette) -> Result<u8, CliError> {
    let plan =
        plan_file::read(&args.plan).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
    let plan_id = plan.id();
    let backend = crate::backend::for_plan(&plan, &args.plan, global).await?;
    let backend_error = crate::backend::backend_error;
    if backend
        .is_applied(&plan.stack_name, &plan_id)
        .await
        .map_err(backend_error)?
    {
        return Err(CliError::new(format!(
            "plan `{}` (id {plan_id}) was already applied",
            args.plan.display()
        ))
        .help("run `linkplan plan` to see what is left to change, and apply the new plan"));
    }

    if plan.steps.is_empty() {
        print!("{}", render::plan_text(&plan, palette));
        return Ok(exit::OK);
    }

    // The plan must run against the endpoint it was made against.
    let provider = super::provider(&plan.stack, global).await?;
    check_endpoint(&args.plan, &plan, provider.as_ref())?;

    // The lock, the plan's earlier runs and the live state are checked before the plan is
    // shown for approval, so that an approved plan is not rejected afterwards.
    let holder = Holder::current();
    let (_lock, mut journal, entries) =
        crate::backend::lock_and_open(backend.as_ref(), &plan, &args.plan, &holder).await?;
    let resuming = check_runs(&args.plan, &plan, &entries, journal.location(), args.resume)?;
    if resuming {
        crate::backend::check_not_superseded(
            backend.as_ref(),
            &plan,
            &args.plan,
            "resuming it",
            false,
        )
        .await?;
        read_for(&args.plan, &plan, provider.as_ref()).await?;
    } else {
        check_current(&args.plan, &plan, provider.as_ref()).await?;
    }

    print!(
        "{}{}",
        render::plan_text(&plan, palette),
        render::warnings_text(&plan, palette)
    );
    if !args.auto_approve {
        confirm_action(
            "apply",
            &format!("perform these actions on stack `{}`", plan.stack_name),
        )?;
    }
    if resuming {
        // The earlier run changed the live state, so the plan's snapshot no longer matches.
        // The journal records what was done, and each unfinished step runs again with its token.
        eprintln!("Resuming the run recorded in {}", journal.location());
    } else {
        eprintln!("Journal: {}", journal.location());
    }
    journal
        .append(&Entry::Started {
            plan_id: plan_id.clone(),
            stack: plan.stack_name.clone(),
            holder,
        })
        .await
        .map_err(backend_error)?;

    let (cancel_sender, cancel) = tokio::sync::watch::channel(false);
    let then = if args.no_rollback {
        "then stopping, since rollback is off"
    } else {
        "then rolling back"
    };
    let path = args.plan.display().to_string();
    tokio::spawn(async move {
        if crate::signals::interrupted().await.is_ok() {
            eprintln!(
                "\nInterrupted: finishing the steps in flight, {then}. Interrupt again to exit at once."
            );
            let _ = cancel_sender.send(true);
        }
        if crate::signals::interrupted().await.is_ok() {
            eprintln!(
                "Exiting at once; the journal is kept. `linkplan rollback {path}` undoes the run, and `linkplan apply --resume {path}` finishes it unless its rollback had begun."
            );
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });

    let options = ApplyOptions {
        parallelism: usize::from(args.parallelism),
        wait_timeout: Duration::from_secs(args.wait_timeout),
        rollback: !args.no_rollback,
    };
    let observer = Arc::new(LinePrinter::new(palette.clone()));
    let executor = Executor::new(Arc::clone(&provider), observer, options, cancel);
    let report = executor.apply(&plan, journal.as_mut()).await.map_err(|e| {
        let help = match e {
            ApplyError::RollbackUnfinished => format!(
                "finish the rollback with `linkplan rollback {}`",
                args.plan.display()
            ),
            _ => format!(
                "the run stopped before its next call; once the journal can be written again, \
                 finish it with `linkplan apply --resume {0}` or undo it with `linkplan rollback \
                 {0}`",
                args.plan.display()
            ),
        };
        CliError::new(e.to_string()).help(help)
    })?;

    print_report(&report, &args.plan, palette);
    super::print_call_counts(provider.as_ref(), global);
    match report.outcome() {
        Outcome::Applied => {
            backend
                .record_applied(&plan.stack_name, &plan_id)
                .await
                .map_err(backend_error)?;
            Ok(exit::OK)
        }
        Outcome::RolledBack => Ok(exit::ROLLED_BACK),
        Outcome::Failed => Ok(exit::INCOMPLETE),
    }
}

/// Checks what the journal of `plan` records of its earlier runs, and returns whether this run
/// resumes an unfinished one.
///
/// # Errors
/// A rollback of the plan stopped half way, the plan was applied already, or a run is
/// unfinished and `resume` is off.
fn check_runs(
    path: &Path,
    plan: &Plan,
    entries: &[Entry],
    journal: String,
    resume: bool,
) -> Result<bool, CliError> {
    let path = path.display();
    match RunStatus::of(entries) {
        RunStatus::RollbackUnfinished => Err(CliError::new(format!(
            "the rollback of a run of plan `{path}` stopped before its end, as recorded in \
             {journal}"
        ))
        .help(format!(
            "finish it with `linkplan rollback {path}`; an undo in flight may have taken effect, \
             so nothing may build on that run"
        ))),
        RunStatus::Applied => Err(CliError::new(format!(
            "plan `{path}` (id {}) was already applied, as recorded in {journal}",
            plan.id()
        ))
        .help("run `linkplan plan` to see what is left to change, and apply the new plan")),
        RunStatus::Unfinished if !resume => Err(CliError::new(format!(
            "plan `{path}` has an unfinished run, recorded in {journal}"
        ))
        .help(format!(
            "finish it with `linkplan apply --resume {path}`, or undo it with `linkplan rollback \
             {path}`"
        ))),
        RunStatus::Unfinished => Ok(true),
        RunStatus::Clear => {
            if resume {
                eprintln!(
                    "Plan `{path}` has no unfinished run to resume: applying it from the start."
                );
            }
            Ok(false)
        }
    }
}

/// Rejects `plan` when the provider would call another AWS endpoint than the plan was made
/// against, so that a plan made on a local emulator never runs against AWS, or the reverse.
pub fn check_endpoint(path: &Path, plan: &Plan, provider: &dyn Provider) -> Result<(), CliError> {
    // `http://127.0.0.1:4566/` and `http://127.0.0.1:4566` name the same endpoint.
    let normalize = |url: Option<String>| url.map(|u| u.trim_end_matches('/').to_string());
    if normalize(provider.endpoint_url()) == normalize(plan.endpoint_url.clone()) {
        return Ok(());
    }
    let describe = |url: &Option<String>| {
        url.clone()
            .unwrap_or_else(|| "the AWS default endpoints".to_string())
    };
    Err(CliError::new(format!(
        "plan `{}` was made against {}, but this run would call {}",
        path.display(),
        describe(&plan.endpoint_url),
        describe(&provider.endpoint_url())
    ))
    .help("set AWS_ENDPOINT_URL or --endpoint-url as it was when planning, or plan again"))
}

/// Reads the live state of `plan`'s stack, and rejects the plan when the accounts behind the
/// credentials are not the ones it was made for.
pub async fn read_for(
    path: &Path,
    plan: &Plan,
    provider: &dyn Provider,
) -> Result<Observed, CliError> {
    let reading = "Reading the live state again to check the accounts and the plan";
    let observed = crate::progress::wait_on(reading, provider.read(&plan.stack))
        .await
        .map_err(super::aws_error)?;
    for account in &plan.accounts {
        let current = observed.account(&account.context);
        if current != Some(account.account_id.as_str()) {
            return Err(CliError::new(format!(
                "plan `{}` was made for account {} in {}, but the credentials now belong to {}",
                path.display(),
                account.account_id,
                account.context.region,
                current.unwrap_or("no account")
            ))
            .help("use the credentials the plan was made with, or plan again"));
        }
    }
    Ok(observed)
}

/// Rejects `plan` when the accounts behind the credentials, or anything the plan read, changed
/// since the plan was made.
async fn check_current(path: &Path, plan: &Plan, provider: &dyn Provider) -> Result<(), CliError> {
    let observed = read_for(path, plan, provider).await?;
    let changed = staleness::compare(&plan.observed, &observed.snapshot(&plan.stack));
    if !changed.is_empty() {
        let objects: Vec<String> = changed.iter().map(|c| format!("`{}`", c.key)).collect();
        let mut error = CliError::new(format!(
            "plan `{}` is stale: {} changed since it was made",
            path.display(),
            objects.join(", ")
        ));
        for change in &changed {
            error = error.detail(change.to_string());
        }
        return Err(error.help("run `linkplan plan` again and review the new plan"));
    }
    Ok(())
}

/// Asks whether to `question` and waits for `yes` on the terminal, and rejects `command`
/// when no terminal is attached.
pub fn confirm_action(command: &str, question: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(format!(
            "{command} needs confirmation, but no terminal is attached"
        ))
        .help(format!(
            "review the plan, then run {command} again with --auto-approve"
        )));
    }
    eprint!(
        "\nDo you want to {question}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    let _ = std::io::stderr().flush();
    let mut response = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut response)
        .map_err(|e| CliError::new(format!("failed to read the response: {e}")))?;
    if response.trim() != "yes" {
        return Err(CliError::new(
            "cancelled because the response was not `yes`; nothing was changed",
        ));
    }
    Ok(())
}

fn print_report(report: &ApplyReport, plan_path: &Path, palette: &Palette) {
    eprintln!();
    match report.outcome() {
        Outcome::Applied => {
            let count = report.completed.len();
            let noun = if count == 1 { "step" } else { "steps" };
            eprintln!(
                "{} {count} {noun} completed.",
                palette.create.apply_to("Apply complete!")
            );
        }
        outcome => {
            for (address, error) in &report.failed {
                eprintln!("{} {address}: {error}", palette.delete.apply_to("error:"));
            }
            if report.cancelled {
                eprintln!("The apply was interrupted.");
            }
            if !report.rolled_back.is_empty() {
                let list: Vec<String> =
                    report.rolled_back.iter().map(ToString::to_string).collect();
                eprintln!("Rolled back: {}", list.join(", "));
            }
            for (address, reason) in &report.not_rolled_back {
                eprintln!(
                    "{} {address} could not be rolled back: {reason}",
                    palette.delete.apply_to("warning:")
                );
            }
            if !report.not_started.is_empty() {
                let list: Vec<String> =
                    report.not_started.iter().map(ToString::to_string).collect();
                eprintln!("Not started: {}", list.join(", "));
            }
            if outcome == Outcome::RolledBack {
                eprintln!("The stack is as it was before this apply.");
            } else {
                let list: Vec<String> = report.completed.iter().map(ToString::to_string).collect();
                // Completed steps keep their effect: a create left its object, a delete its absence.
                eprintln!("Completed and not rolled back: {}", list.join(", "));
                eprintln!(
                    "help: fix the cause above, then finish the plan with `linkplan apply --resume {0}` or undo it with `linkplan rollback {0}`",
                    plan_path.display()
                );
            }
        }
    }
}

//! `linkplan rollback`: undoes, from the journal, what a run of a plan left in place.

use std::sync::Arc;
use std::time::Duration;

use linkplan_engine::apply::{ApplyOptions, Executor, rollback_candidates};
use linkplan_engine::journal::{Entry, Holder, RunStatus};
use linkplan_engine::plan_file;

use crate::args::{GlobalArgs, RollbackArgs};
use crate::error::CliError;
use crate::exit;
use crate::progress::LinePrinter;
use crate::render::Palette;

pub async fn run(
    args: &RollbackArgs,
    global: &GlobalArgs,
    palette: &Palette,
) -> Result<u8, CliError> {
    let plan =
        plan_file::read(&args.plan).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
    let plan_id = plan.id();
    let backend = crate::backend::for_plan(&plan, &args.plan, global).await?;
    let backend_error = crate::backend::backend_error;

    let holder = Holder::current();
    let (_lock, mut journal, entries) =
        crate::backend::lock_and_open(backend.as_ref(), &plan, &args.plan, &holder).await?;
    if RunStatus::of(&entries) == RunStatus::Clear {
        let reason = if entries.iter().any(|e| matches!(e, Entry::Intent { .. })) {
            "its last run was rolled back already"
        } else {
            "its journal records no step"
        };
        println!(
            "Plan `{}` has no run to roll back: {reason} ({}).",
            args.plan.display(),
            journal.location()
        );
        return Ok(exit::OK);
    }
    let status = RunStatus::of(&entries);
    let candidates = rollback_candidates(&entries);
    if candidates.is_empty() {
        // Only deletes were done, and a deleted object cannot be restored.
        let next = if status == RunStatus::Applied {
            "run `linkplan plan` and apply a plan that creates the objects again".to_string()
        } else {
            format!(
                "finish the plan with `linkplan apply --resume {}`, or run `linkplan plan`",
                args.plan.display()
            )
        };
        return Err(CliError::new(format!(
            "plan `{}` has nothing to roll back: its run only deleted objects, and a delete cannot be undone",
            args.plan.display()
        ))
        .help(next));
    }
    crate::backend::check_not_superseded(
        backend.as_ref(),
        &plan,
        &args.plan,
        "rolling it back",
        true,
    )
    .await?;
    let provider = super::provider(&plan.stack, global).await?;
    super::apply::check_endpoint(&args.plan, &plan, provider.as_ref())?;
    super::apply::read_for(&args.plan, &plan, provider.as_ref()).await?;

    let listed: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    println!(
        "Rollback of plan `{}` will undo, in this order: {}",
        args.plan.display(),
        listed.join(", ")
    );
    if !args.auto_approve {
        super::apply::confirm_action(
            "rollback",
            &format!(
                "roll back what plan `{}` did to stack `{}`",
                args.plan.display(),
                plan.stack_name
            ),
        )?;
    }
    eprintln!("Journal: {}", journal.location());
    journal
        .append(&Entry::Started {
            plan_id: plan_id.clone(),
            stack: plan.stack_name.clone(),
            holder,
        })
        .await
        .map_err(backend_error)?;
    let runs = entries
        .iter()
        .filter(|e| matches!(e, Entry::Started { .. }))
        .count()
        + 1;

    // A rollback stopped half way leaves steps in an unknown state, so the first interrupt
    // does not stop it.
    let plan_path = args.plan.display().to_string();
    tokio::spawn(async move {
        if crate::signals::interrupted().await.is_ok() {
            eprintln!(
                "\nInterrupted: the rollback goes on, since stopping it half way leaves steps in an unknown state. Interrupt again to exit at once; `linkplan rollback {plan_path}` then finishes it."
            );
        }
        if crate::signals::interrupted().await.is_ok() {
            eprintln!("Exiting at once; the journal is kept for `linkplan rollback`.");
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
    let (_cancel_sender, cancel) = tokio::sync::watch::channel(false);
    let options = ApplyOptions {
        wait_timeout: Duration::from_secs(args.wait_timeout),
        ..ApplyOptions::default()
    };
    let observer = Arc::new(LinePrinter::new(palette.clone()));
    let executor = Executor::new(provider, observer, options, cancel);
    let report = executor
        .roll_back_journal(&plan, journal.as_mut())
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    // The stack left the state that plans made after this one saw, which rejects their resume
    // and rollback.
    if !report.rolled_back.is_empty() {
        let marker = crate::backend::rollback_marker(&plan_id, runs);
        backend
            .record_applied(&plan.stack_name, &marker)
            .await
            .map_err(backend_error)?;
    }

    eprintln!();
    for (address, reason) in &report.not_rolled_back {
        eprintln!(
            "{} {address} could not be rolled back: {reason}",
            palette.delete.apply_to("warning:")
        );
    }
    if report.completed.is_empty() && report.not_rolled_back.is_empty() {
        let count = report.rolled_back.len();
        let noun = if count == 1 { "step" } else { "steps" };
        eprintln!(
            "{} {count} {noun} undone; the stack is as it was before the plan ran.",
            palette.create.apply_to("Rollback complete!"),
        );
        Ok(exit::OK)
    } else {
        let list: Vec<String> = report.completed.iter().map(ToString::to_string).collect();
        eprintln!("Completed and not rolled back: {}", list.join(", "));
        eprintln!(
            "help: fix the cause above and run `linkplan rollback {}` again, or run `linkplan plan` to plan from the live state",
            args.plan.display()
        );
        Ok(exit::INCOMPLETE)
    }
}

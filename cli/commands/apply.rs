//! `linkplan apply`: executes a reviewed plan file exactly, or rejects it.
//!
//! Before its first mutation, apply checks, in order: the file's version and digest, that the
//! plan was not applied already, the confirmation, the AWS endpoint and accounts, the stack's
//! lock, and that nothing the plan read has changed since.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use linkplan_engine::apply::{ApplyOptions, ApplyReport, Executor};
use linkplan_engine::journal::{Backend, Entry, Holder, LocalBackend, Outcome};
use linkplan_engine::plan_file::{self, Plan};

use crate::args::{ApplyArgs, GlobalArgs};
use crate::error::CliError;
use crate::exit;
use crate::progress::LinePrinter;
use crate::render::{self, Palette};

pub async fn run(args: &ApplyArgs, global: &GlobalArgs, palette: &Palette) -> Result<u8, CliError> {
    let plan =
        plan_file::read(&args.plan).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
    let plan_id = plan.id();
    let backend = LocalBackend::beside(&args.plan);
    let backend_error = |e: linkplan_engine::journal::BackendError| CliError::new(e.to_string());
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

    print!("{}", render::plan_text(&plan, palette));
    if plan.steps.is_empty() {
        return Ok(exit::OK);
    }
    if !args.auto_approve {
        confirm(&plan)?;
    }

    // The plan must run against the endpoint and accounts it was made against.
    let provider = super::provider(&plan.stack, global).await?;
    if provider.endpoint_url() != plan.endpoint_url {
        let describe = |url: &Option<String>| {
            url.clone()
                .unwrap_or_else(|| "the AWS default endpoints".to_string())
        };
        return Err(CliError::new(format!(
            "plan `{}` was made against {}, but this apply would call {}",
            args.plan.display(),
            describe(&plan.endpoint_url),
            describe(&provider.endpoint_url())
        ))
        .help("set AWS_ENDPOINT_URL or --endpoint-url as it was when planning, or plan again"));
    }

    let holder = Holder::current();
    let _lock = backend.lock(&plan.stack_name, &holder).await.map_err(|e| {
        CliError::new(e.to_string())
            .help("wait for that run to finish; if it died, remove the lock file under .linkplan/")
    })?;

    eprintln!("Reading the live state again to check that the plan is still current...");
    let observed = provider.read(&plan.stack).await.map_err(super::aws_error)?;
    for account in &plan.accounts {
        let current = observed.account(&account.context);
        if current != Some(account.account_id.as_str()) {
            return Err(CliError::new(format!(
                "plan `{}` was made for account {} in {}, but the credentials now belong to {}",
                args.plan.display(),
                account.account_id,
                account.context.region,
                current.unwrap_or("no account")
            ))
            .help("use the credentials the plan was made with, or plan again"));
        }
    }
    let current = observed.fingerprints();
    let changed: Vec<&String> = plan
        .observed
        .iter()
        .filter(|(key, print)| current.get(*key) != Some(*print))
        .map(|(key, _)| key)
        .collect();
    if !changed.is_empty() {
        let list: Vec<String> = changed.iter().map(|k| format!("`{k}`")).collect();
        return Err(CliError::new(format!(
            "plan `{}` is stale: {} changed since it was made",
            args.plan.display(),
            list.join(", ")
        ))
        .help("run `linkplan plan` again and review the new plan"));
    }

    let mut journal = backend
        .journal(&plan.stack_name, &plan_id)
        .await
        .map_err(backend_error)?;
    eprintln!("Journal: {}", journal.location());
    journal
        .append(&Entry::Started {
            plan_id: plan_id.clone(),
            stack: plan.stack_name.clone(),
            holder,
        })
        .await
        .map_err(backend_error)?;

    let (cancel_sender, cancel) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nInterrupted: finishing the steps in flight, then rolling back. Press Ctrl-C again to exit at once."
            );
            let _ = cancel_sender.send(true);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "Exiting at once; the journal is kept for `linkplan apply --resume` or `linkplan rollback`."
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
    let executor = Executor::new(provider, observer, options, cancel);
    let report = executor
        .apply(&plan, journal.as_mut())
        .await
        .map_err(|e| CliError::new(e.to_string()))?;

    print_report(&report, palette);
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

/// Asks for `yes` on the terminal, and rejects the apply when no terminal is attached.
fn confirm(plan: &Plan) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(
            CliError::new("apply needs confirmation, but no terminal is attached")
                .help("review the plan, then run apply again with --auto-approve"),
        );
    }
    eprint!(
        "\nDo you want to perform these actions on stack `{}`?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ",
        plan.stack_name
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(format!("failed to read the response: {e}")))?;
    if answer.trim() != "yes" {
        return Err(CliError::new(
            "apply cancelled because the response was not `yes`; nothing was changed",
        ));
    }
    Ok(())
}

fn print_report(report: &ApplyReport, palette: &Palette) {
    eprintln!();
    match report.outcome() {
        Outcome::Applied => {
            eprintln!(
                "{} {} steps completed.",
                palette.create.apply_to("Apply complete!"),
                report.completed.len()
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
                eprintln!("Still in place: {}", list.join(", "));
            }
        }
    }
}

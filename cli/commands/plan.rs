//! `linkplan plan`: reads the live state, checks it, diffs it and writes the plan file.

use std::path::{Path, PathBuf};

use linkplan_engine::checks;
use linkplan_engine::config;
use linkplan_engine::journal::RunStatus;
use linkplan_engine::observed::hex;
use linkplan_engine::plan_file::{self, Plan, PlanOrigin};
use linkplan_engine::planner::{self, Mode};
use sha2::{Digest, Sha256};

use crate::args::{GlobalArgs, PlanArgs};
use crate::error::CliError;
use crate::exit;
use crate::render::{self, Palette};

pub async fn run(args: &PlanArgs, global: &GlobalArgs, palette: &Palette) -> Result<u8, CliError> {
    // 1. The config, checked offline.
    let loaded = config::load(&args.config.config).map_err(|d| CliError::diagnostics(&d))?;
    let stack = loaded.stack;
    for warning in loaded.warnings.warnings() {
        eprintln!("{warning}");
    }

    // 2. The plan file it replaces, if that file is still needed. Any new plan differs from the
    // plan of an unfinished run, since that run changed the live state.
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("plans").join(format!("{}.plan", stack.name)));
    check_overwrite(&out, global).await?;

    // 3. The live state.
    let provider = super::provider(&stack, global).await?;
    let reading = format!("Reading the live state of stack `{}`", stack.name);
    let observed = crate::progress::wait_on(&reading, provider.read(&stack))
        .await
        .map_err(super::aws_error)?;

    // 4. Checks that need the live state; any error stops the plan before a file is written.
    let mut findings = checks::check(&stack, &observed);
    let mode = if args.destroy {
        Mode::Destroy
    } else {
        Mode::Apply
    };
    let planned = match planner::plan(&stack, &observed, mode) {
        Ok(planned) => Some(planned),
        Err(errors) => {
            findings.extend(errors);
            None
        }
    };
    if let Some(planned) = &planned {
        findings.extend(planned.warnings.clone());
        findings.extend(checks::check_plan(&stack, &observed, &planned.steps, mode));
    }
    for warning in findings.warnings() {
        eprintln!("{warning}\n");
    }
    if findings.has_errors() {
        let errors =
            linkplan_engine::diagnostics::Diagnostics(findings.errors().cloned().collect());
        return Err(CliError::diagnostics(&errors));
    }
    let planned = planned.expect("a plan without errors has steps");

    // 5. The plan: the steps in dependency order, with what was read.
    let backend = crate::backend::for_stack(&stack, &out, global).await;
    let after_plan = backend
        .last_applied(&stack.name)
        .await
        .map_err(crate::backend::backend_error)?;
    let origin = PlanOrigin {
        config_digest: format!("sha256:{}", hex(&Sha256::digest(loaded.text.as_bytes()))),
        endpoint_url: provider.endpoint_url(),
        after_plan,
    };
    let warnings = findings.warnings().map(|w| w.summary.clone()).collect();
    let plan = Plan::new(&stack, &observed, planned, mode, warnings, origin).map_err(|e| {
        CliError::new(e.to_string())
            .help("the planner made steps that cannot be ordered, which is a bug in linkplan; report it with the config")
    })?;

    // 6. The plan file.
    print!("{}", render::plan_text(&plan, palette));
    plan_file::write(&out, &plan).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
    if plan.summary.has_changes() {
        eprintln!(
            "\nPlan written to {}. Review it, then run: linkplan apply {}",
            out.display(),
            out.display()
        );
    } else {
        eprintln!("\nPlan written to {}.", out.display());
    }

    super::print_call_counts(provider.as_ref(), global);
    let code = if args.detailed_exitcode && plan.summary.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    };
    Ok(code)
}

/// Rejects writing a new plan over the plan file at `out` while that file is the only way to
/// finish or undo a run. That is the case when its plan's run did not finish and was not
/// applied, and no newer plan was applied or rolled back since.
///
/// # Errors
/// The file at `out` is still needed, or its backend cannot be read.
async fn check_overwrite(out: &Path, global: &GlobalArgs) -> Result<(), CliError> {
    // An absent or unreadable file cannot be resumed or rolled back anyway.
    let Ok(old) = plan_file::read(out) else {
        return Ok(());
    };
    // A plan made against another endpoint cannot be resumed from here either.
    let Ok(backend) = crate::backend::for_plan(&old, out, global).await else {
        return Ok(());
    };
    let backend_error = crate::backend::backend_error;
    let old_id = old.id();
    let journal = backend
        .journal(&old.stack_name, &old_id)
        .await
        .map_err(backend_error)?;
    let entries = journal.entries().await.map_err(backend_error)?;
    let status = RunStatus::of(&entries);
    if matches!(status, RunStatus::Clear | RunStatus::Applied) {
        return Ok(());
    }
    let applied = backend
        .is_applied(&old.stack_name, &old_id)
        .await
        .map_err(backend_error)?;
    let last = backend
        .last_applied(&old.stack_name)
        .await
        .map_err(backend_error)?;
    if applied || !crate::backend::plan_is_current_with(last.as_deref(), &old, true) {
        return Ok(());
    }
    let path = out.display();
    let finish = if status == RunStatus::RollbackUnfinished {
        format!("finish that run's rollback with `linkplan rollback {path}`")
    } else {
        format!(
            "finish that run with `linkplan apply --resume {path}` or undo it with `linkplan \
             rollback {path}`"
        )
    };
    Err(CliError::new(format!(
        "plan file `{path}` contains plan {old_id}, whose run did not finish (journal {}); writing \
         the new plan there would lose it",
        journal.location()
    ))
    .help(format!(
        "{finish}, or write the new plan elsewhere with `--out`"
    )))
}

//! `linkplan plan`: reads the live state, checks it, diffs it and writes the plan file.

use std::path::PathBuf;

use linkplan_engine::checks;
use linkplan_engine::config;
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

    // 2. The live state.
    let provider = super::provider(&stack, global).await?;
    let reading = format!("Reading the live state of stack `{}`", stack.name);
    let observed = crate::progress::wait_on(&reading, provider.read(&stack))
        .await
        .map_err(super::aws_error)?;

    // 3. Checks that need the live state; any error stops the plan before a file is written.
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

    // 4. The plan: the steps in dependency order, with what was read.
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("plans").join(format!("{}.plan", stack.name)));
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

    // 5. The plan file.
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

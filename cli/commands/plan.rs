//! `linkplan plan`: reads the live state, checks it, diffs it and writes the plan file.

use std::path::PathBuf;

use linkplan_engine::checks;
use linkplan_engine::config;
use linkplan_engine::graph::StepGraph;
use linkplan_engine::observed::hex;
use linkplan_engine::plan_file::{self, FORMAT_VERSION, Plan, PlanAccount, Summary};
use linkplan_engine::planner::{self, Mode};
use linkplan_engine::step::Step;
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
    eprintln!("Reading the live state of stack `{}`...", stack.name);
    let observed = provider.read(&stack).await.map_err(super::aws_error)?;

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

    // 4. The steps in dependency order.
    let graph = StepGraph::new(&planned.steps).map_err(|e| CliError::new(e.to_string()))?;
    let order = graph.order().map_err(|e| CliError::new(e.to_string()))?;
    let mut steps: Vec<Step> = Vec::with_capacity(order.len());
    for address in &order {
        let step = planned
            .steps
            .iter()
            .find(|s| &s.address == address)
            .expect("ordered steps exist");
        steps.push(step.clone());
    }
    let mut unchanged = planned.unchanged;
    unchanged.sort();
    unchanged.dedup();

    // 5. The plan file.
    let accounts = observed
        .identities
        .iter()
        .map(|(context, identity)| PlanAccount {
            context: context.clone(),
            account_id: identity.account_id.clone(),
        })
        .collect();
    let plan = Plan {
        format_version: FORMAT_VERSION,
        linkplan_version: env!("CARGO_PKG_VERSION").to_string(),
        stack_name: stack.name.clone(),
        mode,
        config_digest: format!("sha256:{}", hex(&Sha256::digest(loaded.text.as_bytes()))),
        endpoint_url: provider.endpoint_url(),
        accounts,
        summary: Summary::of(&steps, unchanged.len()),
        unchanged,
        warnings: findings.warnings().map(|w| w.summary.clone()).collect(),
        stack: stack.clone(),
        steps,
        observed: observed.fingerprints(&stack),
    };
    print!("{}", render::plan_text(&plan, palette));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("plans").join(format!("{}.plan", stack.name)));
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

    let code = if args.detailed_exitcode && plan.summary.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    };
    Ok(code)
}

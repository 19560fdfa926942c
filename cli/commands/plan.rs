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

    // 4. The steps in dependency order.
    let graph_error = |e: linkplan_engine::graph::GraphError| {
        CliError::new(e.to_string())
            .help("the planner made steps that cannot be ordered, which is a bug in linkplan; report it with the config")
    };
    let graph = StepGraph::new(&planned.steps).map_err(graph_error)?;
    let order = graph.order().map_err(graph_error)?;
    // A map, not a search per address, keeps this linear in the number of steps.
    let by_address: std::collections::BTreeMap<_, &Step> =
        planned.steps.iter().map(|s| (&s.address, s)).collect();
    let steps: Vec<Step> = order
        .iter()
        .map(|address| (*by_address[address]).clone())
        .collect();
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
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("plans").join(format!("{}.plan", stack.name)));
    let backend = crate::backend::for_stack(&stack, &out, global).await;
    let after_plan = backend
        .last_applied(&stack.name)
        .await
        .map_err(crate::backend::backend_error)?;
    let plan = Plan {
        format_version: FORMAT_VERSION,
        linkplan_version: env!("CARGO_PKG_VERSION").to_string(),
        stack_name: stack.name.clone(),
        mode,
        config_digest: format!("sha256:{}", hex(&Sha256::digest(loaded.text.as_bytes()))),
        endpoint_url: provider.endpoint_url(),
        after_plan,
        accounts,
        summary: Summary::of(&steps, unchanged.len()),
        unchanged,
        warnings: findings.warnings().map(|w| w.summary.clone()).collect(),
        drift: planned.drift,
        stack: stack.clone(),
        steps,
        observed: observed.snapshot(&stack),
    };
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

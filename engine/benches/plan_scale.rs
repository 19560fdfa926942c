//! Plan and render time and peak memory of a synthetic stack, without AWS.
//!
//! ```text
//! cargo bench -p linkplan-engine --bench plan_scale -- RESOURCES [new|applied]
//! ```
//!
//! The stack is a hub with as many spokes as it takes to reach about RESOURCES planned objects
//! (steps plus unchanged ones), spread over four regions. Its live state is one of two:
//!
//! - `new` (the default): every VPC exists, and nothing of the stack yet, so every object is
//!   a step;
//! - `applied`: the state after that plan was applied, so the plan finds no changes and every
//!   object is compared with its live counterpart. This is the plan of every pull request and
//!   drift check.
//!
//! It then runs what `linkplan plan` runs after its read: config parsing, the checks, the
//! planner, the plan's assembly (step order and snapshot), the text view and the plan file.
//! It prints one line of `key=value` pairs with the time of each phase and the process's peak
//! resident memory while it plans (`VmHWM` of `/proc/self/status`, so Linux only). `scripts/bench` runs it
//! once per size and state, in a new process each time, so that each peak belongs to one run.

use std::time::{Duration, Instant};

use linkplan_engine::checks;
use linkplan_engine::config;
use linkplan_engine::observed::Observed;
use linkplan_engine::plan_file::{self, Plan, PlanOrigin};
use linkplan_engine::planner::{self, Mode};

// The text view of the CLI, compiled here as it is, so the render time is that of the view
// `linkplan plan` prints. It needs only the engine and the `console` crate.
#[allow(dead_code)]
#[path = "../../cli/render.rs"]
mod render;

// The engine tests' builders: the synthetic stack and the in-memory apply of its plan.
#[path = "../tests/support/mod.rs"]
mod support;

/// The time of each phase of one plan.
#[derive(Default)]
struct Timings {
    parse: Duration,
    check: Duration,
    plan: Duration,
    assemble: Duration,
    render_text: Duration,
    render_file: Duration,
}

impl Timings {
    fn plan_total(&self) -> Duration {
        self.parse + self.check + self.plan + self.assemble
    }

    fn render_total(&self) -> Duration {
        self.render_text + self.render_file
    }
}

/// Runs `phase`, adds its time to `total`, and returns its output.
fn timed<T>(total: &mut Duration, phase: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let output = phase();
    *total += started.elapsed();
    output
}

/// Plans the stack of `text` against `observed`, as `linkplan plan` does after its read, and
/// returns the plan, the sizes of both views and the timings.
fn plan_and_render(text: &str, observed: &Observed) -> (Plan, usize, Timings) {
    let mut timings = Timings::default();
    let loaded = timed(&mut timings.parse, || config::parse("linkplan.toml", text))
        .unwrap_or_else(|diagnostics| panic!("the synthetic config is invalid:\n{diagnostics}"));
    let stack = loaded.stack;

    let findings = timed(&mut timings.check, || checks::check(&stack, observed));
    assert!(!findings.has_errors(), "checks failed:\n{findings}");
    let planned = timed(&mut timings.plan, || {
        let planned = planner::plan(&stack, observed, Mode::Apply);
        if let Ok(planned) = &planned {
            let found = checks::check_plan(&stack, observed, &planned.steps, Mode::Apply);
            assert!(!found.has_errors(), "plan checks failed:\n{found}");
        }
        planned
    })
    .unwrap_or_else(|errors| panic!("planning failed:\n{errors}"));
    let origin = PlanOrigin {
        config_digest: "sha256:synthetic".to_string(),
        ..PlanOrigin::default()
    };
    let plan = timed(&mut timings.assemble, || {
        Plan::new(&stack, observed, planned, Mode::Apply, Vec::new(), origin)
    })
    .expect("the planned steps can be ordered");

    let palette = render::Palette::new(false);
    let text_view = timed(&mut timings.render_text, || {
        render::plan_text(&plan, &palette)
    });
    let (file, _digest) = timed(&mut timings.render_file, || plan_file::render(&plan));
    (plan, text_view.len() + file.len(), timings)
}

/// Runs the measured plan: [`plan_and_render`], in a function of its own so that
/// `valgrind --tool=callgrind --toggle-collect=plan_scale::measured_plan` counts the
/// instructions of this plan alone, without the setup.
#[inline(never)]
fn measured_plan(text: &str, observed: &Observed) -> (Plan, usize, Timings) {
    plan_and_render(text, observed)
}

/// Returns the live state of the stack of `text` in `state`: `new` or `applied`.
fn live_state(text: &str, state: &str) -> Observed {
    let stack = config::parse("linkplan.toml", text)
        .unwrap_or_else(|diagnostics| panic!("the synthetic config is invalid:\n{diagnostics}"))
        .stack;
    let mut observed = support::synthetic::observed_before_apply(&stack);
    if state == "applied" {
        let (plan, _, _) = plan_and_render(text, &observed);
        support::applied::apply_steps(&mut observed, &plan.steps);
    }
    observed
}

fn resources(plan: &Plan) -> usize {
    plan.steps.len() + plan.unchanged.len()
}

/// The size the plan-and-render targets are set for, and the targets.
const TARGET_RESOURCES: usize = 10_000;
const TARGET_TOTAL: Duration = Duration::from_millis(200);
const TARGET_PEAK_KB: u64 = 100 * 1024;

/// Reads a field in kB of `/proc/self/status`, such as `VmHWM`.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench` to a bench without the test harness.
    let arguments: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let target: usize = arguments
        .first()
        .map(|arg| arg.parse().expect("RESOURCES is a whole number"))
        .unwrap_or(TARGET_RESOURCES);
    let state = arguments.get(1).map_or("new", String::as_str);
    assert!(
        matches!(state, "new" | "applied"),
        "the state is `new` or `applied`, not `{state}`"
    );

    // A stack without spokes, then one with ten, give the objects per spoke.
    let count_for = |spokes: usize| {
        let text = support::synthetic::config_text(spokes);
        let (plan, _, _) = plan_and_render(&text, &live_state(&text, "new"));
        resources(&plan)
    };
    let base = count_for(0);
    let per_spoke = (count_for(10) - base) / 10;
    let spokes = target.saturating_sub(base).div_ceil(per_spoke.max(1));

    let text = support::synthetic::config_text(spokes);
    let observed = live_state(&text, state);
    // The peak then covers the measured plan and the live state it starts from, not the
    // setup before it. Writing 5 to `clear_refs` resets `VmHWM` (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs is writable");
    let (plan, output_bytes, timings) = measured_plan(&text, &observed);
    if state == "applied" {
        assert!(
            plan.steps.is_empty(),
            "the applied stack still plans {} steps",
            plan.steps.len()
        );
    }
    let count = resources(&plan);
    let total = timings.plan_total() + timings.render_total();
    let per_resource_us = total.as_secs_f64() * 1e6 / count as f64;
    let peak_kb = status_kb("VmHWM").expect("/proc/self/status has VmHWM");
    println!(
        "state={state} resources={count} spokes={spokes} steps={} plan_ms={} render_ms={} \
         total_ms={} us_per_resource={per_resource_us:.2} parse_ms={} check_ms={} planner_ms={} \
         assemble_ms={} text_ms={} file_ms={} output_bytes={output_bytes} peak_rss_mb={:.1}",
        plan.steps.len(),
        millis(timings.plan_total()),
        millis(timings.render_total()),
        millis(total),
        millis(timings.parse),
        millis(timings.check),
        millis(timings.plan),
        millis(timings.assemble),
        millis(timings.render_text),
        millis(timings.render_file),
        peak_kb as f64 / 1024.0,
    );
    // The targets are set for 10,000 objects; the other sizes show how the cost grows.
    if target == TARGET_RESOURCES {
        let met = total < TARGET_TOTAL && peak_kb < TARGET_PEAK_KB;
        println!(
            "  target for {TARGET_RESOURCES} objects: total < {} ms, peak RSS < {} MB: {}",
            TARGET_TOTAL.as_millis(),
            TARGET_PEAK_KB / 1024,
            if met { "met" } else { "missed" }
        );
    }
}

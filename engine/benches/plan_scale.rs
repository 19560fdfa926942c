//! Plan and render time and peak memory of a synthetic stack, without AWS.
//!
//! `cargo bench -p linkplan-engine --bench plan_scale -- RESOURCES` builds the config of a hub
//! with as many spokes as it takes to reach about RESOURCES planned objects (steps plus
//! unchanged), spread over four regions. Its live state has every VPC, and nothing of the stack
//! yet. It then runs what `linkplan plan` runs after the read: config
//! parsing, the checks, the planner, the step graph's order, the text view and the plan file.
//! It prints one line of `key=value` pairs with the time of each phase and the process's
//! peak resident memory (`VmHWM` of `/proc/self/status`, so Linux only). `scripts/bench` runs it
//! once per size, in a new process each time, so that each peak belongs to one size.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use linkplan_engine::checks;
use linkplan_engine::config;
use linkplan_engine::graph::StepGraph;
use linkplan_engine::observed::{
    Identity, Observed, RouteTableState, ServiceLookup, ServiceState, SubnetState, VpcState,
};
use linkplan_engine::plan_file::{self, FORMAT_VERSION, Plan, PlanAccount, Summary};
use linkplan_engine::planner::{self, Mode};
use linkplan_engine::stack::Stack;
use linkplan_engine::step::Step;

// The text view of the CLI, compiled here as it is, so the render time is that of the view
// `linkplan plan` prints. It needs only the engine and the `console` crate.
#[allow(dead_code)]
#[path = "../../cli/render.rs"]
mod render;

const ACCOUNT: &str = "111111111111";
const SPOKE_REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"];
const HUB_ZONES: [(&str, &str); 2] = [("us-east-1a", "use1-az1"), ("us-east-1b", "use1-az2")];

/// Returns the config text of a hub with `spokes` spokes, each with a /24 of its own.
fn config_text(spokes: usize) -> String {
    let mut text = String::from(
        "name = \"scale\"\n\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-f0000000000000000\"\n\
         subnet_ids = [\"subnet-a0000000000000000\", \"subnet-b0000000000000000\"]\n\
         route_table_ids = [\"rtb-f0000000000000000\"]\n",
    );
    for index in 0..spokes {
        let region = SPOKE_REGIONS[index % SPOKE_REGIONS.len()];
        text.push_str(&format!(
            "\n[[spoke]]\nname = \"spoke{index}\"\nregion = \"{region}\"\n\
             vpc_id = \"vpc-{index:017x}\"\nroute_table_ids = [\"rtb-{index:017x}\"]\n"
        ));
    }
    text
}

/// Returns the CIDR of spoke `index`: 10.1.0.0/24, 10.1.1.0/24, and so on, after the hub's
/// 10.0.0.0/16.
fn spoke_cidr(index: usize) -> String {
    format!("10.{}.{}.0/24", index / 256 + 1, index % 256)
}

fn vpc(vpc_id: &str, region: &str, cidr: &str) -> VpcState {
    VpcState {
        vpc_id: vpc_id.to_string(),
        region: region.to_string(),
        owner_id: ACCOUNT.to_string(),
        cidrs: vec![cidr.parse().expect("a valid CIDR")],
        dns_support: true,
        dns_hostnames: true,
        amazon_dns: Some(true),
        internet_route: Some(true),
    }
}

/// Returns the live state of `stack` before its first apply: every VPC, subnet, route table
/// and service exists, and nothing the stack makes does.
fn observed_before_apply(stack: &Stack) -> Observed {
    let mut observed = Observed::default();
    let identity = Identity {
        account_id: ACCOUNT.to_string(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/bench"),
    };
    for context in stack.contexts() {
        observed.identities.push((context, identity.clone()));
    }

    let hub = &stack.hub;
    let hub_vpc = vpc(&hub.vpc_id, &hub.region, "10.0.0.0/16");
    observed.vpcs.insert(hub.vpc_id.clone(), Some(hub_vpc));
    for (index, subnet_id) in hub.subnet_ids.iter().enumerate() {
        let (zone, zone_id) = HUB_ZONES[index % HUB_ZONES.len()];
        let subnet = SubnetState {
            subnet_id: subnet_id.clone(),
            vpc_id: hub.vpc_id.clone(),
            availability_zone: zone.to_string(),
            availability_zone_id: zone_id.to_string(),
            cidr: format!("10.0.{index}.0/24"),
        };
        observed.subnets.insert(subnet_id.clone(), Some(subnet));
    }
    let zone_ids: BTreeMap<String, String> = HUB_ZONES
        .iter()
        .map(|(zone, id)| (zone.to_string(), id.to_string()))
        .collect();
    observed.zone_ids.insert(hub.region.clone(), zone_ids);
    for service in &stack.services {
        let state = ServiceState {
            service_name: service.service_name.clone(),
            availability_zone_ids: HUB_ZONES.iter().map(|(_, id)| id.to_string()).collect(),
            acceptance_required: false,
            private_dns_name: None,
        };
        observed
            .services
            .insert(service.service_name.clone(), ServiceLookup::Found(state));
    }
    for table in &hub.route_table_ids {
        let state = route_table(table, &hub.vpc_id);
        observed.route_tables.insert(table.clone(), Some(state));
    }

    for (index, spoke) in stack.spokes.iter().enumerate() {
        let state = vpc(&spoke.vpc_id, &spoke.region, &spoke_cidr(index));
        observed.vpcs.insert(spoke.vpc_id.clone(), Some(state));
        for table in &spoke.route_table_ids {
            let state = route_table(table, &spoke.vpc_id);
            observed.route_tables.insert(table.clone(), Some(state));
        }
    }
    observed
}

fn route_table(table_id: &str, vpc_id: &str) -> RouteTableState {
    RouteTableState {
        route_table_id: table_id.to_string(),
        vpc_id: vpc_id.to_string(),
        routes: Vec::new(),
    }
}

/// The time of each phase of one plan.
#[derive(Default)]
struct Timings {
    parse: Duration,
    check: Duration,
    plan: Duration,
    order: Duration,
    snapshot: Duration,
    render_text: Duration,
    render_file: Duration,
}

impl Timings {
    fn plan_total(&self) -> Duration {
        self.parse + self.check + self.plan + self.order + self.snapshot
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

/// Plans the stack of `text` against the state `observe` returns for it, as `linkplan plan`
/// does after its read, and returns the plan, the sizes of both views and the timings.
fn plan_and_render(text: &str, observe: impl Fn(&Stack) -> Observed) -> (Plan, usize, Timings) {
    let mut timings = Timings::default();
    let loaded = timed(&mut timings.parse, || config::parse("linkplan.toml", text))
        .unwrap_or_else(|diagnostics| panic!("the synthetic config is invalid:\n{diagnostics}"));
    let stack = loaded.stack;
    let observed = observe(&stack);

    let findings = timed(&mut timings.check, || checks::check(&stack, &observed));
    assert!(!findings.has_errors(), "checks failed:\n{findings}");
    let planned = timed(&mut timings.plan, || {
        planner::plan(&stack, &observed, Mode::Apply)
    })
    .unwrap_or_else(|errors| panic!("planning failed:\n{errors}"));
    let steps = timed(&mut timings.order, || ordered(planned.steps));

    let mut unchanged = planned.unchanged;
    unchanged.sort();
    unchanged.dedup();
    let plan = Plan {
        format_version: FORMAT_VERSION,
        linkplan_version: env!("CARGO_PKG_VERSION").to_string(),
        stack_name: stack.name.clone(),
        mode: Mode::Apply,
        config_digest: "sha256:synthetic".to_string(),
        endpoint_url: None,
        after_plan: None,
        accounts: observed
            .identities
            .iter()
            .map(|(context, identity)| PlanAccount {
                context: context.clone(),
                account_id: identity.account_id.clone(),
            })
            .collect(),
        summary: Summary::of(&steps, unchanged.len()),
        unchanged,
        warnings: Vec::new(),
        drift: planned.drift,
        stack: stack.clone(),
        steps,
        observed: timed(&mut timings.snapshot, || observed.snapshot(&stack)),
    };
    let palette = render::Palette::new(false);
    let text_view = timed(&mut timings.render_text, || {
        render::plan_text(&plan, &palette)
    });
    let (file, _digest) = timed(&mut timings.render_file, || plan_file::render(&plan));
    (plan, text_view.len() + file.len(), timings)
}

/// Returns `steps` in the order of their graph.
fn ordered(steps: Vec<Step>) -> Vec<Step> {
    let graph = StepGraph::new(&steps).expect("the planned steps form a graph");
    let order = graph.order().expect("the planned steps have no cycle");
    let mut by_address: BTreeMap<_, Step> =
        steps.into_iter().map(|s| (s.address.clone(), s)).collect();
    order
        .iter()
        .map(|address| {
            by_address
                .remove(address)
                .expect("every ordered step exists")
        })
        .collect()
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
    let target: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("RESOURCES is a whole number"))
        .unwrap_or(10_000);

    // A stack without spokes, then one with ten, give the objects per spoke.
    let (empty, _, _) = plan_and_render(&config_text(0), observed_before_apply);
    let (ten, _, _) = plan_and_render(&config_text(10), observed_before_apply);
    let base = resources(&empty);
    let per_spoke = (resources(&ten) - base) / 10;
    let spokes = target.saturating_sub(base).div_ceil(per_spoke.max(1));

    let text = config_text(spokes);
    let (plan, output_bytes, timings) = plan_and_render(&text, observed_before_apply);
    let count = resources(&plan);
    let total = timings.plan_total() + timings.render_total();
    let per_resource_us = total.as_secs_f64() * 1e6 / count as f64;
    let peak_kb = status_kb("VmHWM").expect("/proc/self/status has VmHWM");
    println!(
        "resources={count} spokes={spokes} steps={} plan_ms={} render_ms={} total_ms={} \
         us_per_resource={per_resource_us:.2} parse_ms={} check_ms={} planner_ms={} order_ms={} \
         snapshot_ms={} text_ms={} file_ms={} output_bytes={output_bytes} peak_rss_mb={:.1}",
        plan.steps.len(),
        millis(timings.plan_total()),
        millis(timings.render_total()),
        millis(total),
        millis(timings.parse),
        millis(timings.check),
        millis(timings.plan),
        millis(timings.order),
        millis(timings.snapshot),
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

//! The AWS half of `scripts/bench`: call counts and wall times of `linkplan` against moto,
//! behind the loopback proxy with a fixed delay on every request.
//!
//! ```text
//! bench --linkplan target/release/linkplan [--delay-ms 50] [--spokes 1,10,50] [--runs 9]
//! ```
//!
//! 1. For each spoke count N, a hub in us-east-1 and N spokes spread over four regions are
//!    built and applied without delay. Then, with the delay on, a plan that finds no changes
//!    is timed and its calls are counted by the proxy.
//! 2. A hub without spokes is planned, then applied with the delay on and `-v`, `--runs` times.
//!    The apply's longest chain of dependent calls is the read before its steps, whose depth
//!    the proxy's timestamps give, followed by the heaviest chain of steps, each step weighed
//!    by its calls in the `-v` report. The median run is compared with that chain.
//!
//! Each measurement starts a moto server of its own on 127.0.0.1, so that the account contains
//! one hosted zone of the name, as in production, and no `scripts/local-aws stop` elsewhere
//! can end it mid-run. Every request goes to that server
//! through the proxy, with the testkit's dummy credentials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use linkplan_engine::plan_file;
use linkplan_testkit::{FaultProxy, LocalVpc, MotoServer, ProviderSide, RequestRecord, VpcSpec};

/// Regions of the spokes, round robin: the hub's own and three others.
const SPOKE_REGIONS: [(&str, &str); 4] = [
    ("eu-west-1", "euw1-az1"),
    ("us-west-2", "usw2-az1"),
    ("ap-southeast-2", "apse2-az1"),
    ("us-east-1", "use1-az1"),
];

/// The spoke count the no-change plan's targets are set for, and its wall-time target.
const TARGET_SPOKES: usize = 50;
const PLAN_TARGET_WALL: Duration = Duration::from_millis(1500);

/// The fresh-hub apply's target: its wall time over its longest chain of dependent calls.
const APPLY_TARGET_RATIO: f64 = 1.5;

/// Returns how a figure compares with its target.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Fixture scripts run at once when a stack's VPCs are made; each takes about a second.
const FIXTURE_THREADS: usize = 4;

struct Options {
    linkplan: PathBuf,
    delay: Duration,
    spoke_counts: Vec<usize>,
    runs: usize,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut linkplan = None;
    let mut delay = Duration::from_millis(50);
    let mut spoke_counts = vec![1, 10, 50];
    let mut runs = 9;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--linkplan" => linkplan = Some(PathBuf::from(value()?)),
            "--delay-ms" => delay = Duration::from_millis(value()?.parse()?),
            "--spokes" => {
                spoke_counts = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--spokes takes numbers separated by commas, such as 1,10,50")?;
            }
            "--runs" => {
                runs = value()?
                    .parse()
                    .context("--runs takes a number, such as 9")?
            }
            other => bail!("unknown argument {other}: see the usage at the top of bench.rs"),
        }
    }
    let linkplan = linkplan.context("--linkplan PATH is required")?;
    ensure!(
        linkplan.is_file(),
        "linkplan binary {} not found: build it first",
        linkplan.display()
    );
    // Each run's working folder is the stack's, so a relative path would not resolve there.
    let linkplan = std::fs::canonicalize(&linkplan)
        .with_context(|| format!("resolving {}", linkplan.display()))?;
    Ok(Options {
        linkplan,
        delay,
        spoke_counts,
        runs: runs.max(1),
    })
}

/// A stack's config folder and its spoke VPCs.
struct Stack {
    name: String,
    dir: PathBuf,
    spokes: Vec<LocalVpc>,
}

/// Makes the hub and `spokes` spoke VPCs of a new stack and writes its config.
fn make_stack(
    server: &MotoServer,
    provider: &ProviderSide,
    name: &str,
    spokes: usize,
) -> anyhow::Result<Stack> {
    let hub = server.vpc(VpcSpec::new(
        "us-east-1",
        "10.0.0.0/16",
        &["use1-az1", "use1-az2"],
    ));
    let specs: Vec<VpcSpec> = (0..spokes)
        .map(|index| {
            let (region, zone) = SPOKE_REGIONS[index % SPOKE_REGIONS.len()];
            // 10.1.0.0/20, 10.1.16.0/20, ...: distinct for up to 4,000 spokes.
            let block = index + 16;
            let cidr = format!("10.{}.{}.0/20", block / 16, (block % 16) * 16);
            VpcSpec::new(region, &cidr, &[zone])
        })
        .collect();
    let spokes = make_vpcs(server, specs);

    let dir = std::env::temp_dir().join(format!("linkplan-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("linkplan.toml"),
        config(name, &hub, &spokes, provider),
    )
    .context("writing the config")?;
    Ok(Stack {
        name: name.to_string(),
        dir,
        spokes,
    })
}

/// Makes the VPCs of `specs`, a few at a time, in the order given.
fn make_vpcs(server: &MotoServer, specs: Vec<VpcSpec>) -> Vec<LocalVpc> {
    let mut made = Vec::with_capacity(specs.len());
    for chunk in specs.chunks(FIXTURE_THREADS) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|spec| scope.spawn(|| server.vpc(spec.clone())))
                .collect();
            for handle in handles {
                made.push(handle.join().expect("a fixture thread panicked"));
            }
        });
    }
    made
}

fn config(name: &str, hub: &LocalVpc, spokes: &[LocalVpc], provider: &ProviderSide) -> String {
    let quoted = |ids: &[String]| {
        ids.iter()
            .map(|id| format!("{id:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let services = &provider.services;
    let mut text = format!(
        "name = \"{name}\"\n\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"{}\"\n\
         subnet_ids = [{}]\nroute_table_ids = [\"{}\"]\n\n[services]\nrelay = \"{}\"\n\
         agents = \"{}\"\ndsmim = \"{}\"\napp = \"{}\"\n",
        hub.vpc_id,
        quoted(&hub.subnet_ids),
        hub.route_table_ids[0],
        services.relay,
        services.agents,
        services.dsmim,
        services.app,
    );
    for (index, spoke) in spokes.iter().enumerate() {
        text.push_str(&format!(
            "\n[[spoke]]\nname = \"spoke{index}\"\nregion = \"{}\"\nvpc_id = \"{}\"\n\
             route_table_ids = [\"{}\"]\n",
            spoke.region, spoke.vpc_id, spoke.route_table_ids[0]
        ));
    }
    text
}

/// One timed run of `linkplan`.
struct Timed {
    output: Output,
    wall: Duration,
    calls: u32,
}

/// Runs `linkplan ARGS` in the stack's folder through `proxy`, and counts its requests.
fn linkplan(
    options: &Options,
    proxy: &FaultProxy,
    stack: &Stack,
    args: &[&str],
    expected_code: i32,
) -> anyhow::Result<Timed> {
    proxy.reset_counts();
    let mut command: Command = proxy.command(&options.linkplan);
    command
        .current_dir(&stack.dir)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {}", options.linkplan.display()))?;
    let wall = started.elapsed();
    let code = output.status.code().unwrap_or(-1);
    ensure!(
        code == expected_code,
        "linkplan {} on stack {} exited with {code}, expected {expected_code}:\n{}",
        args.join(" "),
        stack.name,
        String::from_utf8_lossy(&output.stderr)
    );
    let calls = proxy.counts().values().sum();
    Ok(Timed {
        output,
        wall,
        calls,
    })
}

/// Measures a no-change plan of a hub and `spokes` spokes.
fn bench_plan(options: &Options, spokes: usize) -> anyhow::Result<()> {
    let server = MotoServer::start().context("starting moto")?;
    let provider = server.provider_side();
    let server = &server;
    let stack = make_stack(server, &provider, &format!("bench{spokes}"), spokes)?;
    let proxy = FaultProxy::start(&server.endpoint);
    linkplan(options, &proxy, &stack, &["plan", "--out", "setup.plan"], 0)?;
    linkplan(
        options,
        &proxy,
        &stack,
        &["apply", "--auto-approve", "setup.plan"],
        0,
    )?;

    proxy.set_delay(options.delay);
    let args = ["plan", "--detailed-exitcode", "--out", "again.plan"];
    let plan = linkplan(options, &proxy, &stack, &args, 0)?;
    let bound = 3 * (2 + spokes);
    // The targets are set for 50 spokes: the fixed calls of four regions and Route 53 exceed
    // the bound for a few spokes, so smaller counts show it for comparison only.
    let verdict = if spokes == TARGET_SPOKES {
        let met = plan.calls as usize <= bound && plan.wall < PLAN_TARGET_WALL;
        format!(
            "  target: calls <= {bound}, wall < {} ms: {}",
            PLAN_TARGET_WALL.as_millis(),
            verdict(met)
        )
    } else {
        String::new()
    };
    println!(
        "no-change plan  spokes={spokes:<3} vpcs={:<3} calls={:<4} 3x(2+N)={bound:<4} wall={:>6} ms  wall/delay={:.1}{verdict}",
        stack.spokes.len() + 1,
        plan.calls,
        plan.wall.as_millis(),
        plan.wall.as_secs_f64() / options.delay.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&stack.dir);
    Ok(())
}

/// Returns the calls of each step from the `AWS calls by step:` table of a `-v` report.
fn calls_by_step(stderr: &str) -> BTreeMap<String, u64> {
    stderr
        .lines()
        .skip_while(|line| !line.starts_with("AWS calls by step:"))
        .skip(2)
        .map_while(|line| {
            let mut fields = line.split_whitespace();
            let step = fields.next()?;
            let calls: u64 = fields.next()?.parse().ok()?;
            let retries: u64 = fields.next()?.parse().ok()?;
            Some((step.to_string(), calls + retries))
        })
        .collect()
}

/// Returns the calls on the heaviest chain of dependent steps of `plan_path`, and its steps.
fn heaviest_chain(
    plan_path: &Path,
    calls: &BTreeMap<String, u64>,
) -> anyhow::Result<(u64, Vec<String>)> {
    let plan = plan_file::read(plan_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Steps are in execution order, so each step's dependencies come before it.
    let mut heaviest: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for step in &plan.steps {
        let address = step.address.to_string();
        let before = step
            .depends_on
            .iter()
            .filter_map(|d| heaviest.get(&d.to_string()))
            .max_by_key(|(weight, _)| *weight)
            .cloned()
            .unwrap_or_default();
        let own = calls.get(&address).copied().unwrap_or(0);
        let mut path = before.1;
        path.push(format!("{address} ({own})"));
        heaviest.insert(address, (before.0 + own, path));
    }
    Ok(heaviest
        .into_values()
        .max_by_key(|(weight, _)| *weight)
        .unwrap_or_default())
}

/// An apply of a fresh hub: the run, the calls of each step, the requests and the plan's folder.
struct HubApply {
    apply: Timed,
    by_step: BTreeMap<String, u64>,
    requests: Vec<RequestRecord>,
    stack: Stack,
    server: MotoServer,
}

/// Plans a fresh hub on a new moto server without delay, then applies it with `delay` and `-v`.
fn apply_fresh_hub(options: &Options, delay: Duration) -> anyhow::Result<HubApply> {
    let server = MotoServer::start().context("starting moto")?;
    let provider = server.provider_side();
    let stack = make_stack(&server, &provider, "benchhub", 0)?;
    let proxy = FaultProxy::start(&server.endpoint);
    linkplan(options, &proxy, &stack, &["plan", "--out", "hub.plan"], 0)?;

    proxy.set_delay(delay);
    let args = ["apply", "-v", "--auto-approve", "hub.plan"];
    let apply = linkplan(options, &proxy, &stack, &args, 0)?;
    let requests = proxy.requests();
    let stderr = String::from_utf8_lossy(&apply.output.stderr);
    let by_step = calls_by_step(&stderr);
    ensure!(
        !by_step.is_empty(),
        "the -v report of the apply has no calls by step:\n{stderr}"
    );
    Ok(HubApply {
        apply,
        by_step,
        requests,
        stack,
        server,
    })
}

/// The read an apply makes before its first step, as the proxy saw it.
struct ReadBeforeSteps {
    calls: usize,
    /// The longest run of these requests in which each starts after the one before finished.
    depth: u64,
    wall: Duration,
}

/// Splits the requests of an apply at its first mutating request, and returns the read before
/// it and the time from that request to the last response.
///
/// The read's depth is measured rather than derived. Its calls are sent as soon as the ids they
/// need are known, and a fresh hub's read stays under every fan-out bound. So a request that
/// starts after another finished waited for that one's response.
fn split_apply(requests: &[RequestRecord]) -> anyhow::Result<(ReadBeforeSteps, Duration)> {
    let first_step = requests
        .iter()
        .filter(|r| r.mutating)
        .map(|r| r.received)
        .min()
        .context("the apply made no mutating request")?;
    let mut read: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.received < first_step)
        .collect();
    read.sort_by_key(|r| r.received);
    // depth[i]: the longest chain that ends with read[i].
    let mut depth: Vec<u64> = Vec::with_capacity(read.len());
    for (i, request) in read.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| read[j].finished <= request.received)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    let read_start = read.first().map_or(first_step, |r| r.received);
    let last_response = requests
        .iter()
        .map(|r| r.finished)
        .max()
        .unwrap_or(first_step);
    Ok((
        ReadBeforeSteps {
            calls: read.len(),
            depth: depth.into_iter().max().unwrap_or(0),
            wall: first_step - read_start,
        },
        last_response - first_step,
    ))
}

/// One apply of a fresh hub with the delay on, split into the read and the steps.
struct ApplyRun {
    wall: Duration,
    calls: u32,
    steps: usize,
    step_calls: u64,
    /// The heaviest chain of steps, weighed by their calls, and its steps.
    step_chain: (u64, Vec<String>),
    read: ReadBeforeSteps,
    steps_wall: Duration,
}

impl ApplyRun {
    /// Returns the calls of the apply's longest chain of dependent calls. Every step waits for
    /// the read, which rejects a stale plan, so that is the read's depth followed by the
    /// heaviest chain of steps.
    fn chain_calls(&self) -> u64 {
        self.read.depth + self.step_chain.0
    }
}

fn measure_apply(options: &Options) -> anyhow::Result<ApplyRun> {
    let HubApply {
        apply,
        by_step,
        requests,
        stack,
        ..
    } = apply_fresh_hub(options, options.delay)?;
    let step_chain = heaviest_chain(&stack.dir.join("hub.plan"), &by_step)?;
    let (read, steps_wall) = split_apply(&requests)?;
    let _ = std::fs::remove_dir_all(&stack.dir);
    Ok(ApplyRun {
        wall: apply.wall,
        calls: apply.calls,
        steps: by_step.len(),
        step_calls: by_step.values().sum(),
        step_chain,
        read,
        steps_wall,
    })
}

/// Returns the median time moto took per request, from `requests` made without delay.
fn median_service_time(requests: &[RequestRecord]) -> Duration {
    let mut times: Vec<Duration> = requests.iter().map(|r| r.finished - r.received).collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Measures the apply of a fresh hub: once without delay, then `--runs` times with it.
fn bench_apply(options: &Options) -> anyhow::Result<()> {
    let baseline = apply_fresh_hub(options, Duration::ZERO)?;
    let _ = std::fs::remove_dir_all(&baseline.stack.dir);
    drop(baseline.server);

    let mut runs = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        runs.push(measure_apply(options)?);
    }
    runs.sort_by_key(|run| run.wall);
    let walls: Vec<String> = runs
        .iter()
        .map(|run| format!("{}", run.wall.as_millis()))
        .collect();
    let run = &runs[runs.len() / 2];
    let chain_time = options.delay * u32::try_from(run.chain_calls())?;
    let step_chain_time = options.delay * u32::try_from(run.step_chain.0)?;
    let ratio = run.wall.as_secs_f64() / chain_time.as_secs_f64();
    println!(
        "fresh-hub apply steps={} calls={} wall={} ms (median of {}: {} ms)  longest chain={} \
         calls = {} ms  wall/chain={ratio:.2}  target: < {APPLY_TARGET_RATIO}: {}",
        run.steps,
        run.calls,
        run.wall.as_millis(),
        runs.len(),
        walls.join(", "),
        run.chain_calls(),
        chain_time.as_millis(),
        verdict(ratio < APPLY_TARGET_RATIO),
    );
    println!(
        "  the read before the steps: {} calls, {} deep, {} ms",
        run.read.calls,
        run.read.depth,
        run.read.wall.as_millis()
    );
    println!(
        "  the steps: {} calls, heaviest chain {} calls = {} ms, {} ms from the first step's \
         call to the last response ({:.2} x the chain)",
        run.step_calls,
        run.step_chain.0,
        step_chain_time.as_millis(),
        run.steps_wall.as_millis(),
        run.steps_wall.as_secs_f64() / step_chain_time.as_secs_f64(),
    );
    println!(
        "  heaviest chain of steps: {}",
        run.step_chain.1.join(" -> ")
    );
    println!(
        "  the same apply without delay: {} ms, with moto taking {} ms per request (median)",
        baseline.apply.wall.as_millis(),
        median_service_time(&baseline.requests).as_millis()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    println!(
        "{} ms added to every request by the loopback proxy",
        options.delay.as_millis()
    );
    for &spokes in &options.spoke_counts {
        bench_plan(&options, spokes)?;
    }
    bench_apply(&options)?;
    Ok(())
}

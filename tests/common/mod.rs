//! Helpers shared by the integration tests: running the real `linkplan` binary against this
//! test binary's moto server, and writing configs for fixture VPCs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use linkplan_testkit::{FaultProxy, LocalVpc, MotoServer, ProviderSide};

/// The result of one `linkplan` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the run exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "linkplan exited with {} instead of {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Returns a `linkplan` command aimed at `server`, with stdin closed and color off.
pub fn linkplan(server: &MotoServer, directory: &Path) -> Command {
    let mut command = server.command(env!("CARGO_BIN_EXE_linkplan"));
    command
        .current_dir(directory)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    command
}

/// Runs `linkplan ARGS` in `directory` against `server`.
pub fn run(server: &MotoServer, directory: &Path, args: &[&str]) -> Run {
    let output = linkplan(server, directory)
        .args(args)
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

/// Runs `linkplan ARGS` in `directory` with no AWS endpoint set at all, for offline commands.
pub fn run_offline(directory: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_linkplan"))
        .current_dir(directory)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

/// Returns a new empty folder for one test's config and plans.
pub fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test folder is created");
    dir
}

/// Returns the config text of a hub-only stack on `hub`, using the local provider side.
pub fn hub_config(stack: &str, hub: &LocalVpc, provider: &ProviderSide) -> String {
    let subnets: Vec<String> = hub.subnet_ids.iter().map(|s| format!("{s:?}")).collect();
    let services = &provider.services;
    format!(
        "name = \"{stack}\"\n\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"{}\"\nsubnet_ids = [{}]\n\n\
         [services]\nrelay = \"{}\"\nagents = \"{}\"\ndsmim = \"{}\"\napp = \"{}\"\n",
        hub.vpc_id,
        subnets.join(", "),
        services.relay,
        services.agents,
        services.dsmim,
        services.app
    )
}

/// Returns the config text of a stack on `hub`, with the hub's first route table, and one spoke
/// named `spoke_name` on `spoke` with its first route table.
pub fn hub_and_spoke_config(
    stack: &str,
    hub: &LocalVpc,
    spoke_name: &str,
    spoke: &LocalVpc,
    provider: &ProviderSide,
) -> String {
    let hub_table = format!(
        "route_table_ids = [\"{}\"]\nsubnet_ids = [",
        hub.route_table_ids[0]
    );
    let spoke_table = format!(
        "\n[[spoke]]\nname = \"{spoke_name}\"\nregion = \"{}\"\nvpc_id = \"{}\"\nroute_table_ids = [\"{}\"]\n",
        spoke.region, spoke.vpc_id, spoke.route_table_ids[0]
    );
    hub_config(stack, hub, provider).replace("subnet_ids = [", &hub_table) + &spoke_table
}

/// Writes `text` to `linkplan.toml` in `directory`.
pub fn write_config(directory: &Path, text: &str) -> PathBuf {
    let path = directory.join("linkplan.toml");
    std::fs::write(&path, text).expect("config is written");
    path
}

/// Compares `actual` with the golden file `tests/golden/NAME`, or rewrites the file when
/// `LINKPLAN_UPDATE_GOLDEN` is set.
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("LINKPLAN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file is written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is unreadable ({e}); run with LINKPLAN_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual);
        panic!(
            "output differs from {} (run with LINKPLAN_UPDATE_GOLDEN=1 to accept):\n{}",
            path.display(),
            diff.unified_diff().context_radius(2)
        );
    }
}

/// Replaces each `(value, placeholder)` pair in `text`, longest values first.
pub fn redact(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut pairs = replacements.to_vec();
    pairs.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    pairs
        .iter()
        .fold(text.to_string(), |text, (value, placeholder)| {
            text.replace(value, placeholder)
        })
}

/// Returns a `linkplan` command aimed at `proxy`, with stdin closed and color off.
pub fn linkplan_via(proxy: &FaultProxy, directory: &Path) -> Command {
    let mut command = proxy.command(env!("CARGO_BIN_EXE_linkplan"));
    command
        .current_dir(directory)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    command
}

/// Runs `linkplan ARGS` in `directory` through `proxy`.
pub fn run_via(proxy: &FaultProxy, directory: &Path, args: &[&str]) -> Run {
    let output = linkplan_via(proxy, directory)
        .args(args)
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

/// Sends SIGINT to process `pid`, as Ctrl-C in its terminal would.
pub fn interrupt(pid: u32) {
    signal(pid, "INT");
}

/// Sends SIGTERM to process `pid`, as `timeout`, systemd or a CI runner's cancel would.
pub fn terminate(pid: u32) {
    signal(pid, "TERM");
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits up to 60 s until `proxy` has stalled a request after forwarding it.
///
/// # Panics
///
/// Panics when no request was stalled by then.
pub fn wait_for_stall(proxy: &FaultProxy) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !proxy.requests().iter().any(|request| {
        matches!(
            request.outcome,
            linkplan_testkit::Outcome::StalledAfterForward { .. }
        )
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no request reached the stall within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts `linkplan apply --auto-approve FLAGS p.plan` in `dir` through `proxy`, set to stall
/// after mutation `n` reaches the API, waits for the stall, and returns the running child.
///
/// # Panics
///
/// Panics, with the child's stderr, when it exits before mutation `n`, or when the stall does
/// not come within 60 s.
pub fn apply_stalled_at(
    proxy: &FaultProxy,
    dir: &Path,
    n: u32,
    flags: &[&str],
) -> std::process::Child {
    proxy.clear_faults();
    proxy.reset_counts();
    proxy.stall_nth_mutating_after_forward(n);
    let mut child = linkplan_via(proxy, dir)
        .args(["apply", "--auto-approve"])
        .args(flags)
        .arg("p.plan")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("linkplan starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !proxy.requests().iter().any(|request| {
        matches!(
            request.outcome,
            linkplan_testkit::Outcome::StalledAfterForward { .. }
        )
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "mutation {n} never reached the proxy"
        );
        if child.try_wait().expect("the child can be polled").is_some() {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(
                &mut child.stderr.take().expect("stderr is piped"),
                &mut stderr,
            );
            panic!("the apply ended before mutation {n}:\n{stderr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// A hub-only stack on a fixture VPC, with its config written to a folder of its own.
pub struct HubStack {
    pub stack: String,
    pub hub: LocalVpc,
    pub dir: PathBuf,
}

/// Creates the hub VPC of `spec` on `server` and writes the config of a stack named after
/// `prefix` for it, using the local provider side.
pub fn hub_stack(server: &MotoServer, prefix: &str, spec: linkplan_testkit::VpcSpec) -> HubStack {
    let provider = server.provider_side();
    let stack = linkplan_testkit::unique_name(prefix);
    let hub = server.vpc(spec);
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    HubStack { stack, hub, dir }
}

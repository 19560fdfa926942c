//! Golden tests of `--help` for every command and of the main error texts, with color off.
//!
//! The files are under `tests/golden/help/`; `LINKPLAN_UPDATE_GOLDEN=1` rewrites them. The
//! tests of plan files and AWS errors run on moto, with the fault proxy in front of it to inject
//! errors. Every other run makes no AWS call.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{HubStack, Run, assert_golden, hub_stack, redact, workdir};
use linkplan_testkit::{FaultProxy, InjectedError, VpcSpec, moto, unique_name};

/// An endpoint on which nothing listens: the runs here make no call, and one made by mistake
/// fails at once instead of leaving the machine.
const UNUSED_ENDPOINT: &str = "http://127.0.0.1:9";

/// Runs `linkplan ARGS` in `directory` with dummy credentials, an unused loopback endpoint and
/// a fixed help width.
fn linkplan(directory: &Path, args: &[&str]) -> Run {
    let output = command(directory, args)
        .env("AWS_ENDPOINT_URL", UNUSED_ENDPOINT)
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

/// Runs `linkplan ARGS --help` in `directory`. No endpoint is set, since help would show its
/// value, and printing help calls nothing.
fn help(directory: &Path, args: &[&str]) -> Run {
    let output = command(directory, args)
        .arg("--help")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

fn command(directory: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_linkplan"));
    command
        .current_dir(directory)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG");
    command
}

/// Returns the command names listed under `Commands:` in the top-level help, `help` left out.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn top_level_help() {
    let dir = workdir("help-top-level");
    let run = help(&dir, &[]).expect_code(0);
    assert_golden("help/linkplan.txt", &run.stdout);
}

#[test]
fn help_of_every_command() {
    let dir = workdir("help-every-command");
    let top = help(&dir, &[]).expect_code(0);
    let names = commands(&top.stdout);
    assert!(
        names.len() >= 9,
        "too few commands found in:\n{}",
        top.stdout
    );
    for name in &names {
        let run = help(&dir, &[name]).expect_code(0);
        assert!(
            run.stdout.contains("Example"),
            "`linkplan {name} --help` shows no example:\n{}",
            run.stdout
        );
        assert_golden(&format!("help/{name}.txt"), &run.stdout);
    }
}

#[test]
fn golden_files_match_commands() {
    let dir = workdir("help-golden-files");
    let top = help(&dir, &[]).expect_code(0);
    let mut expected: Vec<String> = commands(&top.stdout)
        .iter()
        .map(|name| format!("{name}.txt"))
        .collect();
    expected.push("linkplan.txt".to_string());
    expected.sort();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help");
    let mut present: Vec<String> = std::fs::read_dir(&golden)
        .expect("tests/golden/help exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("error-"))
        .collect();
    present.sort();
    assert_eq!(
        present,
        expected,
        "help golden files of removed commands are left in {}",
        golden.display()
    );
}

#[test]
fn readme_lists_every_flag() {
    use clap::CommandFactory;

    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let cli = linkplan::args::Cli::command();
    for command in cli.get_subcommands() {
        let name = command.get_name();
        let prefix = format!("| `linkplan {name} ");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .collect();
        assert!(!rows.is_empty(), "the README has no row for `{name}`");
        let arguments = command.get_arguments().filter(|arg| !arg.is_global_set());
        for argument in arguments {
            if let Some(long) = argument.get_long() {
                let flag = format!("--{long}");
                assert!(
                    rows.iter().any(|row| row.contains(&flag)),
                    "the README's rows for `{name}` do not list {flag}:\n{}",
                    rows.join("\n")
                );
            }
            // A switch such as --force has the values true and false, which are never typed.
            if !argument.get_action().takes_values() {
                continue;
            }
            for value in argument.get_possible_values() {
                assert!(
                    rows.iter().any(|row| row.contains(value.get_name())),
                    "the README's rows for `{name}` do not list `{}`:\n{}",
                    value.get_name(),
                    rows.join("\n")
                );
            }
        }
    }
}

/// Runs `args` in a fresh folder prepared by `prepare`, and compares stderr with the golden
/// file `help/error-NAME.txt`.
fn assert_error_golden(name: &str, args: &[&str], prepare: impl FnOnce(&Path)) {
    let dir = workdir(&format!("help-error-{name}"));
    prepare(&dir);
    let run = linkplan(&dir, args).expect_code(1);
    assert!(
        run.stdout.is_empty(),
        "errors go to stderr:\n{}",
        run.stdout
    );
    assert_golden(&format!("help/error-{name}.txt"), &run.stderr);
}

#[test]
fn error_missing_config() {
    assert_error_golden("missing-config", &["validate"], |_| {});
}

#[test]
fn error_invalid_config() {
    assert_error_golden("invalid-config", &["validate"], |dir| {
        let text = "name = \"Hub\"\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-123\"\n\
                    subnet_ids = [\"subnet-0123456789abcdef0\"]\ncolour = \"red\"\n";
        std::fs::write(dir.join("linkplan.toml"), text).unwrap();
    });
}

#[test]
fn error_unknown_command() {
    assert_error_golden("unknown-command", &["deploy"], |_| {});
}

#[test]
fn error_init_existing_config() {
    assert_error_golden(
        "init-existing-config",
        &["init", "--vpc", "vpc-0123456789abcdef0"],
        |dir| std::fs::write(dir.join("linkplan.toml"), "# kept\n").unwrap(),
    );
}

#[test]
fn error_init_invalid_vpc() {
    assert_error_golden("init-invalid-vpc", &["init", "--vpc", "vpc-12"], |_| {});
}

#[test]
fn error_init_invalid_name() {
    assert_error_golden(
        "init-invalid-name",
        &["init", "--vpc", "vpc-0123456789abcdef0", "--name", "Hub"],
        |_| {},
    );
}

#[test]
fn error_init_invalid_service() {
    assert_error_golden(
        "init-invalid-service",
        &[
            "init",
            "--vpc",
            "vpc-0123456789abcdef0",
            "--service",
            "relay",
        ],
        |_| {},
    );
}

#[test]
fn error_init_region_without_services() {
    assert_error_golden(
        "init-region-without-services",
        &[
            "init",
            "--vpc",
            "vpc-0123456789abcdef0",
            "--region",
            "eu-west-1",
        ],
        |_| {},
    );
}

/// Writes a valid hub config into `dir`, for commands that would read the live state.
fn write_hub_config(dir: &Path) {
    let text = "name = \"web\"\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-0123456789abcdef0\"\n\
                subnet_ids = [\"subnet-0123456789abcdef0\"]\n";
    std::fs::write(dir.join("linkplan.toml"), text).unwrap();
}

#[test]
fn error_zero_timeout() {
    assert_error_golden(
        "zero-timeout",
        &["plan", "--read-timeout", "0"],
        write_hub_config,
    );
    let dir = workdir("help-zero-connect-timeout");
    write_hub_config(&dir);
    let run = linkplan(&dir, &["plan", "--connect-timeout", "0"]).expect_code(1);
    assert!(
        run.stderr
            .contains("invalid value '0' for '--connect-timeout <SECONDS>'"),
        "{}",
        run.stderr
    );
}

#[test]
fn error_endpoint_url_flag() {
    assert_error_golden(
        "endpoint-url-flag",
        &["plan", "--endpoint-url", "notaurl"],
        write_hub_config,
    );
}

/// Runs `linkplan ARGS` in a new folder with a hub config and `AWS_ENDPOINT_URL` set to `url`.
fn run_with_endpoint_variable(name: &str, args: &[&str], url: &str) -> Run {
    let dir = workdir(name);
    write_hub_config(&dir);
    let output = command(&dir, args)
        .env("AWS_ENDPOINT_URL", url)
        .output()
        .expect("linkplan runs");
    Run::from(output)
}

#[test]
fn error_endpoint_url_variable() {
    let run = run_with_endpoint_variable("help-error-endpoint-url-variable", &["plan"], "notaurl");
    let run = run.expect_code(1);
    assert_golden("help/error-endpoint-url-variable.txt", &run.stderr);
}

#[test]
fn endpoint_url_unused_offline() {
    // Commands that make no AWS call ignore a malformed endpoint override.
    let run = run_with_endpoint_variable("help-endpoint-url-offline", &["validate"], "notaurl");
    run.expect_code(0);
}

#[test]
fn error_missing_plan_file() {
    assert_error_golden("missing-plan-file", &["apply", "missing.plan"], |_| {});
}

/// Plans a hub stack on moto into `p.plan` in a new folder, and returns the folder and the
/// endpoint the plan was made against.
fn planned_stack(prefix: &str) -> (std::path::PathBuf, String) {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        prefix,
        VpcSpec::new("us-east-1", "10.91.0.0/16", &["use1-az1"]),
    );
    common::run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    (dir, server.endpoint.clone())
}

#[test]
fn error_edited_plan_file() {
    let (dir, _) = planned_stack("help-edited");
    let path = dir.join("p.plan");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("destroy = 0"),
        "the plan file changed shape:\n{text}"
    );
    std::fs::write(&path, text.replacen("destroy = 0", "destroy = 1", 1)).unwrap();
    let run = linkplan(&dir, &["show", "p.plan"]).expect_code(1);
    assert_golden("help/error-edited-plan-file.txt", &run.stderr);
}

#[test]
fn error_plan_of_other_endpoint() {
    // The plan was made against moto; this run would call UNUSED_ENDPOINT instead.
    let (dir, endpoint) = planned_stack("help-endpoint");
    let run = linkplan(&dir, &["apply", "--auto-approve", "p.plan"]).expect_code(1);
    let stderr = redact(&run.stderr, &[(&endpoint, "http://127.0.0.1:MOTO")]);
    assert_golden("help/error-plan-of-other-endpoint.txt", &stderr);
}

#[test]
fn error_init_unknown_services() {
    // moto has none of the Workload Security services that init looks up by default.
    let server = moto();
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.92.0.0/16", &["use1-az1"]));
    let dir = workdir(&unique_name("help-init-services"));
    let run = common::run(server, &dir, &["init", "--vpc", &hub.vpc_id]).expect_code(1);
    let stderr = redact(&run.stderr, &[(&hub.vpc_id, "vpc-HUB")]);
    let without_progress: String = stderr
        .lines()
        .filter(|line| !line.contains("Reading VPC"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_golden("help/error-init-unknown-services.txt", &without_progress);
}

#[test]
fn error_aws_access_denied() {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        "help-denied",
        VpcSpec::new("us-east-1", "10.93.0.0/16", &["use1-az1"]),
    );
    let proxy = FaultProxy::start(&server.endpoint);
    let denied = InjectedError::new(
        403,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
    );
    proxy.fail_operation("DescribeVpcs", 1000, denied);

    let run = common::run_via(&proxy, &dir, &["plan"]).expect_code(1);
    let error: String = run
        .stderr
        .lines()
        .skip_while(|line| !line.starts_with("error:"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_golden("help/error-aws-access-denied.txt", &error);
}

//! Progress output with and without a terminal: spinners under a pseudo-terminal, plain
//! timestamped lines when stderr is a pipe.
//!
//! The pseudo-terminal comes from `script(1)` of util-linux, which the supported machines
//! have. Color stays off in both runs (`NO_COLOR`), so every escape sequence under the
//! terminal comes from the spinners' redraws.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{HubStack, Run, hub_stack, run};
use linkplan_testkit::{MotoServer, VpcSpec, moto};

/// Quotes `value` for `sh`.
fn shell_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Runs `linkplan ARGS` in `directory` against `server` under a pseudo-terminal, and returns
/// what the terminal showed: stdout and stderr together, with `\r\n` line ends.
fn run_in_terminal(server: &MotoServer, directory: &Path, args: &[&str]) -> Run {
    let mut command_line = vec![shell_quoted(env!("CARGO_BIN_EXE_linkplan"))];
    command_line.extend(args.iter().map(|arg| shell_quoted(arg)));
    // `script -e` exits with the command's code; the typescript itself goes to /dev/null.
    let output = server
        .command("script")
        .args(["-q", "-e", "-c", &command_line.join(" "), "/dev/null"])
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .env("SHELL", "/bin/sh")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("script(1) of util-linux failed to start: {error}"));
    Run::from(output)
}

/// Reports whether `line` starts with an RFC 3339 UTC time such as `2026-01-02T03:04:05Z `.
fn is_timestamped(line: &str) -> bool {
    let bytes = line.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:ddZ ";
    bytes.len() > shape.len()
        && shape
            .bytes()
            .zip(bytes)
            .all(|(expected, actual)| match expected {
                b'd' => actual.is_ascii_digit(),
                other => other == *actual,
            })
}

/// Reports whether a timestamp of progress output appears anywhere in `text`.
fn contains_timestamp(text: &str) -> bool {
    text.char_indices()
        .any(|(start, _)| is_timestamped(&text[start..]))
}

#[test]
fn timestamp_shape_is_recognized() {
    assert!(is_timestamped(
        "2026-12-04T17:40:02Z endpoint.app: Creating..."
    ));
    assert!(!is_timestamped("endpoint.app: Creating..."));
    assert!(!is_timestamped("2026-12-04 17:40:02 endpoint.app"));
    assert!(contains_timestamp(
        "\r\x1b[2K2026-12-04T17:40:02Z zone: Created after 0s"
    ));
}

fn progress_lines<'a>(text: &'a str, needles: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| needles.iter().any(|needle| line.contains(needle)))
        .collect()
}

#[test]
fn progress_without_terminal_is_timestamped() {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        "tty-plain",
        VpcSpec::new("us-east-1", "10.81.0.0/16", &["use1-az1"]),
    );

    let planned = run(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    let reading = progress_lines(&planned.stderr, &["Reading the live state"]);
    assert_eq!(reading.len(), 2, "{}", planned.stderr);
    for line in &reading {
        assert!(is_timestamped(line), "not timestamped: {line}");
    }
    assert!(!planned.stderr.contains('\x1b'), "{:?}", planned.stderr);

    let applied = run(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    let steps = progress_lines(&applied.stderr, &["Creating...", "Created after"]);
    assert!(steps.len() >= 8, "{}", applied.stderr);
    for line in &steps {
        assert!(is_timestamped(line), "not timestamped: {line}");
    }
    assert!(!applied.stderr.contains('\x1b'), "{:?}", applied.stderr);
    // The plan itself on stdout is never timestamped.
    assert!(
        applied.stdout.lines().all(|line| !is_timestamped(line)),
        "{}",
        applied.stdout
    );
}

#[test]
fn progress_on_terminal_draws_spinners() {
    let server = moto();
    let HubStack { stack, dir, .. } = hub_stack(
        server,
        "tty-terminal",
        VpcSpec::new("us-east-1", "10.82.0.0/16", &["use1-az1"]),
    );

    let planned = run_in_terminal(server, &dir, &["plan", "--out", "p.plan"]).expect_code(0);
    let terminal_output = &planned.stdout;
    assert!(
        terminal_output.contains(&format!(
            "Reading the live state of stack `{stack}`: done after"
        )),
        "{terminal_output:?}"
    );
    // indicatif redraws a spinner with carriage returns and line erasures.
    assert!(
        terminal_output.contains("\r\x1b[2K"),
        "no spinner was drawn: {terminal_output:?}"
    );
    assert!(
        !contains_timestamp(terminal_output),
        "timestamped on a terminal: {terminal_output:?}"
    );

    // Spinner rows are padded to the terminal's width rather than ended with a newline, so
    // the steps are counted in the whole output, not by line.
    let applied =
        run_in_terminal(server, &dir, &["apply", "--auto-approve", "p.plan"]).expect_code(0);
    let terminal_output = &applied.stdout;
    assert!(
        terminal_output.contains(": Creating... "),
        "no step spinner: {terminal_output:?}"
    );
    assert!(
        terminal_output.matches("Created after").count() >= 8,
        "{terminal_output:?}"
    );
    assert!(
        !contains_timestamp(terminal_output),
        "timestamped on a terminal: {terminal_output:?}"
    );
    assert!(
        terminal_output.contains("Apply complete!"),
        "{terminal_output:?}"
    );
}

#[test]
fn logging_on_terminal_uses_lines() {
    let server = moto();
    let HubStack { dir, .. } = hub_stack(
        server,
        "tty-verbose",
        VpcSpec::new("us-east-1", "10.83.0.0/16", &["use1-az1"]),
    );

    // Log lines would break the spinners' redraws, so -v turns them off.
    let planned = run_in_terminal(server, &dir, &["-v", "plan", "--out", "p.plan"]).expect_code(0);
    let terminal_output = &planned.stdout;
    assert!(
        !terminal_output.contains("\r\x1b[2K"),
        "a spinner was drawn: {terminal_output:?}"
    );
    assert!(
        contains_timestamp(terminal_output),
        "no timestamped line: {terminal_output:?}"
    );
}

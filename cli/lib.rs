//! The `linkplan` command line: arguments, confirmation prompts, views and exit codes over the
//! engine and the AWS provider.
//!
//! Human output follows two streams: the plan itself on stdout, progress and diagnostics on
//! stderr, so `linkplan plan > plan.txt` captures just the plan.

pub mod args;
pub mod backend;
pub mod commands;
pub mod error;
pub mod exit;
pub mod progress;
pub mod render;
pub mod signals;

use std::io::IsTerminal;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
use crate::render::Palette;

/// Runs the command line and returns the process exit code.
pub fn run() -> u8 {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            // Help and version go to stdout with 0. A usage error exits with 1, not clap's 2,
            // which `plan --detailed-exitcode` uses for "changes present".
            let _ = error.print();
            return if error.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
        }
    };
    if let Err(error) = check_endpoint_url(&cli, &matches) {
        eprintln!("{error}");
        return error.code;
    }
    let color_allowed = !cli.global.no_color && std::env::var_os("NO_COLOR").is_none();
    let color = color_allowed && std::io::stdout().is_terminal();
    init_logging(
        cli.global.verbose,
        color_allowed && std::io::stderr().is_terminal(),
    );
    if cli.global.verbose > 0 || std::env::var_os("RUST_LOG").is_some() {
        progress::disable_spinners();
    }
    let palette = Palette::new(color);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => commands::plan::run(args, &cli.global, &palette).await,
            Command::Apply(args) => commands::apply::run(args, &cli.global, &palette).await,
            Command::Show(args) => commands::show::run(args, &palette),
            Command::Rollback(args) => commands::rollback::run(args, &cli.global, &palette).await,
            Command::Unlock(args) => commands::unlock::run(args, &cli.global).await,
            Command::Validate(args) => commands::validate::run(args),
            Command::Verify(args) => commands::verify::run(args, &cli.global).await,
            Command::Init(args) => commands::init::run(args, &cli.global).await,
            Command::IamPolicy(args) => commands::iam_policy::run(args),
            Command::Completions(args) => commands::completions::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error}");
            error.code
        }
    }
}

/// Checks the endpoint override of a command that may call AWS, so that a malformed URL is
/// named with where it came from instead of failing inside the first AWS call.
fn check_endpoint_url(cli: &Cli, matches: &clap::ArgMatches) -> Result<(), error::CliError> {
    let Some(url) = &cli.global.endpoint_url else {
        return Ok(());
    };
    if !may_call_aws(&cli.command) {
        return Ok(());
    }
    let source = match matches.value_source("endpoint_url") {
        Some(ValueSource::EnvVariable) => "AWS_ENDPOINT_URL",
        _ => "--endpoint-url",
    };
    commands::check_endpoint_url(url, source)
}

/// Reports whether `command` may build AWS clients. `unlock` does only with `--config` or
/// `--plan`, whose backend may be in S3.
fn may_call_aws(command: &Command) -> bool {
    match command {
        Command::Plan(_)
        | Command::Apply(_)
        | Command::Rollback(_)
        | Command::Verify(_)
        | Command::Init(_) => true,
        Command::Unlock(args) => args.config.is_some() || args.plan.is_some(),
        Command::Show(_)
        | Command::Validate(_)
        | Command::IamPolicy(_)
        | Command::Completions(_) => false,
    }
}

fn init_logging(verbose: u8, color: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // From -vv on, the end of each span is logged with its duration, so every step's span,
    // which carries the step's address, shows how long the step took.
    let span_events = if verbose >= 2 {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(span_events)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .try_init();
}

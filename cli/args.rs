//! Command-line arguments. Command names, flags and their meanings are a contract scripts
//! rely on: add to them, never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "linkplan",
    version,
    about = "Plans and applies private access to Trend Micro Workload Security over AWS PrivateLink",
    long_about = "linkplan reads linkplan.toml, compares it with the live AWS state, and writes a \
                  plan file to review and commit. `linkplan apply PLANFILE` then executes exactly \
                  that plan, and rolls back what it did if a step fails."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Turn off colors; also off when NO_COLOR is set or stdout is not a terminal
    #[arg(long, global = true)]
    pub no_color: bool,

    /// AWS API endpoint for every EC2, Route 53 and STS client, e.g. a local emulator
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// More logging on stderr: -v for info, -vv for debug, -vvv for trace (RUST_LOG also works)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare the config with the live state and write a plan file
    #[command(
        after_help = "Examples:\n  linkplan plan\n  linkplan plan --config prod.toml --out plans/prod.plan\n  linkplan plan --destroy\n  linkplan plan --detailed-exitcode   # 0: no changes, 2: changes, 1: error"
    )]
    Plan(PlanArgs),

    /// Execute a reviewed plan file
    #[command(
        after_help = "Examples:\n  linkplan apply plans/workload-security.plan\n  linkplan apply --auto-approve plans/workload-security.plan"
    )]
    Apply(ApplyArgs),

    /// Print a plan file again
    #[command(
        after_help = "Examples:\n  linkplan show plans/workload-security.plan\n  linkplan show --format json plans/workload-security.plan"
    )]
    Show(ShowArgs),

    /// Check the config offline, without calling AWS
    #[command(after_help = "Example:\n  linkplan validate --config linkplan.toml")]
    Validate(ConfigArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config file to read
    #[arg(long, short, default_value = "linkplan.toml", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Where to write the plan file [default: plans/<stack name>.plan]
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Plan the removal of everything the stack owns
    #[arg(long)]
    pub destroy: bool,

    /// Exit with 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Plan file written by `linkplan plan`
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,

    /// Apply without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,

    /// Keep what was done when a step fails, instead of rolling it back
    #[arg(long)]
    pub no_rollback: bool,

    /// Steps that may run at the same time
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,

    /// Seconds one step may wait for its object to become usable, e.g. an endpoint `available`
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub wait_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Plan file written by `linkplan plan`
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

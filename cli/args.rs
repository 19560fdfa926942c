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

    /// Seconds to wait for a connection to an AWS endpoint
    #[arg(long, global = true, default_value_t = 3, value_name = "SECONDS")]
    pub connect_timeout: u64,

    /// Seconds to wait for the first byte of an AWS response
    #[arg(long, global = true, default_value_t = 20, value_name = "SECONDS")]
    pub read_timeout: u64,

    /// Attempts per AWS call, the first included; throttling, 5xx and timeouts are retried
    #[arg(long, global = true, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,

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

    /// Undo what an interrupted or failed apply of a plan left in place, from its journal
    #[command(after_help = "Example:\n  linkplan rollback plans/workload-security.plan")]
    Rollback(RollbackArgs),

    /// Remove a stack's lock left by an apply that died
    #[command(after_help = "Example:\n  linkplan unlock workload-security --force")]
    Unlock(UnlockArgs),

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

    /// Path of the plan file to write [default: plans/<stack name>.plan]
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
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub wait_timeout: u64,

    /// Finish a run of this plan that crashed or was stopped, using its journal
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Plan file whose run to undo
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,

    /// Roll back without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,

    /// Seconds one undo may wait, e.g. for an endpoint to read `deleted`
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub wait_timeout: u64,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Name of the stack whose lock to remove
    #[arg(value_name = "STACK")]
    pub stack: String,

    /// Remove the lock, whatever process has it; without this flag the holder is only shown
    #[arg(long)]
    pub force: bool,

    /// Folder of the local backend: the `.linkplan` folder beside the stack's plan files
    #[arg(long, default_value = "plans/.linkplan", value_name = "DIR")]
    pub backend_dir: PathBuf,
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

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

    /// AWS API endpoint for every EC2, Route 53, STS and S3 (state backend) client, e.g. a local
    /// emulator
    #[arg(
        long,
        global = true,
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,

    /// Seconds to wait for a connection to an AWS endpoint
    #[arg(long, global = true, default_value_t = 3, value_name = "SECONDS", value_parser = parse_timeout)]
    pub connect_timeout: u64,

    /// Seconds to wait for the first byte of an AWS response
    #[arg(long, global = true, default_value_t = 20, value_name = "SECONDS", value_parser = parse_timeout)]
    pub read_timeout: u64,

    /// Attempts per AWS call, the first included; throttling, 5xx and timeouts are retried
    #[arg(long, global = true, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,

    /// More logging on stderr: -v for info, -vv for debug, -vvv for trace (RUST_LOG also works)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Parses the seconds of `--connect-timeout` or `--read-timeout`. A timeout of 0 would fail
/// every AWS call, so at least 1 is required.
fn parse_timeout(value: &str) -> Result<u64, String> {
    let seconds: u64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number of seconds"))?;
    if seconds == 0 {
        return Err("a timeout of 0 s fails every AWS call: use at least 1".to_string());
    }
    Ok(seconds)
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

    /// Print a plan file again, after checking its digest
    #[command(
        after_help = "Examples:\n  linkplan show plans/workload-security.plan\n  linkplan show --format json plans/workload-security.plan | jq '.steps[].address'\n  linkplan show --format markdown plans/workload-security.plan > plan-comment.md"
    )]
    Show(ShowArgs),

    /// Undo what an interrupted or failed apply of a plan left in place, from its journal
    #[command(after_help = "Example:\n  linkplan rollback plans/workload-security.plan")]
    Rollback(RollbackArgs),

    /// Remove a stack's lock left by an apply that died
    #[command(
        after_help = "Examples:\n  linkplan unlock workload-security --force\n  linkplan unlock workload-security --force --plan plans/workload-security.plan\n  linkplan unlock workload-security --force --config linkplan.toml"
    )]
    Unlock(UnlockArgs),

    /// Check the config offline, without calling AWS
    #[command(after_help = "Example:\n  linkplan validate --config linkplan.toml")]
    Validate(ConfigArgs),

    /// Check that each host name resolves to the private addresses of its endpoint
    #[command(
        after_help = "Examples:\n  linkplan verify                      # inside a VPC associated with the zone\n  linkplan verify --resolver 10.0.0.2\n  linkplan verify --resolver 127.0.0.1:5353\n\nExit codes: 0 when every name matches, 5 when one does not, 1 on other errors."
    )]
    Verify(VerifyArgs),

    /// Discover a VPC and write a first linkplan.toml for it
    #[command(
        after_help = "Examples:\n  linkplan init --vpc vpc-0123456789abcdef0\n  linkplan init --vpc vpc-0123456789abcdef0 --config prod.toml --force\n  linkplan init --vpc vpc-0a1b2c3d --service relay=com.amazonaws.vpce.us-east-1.vpce-svc-0a1b2c3d"
    )]
    Init(InitArgs),

    /// Print the IAM policy that allows every AWS call linkplan makes
    #[command(
        after_help = "Examples:\n  linkplan iam-policy > linkplan-policy.json\n  linkplan iam-policy --state-bucket my-linkplan-state\n  aws iam create-policy --policy-name linkplan --policy-document \"$(linkplan iam-policy)\""
    )]
    IamPolicy(IamPolicyArgs),

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  linkplan completions bash > ~/.local/share/bash-completion/completions/linkplan\n  linkplan completions zsh > \"${fpath[1]}/_linkplan\"\n  linkplan completions fish > ~/.config/fish/completions/linkplan.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Id of the hub VPC that gets the interface endpoints
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: String,

    /// Region of the VPC and of the endpoint services
    #[arg(long, default_value = "us-east-1", value_name = "REGION")]
    pub region: String,

    /// Config file to write
    #[arg(long, short, default_value = "linkplan.toml", value_name = "FILE")]
    pub config: PathBuf,

    /// Overwrite the config file if it exists
    #[arg(long)]
    pub force: bool,

    /// Stack name written to the config: lowercase letters, digits and hyphens
    #[arg(long, default_value = "workload-security", value_name = "NAME")]
    pub name: String,

    /// Endpoint service of one host (relay, agents, dsmim or app) instead of its Workload
    /// Security default; repeatable
    #[arg(long = "service", value_name = "HOST=SERVICE_NAME", value_parser = crate::commands::init::parse_service)]
    pub services: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// S3 bucket of the state backend; scopes the S3 statement to it [default: every bucket]
    #[arg(long, value_name = "BUCKET")]
    pub state_bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to print the completion script for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config file to read
    #[arg(long, short, default_value = "linkplan.toml", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// DNS server to query instead of the system resolver; port 53 unless given
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = crate::commands::verify::parse_resolver)]
    pub resolver: Option<std::net::SocketAddr>,
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

    /// Steps that may run at the same time; a step that waits between two polls of its object
    /// does not count
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,

    /// Seconds one step may wait for its object to become usable, e.g. an endpoint `available`
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
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
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
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

    /// Config of the stack: the lock is in the backend its `[backend]` table names
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["plan", "backend_dir"])]
    pub config: Option<PathBuf>,

    /// Plan file of the stack: the lock is in the backend the plan was made with
    #[arg(long, value_name = "PLANFILE", conflicts_with = "backend_dir")]
    pub plan: Option<PathBuf>,
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
    /// The view `plan` prints, with the warnings recorded when planning
    Text,
    /// One document for policy tools; docs/plan-file.md lists its keys
    Json,
    /// A summary table, then the details per resource, for a pull-request comment
    Markdown,
}
